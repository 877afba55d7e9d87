"""Turning data set images into the model's input: the device's own alignment, nothing else.

UTKFace chips and camera frames go through the face detector and ``device.align.align_face``;
FER2013 and CK+ crops are already in the alignment template's framing and are only resized.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.align import align_face

# Median eye positions measured on UTKFace chips (fractions of the side; subject's right eye first).
UTK_RIGHT_EYE = (0.283, 0.298)
UTK_LEFT_EYE = (0.694, 0.287)
# A chip is a face filling the picture; the full-range detector (made for faces 0.5-5 m away) finds
# none in 150 of 150 raw chips and 150 of 150 once the chip sits in a canvas three times its side,
# as a face does in a camera frame. Detection therefore runs on the chip padded by this fraction
# of its side on every edge; alignment then cuts from the chip itself.
CHIP_PAD = 1.0


def crop_to_input(gray: np.ndarray, size: int = 64) -> np.ndarray:
    """A pre-framed face crop (FER 48x48, CK+ 48x48) resized to the model's input, uint8 gray."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    if gray.shape[:2] == (size, size):
        return gray
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)


def best_detection(detector, image_bgr: np.ndarray):
    """The highest-scoring face, or None (no detector, or no face found)."""
    if detector is None:
        return None
    faces = detector.detect(image_bgr)
    return max(faces, key=lambda d: d.score) if faces else None


def detect_eyes_on_chip(detector, chip_bgr: np.ndarray, pad: float = CHIP_PAD):
    """(right eye, left eye) in chip pixels of the best face found on the padded chip, or None."""
    if detector is None:
        return None
    p = int(round(pad * max(chip_bgr.shape[:2])))
    canvas = (cv2.copyMakeBorder(chip_bgr, p, p, p, p, cv2.BORDER_CONSTANT, value=0) if p
              else chip_bgr)
    det = best_detection(detector, canvas)
    if det is None:
        return None
    return det.right_eye - p, det.left_eye - p


def align_utk_chip(image_bgr: np.ndarray, detector=None, size: int = 64) -> tuple[np.ndarray, bool]:
    """Align a UTKFace chip: on the detector's best face, else on the chips' canonical eyes.

    Returns:
        (uint8 gray crop, True when the canonical fallback was used).
    """
    eyes = detect_eyes_on_chip(detector, image_bgr)
    if eyes is not None:
        return align_face(image_bgr, *eyes, size=size), False
    h, w = image_bgr.shape[:2]
    right = (UTK_RIGHT_EYE[0] * w, UTK_RIGHT_EYE[1] * h)
    left = (UTK_LEFT_EYE[0] * w, UTK_LEFT_EYE[1] * h)
    return align_face(image_bgr, right, left, size=size), True
