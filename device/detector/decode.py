"""Turning BlazeFace's raw output tensors into boxes, keypoints and scores (pure numpy).

Mirrors MediaPipe's ``TensorsToDetectionsCalculator`` with BlazeFace's options:
``reverse_output_order`` (raw boxes are x, y, w, h), box offsets scaled by the input size,
no exponential on box size, 6 keypoints of 2 values, sigmoid scores clipped at +-100.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 6


def sigmoid_scores(raw: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """Logits to probabilities, clipping first as MediaPipe does (avoids overflow in exp).

    Computed in float64 and rounded to float32: numpy's exp is vectorised differently on x86 and
    ARM and differs in the last bit for a quarter of the inputs; a last-bit difference in
    float64 almost never survives the rounding to float32, so the scores (the weights of the
    weighted NMS, and through it every keypoint) come out the same on every CPU.
    """
    x = np.clip(np.asarray(raw, dtype=np.float64), -clip, clip)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, scale) -> np.ndarray:
    """Decode regressor rows into corner boxes and keypoints.

    Args:
        raw: N x 16 regressor values (x, y, w, h, then 6 keypoint x, y pairs), input pixels.
        anchors: N x 4 (x_center, y_center, w, h) from ``generate_anchors``.
        scale: the model input (width, height) in pixels, or one number for a square input
            (MediaPipe's x_scale = w_scale and y_scale = h_scale).
    Returns:
        N x 16 float32: (x1, y1, x2, y2, kx0, ky0, ... kx5, ky5), normalised to the input.
    """
    raw = np.asarray(raw, dtype=np.float32).reshape(-1, 4 + 2 * NUM_KEYPOINTS)
    axy, awh = anchors[:, 0:2], anchors[:, 2:4]
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), (2,))
    centre = raw[:, 0:2] / scale * awh + axy
    half = raw[:, 2:4] / scale * awh / 2.0
    kps = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / scale * awh[:, None] + axy[:, None]
    out = np.empty_like(raw)
    out[:, 0:2] = centre - half
    out[:, 2:4] = centre + half
    out[:, 4:] = kps.reshape(-1, 2 * NUM_KEYPOINTS)
    return out


def select(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, scale,
           threshold: float, clip: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode only the anchors scoring at least ``threshold`` (cheap: most anchors are empty).

    Returns:
        (boxes M x 16 as ``decode_boxes`` gives them, scores M).
    """
    scores = sigmoid_scores(np.asarray(raw_scores).reshape(-1), clip)
    keep = np.flatnonzero(scores >= threshold)
    raw_boxes = np.asarray(raw_boxes).reshape(-1, 4 + 2 * NUM_KEYPOINTS)
    return decode_boxes(raw_boxes[keep], anchors[keep], scale), scores[keep]
