"""Provisioning inside ``kiosk run``: the bundle topic, pipeline reloads and the health watch.

The app builds its pipeline through :meth:`ProvisionHook.pipeline`. That boots the model slots
(``Provisioner.boot``), builds the pipeline on the chosen models and wraps it in a
:class:`WatchedPipeline`, which reports every frame to the provisioner and swaps the real pipeline
when new models are switched in or rolled back, without restarting the process. Bundles arriving
on ``<prefix>provision/bundle`` are handled on a worker thread, never on paho's.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path

from device.errors import BundleError
from device.provision import Provisioner
from provisioning import kat, keys

log = logging.getLogger(__name__)

# tests: models of this version fail on every frame (a model that breaks only after the swap)
FAULT_ENV = "KIOSK_PROVISION_FAULT_VERSION"


class WatchedPipeline:
    """The app's pipeline, replaceable in place, reporting each frame to the provisioner.

    While new models are on trial an exception from them is reported (and leads to a rollback)
    instead of stopping the appliance; outside a trial exceptions pass through as before.
    """

    def __init__(self, inner, provisioner: Provisioner):
        self.inner, self.provisioner = inner, provisioner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def process(self, frame):
        inner, prov = self.inner, self.provisioner
        try:
            fault = os.environ.get(FAULT_ENV)
            if fault and fault == str(inner.model_version):
                raise RuntimeError(f"injected fault for models {inner.model_version}")
            out = inner.process(frame)
        except Exception as exc:
            if not prov.on_trial:
                raise
            log.error("pipeline failed on models on trial: %s", exc)
            prov.frame_done(exc)
            prov.poll()
            return []
        if prov.on_trial:  # outside a trial, never wait on the lock a staging bundle holds
            prov.frame_done()
            prov.poll()
        return out


class ProvisionHook:
    """Connects a :class:`Provisioner` to a running :class:`device.app.App`."""

    def __init__(self, app):
        self.app, cfg = app, app.cfg
        p = cfg.provisioning
        trusted = list(p.trusted_keys)
        try:
            keys.trusted_keyring(trusted)
        except BundleError as exc:
            log.error("[provisioning] trusted_keys: %s; every bundle will be rejected", exc)
            trusted = []
        self.provisioner = Provisioner(
            cfg.state.dir, trusted, health_s=p.health_s, allow_downgrade=p.allow_downgrade,
            factory_dir=Path(cfg.models.dir), reload=self._reload, self_test=self._self_test)
        self.watched: WatchedPipeline | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._work, name="provisioning", daemon=True)

    def build(self, models_dir: Path):
        """A pipeline on ``models_dir`` with the configured settings."""
        from device.pipeline import VisionPipeline

        m = self.app.cfg.models
        own = Path(models_dir) != Path(m.dir)  # a slot's manifest names its own detector
        return VisionPipeline(models_dir, threads=m.threads, analyze_every=m.analyze_every,
                              detector_variant=None if own else (m.detector_variant or None),
                              detector_tiles=m.detector_tiles, analyzer_flip=m.analyzer_flip)

    def _self_test(self, models_dir: Path) -> list[str]:
        problems = kat.self_test(models_dir)
        if problems:
            return problems
        try:
            self.build(models_dir).self_test()
        except Exception as exc:  # whatever the pipeline raises means these models are unusable
            return [f"pipeline self-test: {exc}"]
        return []

    def pipeline(self) -> WatchedPipeline:
        """Boot the slots, start listening for bundles, return the watched pipeline."""
        try:
            folder = self.provisioner.boot()
        except OSError as exc:  # e.g. a read-only state dir on a developer's machine
            log.error("model slots unavailable (%s); running %s", exc, self.app.cfg.models.dir)
            folder = Path(self.app.cfg.models.dir)
        self.watched = WatchedPipeline(self.build(folder), self.provisioner)
        self.provisioner.attach(self._publish)
        self.app.comm.subscribe(self.app.topics.prefix + "provision/bundle", self._on_bundle)
        self._thread.start()
        return self.watched

    def _reload(self, folder: Path) -> None:
        new = self.build(folder)
        new.self_test()
        if self.watched is not None:
            self.watched.inner = new
        self.app.board.set(model_version=str(new.model_version))
        log.info("now running models %s from %s", new.model_version, folder)

    def _publish(self, kind: str, msg: dict) -> None:
        self.app.comm.publish(self.app.topics.prefix + f"provision/{kind}", json.dumps(msg), qos=1)
        if kind == "result":
            self.app.board.set(model_version=str(self.watched.model_version if self.watched
                                                 else self.provisioner.model_version))

    def _on_bundle(self, topic: str, payload: bytes) -> None:
        try:
            self._queue.put_nowait(bytes(payload))
        except queue.Full:
            self._publish("result", {"bundle_version": None, "outcome": "rejected",
                                     "reason": "busy: another bundle is being installed"})

    def _work(self) -> None:
        while True:
            try:
                data = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.provisioner.poll()  # decide a trial even when no frames come
                continue
            try:
                self.provisioner.handle(data)
            except Exception:  # keep listening; the journal lets the next boot clean up
                log.exception("provisioning failed unexpectedly")
