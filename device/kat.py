"""Known-answer tests: inputs and the outputs the models gave when the bundle was built.

A bundle carries a small picture for the detector (with the detections and a fingerprint of raw
scores it produced) and a few aligned faces for the attribute model (with its raw head outputs).
The device runs the same inputs through its own runtime (``FaceDetector``, ``Analyzer``) before it
switches to new models, and again at boot. Pictures travel as base64 PNG inside the manifest, so
the signature covers them. They are made here, deterministically, from the public-domain astronaut
portrait shipped with the models (a drawn face if it is missing).
"""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

from device.align import align_face
from device.analyzer import Analyzer
from device.detector import FaceDetector
from device.errors import ModelError
from device.manifest import load_manifest, model_path
from device.models import PORTRAIT

FINGERPRINT = 16  # raw detector scores recorded: the best anchors'

# How far the answers may move between machines. int8 kernels round differently: XNNPACK gives
# the same answers bit for bit on x86 and ARM (it is what a Pi and the build machine run), but
# where XNNPACK cannot start the runtime falls back to TFLite's own kernels, whose answers are a
# few quantisation steps away (and differ again between x86 and ARM). Each floor is 1.5 times the
# largest difference measured between any two kernel sets (XNNPACK, TFLite's optimised and
# reference kernels), rounded up, models 1.5.0, on 380 pictures (the detector's on faces scoring
# 0.8 or more, like the known-answer picture's 0.91):
#   python -m tools.kernel_spread --source ../shared/data/samples \
#       --chips ../shared/data/utkface --limit 300 --every 5
# largest measured: logit 1.08 (weaker anchors 3.32), box 1.91 px, keypoints 3.01 px, score
# 0.069; attribute heads age 13, gender 16, emotion 22 steps (means over the recorded faces 6.5,
# 9.75, 3.39). Models 1.6.0 (YuNet), the same command: logit 0.71 (weaker 0.78), box 2.08 px,
# keypoints 1.71 px, score 0.011; age 15, gender 14, emotion 26 steps (means 7.75, 10.25, 3.54):
# under every floor, which stay. Models 1.7.0 (a new attribute model), the same command: age 13,
# gender 29, emotion 14 steps (means 4.75, 11.25, 2.57); the gender floor rises to 1.5 x 29.
# A bundle's own recorded tolerances apply when they are wider.
LOGIT_TOL = 1.7  # fingerprint: raw score logits of anchors recorded at 0 or more (score >= 0.5)
WEAK_LOGIT_TOL = 5.0  # the fingerprint's weaker anchors (below 0: noisier; a broken model's are
# tens away)
BOX_PX = 3.0  # detection box corners, pixels of the known-answer picture
KEYPOINT_PX = 4.6  # detection keypoints (eyes, nose, mouth, ears), pixels
SCORE_TOL = 0.11  # detection score (probability)
# attribute model outputs, in steps of each int8 output's scale (other heads: the largest), any
# one output and the mean over all of a head's outputs for the recorded faces
HEAD_STEPS = {"age": 20, "gender": 44, "emotion": 33}
HEAD_MEAN_STEPS = {"age": 10.0, "gender": 15.0, "emotion": 5.1}
HEAD_REL = 0.01  # attribute model outputs without a scale (float), relative to their largest


def head_steps(head: str) -> int:
    """The floor for one attribute head, in steps of its int8 output scale."""
    return HEAD_STEPS.get(head, max(HEAD_STEPS.values()))


def head_mean_steps(head: str) -> float:
    """The floor for one head's mean difference over all its recorded outputs, in steps."""
    return HEAD_MEAN_STEPS.get(head, max(HEAD_MEAN_STEPS.values()))


