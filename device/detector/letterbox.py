"""Fitting a frame into the model input without distortion, and mapping results back.

Every resampling here gives the same bytes on every CPU, because the models' answers (and the
aligned faces cut from their keypoints) follow each input pixel: OpenCV's INTER_AREA for a
fractional factor sums in floating point and rounds differently on x86 and ARM (one level on a
few pixels in ten thousand, enough to move a keypoint and an age estimate), while its
whole-number box average (sizes that divide exactly) and its fixed-point bilinear warp do not.
So a frame is shrunk by whole numbers with the box average (it averages every pixel, so small
faces keep their contrast) and the remaining factor, less than 2, is a bilinear warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed in the model input: ``input = frame * scale + pad``.

    Attributes:
        scale: model-input pixels per frame pixel.
        pad: (x, y) offset of the scaled frame inside the input, input pixels.
        size: (width, height) of the model input, pixels.
    """

    scale: float
    pad: tuple[int, int]
    size: tuple[int, int]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map ... x 2 points normalised to the model input ([0, 1]) back to frame pixels."""
        p = np.asarray(points, dtype=np.float32) * np.asarray(self.size, np.float32)
        return (p - np.asarray(self.pad, np.float32)) / self.scale

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Map ... x 2 frame pixels to normalised input coordinates (``to_frame`` inverted)."""
        p = np.asarray(points, dtype=np.float32) * self.scale + np.asarray(self.pad, np.float32)
        return p / np.asarray(self.size, np.float32)


def fit(width: int, height: int, input_w: int, input_h: int) -> Letterbox:
    """The letterbox centring a ``width`` x ``height`` frame in an ``input_w`` x ``input_h``
    input."""
    scale = min(input_w / width, input_h / height)
    new_w, new_h = min(round(width * scale), input_w), min(round(height * scale), input_h)
    return Letterbox(scale, ((input_w - new_w) // 2, (input_h - new_h) // 2), (input_w, input_h))


def shrink_whole(image: np.ndarray, k: int) -> np.ndarray:
    """``image`` shrunk ``k`` times by averaging each ``k`` x ``k`` block (integer arithmetic,
    the same on every CPU). Output pixel ``(i, j)`` covers input pixels ``[i*k, (i+1)*k)``; the
    last ``h % k`` rows and ``w % k`` columns, which fill no whole block, are left out."""
    if k <= 1:
        return image
    h, w = image.shape[:2]
    whole = image[: h // k * k, : w // k * k]
    return cv2.resize(whole, (w // k, h // k), interpolation=cv2.INTER_AREA)


def resample(image: np.ndarray, scale: float, new_w: int, new_h: int) -> np.ndarray:
    """``image`` scaled by ``scale`` into ``new_w`` x ``new_h`` pixels, the same on every CPU.

    Output pixel centre ``x + 0.5`` samples the image at ``(x + 0.5) / scale``, exactly the
    mapping ``Letterbox`` inverts. Shrinking: whole-number box averaging first (``shrink_whole``),
    then a bilinear warp for the rest (a factor below 2); enlarging: the bilinear warp alone.
    """
    h, w = image.shape[:2]
    if (new_w, new_h) == (w, h) and abs(scale - 1.0) < 1e-9:
        return image
    k = max(1, int(1.0 / scale + 1e-9)) if scale < 1 else 1
    src = shrink_whole(image, k)
    step = 1.0 / (scale * k)  # source pixels (after the whole-number shrink) per output pixel
    if (new_w, new_h) == src.shape[1::-1] and abs(step - 1.0) < 1e-9:
        return src
    m = np.array([[step, 0.0, 0.5 * step - 0.5], [0.0, step, 0.5 * step - 0.5]])
    return cv2.warpAffine(src, m, (new_w, new_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def letterbox_image(image_bgr: np.ndarray, input_w: int,
                    input_h: int) -> tuple[np.ndarray, Letterbox]:
    """Resize (keeping aspect) and pad a BGR frame into the model's RGB input.

    Args:
        image_bgr: H x W x 3 uint8 frame.
        input_w, input_h: model input size.
    Returns:
        (input_h x input_w x 3 uint8 RGB, black padding around the frame; the ``Letterbox``).
    """
    h, w = image_bgr.shape[:2]
    box = fit(w, h, input_w, input_h)
    new_w, new_h = min(round(w * box.scale), input_w), min(round(h * box.scale), input_h)
    small = resample(image_bgr, box.scale, new_w, new_h)
    px, py = box.pad
    out = cv2.copyMakeBorder(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), py, input_h - new_h - py,
                             px, input_w - new_w - px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return out, box


def to_model_range(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB to float32 in [-1, 1] with a batch axis (BlazeFace's input convention)."""
    return (rgb.astype(np.float32)[None] - 127.5) / 127.5
