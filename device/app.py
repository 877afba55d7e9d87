"""``kiosk run``: the appliance's main loop.

config -> LEDs "starting" -> MQTT up (status "starting") -> models self-test -> open the source
-> per frame: pipeline -> tracker -> ended tracks into the window -> at the window's end: spool,
then the publisher thread sends it. The screen and MQTT run on their own threads behind bounded
hand-overs, so neither can stall the counting; the spool makes sure no window is lost.

Time: tracking uses each frame's own timestamp (media time for files, so results do not depend on
CPU speed); window lengths, uptime and backoff use the monotonic clock; window labels use the wall
clock. SIGTERM/SIGINT close the current window, flush the spool for a few seconds, publish
``offline`` and exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict

from device.config import load_config
from device.errors import ConfigError, ModelError
from device.mqtt import Publisher, Topics, audience_message, discovery_messages, make_communicator
from device.mqtt.publisher import dumps
from device.spool import Spool, SpoolError
from device.health import Health
from device.notify import Notifier
from device.wiring import StatusBoard, make_leds, open_display, overrides_from_args
from device.worker import DisplayWorker

log = logging.getLogger(__name__)

EXIT_OK, EXIT_CONFIG, EXIT_MODELS = 0, 2, 3


class App:
    """One run of the appliance. Every part can be injected (tests drive it without hardware).

    Args:
        cfg: a completed :class:`device.config.Config`.
        pipeline: object with ``process``/``self_test``/``accelerator``/``model_version``;
            None builds the real :class:`device.pipeline.VisionPipeline`.
        open_source: ``(spec, loop, pace) -> FrameSource``; None: ``device.sources.open_source``.
        comm, leds, sink: MQTT communicator, LEDs and display sink; None builds them from ``cfg``.
        max_frames, duration_s: stop cleanly after this many frames / seconds.
        reload: ``() -> Config`` re-reading the configuration for ``reload-config``.
        notifier: tells systemd about start-up, status and liveness (``device.notify``).
    """

    def __init__(self, cfg, pipeline=None, open_source=None, comm=None, leds=None, sink=None,
                 max_frames: int | None = None, duration_s: float | None = None, reload=None,
                 notifier: Notifier | None = None):
        self.cfg, self.max_frames, self.duration_s = cfg, max_frames, duration_s
        self.notifier = notifier if notifier is not None else Notifier()
        self._pipeline, self._open_source, self._reload_fn = pipeline, open_source, reload
        self.stop_event = threading.Event()
        self.reload_requested = False
        self.board = StatusBoard(cfg)
        self.leds = leds if leds is not None else make_leds(cfg.leds)
        self.health = Health(self.leds)
        self.topics = Topics(cfg.mqtt.prefix)
        self.spool = Spool(cfg.spool.path, cfg.spool.max_age_s)
        self.comm = comm if comm is not None else make_communicator(cfg.mqtt)
        self.publisher = Publisher(
            self.comm, self.spool, self.topics, status=self.board.snapshot,
            ha_status_topic=f"{cfg.mqtt.discovery_prefix}/status" if cfg.mqtt.discovery else None,
            handlers={"reload-config": self._reload}, qos=cfg.mqtt.qos, status_s=cfg.mqtt.status_s,
            on_link=self._broker_link if cfg.mqtt.host else None)
        self._sink = sink
        self.display: DisplayWorker | None = None
        self.frames = 0

    # -- commands (called on the MQTT thread) --------------------------------------------------
    def _reload(self) -> dict:
        """Validate the configuration again; if it is good, restart with it (same process id)."""
        new = self._reload_fn() if self._reload_fn else self.cfg  # ConfigError -> error result
        changed = [k for k in asdict(new) if k != "path" and asdict(new)[k] != asdict(self.cfg)[k]]
        self.reload_requested = True
        self.stop_event.set()
        return {"valid": True, "changed": changed, "restarting": True}

    def _broker_link(self, connected: bool) -> None:
        self.health.update(broker_ok=connected)

    def _display_state(self, state: str, kind: str, reason: str | None) -> None:
        """The screen opened, went missing or is off (called on the display thread)."""
        self.board.set(display=kind, display_state=state, display_error=reason)
        self.health.update(screen_ok=None if state == "off" else state == "ok")
        self.publisher.status_changed()

    # -- setup ---------------------------------------------------------------------------------
    def _load_models(self):
        if self._pipeline is None:  # the provisioning slots (A/B, rollback) self-test their models
            from device.provision_hook import ProvisionHook

            self._pipeline = ProvisionHook(self).pipeline()
        else:
            self._pipeline.self_test()
        p = self._pipeline
        self._refresh_model_info()
        if self.cfg.mqtt.discovery:
            self.publisher.set_discovery(discovery_messages(
                self.topics, self.cfg.device.id, self.cfg.device.name,
                self.cfg.mqtt.discovery_prefix, str(p.model_version)))
        return p

    def _refresh_model_info(self) -> None:
        """Model facts for status and windows (provisioning may swap models while running)."""
        p = self._pipeline
        self.board.set(model_version=str(p.model_version), accelerator=str(p.accelerator),
                       analyzer_available=bool(getattr(p, "analyzer_available", False)))

    def _build_tracking(self):
        from device.aggregate import WindowAggregator
        from device.tracking import Tracker

        t, a = self.cfg.tracking, self.cfg.aggregate
        opts = {k: v for k, v in asdict(t).items() if v is not None}
        groups = {"age_groups": a.age_groups} if a.age_groups else {}
        self.tracker = Tracker(**opts, **groups)
        self.aggregator = WindowAggregator(
            window_s=a.window_s, min_dwell_s=a.min_dwell_s, k_anonymity=a.k_anonymity,
            min_gender_prob=a.min_gender_prob, min_emotion_prob=a.min_emotion_prob, **groups)

    def _start_display(self) -> None:
        """The display thread; its screen opens over the source once that runs."""
        d, p = self.cfg.display, self.cfg.privacy
        if self._sink is None and d.sink == "none" and not p.debug_snapshots:
            return  # nothing to show: do not spend CPU on drawing
        from device.display import render
        from device.screen import Screen

        injected = self._sink
        opener = (lambda source: injected) if injected is not None else \
            (lambda source: open_display(d, source))
        screen = Screen(opener, on_state=self._display_state, name=d.sink)
        self.display = DisplayWorker(screen, render, blur_faces=d.blur_faces, max_fps=d.max_fps,
                                     max_width=d.max_width,
                                     snapshot_dir=p.snapshot_dir if p.debug_snapshots else None)
        self.display.start()

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> int:
        self.leds.starting()
        last = self.spool.next_seq - 1
        self.board.set(last_seq=last if last > 0 else None)
        self.publisher.start()
        try:
            pipeline = self._load_models()
        except ModelError as exc:
            log.error("models failed their self-test: %s", exc)
            self.board.set(state="error", error=f"models: {exc}")
            self.leds.error()
            self._shutdown(close_window=False)
            return EXIT_MODELS
        self._build_tracking()
        self._start_display()
        self.open_window()
        self.board.set(state="running")
        self.notifier.ready(f"models {self.board.get('model_version')} passed their self-test; "
                            f"opening {self.cfg.source.spec}")
        from device.vision_loop import VisionLoop

        loop = VisionLoop(self, pipeline)
        try:
            loop.run()
        finally:
            self._shutdown(close_window=True, source=loop)
        return EXIT_OK

    def _shutdown(self, close_window: bool, source=None) -> None:
        self.board.set(state="stopping")
        self.notifier.stopping()
        if close_window:
            self.close_window(final=True)
        if self.display is not None:
            self.display.stop()
        if source is not None:  # after the screen: the DRM view draws over the camera
            source.close()
        self.publisher.stop(flush_timeout=5.0)
        self.spool.close()
        self.leds.close()

    # -- windows -------------------------------------------------------------------------------
    def open_window(self) -> None:
        self._win_wall, self._win_mono, self.window_frames = time.time(), time.monotonic(), 0

    def window_due(self) -> bool:
        return time.monotonic() - self._win_mono >= self.cfg.aggregate.window_s

    def close_window(self, final: bool = False) -> None:
        """Close the open window: aggregates -> spool (fsynced) -> wake the publisher."""
        if final:
            for summary in self.tracker.flush():
                self.aggregator.add(summary)
        start, end, frames = self._win_wall, time.time(), self.window_frames
        aggregates = self.aggregator.close(start, end)
        self.open_window()
        self._refresh_model_info()
        model = self.board.get("model_version")

        def payload(seq: int) -> str:
            return dumps(audience_message(seq, self.cfg.device.id, start, end, aggregates,
                                          frames=frames, model_version=model))

        try:
            seq = self.spool.append(self.topics.audience, payload)
        except SpoolError as exc:  # e.g. the SD card is full: say so loudly, keep counting
            log.error("window lost: %s", exc)
            self.board.set(error=str(exc))
            return
        self.board.set(last_seq=seq)
        log.info("window %d: %d visitors, %d watchers, %d frames", seq,
                 aggregates.get("visitors", 0), aggregates.get("watchers", 0), frames)
        if not self.cfg.mqtt.host:  # no broker: the log is where the windows can be read
            log.info("audience %s", payload(seq))
        self.publisher.notify()


def _install_signals(app: App) -> None:
    def handler(signum, frame):
        log.info("%s: finishing the current window and stopping", signal.Signals(signum).name)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_main(args) -> int:
    """``kiosk run``: returns the process exit status (0 after a clean stop)."""
    overrides = overrides_from_args(args)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        app = App(cfg, max_frames=getattr(args, "max_frames", None),
                  duration_s=getattr(args, "duration", None),
                  reload=lambda: load_config(args.config, overrides))
    except SpoolError as exc:
        print(f"kiosk: error: {exc} (set [state] dir or --state-dir to a writable folder)",
              file=sys.stderr)
        return EXIT_CONFIG
    _install_signals(app)
    code = app.run()
    if app.reload_requested:
        log.info("reload-config: restarting with the new configuration")
        app.notifier.send("RELOADING=1", "STATUS=restarting with the new configuration")
        os.execv(sys.executable, [sys.executable, "-m", "device.cli", *sys.argv[1:]])
    return code
