"""Local services for fleet tests and the fleet load tool: Debian's mosquitto and PostgreSQL,
each on a free loopback port in a temporary folder, stoppable and restartable on the same port.

PostgreSQL refuses to run as root, so as root ``initdb`` and ``pg_ctl`` run as the ``postgres``
user (``runuser``); its folder lives under the system temp dir, where that user can reach it.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
INSTALL_HINT = ("run the tests with bash tools/test.sh (it installs Debian's {pkg}) or "
                "apt-get install {pkg}")


class ServiceMissing(RuntimeError):
    """A Debian package the fleet tools need is not installed; the message says which."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited: {log.read_text()[-2000:] if log else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


# what a fleet's broker needs beyond mosquitto's defaults: durable sessions, and no cap on the
# queue of a stopped ingest worker (the default, 1000 messages per client, drops the rest)
FLEET_BROKER_OPTIONS = ["persistence true", "autosave_interval 30",
                        "max_queued_messages 10000000", "max_queued_bytes 0",
                        "max_inflight_messages 1000"]


class Mosquitto:
    """A mosquitto process on ``127.0.0.1:port`` with the given config lines."""

    def __init__(self, workdir: Path, lines: list[str] = (), port: int | None = None):
        if not Path(MOSQUITTO).exists():
            raise ServiceMissing("mosquitto is not installed: " + INSTALL_HINT.format(
                pkg="mosquitto"))
        self.workdir, self.port, self.host = Path(workdir), port or free_port(), "127.0.0.1"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf, self.log = self.workdir / "mosquitto.conf", self.workdir / "mosquitto.log"
        self.conf.write_text("\n".join([f"listener {self.port} 127.0.0.1",
                                        "allow_anonymous true", f"user {getpass.getuser()}",
                                        f"persistence_location {self.workdir}/", *lines]) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_port(self.port, timeout, self.proc, self.log)

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its sessions and queues to disk first."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise ServiceMissing("PostgreSQL is not installed: " + INSTALL_HINT.format(
            pkg="postgresql"))
    return Path(found[-1]).parent


class Postgres:
    """A PostgreSQL cluster of its own on ``127.0.0.1:port`` (trust auth, user ``postgres``)."""

    def __init__(self, port: int | None = None, options: list[str] = ()):
        self.bindir = pg_bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="kiosk-fleet-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.options = ["-c", "listen_addresses=127.0.0.1", "-c",
                        f"unix_socket_directories={self.root}", "-c", "max_connections=60",
                        *options]
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--no-sync", "-E", "UTF8"], timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], timeout: float = 60.0) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             cwd=self.root)
        if res.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {res.stderr[-2000:]} "
                               f"{self.log.read_text()[-2000:] if self.log.exists() else ''}")

    def start(self) -> None:
        opts = " ".join(["-p", str(self.port), *self.options])
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                   "-t", "60", "start"], timeout=90)
        wait_port(self.port, 30)

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                      timeout=90)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise ServiceMissing("Chromium is not installed: " + INSTALL_HINT.format(pkg="chromium"))
    return found


def screenshot(html: Path, png: Path, width: int = 1240, height: int = 2400) -> Path:
    """A PNG of a local HTML page, taken by headless Chromium (no network, a temporary profile)."""
    with tempfile.TemporaryDirectory(prefix="kiosk-fleet-chromium-") as profile:
        res = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", f"--screenshot={png}", html.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium could not take the screenshot: {res.stderr[-2000:]}")
    import cv2  # crop the empty window below the page (headless Chromium shoots the window)
    import numpy as np

    img = cv2.imread(str(png))
    rows = np.nonzero((np.abs(img.astype(int) - img[-1, -1].astype(int)).sum(axis=2) > 6)
                      .any(axis=1))[0]
    if len(rows):
        cv2.imwrite(str(png), img[:min(len(img), rows[-1] + 24)])
    return png
