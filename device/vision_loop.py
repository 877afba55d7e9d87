"""The per-frame loop of ``kiosk run``, including the camera-lost backoff.

It runs on the main thread and only ever hands work to other threads through non-blocking calls
(``DisplayWorker.submit``, the publisher's notify), so a slow screen or a dead broker cannot stall
it. It is handed every part it uses (:class:`LoopParts`) and owns the frame count.

It never queues frames: a loop slower than its source (a throttled CPU) gets the newest frame and
the source drops the rest (cameras by themselves, paced files through ``Pacer``); the status says
how many (``frames_dropped``), the loop's real rate (``fps``) and how late the last frame was
(``lag_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.errors import SourceError
from device.wiring import FpsMeter, process_age_s

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0


@dataclass
class LoopParts:
    """What the vision loop works with.

    Attributes:
        open_source: ``() -> FrameSource`` for the configured source (raises SourceError).
        pipeline: frame -> [(detection, attributes)] (``device.pipeline.VisionPipeline``).
        tracker, aggregator: tracks across frames, and the open window's counts.
        windows: the window clock and closing (``device.windows.Windows``).
        camera: status, LED and systemd reports about the source (``CameraStatus``).
        leds: presence and emotion LEDs.
        display: the display thread, or None without a screen.
        stop: set to stop the loop (signals, ``reload-config``).
        watchdog: ``() -> None`` called often, to show systemd the loop is alive.
    """

    open_source: Callable
    pipeline: object
    tracker: object
    aggregator: object
    windows: object
    camera: object
    leds: object
    display: object | None
    stop: threading.Event
    watchdog: Callable[[], object]


class VisionLoop:
    """Reads frames until stopped, the source ends, or ``max_frames``/``duration_s`` is reached.

    Args:
        parts: the collaborators (:class:`LoopParts`).
        retry_max_s: longest pause between attempts to reopen a lost source.
        max_frames, duration_s: stop cleanly after this many frames / seconds.
    """

    def __init__(self, parts: LoopParts, retry_max_s: float = 30.0,
                 max_frames: int | None = None, duration_s: float | None = None):
        self.p = parts
        self.retry_max_s, self.max_frames, self.duration_s = retry_max_s, max_frames, duration_s
        self.source = None
        self.frames = 0
        self._dropped_closed = 0  # frames the sources closed so far dropped
        self.backoff = BACKOFF_START_S
        self._delivering = False  # the open source has delivered a frame
        self.fps = FpsMeter()
        self._presence: bool | None = None
        self._emotion: str | None = None
        self._started = time.monotonic()

    def run(self) -> None:
        """Process frames until stopped; the source stays open for :meth:`close`."""
        p = self.p
        while not p.stop.is_set() and not self._limits_reached():
            p.watchdog()
            if self.source is None and not self._open():
                continue
            try:
                frame = self.source.read()
            except SourceError as exc:
                self._lost(exc)
                continue
            if frame is None:
                p.camera.ended()
                break
            if not self._delivering:
                self._delivering = True
                self.backoff = BACKOFF_START_S
                p.camera.ok()
            self._process(frame)
            if p.windows.due():
                p.windows.close()

    @property
    def dropped_frames(self) -> int:
        """Frames the sources skipped because the loop fell behind them, this run."""
        return self._dropped_closed + getattr(self.source, "dropped_frames", 0)

    def close(self) -> None:
        """Close the source (after the screen that may draw over its camera has stopped)."""
        if self.source is not None:
            self.source.close()
            self.source = None

    def _limits_reached(self) -> bool:
        if self.max_frames is not None and self.frames >= self.max_frames:
            log.info("stopping after %d frames (--max-frames)", self.frames)
            return True
        if self.duration_s is not None and time.monotonic() - self._started >= self.duration_s:
            log.info("stopping after %.1f s (--duration)", self.duration_s)
            return True
        return False

    # -- the source ----------------------------------------------------------------------------
    def _open(self) -> bool:
        """Open the source; on failure wait (backoff, capped) and return False.

        It counts as working only once it delivers a frame, so one that opens but cannot deliver
        (a folder of corrupt images, a camera that hangs) keeps backing off.
        """
        try:
            self.source = self.p.open_source()
        except SourceError as exc:
            self._lost(exc)
            return False
        self._delivering = False
        if self.p.display is not None:
            self.p.display.attach(self.source)
        return True

    def _lost(self, exc: Exception) -> None:
        p = self.p
        if self.source is not None:
            if p.display is not None:
                p.display.attach(None)  # the screen lets go of this camera first
            self._dropped_closed += getattr(self.source, "dropped_frames", 0)
            self.source.close()
            self.source = None
            for summary in p.tracker.flush():  # a new scene when it comes back
                p.aggregator.add(summary)
        p.camera.lost(exc, self.backoff)
        p.leds.presence(False)
        self._presence = False
        self._wait(self.backoff)
        self.backoff = min(self.backoff * 2, self.retry_max_s)

    def _wait(self, seconds: float) -> None:
        """Sleep, but keep closing windows on time and wake at once when stopped."""
        end = time.monotonic() + seconds
        while not self.p.stop.is_set() and not self._limits_reached():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.p.watchdog()
            self.p.stop.wait(min(left, 0.25))
            if self.p.windows.due():
                self.p.windows.close()

    # -- one frame -----------------------------------------------------------------------------
    def _process(self, frame) -> None:
        p = self.p
        results = p.pipeline.process(frame, tracker=p.tracker)
        detections = [d for d, _ in results]
        tracks = p.tracker.update(detections, [a for _, a in results], frame.timestamp)
        for summary in p.tracker.pop_finished():
            p.aggregator.add(summary)
        self.frames += 1
        p.windows.count_frame()
        if self.frames == 1:
            age = process_age_s()
            log.info("first frame analysed %s after the process started",
                     f"{age:.2f} s" if age is not None else "(process start unknown)")
        fps = self.fps.tick()
        if self.frames % 10 == 1:
            p.camera.fps(fps, dropped=self.dropped_frames,
                         lag_s=getattr(self.source, "lag_s", 0.0))
        self._update_leds(tracks)
        if p.display is not None and p.display.due():  # most frames are not shown
            p.display.submit(frame.image, tracks, p.aggregator.current(),
                             p.camera.screen_line(fps), blur_boxes=[d.box for d in detections])

    def _update_leds(self, tracks) -> None:
        present = bool(tracks)
        if present != self._presence:
            self._presence = present
            self.p.leds.presence(present)
        emotion = None
        if tracks:
            attrs = [t.attributes for t in tracks if t.attributes is not None]
            if attrs:
                emotion = max(attrs, key=lambda a: a.emotions[a.emotion]).emotion
        if emotion != self._emotion:
            self._emotion = emotion
            self.p.leds.emotion(emotion)
