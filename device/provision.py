"""The device's side of provisioning: accept a signed bundle, test it, switch to it, watch it.

``Provisioner.handle(data)`` checks a bundle (signature against the trusted keys, hashes, version,
minimum app version), stages it in the inactive slot, runs its known-answer test with the
device's runtime, switches slots atomically and asks the app to ``reload`` its pipeline. The
app then reports each frame (``frame_done``) and calls ``poll``: after ``health_s`` seconds of
frames without error the switch is confirmed (``applied``); an error rolls back (``rolled_back``).

Every step is written to a journal first, so ``boot()`` after a kill at any point finds a model
set that passes its self-test: an unfinished staging is discarded, an unconfirmed switch is
undone.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import device
from device import keys
from device.bundle import Bundle, read_bundle, version_key
from device.errors import BundleError
from device.models import MODELS_DIR
from device.pipeline import model_problems
from device.slots import MODELS_SUBDIR, SlotStore

log = logging.getLogger(__name__)

NO_FRAMES_GRACE_S = 60.0  # after health_s, how long to wait for a first frame before giving up


def result(version: str | None, outcome: str, reason: str = "", **extra) -> dict:
    """A ``provision/result`` message: outcome is applied, rejected or rolled_back."""
    return {"bundle_version": version, "outcome": outcome, "reason": reason,
            "t": round(time.time(), 3), **extra}


class Provisioner:
    """Model slots, bundle handling and the health watch for one device.

    Args:
        state_dir: the device's state folder (``[state] dir``); slots live in its ``models/``.
        trusted_keys: public keys (paths, PEM or base64) whose bundles are accepted.
        health_s: seconds of error-free frames that confirm new models.
        allow_downgrade: accept bundles older than (or as old as) the installed models.
        factory_dir: the models shipped with the software (seed and last resort).
        reload: ``reload(models_dir)`` builds the app's pipeline on that folder and returns when
            the new pipeline is in use; raising means the models are unusable.
        publish: ``publish(kind, message)`` with kind ``"result"`` or ``"progress"``; results
            produced before a publisher is attached (at boot) are kept and sent by ``attach``.
        self_test: ``self_test(models_dir) -> [problems]`` (default: the models' self-test,
            ``device.pipeline.model_problems``).
        clock: monotonic seconds (tests).
        on_step: ``on_step(step)`` right after each step is journaled (received, staged,
            kat_passed, switched): a seam for tests that interrupt an installation there.
    """

    def __init__(self, state_dir, trusted_keys=(), health_s: float = 120.0,
                 allow_downgrade: bool = False, factory_dir: Path = MODELS_DIR,
                 reload: Callable[[Path], None] | None = None,
                 publish: Callable[[str, dict], None] | None = None,
                 self_test: Callable[[Path], list[str]] = model_problems,
                 clock: Callable[[], float] = time.monotonic,
                 app_version: str = device.__version__,
                 on_step: Callable[[str], None] | None = None):
        self.store = SlotStore(Path(state_dir) / MODELS_SUBDIR, factory_dir)
        self.trusted = keys.trusted_keyring(trusted_keys)
        self.health_s, self.allow_downgrade = float(health_s), bool(allow_downgrade)
        self.reload, self.self_test, self.clock = reload, self_test, clock
        self.app_version, self._publish = app_version, publish
        self._on_step = on_step
        self._unsent: list[tuple[str, dict]] = []
        self._watch: dict | None = None
        self._switching = False  # from the swap of pipelines until the trial has started
        self._sha: str | None = None  # of the bundle being handled
        self._lock = threading.RLock()
        self.models_dir: Path | None = None

    def attach(self, publish: Callable[[str, dict], None]) -> None:
        """Set the publisher and send what was kept for it (outcomes found at boot)."""
        with self._lock:
            self._publish, pending, self._unsent = publish, self._unsent, []
        for kind, msg in pending:
            publish(kind, msg)

    def _send(self, kind: str, msg: dict) -> dict:
        if self._sha:
            msg.setdefault("bundle_sha256", self._sha)  # the sender matches answers by it
        log.info("provisioning %s: %s", kind, msg)
        if self._publish is None:
            self._unsent.append((kind, msg))
        else:
            try:
                self._publish(kind, msg)
            except Exception:  # a broker hiccup must not stop a rollback
                log.exception("could not publish provisioning %s", kind)
        return msg

    def _progress(self, version: str | None, step: str) -> None:
        self._send("progress", {"bundle_version": version, "step": step})

    @property
    def model_version(self) -> str | None:
        name = self.store.active()
        return self.store.version(name) if name else None

    def boot(self) -> Path:
        """Finish or undo an interrupted step, then pick the models to run.

        Factory models newer than the active set (a software update) are installed first.
        Returns the folder of the first model set that passes its self-test: the active slot,
        else the other slot (which becomes active), else the factory models.
        """
        with self._lock:
            self.store.ensure()
            journal = self.store.read_journal()
            if journal is not None:
                self._recover(journal)
            if self.store.read_journal() is None:  # not while a bundle is on trial
                self.store.upgrade_from_factory()
            self.models_dir = self._first_working()
            return self.models_dir

    def _recover(self, j: dict) -> None:
        self._sha = j.get("sha256")
        if j.get("step") == "switched" and j.get("trial_on_boot"):
            # installed onto the card offline: this boot is its trial run, the next one is not
            self.store.write_journal(**dict(j, trial_on_boot=False))
            self._start_watch(j.get("version"), j.get("slot"), j.get("previous"))
        else:
            self._send("result", result(j.get("version"), *self.store.undo(j)))

    def _first_working(self) -> Path:
        active = self.store.active()
        for name in (active, self.store.other(active)):
            if not self.store.installed(name):
                continue
            folder = self.store.slot_dir(name)
            problems = self.self_test(folder)
            if not problems:
                if name != active:
                    log.error("slot %s failed its self-test; falling back to slot %s", active, name)
                    self.store.switch(name)
                    self._abandon_watch(f"slot {active} failed its self-test at boot")
                return folder
            log.error("model slot %s fails its self-test: %s", name, "; ".join(problems))
        self._abandon_watch("no slot passed its self-test at boot")
        log.error("no model slot passes its self-test; running the factory models")
        return self.store.factory_dir

    def _abandon_watch(self, reason: str) -> None:
        if self._watch:
            self._send("result", result(self._watch["version"], "rolled_back", reason))
            self._watch = None
            self.store.clear_journal()

    def handle(self, data: bytes, allow_downgrade: bool | None = None,
               offline: bool = False) -> dict:
        """Check and install a bundle (``allow_downgrade`` overrides the setting for this one).

        ``offline``: installing onto a card; the trial is left to the device's next boot.
        Returns the outcome, ``"pending"`` while the new models are on trial (``poll`` publishes
        the final one), or ``"installed"`` when ``offline``.
        """
        with self._lock:
            self._sha = hashlib.sha256(data).hexdigest()
            try:  # every check runs before anything is written: a refusal changes nothing
                bundle = self._accept(data, self.allow_downgrade if allow_downgrade is None
                                      else allow_downgrade)
            except BundleError as exc:
                return self._send("result", result(None, "rejected", str(exc)))
            busy = self._busy()
            if busy:
                return self._send("result", result(bundle.version, "rejected", busy))
            try:
                self.store.ensure()
                self._journal("received")
                self._step("received")
                return self._install(bundle, offline)
            except OSError as exc:  # disk full, read-only card: nothing was switched yet
                self.store.undo(self.store.read_journal() or {})
                return self._send("result", result(bundle.version, "rejected",
                                                   f"could not install: {exc}"))

    def _busy(self) -> str | None:
        """Why no bundle can be taken now: models on trial here, or installed onto the card and
        waiting for their trial at the next boot (their journal is their only way back)."""
        if self._watch is not None:
            return f"busy: models {self._watch['version']} are still on trial"
        pending = self.store.read_journal()
        if pending is None:
            return None
        if pending.get("trial_on_boot"):
            return (f"busy: models {pending.get('version')} were installed and wait for their "
                    "trial at the device's next boot")
        return (f"busy: an installation of models {pending.get('version')} was interrupted at "
                f"step {pending.get('step')!r}; the device's next boot undoes it")

    def _accept(self, data: bytes, allow_downgrade: bool) -> Bundle:
        """Check a bundle against keys and versions, in memory only (BundleError when refused)."""
        bundle = read_bundle(data, self.trusted)
        need = str(bundle.manifest.get("min_app_version", "0"))
        if version_key(need) > version_key(self.app_version):
            raise BundleError(f"bundle {bundle.version} needs app {need} or newer "
                              f"(this device runs {self.app_version})")
        current = self.model_version
        if current and not allow_downgrade and current != "factory" \
                and version_key(bundle.version) <= version_key(current):
            raise BundleError(f"bundle {bundle.version} is not newer than the installed "
                              f"{current} (allow_downgrade is off)")
        return bundle

    def _install(self, bundle: Bundle, offline: bool = False) -> dict:
        version = bundle.version
        previous = self.store.active()
        slot = self.store.other(previous)
        self._progress(version, "received")
        self._journal("staging", version=version, slot=slot, previous=previous)
        manifest = dict(bundle.manifest["models"], version=version, kat=bundle.manifest["kat"],
                        bundle={"sha256": bundle.sha256, "key_id": bundle.key_id,
                                "created": bundle.manifest.get("created")})
        folder = self.store.stage(slot, manifest, bundle.files)
        self._journal("staged", version=version, slot=slot, previous=previous)
        self._step("staged")
        self._progress(version, "staged")
        problems = self.self_test(folder)
        if problems:
            self.store.invalidate(slot)
            self.store.clear_journal()
            return self._send("result", result(version, "rejected", "known-answer test failed: "
                                               + "; ".join(problems)))
        self._journal("kat_passed", version=version, slot=slot, previous=previous)
        self._step("kat_passed")
        self._progress(version, "kat_passed")
        self._journal("switching", version=version, slot=slot, previous=previous)
        self.store.switch(slot)
        self._journal("switched", version=version, slot=slot, previous=previous,
                                 trial_on_boot=offline)
        if offline:
            return result(version, "installed", "on trial at the next boot", slot=slot)
        self._step("switched")
        self._progress(version, "switched")
        self._switching = True  # the new pipeline may take frames before the watch starts
        try:
            try:
                self._reload(folder)
            except Exception as exc:  # whatever the pipeline raises, the old models come back
                return self._rollback(version, slot, previous,
                                      f"new models failed to load: {exc}")
            self._start_watch(version, slot, previous)
        finally:
            self._switching = False
        return {"bundle_version": version, "outcome": "pending", "reason": "on trial"}

    def _journal(self, step: str, **entry) -> None:
        self.store.write_journal(step=step, sha256=self._sha, **entry)

    def _step(self, step: str) -> None:
        if self._on_step is not None:
            self._on_step(step)

    def _reload(self, folder: Path) -> None:
        self.models_dir = folder
        if self.reload is not None:
            self.reload(folder)

    def _start_watch(self, version, slot, previous) -> None:
        self._watch = {"version": version, "slot": slot, "previous": previous, "sha": self._sha,
                       "since": self.clock(), "ok": 0, "error": None}

    @property
    def on_trial(self) -> bool:
        return self._watch is not None

    @property
    def switching(self) -> bool:
        """True while new models are being put in place, before their trial starts.

        A frame that fails then may have met the new pipeline: report it with ``frame_done``,
        which waits until the switch is done and charges the error to the trial. Read this
        before ``on_trial`` (the switch ends with the trial started).
        """
        return self._switching

    def frame_done(self, error: BaseException | str | None = None) -> None:
        """Report one processed frame (``error``: what the pipeline raised on it)."""
        with self._lock:
            if self._watch is None:
                return
            if error is None:
                self._watch["ok"] += 1
            elif self._watch["error"] is None:
                self._watch["error"] = f"{type(error).__name__}: {error}" \
                    if isinstance(error, BaseException) else str(error)

    def poll(self) -> dict | None:
        """Confirm or roll back new models on trial; returns the outcome when one was decided."""
        with self._lock:
            w = self._watch
            if w is None:
                return None
            self._sha = w["sha"]
            age = self.clock() - w["since"]
            if w["error"]:
                return self._rollback(w["version"], w["slot"], w["previous"],
                                      f"pipeline failed on the new models: {w['error']}")
            if age >= self.health_s and w["ok"] > 0:
                self._watch = None
                self.store.clear_journal()
                return self._send("result", result(w["version"], "applied",
                                  f"{w['ok']} frames in {age:.0f} s without error",
                                  model_version=w["version"]))
            if age >= self.health_s + NO_FRAMES_GRACE_S:
                return self._rollback(w["version"], w["slot"], w["previous"],
                                      f"no frame was processed in {age:.0f} s")
            return None

    def _rollback(self, version, slot, previous, reason: str) -> dict:
        log.error("rolling back models %s: %s", version, reason)
        self._watch = None
        self.store.undo({"step": "switched", "slot": slot, "previous": previous})
        try:
            self._reload(self.store.slot_dir(previous))
        except Exception:
            log.exception("the previous models failed to reload too; using the factory models")
            self._reload(self.store.factory_dir)
        return self._send("result", result(version, "rolled_back", reason))
