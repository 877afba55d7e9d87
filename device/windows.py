"""The open audience window: when it is due, and closing it into the spool.

One clock decides when a window ends (``[aggregate] window_s`` on the monotonic clock, so a wall
clock set by NTP mid-window does not stretch or cut it). A window is stamped at its close: its end
is the wall clock then, its start the end less its monotonic length. The stamp says whether the
wall clock was trusted (``clock_synced``, see ``device.clock``): a window closed before that is
held in the spool, on this boot, until the clock is trusted and then restamped from the monotonic
clock; after ``hold_s`` without a trusted clock it goes out as it is, marked
``clock_synced: false``. A stamp earlier than the latest trusted one is never trusted (a clock set
back, a dead RTC battery).

A closed window goes to the spool (fsynced) before anyone is told, so it cannot be lost. When the
spool refuses it (the card is full beyond what dropping old windows frees), it waits in memory and
is stored before the next one; only past ``backlog_max`` waiting windows is one lost (counted).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable

from device.clock import SystemClock
from device.mqtt import audience_message, iso_utc
from device.mqtt.publisher import dumps
from device.spool import Spool, SpoolError

log = logging.getLogger(__name__)

HOLD_S = 3600.0  # unsynced windows wait this long for a trusted clock before they go out marked
BACKLOG_MAX = 1440  # windows kept in memory while the spool refuses them (a day of minutes)


def restamped(payload: str, end: float) -> str:
    """An audience payload stamped to end at wall-clock ``end``, starting ``duration_s`` before."""
    msg = json.loads(payload)
    msg.update(window_start=iso_utc(end - float(msg.get("duration_s") or 0.0)),
               window_end=iso_utc(end), clock_synced=True)
    return dumps(msg)


class Windows:
    """The window clock, the frames counted in the open window, and closing it.

    Args:
        window_s: window length in seconds.
        aggregator: the :class:`device.aggregate.WindowAggregator` counting the open window.
        spool: where closed windows wait for the broker.
        topic: the ``audience`` topic.
        device_id: the kiosk's id, in every message.
        model_version: ``() -> str``, asked at each close (models may change while running).
        spooled: ``spooled(seq)`` after a window is in the spool (status and publisher).
        lost: ``lost(message)`` when the spool refused a window (e.g. the card is full).
        log_payloads: also log each window as JSON (no broker configured).
        clock: monotonic and wall clocks and whether the wall clock is trusted
            (:class:`device.clock.SystemClock`; a fake in tests).
        hold_s: how long windows closed before the clock is trusted wait for it.
        backlog_max: windows kept in memory while the spool refuses them.
    """

    def __init__(self, window_s: float, aggregator, spool: Spool, topic: str, device_id: str,
                 model_version: Callable[[], str], spooled: Callable[[int], None],
                 lost: Callable[[str], None], log_payloads: bool = False, clock=None,
                 hold_s: float = HOLD_S, backlog_max: int = BACKLOG_MAX):
        self.window_s, self.aggregator, self.spool = window_s, aggregator, spool
        self.topic, self.device_id, self.model_version = topic, device_id, model_version
        self._spooled, self._lost, self.log_payloads = spooled, lost, log_payloads
        self._clock = clock if clock is not None else SystemClock()
        self._backlog: deque = deque()
        self.backlog_max, self.lost_count = backlog_max, 0
        self._restamped = self._clock.trusted()
        if not self._restamped:
            log.warning("the wall clock is not synchronised yet: windows wait in the spool until "
                        "it is (at most %.0f s)", hold_s)
            spool.hold_boot = self._clock.boot_id
        self._hold_until = self._clock.monotonic() + hold_s
        self.open()

    def open(self) -> None:
        self._start = self._clock.monotonic()
        self.frames = 0

    def due(self) -> bool:
        return self._clock.monotonic() - self._start >= self.window_s

    def count_frame(self) -> None:
        self.frames += 1

    @property
    def waiting(self) -> int:
        """Closed windows the spool has not taken yet (kept in memory)."""
        return len(self._backlog)

    def close(self, ended: Iterable = ()) -> int | None:
        """Close the open window (after counting ``ended`` tracks in it) and open the next.

        Returns the window's ``seq``, or None when the spool could not take it (it waits in
        memory for the next close).
        """
        for summary in ended:
            self.aggregator.add(summary)
        c = self._clock
        mono_end, end = c.monotonic(), c.wall()
        start, frames = end - (mono_end - self._start), self.frames
        trusted = c.trusted()
        synced = trusted and end >= self.spool.last_trusted
        partial = not self.due()  # stopped or restarted before the window's end
        aggregates = self.aggregator.close(start, end)
        self.open()
        model = self.model_version()
        totals: dict[str, int] = {}

        def payload(seq: int, new_totals: dict[str, int] | None = None) -> str:
            totals.update(new_totals or {})
            msg = audience_message(seq, self.device_id, start, end, aggregates, frames=frames,
                                   model_version=model, partial=partial,
                                   visitors_total=totals.get("visitors", 0))
            return dumps({**msg, "clock_synced": synced})

        self._sync_spool(trusted)
        told = (f"{aggregates.get('visitors', 0)} visitors, {aggregates.get('watchers', 0)} "
                f"watchers, {frames} frames{'' if synced else ' (wall clock not trusted)'}")
        return self._store((payload, None if trusted else (c.boot_id, mono_end),
                            end if synced else None, told,
                            {"visitors": aggregates.get("visitors", 0)}))

    def _sync_spool(self, trusted: bool) -> None:
        """Restamp this boot's held windows once the clock is trusted; release them after hold_s."""
        c = self._clock
        if trusted and not self._restamped:
            self._restamped = True
            try:
                n = self.spool.restamp(c.boot_id, c.wall() - c.monotonic(), restamped)
            except (SpoolError, OSError, ValueError) as exc:  # keep them held: nothing is lost
                log.error("could not restamp the windows closed before the clock was set: %s",
                          exc)
                self._restamped = False
                return
            self.spool.hold_boot = None
            if n:
                log.info("the wall clock is trusted: %d held windows restamped", n)
        elif not trusted and self.spool.hold_boot and c.monotonic() >= self._hold_until:
            log.warning("the wall clock is still not trusted: windows go out marked "
                        "clock_synced=false")
            self.spool.hold_boot = None

    def _store(self, entry) -> int | None:
        """Spool the waiting windows, oldest first, then this one."""
        self._backlog.append(entry)
        seq = None
        while self._backlog:
            make, unsynced, trusted_at, told, add = self._backlog[0]
            try:
                seq = self.spool.append(self.topic, make, unsynced=unsynced,
                                        trusted_at=trusted_at, add=add)
            except SpoolError as exc:  # e.g. the SD card is full: say so loudly, keep counting
                return self._refused(exc)
            self._backlog.popleft()
            log.info("window %d: %s", seq, told)
            if self.log_payloads:  # no broker: the log is where the windows can be read
                log.info("audience %s", make(seq))
            self._spooled(seq)
        return seq

    def _refused(self, exc: Exception) -> None:
        if len(self._backlog) > self.backlog_max:
            self._backlog.popleft()
            self.lost_count += 1
        log.error("the spool refused a window (%d waiting in memory, %d lost): %s",
                  len(self._backlog), self.lost_count, exc)
        self._lost(str(exc))
        return None
