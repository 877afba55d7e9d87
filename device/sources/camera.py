"""A V4L2/USB camera through OpenCV (``camera:N`` or ``camera:/dev/videoN``)."""

from __future__ import annotations

import logging
import time

import cv2

from device.errors import SourceError
from device.sources.base import FrameSource
from device.types import Frame

log = logging.getLogger(__name__)


class OpenCVCameraSource(FrameSource):
    """Frames from an OpenCV capture device.

    Args:
        device: camera index (0) or device path ("/dev/video0").
        size: requested (width, height), or None for the camera's default.
        timeout_s: how long open and read may take before the camera counts as gone.
        retries: consecutive failed reads tolerated before raising SourceError.
    """

    kind = "camera"

    def __init__(self, device: int | str = 0, size: tuple[int, int] | None = None,
                 timeout_s: float = 5.0, retries: int = 3, capture_factory=cv2.VideoCapture):
        super().__init__(f"camera:{device}")
        self.device, self.retries = device, retries
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout_s * 1000)]
        try:
            self._cap = capture_factory(device, cv2.CAP_ANY, params)
        except (cv2.error, TypeError):
            self._cap = capture_factory(device)
        if self._cap is None or not self._cap.isOpened():
            raise SourceError(f"camera {device!r} not found or busy (no frames could be opened)")
        if size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        self._index = 0
        self._t0 = time.monotonic()

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"{self.name} is closed")
        for attempt in range(1, self.retries + 1):
            ok, image = self._cap.read()
            if ok and image is not None:
                frame = Frame(image=image, timestamp=time.monotonic() - self._t0,
                              index=self._index, source=self.name)
                self._index += 1
                return frame
            self.bad_frames += 1
            log.warning("%s: no frame (attempt %d of %d)", self.name, attempt, self.retries)
        raise SourceError(f"{self.name} stopped delivering frames (unplugged or failed)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
