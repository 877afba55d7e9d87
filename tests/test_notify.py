"""systemd integration: sd_notify over a real datagram socket, and the unit file itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from device.notify import Notifier

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "audience-kiosk.service"


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def received(sock) -> list[str]:
    out = []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_outside_systemd_nothing_is_sent():
    n = Notifier(environ={})
    assert not n.enabled and not n.ready("x") and not n.watchdog()


def test_ready_status_and_stopping_reach_the_socket(notify_socket):
    path, sock = notify_socket
    n = Notifier(environ={"NOTIFY_SOCKET": str(path)})
    assert n.ready("models 1.4.0 passed") and n.status("counting") and n.stopping()
    assert received(sock) == ["READY=1\nSTATUS=models 1.4.0 passed", "STATUS=counting",
                              "STOPPING=1"]


def test_abstract_socket_addresses_are_understood():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0audience-kiosk-test-notify")
    try:
        assert Notifier(environ={"NOTIFY_SOCKET": "@audience-kiosk-test-notify"}).stopping()
        assert received(sock) == ["STOPPING=1"]
    finally:
        sock.close()


def test_watchdog_pings_at_twice_the_rate_systemd_asks_for(notify_socket):
    path, sock = notify_socket
    now = [100.0]
    n = Notifier(environ={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"},
                 clock=lambda: now[0])
    sent = []
    for t in range(0, 10):  # every second for 10 s: a ping every 2 s
        now[0] = 100.0 + t
        sent.append(n.watchdog())
    assert sent == [True, False] * 5
    assert received(sock) == ["WATCHDOG=1"] * 5
    assert Notifier(environ={"NOTIFY_SOCKET": str(path)}).watchdog() is False  # no watchdog set


def test_a_gone_socket_is_never_fatal(tmp_path):
    assert Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "nobody")}).ready("x") is False


def test_the_appliance_tells_systemd_it_is_ready_and_pings_while_counting(
        notify_socket, tmp_path):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--source", "demo",
                          "--no-mqtt", "--state-dir", str(tmp_path / "state"),
                          "--max-frames", "60"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    messages = received(sock)
    ready = [m for m in messages if m.startswith("READY=1")]
    assert len(ready) == 1 and "passed their self-test" in ready[0]
    assert messages.index(ready[0]) < messages.index("STATUS=counting from demo")
    assert messages.count("WATCHDOG=1") >= 1 and messages[-1] == "STOPPING=1"
    assert "first frame analysed" in run.stderr


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path):
    """The unit as shipped, with ExecStart pointing at this machine's kiosk command."""
    assert shutil.which("systemd-analyze"), \
        "systemd-analyze is missing: apt install systemd (bash tools/test.sh does)"
    kiosk = Path(sys.executable).with_name("kiosk")
    assert kiosk.is_file(), kiosk
    text = UNIT.read_text().replace("/opt/audience-kiosk/venv/bin/kiosk", str(kiosk))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines() if UNIT.name in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def test_the_unit_stops_restarting_on_usage_errors_and_waits_for_readiness():
    text = UNIT.read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and int(settings["WatchdogSec"]) >= 30
    assert settings["RestartPreventExitStatus"].split() == ["2"]
    assert settings["Restart"] == "always"
    assert "ExecStartPre" not in settings  # kiosk run itself exits 2 on a bad config
