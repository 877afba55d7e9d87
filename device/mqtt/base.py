"""The thin interface the appliance talks to instead of paho (Frigate's ``Communicator``)."""

from __future__ import annotations

import abc
from collections.abc import Callable

MessageCallback = Callable[[str, bytes], None]  # (topic, payload)


class Communicator(abc.ABC):
    """Publish, subscribe and stop; everything about the broker connection stays behind this.

    Callbacks run on the communicator's own thread and must return quickly.

    Attributes:
        on_connect: called with no arguments after every (re)connection, once subscriptions have
            been renewed.
        on_ack: called with a message id once the broker has acknowledged a QoS 1/2 message.
    """

    def __init__(self):
        self.on_connect: Callable[[], None] = lambda: None
        self.on_ack: Callable[[int], None] = lambda mid: None

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while the broker connection is up."""

    @abc.abstractmethod
    def start(self) -> None:
        """Begin connecting in the background; never blocks on the network."""

    @abc.abstractmethod
    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False) -> int:
        """Queue a message; return its message id (for ``on_ack``)."""

    @abc.abstractmethod
    def subscribe(self, topic: str, callback: MessageCallback, qos: int = 1) -> None:
        """Deliver messages on ``topic`` to ``callback``; renewed on every reconnect."""

    @abc.abstractmethod
    def stop(self, timeout: float = 2.0) -> None:
        """Disconnect cleanly (no last will) and stop the background thread."""


class NullCommunicator(Communicator):
    """No broker configured: accepts everything, delivers nothing, never acknowledges.

    Like picamera2's ``NullPreview``, it lets callers skip the "is there a broker" branch.
    """

    @property
    def connected(self) -> bool:
        return False

    def start(self) -> None:
        pass

    def publish(self, topic, payload, qos=0, retain=False) -> int:
        return 0

    def subscribe(self, topic, callback, qos=1) -> None:
        pass

    def stop(self, timeout=2.0) -> None:
        pass
