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


class Pacer:
    """Sleeps so that frames come out no faster than their media timestamps say."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep):
        self.clock, self.sleep = clock, sleep
        self._origin: tuple[float, float] | None = None  # (wall, media) at the first frame

    def wait(self, media_t: float) -> None:
        now = self.clock()
        if self._origin is None or media_t < self._origin[1]:  # first frame, or a loop restarted
            self._origin = (now, media_t)
            return
        due = self._origin[0] + (media_t - self._origin[1])
        if due > now:
            self.sleep(due - now)
