"""The MQTT side of the appliance, on its own thread: spool replay, status, discovery, commands.

The vision loop only ever calls :meth:`Publisher.notify` (after writing a window to the spool) and
never waits for the network. This thread sends spooled windows in ``seq`` order, deletes each one
when the broker acknowledges it, keeps ``availability``/``status``/discovery retained on the
broker, and answers commands.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable

from device.mqtt.base import Communicator
from device.mqtt.commands import handle_command
from device.mqtt.messages import Topics
from device.spool import Spool

log = logging.getLogger(__name__)


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class Publisher:
    """Drains the spool to the broker and keeps the retained topics current.

    Args:
        comm: the broker connection (a :class:`NullCommunicator` when there is none).
        spool: the outbox the vision loop writes windows to.
        topics: topic names under the device prefix.
        status: returns the status object (spool fields are added here).
        discovery: Home Assistant discovery ``[(topic, config)]``; re-sent when Home Assistant
            announces ``online`` on ``ha_status_topic``. None: not known yet (nothing is removed
            until :meth:`set_discovery`); ``[]``: none (every config found is removed).
        forget_topic: a wildcard matching every discovery config this kiosk may have published;
            a retained config found there that is not in ``discovery`` gets an empty retained
            payload, so Home Assistant removes the entity.
        handlers: extra command handlers (``reload-config``); ``ping`` and ``status`` are built in.
        qos: QoS of audience messages (1 or 2).
        status_s: seconds between status messages.
        max_inflight: spooled messages handed to paho before their acknowledgements come back.
        ack_timeout_s: a message unacknowledged this long on a live connection is sent again.
        on_link: ``on_link(connected)`` whenever the broker connection comes or goes (called on
            this thread; paho reconnects by itself).
    """

    def __init__(self, comm: Communicator, spool: Spool, topics: Topics,
                 status: Callable[[], dict], discovery: list[tuple[str, dict]] | None = (),
                 ha_status_topic: str | None = None, forget_topic: str | None = None,
                 handlers: dict | None = None, qos: int = 1,
                 status_s: float = 10.0, max_inflight: int = 20, ack_timeout_s: float = 60.0,
                 prune_every_s: float = 60.0, clock=time.monotonic,
                 on_link: Callable[[bool], None] | None = None):
        self.comm, self.spool, self.topics = comm, spool, topics
        self._status_fn = status
        self.discovery = None if discovery is None else list(discovery)
        self._found: set[str] = set()  # retained discovery configs seen under forget_topic
        self.handlers = {"ping": lambda: {"pong": True}, "status": self.status, **(handlers or {})}
        self.qos, self.status_s, self.max_inflight = qos, status_s, max_inflight
        self.ack_timeout_s, self.prune_every_s, self.clock = ack_timeout_s, prune_every_s, clock
        self._events: queue.Queue = queue.Queue()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (seq, sent at)
        self._acked: set[int] = set()  # mids of non-spool messages we wait for
        self._connected_at = 0.0
        self._on_link, self._link = on_link, None
        self._next_status = self._next_prune = 0.0
        self._stop_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        comm.on_connect = lambda: self._events.put(("connected", None))
        comm.on_ack = lambda mid: self._events.put(("ack", mid))
        comm.subscribe(topics.cmd, lambda t, p: self._events.put(("cmd", p)))
        if ha_status_topic:
            comm.subscribe(ha_status_topic, lambda t, p: self._events.put(("ha", p)))
        if forget_topic:
            comm.subscribe(forget_topic, lambda t, p: self._events.put(("found", (t, p))))

    # -- called from other threads -------------------------------------------------------------
    def start(self) -> None:
        self.comm.start()
        self._thread.start()

    def notify(self) -> None:
        """A new window is in the spool: send it when possible. Never blocks."""
        self._events.put(("wake", None))

    def status_changed(self) -> None:
        """Something operators care about changed (camera lost/back): send status now."""
        self._events.put(("status", None))

    def set_discovery(self, messages: list[tuple[str, dict]]) -> None:
        """Replace the discovery configs (e.g. once the model version is known) and send them."""
        self._events.put(("discovery", list(messages)))

    def status(self) -> dict:
        """The status object with the spool's depth and drop count."""
        return {**self._status_fn(), "spool_depth": self.spool.depth,
                "spool_dropped": self.spool.dropped}

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Send what can be sent within ``flush_timeout``, publish ``offline``, disconnect."""
        if self._thread.ident is not None:  # started
            self._events.put(("stop", self.clock() + flush_timeout))
            self._thread.join(flush_timeout + 5.0)
        self.comm.stop()

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                self._handle(*self._events.get(timeout=0.5))
                while True:  # take everything that is queued before sending more
                    self._handle(*self._events.get_nowait())
            except queue.Empty:
                pass
            except Exception:  # keep the thread alive: the spool still holds the data
                log.exception("MQTT publisher: unexpected error")
            if self._stop_deadline is not None:
                return self._finish()
            try:
                self._periodic()
                self._pump()
            except Exception:
                log.exception("MQTT publisher: unexpected error")
                time.sleep(1.0)  # do not spin on a persistent failure (e.g. a broken SD card)

    def _handle(self, kind: str, arg) -> None:
        if kind == "connected":
            self._connected_at = self.clock()
            self._publish(self.topics.availability, "online", retain=True)
            self._publish_discovery()
            self._next_status = 0.0
        elif kind == "ack":
            sent = self._inflight.pop(arg, None)
            if sent is not None:
                self.spool.ack(sent[0])
            elif self._stop_deadline is not None:  # only the final "offline" is waited for
                self._acked.add(arg)
        elif kind == "cmd":
            result = handle_command(arg, self.handlers)
            log.info("command %s -> %s", result.get("cmd"),
                     "ok" if result["ok"] else result["error"])
            self._publish(self.topics.cmd_result, dumps(result))
        elif kind == "status":
            self._next_status = 0.0
        elif kind == "discovery":
            self.discovery = arg
            if self.comm.connected:
                self._publish_discovery()
            self._forget_stale()
        elif kind == "found":
            topic, payload = arg
            if payload:
                self._found.add(topic)
                self._forget_stale()
        elif kind == "ha" and arg.strip() == b"online":
            self._publish_discovery()
        elif kind == "stop":
            self._stop_deadline = arg

    def _publish(self, topic: str, payload: str, retain: bool = False) -> int:
        return self.comm.publish(topic, payload, qos=1, retain=retain)

    def _publish_discovery(self) -> None:
        for topic, config in self.discovery or ():
            self._publish(topic, dumps(config), retain=True)

    def _forget_stale(self) -> None:
        """Empty the retained configs of entities this kiosk no longer announces."""
        if self.discovery is None or not self.comm.connected:
            return
        stale = self._found - {topic for topic, _ in self.discovery}
        for topic in sorted(stale):
            log.info("Home Assistant: removing the entity of %s", topic)
            self._publish(topic, "", retain=True)
        self._found -= stale

    def _periodic(self) -> None:
        now = self.clock()
        if self._on_link is not None and self.comm.connected != self._link:
            self._link = self.comm.connected
            self._on_link(self._link)
        if now >= self._next_prune:
            self._next_prune = now + self.prune_every_s
            dropped = self.spool.prune()
            if dropped:
                log.warning("spool: dropped %d windows older than %.0f s", dropped,
                            self.spool.max_age_s)
        if self.comm.connected and now >= self._next_status:
            self._next_status = now + self.status_s
            self._publish(self.topics.status, dumps(self.status()), retain=True)
        if self.comm.connected:
            stale = [mid for mid, (_, sent) in self._inflight.items()
                     if now - max(sent, self._connected_at) > self.ack_timeout_s]
            for mid in stale:  # paho lost it: forget the mid so _pump sends the row again
                del self._inflight[mid]

    def _pump(self) -> None:
        """Hand the oldest unsent spooled windows to paho, up to ``max_inflight`` at a time."""
        if not self.comm.connected or len(self._inflight) >= self.max_inflight:
            return
        busy = {seq for seq, _ in self._inflight.values()}
        for msg in self.spool.pending(limit=self.max_inflight + len(busy)):
            if len(self._inflight) >= self.max_inflight:
                break
            if msg.seq not in busy:
                mid = self.comm.publish(msg.topic, msg.payload, qos=self.qos)
                self._inflight[mid] = (msg.seq, self.clock())

    def _finish(self) -> None:
        """Shutdown: drain the spool until the deadline, then say ``offline`` and wait for it."""
        while self.comm.connected and self.clock() < self._stop_deadline:
            self._pump()
            if not self._inflight and not self.spool.depth:
                break
            self._drain_events(0.05)
        if self.comm.connected:
            self._publish(self.topics.status, dumps({**self.status(), "state": "stopped"}),
                          retain=True)
            mid = self._publish(self.topics.availability, "offline", retain=True)
            end = self.clock() + 1.0
            while mid not in self._acked and self.clock() < end:
                self._drain_events(0.05)
        left = self.spool.depth
        if left:
            log.info("spool: %d windows stay queued for the next start", left)

    def _drain_events(self, timeout: float) -> None:
        try:
            kind, arg = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        if kind in ("ack", "connected"):
            self._handle(kind, arg)
