"""Video files through OpenCV (FFmpeg), optionally looping and paced at the file's frame rate."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from device.errors import SourceError
from device.sources.base import FrameSource, Pacer
from device.types import Frame

log = logging.getLogger(__name__)


class VideoFileSource(FrameSource):
    """Frames of a video file. Timestamps are media time (frame index / fps), continuing across loops.

    Args:
        path: the video file.
        loop: start again at the end, forever.
        pace: deliver frames no faster than real time (as a camera would).
    """

    kind = "video"

    def __init__(self, path: str | Path, loop: bool = False, pace: bool = False):
        super().__init__(str(path))
        self.path = Path(path)
        self.loop, self._pacer = loop, Pacer() if pace else None
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else 25.0
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._index = 0  # frames delivered, across loops
        self._in_pass = 0  # frames delivered in the current pass

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot decode video file {self.path} (corrupt or not a video)")
        return cap

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video source {self.path} is closed")
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._in_pass == 0:
                raise SourceError(f"video file {self.path} has no decodable frames")
            if not self.loop:
                return None
            self._cap.release()
            self._cap, self._in_pass = self._open(), 0
            return self.read()
        t = self._index / self.fps
        if self._pacer:
            self._pacer.wait(t)
        frame = Frame(image=image, timestamp=t, index=self._index, source=self.name)
        self._index += 1
        self._in_pass += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
