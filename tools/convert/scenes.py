"""Synthetic multi-face scenes built from face chips (e.g. UTKFace), for calibration.

Single 200x200 face chips only show the detector large, centred faces. A representative
dataset also needs small faces, several per frame, dark and bright frames, and the black
letterbox bars, so some chips are pasted at random sizes onto wide canvases made from other
chips' blurred, enlarged pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

CANVASES = ((640, 360), (1280, 720), (640, 480), (1920, 1080))


def _background(chips: list[np.ndarray], w: int, h: int, rng) -> np.ndarray:
    base = chips[int(rng.integers(len(chips)))]
    bg = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(bg, (0, 0), sigmaX=max(w, h) / 40)


def make_scene(chips: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One BGR canvas with 1-6 chips pasted at face widths from 4% to 45% of the frame height."""
    w, h = CANVASES[int(rng.integers(len(CANVASES)))]
    img = _background(chips, w, h, rng)
    for _ in range(int(rng.integers(1, 7))):
        chip = chips[int(rng.integers(len(chips)))]
        side = int(h * rng.uniform(0.08, 0.9))  # a UTKFace face is about half its chip
        side = max(8, min(side, h, w))
        face = cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        img[y:y + side, x:x + side] = face
    gain = rng.uniform(0.35, 1.3)  # dim auditoriums and bright shop fronts
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def make_scenes(chips: list[np.ndarray], n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` scenes from ``chips`` (reproducible for a given seed)."""
    rng = np.random.default_rng(seed)
    return [make_scene(chips, rng) for _ in range(n)]
