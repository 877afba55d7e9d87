"""Shared fixtures.

``mosquitto``: a real Debian mosquitto on a free local port, stoppable and restartable on the same
port (broker-outage tests). ``mosquitto_persistent`` keeps its sessions across a restart (as a
production broker does), so a QoS 1 test subscriber with ``clean_session=False`` misses nothing
while the broker is down: outage tests use it to see every window the appliance re-sends.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process the test controls. ``host``/``port`` stay the same across restarts."""

    def __init__(self, workdir: Path, persistence: bool = False, extra: list[str] = (),
                 anonymous: bool = True):
        self.host, self.port = "127.0.0.1", _free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        # as root, Debian's mosquitto drops to user "mosquitto", which cannot write our tmp dir
        # (the persistence file): stay the user we are
        lines = [f"listener {self.port} 127.0.0.1",
                 f"allow_anonymous {'true' if anonymous else 'false'}",
                 f"user {getpass.getuser()}",
                 f"persistence {'true' if persistence else 'false'}"]
        if persistence:
            lines += [f"persistence_location {workdir}/", "autosave_interval 3600"]
        lines += list(extra)  # e.g. TLS and password options for the listener above
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM: a persistent broker saves its sessions first)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _broker(tmp_path_factory, persistence: bool):
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: run the tests with bash tools/test.sh "
                    "(it installs Debian's mosquitto) or apt-get install mosquitto")
    broker = Broker(tmp_path_factory.mktemp("mosquitto"), persistence=persistence)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A fresh broker for one test: ``.host``, ``.port``, ``.stop()``, ``.start()``."""
    yield from _broker(tmp_path_factory, persistence=False)


@pytest.fixture
def mosquitto_persistent(tmp_path_factory):
    """Like ``mosquitto`` but sessions and queued QoS 1 messages survive ``stop()``/``start()``."""
    yield from _broker(tmp_path_factory, persistence=True)


class Listener:
    """A test MQTT client that records every message on ``topics`` (subscribed in on_connect).

    ``clean_session=False`` with a fixed ``client_id`` makes it a durable QoS 1 consumer.
    """

    def __init__(self, broker: Broker, topics, client_id: str = "", clean_session: bool = True,
                 username: str | None = None, password: str | None = None,
                 ca_file: str | None = None):
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self.topics = list(topics)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session)
        self.client.reconnect_delay_set(1, 1)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "test listener could not subscribe"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def payloads(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Wait until ``predicate(self)`` is true; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen():
    """``listen(broker, topics, **kw)`` -> a connected :class:`Listener`, closed after the test."""
    made: list[Listener] = []

    def factory(broker, topics, **kw):
        made.append(Listener(broker, topics, **kw))
        return made[-1]

    yield factory
    for listener in made:
        listener.close()
