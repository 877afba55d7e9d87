"""The per-frame loop of ``kiosk run``, including the camera-lost backoff.

It runs on the main thread and only ever hands work to other threads through non-blocking calls
(``DisplayWorker.submit``, ``Publisher.notify``), so a slow screen or a dead broker cannot stall it.
"""

from __future__ import annotations

import logging
import time

from device.errors import SourceError
from device.wiring import FpsMeter, preview_for, process_age_s

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0


class VisionLoop:
    """Reads frames until stopped, the source ends, or ``max_frames``/``duration_s`` is reached.

    Args:
        app: the :class:`device.app.App` (config, tracker, aggregator, windows, LEDs, status).
        pipeline: the vision pipeline.
    """

    def __init__(self, app, pipeline):
        self.app, self.pipeline = app, pipeline
        self.source = None
        self.backoff = BACKOFF_START_S
        self._delivering = False  # the open source has delivered a frame
        self.fps = FpsMeter()
        self._presence: bool | None = None
        self._emotion: str | None = None
        self._started = time.monotonic()

    def run(self) -> None:
        """Process frames until stopped; the source stays open for :meth:`close`."""
        app = self.app
        while not app.stop_event.is_set() and not self._limits_reached():
            app.notifier.watchdog()
            if self.source is None and not self._open():
                continue
            try:
                frame = self.source.read()
            except SourceError as exc:
                self._lost(exc)
                continue
            if frame is None:
                log.info("source %s ended", app.cfg.source.spec)
                app.board.set(camera="ended")
                break
            if not self._delivering:
                self._back()
            self._process(frame)
            if app.window_due():
                app.close_window()

    def close(self) -> None:
        """Close the source (after the screen that may draw over its camera has stopped)."""
        if self.source is not None:
            self.source.close()
            self.source = None

    def _limits_reached(self) -> bool:
        if self.app.max_frames is not None and self.app.frames >= self.app.max_frames:
            log.info("stopping after %d frames (--max-frames)", self.app.frames)
            return True
        if self.app.duration_s is not None and \
                time.monotonic() - self._started >= self.app.duration_s:
            log.info("stopping after %.1f s (--duration)", self.app.duration_s)
            return True
        return False

    # -- the source ----------------------------------------------------------------------------
    def _open(self) -> bool:
        """Open the source; on failure wait (backoff, capped) and return False."""
        cfg, app = self.app.cfg.source, self.app
        opener = app._open_source
        if opener is None:
            from device.sources import open_source as opener
        preview = preview_for(app.cfg.display)
        try:  # the camera starts its own preview, when the screen draws over it
            self.source = opener(cfg.spec, loop=cfg.loop, pace=cfg.pace,
                                 **({"preview": preview} if preview else {}))
        except SourceError as exc:
            self._lost(exc)
            return False
        self._delivering = False
        if app.display is not None:
            app.display.attach(self.source)
        return True

    def _back(self) -> None:
        """The source delivered its first frame since it (re)opened: it counts as working only
        now, so one that opens but cannot deliver (a folder of corrupt images, a camera that
        hangs) keeps backing off instead of being retried every second."""
        app, spec = self.app, self.app.cfg.source.spec
        self._delivering = True
        if app.board.get("camera") == "lost":
            log.info("source %s is back", spec)
        app.board.set(camera="ok", state="running", error=None)
        app.publisher.status_changed()
        app.health.update(camera="ok")
        app.notifier.status(f"counting from {spec}")
        self.backoff = BACKOFF_START_S

    def _lost(self, exc: Exception) -> None:
        app = self.app
        if self.source is not None:
            if app.display is not None:
                app.display.attach(None)  # the screen lets go of this camera first
            self.source.close()
            self.source = None
            for summary in app.tracker.flush():  # a new scene when it comes back
                app.aggregator.add(summary)
        log.error("source %s unavailable: %s; retrying in %.0f s", app.cfg.source.spec, exc,
                  self.backoff)
        app.board.set(camera="lost", error=f"source: {exc}", fps=0.0)
        app.publisher.status_changed()
        app.health.update(camera="lost")
        app.notifier.status(f"source {app.cfg.source.spec} unavailable ({exc}); retrying")
        app.leds.presence(False)
        self._presence = False
        self._wait(self.backoff)
        self.backoff = min(self.backoff * 2, app.cfg.source.retry_max_s)

    def _wait(self, seconds: float) -> None:
        """Sleep, but keep closing windows on time and wake at once when stopped."""
        end = time.monotonic() + seconds
        while not self.app.stop_event.is_set() and not self._limits_reached():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.app.notifier.watchdog()
            self.app.stop_event.wait(min(left, 0.25))
            if self.app.window_due():
                self.app.close_window()

    # -- one frame -----------------------------------------------------------------------------
    def _process(self, frame) -> None:
        app = self.app
        results = self.pipeline.process(frame)
        detections = [d for d, _ in results]
        tracks = app.tracker.update(detections, [a for _, a in results], frame.timestamp)
        for summary in app.tracker.pop_finished():
            app.aggregator.add(summary)
        app.frames += 1
        app.window_frames += 1
        if app.frames == 1:
            age = process_age_s()
            log.info("first frame analysed %s after the process started",
                     f"{age:.2f} s" if age is not None else "(process start unknown)")
        fps = self.fps.tick()
        if app.frames % 10 == 1:
            app.board.set(fps=round(fps, 2))
        self._update_leds(tracks)
        if app.display is not None and app.display.due():  # most frames are not shown
            status = {"fps": round(fps, 1), "accelerator": app.board.get("accelerator"),
                      "model_version": app.board.get("model_version")}
            app.display.submit(frame.image, tracks, app.aggregator.current(), status,
                               blur_boxes=[d.box for d in detections])

    def _update_leds(self, tracks) -> None:
        present = bool(tracks)
        if present != self._presence:
            self._presence = present
            self.app.leds.presence(present)
        emotion = None
        if tracks:
            attrs = [t.attributes for t in tracks if t.attributes is not None]
            if attrs:
                emotion = max(attrs, key=lambda a: a.emotions[a.emotion]).emotion
        if emotion != self._emotion:
            self._emotion = emotion
            self.app.leds.emotion(emotion)
