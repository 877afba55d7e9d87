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
    """Frames of a video file. Timestamps are media time (frame position / fps), continuing
    across loops.

    A damaged stretch (bytes the decoder cannot read) is skipped frame by frame up to the length
    the container declares, instead of ending the video there: ``bad_frames`` counts what was
    skipped and the end of each pass logs how much of the file was read.

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
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 else None  # as the container says
        self._index = 0  # frames delivered, across loops
        self._pos = 0  # position in the current pass (delivered + skipped)
        self._in_pass = 0  # frames delivered in the current pass
        self._t_base = 0.0  # media time at the start of the current pass

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot decode video file {self.path} (corrupt or not a video)")
        return cap

    def _next_image(self):
        """The next decodable image of this pass, skipping a damaged stretch; None at the end."""
        ok, image = self._cap.read()
        pos = self._pos
        while not (ok and image is not None) and self.frame_count and pos + 1 < self.frame_count:
            pos += 1  # seek past the frame the decoder could not read
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, pos)
            ok, image = self._cap.read()
        if ok and image is not None:
            skipped = pos - self._pos
        else:  # the end: whatever the container declares beyond here was unreadable
            skipped, image = max(0, (self.frame_count or 0) - self._pos), None
        self.bad_frames += skipped
        self._pos += skipped
        return image

    def _skip_late(self) -> None:
        """Paced and behind: grab (without decoding) the frames whose time has passed."""
        while self._pacer.late(self._t_base + self._pos / self.fps) and (
                self.frame_count is None or self._pos + 1 < self.frame_count):
            if not self._cap.grab():
                return
            self._pos += 1
            self.dropped_frames += 1

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video source {self.path} is closed")
        if self._pacer:
            self._skip_late()
        image = self._next_image()
        if image is None:
            if self._in_pass == 0:
                raise SourceError(f"video file {self.path} has no decodable frames")
            if self.bad_frames:
                log.warning("video %s: %d of %d frames decoded, %d damaged and skipped",
                            self.path, self._in_pass, self._pos, self.bad_frames)
            if not self.loop:
                return None
            self._cap.release()
            self._t_base += self._pos / self.fps
            self._cap, self._in_pass, self._pos = self._open(), 0, 0
            return self.read()
        t = self._t_base + self._pos / self.fps
        if self._pacer:
            self._pacer.wait(t)
            self.lag_s = self._pacer.lag_s
        frame = Frame(image=image, timestamp=t, index=self._index, source=self.name)
        self._index += 1
        self._pos += 1
        self._in_pass += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
