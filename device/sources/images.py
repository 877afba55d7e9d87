"""A single image or a folder of images as a frame source."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from device.errors import FrameDecodeError, SourceError
from device.sources.base import FrameSource
from device.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to H x W x 3 BGR uint8; FrameDecodeError names the file when it can't."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameDecodeError(f"cannot decode image {path} (corrupt or not an image)")
    return image


class ImageSource(FrameSource):
    """Frames from one image or every image in a folder (sorted by name).

    In a folder, an image that cannot be decoded is logged, counted in ``bad_frames`` and skipped;
    a single corrupt image raises FrameDecodeError. Timestamps advance by ``1 / fps``.
    """

    kind = "images"

    def __init__(self, path: str | Path, loop: bool = False, fps: float = 1.0):
        super().__init__(str(path))
        path = Path(path)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
            self.single = False
        elif path.is_file():
            self.files, self.single = [path], True
        else:
            raise SourceError(f"image or folder not found: {path}")
        self.loop, self.fps = loop, fps
        self._pos = 0
        self._index = 0
        self._good_in_pass = 0

    def read(self) -> Frame | None:
        while True:
            if self._pos >= len(self.files):
                if self._good_in_pass == 0:
                    raise SourceError(f"no image in {self.name} could be decoded")
                if not self.loop:
                    return None
                self._pos = self._good_in_pass = 0
            path = self.files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except FrameDecodeError:
                if self.single:
                    raise
                self.bad_frames += 1
                log.warning("skipping %s: cannot decode (corrupt or not an image)", path)
                continue
            frame = Frame(image=image, timestamp=self._index / self.fps, index=self._index,
                          source=str(path))
            self._index += 1
            self._good_in_pass += 1
            return frame
