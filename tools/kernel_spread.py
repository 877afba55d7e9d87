"""How far the models' answers move between CPU kernel sets: where the known-answer tolerances
in ``device.kat`` come from.

    python -m tools.kernel_spread [--models DIR] [--source PATH ...] [--chips PATH ...]
                                  [--every N] [--limit N] [--kernels auto,builtin,reference]
                                  [--json OUT] [--check]

Every picture (the known-answer picture; the images and every N-th video frame of ``--source``;
the face chips of ``--chips``, each first put in a black canvas three times its side as the
evaluation does, so the face is one the detector finds; each scaled like the known-answer
picture to 192 px on its longer side) goes
through the known-answer procedure once per kernel set (``device.runtime.KERNELS``: ``auto`` is
XNNPACK, ``builtin`` TFLite's optimised kernels, ``reference`` its reference kernels). Every
pair of kernel sets is then compared the way a kiosk compares its answers with a bundle's
(``device.kat.detector_differences`` / ``head_differences``). The table gives p50, p99 and
the largest difference per quantity over all pictures and pairs, beside the floor
``device.kat`` uses; ``--check`` exits 1 when a largest difference is above its floor.

XNNPACK's int8 answers are the same bit for bit on x86 and on ARM (Cortex-A72 and A76, checked
under emulation by ``tools/pi_emulated.sh``); TFLite's own kernels differ from XNNPACK, from
each other, and between x86 and ARM, by a few quantisation steps. The pairs measured here on x86
therefore span the differences a kiosk can meet. The figures for models 1.5.0, and the command,
are in ``provisioning/kat.py`` beside the floors and in ``models/README.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

QUANTITIES = ("logit", "weak_logit", "box_px", "keypoint_px", "score", "age", "age_mean",
              "gender", "gender_mean", "emotion", "emotion_mean")
# detector differences are measured on faces like the known-answer picture's (score 0.91): a
# face near the 0.6 threshold moves further between kernel sets (its anchors drop in and out of
# the weighted NMS), and the build refuses a bundle whose own answers do not hold anyway
CONFIDENT = 0.8


def _scaled(img: np.ndarray, max_side: int = 192) -> np.ndarray:
    scale = max_side / max(img.shape[:2])
    if scale >= 1:
        return img
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


CHIP_PAD = 1.0  # a chip's side of black on every side: the chip in a canvas 3x its side


def pictures(sources, every: int, limit: int | None, chips=()):
    """(label, picture): the known-answer picture, then every source picture and every padded
    face chip, scaled like it."""
    from device.kat import kat_picture
    from tools.convert.frames import iter_frames

    yield "known-answer picture", kat_picture()
    if sources:
        for label, img in iter_frames(sources, every, limit):
            yield label, _scaled(img)
    if chips:
        for label, img in iter_frames(chips, every, limit):
            p = int(round(CHIP_PAD * max(img.shape[:2])))
            yield label, _scaled(cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=0))


def _recorded(answers: dict) -> dict:
    """A detector answer in the form ``device.kat`` records it."""
    from device.kat import fingerprint

    return {"detections": answers["detections"], "fingerprint": fingerprint(answers["logits"])}


def measure(models_dir: Path, kernel_sets, frames) -> dict[str, list[float]]:
    """Every difference between every pair of kernel sets, per quantity (lists, one value per
    picture and pair), plus ``faces_differ``: pictures whose face counts differed. Detector
    quantities count pictures with a face scoring at least ``CONFIDENT``, and the boxes,
    keypoints and scores of those faces."""
    from device import kat
    from device.analyzer import Analyzer
    from device.detector import FaceDetector
    from device.errors import NoAttributeModel
    from device.manifest import load_manifest, model_path
    from device.runtime import TFLiteModel, set_kernels

    manifest = load_manifest(models_dir)
    dets, ans = {}, {}
    for k in kernel_sets:
        dets[k] = FaceDetector(model=TFLiteModel(model_path(models_dir, manifest["detector"]),
                                                 kernels=k))
        set_kernels(k)
        try:
            ans[k] = Analyzer(models_dir) if manifest.get("analyzer") else None
        except NoAttributeModel:
            ans[k] = None
        finally:
            set_kernels(None)
    first = kernel_sets[0]
    out: dict[str, list[float]] = {q: [] for q in QUANTITIES}
    out["faces_differ"] = []
    for label, picture in frames:
        answers = {k: kat.detector_answers(dets[k], picture) for k in kernel_sets}
        heads = {}
        an = ans[first]
        if an is not None:
            found = dets[first].detect(picture)
            faces = kat.faces_for(picture, found, an.size, an.channels == 1)
            heads = {k: ans[k].raw(faces) for k in kernel_sets}
        for a, b in itertools.combinations(kernel_sets, 2):
            for want, got in ((a, b), (b, a)):
                recorded = _recorded(answers[want])
                d = kat.detector_differences(recorded, answers[got])
                if d["faces"][0] != d["faces"][1] or d["unpaired"]:  # a face at the threshold
                    out["faces_differ"].append(f"{label}: {want} {d['faces'][0]}, "
                                               f"{got} {d['faces'][1]}")
                    continue
                confident = [x for x in recorded["detections"] if x["score"] >= CONFIDENT]
                if confident:
                    out["logit"].append(d["logit"])
                    out["weak_logit"].append(d["weak_logit"])
                    d = kat.detector_differences(dict(recorded, detections=confident),
                                                 answers[got])
                    for q in ("box_px", "keypoint_px", "score"):
                        out[q].append(d[q])
            if heads:
                hd = kat.head_differences({h: v.tolist() for h, v in heads[a].items()}, heads[b],
                                          kat.head_scales(an))
                for h, v in hd.items():
                    out.setdefault(h, []).append(v)
    return out


def floors() -> dict[str, float]:
    from device import kat

    return {"logit": kat.LOGIT_TOL, "weak_logit": kat.WEAK_LOGIT_TOL, "box_px": kat.BOX_PX,
            "keypoint_px": kat.KEYPOINT_PX,
            "score": kat.SCORE_TOL, **{h: float(kat.head_steps(h)) for h in kat.HEAD_STEPS},
            **{f"{h}_mean": float(kat.head_mean_steps(h)) for h in kat.HEAD_MEAN_STEPS}}


def summary(measured: dict) -> list[dict]:
    rows = []
    for q, values in measured.items():
        if q == "faces_differ" or not values:
            continue
        v = np.asarray(values, np.float64)
        rows.append({"quantity": q, "n": int(v.size), "p50": float(np.median(v)),
                     "p99": float(np.percentile(v, 99)), "max": float(v.max()),
                     "floor": floors().get(q)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kernel_spread",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None,
                        help="models folder with manifest.json (default: the shipped models)")
    parser.add_argument("--source", nargs="*", default=[], metavar="PATH",
                        help="images, image folders, videos")
    parser.add_argument("--chips", nargs="*", default=[], metavar="PATH",
                        help="face chips (UTKFace-like) or folders of them, padded before use")
    parser.add_argument("--every", type=int, default=10, help="every N-th video frame")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many images per folder (seeded random choice)")
    parser.add_argument("--kernels", default="auto,builtin,reference",
                        help="comma-separated kernel sets to compare")
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a largest difference is above device.kat's floor")
    args = parser.parse_args(argv)
    from device.runtime import KERNELS

    kernel_sets = [k.strip() for k in args.kernels.split(",") if k.strip()]
    bad = [k for k in kernel_sets if k not in KERNELS]
    if bad or len(kernel_sets) < 2:
        print(f"--kernels: two or more of {', '.join(KERNELS)}", file=sys.stderr)
        return 2
    if args.models is None:
        from device.models import MODELS_DIR

        args.models = MODELS_DIR
    frames = list(pictures(args.source, args.every, args.limit, args.chips))
    measured = measure(args.models, kernel_sets, frames)
    rows = summary(measured)
    units = {"logit": "logit", "weak_logit": "logit", "box_px": "px", "keypoint_px": "px",
             "score": "prob",
             **{h: "steps" for h in ("age", "gender", "emotion", "age_mean", "gender_mean",
                                     "emotion_mean")}}
    print(f"{len(frames)} pictures, kernel sets {', '.join(kernel_sets)} (every pair, both ways)")
    print(f"{'quantity':<12} {'unit':<6} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8} {'floor':>8}")
    over = []
    for r in rows:
        print(f"{r['quantity']:<12} {units.get(r['quantity'], ''):<6} {r['n']:>6} {r['p50']:>8.3f} "
              f"{r['p99']:>8.3f} {r['max']:>8.3f} "
              f"{'-' if r['floor'] is None else format(r['floor'], '8.3f'):>8}")
        if r["floor"] is not None and r["max"] > r["floor"]:
            over.append(r["quantity"])
    for line in measured["faces_differ"]:
        print(f"face count differs: {line}")
    if args.json:
        args.json.write_text(json.dumps({"pictures": len(frames), "kernels": kernel_sets,
                                         "rows": rows,
                                         "faces_differ": measured["faces_differ"]}, indent=1))
    if args.check and over:
        print(f"above the floor: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
