"""kiosk-provision against a real mosquitto and a real ``kiosk run`` appliance process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioning.cli import main
from tests.provision_fixtures import bundles, good_models, make_models, other_key, signing_key  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


class Appliance:
    """``python -m device.cli run`` on the demo clip, with provisioning on a temp state dir."""

    def __init__(self, tmp: Path, broker, pubkey: Path, device_id: str = "k1"):
        self.device_id, self.broker = device_id, broker
        self.factory = make_models(tmp / "factory", "1.0.0")
        self.state = tmp / "state"
        self.config = tmp / "kiosk.toml"
        self.config.write_text(f"""
[device]
id = "{device_id}"
[source]
spec = "demo"
loop = true
pace = true
[models]
dir = "{self.factory}"
[aggregate]
window_s = 60.0
[mqtt]
host = "{broker.host}"
port = {broker.port}
status_s = 0.5
discovery = false
[provisioning]
trusted_keys = ["{pubkey}"]
health_s = 3.0
[state]
dir = "{self.state}"
""")
        self.log = tmp / "appliance.log"
        self.proc: subprocess.Popen | None = None

    def start(self, *faults: str) -> None:
        """Start it; ``faults`` go to ``tests.appliance_faults`` (e.g. "--die-at", "staged")."""
        command = (["-m", "tests.appliance_faults", *faults, "--"] if faults
                   else ["-m", "device.cli", "run"])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *command, "--config", str(self.config)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def wait_exit(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture()
def appliance(tmp_path, mosquitto, signing_key):
    app = Appliance(tmp_path, mosquitto, signing_key[1])
    yield app
    app.stop()


def status_with(listener, device_id, version, after=0.0, timeout=60.0) -> bool:
    """Wait for a status message from ``device_id`` naming ``version``, newer than ``after``."""
    topic = f"kiosk/{device_id}/status"

    def ok(lst):
        for p in lst.payloads(topic):
            s = json.loads(p)
            if s.get("model_version") == version and s.get("uptime_s", 0) >= 0 \
                    and s.get("state") == "running" and lst._seen_at(p) >= after:
                return True
        return False

    return listener.wait_for(ok, timeout)


@pytest.fixture()
def watch(listen, mosquitto):
    """A listener on every kiosk topic that remembers when each payload arrived."""
    lst = listen(mosquitto, ["kiosk/#"])
    arrivals: dict[bytes, float] = {}
    original = lst._on_message

    def on_message(client, userdata, msg):
        arrivals.setdefault(msg.payload, time.monotonic())
        original(client, userdata, msg)

    lst.client.on_message = on_message
    lst._seen_at = lambda p: arrivals.get(p, 0.0)
    return lst


def broker_arg(b) -> str:
    return f"{b.host}:{b.port}"


def flash(tmp_path, data: bytes, broker, *extra) -> int:
    path = tmp_path / "flash.kbundle"
    path.write_bytes(data)
    return main(["flash", str(path), "--mqtt", broker_arg(broker), "--timeout", "60", *extra])


def test_keygen_build_verify(tmp_path, good_models, capsys):
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "signing.key").stat().st_mode & 0o777 == 0o600
    out = tmp_path / "m.kbundle"
    assert main(["build", str(good_models), "--key", str(tmp_path / "k" / "signing.key"),
                 "--version", "2.0.0", "-o", str(out)]) == 0
    assert main(["verify", str(out), "--pubkey", str(tmp_path / "k" / "signing.pub")]) == 0
    text = capsys.readouterr().out
    assert "signature: good" in text and "known-answer test on this machine: passed" in text
    assert main(["keygen", "--out", str(tmp_path / "k2")]) == 0
    assert main(["verify", str(out), "--pubkey", str(tmp_path / "k2" / "signing.pub")]) == 1
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 1
    out.write_bytes(bytes(data))
    assert main(["verify", str(out), "--pubkey", str(tmp_path / "k" / "signing.pub")]) == 1
    assert "untrusted key" in capsys.readouterr().err


def test_flash_target_card(tmp_path, bundles, signing_key, capsys):
    path = tmp_path / "b.kbundle"
    path.write_bytes(bundles["v2"])
    card = tmp_path / "card"
    assert main(["flash", str(path), "--target", str(card), "--pubkey",
                 str(signing_key[1])]) == 0
    assert os.readlink(card / "models" / "active") == os.path.join("slots", "b")
    assert json.loads((card / "models" / "provision.json").read_text())["trial_on_boot"] is True
    path.write_bytes(bundles["untrusted"])
    assert main(["flash", str(path), "--target", str(tmp_path / "card2"), "--pubkey",
                 str(signing_key[1])]) == 1
    assert "untrusted key" in capsys.readouterr().out


def card_state(card: Path) -> dict:
    """Every file's bytes and every link's target under a card's state folder."""
    return {str(p.relative_to(card)): os.readlink(p) if p.is_symlink() else p.read_bytes()
            for p in sorted(card.rglob("*")) if p.is_symlink() or p.is_file()}


