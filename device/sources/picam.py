"""The Raspberry Pi camera through picamera2 (imported only when this source is chosen)."""

from __future__ import annotations

import time

from device.errors import SourceError
from device.sources.base import FrameSource
from device.types import Frame


def picamera2_available() -> bool:
    """True when picamera2 imports and libcamera reports at least one camera."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return False
    try:
        return bool(Picamera2.global_camera_info())
    except Exception:  # libcamera errors come in many types; any means "no usable camera"
        return False


class PiCameraSource(FrameSource):
    """Frames from the Pi camera as BGR arrays (picamera2's "RGB888" is B, G, R in memory).

    Args:
        size: (width, height) of the main stream.
        picamera2_factory: seam for tests; defaults to ``picamera2.Picamera2``.
    """

    kind = "picamera"

    def __init__(self, size: tuple[int, int] = (1280, 720), camera_num: int = 0,
                 picamera2_factory=None):
        super().__init__(f"picamera:{camera_num}")
        if picamera2_factory is None:
            try:
                from picamera2 import Picamera2 as picamera2_factory
            except ImportError as exc:
                raise SourceError("picamera2 is not installed (pip install 'audience-kiosk[pi]' "
                                  "or apt install python3-picamera2)") from exc
        try:
            self._cam = picamera2_factory(camera_num)
            config = self._cam.create_video_configuration(main={"size": size, "format": "RGB888"})
            self._cam.configure(config)
            self._cam.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(f"Pi camera {camera_num} could not be started: {exc}") from exc
        self.size = size
        self._index = 0
        self._t0 = time.monotonic()

    def read(self) -> Frame:
        if self._cam is None:
            raise SourceError(f"{self.name} is closed")
        try:
            image = self._cam.capture_array("main")
        except (RuntimeError, OSError) as exc:
            raise SourceError(f"{self.name} stopped delivering frames: {exc}") from exc
        frame = Frame(image=image[..., :3], timestamp=time.monotonic() - self._t0,
                      index=self._index, source=self.name)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
