"""Known-answer tests: inputs and the outputs the models gave when the bundle was built.

A bundle carries a small picture for the detector (with the detections and a fingerprint of raw
scores it produced) and a few aligned faces for the attribute model (with its raw head outputs).
The device runs the same inputs through its own runtime (``FaceDetector``, ``Analyzer``) before it
switches to new models, and again at boot. Pictures travel as base64 PNG inside the manifest, so
the signature covers them. They are made here, deterministically: scikit-image's public-domain
astronaut portrait when it is installed, drawn faces otherwise.
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

FINGERPRINT = 16  # raw detector scores recorded
BOX_PX = 3.0  # detections may move this much (pixels) between runtimes
SCORE_TOL = 0.05


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
    """The detector's known-answer picture: the astronaut portrait, or a drawn face."""
    try:
        from skimage import data

        img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    except ImportError:
        return drawn_face(max_side)
    scale = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _det_dict(d) -> dict:
    return {"box": [round(float(v), 2) for v in d.box], "score": round(float(d.score), 4),
            "keypoints": np.round(d.keypoints.astype(float), 2).tolist()}


def _score_output(det: FaceDetector) -> int:
    """Index of the detector's score output (last axis 1; the regressors have 16)."""
    return next(i for i, s in enumerate(det.model.outputs) if s.shape[-1] == 1)


def _fingerprint(det: FaceDetector, img: np.ndarray) -> np.ndarray:
    """All raw score logits of the detector for ``img`` stretched to its input (one per anchor)."""
    _, h, w, _ = det.model.inputs[0].shape
    rgb = cv2.cvtColor(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    outs = det.model.run((rgb.astype(np.float32)[None] - 127.5) / 127.5)
    return outs[_score_output(det)].reshape(-1)


def _score_atol(det: FaceDetector) -> float:
    spec = det.model.outputs[_score_output(det)]
    return max(0.05, 3 * spec.scale) if spec.quantized else 0.05


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
    dets = det.detect(picture)
    logits = _fingerprint(det, picture)
    top = np.argsort(-logits)[:FINGERPRINT]
    kat = {"detector": {
        "picture": png_b64(picture), "detections": [_det_dict(d) for d in dets],
        "fingerprint": {"index": top.tolist(),
                        "value": np.round(logits[top].astype(float), 4).tolist(),
                        "atol": round(_score_atol(det), 4)},
        "tolerance": {"box_px": BOX_PX, "score": SCORE_TOL}}}
    if manifest.get("analyzer"):
        an = Analyzer(models_dir)
        faces = faces_for(picture, dets, an.size, an.channels == 1)
        raw = an.raw(faces)
        kat["analyzer"] = {
            "faces": [png_b64(f) for f in faces],
            "outputs": {k: np.round(v.astype(float), 5).tolist() for k, v in raw.items()},
            "atol": {k: round(_head_atol(an, k, v), 5) for k, v in raw.items()}}
    return kat


def _head_atol(an: Analyzer, head: str, values: np.ndarray) -> float:
    spec = an._out[head]
    if spec.quantized:
        return 3 * spec.scale + 1e-4
    return 1e-3 * max(1.0, float(np.abs(values).max()))


def check(models_dir: Path, kat: dict) -> list[str]:
    """Run a recorded known-answer test; returns what disagreed (empty: passed)."""
    manifest = load_manifest(models_dir)
    problems = _check_detector(FaceDetector(model_path(models_dir, manifest["detector"])),
                               kat["detector"])
    if "analyzer" in kat:
        problems += _check_analyzer(Analyzer(models_dir), kat["analyzer"])
    return problems


def _check_detector(det: FaceDetector, k: dict) -> list[str]:
    picture = png_decode(k["picture"])
    fp = k["fingerprint"]
    got = _fingerprint(det, picture)[np.asarray(fp["index"], dtype=int)]
    worst = float(np.max(np.abs(got - np.asarray(fp["value"], np.float32))))
    problems = [] if worst <= fp["atol"] else [
        f"detector raw scores differ by {worst:.3f} (tolerance {fp['atol']})"]
    dets = det.detect(picture)
    want, tol = k["detections"], k["tolerance"]
    if len(dets) != len(want):
        return problems + [f"detector found {len(dets)} faces, expected {len(want)}"]
    for i, (d, w) in enumerate(zip(dets, want)):
        dbox = float(np.max(np.abs(np.asarray(d.box) - np.asarray(w["box"]))))
        if dbox > tol["box_px"] or abs(d.score - w["score"]) > tol["score"]:
            problems.append(f"detection {i} moved {dbox:.1f} px, score {d.score:.3f} "
                            f"vs {w['score']:.3f}")
    return problems


def _check_analyzer(an: Analyzer, k: dict) -> list[str]:
    faces = [png_decode(f, gray=an.channels == 1) for f in k["faces"]]
    raw = an.raw(faces)
    problems = []
    for head, want in k["outputs"].items():
        if head not in raw:
            problems.append(f"attribute model has no {head!r} head")
            continue
        diff = float(np.max(np.abs(raw[head] - np.asarray(want, np.float32))))
        if not diff <= k["atol"][head]:
            problems.append(f"{head} head differs by {diff:.4f} (tolerance {k['atol'][head]})")
    return problems


def self_test(models_dir: Path) -> list[str]:
    """Check an installed model set: its recorded known-answer test, or a smoke test without one.

    Returns what failed (empty: the models work). Never raises for a model problem.
    """
    try:
        kat = load_manifest(models_dir).get("kat")
        return check(models_dir, kat) if kat else _smoke(models_dir)
    except (ModelError, ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        return [f"{type(exc).__name__}: {exc}"]


def _smoke(models_dir: Path) -> list[str]:
    """Models without a recorded answer (factory set): they load and give finite outputs."""
    manifest = load_manifest(models_dir)
    det = FaceDetector(model_path(models_dir, manifest["detector"]))
    if not np.all(np.isfinite(_fingerprint(det, drawn_face()))):
        return ["detector gives non-finite scores"]
    det.detect(drawn_face())
    if manifest.get("analyzer"):
        an = Analyzer(models_dir)
        face = drawn_face(an.size)
        raw = an.raw([cv2.cvtColor(face, cv2.COLOR_BGR2GRAY) if an.channels == 1 else face])
        if not all(np.all(np.isfinite(v)) for v in raw.values()):
            return ["attribute model gives non-finite outputs"]
    return []
