"""A single image or a folder of images as a frame source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from device.errors import FrameDecodeError, SourceError
from device.sources.base import FrameSource
from device.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


MAX_PIXELS = 40_000_000  # 8K UHD is 33 MP; a bigger picture is not a camera frame
# OpenCV's own ceiling for every format it decodes (read at its first decode): the header checks
# below give the clearer message for PNG and JPEG, this one stops the rest before allocating.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in _SOF:
            width, height = data[i + 7:i + 9], data[i + 5:i + 7]
            return int.from_bytes(width, "big"), int.from_bytes(height, "big")
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to H x W x 3 BGR uint8; FrameDecodeError names the file when it can't.

    Pictures over ``MAX_PIXELS`` are refused before they are decoded (a small PNG can unpack to
    gigabytes).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    size = image_dimensions(data[:65536].tobytes())
    if size and size[0] * size[1] > MAX_PIXELS:
        raise FrameDecodeError(f"image {path} is {size[0]}x{size[1]} pixels, more than the "
                               f"{MAX_PIXELS:,} this appliance decodes")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameDecodeError(f"cannot decode image {path} (corrupt, not an image, or over "
                               f"{MAX_PIXELS:,} pixels)")
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
                kinds = ", ".join(sorted(IMAGE_SUFFIXES))
                raise SourceError(f"no images ({kinds}) in folder {path}")
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
            except FrameDecodeError as exc:
                if self.single:
                    raise
                self.bad_frames += 1
                log.warning("skipping %s: %s", path, exc)
                continue
            frame = Frame(image=image, timestamp=self._index / self.fps, index=self._index,
                          source=str(path))
            self._index += 1
            self._good_in_pass += 1
            return frame
