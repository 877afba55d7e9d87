"""The kiosk screen: ``render`` draws it, a ``DisplaySink`` shows it.

Usage::

    from device.display import open_sink, render
    sink = open_sink("png:/tmp/kiosk.png", every=10)   # or "fb:/dev/fb0", "drm", "none"
    sink.show(render(frame.image, tracks, aggregator.current(), {"fps": 9.8}))
    sink.close()
"""

from device.display.base import (
    SINKS,
    DisplaySink,
    NullSink,
    open_sink,
    register_sink,
    validate_image,
)
from device.display.drm import DrmSink
from device.display.framebuffer import FramebufferSink
from device.display.png import PngSink
from device.display.render import NOTICE_LINES, render

__all__ = [
    "SINKS", "DisplaySink", "DrmSink", "FramebufferSink", "NOTICE_LINES", "NullSink", "PngSink",
    "open_sink", "register_sink", "render", "validate_image",
]
