"""A/B model slots in the device's state folder, switched atomically.

Layout under ``<state dir>/models`` (the rest of the state dir is the spool's)::

    slots/a/            manifest.json + model files (factory models seed it on first boot)
    slots/b/
    active -> slots/a   symlink; replaced in one rename, then the folder is fsynced
    provision.json      journal: the provisioning step in progress (absent when idle)
    factory_seen        the version of the factory models last taken in (seeded or upgraded)

A slot counts as installed only when its ``manifest.json`` exists. Staging removes it first and
writes it last, after every model file is on disk, so a slot cut off half-way is simply empty.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from device.errors import ModelError
from device.manifest import load_manifest, model_path, sha256_file
from device.models import MODELS_DIR

log = logging.getLogger(__name__)

MODELS_SUBDIR = "models"  # under the state dir
SLOTS = ("a", "b")
ACTIVE = "active"
JOURNAL = "provision.json"
FACTORY_SEEN = "factory_seen"  # the factory models version this state has already taken in


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` via a temp file: fsync it, rename it in place, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def factory_files(factory_dir: Path) -> tuple[dict, dict[str, Path]]:
    """The factory models manifest and its files; a minimal manifest when none is shipped yet."""
    if (factory_dir / "manifest.json").is_file():
        manifest = load_manifest(factory_dir)
    else:
        from device.detector import DEFAULT_VARIANT, default_detector_path, float_detector_path

        det = default_detector_path()
        det = det if det.is_file() else float_detector_path()
        if not det.is_file():
            raise ModelError(f"no factory models in {factory_dir}")
        manifest = {"version": "factory", "_source": {det.name: str(det)}, "detector": {
            "file": det.name, "sha256": sha256_file(det), "variant": DEFAULT_VARIANT}}
    sources = manifest.pop("_source", {})
    files = {}
    for role in ("detector", "analyzer"):
        if manifest.get(role):
            name = manifest[role]["file"]
            files[name] = Path(sources.get(name) or model_path(factory_dir, manifest[role]))
    return manifest, files


class SlotStore:
    """The two model slots, the ``active`` pointer and the provisioning journal.

    Args:
        root: the slots' folder, ``<[state] dir>/models`` on a device.
        factory_dir: the models shipped with the software, seeding slot a on first boot.
    """

    def __init__(self, root: str | os.PathLike, factory_dir: Path = MODELS_DIR):
        self.root = Path(root)
        self.factory_dir = Path(factory_dir)
        self.journal_path = self.root / JOURNAL

    def slot_dir(self, name: str) -> Path:
        if name not in SLOTS:
            raise ValueError(f"no slot {name!r}")
        return self.root / "slots" / name

    def ensure(self) -> None:
        """Create the layout; on first boot copy the factory models into slot a and activate it."""
        for name in SLOTS:
            self.slot_dir(name).mkdir(parents=True, exist_ok=True)
        active = self.active()
        if active != "a" and not self.installed("a"):
            # first boot, or a card flashed offline: slot a always holds something to fall back to
            manifest, files = factory_files(self.factory_dir)
            self.stage("a", manifest, {n: p.read_bytes() for n, p in files.items()})
            self._set_factory_seen(str(manifest.get("version", "factory")))
        if active is None:
            self.switch("a")

    def upgrade_from_factory(self) -> str | None:
        """Install the factory models when the software ships a newer version than is active.

        A kiosk seeded by an older software release keeps its slots across updates; without
        this it would run the old models forever (or none, if the old release had no attribute
        model). Shipped models are trusted like the code that ships them; they go into the
        inactive slot (the running set stays there for rollback) and become active. Never a
        downgrade: a newer set provisioned from a bundle stays; and each factory version is taken
        in once, so a set an operator deliberately downgraded to is not replaced at every boot.

        Returns:
            the slot the factory models were installed into, or None when nothing changed.
        """
        from device.bundle import version_key

        active = self.active()
        if active is None:
            return None
        try:
            manifest, files = factory_files(self.factory_dir)
        except ModelError as exc:
            log.warning("cannot read the factory models (%s); keeping slot %s", exc, active)
            return None
        new, current = str(manifest.get("version", "factory")), self.version(active)
        if new == self._factory_seen():
            return None
        if current is not None and version_key(new) <= version_key(current):
            self._set_factory_seen(new)
            return None
        target = self.other(active)
        try:
            self.stage(target, manifest, {n: p.read_bytes() for n, p in files.items()})
        except OSError as exc:  # disk full, read-only card: keep running what is active
            log.error("could not install the shipped models %s into slot %s (%s); staying on "
                      "slot %s (%s), will try again at the next boot", new, target, exc, active,
                      current)
            self.invalidate(target)
            return None
        log.warning("this software ships models %s, newer than %s in slot %s: installed them "
                    "into slot %s", new, current, active, target)
        self.switch(target)
        self._set_factory_seen(new)
        return target

    def _factory_seen(self) -> str | None:
        try:
            return (self.root / FACTORY_SEEN).read_text().strip() or None
        except OSError:
            return None

    def _set_factory_seen(self, version: str) -> None:
        write_durable(self.root / FACTORY_SEEN, version.encode())

    def active(self) -> str | None:
        """The active slot's name, or None when the pointer is missing or points elsewhere."""
        try:
            target = os.readlink(self.root / ACTIVE)
        except OSError:
            return None
        name = Path(target).name
        return name if name in SLOTS and Path(target).parent.name == "slots" else None

    @staticmethod
    def other(name: str) -> str:
        return "b" if name == "a" else "a"

    def installed(self, name: str) -> bool:
        return (self.slot_dir(name) / "manifest.json").is_file()

    def version(self, name: str) -> str | None:
        """The model version a slot holds (None when empty or unreadable)."""
        try:
            return str(load_manifest(self.slot_dir(name)).get("version", "unknown"))
        except ModelError:
            return None

    def invalidate(self, name: str) -> None:
        """Mark a slot empty (its models stay until the next staging overwrites them)."""
        path = self.slot_dir(name) / "manifest.json"
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    def stage(self, name: str, manifest: dict, files: dict[str, bytes]) -> Path:
        """Install ``files`` and then ``manifest`` into slot ``name``, everything fsynced.

        Refuses the active slot: what is running is never overwritten.
        """
        if name == self.active():
            raise ValueError(f"slot {name} is active; stage into the other one")
        folder = self.slot_dir(name)
        self.invalidate(name)
        for old in folder.iterdir():
            if old.is_file() or old.is_symlink():
                old.unlink()
        for fname, data in files.items():
            write_durable(folder / fname, data)
        write_durable(folder / "manifest.json", json.dumps(manifest, indent=1).encode())
        return folder

    def switch(self, name: str) -> None:
        """Point ``active`` at slot ``name`` in one atomic rename, then fsync the state folder."""
        tmp = self.root / f".{ACTIVE}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.join("slots", name), tmp)
        os.replace(tmp, self.root / ACTIVE)
        fsync_dir(self.root)
        log.info("active model slot is now %s (%s)", name, self.version(name))

    def read_journal(self) -> dict | None:
        """The step in progress, or None. A damaged journal reads as an unknown step."""
        try:
            data = json.loads(self.journal_path.read_text())
            return data if isinstance(data, dict) else {"step": "unknown"}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"step": "unknown"}

    def write_journal(self, **entry) -> None:
        write_durable(self.journal_path, json.dumps(entry).encode())

    def clear_journal(self) -> None:
        if self.journal_path.exists():
            self.journal_path.unlink()
            fsync_dir(self.root)

    def undo(self, journal: dict) -> tuple[str, str]:
        """Put the slots back as they were before the journal's step began.

        Returns (outcome, reason): ``rolled_back`` when a switch was undone, else ``rejected``.
        """
        step, staged, previous = journal.get("step"), journal.get("slot"), journal.get("previous")
        if step in ("switching", "switched") and previous in SLOTS:
            self.switch(previous)
            outcome = ("rolled_back", "restarted before the new models were confirmed healthy")
        else:
            outcome = ("rejected", f"interrupted at step {step!r} by a restart; the running "
                       "models were not changed")
        if staged in SLOTS and staged != self.active():
            self.invalidate(staged)
        self.clear_journal()
        return outcome
