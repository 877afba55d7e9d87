"""How far the detector's eye keypoints move by themselves, and how far the attribute answers move
with them.

    python -m tools.keypoint_noise SOURCE... [--frames N] [--kernel-every N] [--movement-every N]
                                   [--faces N] [--draws N] [--sigma SX,SY] [--seed N]
                                   [--min-eye-px PX] [--models DIR] [--analyzer-models DIR]
                                   [--json OUT]

SOURCE: pictures, videos, or folders of them (the sample footage); the self-test picture is always
added to the pictures. Three measurements, each per eye and as a fraction of that face's eye
distance (eyes as the appliance aligns on them: ``Detection.right_eye`` / ``left_eye``):

* **Kernel noise**: the same pictures (the stills, and every ``--kernel-every``-th video frame)
  through the shipped detector under XNNPACK and under TFLite's own kernels
  (``device.runtime.KERNELS``: ``auto`` and ``builtin``); faces paired by IoU.
* **Frame noise**: the first ``--frames`` frames of each video, faces followed from frame to
  frame by IoU; for frames t-1, t, t+1 of one face the residual ``eye_t - (eye_t-1 + eye_t+1)/2``
  is the jitter that is not (steady) motion. With independent noise of standard deviation s in
  every frame the residual's is ``s * sqrt(1.5)``: the per-frame sigma reported is the
  residual's divided by that. The residuals' lag-one correlation along a face says how far that
  holds (-2/3 for independent noise, near +1 for motion the residual leaves over).
* **Output movement**: every face of the stills and of every ``--movement-every``-th video frame
  (at most ``--faces``, a seeded choice) is aligned again ``--draws`` times with both eyes moved
  by seeded Gaussian noise and analyzed. The noise per axis is the face's eye distance times
  ``--sigma``, else, in two columns, the per-frame sigma (standard deviation, which the few wild
  keypoints inflate) and the robust one (1.4826 x the median absolute deviation: the bulk); the
  same draws, scaled, serve both. The table gives |dP(female)|, the largest |d emotion
  probability| and |d age| against the unmoved face's answer, and how often the gender, dominant
  emotion or age group changed.

Faces whose eye distance is under ``--min-eye-px`` (the appliance's ``min_face_px``, 8 px) are
left out, as the appliance does not analyze them. ``--models`` names the detector;
``--analyzer-models`` the attribute model (default: the same folder), so two attribute models
can be compared on the same faces and the same draws. Everything runs on one interpreter thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

# detections of one face in two kernel sets, or in consecutive frames, overlap at least this much
MIN_IOU = 0.5
MIN_EYE_PX = 8.0  # VisionPipeline's default min_face_px
# residual = n_t - (n_t-1 + n_t+1) / 2 of independent per-frame noise: variance 1 + 1/4 + 1/4
RESIDUAL_GAIN = float(np.sqrt(1.5))
# eye distance bands (pixels) for the per-size breakdown
EYE_BANDS = ((8.0, 16.0), (16.0, 32.0), (32.0, float("inf")))
KERNEL_PAIR = ("auto", "builtin")  # XNNPACK, TFLite's own optimised kernels


# ---- pure functions ------------------------------------------------------------------------

def eyes_of(det) -> np.ndarray:
    """A detection's eyes as a 2 x 2 array: (right eye, left eye), each (x, y) in frame pixels."""
    return np.array([det.right_eye, det.left_eye], dtype=np.float64)


def eye_distance(eyes) -> np.ndarray:
    """Distance between the two eyes of ``eyes`` (... x 2 x 2), in pixels."""
    e = np.asarray(eyes, dtype=np.float64)
    return np.hypot(*np.moveaxis(e[..., 1, :] - e[..., 0, :], -1, 0))


