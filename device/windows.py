"""The open audience window: when it is due, and closing it into the spool.

One clock decides when a window ends (``[aggregate] window_s`` on the monotonic clock, so a wall
clock set by NTP mid-window does not stretch or cut it); window labels are wall-clock UTC. A
closed window goes to the spool (fsynced) before anyone is told, so it cannot be lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from device.mqtt import audience_message
from device.mqtt.publisher import dumps
from device.spool import Spool, SpoolError

log = logging.getLogger(__name__)


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
        clock, wall: monotonic and wall-clock seconds (tests).
    """

    def __init__(self, window_s: float, aggregator, spool: Spool, topic: str, device_id: str,
                 model_version: Callable[[], str], spooled: Callable[[int], None],
                 lost: Callable[[str], None], log_payloads: bool = False,
                 clock=time.monotonic, wall=time.time):
        self.window_s, self.aggregator, self.spool = window_s, aggregator, spool
        self.topic, self.device_id, self.model_version = topic, device_id, model_version
        self._spooled, self._lost, self.log_payloads = spooled, lost, log_payloads
        self._clock, self._wall = clock, wall
        self.open()

    def open(self) -> None:
        self._start_wall, self._start = self._wall(), self._clock()
        self.frames = 0

    def due(self) -> bool:
        return self._clock() - self._start >= self.window_s

    def count_frame(self) -> None:
        self.frames += 1

    def close(self, ended: Iterable = ()) -> int | None:
        """Close the open window (after counting ``ended`` tracks in it) and open the next.

        Returns the window's ``seq``, or None when the spool could not take it.
        """
        for summary in ended:
            self.aggregator.add(summary)
        start, end, frames = self._start_wall, self._wall(), self.frames
        partial = not self.due()  # stopped or restarted before the window's end
        aggregates = self.aggregator.close(start, end)
        self.open()
        model = self.model_version()
        totals: dict[str, int] = {}

        def payload(seq: int, new_totals: dict[str, int]) -> str:
            totals.update(new_totals)
            return dumps(audience_message(seq, self.device_id, start, end, aggregates,
                                          frames=frames, model_version=model, partial=partial,
                                          visitors_total=totals["visitors"]))

        try:
            seq = self.spool.append(self.topic, payload,
                                    add={"visitors": aggregates.get("visitors", 0)})
        except SpoolError as exc:  # e.g. the SD card is full: say so loudly, keep counting
            log.error("window lost: %s", exc)
            self._lost(str(exc))
            return None
        log.info("window %d: %d visitors, %d watchers, %d frames", seq,
                 aggregates.get("visitors", 0), aggregates.get("watchers", 0), frames)
        if self.log_payloads:  # no broker: the log is where the windows can be read
            log.info("audience %s", payload(seq, totals))
        self._spooled(seq)
        return seq
