"""Fitting a frame into the model input without distortion, and mapping results back."""

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
    # INTER_AREA averages every source pixel when shrinking, so small faces keep their contrast
    interp = cv2.INTER_AREA if box.scale < 1 else cv2.INTER_LINEAR
    small = (image_bgr if (new_w, new_h) == (w, h)
             else cv2.resize(image_bgr, (new_w, new_h), interpolation=interp))
    px, py = box.pad
    out = cv2.copyMakeBorder(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), py, input_h - new_h - py,
                             px, input_w - new_w - px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return out, box


def to_model_range(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB to float32 in [-1, 1] with a batch axis (BlazeFace's input convention)."""
    return (rgb.astype(np.float32)[None] - 127.5) / 127.5
