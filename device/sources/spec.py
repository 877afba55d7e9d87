"""The ``[source] spec`` grammar, parsed once: by the configuration at load and by ``open_source``.

    auto            the Pi camera if there is one, else OpenCV camera 0, else the demo clip
    demo            the built-in demo clip
    picamera[:N]    the Raspberry Pi camera number N (default 0)
    camera:N        an OpenCV camera by index, or camera:/dev/videoN by device path
    PATH            a video file, an image, or a folder of images (must exist)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

USAGE = "expected 'auto', 'demo', 'picamera[:N]', 'camera:N', 'camera:/dev/videoN' or a path"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed spec: ``kind`` is auto, demo, picamera, camera or path."""

    kind: str
    camera: int | str | None = None  # picamera: its number; camera: index or device path
    path: Path | None = None


def parse_spec(spec: str) -> SourceSpec:
    """Parse a source spec; ValueError with what is wrong and what was expected.

    A path must exist now (a missing file is a usage error, not a camera that may come back); a
    camera device path need not (a USB camera may be plugged in later).
    """
    text = str(spec).strip()
    if text in ("auto", "demo"):
        return SourceSpec(text)
    kind, sep, arg = text.partition(":")
    if kind == "picamera":
        if not sep:
            return SourceSpec("picamera", 0)
        if not arg.isdigit():
            raise ValueError(f"the Pi camera number must be 0, 1, ... (got {text!r}); {USAGE}")
        return SourceSpec("picamera", int(arg))
    if kind == "camera":
        if arg.isdigit():
            return SourceSpec("camera", int(arg))
        if arg.startswith("/dev/"):
            return SourceSpec("camera", arg)
        raise ValueError(f"a camera is camera:N or camera:/dev/videoN (got {text!r})")
    if not text:
        raise ValueError(f"must not be empty; {USAGE}")
    path = Path(text)
    if not path.exists():
        raise ValueError(f"no such file or folder: {text!r}; {USAGE}")
    return SourceSpec("path", path=path)
