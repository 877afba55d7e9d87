"""The display sink interface, its registry and the null sink.

A sink shows finished BGR images somewhere: a PNG file, the Linux framebuffer, picamera2's DRM
overlay, or nowhere. Sinks register under a ``type_key`` (Frigate's detector plug-in habit) and are
chosen by a spec string such as ``"png:/tmp/kiosk.png"``, ``"fb:/dev/fb0"``, ``"drm"`` or
``"none"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from device.errors import DisplayError

SINKS: dict[str, type[DisplaySink]] = {}


def validate_image(image) -> np.ndarray:
    """Check that ``image`` is an H x W x 3 uint8 array; ValueError naming the problem if not."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"display image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"display image must be H x W x 3 (BGR), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"display image must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"display image is empty: shape {image.shape}")
    return image


def register_sink(cls: type[DisplaySink]) -> type[DisplaySink]:
    """Class decorator: make ``cls`` available to ``open_sink`` under ``cls.type_key``."""
    SINKS[cls.type_key] = cls
    return cls


class DisplaySink(ABC):
    """Somewhere to show rendered frames. ``show`` validates, then hands over to ``_show``.

    Subclasses set ``type_key`` and may override ``from_spec`` to read the part of the spec after
    the colon.
    """

    type_key: ClassVar[str]
    closed = False

    @classmethod
    def from_spec(cls, arg: str, **options) -> DisplaySink:
        """Open the sink from the text after ``type_key:`` (may be empty) and keyword options."""
        return cls(arg, **options) if arg else cls(**options)

    def show(self, image_bgr: np.ndarray) -> None:
        """Show one H x W x 3 uint8 BGR image; ValueError for anything else."""
        validate_image(image_bgr)
        if self.closed:
            raise DisplayError(f"{self.type_key} display is closed")
        self._show(image_bgr)

    @abstractmethod
    def _show(self, image_bgr: np.ndarray) -> None:
        """Output an already validated image."""

    def close(self) -> None:
        """Release the output; later ``show`` calls raise DisplayError. Safe to call twice."""
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@register_sink
class NullSink(DisplaySink):
    """Validates what it is given and ignores it (picamera2's NullPreview habit)."""

    type_key = "none"

    def __init__(self, **_options):
        self.frames = 0  # how many images were shown, for tests and stats

    def _show(self, image_bgr: np.ndarray) -> None:
        self.frames += 1


def open_sink(spec: str, **options) -> DisplaySink:
    """Open the sink a spec names.

    Args:
        spec: ``"none"``, ``"png:PATH"``, ``"fb"``/``"fb:/dev/fbN"`` or ``"drm"``.
        options: passed to the sink (``every=`` for png, ``sysfs_root=`` for fb, ``camera=`` for
            drm); see each sink's docstring.
    Raises:
        DisplayError: unknown kind, or the sink cannot be opened (the message says why).
    """
    kind, _, arg = str(spec).strip().partition(":")
    kind = "none" if kind in ("", "null") else kind
    if kind not in SINKS:
        raise DisplayError(f"unknown display {spec!r}; use one of: "
                           + ", ".join(sorted(SINKS)) + " (e.g. 'png:/tmp/kiosk.png')")
    return SINKS[kind].from_spec(arg, **options)
