"""The one interface every frame source follows."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator

from device.types import Frame


class FrameSource(abc.ABC):
    """A camera, a file or a folder that yields :class:`Frame` objects.

    ``read()`` returns the next frame, or None when a finite source has ended. It raises
    :class:`device.errors.SourceError` when the source fails (missing file, camera unplugged) and
    never blocks forever. Sources are context managers and iterables.
    """

    #: short kind name used in status messages ("video", "camera", ...)
    kind = "source"

    def __init__(self, name: str):
        self.name = name
        self.fps: float | None = None
        self.size: tuple[int, int] | None = None  # (width, height) when known
        self.bad_frames = 0  # frames that could not be decoded and were skipped
        self.dropped_frames = 0  # frames skipped because the reader fell behind (paced sources)
        self.lag_s = 0.0  # how late the last frame was against its schedule (paced sources)

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of a finite source."""

    def close(self) -> None:  # noqa: B027 (optional to override: a source may hold nothing)
        """Release the device or file. Safe to call twice."""

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


MAX_LAG_S = 0.2  # a paced frame due longer ago than this is dropped, as a camera would drop it


class Pacer:
    """Sleeps so that frames come out no faster than their media timestamps say, and tells the
    source which frames are already too late (a reader slower than real time).

    A camera does not wait for a slow reader: its frames are overwritten and the reader gets the
    newest. A paced file behaves the same way: a source asks :meth:`late` before decoding a frame
    and skips it (counted in ``dropped_frames``) when its time is more than ``max_lag_s`` past,
    so the delay between a frame's time and its analysis stays bounded instead of growing.

    Args:
        max_lag_s: how far behind its schedule a frame may be and still be delivered.
    """

    def __init__(self, clock=time.monotonic, sleep=time.sleep, max_lag_s: float = MAX_LAG_S):
        self.clock, self.sleep, self.max_lag_s = clock, sleep, max_lag_s
        self._origin: tuple[float, float] | None = None  # (wall, media) at the first frame
        self.lag_s = 0.0  # how late the last delivered frame was

    def _due(self, media_t: float) -> float | None:
        if self._origin is None or media_t < self._origin[1]:
            return None  # first frame, or a loop restarted
        return self._origin[0] + (media_t - self._origin[1])

    def late(self, media_t: float) -> bool:
        """True when the frame at ``media_t`` is due more than ``max_lag_s`` ago: skip it."""
        due = self._due(media_t)
        return due is not None and self.clock() - due > self.max_lag_s

    def wait(self, media_t: float) -> None:
        now = self.clock()
        due = self._due(media_t)
        if due is None:
            self._origin, self.lag_s = (now, media_t), 0.0
            return
        self.lag_s = max(0.0, now - due)
        if due > now:
            self.sleep(due - now)
