"""Frame sources behind one interface, chosen by a spec string.

Specs:
    ``auto``            the Pi camera if there is one, else OpenCV camera 0, else the demo clip
    ``picamera[:N]``    the Raspberry Pi camera (picamera2)
    ``camera:N``        an OpenCV camera by index, or ``camera:/dev/videoN``
    ``demo``            the built-in demo clip (scikit-image's astronaut portrait)
    ``PATH``            a video file, an image, or a folder of images
"""

from __future__ import annotations

import logging
from pathlib import Path

from device.errors import SourceError
from device.sources.base import FrameSource, Pacer
from device.sources.camera import OpenCVCameraSource
from device.sources.demo import DemoSource
from device.sources.images import IMAGE_SUFFIXES, ImageSource, read_image
from device.sources.picam import PiCameraSource, picamera2_available
from device.sources.video import VideoFileSource

log = logging.getLogger(__name__)

__all__ = ["FrameSource", "Pacer", "open_source", "read_image", "ImageSource", "VideoFileSource",
           "OpenCVCameraSource", "PiCameraSource", "DemoSource"]


def _auto(loop: bool, pace: bool) -> FrameSource:
    if picamera2_available():
        return PiCameraSource()
    try:
        return OpenCVCameraSource(0, timeout_s=3.0)
    except SourceError:
        log.info("no camera found; using the demo clip (scikit-image's astronaut portrait)")
        return DemoSource(loop=loop, pace=pace)


def open_source(spec: str, loop: bool = False, pace: bool = False) -> FrameSource:
    """Open the frame source a spec names (see the module doc). Raises SourceError with the reason."""
    spec = str(spec).strip()
    if spec == "auto":
        return _auto(loop, pace)
    if spec == "demo":
        return DemoSource(loop=loop, pace=pace)
    if spec == "picamera" or spec.startswith("picamera:"):
        num = spec.partition(":")[2]
        return PiCameraSource(camera_num=int(num) if num else 0)
    if spec.startswith("camera:"):
        dev = spec.partition(":")[2]
        return OpenCVCameraSource(int(dev) if dev.isdigit() else dev)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"source not found: {spec!r} (expected a file, a folder, 'camera:N', "
                          "'picamera', 'demo' or 'auto')")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, loop=loop)
    return VideoFileSource(path, loop=loop, pace=pace)
