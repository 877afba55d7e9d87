"""DRM sink: rendered frames as picamera2's overlay on the Pi camera's DRM preview (console boot).

picamera2's ``Preview.DRM`` shows the camera stream on the screen and composites an RGBA overlay
over it (``Picamera2.set_overlay`` takes an H x W x 4 uint8 RGBA array, scaled to the preview).
The preview belongs to the camera: the Pi camera source starts it on its own ``Picamera2`` object
before the camera starts (``PiCameraSource(preview="drm")``), and this sink only draws over it.
The rendered frame is opaque, so it covers the raw preview entirely.
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
    """Shows frames as the overlay of the DRM preview that the camera source started.

    Args:
        camera: the ``Picamera2`` object of a ``PiCameraSource`` opened with ``preview="drm"``
            (one process owns a camera, so the sink borrows it rather than opening another).
    Raises:
        DisplayError: no camera was given, or it runs no DRM preview.
    """

    type_key = "drm"

    def __init__(self, camera=None, preview: str | None = "drm"):
        if camera is None:
            raise DisplayError("the drm display draws over the Pi camera's DRM preview: it needs "
                               "the picamera source ([source] spec = 'picamera')")
        if preview != "drm":
            raise DisplayError("the Pi camera was opened without its DRM preview, so there is "
                               "nothing to draw over")
        self.camera = camera

    @classmethod
    def for_source(cls, source) -> DrmSink:
        """The sink over ``source``'s preview (a ``PiCameraSource`` opened with
        ``preview="drm"``)."""
        return cls(getattr(source, "camera", None), getattr(source, "preview", None))

    def _show(self, image_bgr: np.ndarray) -> None:
        try:
            self.camera.set_overlay(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGBA))
        except Exception as exc:  # picamera2 raises RuntimeError, pykms OSError, ...
            raise DisplayError(f"cannot set the DRM overlay: {exc}") from exc

    def close(self) -> None:
        """Clear the overlay; the preview stops with the camera, which its source closes."""
        if not self.closed:
            try:
                self.camera.set_overlay(None)
            except Exception as exc:  # the camera may be gone already; closing must not fail
                log.debug("clearing the DRM overlay failed: %s", exc)
        super().close()
