"""Device-side provisioning: accept, reject, switch, watch, roll back, survive a kill anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from device import kat
from device.provision import Provisioner
from tests.provision_fixtures import bundles, good_models, make_models, other_key, signing_key  # noqa: F401  (fixtures)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture()
def factory(tmp_path):
    return make_models(tmp_path / "factory", "1.0.0")


@pytest.fixture()
def rig(tmp_path, factory, signing_key):
    """A provisioner on a fresh state dir, recording reloads and published messages."""
    clock, sent, reloads = Clock(), [], []
    p = Provisioner(tmp_path / "state", [str(signing_key[1])], health_s=30, factory_dir=factory,
                    reload=reloads.append, publish=lambda kind, msg: sent.append((kind, msg)),
                    clock=clock)
    p.boot()
    p.clock_, p.sent, p.reloads = clock, sent, reloads
    return p


def results(p):
    return [m for kind, m in p.sent if kind == "result"]


def run_frames(p, seconds, error=None, step=5.0):
    for _ in range(int(seconds / step)):
        p.clock_.t += step
        p.frame_done(error)
        out = p.poll()
        if out:
            return out
    return None


def test_good_bundle_is_applied_after_the_health_window(rig, bundles):
    assert rig.handle(bundles["v2"])["outcome"] == "pending"
    assert rig.model_version == "2.0.0" and rig.reloads == [rig.store.slot_dir("b")]
    assert [m["step"] for k, m in rig.sent if k == "progress"] == [
        "received", "staged", "kat_passed", "switched"]
    assert run_frames(rig, 25) is None, "confirmed before health_s"
    out = run_frames(rig, 10)
    assert out["outcome"] == "applied" and out["bundle_version"] == "2.0.0"
    assert rig.store.read_journal() is None and rig.store.active() == "b"
    assert kat.self_test(rig.store.slot_dir("b")) == []


@pytest.mark.parametrize("name, reason", [
    ("untrusted", "untrusted key"),
    ("v0", "not newer"),
    ("badkat", "known-answer test failed"),
])
def test_bad_bundles_are_rejected_and_nothing_changes(rig, bundles, name, reason):
    out = rig.handle(bundles[name])
    assert out["outcome"] == "rejected" and reason in out["reason"], out
    assert results(rig)[-1] == out
    assert rig.store.active() == "a" and rig.model_version == "1.0.0" and rig.reloads == []
    assert rig.store.read_journal() is None and not rig.on_trial


def test_flipped_byte_is_rejected(rig, bundles):
    data = bytearray(bundles["v2"])
    data[len(data) // 2] ^= 0x10
    out = rig.handle(bytes(data))
    assert out["outcome"] == "rejected"
    assert "damaged" in out["reason"] or "sha256" in out["reason"]
    assert rig.model_version == "1.0.0"


def test_same_version_and_downgrade_need_permission(rig, bundles):
    rig.handle(bundles["v2"])
    run_frames(rig, 40)
    assert "not newer" in rig.handle(bundles["v2"])["reason"]
    assert rig.handle(bundles["v0"], allow_downgrade=True)["outcome"] == "pending"
    assert rig.model_version == "0.5.0"


def test_too_new_for_this_app(tmp_path, factory, signing_key, bundles):
    p = Provisioner(tmp_path / "s", [str(signing_key[1])], factory_dir=factory, app_version="0.0.1")
    p.boot()
    out = p.handle(bundles["v2"])
    assert out["outcome"] == "rejected" and "needs app" in out["reason"]


def test_pipeline_error_after_switch_rolls_back(rig, bundles):
    rig.handle(bundles["v2"])
    out = run_frames(rig, 10, error=RuntimeError("interpreter exploded"))
    assert out["outcome"] == "rolled_back" and "interpreter exploded" in out["reason"]
    assert rig.store.active() == "a" and rig.model_version == "1.0.0"
    assert rig.reloads[-1] == rig.store.slot_dir("a") and not rig.store.installed("b")


def test_reload_failure_rolls_back(rig, bundles):
    def reload(folder):
        rig.reloads.append(folder)
        if folder.name == "b":
            raise ValueError("bad model")

    rig.reload = reload
    out = rig.handle(bundles["v2"])
    assert out["outcome"] == "rolled_back" and "failed to load" in out["reason"]
    assert rig.model_version == "1.0.0"


def test_a_frame_failing_on_the_new_models_before_their_trial_starts_rolls_back(rig, bundles):
    """The appliance swaps the pipeline first and starts the trial after; a frame can meet the
    new models in between. Its failure must lead to a rollback, not stop the appliance."""
    import threading

    from device.provision_hook import WatchedPipeline

    class Pipeline:
        def __init__(self, error=None):
            self.error = error

        def process(self, frame, tracker=None):
            if self.error:
                raise RuntimeError(self.error)
            return []

    watched = WatchedPipeline(Pipeline(), rig)
    frames = []  # what each frame gave: its faces, or the exception that escaped

    def one_frame():
        try:
            frames.append(watched.process(object()))
        except Exception as exc:  # the appliance would stop here
            frames.append(exc)

    def reload(folder):
        rig.reloads.append(folder)
        if folder.name != "b":  # the rollback
            watched.inner = Pipeline()
            return
        watched.inner = Pipeline("new models broken")
        frame = threading.Thread(target=one_frame)
        frame.start()  # the vision loop, between the swap and the start of the trial
        frame.join(0.3)
        assert frame.is_alive()  # its failure waits until the switch is done
        frame_threads.append(frame)

    frame_threads = []
    rig.reload = reload
    assert rig.handle(bundles["v2"])["outcome"] == "pending"
    frame_threads[0].join(10)
    assert frames == [[]]  # reported, not raised
    (out,) = results(rig)
    assert out["outcome"] == "rolled_back" and "new models broken" in out["reason"]
    assert rig.model_version == "1.0.0" and not rig.switching and not rig.on_trial


def test_no_frames_at_all_rolls_back(rig, bundles):
    rig.handle(bundles["v2"])
    rig.clock_.t += 1000
    assert rig.poll()["outcome"] == "rolled_back"


def test_second_bundle_while_on_trial_is_refused(rig, bundles):
    import hashlib

    rig.handle(bundles["v2"])
    out = rig.handle(bundles["v3"])
    assert "busy" in out["reason"]
    assert out["bundle_sha256"] == hashlib.sha256(bundles["v3"]).hexdigest()
    assert run_frames(rig, 40)["bundle_sha256"] == hashlib.sha256(bundles["v2"]).hexdigest()


def test_boot_falls_back_when_the_active_slot_fails(rig, bundles, factory, tmp_path):
    rig.handle(bundles["v2"])
    run_frames(rig, 40)
    (rig.store.slot_dir("b") / "face_detection_short_range.tflite").write_bytes(b"garbage")
    p = Provisioner(rig.store.root.parent, factory_dir=factory)
    assert p.boot() == rig.store.slot_dir("a") and p.store.active() == "a"
    (rig.store.slot_dir("a") / "face_detection_short_range.tflite").write_bytes(b"garbage")
    assert Provisioner(rig.store.root.parent, factory_dir=factory).boot() == factory


def test_card_install_is_tried_at_next_boot(tmp_path, factory, signing_key, bundles):
    state = tmp_path / "card"
    tool = Provisioner(state, [str(signing_key[1])], factory_dir=factory)
    assert tool.handle(bundles["v2"], offline=True)["outcome"] == "installed"
    clock = Clock()
    dev = Provisioner(state, [str(signing_key[1])], health_s=30, factory_dir=factory, clock=clock)
    assert dev.boot().name == "b" and dev.on_trial
    clock.t += 31
    dev.frame_done()
    assert dev.poll()["outcome"] == "applied"
    # a device that dies during its trial boots the old models next time
    tool.handle(bundles["v3"], offline=True)
    Provisioner(state, factory_dir=factory).boot()  # trial boot, killed before confirming
    third = Provisioner(state, factory_dir=factory)
    third.boot()
    assert third.model_version == "2.0.0"
    assert third._unsent[-1][1]["outcome"] == "rolled_back"


STEP_OUTCOME = {"received": ("1.0.0", "rejected"), "staged": ("1.0.0", "rejected"),
                "kat_passed": ("1.0.0", "rejected"), "switched": ("1.0.0", "rolled_back")}


@pytest.mark.slow
@pytest.mark.parametrize("step", list(STEP_OUTCOME))
def test_kill_at_each_step_boots_a_working_model(tmp_path, factory, signing_key, bundles, step):
    state = tmp_path / "state"
    (tmp_path / "b.kbundle").write_bytes(bundles["v2"])
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from device.provision import Provisioner
        def die_at(step):
            if step == {step!r}:
                os._exit(86)
        p = Provisioner({str(state)!r}, [{str(signing_key[1])!r}],
                        factory_dir=Path({str(factory)!r}), on_step=die_at)
        p.boot()
        p.handle(Path({str(tmp_path / 'b.kbundle')!r}).read_bytes())
        print("survived")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 86, proc.stderr[-2000:]
    p = Provisioner(state, [str(signing_key[1])], factory_dir=factory)
    folder = p.boot()
    version, outcome = STEP_OUTCOME[step]
    assert p.model_version == version and kat.self_test(folder) == []
    assert p.store.read_journal() is None
    assert [m["outcome"] for _, m in p._unsent] == [outcome]
    assert p.handle(bundles["v2"])["outcome"] == "pending", "the device accepts bundles again"


def test_result_messages_are_json(rig, bundles):
    rig.handle(bundles["untrusted"])
    msg = json.loads(json.dumps(results(rig)[-1]))
    assert set(msg) >= {"bundle_version", "outcome", "reason", "t"}


def test_boot_after_a_software_update_runs_its_newer_factory_models(tmp_path):
    from tests.provision_fixtures import make_models

    state = tmp_path / "kiosk"
    old = make_models(tmp_path / "release1", "1.0.0")
    assert Provisioner(state, factory_dir=old).boot().name == "a"
    new = make_models(tmp_path / "release2", "1.1.0")
    p = Provisioner(state, factory_dir=new)
    folder = p.boot()
    assert folder == p.store.slot_dir("b") and p.model_version == "1.1.0"
    assert Provisioner(state, factory_dir=new).boot() == folder  # taken in once