@pytest.mark.slow
def test_card_flashing_keeps_the_trial_and_a_refused_flash_changes_nothing(
        tmp_path, bundles, signing_key, capsys):
    """A state folder made by the appliance; a good flash waits for its trial at the next boot,
    and neither a damaged bundle nor a second good one may take that trial away."""
    card = tmp_path / "card"
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--source", "demo",
                          "--no-mqtt", "--state-dir", str(card), "--max-frames", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    pub = str(signing_key[1])
    good, damaged, newer = (tmp_path / n for n in ("v2.kbundle", "bad.kbundle", "v3.kbundle"))
    good.write_bytes(bundles["v2"])
    newer.write_bytes(bundles["v3"])
    data = bytearray(bundles["v2"])
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert main(["flash", str(good), "--target", str(card), "--pubkey", pub]) == 0
    pending = card_state(card)
    assert json.loads(pending["models/provision.json"])["trial_on_boot"] is True
    capsys.readouterr()
    for bundle, why in ((damaged, "damaged"), (newer, "wait for their trial at the device's "
                         "next boot"), (good, "not newer than the installed 2.0.0")):
        assert main(["flash", str(bundle), "--target", str(card), "--pubkey", pub]) == 1
        out = capsys.readouterr().out
        assert "rejected" in out and why in out, out
        assert card_state(card) == pending, bundle.name  # not one byte changed
    # a refused flash onto an empty card leaves it empty
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["flash", str(damaged), "--target", str(empty), "--pubkey", pub]) == 1
    assert list(empty.iterdir()) == []


@pytest.mark.slow
def test_flash_all_applies_and_the_appliance_keeps_publishing(
        tmp_path, appliance, watch, mosquitto, bundles, capsys):
    appliance.start()
    assert status_with(watch, "k1", "1.0.0"), appliance.tail()
    assert flash(tmp_path, bundles["v2"], mosquitto, "--all") == 0, appliance.tail()
    out = capsys.readouterr().out
    assert "found 1 device(s): k1" in out and "k1: APPLIED" in out and "k1: kat_passed" in out
    t = time.monotonic()
    assert status_with(watch, "k1", "2.0.0", after=t, timeout=20), appliance.tail()
    assert appliance.proc.poll() is None, "the appliance must not restart"
    assert main(["status", "--mqtt", broker_arg(mosquitto)]) == 0
    assert "2.0.0" in capsys.readouterr().out


