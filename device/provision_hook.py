"""Provisioning inside ``kiosk run``: the bundle topic, pipeline reloads and the health watch.

The app builds its pipeline through :meth:`ProvisionHook.pipeline`. That boots the model slots
(``Provisioner.boot``, which self-tests each candidate set: every model is loaded once, and the
set that passes is the pipeline that runs), and wraps it in a
:class:`WatchedPipeline`, which reports every frame to the provisioner and swaps the real pipeline
when new models are switched in or rolled back, without restarting the process. Bundles arriving
on ``<prefix>provision/bundle`` are handled on a worker thread, never on paho's.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path

from device import keys
from device.errors import BundleError
from device.pipeline import pipeline_for
from device.provision import Provisioner

log = logging.getLogger(__name__)

class WatchedPipeline:
    """The app's pipeline, replaceable in place, reporting each frame to the provisioner.

    While new models are on trial (or being switched in: the new pipeline can take a frame
    just before the trial starts) an exception from them is reported (and leads to a rollback)
    instead of stopping the appliance; outside a trial exceptions pass through as before.
    """

    def __init__(self, inner, provisioner: Provisioner):
        self.inner, self.provisioner = inner, provisioner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def process(self, frame, tracker=None):
        inner, prov = self.inner, self.provisioner
        try:
            out = inner.process(frame, tracker=tracker)
        except Exception as exc:
            if not (prov.switching or prov.on_trial):  # this order: a switch ends on trial
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
    """Connects a :class:`Provisioner` to the running appliance.

    Args:
        cfg: the configuration (``[provisioning]``, ``[state] dir``, ``[models]``).
        comm: the MQTT communicator (bundles come in, results and progress go out).
        prefix: the device's topic prefix.
        on_models: ``on_models(version)`` whenever the models in use change.
        build: ``build(models_cfg, folder) -> pipeline`` (a seam for tests; the real one loads
            the models with the configured settings).
        on_step: passed to :class:`Provisioner` (a seam for tests that interrupt an install).
    """

    def __init__(self, cfg, comm, prefix: str, on_models, build=pipeline_for, on_step=None):
        self.cfg, self.comm, self.prefix = cfg, comm, prefix
        self._on_models, self._build = on_models, build
        p = cfg.provisioning
        trusted = list(p.trusted_keys)
        try:
            keys.trusted_keyring(trusted)
        except BundleError as exc:
            log.error("[provisioning] trusted_keys: %s; every bundle will be rejected", exc)
            trusted = []
        self.provisioner = Provisioner(
            cfg.state.dir, trusted, health_s=p.health_s, allow_downgrade=p.allow_downgrade,
            factory_dir=Path(cfg.models.dir), reload=self._reload, self_test=self._self_test,
            on_step=on_step)
        self.watched: WatchedPipeline | None = None
        self._tested: tuple[Path, object] | None = None  # the set the last self-test loaded
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._work, name="provisioning", daemon=True)

    def _self_test(self, models_dir: Path) -> list[str]:
        """Load ``models_dir`` once and run its self-test; a set that passes is kept for
        :meth:`_take`, so the models that were tested are the ones that run."""
        try:
            pipeline = self._build(self.cfg.models, models_dir)
            pipeline.self_test()
        except Exception as exc:  # whatever loading or testing raises makes the set unusable
            self._tested = None
            return [f"{type(exc).__name__}: {exc}"]
        self._tested = (Path(models_dir), pipeline)
        return []

    def _take(self, folder: Path):
        """The pipeline on ``folder``: the one its self-test just loaded, else loaded and tested
        now (ModelError when it fails)."""
        tested, self._tested = self._tested, None
        if tested is not None and tested[0] == Path(folder):
            return tested[1]
        pipeline = self._build(self.cfg.models, folder)
        pipeline.self_test()
        return pipeline

    def pipeline(self) -> WatchedPipeline:
        """Boot the slots, start listening for bundles, return the watched pipeline."""
        try:
            folder = self.provisioner.boot()
        except OSError as exc:  # e.g. a read-only state dir on a developer's machine
            log.error("model slots unavailable (%s); running %s", exc, self.cfg.models.dir)
            folder = Path(self.cfg.models.dir)
        self.watched = WatchedPipeline(self._take(folder), self.provisioner)
        self.provisioner.attach(self._publish)
        self.comm.subscribe(self.prefix + "provision/bundle", self._on_bundle)
        self._thread.start()
        return self.watched

    def _reload(self, folder: Path) -> None:
        new = self._take(folder)
        if self.watched is not None:
            self.watched.inner = new
        self._on_models(str(new.model_version))
        log.info("now running models %s from %s", new.model_version, folder)

    def _publish(self, kind: str, msg: dict) -> None:
        self.comm.publish(self.prefix + f"provision/{kind}", json.dumps(msg), qos=1)
        if kind == "result":
            self._on_models(str(self.watched.model_version if self.watched
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
