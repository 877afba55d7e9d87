"""The Raspberry Pi camera through picamera2 (imported only when this source is chosen)."""

from __future__ import annotations

import logging
import time

from device.errors import SourceError
from device.sources.base import FrameSource
from device.types import Frame

log = logging.getLogger(__name__)


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

    The camera owns its preview (picamera2's own rule): with ``preview="drm"`` the DRM preview is
    started on this source's ``Picamera2`` object after ``configure`` and before ``start``, and
    the kiosk's display then draws over it (``device.display.DrmSink`` on :attr:`camera`). A
    preview that cannot start (no screen, a desktop holding the display) does not stop the
    camera: the source runs without it and ``preview_error`` says why.

    Args:
        size: (width, height) of the main stream.
        preview: ``"drm"`` for the DRM/KMS preview on the console; None for no preview.
        preview_options: passed to ``start_preview`` (x, y, width, height).
        picamera2_factory: seam for tests; defaults to ``picamera2.Picamera2``.
    """

    kind = "picamera"

    def __init__(self, size: tuple[int, int] = (1280, 720), camera_num: int = 0,
                 preview: str | None = None, preview_options: dict | None = None,
                 picamera2_factory=None):
        super().__init__(f"picamera:{camera_num}")
        if preview not in (None, "drm"):
            raise ValueError(f"unknown preview {preview!r} (only 'drm')")
        try:
            import picamera2
        except ImportError as exc:
            if picamera2_factory is None or preview:
                raise SourceError("picamera2 is not installed (Raspberry Pi OS: apt install "
                                  "python3-picamera2)") from exc
        if picamera2_factory is None:
            picamera2_factory = picamera2.Picamera2
        self._cam, self.preview = None, None
        self.preview_error: str | None = None  # why the preview asked for did not start
        try:
            cam = picamera2_factory(camera_num)
            self._cam = cam
            config = cam.create_video_configuration(main={"size": size, "format": "RGB888"})
            cam.configure(config)
            if preview == "drm":
                self._start_preview(cam, picamera2.Preview.DRM, preview_options or {})
            cam.start()
        except Exception as exc:  # libcamera and pykms raise RuntimeError, OSError, IndexError...
            self.close()
            raise SourceError(f"Pi camera {camera_num} could not be started: {exc}") from exc
        self.size = size
        self._index = 0
        self._t0 = time.monotonic()

    def _start_preview(self, cam, kind, options: dict) -> None:
        """Start the preview; if the screen is missing, count without it (and say why)."""
        try:
            cam.start_preview(kind, **options)
            self.preview = "drm"
        except Exception as exc:  # picamera2 raises RuntimeError, pykms OSError, ...
            self.preview_error = f"{type(exc).__name__}: {exc}"
            log.warning("Pi camera: the DRM preview did not start (%s); running without it",
                        self.preview_error)

    @property
    def camera(self):
        """The ``Picamera2`` object (None once closed): the DRM display draws over its preview."""
        return self._cam

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
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in ("stop", "stop_preview", "close"):
            if step == "stop_preview" and not self.preview:
                continue
            try:
                getattr(cam, step)()
            except Exception:  # a camera that vanished fails its own shutdown; keep closing
                pass