@pytest.mark.slow
def test_bad_bundles_are_rejected_over_mqtt(tmp_path, appliance, watch, mosquitto, bundles,
                                            capsys):
    appliance.start()
    assert status_with(watch, "k1", "1.0.0"), appliance.tail()
    flipped = bytearray(bundles["v2"])
    flipped[len(flipped) // 2] ^= 0x10
    cases = [(bytes(flipped), ("damaged", "sha256")), (bundles["untrusted"], ("untrusted key",)),
             (bundles["v0"], ("not newer",)), (bundles["badkat"], ("known-answer test",))]
    for data, reasons in cases:
        assert flash(tmp_path, data, mosquitto, "--device", "k1") == 1
        out = capsys.readouterr().out
        assert "k1: REJECTED" in out and any(r in out for r in reasons), out
    t = time.monotonic()
    assert status_with(watch, "k1", "1.0.0", after=t, timeout=10), appliance.tail()
    assert appliance.proc.poll() is None


@pytest.mark.slow
def test_models_failing_after_the_swap_are_rolled_back(tmp_path, appliance, watch, mosquitto,
                                                       bundles, capsys):
    appliance.start("--fail-models", "2.0.0")
    assert status_with(watch, "k1", "1.0.0"), appliance.tail()
    assert flash(tmp_path, bundles["v2"], mosquitto, "--device", "k1") == 1
    out = capsys.readouterr().out
    assert "k1: ROLLED_BACK" in out and "injected fault" in out, out
    t = time.monotonic()
    assert status_with(watch, "k1", "1.0.0", after=t, timeout=10), appliance.tail()
    assert appliance.proc.poll() is None


@pytest.mark.slow
@pytest.mark.parametrize("step, outcome", [("received", "rejected"), ("staged", "rejected"),
                                           ("kat_passed", "rejected"),
                                           ("switched", "rolled_back")])
def test_kill_at_each_step_restarts_on_working_models(tmp_path, appliance, watch, mosquitto,
                                                      bundles, step, outcome):
    appliance.start("--die-at", step)
    assert status_with(watch, "k1", "1.0.0"), appliance.tail()
    watch.publish("kiosk/k1/provision/bundle", bundles["v2"])
    assert appliance.wait_exit(60) == 86, appliance.tail()
    appliance.start()
    t = time.monotonic()
    assert status_with(watch, "k1", "1.0.0", after=t), appliance.tail()
    results = [json.loads(p) for p in watch.payloads("kiosk/k1/provision/result")]
    assert [r["outcome"] for r in results] == [outcome], results
    # and it takes the bundle properly now
    watch.publish("kiosk/k1/provision/bundle", bundles["v2"])
    assert watch.wait_for(lambda lst: any(json.loads(p)["outcome"] == "applied" for p in
                                          lst.payloads("kiosk/k1/provision/result")), 30)


def test_flash_all_skips_devices_whose_last_will_says_offline(tmp_path, watch, mosquitto,
                                                              bundles, capsys):
    watch.publish("kiosk/k9/status", json.dumps({"model_version": "1.0.0"}), retain=True)
    watch.publish("kiosk/k9/availability", "offline", retain=True)
    assert flash(tmp_path, bundles["v2"], mosquitto, "--all") == 1
    out = capsys.readouterr().out
    assert "k9: OFFLINE" in out and "0 of 1 device(s) applied" in out
    assert main(["status", "--mqtt", broker_arg(mosquitto)]) == 0
    assert "k9" in capsys.readouterr().out


def test_flash_needs_one_destination(tmp_path, bundles):
    with pytest.raises(SystemExit) as info:
        main(["flash", "x.kbundle", "--device", "k1"])
    assert info.value.code == 2


def test_an_unreachable_or_refusing_broker_is_named_with_the_reason(tmp_path, capsys):
    import socket

    from tests.conftest import Broker

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["status", "--mqtt", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the broker at 127.0.0.1:{port}: Connection refused" in err
    work = tmp_path / "broker"
    work.mkdir()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(work / "passwd"), "ops", "right"],
                   check=True, capture_output=True)
    broker = Broker(work, anonymous=False, extra=[f"password_file {work / 'passwd'}"])
    broker.start()
    try:
        (tmp_path / "pw").write_text("wrong\n")
        assert main(["status", "--mqtt", f"{broker.host}:{broker.port}", "--username", "ops",
                     "--password-file", str(tmp_path / "pw")]) == 1
        err = capsys.readouterr().err
        assert f"no connection to the broker at {broker.host}:{broker.port}: it refused" in err
        assert "Not authorized" in err or "Bad user name or password" in err, err
    finally:
        broker.stop()
