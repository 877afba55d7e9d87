"""A one-shot broker check with the appliance's own connection options (``kiosk doctor``).

:class:`BrokerProbe` is a :class:`PahoCommunicator`, so the credentials, the password file and
the TLS settings are applied by the very code the appliance runs: a probe that connects means the
appliance would connect too. It differs in three harmless ways: its client id ends in
``-doctor`` (a running appliance is not disconnected by it), it has no last will (nothing is
retained if it dies), and it connects in the foreground so the reason for a failure can be told.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import paho.mqtt.client as mqtt

from device.errors import KioskError
from device.mqtt.paho_comm import PahoCommunicator


class ProbeError(KioskError, ConnectionError):
    """The broker could not be reached, refused the connection or did not acknowledge."""


class BrokerProbe(PahoCommunicator):
    """Connect, publish one QoS 1 message, wait for its acknowledgement, disconnect.

    Args:
        cfg: a completed :class:`device.config.MqttConfig` (the appliance's).
        client_factory: builds the paho client (a seam for tests).
    Raises:
        ConfigError: the password file or a TLS file cannot be read (as the appliance would).
    """

    def __init__(self, cfg, client_factory=mqtt.Client):
        cfg = replace(cfg, client_id=f"{cfg.client_id}-doctor")
        super().__init__(cfg, will_topic=cfg.prefix + "doctor", client_factory=client_factory)
        self._client.will_clear()
        self._answered = threading.Event()
        self._acked: set[int] = set()
        self._ack_cond = threading.Condition()
        self.refused: str | None = None  # why the connection failed, once it did
        self.on_ack = self._record_ack

    def connect(self, timeout: float) -> None:
        """Connect and wait for the broker's answer; ProbeError saying why it failed."""
        cfg = self.cfg
        self._client.connect_timeout = timeout
        try:
            self._client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive)
        except ConnectionRefusedError:
            raise ProbeError("connection refused (is the broker running, is the port "
                             "right?)") from None
        except OSError as exc:  # name not found, timeout, TLS handshake (ssl.SSLError)
            raise ProbeError(f"cannot connect: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ProbeError(f"cannot connect: {exc}") from None
        self._client.loop_start()
        if not self._answered.wait(timeout):
            raise ProbeError(f"the broker did not answer the connection within {timeout:g} s")
        if self.refused:
            raise ProbeError(self.refused)

    def publish_acked(self, topic: str, payload: str, timeout: float) -> None:
        """Publish with QoS 1 (not retained) and wait for the broker's PUBACK."""
        mid = self.publish(topic, payload, qos=1, retain=False)
        with self._ack_cond:
            if not self._ack_cond.wait_for(lambda: mid in self._acked, timeout):
                raise ProbeError(f"the broker did not acknowledge a QoS 1 message on {topic} "
                                 f"within {timeout:g} s")

    def _record_ack(self, mid: int) -> None:
        with self._ack_cond:
            self._acked.add(mid)
            self._ack_cond.notify_all()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = f"the broker refused the connection: {reason_code}"
            client.disconnect()  # one answer is enough: no reconnect attempts
        else:
            super()._on_connect(client, userdata, flags, reason_code, properties)
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._answered.is_set():  # e.g. plain MQTT sent to a TLS port
            tls = self.cfg.tls is not None and self.cfg.tls.enabled
            hint = "" if tls else " (a TLS port? then set [mqtt.tls])"
            self.refused = f"the connection was closed before the broker answered{hint}"
            client.disconnect()
            self._answered.set()
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
