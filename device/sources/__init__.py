"""Frame sources behind one interface, chosen by a spec string.

Specs (parsed by ``device.sources.spec``, which the configuration also uses at load):
    ``auto``            the Pi camera if there is one, else OpenCV camera 0, else the demo clip
    ``picamera[:N]``    the Raspberry Pi camera (picamera2)
    ``camera:N``        an OpenCV camera by index, or ``camera:/dev/videoN``
    ``demo``            the built-in demo clip (the shipped public-domain astronaut portrait)
    ``PATH``            a video file, an image, or a folder of images
"""

from __future__ import annotations

import logging

from device.errors import SourceError
from device.sources.base import FrameSource, Pacer
from device.sources.camera import OpenCVCameraSource
from device.sources.demo import DemoSource
from device.sources.images import IMAGE_SUFFIXES, ImageSource, read_image
from device.sources.picam import PiCameraSource, picamera2_available
from device.sources.spec import parse_spec
from device.sources.video import VideoFileSource

log = logging.getLogger(__name__)

__all__ = ["FrameSource", "Pacer", "open_source", "read_image", "ImageSource", "VideoFileSource",
           "OpenCVCameraSource", "PiCameraSource", "DemoSource"]


def _auto(loop: bool, pace: bool, preview: str | None) -> FrameSource:
    if picamera2_available():
        return PiCameraSource(preview=preview)
    try:
        return OpenCVCameraSource(0, timeout_s=3.0)
    except SourceError:
        log.info("no camera found; using the built-in demo clip (the astronaut portrait)")
        return DemoSource(loop=loop, pace=pace)


def open_source(spec: str, loop: bool = False, pace: bool = False,
                preview: str | None = None) -> FrameSource:
    """Open the frame source a spec names (see ``device.sources.spec``).

    Args:
        preview: ``"drm"`` starts picamera2's DRM preview on the Pi camera before the camera
            starts (the display then draws over it); other sources ignore it.
    Raises:
        SourceError: the spec is malformed or the source cannot be opened, with the reason.
    """
    try:
        parsed = parse_spec(spec)
    except ValueError as exc:
        raise SourceError(f"source {spec!r}: {exc}") from None
    if parsed.kind == "auto":
        return _auto(loop, pace, preview)
    if parsed.kind == "demo":
        return DemoSource(loop=loop, pace=pace)
    if parsed.kind == "picamera":
        return PiCameraSource(camera_num=parsed.camera, preview=preview)
    if parsed.kind == "camera":
        return OpenCVCameraSource(parsed.camera)
    path = parsed.path
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, loop=loop)
    return VideoFileSource(path, loop=loop, pace=pace)
