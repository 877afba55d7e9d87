"""The paho-mqtt 2.x implementation of :class:`Communicator`.

paho runs its own network thread (``loop_start``), reconnects with a capped exponential backoff,
and re-sends unacknowledged QoS 1 messages after a reconnect. Subscriptions are made inside
``on_connect`` so every reconnect renews them. The password is read when the client starts and is
never logged, printed or put in a status message.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.errors import ConfigError
from device.mqtt.base import Communicator, MessageCallback

log = logging.getLogger(__name__)
# paho logs these at ERROR for normal events: its loop thread ticking between a disconnect and
# the next reconnect, and a clean stop
NORMAL_EVENTS = ("Client is not connected",)


class NormalEventsFilter(logging.Filter):
    """Demotes paho's ERROR lines for normal events to DEBUG (dropped unless DEBUG is on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(NORMAL_EVENTS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def paho_logger() -> logging.Logger:
    """The logger paho writes to, with :class:`NormalEventsFilter` on it (once)."""
    logger = logging.getLogger("device.mqtt.paho")
    if not any(isinstance(f, NormalEventsFilter) for f in logger.filters):
        logger.addFilter(NormalEventsFilter())
    return logger


def read_password(cfg) -> str | None:
    """The broker password from ``password_file`` or ``password_env`` (None when neither is set)."""
    if cfg.password_file:
        try:
            return Path(cfg.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"[mqtt] password_file: cannot read {cfg.password_file} "
                              f"({exc.strerror or type(exc).__name__})") from None
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if value is None:
            raise ConfigError(f"[mqtt] password_env: environment variable {cfg.password_env} "
                              "is not set")
        return value
    return None


class PahoCommunicator(Communicator):
    """Connects to the broker of an ``[mqtt]`` config section.

    Args:
        cfg: a :class:`device.config.MqttConfig`.
        will_topic: where the broker publishes ``offline`` (retained) if the connection dies.
        client_factory: builds the paho client (a seam for tests).
    """

    def __init__(self, cfg, will_topic: str, client_factory=mqtt.Client):
        super().__init__()
        self.cfg = cfg
        self._subs: dict[str, tuple[MessageCallback, int]] = {}
        self._connected = threading.Event()
        self._client = client_factory(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                                      protocol=mqtt.MQTTv311, clean_session=True)
        self._client.enable_logger(paho_logger())
        self._client.reconnect_delay_set(1, max(1, int(cfg.reconnect_max_s)))
        self._client.will_set(will_topic, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._configure_auth()

    def _configure_auth(self) -> None:
        cfg = self.cfg
        if cfg.username:
            self._client.username_pw_set(cfg.username, read_password(cfg))
        tls = cfg.tls
        if tls is None or not tls.enabled:
            return
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"[mqtt.tls] {key}: no such file {path}")
        try:
            self._client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file,
                                 keyfile=tls.key_file, cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise ConfigError(f"[mqtt.tls]: cannot load the certificates: {exc}") from None
        self._client.tls_insecure_set(tls.insecure)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        cfg = self.cfg
        log.info("MQTT: connecting to %s:%d as %s", cfg.host, cfg.port, cfg.client_id)
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self._client.loop_start()

    def publish(self, topic, payload, qos=0, retain=False) -> int:
        return self._client.publish(topic, payload, qos=qos, retain=retain).mid

    def subscribe(self, topic, callback, qos=1) -> None:
        self._subs[topic] = (callback, qos)
        if self.connected:
            self._client.subscribe(topic, qos)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout=2.0) -> None:
        self._connected.clear()  # a clean disconnect is not worth a warning
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # paho callbacks (VERSION2 signatures), on paho's thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT: broker refused the connection: %s", reason_code)
            return
        log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        for topic, (_, qos) in list(self._subs.items()):  # subscribe() may run meanwhile
            client.subscribe(topic, qos)
        self._connected.set()
        self._safe(self.on_connect)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("MQTT: disconnected (%s); reconnecting in the background", reason_code)
        self._connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        for topic, (callback, _) in list(self._subs.items()):
            if mqtt.topic_matches_sub(topic, msg.topic):
                self._safe(callback, msg.topic, msg.payload)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._safe(self.on_ack, mid)

    @staticmethod
    def _safe(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # a bug in a handler must not kill paho's network thread
            log.exception("MQTT: handler %r failed", fn)