def match(boxes_a, boxes_b, min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes of ``boxes_a`` and ``boxes_b`` that are one face: highest IoU first,
    each box at most once, IoU at least ``min_iou``."""
    from device.tracking import greedy_assign, iou

    cost = np.full((len(boxes_a), len(boxes_b)), np.inf)
    for i, a in enumerate(boxes_a):
        for j, b in enumerate(boxes_b):
            overlap = iou(a, b)
            if overlap >= min_iou:
                cost[i, j] = 1.0 - overlap
    return greedy_assign(cost)


def residuals(prev, cur, nxt) -> np.ndarray:
    """The part of ``cur`` that steady motion from ``prev`` to ``nxt`` does not explain:
    ``cur - (prev + nxt) / 2`` (arrays of eyes, any matching shape)."""
    return np.asarray(cur, np.float64) - (np.asarray(prev, np.float64)
                                          + np.asarray(nxt, np.float64)) / 2


def triplets(frames: list[list], min_iou: float = MIN_IOU) -> Iterator[tuple]:
    """(previous, current, next) detections of one face in three consecutive frames.

    Args:
        frames: per frame, its detections (anything with ``box``).
    Yields:
        three detections, the current one from every frame but the first and the last that has
        an IoU partner in both neighbours.
    """
    for t in range(1, len(frames) - 1):
        cur = frames[t]
        boxes = [d.box for d in cur]
        back = dict(match(boxes, [d.box for d in frames[t - 1]], min_iou))
        ahead = dict(match(boxes, [d.box for d in frames[t + 1]], min_iou))
        for i in sorted(back.keys() & ahead.keys()):
            yield frames[t - 1][back[i]], cur[i], frames[t + 1][ahead[i]]


def consecutive(followed: list[tuple]) -> list[tuple[int, int]]:
    """Pairs (a, b) of indices into ``followed`` ((previous, current, next) detections, as
    ``triplets`` yields them) where b is a's face one frame later: b's previous detection is
    a's current one and b's current is a's next."""
    by_middle = {id(cur): k for k, (_, cur, _) in enumerate(followed)}
    pairs = []
    for a, (_, cur, nxt) in enumerate(followed):
        b = by_middle.get(id(nxt))
        if b is not None and followed[b][0] is cur:
            pairs.append((a, b))
    return pairs


def lag_one_correlation(first, second) -> list[float] | None:
    """Per axis (x, y), the correlation between a face's relative residual and the same face's
    one frame later (N x 2 x 2 each; both eyes pooled). Independent noise in every frame gives
    -2/3; smooth motion that the residual leaves over gives values near +1."""
    a = np.asarray(first, np.float64).reshape(-1, 2, 2)
    b = np.asarray(second, np.float64).reshape(-1, 2, 2)
    if len(a) < 3:  # faces
        return None
    a, b = a.reshape(-1, 2), b.reshape(-1, 2)
    return [float(np.corrcoef(a[:, k], b[:, k])[0, 1]) for k in range(2)]


def _quantiles(values: np.ndarray) -> dict:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return {"median": None, "p95": None, "max": None}
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


def noise_summary(delta_px, eye_px) -> dict:
    """The distribution of per-eye displacements.

    Args:
        delta_px: N x 2 x 2 displacements (face, eye, axis) in pixels.
        eye_px: the N faces' eye distances in pixels.
    Returns:
        ``faces``, ``eyes``; ``px`` and ``rel`` (fraction of the eye distance): median, p95 and
        max of the displacement's length; per axis (x, y) of the relative displacement: ``mean``,
        ``sigma`` (standard deviation), ``robust_sigma`` (1.4826 x median absolute deviation,
        which outliers do not inflate); ``eye_correlation``: per axis, the correlation between a
        face's right-eye and left-eye displacement.
    """
    d = np.asarray(delta_px, np.float64).reshape(-1, 2, 2)
    ed = np.asarray(eye_px, np.float64).reshape(-1)
    rel = d / ed[:, None, None]
    flat_px, flat_rel = d.reshape(-1, 2), rel.reshape(-1, 2)
    out = {"faces": int(len(d)), "eyes": int(len(flat_px)),
           "px": _quantiles(np.hypot(*flat_px.T)), "rel": _quantiles(np.hypot(*flat_rel.T))}
    if len(d) < 2:
        return {**out, "mean": None, "sigma": None, "robust_sigma": None, "eye_correlation": None}
    med = np.median(flat_rel, axis=0)
    corr = [float(np.corrcoef(rel[:, 0, k], rel[:, 1, k])[0, 1])
            if rel[:, 0, k].std() > 0 and rel[:, 1, k].std() > 0 else None for k in range(2)]
    return {**out, "mean": flat_rel.mean(axis=0).tolist(), "sigma": flat_rel.std(axis=0).tolist(),
            "robust_sigma": (1.4826 * np.median(np.abs(flat_rel - med), axis=0)).tolist(),
            "eye_correlation": corr}


def by_eye_band(delta_px, eye_px, bands=EYE_BANDS) -> dict:
    """``noise_summary`` per band of eye distance (keys like ``"8-16"``, ``"32+"``)."""
    d = np.asarray(delta_px, np.float64).reshape(-1, 2, 2)
    ed = np.asarray(eye_px, np.float64).reshape(-1)
    out = {}
    for lo, hi in bands:
        keep = (ed >= lo) & (ed < hi)
        name = f"{lo:g}+" if not np.isfinite(hi) else f"{lo:g}-{hi:g}"
        out[name] = noise_summary(d[keep], ed[keep])
    return out


def per_frame_sigma(residual_sigma) -> list[float]:
    """The per-frame keypoint sigma behind a residual's (independent noise in every frame)."""
    return (np.asarray(residual_sigma, np.float64) / RESIDUAL_GAIN).tolist()


def moved_eyes(eyes, sigma_rel, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` copies of ``eyes`` (2 x 2) with each eye moved by Gaussian noise of per-axis
    standard deviation ``sigma_rel`` (x, y) times the face's eye distance: draws x 2 x 2."""
    e = np.asarray(eyes, np.float64)
    scale = np.asarray(sigma_rel, np.float64) * float(eye_distance(e))
    return e + rng.normal(size=(draws, 2, 2)) * scale


def female_prob(attrs) -> float:
    """P(female) of one ``FaceAttributes``."""
    return float(attrs.gender_prob if attrs.gender == "female" else 1.0 - attrs.gender_prob)


def answer_deltas(base, moved: Iterable) -> dict[str, np.ndarray]:
    """How far each answer of ``moved`` (``FaceAttributes``) is from ``base``'s.

    Returns per draw: ``female`` |dP(female)|, ``emotion`` the largest |d probability| over the
    emotions, ``age`` |d age| in years, and 0/1 flags ``gender_changed``, ``emotion_changed``,
    ``age_group_changed``.
    """
    moved = list(moved)
    labels = list(base.emotions)
    e0 = np.array([base.emotions[k] for k in labels])
    e = np.array([[m.emotions[k] for k in labels] for m in moved]).reshape(len(moved), len(labels))
    return {
        "female": np.abs(np.array([female_prob(m) for m in moved]) - female_prob(base)),
        "emotion": np.abs(e - e0).max(axis=1) if len(moved) else np.zeros(0),
        "age": np.abs(np.array([m.age for m in moved], np.float64) - base.age),
        "gender_changed": np.array([m.gender != base.gender for m in moved], np.float64),
        "emotion_changed": np.array([m.emotion != base.emotion for m in moved], np.float64),
        "age_group_changed": np.array([m.age_group != base.age_group for m in moved], np.float64),
    }


def movement_summary(deltas: list[dict]) -> dict:
    """Median, p95 and max of |dP(female)|, the largest |d emotion| and |d age| over every draw of
    every face, and the share of draws whose gender, dominant emotion or age group changed."""
    keys = ("female", "emotion", "age")
    flags = ("gender_changed", "emotion_changed", "age_group_changed")
    cat = {k: np.concatenate([d[k] for d in deltas]) if deltas else np.zeros(0)
           for k in keys + flags}
    out = {"faces": len(deltas), "draws": int(cat["female"].size)}
    out.update({("age_years" if k == "age" else k): _quantiles(cat[k]) for k in keys})
    out["changed"] = {k.removesuffix("_changed"): float(cat[k].mean()) if cat[k].size else None
                      for k in flags}
    return out


def choose(n: int, limit: int | None, seed: int) -> list[int]:
    """Indices of at most ``limit`` of ``n`` items: all of them, or a seeded choice in order."""
    if limit is None or n <= limit:
        return list(range(n))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n, limit, replace=False))


# ---- measurements with the models ----------------------------------------------------------

def detectors(models_dir: Path, kernel_sets=KERNEL_PAIR) -> dict:
    """The models' detector once per kernel set, one thread each."""
    from device.detector import FaceDetector
    from device.manifest import load_manifest, model_path
    from device.runtime import TFLiteModel

    path = model_path(models_dir, load_manifest(models_dir)["detector"])
    return {k: FaceDetector(model=TFLiteModel(path, threads=1, kernels=k)) for k in kernel_sets}


def _big_enough(dets, min_eye_px: float) -> list:
    return [d for d in dets if float(eye_distance(eyes_of(d))) >= min_eye_px]


def kernel_deltas(dets: dict, pictures: Iterable[np.ndarray], min_eye_px: float) -> tuple:
    """Eye displacement from the first kernel set's detections to the second's.

    Returns:
        (N x 2 x 2 displacements in pixels, the N faces' eye distances under the first set,
        the number of faces found under one set only).
    """
    ref_k, other_k = list(dets)[:2]
    deltas, eye_px, unpaired = [], [], 0
    for image in pictures:
        a = _big_enough(dets[ref_k].detect(image), min_eye_px)
        b = _big_enough(dets[other_k].detect(image), min_eye_px)
        pairs = match([d.box for d in a], [d.box for d in b])
        unpaired += len(a) + len(b) - 2 * len(pairs)
        for i, j in pairs:
            deltas.append(eyes_of(b[j]) - eyes_of(a[i]))
            eye_px.append(float(eye_distance(eyes_of(a[i]))))
    return np.reshape(deltas, (-1, 2, 2)), np.asarray(eye_px), unpaired


def kernel_noise(dets: dict, stills: list, frames: list, min_eye_px: float) -> dict:
    """``noise_summary`` of the kernel displacements on the stills, and on the stills and the
    video frames together (``all``)."""
    d1, e1, u1 = kernel_deltas(dets, stills, min_eye_px)
    d2, e2, u2 = kernel_deltas(dets, frames, min_eye_px)
    return {"kernels": list(dets)[:2],
            "stills": {**noise_summary(d1, e1), "pictures": len(stills), "unpaired": u1},
            "all": {**noise_summary(np.concatenate([d1, d2]), np.concatenate([e1, e2])),
                    "pictures": len(stills) + len(frames), "unpaired": u1 + u2}}


def frame_noise(frames_dets: list[list], min_eye_px: float) -> dict:
    """Residuals (``residual_px``, N x 2 x 2) and eye distances (``eye_px``) of every face
    followed over three consecutive frames whose middle detection is at least ``min_eye_px``
    wide at the eyes; ``lag_first`` / ``lag_second``: the relative residuals of the same face
    one frame apart (for ``lag_one_correlation``)."""
    followed = [t for t in triplets(frames_dets)
                if float(eye_distance(eyes_of(t[1]))) >= min_eye_px]
    res = np.reshape([residuals(*(eyes_of(d) for d in t)) for t in followed], (-1, 2, 2))
    eye_px = np.array([float(eye_distance(eyes_of(t[1]))) for t in followed])
    rel = res / eye_px[:, None, None] if len(res) else res
    pairs = consecutive(followed)
    return {"residual_px": res, "eye_px": eye_px, "lag_first": rel[[a for a, _ in pairs]],
            "lag_second": rel[[b for _, b in pairs]]}


def movement(analyzer, faces: list[tuple[np.ndarray, np.ndarray]], sigma_rel, draws: int,
             seed: int) -> list[dict]:
    """``answer_deltas`` for each (frame, eyes) face: its crop against ``draws`` crops aligned on
    moved eyes (one seeded generator for all faces, in order)."""
    from device.align import align_face

    rng = np.random.default_rng(seed)
    gray = analyzer.channels == 1
    out = []
    for image, eyes in faces:
        crops = [align_face(image, e[0], e[1], analyzer.size, gray)
                 for e in (eyes, *moved_eyes(eyes, sigma_rel, draws, rng))]
        attrs = analyzer.analyze(crops)
        out.append(answer_deltas(attrs[0], attrs[1:]))
    return out


# ---- command line --------------------------------------------------------------------------

def _sources(paths) -> tuple[list[Path], list[Path]]:
    """(pictures, videos) among files and folders; the self-test picture comes first."""
    from device.pipeline import SELFTEST_DIR
    from tools.convert.frames import VIDEO_SUFFIXES, is_image, list_sources

    spec = json.loads((SELFTEST_DIR / "selftest.json").read_text())
    files = list_sources(paths)
    pictures = [SELFTEST_DIR / spec["image"]] + [f for f in files if is_image(f)]
    return pictures, [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise OSError(f"cannot read picture {path}")
    return image


def _faces(dets, image, min_eye_px) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(image, eyes_of(d)) for d in _big_enough(dets, min_eye_px)]


def noise_levels(frame: dict, given=None) -> dict[str, list[float]]:
    """The eye noise levels the answers are measured under: ``given`` (x, y) alone, else the
    frame noise's per-frame sigma and its robust counterpart."""
    if given is not None:
        return {"given": [float(v) for v in given]}
    return {k: frame[f"per_frame_{k}"] for k in ("sigma", "robust_sigma")
            if frame[f"per_frame_{k}"]}


def frame_summary(parts: dict[str, dict]) -> dict:
    """``noise_summary`` of every clip's ``frame_noise`` together, per eye-distance band, per
    clip, with the lag-one correlation and the per-frame sigmas."""
    def joined(key, shape):
        arrays = [p[key] for p in parts.values()]
        return np.concatenate(arrays) if arrays else np.zeros(shape)

    res, ed = joined("residual_px", (0, 2, 2)), joined("eye_px", (0,))
    out = {**noise_summary(res, ed),
           "lag_one_correlation": lag_one_correlation(joined("lag_first", (0, 2, 2)),
                                                      joined("lag_second", (0, 2, 2))),
           "by_eye_px": by_eye_band(res, ed),
           "clips": {name: {**noise_summary(p["residual_px"], p["eye_px"]), "frames": p["frames"],
                            "lag_one_correlation": lag_one_correlation(p["lag_first"],
                                                                       p["lag_second"])}
                     for name, p in parts.items()}}
    for k in ("sigma", "robust_sigma"):
        out[f"per_frame_{k}"] = per_frame_sigma(out[k]) if out[k] else None
    return out


def measure(args) -> dict:
    """Every number of the report (see the module's description)."""
    from device.analyzer import Analyzer
    from device.manifest import load_manifest
    from tools.convert.frames import video_frames

    dets = detectors(args.models)
    det = dets[KERNEL_PAIR[0]]
    pictures, videos = _sources(args.sources)
    stills = [_read(p) for p in pictures]
    faces = [f for image in stills for f in _faces(det.detect(image), image, args.min_eye_px)]
    kernel_frames, parts = [], {}
    for path in videos:
        per_frame = []
        for i, frame in enumerate(video_frames(path, 1, args.frames)):
            per_frame.append(det.detect(frame))
            if i % args.kernel_every == 0:
                kernel_frames.append(frame)
            if i % args.movement_every == 0:
                faces += _faces(per_frame[-1], frame, args.min_eye_px)
        parts[path.name] = {**frame_noise(per_frame, args.min_eye_px), "frames": len(per_frame)}
    frame = frame_summary(parts)
    analyzer = Analyzer(args.analyzer_models, threads=1)
    analyzer.gender_min_age = 0.0  # the model's own P(female), children's faces too
    analyzer.gender_min_prob = 0.5  # and faces it is unsure of
    picked = [faces[i] for i in choose(len(faces), args.faces, args.seed)]
    moved = {name: {**movement_summary(movement(analyzer, picked, sigma, args.draws, args.seed)),
                    "eye_sigma": sigma}
             for name, sigma in noise_levels(frame, args.sigma).items()}
    return {
        "detector": {"models_version": load_manifest(args.models).get("version"),
                     "file": Path(det.model.path).name,
                     "kernels": {k: d.model.cpu_kernels for k, d in dets.items()}},
        "analyzer": {"models_version": analyzer.version, "file": analyzer.name,
                     "sha256": _sha256(analyzer.model.path),
                     "kernels": analyzer.model.cpu_kernels},
        "pictures": [p.name for p in pictures], "videos": [p.name for p in videos],
        "min_eye_px": args.min_eye_px,
        "kernel_noise": kernel_noise(dets, stills, kernel_frames, args.min_eye_px),
        "frame_noise": frame,
        "movement": {"faces_found": len(faces), "draws_per_face": args.draws, "seed": args.seed,
                     "levels": moved}}


def _sha256(path) -> str:
    from device.manifest import sha256_file

    return sha256_file(Path(path))


def _f(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _noise_row(name: str, s: dict) -> str:
    sig = s["sigma"] or (None, None)
    rob = s["robust_sigma"] or (None, None)
    return (f"{name:<24} {s['faces']:>6} {s['eyes']:>6} {_f(s['px']['median'], '.3f'):>7} "
            f"{_f(s['px']['p95'], '.3f'):>7} {_f(s['rel']['median'], '.4f'):>8} "
            f"{_f(s['rel']['p95'], '.4f'):>8} {_f(sig[0], '.4f'):>8} {_f(sig[1], '.4f'):>8} "
            f"{_f(rob[0], '.4f'):>8} {_f(rob[1], '.4f'):>8}")


def _pair(values, spec: str = ".4f") -> str:
    return "-" if not values else ", ".join(_f(v, spec) for v in values)


def noise_table(r: dict) -> list[str]:
    """The kernel and frame noise, one row per group of faces."""
    k, f = r["kernel_noise"], r["frame_noise"]
    lines = [
        f"eye keypoint noise per eye: px, and rel = fraction of the eye distance (faces with eyes "
        f"{r['min_eye_px']:g} px or more apart); sigma and robust sigma (1.4826 MAD) per axis",
        f"{'':<24} {'faces':>6} {'eyes':>6} {'px p50':>7} {'px p95':>7} {'rel p50':>8} "
        f"{'rel p95':>8} {'sigma x':>8} {'sigma y':>8} {'robust x':>8} {'robust y':>8}",
        _noise_row("kernels: stills", k["stills"]),
        _noise_row("kernels: + video frames", k["all"]),
        _noise_row("frame residual", f),
        *[_noise_row(f"  {name[:22]}", c) for name, c in f["clips"].items()],
        *[_noise_row(f"  eyes {band} px", s) for band, s in f["by_eye_px"].items()],
        f"kernels: {k['kernels'][0]} against {k['kernels'][1]} on {k['stills']['pictures']} stills "
        f"and {k['all']['pictures'] - k['stills']['pictures']} video frames; "
        f"{k['all']['unpaired']} faces found under one kernel set only",
        "frame residual: " + ", ".join(f"{name} {c['frames']} frames"
                                       for name, c in f["clips"].items())
        + f"; lag-one correlation x, y {_pair(f['lag_one_correlation'], '.2f')} "
          "(independent noise in every frame: -0.67)",
    ]
    if f["per_frame_sigma"]:
        lines.append(f"per-frame eye noise (residual / sqrt 1.5), x, y: sigma "
                     f"{_pair(f['per_frame_sigma'])}, robust sigma "
                     f"{_pair(f['per_frame_robust_sigma'])} of the eye distance")
    return lines


def movement_table(r: dict) -> list[str]:
    """The answers' movement, one column pair per noise level."""
    m = r["movement"]
    levels = m["levels"]
    if not levels:
        return ["no eye noise measured: the answers' movement was not measured"]
    some = next(iter(levels.values()))
    lines = [f"attribute answers with both eyes moved: {some['faces']} faces of "
             f"{m['faces_found']}, {m['draws_per_face']} draws each, against the unmoved answer"]
    lines.append(f"{'eye noise x, y':<24}" + "".join(
        f" {name.replace('_', ' ') + ' ' + _pair(v['eye_sigma'], '.3f'):>22}"
        for name, v in levels.items()))
    lines.append(f"{'':<24}" + "".join(f" {'p50':>10} {'p95':>11}" for _ in levels))
    for key, name in (("female", "|dP(female)|"), ("emotion", "max |d emotion prob|"),
                      ("age_years", "|d age| (years)")):
        lines.append(f"{name:<24}" + "".join(
            f" {_f(v[key]['median'], '.4f'):>10} {_f(v[key]['p95'], '.4f'):>11}"
            for v in levels.values()))
    for key, name in (("gender", "gender changed"), ("emotion", "dominant emotion changed"),
                      ("age_group", "age group changed")):
        shares = [v["changed"][key] for v in levels.values()]
        lines.append(f"{name:<24}" + "".join(
            f" {_f(None if c is None else 100 * c, '.1f'):>20} %" for c in shares))
    return lines


def report(r: dict) -> str:
    """The measurement as a readable table."""
    head = (f"detector: models {r['detector']['models_version']} {r['detector']['file']}; "
            f"attribute model: models {r['analyzer']['models_version']} {r['analyzer']['file']} "
            f"(sha256 {r['analyzer']['sha256'][:12]})")
    return "\n".join([head, "", *noise_table(r), "", *movement_table(r)])


def _sigma(text: str) -> list[float]:
    parts = [float(x) for x in text.split(",")]
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 0:
        raise argparse.ArgumentTypeError("one or two non-negative numbers (x,y)")
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.keypoint_noise",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path,
                        help="pictures, videos or folders of them (the sample footage)")
    parser.add_argument("--frames", type=int, default=300,
                        help="the first N frames of each video, every one (default 300: all of "
                             "both sample clips)")
    parser.add_argument("--kernel-every", type=int, default=10,
                        help="every N-th of those frames also goes through both kernel sets")
    parser.add_argument("--movement-every", type=int, default=10,
                        help="the faces of every N-th of those frames are moved and analyzed")
    parser.add_argument("--faces", type=int, default=300,
                        help="at most this many faces for the output movement (seeded choice)")
    parser.add_argument("--draws", type=int, default=20, help="moved crops per face")
    parser.add_argument("--sigma", type=_sigma, default=None, metavar="SX[,SY]",
                        help="eye noise per axis as a fraction of the eye distance (default: "
                             "the measured per-frame sigma)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-eye-px", type=float, default=MIN_EYE_PX,
                        help="leave out faces whose eyes are closer than this (pixels)")
    parser.add_argument("--models", type=Path, default=None,
                        help="models folder whose detector finds the faces (default: installed)")
    parser.add_argument("--analyzer-models", type=Path, default=None,
                        help="models folder whose attribute model is measured (default: --models)")
    parser.add_argument("--json", type=Path, help="write every number here as JSON")
    args = parser.parse_args(argv)
    if min(args.frames, args.kernel_every, args.movement_every, args.faces, args.draws) < 1:
        parser.error("--frames, --kernel-every, --movement-every, --faces and --draws must be "
                     "at least 1")
    if args.models is None:
        from device.models import MODELS_DIR

        args.models = MODELS_DIR
    args.analyzer_models = args.analyzer_models or args.models
    started = time.monotonic()
    result = measure(args)
    print(report(result))
    if args.json:
        from tools.locations import shown

        given = sys.argv[1:] if argv is None else list(argv)
        record = {"command": " ".join(["python -m tools.keypoint_noise",
                                       *map(shown, given)]),
                  "date": time.strftime("%Y-%m-%d"),
                  "machine": f"{platform.machine()}, one interpreter thread",
                  "seconds": round(time.monotonic() - started, 1), **result}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
