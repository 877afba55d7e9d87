"""Turning YuNet's raw head maps into boxes, keypoints and scores (pure numpy).

YuNet (libfacedetection) is anchor-free: every cell of its three feature maps (strides 8, 16,
32) is one prior at the cell's top-left corner, ``(col * stride, row * stride)`` in input
pixels (mmdetection's ``MlvlPointGenerator`` with offset 0). Per prior and stride the model
gives a class logit, an objectness logit, a box (centre offset and log size, in strides) and
five landmarks (offsets in strides): the subject's right eye, left eye, nose tip, right and left
mouth corner, as libfacedetection and OpenCV's ``FaceDetectorYN`` decode them.

The score is ``sqrt(sigmoid(cls) * sigmoid(obj))``, computed in float64 like BlazeFace's: the
geometric mean OpenCV's ``FaceDetectorYN`` reports, so its thresholds mean the same here.

Rows come out in the layout the rest of the appliance uses for every detector (``decode.py``):
``(x1, y1, x2, y2)`` and six keypoints in ``device.types.KEYPOINT_NAMES`` order, normalised to
the input. YuNet has no ear keypoints; ``six_keypoints`` derives the mouth centre and stands
the ears in at the eye positions (``device.tracking.yaw_offset`` then measures the nose's offset
along the eye line), so every consumer of a ``Detection`` works unchanged.
"""

from __future__ import annotations

import numpy as np

STRIDES = (8, 16, 32)
HEADS = ("cls", "obj", "bbox", "kps")
CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
NUM_LANDMARKS = 5


def output_names() -> list[str]:
    """The twelve head outputs, ``cls_8`` ... ``kps_32``, in decoding order."""
    return [f"{h}_{s}" for h in HEADS for s in STRIDES]


def priors(width: int, height: int) -> np.ndarray:
    """Every prior of a ``width`` x ``height`` input: N x 3 float32 (x, y, stride), input
    pixels, stride 8 first, each stride's grid row by row (the order of the flattened heads)."""
    out = []
    for s in STRIDES:
        rows, cols = height // s, width // s
        y, x = np.mgrid[0:rows, 0:cols]
        out.append(np.stack([x.ravel() * s, y.ravel() * s, np.full(rows * cols, s)], axis=1))
    return np.concatenate(out).astype(np.float32)


