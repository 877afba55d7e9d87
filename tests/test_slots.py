"""A/B model slots: seeding, atomic switching, staging that is all-or-nothing, the journal."""

from __future__ import annotations

import json
import os

import pytest

import device.slots as slots_mod
from device.slots import SlotStore, factory_files
from tests.provision_fixtures import DETECTOR, make_models


@pytest.fixture()
def factory(tmp_path):
    return make_models(tmp_path / "factory", "factory-1")


@pytest.fixture()
def store(tmp_path, factory):
    s = SlotStore(tmp_path / "state", factory)
    s.ensure()
    return s


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}


def test_first_boot_seeds_slot_a_from_factory(store, factory):
    assert store.active() == "a"
    assert os.readlink(store.root / "active") == os.path.join("slots", "a")
    assert store.version("a") == "factory-1" and not store.installed("b")
    assert files_of(store.slot_dir("a")) == files_of(factory)


def test_ensure_is_idempotent(store):
    before = os.stat(store.slot_dir("a") / "manifest.json").st_mtime_ns
    store.ensure()
    assert os.stat(store.slot_dir("a") / "manifest.json").st_mtime_ns == before


def test_switch_is_a_rename_and_leaves_nothing_behind(store):
    store.stage("b", {"version": "2", "detector": {"file": "m.tflite"}}, {"m.tflite": b"x"})
    store.switch("b")
    assert store.active() == "b"
    assert sorted(os.listdir(store.root)) == ["active", "factory_seen", "slots"]


def test_stage_refuses_the_active_slot(store):
    with pytest.raises(ValueError):
        store.stage("a", {"version": "2"}, {})


def test_interrupted_staging_leaves_an_empty_slot(store, monkeypatch):
    store.stage("b", {"version": "1", "detector": {"file": "old.tflite"}}, {"old.tflite": b"1"})
    calls = []

    def failing(path, data):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    real = slots_mod.write_durable
    monkeypatch.setattr(slots_mod, "write_durable", failing)
    with pytest.raises(OSError):
        store.stage("b", {"version": "2"}, {"m1.tflite": b"1", "m2.tflite": b"2"})
    assert not store.installed("b") and store.version("b") is None


def test_ensure_refills_an_empty_fallback_slot(store):
    store.stage("b", {"version": "2", "detector": {"file": "m.tflite"}}, {"m.tflite": b"x"})
    store.switch("b")
    store.invalidate("a")
    store.ensure()
    assert store.active() == "b" and store.version("a") == "factory-1"


def test_journal_round_trip_and_damage(store):
    assert store.read_journal() is None
    store.write_journal(step="staged", version="2", slot="b", previous="a")
    assert store.read_journal() == {"step": "staged", "version": "2", "slot": "b", "previous": "a"}
    store.journal_path.write_text("{not json")
    assert store.read_journal() == {"step": "unknown"}
    store.clear_journal()
    assert store.read_journal() is None


def test_foreign_active_link_counts_as_none(store):
    os.remove(store.root / "active")
    os.symlink("/etc", store.root / "active")
    assert store.active() is None


def test_factory_without_manifest_uses_the_shipped_detector(tmp_path, monkeypatch):
    import device.detector as det

    monkeypatch.setattr(det, "default_detector_path", lambda *a: tmp_path / "missing.tflite")
    monkeypatch.setattr(det, "float_detector_path", lambda *a: DETECTOR)
    manifest, files = factory_files(tmp_path)
    assert manifest["detector"]["file"] == DETECTOR.name and files[DETECTOR.name] == DETECTOR
    json.dumps(manifest)  # what gets written into slot a


def test_a_software_update_installs_its_newer_factory_models(tmp_path):
    old = make_models(tmp_path / "old", "1.0.0")
    s = SlotStore(tmp_path / "state", old)
    s.ensure()
    new = make_models(tmp_path / "new", "1.1.0")
    s = SlotStore(tmp_path / "state", new)  # the next boot, after the update
    s.ensure()
    assert s.upgrade_from_factory() == "b"
    assert s.active() == "b" and s.version("b") == "1.1.0"
    assert s.version("a") == "1.0.0"  # the previous set stays for a rollback
    assert s.upgrade_from_factory() is None  # idempotent


def test_a_seed_without_version_counts_as_older_than_any_release(tmp_path):
    s = SlotStore(tmp_path / "state", make_models(tmp_path / "f0", "factory"))
    s.ensure()
    s.factory_dir = make_models(tmp_path / "f1", "0.1.0")
    assert s.upgrade_from_factory() == "b" and s.version("b") == "0.1.0"


def test_a_deliberate_downgrade_survives_reboots_until_new_factory_models(tmp_path):
    s = SlotStore(tmp_path / "state", make_models(tmp_path / "f1", "1.0.0"))
    s.ensure()
    s.stage("b", {"version": "0.9.0", "detector": {"file": "m.tflite"}}, {"m.tflite": b"x"})
    s.switch("b")  # an operator installed an older bundle on purpose
    assert s.upgrade_from_factory() is None and s.version(s.active()) == "0.9.0"
    s.factory_dir = make_models(tmp_path / "f2", "1.2.0")  # a later software update
    assert s.upgrade_from_factory() == "a" and s.version("a") == "1.2.0"


def test_factory_models_never_replace_a_newer_or_equal_set(store, tmp_path):
    store.stage("b", {"version": "2.0.0", "detector": {"file": "m.tflite"}}, {"m.tflite": b"x"})
    store.switch("b")
    store.factory_dir = make_models(tmp_path / "f2", "1.1.0")
    assert store.upgrade_from_factory() is None and store.active() == "b"
    store.factory_dir = make_models(tmp_path / "f3", "2.0.0")
    assert store.upgrade_from_factory() is None and store.version("b") == "2.0.0"


def test_a_failed_factory_upgrade_keeps_the_active_set_and_retries(tmp_path, monkeypatch, caplog):
    s = SlotStore(tmp_path / "state", make_models(tmp_path / "f1", "1.0.0"))
    s.ensure()
    s.factory_dir = make_models(tmp_path / "f2", "1.1.0")
    real = slots_mod.write_durable

    def full(path, data):
        if path.suffix == ".tflite":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(slots_mod, "write_durable", full)
    assert s.upgrade_from_factory() is None
    assert s.active() == "a" and s.version("a") == "1.0.0" and not s.installed("b")
    assert "No space left on device" in caplog.text and "1.1.0" in caplog.text
    monkeypatch.setattr(slots_mod, "write_durable", real)
    assert s.upgrade_from_factory() == "b"  # not marked as taken in: the next boot tries again
