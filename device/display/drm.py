"""DRM sink: rendered frames as picamera2's overlay on its DRM preview (Pi without a desktop).

picamera2's ``Preview.DRM`` shows the camera stream on the screen and composites an RGBA overlay
over it (``Picamera2.set_overlay`` takes an H x W x 4 uint8 RGBA array, scaled to the preview).
The rendered frame is opaque, so it covers the raw preview entirely. picamera2 is imported only
when this sink opens, so the rest of the kiosk runs without it.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from device.display.base import DisplaySink, register_sink
from device.errors import DisplayError

log = logging.getLogger(__name__)


@register_sink
class DrmSink(DisplaySink):
    """Shows frames through picamera2's DRM preview overlay.

    Args:
        camera: the ``Picamera2`` object the camera source opened (one process owns a camera,
            so the sink borrows it rather than opening another).
        start_preview: start ``Preview.DRM`` on it (before the camera starts); False when the
            source already did.
        preview_options: passed to ``start_preview`` (x, y, width, height).
    Raises:
        DisplayError: picamera2 is missing, no camera was given, or the preview cannot start.
    """

    type_key = "drm"

    def __init__(self, camera=None, start_preview: bool = True, **preview_options):
        try:
            from picamera2 import Preview
        except ImportError as exc:
            raise DisplayError("the drm display needs picamera2 (Raspberry Pi OS: "
                               "apt install python3-picamera2, or pip install "
                               "'audience-kiosk[pi]'); use 'fb:/dev/fb0' or 'png:PATH' "
                               "otherwise") from exc
        if camera is None:
            raise DisplayError("the drm display draws over the camera's DRM preview: open it "
                               "with the picamera2 camera source and pass camera=<Picamera2>")
        self.camera, self._started = camera, False
        if start_preview:
            try:
                camera.start_preview(Preview.DRM, **preview_options)
            except Exception as exc:  # picamera2 raises RuntimeError, pykms OSError, ...
                raise DisplayError(f"cannot start the DRM preview: {exc}") from exc
            self._started = True

    def _show(self, image_bgr: np.ndarray) -> None:
        try:
            self.camera.set_overlay(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGBA))
        except Exception as exc:
            raise DisplayError(f"cannot set the DRM overlay: {exc}") from exc

    def close(self) -> None:
        if not self.closed:
            try:
                self.camera.set_overlay(None)
                if self._started:
                    self.camera.stop_preview()
            except Exception as exc:  # closing must not fail the shutdown
                log.warning("closing the DRM preview failed: %s", exc)
        super().close()