def scores(cls_logits: np.ndarray, obj_logits: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """``sqrt(sigmoid(cls) * sigmoid(obj))`` per prior, in float64, rounded to float32 (the same
    bits on every CPU; see ``decode.sigmoid_scores``)."""
    c = np.clip(np.asarray(cls_logits, np.float64).reshape(-1), -clip, clip)
    o = np.clip(np.asarray(obj_logits, np.float64).reshape(-1), -clip, clip)
    return np.sqrt(1.0 / ((1.0 + np.exp(-c)) * (1.0 + np.exp(-o)))).astype(np.float32)


def score_floor(threshold: float) -> float:
    """A logit below which neither head can let a prior reach ``threshold``: each sigmoid is at
    most 1, so both must be at least ``threshold ** 2``."""
    p = min(max(threshold * threshold, 1e-12), 1 - 1e-7)
    return float(np.log(p / (1 - p))) - 1e-4


def decode(bbox: np.ndarray, kps: np.ndarray, prior: np.ndarray, width: int,
           height: int) -> np.ndarray:
    """Boxes and the five landmarks of the given priors.

    Args:
        bbox: N x 4 (dx, dy, log w, log h) in strides.
        kps: N x 10 landmark (x, y) offsets in strides.
        prior: N x 3 (x, y, stride) from ``priors``.
        width, height: the model input, pixels.
    Returns:
        N x 14 float32: (x1, y1, x2, y2, then 5 landmark x, y), normalised to the input.
    """
    bbox = np.asarray(bbox, np.float32).reshape(-1, 4)
    kps = np.asarray(kps, np.float32).reshape(-1, 2 * NUM_LANDMARKS)
    xy, s = prior[:, 0:2], prior[:, 2:3]
    centre = bbox[:, 0:2] * s + xy
    half = np.exp(bbox[:, 2:4].astype(np.float64)).astype(np.float32) * s / 2
    norm = np.array([width, height], np.float32)
    out = np.empty((len(bbox), 4 + 2 * NUM_LANDMARKS), np.float32)
    out[:, 0:2] = (centre - half) / norm
    out[:, 2:4] = (centre + half) / norm
    out[:, 4:] = ((kps.reshape(-1, NUM_LANDMARKS, 2) * s[:, None] + xy[:, None])
                  / norm).reshape(-1, 2 * NUM_LANDMARKS)
    return out


# YuNet's eyes relative to BlazeFace's on the same face, in BlazeFace's eye frame: YuNet's eye
# midpoint lies ``along`` and ``down`` times the eye-to-eye vector and its perpendicular (down the
# face) from BlazeFace's, its eye distance is ``scale`` times BlazeFace's, and BlazeFace's eye
# line is YuNet's turned by ``angle`` degrees. Medians over 1,492 UTKFace training chips
# (MediaPipe's float full-range model at 192x192, which made the training crops, against the
# shipped YuNet int8; the validation split not used); models/README.md, "Eyes". ``cos`` and
# ``sin`` are the angle's, written out: a library's cosine may differ in its last bit between
# CPUs, these constants do not.
EYE_MAP = {"along": -0.0257, "down": -0.0476, "scale": 0.9714, "angle": 1.2412,
           "cos": 0.9997653658137305, "sin": 0.021661332353704092}


def blazeface_eyes(right: np.ndarray, left: np.ndarray, eye_map: dict | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """YuNet's eye landmarks (N x 2 each) moved to where BlazeFace puts the eyes (``EYE_MAP``
    inverted: BlazeFace's eye vector is YuNet's turned by ``angle`` and divided by ``scale``, its
    midpoint YuNet's less ``along`` and ``down`` of that vector).

    Args:
        right, left: the subject's right and left eye, any consistent units.
        eye_map: ``EYE_MAP``'s keys; None uses ``EYE_MAP``.
    Returns:
        (right, left) N x 2 float32, in the same units.
    """
    m = EYE_MAP if eye_map is None else eye_map
    right = np.asarray(right, np.float64).reshape(-1, 2)
    left = np.asarray(left, np.float64).reshape(-1, 2)
    u = left - right
    mid = (left + right) / 2
    if "cos" in m:
        c, s = m["cos"], m["sin"]
    else:
        t = np.radians(m["angle"])
        c, s = np.cos(t), np.sin(t)
    ub = np.stack([c * u[:, 0] - s * u[:, 1], s * u[:, 0] + c * u[:, 1]], axis=1) / m["scale"]
    nb = np.stack([-ub[:, 1], ub[:, 0]], axis=1)  # perpendicular, down the face (y grows down)
    midb = mid - m["along"] * ub - m["down"] * nb
    return (midb - ub / 2).astype(np.float32), (midb + ub / 2).astype(np.float32)


def six_keypoints(rows: np.ndarray, width: int, height: int,
                  eye_map: dict | None = None) -> np.ndarray:
    """YuNet rows (4 box values + 5 landmarks, normalised to a ``width`` x ``height`` input) in
    the appliance's six-keypoint layout.

    Keypoints: right eye, left eye (moved to BlazeFace's convention by ``blazeface_eyes``, in
    input pixels: the alignment template and the attribute model's training crops were made
    with BlazeFace's eyes), nose tip, mouth centre (the mean of the two corners), and for the
    two ear tragions, which YuNet does not locate, the right and left eye again.
    Returns N x 16 float32, normalised like ``rows``.
    """
    rows = np.asarray(rows, np.float32).reshape(-1, 4 + 2 * NUM_LANDMARKS)
    lm = rows[:, 4:].reshape(-1, NUM_LANDMARKS, 2)
    size = np.array([width, height], np.float32)
    right, left = blazeface_eyes(lm[:, 0] * size, lm[:, 1] * size, eye_map)
    right, left = right / size, left / size
    eyes = np.stack([right, left], axis=1)
    six = np.concatenate([eyes, lm[:, 2:3], (lm[:, 3:4] + lm[:, 4:5]) / 2, eyes], axis=1)
    return np.concatenate([rows[:, :4], six.reshape(-1, 12)], axis=1)
