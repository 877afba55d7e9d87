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
    assert sorted(os.listdir(store.root)) == ["active", "slots"]


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
