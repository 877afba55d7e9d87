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
import sqlite3
import sys
import threading
from dataclasses import asdict

from device.camera_status import CameraStatus
from device.clock import SystemClock
from device.config import load_config
from device.errors import ConfigError, ModelError
from device.health import Health
from device.mqtt import Publisher, Topics, discovery_messages, make_communicator
from device.mqtt.discovery import config_wildcard
from device.notify import Notifier
from device.spool import Spool, SpoolError
from device.vision_loop import LoopParts, VisionLoop
from device.windows import Windows
from device.wiring import StatusBoard, make_leds, open_display, overrides_from_args, preview_for
from device.worker import DisplayWorker

log = logging.getLogger(__name__)

EXIT_OK, EXIT_CONFIG, EXIT_MODELS = 0, 2, 3


class App:
    """One run of the appliance: builds the parts once and hands each the collaborators it uses.

    Every part can be injected (tests drive it without hardware).

    Args:
        cfg: a completed :class:`device.config.Config`.
        pipeline: object with ``process(frame, tracker=None)``/``self_test``/``accelerator``/
            ``model_version`` (``device.pipeline.VisionPipeline``); None: the models of the
            provisioning slots (``device.provision_hook``).
        open_source: ``(spec, loop, pace[, preview]) -> FrameSource``; None:
            ``device.sources.open_source``.
        comm, leds, sink: MQTT communicator, LEDs and display sink; None builds them from ``cfg``.
        max_frames, duration_s: stop cleanly after this many frames / seconds.
        reload: ``() -> Config`` re-reading the configuration for ``reload-config``.
        notifier: tells systemd about start-up, status and liveness (``device.notify``).
        build_pipeline: ``(models_cfg, folder) -> pipeline`` for the provisioning slots.
        on_provision_step: called at each journaled provisioning step (see ``Provisioner``).
        clock: monotonic and wall clocks and whether the wall clock is trusted; None:
            ``device.clock.SystemClock`` as ``[clock]`` says.
    """

    def __init__(self, cfg, pipeline=None, open_source=None, comm=None, leds=None, sink=None,
                 max_frames: int | None = None, duration_s: float | None = None, reload=None,
                 notifier: Notifier | None = None, build_pipeline=None, on_provision_step=None,
                 clock=None):
        self.cfg, self.max_frames, self.duration_s = cfg, max_frames, duration_s
        self.notifier = notifier if notifier is not None else Notifier()
        self._pipeline, self._open_source, self._reload_fn = pipeline, open_source, reload
        self._build_pipeline, self._on_provision_step = build_pipeline, on_provision_step
        self.stop_event = threading.Event()
        self.reload_requested = False
        self.board = StatusBoard(cfg)
        self.leds = leds if leds is not None else make_leds(cfg.leds)
        self.health = Health(self.leds)
        self.topics = Topics(cfg.mqtt.prefix)
        self.clock = clock if clock is not None else SystemClock(trusted=cfg.clock.trusted)
        self.spool = Spool(cfg.spool.path, cfg.spool.max_age_s, max_bytes=cfg.spool.max_bytes)
        self.board.add_source(self._spool_facts)
        self.comm = comm if comm is not None else make_communicator(cfg.mqtt)
        self.publisher = Publisher(
            self.comm, self.spool, self.topics, status=self.board.snapshot,
            ha_status_topic=f"{cfg.mqtt.discovery_prefix}/status" if cfg.mqtt.discovery else None,
            discovery=None if cfg.mqtt.discovery else [],
            forget_topic=config_wildcard(cfg.mqtt.discovery_prefix, cfg.device.id),
            handlers={"reload-config": self._reload}, qos=cfg.mqtt.qos, status_s=cfg.mqtt.status_s,
            on_link=self._broker_link if cfg.mqtt.host else None)
        self._sink = sink
        self.display: DisplayWorker | None = None
        self.loop: VisionLoop | None = None

    @property
    def frames(self) -> int:
        """Frames processed so far (the vision loop owns the count)."""
        return self.loop.frames if self.loop is not None else 0

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

            hook = ProvisionHook(
                self.cfg, self.comm, self.topics.prefix,
                on_models=lambda version: self.board.set(model_version=version),
                on_step=self._on_provision_step,
                **({"build": self._build_pipeline} if self._build_pipeline else {}))
            self._pipeline = hook.pipeline()
        else:
            self._pipeline.self_test()
        p = self._pipeline
        self._refresh_model_info()
        if self.cfg.mqtt.discovery:
            m = self.cfg.mqtt
            self.publisher.set_discovery(discovery_messages(
                self.topics, self.cfg.device.id, self.cfg.device.name, m.discovery_prefix,
                str(p.model_version), configuration_url=m.configuration_url,
                **({"age_groups": self.cfg.aggregate.age_groups}
                   if self.cfg.aggregate.age_groups else {})))
        return p

    def _refresh_model_info(self) -> str:
        """Model facts for status and windows (provisioning may swap models while running)."""
        p = self._pipeline
        self.board.set(model_version=str(p.model_version), accelerator=str(p.accelerator),
                       analyzer_available=bool(getattr(p, "analyzer_available", False)))
        return str(p.model_version)

    def _build_tracking(self):
        from device.aggregate import WindowAggregator
        from device.tracking import Tracker

        t, a = self.cfg.tracking, self.cfg.aggregate
        opts = {k: v for k, v in asdict(t).items() if v is not None}
        groups = {"age_groups": a.age_groups} if a.age_groups else {}
        self.tracker = Tracker(**opts, **groups)
        self.aggregator = WindowAggregator(
            min_dwell_s=a.min_dwell_s, k_anonymity=a.k_anonymity,
            min_gender_prob=a.min_gender_prob, min_emotion_prob=a.min_emotion_prob, **groups)
        self.windows = Windows(
            a.window_s, self.aggregator, self.spool, self.topics.audience, self.cfg.device.id,
            model_version=self._refresh_model_info, spooled=self._spooled,
            lost=lambda message: self.board.set(error=message),
            log_payloads=not self.cfg.mqtt.host, clock=self.clock, hold_s=self.cfg.clock.hold_s)

    def _spool_facts(self) -> dict:
        """Status fields about the clock, the spool's size and windows it could not take."""
        w = getattr(self, "windows", None)
        facts = {"clock_synced": self.clock.trusted(), "windows_waiting": w.waiting if w else 0,
                 "windows_lost": w.lost_count if w else 0}
        try:
            facts.update(spool_bytes=self.spool.bytes, spool_dropped_full=self.spool.dropped_full)
        except sqlite3.Error:  # closed at shutdown: its figures went with it
            pass
        return facts

    def _spooled(self, seq: int) -> None:
        self.board.set(last_seq=seq)
        self.publisher.notify()

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

    def _source_opener(self):
        """``() -> FrameSource`` for the configured source, with the preview the screen needs."""
        s = self.cfg.source
        opener = self._open_source
        if opener is None:
            from device.sources import open_source as opener
        preview = preview_for(self.cfg.display)
        extra = {"preview": preview} if preview else {}  # the camera starts its own preview
        return lambda: opener(s.spec, loop=s.loop, pace=s.pace, **extra)

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
            self._shutdown()
            return EXIT_MODELS
        self._build_tracking()
        self._start_display()
        self.board.set(state="running")
        self.notifier.ready(f"models {self.board.get('model_version')} passed their self-test; "
                            f"opening {self.cfg.source.spec}")
        camera = CameraStatus(self.board, self.health, self.notifier,
                              self.publisher.status_changed, self.cfg.source.spec)
        parts = LoopParts(open_source=self._source_opener(), pipeline=pipeline,
                          tracker=self.tracker, aggregator=self.aggregator, windows=self.windows,
                          camera=camera, leds=self.leds, display=self.display,
                          stop=self.stop_event, watchdog=self.notifier.watchdog)
        self.loop = VisionLoop(parts, retry_max_s=self.cfg.source.retry_max_s,
                               max_frames=self.max_frames, duration_s=self.duration_s)
        try:
            self.loop.run()
        finally:
            self.windows.close(self.tracker.flush())
            self._shutdown(source=self.loop)
        return EXIT_OK

    def _shutdown(self, source=None) -> None:
        self.board.set(state="stopping")
        self.notifier.stopping()
        if self.display is not None:
            self.display.stop()
        if source is not None:  # after the screen: the DRM view draws over the camera
            source.close()
        self.publisher.stop(flush_timeout=5.0)
        self.spool.close()
        self.leds.close()


def _install_signals(app: App) -> None:
    def handler(signum, frame):
        log.info("%s: finishing the current window and stopping", signal.Signals(signum).name)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_main(args, **parts) -> int:
    """``kiosk run``: returns the process exit status (0 after a clean stop).

    ``parts`` go to :class:`App` (e.g. ``build_pipeline``), for programs that embed the appliance.
    """
    overrides = overrides_from_args(args)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        app = App(cfg, max_frames=getattr(args, "max_frames", None),
                  duration_s=getattr(args, "duration", None),
                  reload=lambda: load_config(args.config, overrides), **parts)
    except SpoolError as exc:
        print(f"kiosk: error: {exc} (set [state] dir or --state-dir to a writable folder)",
              file=sys.stderr)
        return EXIT_CONFIG
    _install_signals(app)
    code = app.run()
    if app.reload_requested:
        log.info("reload-config: restarting with the new configuration")
        app.notifier.send("RELOADING=1", "STATUS=restarting with the new configuration")
        # the same command line again (``sys.orig_argv``: ``-m device.cli`` or the kiosk script)
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return code
