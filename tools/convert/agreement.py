"""How well two detectors agree: share of one's detections matched by the other's at IoU >= 0.5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.detector.nms import iou


def match_count(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> int:
    """Greedy one-to-one matching of boxes ``a`` to boxes ``b`` (N x 4, M x 4); number matched."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return 0
    m = np.stack([iou(box, b) for box in a])
    matched = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < min_iou:
            return matched
        matched += 1
        m[i, :] = -1
        m[:, j] = -1


@dataclass
class Agreement:
    """Running tally of detections and matches between a reference and a candidate detector."""

    reference: int = 0  # detections by the reference (float) model
    candidate: int = 0  # detections by the candidate (int8) model
    matched: int = 0  # one-to-one pairs at IoU >= min_iou
    frames: int = 0

    def add(self, ref_boxes, cand_boxes, min_iou: float = 0.5) -> None:
        self.frames += 1
        self.reference += len(ref_boxes)
        self.candidate += len(cand_boxes)
        self.matched += match_count(ref_boxes, cand_boxes, min_iou)

    @property
    def recall(self) -> float:
        """Share of reference detections the candidate also found."""
        return self.matched / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        """Share of candidate detections the reference also found."""
        return self.matched / self.candidate if self.candidate else 1.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "float_detections": self.reference,
                "int8_detections": self.candidate, "matched": self.matched,
                "float_matched_by_int8": round(self.recall, 4),
                "int8_matched_by_float": round(self.precision, 4)}
