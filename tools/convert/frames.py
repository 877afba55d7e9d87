"""Frames for calibration and evaluation: from image files, image folders and videos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.name.lower().endswith(".chip.jpg")


def list_sources(paths, limit: int | None = None, seed: int = 0) -> list[Path]:
    """Expand files and folders into image and video files.

    A folder contributes its images and videos (not recursive); when ``limit`` is set and a folder
    holds more images than that, a seeded random subset of ``limit`` is taken.
    """
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir()
                           if f.is_file() and (is_image(f) or f.suffix.lower() in VIDEO_SUFFIXES))
            if limit is not None and len(files) > limit:
                idx = np.random.default_rng(seed).choice(len(files), limit, replace=False)
                files = [files[i] for i in sorted(idx)]
            out += files
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return out


def video_frames(path: Path, every: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
    """Every ``every``-th BGR frame of a video, at most ``limit`` of them."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {path}")
    i = n = 0
    try:
        while limit is None or n < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                n += 1
                yield frame
            i += 1
    finally:
        cap.release()


def iter_frames(paths, video_every: int = 1, limit: int | None = None,
                seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(label, BGR frame) for every image and every ``video_every``-th video frame in ``paths``."""
    for src in list_sources(paths, limit, seed):
        if src.suffix.lower() in VIDEO_SUFFIXES:
            for k, frame in enumerate(video_frames(src, video_every)):
                yield f"{src.name}#{k * video_every}", frame
        else:
            img = cv2.imread(str(src), cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot read image {src}")
            yield src.name, img
