"""PNG file sink: the one intended writer of rendered frames (headless runs, tests, docs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from device.display.base import DisplaySink, register_sink
from device.errors import DisplayError


@register_sink
class PngSink(DisplaySink):
    """Writes the shown image to one PNG file, atomically (temp file in the same folder + rename),
    so a reader never sees half a file.

    Args:
        path: the PNG to (over)write; missing parent folders are created.
        every: write only every N-th shown frame (the 1st, N+1-th, ...); 1: every frame.
    Raises:
        DisplayError: no path, or the folder cannot be created or written.
    """

    type_key = "png"

    def __init__(self, path=None, every: int = 1):
        if not path:
            raise DisplayError("png display needs a file: 'png:/path/to/frame.png'")
        if int(every) < 1:
            raise DisplayError(f"png display 'every' must be >= 1, got {every}")
        self.path, self.every = Path(path), int(every)
        self.frames = self.written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayError(f"png display cannot create folder {self.path.parent}: "
                               f"{exc}") from exc
        if not os.access(self.path.parent, os.W_OK):
            raise DisplayError(f"png display cannot write into {self.path.parent}")

    def _show(self, image_bgr: np.ndarray) -> None:
        due = self.frames % self.every == 0
        self.frames += 1
        if due:
            self._write(image_bgr)
            self.written += 1

    def _write(self, image_bgr: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", image_bgr)
        if not ok:
            raise DisplayError(f"could not encode a PNG for {self.path}")
        try:  # a full card fails here already (no inode or block for the temp file)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                       suffix=".tmp")
        except OSError as exc:
            raise DisplayError(f"could not write {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.tobytes())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a frame is meant to be viewed
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DisplayError(f"could not write {self.path}: {exc}") from exc