def png_b64(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("could not encode a PNG")
    return base64.b64encode(buf.tobytes()).decode()


def png_decode(text: str, gray: bool = False) -> np.ndarray:
    buf = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("known-answer picture is not a PNG")
    return img


def drawn_face(size: int = 192, shade: int = 170) -> np.ndarray:
    """A plain drawn face on a gradient (BGR), the same every time."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.dstack([(x * 120 // size + 60), (y * 80 // size + 90), np.full_like(x, 110)])
    img = img.astype(np.uint8)
    c, r = size // 2, size // 3
    cv2.ellipse(img, (c, c), (int(r * 0.8), r), 0, 0, 360, (shade - 40, shade, shade + 40), -1)
    for dx in (-r // 3, r // 3):
        cv2.circle(img, (c + dx, c - r // 4), max(2, r // 9), (40, 30, 30), -1)
    cv2.ellipse(img, (c, c + r // 2), (r // 3, r // 8), 0, 0, 180, (60, 40, 120), 2)
    return img


def kat_picture(max_side: int = 192) -> np.ndarray:
    """The detector's known-answer picture: the shipped astronaut portrait, or a drawn face."""
    img = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    if img is None:
        return drawn_face(max_side)
    scale = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _det_dict(d) -> dict:
    return {"box": [round(float(v), 2) for v in d.box], "score": round(float(d.score), 4),
            "keypoints": np.round(d.keypoints.astype(float), 2).tolist()}


def _box_distance(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def pair_detections(want: list[dict], got: list[dict]) -> list[tuple[dict, dict]]:
    """Recorded and new detections of the same face (boxes overlapping by IoU > 0.5), nearest
    first, so two faces whose scores swap order between runtimes still meet themselves."""
    pairs = sorted((_box_distance(w["box"], g["box"]), i, j)
                   for i, w in enumerate(want) for j, g in enumerate(got)
                   if _iou(w["box"], g["box"]) > 0.5)
    used_w, used_g, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_w and j not in used_g:
            used_w.add(i)
            used_g.add(j)
            out.append((want[i], got[j]))
    return out


def detector_answers(det: FaceDetector, picture: np.ndarray) -> dict:
    """The detector's answers for ``picture``: its detections and every anchor's raw score logit
    (``logits``, not recorded whole: the fingerprint keeps the best ``FINGERPRINT``)."""
    return {"detections": [_det_dict(d) for d in det.detect(picture)],
            "logits": _fingerprint(det, picture)}


def detector_differences(want: dict, got: dict) -> dict:
    """Largest differences between a recorded detector answer and a new one.

    Args:
        want: the recorded ``kat["detector"]`` (``detections``, ``fingerprint``).
        got: ``detector_answers`` of the model under test.
    Returns:
        ``faces`` (recorded, found), ``unpaired`` (recorded faces with no new detection of the
        same face), ``logit`` and ``weak_logit`` (fingerprint anchors recorded at 0 or more, and
        below), ``box_px``, ``keypoint_px``, ``score`` (over the paired faces; 0.0 where there
        was nothing to compare).
    """
    fp = want["fingerprint"]
    value = np.asarray(fp["value"], np.float64)
    logits = np.asarray(got["logits"], np.float64)[np.asarray(fp["index"], dtype=int)]
    diff = np.abs(logits - value)
    pairs = pair_detections(want["detections"], got["detections"])
    out = {"faces": (len(want["detections"]), len(got["detections"])),
           "unpaired": len(want["detections"]) - len(pairs),
           "logit": float(np.max(diff[value >= 0], initial=0.0)),
           "weak_logit": float(np.max(diff[value < 0], initial=0.0)),
           "box_px": 0.0, "keypoint_px": 0.0, "score": 0.0}
    for w, g in pairs:
        out["box_px"] = max(out["box_px"], _box_distance(w["box"], g["box"]))
        out["keypoint_px"] = max(out["keypoint_px"], _box_distance(w["keypoints"], g["keypoints"]))
        out["score"] = max(out["score"], abs(float(w["score"]) - float(g["score"])))
    return out


def head_differences(want: dict, got: dict, scales: dict[str, float]) -> dict[str, float]:
    """Per attribute head, the largest difference (key ``head``) and the mean difference
    (``head_mean``) between recorded and new outputs, in steps of the head's output scale
    (int8 heads) or relative to the head's largest recorded value (float heads,
    ``scales[head] == 0``). Kernel sets move single outputs by several steps, in both
    directions; a changed model moves many of them."""
    out = {}
    for head, w in want.items():
        w = np.asarray(w, np.float64)
        g = np.asarray(got[head], np.float64) if head in got else None
        if g is None or w.shape != g.shape:
            out[head] = out[f"{head}_mean"] = float("inf")
            continue
        scale = scales.get(head, 0.0)
        unit = scale if scale > 0 else max(1.0, float(np.abs(w).max()))
        diff = np.abs(g - w) / unit
        out[head] = float(diff.max()) if diff.size else 0.0
        out[f"{head}_mean"] = float(diff.mean()) if diff.size else 0.0
    return out


def _fingerprint(det: FaceDetector, img: np.ndarray) -> np.ndarray:
    """All raw score logits of the detector for ``img`` stretched to its input (one per anchor;
    YuNet's: the logit of each prior's score, ``FaceDetector.score_logits``)."""
    _, h, w, _ = det.model.inputs[0].shape
    rgb = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return det.score_logits(rgb)




def faces_for(picture: np.ndarray, dets, size: int, gray: bool) -> list[np.ndarray]:
    """Aligned crops: the first detected face, its mirror, a darker copy, and a drawn face."""
    crops = []
    if dets:
        base = align_face(picture, dets[0].right_eye, dets[0].left_eye, size, gray=gray)
        crops += [base, np.ascontiguousarray(base[:, ::-1]), (base * 0.7).astype(np.uint8)]
    drawn = drawn_face(size)
    crops.append(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY) if gray else drawn)
    return crops


def record(models_dir: Path) -> dict:
    """Run the known-answer inputs through the models in ``models_dir`` and record the answers."""
    manifest = load_manifest(models_dir)
    det = FaceDetector(model_path(models_dir, manifest["detector"]))
    picture = kat_picture()
    answers = detector_answers(det, picture)
    dets = det.detect(picture)
    kat = {"detector": {
        "picture": png_b64(picture), "detections": answers["detections"],
        "fingerprint": dict(fingerprint(answers["logits"]), atol=LOGIT_TOL,
                            weak_atol=WEAK_LOGIT_TOL),
        "tolerance": {"box_px": BOX_PX, "keypoint_px": KEYPOINT_PX, "score": SCORE_TOL},
        "kernels": getattr(det.model, "cpu_kernels", "unknown")}}
    if manifest.get("analyzer"):
        an = Analyzer(models_dir)
        faces = faces_for(picture, dets, an.size, an.channels == 1)
        raw = an.raw(faces)
        kat["analyzer"] = {
            "faces": [png_b64(f) for f in faces],
            "outputs": {k: np.round(v.astype(float), 5).tolist() for k, v in raw.items()},
            "atol": {k: round(_head_atol(an, k, v), 5) for k, v in raw.items()}}
    return kat


def fingerprint(logits: np.ndarray) -> dict:
    """The recorded part of the raw score logits: the ``FINGERPRINT`` best anchors, as
    ``index`` and ``value`` lists."""
    logits = np.asarray(logits)
    top = np.argsort(-logits, kind="stable")[:FINGERPRINT]
    return {"index": top.tolist(), "value": np.round(logits[top].astype(float), 4).tolist()}


def head_scales(an: Analyzer) -> dict[str, float]:
    """Each head's output step (its int8 scale), 0.0 for a float output."""
    return {name: (spec.scale if spec.quantized else 0.0) for name, spec in an._out.items()}


def _head_atol(an: Analyzer, head: str, values: np.ndarray) -> float:
    return head_floor(head, head_scales(an)[head], values)


def head_floor(head: str, scale: float, values) -> float:
    """This software's tolerance for one attribute head's outputs, in the outputs' own units."""
    if scale > 0:
        return head_steps(head) * scale + 1e-4
    return HEAD_REL * max(1.0, float(np.abs(np.asarray(values, np.float64)).max()))


def _models(models_dir: Path, detector_model=None, analyzer: Analyzer | None = None):
    """(FaceDetector with the KAT's settings, Analyzer or None) for ``models_dir``, on already
    loaded models when given (a kiosk tests the set it is about to run, loading it once)."""
    manifest = load_manifest(models_dir)
    det = FaceDetector(model=detector_model) if detector_model is not None else FaceDetector(
        model_path(models_dir, manifest["detector"]))
    if analyzer is None and manifest.get("analyzer"):
        analyzer = Analyzer(models_dir)
    return det, analyzer


def check(models_dir: Path, kat: dict, detector_model=None,
          analyzer: Analyzer | None = None) -> list[str]:
    """Run a recorded known-answer test; returns what disagreed (empty: passed).

    ``detector_model`` (a loaded ``TFLiteModel``) and ``analyzer`` reuse models already loaded
    from ``models_dir``; otherwise they are loaded here.
    """
    det, an = _models(models_dir, detector_model, analyzer if "analyzer" in kat else None)
    problems = _check_detector(det, kat["detector"])
    if "analyzer" in kat:
        if an is None:
            return problems + ["the known answers have an attribute model; these models do not"]
        problems += _check_analyzer(an, kat["analyzer"])
    return problems


def detector_tolerances(k: dict) -> dict[str, float]:
    """The recorded tolerances, widened to this software's floors (older bundles recorded
    tighter ones than kernel sets were later measured to need)."""
    tol, fp = k.get("tolerance", {}), k["fingerprint"]
    return {"logit": max(float(fp.get("atol", 0.0)), LOGIT_TOL),
            "weak_logit": max(float(fp.get("weak_atol", fp.get("atol", 0.0))), WEAK_LOGIT_TOL),
            "box_px": max(float(tol.get("box_px", 0.0)), BOX_PX),
            "keypoint_px": max(float(tol.get("keypoint_px", 0.0)), KEYPOINT_PX),
            "score": max(float(tol.get("score", 0.0)), SCORE_TOL)}


def _check_detector(det: FaceDetector, k: dict) -> list[str]:
    picture = png_decode(k["picture"])
    diff = detector_differences(k, detector_answers(det, picture))
    tol = detector_tolerances(k)
    problems = []
    for key, what in (("logit", "raw scores"), ("weak_logit", "raw scores of weaker anchors")):
        if not diff[key] <= tol[key]:
            problems.append(f"detector {what} differ by {diff[key]:.3f} (tolerance {tol[key]:g})")
    want, found = diff["faces"]
    if want != found:
        return problems + [f"detector found {found} faces, expected {want}"]
    if diff["unpaired"]:
        return problems + [f"detector found {diff['unpaired']} of the {want} recorded faces "
                           f"in other places"]
    for key, what, unit in (("box_px", "boxes moved", " px"),
                            ("keypoint_px", "keypoints moved", " px"),
                            ("score", "scores differ", "")):
        if not diff[key] <= tol[key]:
            problems.append(f"detector {what} by {diff[key]:.3f}{unit} (tolerance {tol[key]:g})")
    return problems


def _check_analyzer(an: Analyzer, k: dict) -> list[str]:
    faces = [png_decode(f, gray=an.channels == 1) for f in k["faces"]]
    raw = an.raw(faces)
    scales = head_scales(an)
    means = head_differences(k["outputs"], raw, scales)
    problems = []
    for head, want in k["outputs"].items():
        if head not in raw:
            problems.append(f"attribute model has no {head!r} head")
            continue
        diff = float(np.max(np.abs(raw[head] - np.asarray(want, np.float32))))
        floor = head_floor(head, scales.get(head, 0.0), want)
        atol = max(float(k["atol"].get(head, 0.0)), floor)
        if not diff <= atol:
            problems.append(f"{head} head differs by {diff:.4f} (tolerance {atol:.4f})")
        elif scales.get(head, 0.0) > 0 and not means[f"{head}_mean"] <= head_mean_steps(head):
            problems.append(f"{head} head differs by {means[f'{head}_mean']:.2f} steps on "
                            f"average (tolerance {head_mean_steps(head):g})")
    return problems


def check_kernels(models_dir: Path, kat: dict,
                  kernel_sets=("auto", "builtin", "reference")) -> dict[str, list[str]]:
    """``check`` under each of ``kernel_sets`` (``device.runtime.KERNELS``) this runtime can
    select: what disagreed, by kernel set (empty lists: the recorded answers hold whichever
    kernels a kiosk ends up with, as far as this machine can tell)."""
    from device.runtime import available_kernels, use_kernels

    out = {}
    for k in (k for k in kernel_sets if k in available_kernels()):
        with use_kernels(k):
            out[k] = check(models_dir, kat)
    return out


def self_test(models_dir: Path, detector_model=None, analyzer: Analyzer | None = None
              ) -> list[str]:
    """Check an installed model set: its recorded known-answer test, or a smoke test without one.

    ``detector_model`` and ``analyzer``: the set's models already loaded (see ``check``).
    Returns what failed (empty: the models work). Never raises for a model problem.
    """
    try:
        kat = load_manifest(models_dir).get("kat")
        if kat:
            return check(models_dir, kat, detector_model, analyzer)
        return _smoke(models_dir, detector_model, analyzer)
    except (ModelError, ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        return [f"{type(exc).__name__}: {exc}"]


def _smoke(models_dir: Path, detector_model=None, analyzer: Analyzer | None = None) -> list[str]:
    """Models without a recorded answer (factory set): they load and give finite outputs."""
    det, an = _models(models_dir, detector_model, analyzer)
    if not np.all(np.isfinite(_fingerprint(det, drawn_face()))):
        return ["detector gives non-finite scores"]
    det.detect(drawn_face())
    if an is not None:
        face = drawn_face(an.size)
        raw = an.raw([cv2.cvtColor(face, cv2.COLOR_BGR2GRAY) if an.channels == 1 else face])
        if not all(np.all(np.isfinite(v)) for v in raw.values()):
            return ["attribute model gives non-finite outputs"]
    return []
