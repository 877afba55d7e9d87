"""Face alignment: one function used by training and by the device alike.

A detection's two eye keypoints are mapped by a similarity transform (rotation, uniform scale,
translation) onto fixed positions in a square crop, so the face comes out upright and eye-levelled.

The template matches the framing of FER2013's 48x48 faces, measured with the BlazeFace short-range
detector on 400 random FER2013Train images (373 found): eye midpoint at (0.50, 0.38) of the crop,
eyes 0.39 of the crop width apart. FER crops therefore need no re-framing, and UTKFace chips or
camera faces aligned here look like FER faces to the model.
"""

from __future__ import annotations

import cv2
import numpy as np

# Eye midpoint (x, y) and inter-ocular distance, as fractions of the crop side.
EYE_CENTER = (0.50, 0.38)
EYE_DISTANCE = 0.39


def alignment_matrix(right_eye, left_eye, size: int,
                     eye_center=EYE_CENTER, eye_distance=EYE_DISTANCE) -> np.ndarray:
    """The 2x3 affine matrix that maps frame pixels into the aligned ``size`` x ``size`` crop.

    Args:
        right_eye: (x, y) of the subject's right eye (left side of the image).
        left_eye: (x, y) of the subject's left eye (right side of the image).
        size: side of the output crop in pixels.
    Returns:
        float64 2x3 matrix for ``cv2.warpAffine``.
    """
    re = np.asarray(right_eye, dtype=np.float64)
    le = np.asarray(left_eye, dtype=np.float64)
    d = le - re
    dist = float(np.hypot(d[0], d[1]))
    if not np.isfinite(dist) or dist < 1e-6:
        raise ValueError(f"eye keypoints coincide or are not finite: {right_eye}, {left_eye}")
    angle = np.arctan2(d[1], d[0])  # image y grows downward
    scale = eye_distance * size / dist
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    mid = (re + le) / 2.0
    target = np.array(eye_center, dtype=np.float64) * size
    # rotate+scale about the eye midpoint, then move it onto the template position
    m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    m[:, 2] = target - m[:, :2] @ mid
    return m


def align_face(image: np.ndarray, right_eye, left_eye, size: int = 64,
               gray: bool = True) -> np.ndarray:
    """Cut an upright, eye-levelled ``size`` x ``size`` face crop out of ``image``.

    Args:
        image: H x W x 3 BGR uint8 frame (or H x W grayscale).
        right_eye, left_eye: eye keypoints in frame pixels (``Detection.right_eye/left_eye``).
        size: output side in pixels.
        gray: return a single-channel crop (the multi-head model's input) instead of BGR.
    Returns:
        uint8 array, ``size`` x ``size`` (gray) or ``size`` x ``size`` x 3 (BGR).
    """
    m = alignment_matrix(right_eye, left_eye, size)
    if gray and image.ndim == 3:
        # warp first, convert after: converting a 1080p frame would cost far more than the crop
        crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop


def template_eyes(size: int) -> np.ndarray:
    """Where the right and left eye land in an aligned crop of side ``size`` (2 x 2, pixels)."""
    cx, cy = EYE_CENTER[0] * size, EYE_CENTER[1] * size
    half = EYE_DISTANCE * size / 2
    return np.array([[cx - half, cy], [cx + half, cy]])
