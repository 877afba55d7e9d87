"""Weighted non-maximum suppression (MediaPipe's ``WEIGHTED`` algorithm, BlazeFace's tie breaker).

Instead of dropping overlapping boxes, each cluster (the best box and every box overlapping it by
more than the threshold) is replaced by the score-weighted mean of its boxes and keypoints; the
cluster keeps its best score. This steadies boxes from frame to frame.
"""

from __future__ import annotations

import numpy as np


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with each row of ``boxes``."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = (np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
             * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping detections.

    Args:
        boxes: N x K rows whose first 4 values are (x1, y1, x2, y2); any further values
            (keypoints) are averaged with the same weights.
        scores: N scores.
        iou_threshold: boxes overlapping the cluster's best box by MORE than this join it.
    Returns:
        (M x K merged rows, M scores), best first.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    out_rows, out_scores = [], []
    while order.size:
        best = order[0]
        overlap = iou(boxes[best, :4], boxes[order, :4]) > iou_threshold
        overlap[0] = True
        members = order[overlap]
        w = scores[members]
        out_rows.append((boxes[members] * w[:, None]).sum(axis=0) / w.sum())
        out_scores.append(scores[best])
        order = order[~overlap]
    if not out_rows:
        width = boxes.shape[1] if boxes.ndim == 2 else 4
        return np.zeros((0, width), np.float32), np.zeros(0, np.float32)
    return np.asarray(out_rows, np.float32), np.asarray(out_scores, np.float32)
