"""The kiosk's screen as the display thread sees it: opened over the source, retried when missing.

A screen can be missing at power-on (HDMI unplugged, a desktop session holding the display) or
vanish later. Neither may stop the counting, and neither may be silent: :class:`Screen` opens the
sink for the current source, reports every change of state (``on_state``), and tries again with
a growing pause (``retry_s`` doubling up to ``retry_max_s``) while it is missing. A sink drawn over
the camera's own preview (DRM) is reopened whenever the camera source is reopened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from device.errors import DisplayError

log = logging.getLogger(__name__)


class Screen:
    """A display sink that opens itself over the current source and recovers from failures.

    Used like a sink (``show``, ``close``) from the display thread; ``attach`` is called from the
    vision thread each time the frame source (re)opens.

    Args:
        opener: ``opener(source) -> DisplaySink``; raises ``DisplayError`` when it cannot open.
        name: the configured screen (``[display] sink``), for messages.
        on_state: ``on_state(state, sink_kind, reason)`` on every change: state is ``ok``,
            ``unavailable`` (retrying) or ``off`` (the configuration asks for no screen).
        retry_s, retry_max_s: first and longest pause between attempts to open.
        clock: monotonic seconds (tests).
    """

    type_key = "screen"

    def __init__(self, opener: Callable, on_state: Callable[[str, str, str | None], None],
                 name: str = "display", retry_s: float = 5.0, retry_max_s: float = 300.0,
                 clock=time.monotonic):
        self._opener, self._on_state, self._clock, self.name = opener, on_state, clock, name
        self.retry_s, self.retry_max_s = retry_s, retry_max_s
        self._lock = threading.Lock()
        self._source = None
        self._source_changed = False
        self.sink = None
        self.state: str | None = None
        self._pause, self._next_try = retry_s, 0.0

    @property
    def wants_frames(self) -> bool:
        """False when nothing would be shown (no screen configured): skip rendering."""
        return self.state != "off"

    def attach(self, source) -> None:
        """The source (re)opened: open the screen over it at the next frame (None: it closed)."""
        with self._lock:
            self._source, self._source_changed = source, True
            self._next_try = 0.0

    def show(self, image) -> None:
        """Show a rendered frame, opening the sink first if needed. Never raises DisplayError."""
        sink = self._current()
        if sink is None:
            return
        try:
            sink.show(image)
        except DisplayError as exc:
            self._drop(f"{exc}")

    def close(self) -> None:
        self._close_sink()

    # -- inside the display thread -------------------------------------------------------------
    def _current(self):
        with self._lock:
            source, changed = self._source, self._source_changed
            self._source_changed = False
        if changed and self.sink is not None and getattr(self.sink, "type_key", "") == "drm":
            self._close_sink()  # it draws over the old camera object's preview
        if source is None:
            return None
        if self.sink is None and self._clock() >= self._next_try:
            self._open(source)
        return self.sink

    def _open(self, source) -> None:
        try:
            sink = self._opener(source)
        except DisplayError as exc:
            self._drop(str(exc))
            return
        self.sink, self._pause = sink, self.retry_s
        kind = getattr(sink, "type_key", "none")
        self._set_state("off" if kind == "none" else "ok", kind, None)

    def _drop(self, reason: str) -> None:
        kind = getattr(self.sink, "type_key", None) or self.name
        self._close_sink()
        self._next_try = self._clock() + self._pause
        log_fn = log.warning if self.state != "unavailable" else log.debug
        log_fn("display %s unavailable (%s); trying again in %.0f s", self.name, reason,
               self._pause)
        self._pause = min(self._pause * 2, self.retry_max_s)
        self._set_state("unavailable", kind, reason)

    def _close_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.close()
            except (DisplayError, OSError) as exc:
                log.debug("display: closing failed: %s", exc)

    def _set_state(self, state: str, kind: str, reason: str | None) -> None:
        changed = state != self.state
        self.state = state
        if changed:
            if state == "ok":
                log.info("display %s is showing the kiosk screen", self.name)
            self._on_state(state, kind, reason)
