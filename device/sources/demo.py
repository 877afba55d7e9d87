"""The demo input every install has: a public-domain portrait panned and zoomed into a short clip.

The portrait (NASA, public domain; scikit-image's ``data.astronaut()``) ships with the models as
``device/models/selftest/astronaut.jpg``, so the demo needs nothing beyond the wheel. The clip
is computed frame by frame (nothing is stored): the camera pans in from the side, and the face
comes closer as if someone walked up to the kiosk and lingers there until the clip ends.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.errors import SourceError
from device.models import PORTRAIT
from device.sources.base import FrameSource, Pacer
from device.types import Frame


def load_portrait() -> np.ndarray:
    """The astronaut portrait as BGR uint8 (512 x 512)."""
    image = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"the demo portrait {PORTRAIT} is missing or unreadable "
                          "(reinstall audience-kiosk)")
    return image


def camera_path(t: float, duration: float) -> tuple[float, float, float]:
    """Where the virtual camera looks at time t: (centre x, centre y) in portrait pixels and zoom.

    Pure function of time, so the clip is the same on every machine.
    """
    u = (t % duration) / duration
    if u < 0.15:  # pan in from the right: the face enters the frame
        k = u / 0.15
        return 260 + (1 - k) * 700, 190.0, 1.0
    # approach: zoom in, then linger close to the screen until the clip ends (a looped clip
    # starts with an empty frame again, so each pass is a new visit)
    k = min(1.0, (u - 0.15) / 0.4)
    return 260.0, 190.0 - 40 * k, 1.0 + 1.6 * k


class DemoSource(FrameSource):
    """A synthetic clip made from the astronaut portrait; loops when asked.

    Args:
        size: (width, height) of the frames.
        fps: frames per second of media time.
        duration: seconds per pass.
    """

    kind = "demo"

    def __init__(self, size=(640, 360), fps: float = 15.0, duration: float = 12.0,
                 loop: bool = False, pace: bool = False):
        super().__init__("demo:astronaut")
        self.portrait = load_portrait()
        self.size, self.fps, self.duration, self.loop = size, fps, duration, loop
        self._pacer = Pacer() if pace else None
        self._index = 0
        self._frames_per_pass = int(round(duration * fps))

    def render(self, t: float) -> np.ndarray:
        """The frame at media time ``t``."""
        w, h = self.size
        cx, cy, zoom = camera_path(t, self.duration)
        scale = zoom * h / 512 * 1.4
        m = np.array([[scale, 0, w / 2 - scale * cx], [0, scale, h / 2 - scale * cy]])
        return cv2.warpAffine(self.portrait, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))

    def read(self) -> Frame | None:
        if not self.loop and self._index >= self._frames_per_pass:
            return None
        if self._pacer:
            while self._pacer.late(self._index / self.fps) and (
                    self.loop or self._index + 1 < self._frames_per_pass):
                self._index += 1  # too late: skipped before it is rendered
                self.dropped_frames += 1
        t = self._index / self.fps
        if self._pacer:
            self._pacer.wait(t)
            self.lag_s = self._pacer.lag_s
        frame = Frame(image=self.render(t), timestamp=t, index=self._index, source=self.name)
        self._index += 1
        return frame
