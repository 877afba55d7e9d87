"""Linux framebuffer sink (``/dev/fbN``): no X, no Wayland, no DRM master needed.

Geometry and pixel format come from sysfs (``/sys/class/graphics/fbN/``: ``virtual_size`` "W,H",
``bits_per_pixel``, ``stride`` in bytes per line). Pixel layouts, as bytes in memory (the usual
little-endian fbdev formats):

* 16 bpp RGB565: one little-endian uint16 per pixel, ``RRRRRGGGGGGBBBBB``;
* 24 bpp RGB888: B, G, R (the same order as an OpenCV BGR image);
* 32 bpp XRGB8888: B, G, R, A with A = 255 (BGRA8888).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.display.base import DisplaySink, register_sink
from device.errors import DisplayError

SYSFS_ROOT = Path("/sys/class/graphics")


@dataclass(frozen=True)
class FbGeometry:
    width: int
    height: int
    bits_per_pixel: int
    stride: int  # bytes per line, may include padding


def read_geometry(name: str, sysfs_root=SYSFS_ROOT) -> FbGeometry:
    """Read a framebuffer's geometry from ``sysfs_root/name``; DisplayError if it cannot."""
    base = Path(sysfs_root) / name
    try:
        w, h = (int(v) for v in (base / "virtual_size").read_text().strip().split(","))
        bpp = int((base / "bits_per_pixel").read_text().strip())
        stride_file = base / "stride"
        stride = int(stride_file.read_text().strip()) if stride_file.exists() else w * bpp // 8
    except (OSError, ValueError) as exc:
        raise DisplayError(f"cannot read framebuffer geometry from {base}: {exc}") from exc
    if bpp not in (16, 24, 32):
        raise DisplayError(f"framebuffer {name} has {bpp} bits per pixel; only 16, 24, 32 work")
    if w <= 0 or h <= 0 or stride < w * bpp // 8:
        raise DisplayError(f"framebuffer {name} reports an impossible geometry {w}x{h}, "
                           f"stride {stride}")
    return FbGeometry(w, h, bpp, stride)


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to fit ``width`` x ``height`` keeping its aspect, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return out


def to_rgb565(image_bgr: np.ndarray) -> np.ndarray:
    """H x W uint16 RGB565 values of a BGR image."""
    b, g, r = (image_bgr[..., i].astype(np.uint16) for i in range(3))
    return ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)


def to_fb_pixels(image_bgr: np.ndarray, bits_per_pixel: int) -> np.ndarray:
    """H x (W * bytes per pixel) uint8 rows in the framebuffer's memory layout."""
    h, w = image_bgr.shape[:2]
    if bits_per_pixel == 16:
        px = to_rgb565(image_bgr).astype("<u2").view(np.uint8)
    elif bits_per_pixel == 24:
        px = np.ascontiguousarray(image_bgr)
    elif bits_per_pixel == 32:
        px = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2BGRA)
    else:
        raise ValueError(f"unsupported framebuffer depth {bits_per_pixel}")
    return px.reshape(h, -1)


@register_sink
class FramebufferSink(DisplaySink):
    """Shows frames letterboxed on a Linux framebuffer.

    Args:
        device: the framebuffer device; its file name (``fb0``) names the sysfs folder.
        sysfs_root: where the ``fbN`` folders are (tests point it at a fake tree).
    Raises:
        DisplayError: geometry unreadable or unsupported, or the device cannot be opened.
    """

    type_key = "fb"

    def __init__(self, device="/dev/fb0", sysfs_root=SYSFS_ROOT):
        self.device = Path(device)
        self.geometry = read_geometry(self.device.name, sysfs_root)
        g = self.geometry
        self._buffer = np.zeros((g.height, g.stride), dtype=np.uint8)
        try:
            self._fb = open(self.device, "r+b", buffering=0)
        except OSError as exc:
            raise DisplayError(f"cannot open framebuffer {self.device}: {exc} "
                               "(is the user in the 'video' group?)") from exc

    def _show(self, image_bgr: np.ndarray) -> None:
        g = self.geometry
        rows = to_fb_pixels(letterbox(image_bgr, g.width, g.height), g.bits_per_pixel)
        self._buffer[:, :rows.shape[1]] = rows
        try:
            self._fb.seek(0)
            self._fb.write(self._buffer.tobytes())
        except OSError as exc:
            raise DisplayError(f"cannot write framebuffer {self.device}: {exc}") from exc

    def close(self) -> None:
        if not self.closed:
            self._fb.close()
        super().close()
