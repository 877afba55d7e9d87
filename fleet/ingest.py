"""The ingest worker: every kiosk's ``audience``, ``status`` and ``availability`` into a store.

Delivery from the kiosks is at least once; the database holds each window exactly once:

* The worker subscribes with QoS 1 through an MQTT 5 shared subscription
  (``$share/<group>/kiosk/+/audience``), so any number of workers, on any machines, split the
  messages between them; each has a fixed client id and a persistent session
  (``clean_start=False`` and a long session expiry), so the broker keeps queueing a stopped
  worker's share until it returns.
* It acknowledges a message (manual PUBACK) only after the transaction that stored it has
  committed. A worker killed in between gets the message again; the store keys windows on
  ``(device_id, seq)`` and absorbs the second copy.
* Acknowledgements are tied to the connection they belong to: after a reconnect the broker
  re-sends what was not acknowledged, and an old message id is never acknowledged on the new
  connection (it may name another message there).
* A database that goes away (restart, network) holds the batch, unacknowledged, and the worker
  retries it with backoff; the broker meanwhile queues.

Mosquitto (2.0) does not keep shared subscriptions over its own restart: until a worker has
subscribed again, windows that kiosks publish match no subscription and are dropped. A worker
with ``backstop`` (the default) therefore also holds a plain subscription to ``audience`` and
``availability``, which the broker restores with the session, and queues while the worker is
away. Every window thus reaches the backstop worker once more. It holds such a copy for a
second, then skips it if the window is stored by then (its own shared copy, in a bounded
in-memory set, or another worker's, by one query per batch) and writes only the rest: the
windows that no shared subscription took. Dropping backstop copies unseen is not safe: one that
arrives after the shared subscription is back may still have been queued before it existed. One
backstop worker per group is enough (``--no-backstop`` for the others); two if a broker restart
may coincide with one of them being down for long.

Shared subscriptions get no retained messages, so at start a worker also reads the retained
``status`` and ``availability`` of every kiosk once, through a second, short-lived connection.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.errors import BadMessage, StoreUnavailable
from fleet.messages import LEAVES, Rejected, Window, parse
from provisioning.mqtt_tool import BrokerOptions

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 30 * 86400  # a stopped worker's queue is kept this long
SHARED, BACKSTOP = 1, 2  # MQTT 5 subscription identifiers: which subscription a copy came by
RECENT_MAX = 200_000  # windows remembered as stored, so a backstop copy costs no database write
BACKSTOP_HOLD_S = 1.0  # a backstop copy waits this long; by then its shared copy is stored


@dataclass(frozen=True)
class Delivery:
    """One message from the broker; ``mid`` is None for the retained snapshot (no ack)."""

    topic: str
    payload: bytes
    received_at: float
    mid: int | None = None
    qos: int = 0
    generation: int = 0
    backstop: bool = False  # came through the plain backstop subscription only


def configure(client: mqtt.Client, opts: BrokerOptions) -> None:
    """Credentials and TLS for a paho client, as ``kiosk-provision`` takes them."""
    if opts.username:
        password = (Path(opts.password_file).read_text().rstrip("\r\n")
                    if opts.password_file else None)
        client.username_pw_set(opts.username, password)
    if opts.tls or opts.ca_file or opts.cert_file:
        client.tls_set(ca_certs=opts.ca_file, certfile=opts.cert_file, keyfile=opts.key_file,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(opts.insecure)


def filters(root: str, group: str | None) -> list[str]:
    """The worker's topic filters: shared when ``group`` is set."""
    share = f"$share/{group}/" if group else ""
    return [f"{share}{root}/+/{leaf}" for leaf in LEAVES]


def backstop_filters(root: str) -> list[str]:
    """The plain filters a backstop worker also holds (statuses come again every few seconds)."""
    return [f"{root}/+/audience", f"{root}/+/availability"]


def _subscription(identifier: int) -> Properties:
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = identifier
    return props


class IngestWorker:
    """One ingest worker.

    Args:
        store: where messages go (:func:`fleet.store.open_store`).
        opts: the broker.
        group: the shared-subscription group; workers with the same group split the messages.
        name: this worker's name in the group (its session); stable across restarts.
        batch_max: most messages per transaction.
        batch_wait_s: how long a batch waits for more messages after its first.
        receive_max: unacknowledged messages the broker may send this worker at once.
        snapshot_s: seconds to collect retained statuses at start (0: skip).
        backstop: also hold a plain subscription that survives a broker restart (see above).
        leave: drain this worker's queued share, then end its session for good (retiring a
            worker that will not come back).
    """

    def __init__(self, store, opts: BrokerOptions, group: str = "kiosk-fleet",
                 name: str | None = None, batch_max: int = 500, batch_wait_s: float = 0.05,
                 receive_max: int = 1000, session_expiry_s: int = SESSION_EXPIRY_S,
                 snapshot_s: float = 3.0, backstop: bool = True, leave: bool = False,
                 clock=time.time):
        self.store, self.opts, self.group = store, opts, group
        self.name = name or socket.gethostname()
        self.client_id = f"kiosk-fleet-{group}-{self.name}"
        self.batch_max, self.batch_wait_s, self.snapshot_s = batch_max, batch_wait_s, snapshot_s
        self.leave, self.backstop, self.clock = leave, backstop, clock
        self._shared_mid: int | None = None
        self._recent: OrderedDict[tuple[str, int], bool] = OrderedDict()  # stored windows
        self._held: deque[tuple[float, Delivery]] = deque()  # backstop copies, by due time
        self.stats = {"new": 0, "duplicate": 0, "other": 0, "rejected": 0, "retries": 0}
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.connected = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._last_message = time.monotonic()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        props.ReceiveMaximum = receive_max
        self._props = props
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        configure(self.client, opts)
        self._stopping = False
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- paho's thread ---------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("ingest %s: broker refused the connection: %s", self.name, reason_code)
            return
        if self.leave:
            client.unsubscribe([*filters(self.opts.root, self.group),
                                *backstop_filters(self.opts.root)])
        else:
            if self.backstop:  # first, so nothing falls between the two
                client.subscribe([(t, 1) for t in backstop_filters(self.opts.root)],
                                 properties=_subscription(BACKSTOP))
            else:
                client.unsubscribe(backstop_filters(self.opts.root))
            self._shared_mid = client.subscribe(
                [(t, 1) for t in filters(self.opts.root, self.group)],
                properties=_subscription(SHARED))[1]
        log.info("ingest %s: connected to %s:%d (session %s)", self.name, self.opts.host,
                 self.opts.port, "resumed" if flags.session_present else "new")
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._ack_lock:  # acks of the old connection must not go out on the next one
            self._generation += 1
        self.connected.clear()
        if not self._stopping:
            log.warning("ingest %s: lost the broker (%s); reconnecting", self.name, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._shared_mid and any(rc.is_failure for rc in reason_codes):
            log.error("ingest %s: the broker refused the shared subscription: %s",
                      self.name, [str(rc) for rc in reason_codes])

    def _on_message(self, client, userdata, msg) -> None:
        self._last_message = time.monotonic()
        ids = getattr(msg.properties, "SubscriptionIdentifier", None) or []
        self.inbox.put(Delivery(msg.topic, bytes(msg.payload), self.clock(), msg.mid, msg.qos,
                                self._generation, BACKSTOP in ids and SHARED not in ids))

    # -- the writer ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (in the background, retried) and take the retained snapshot."""
        self.client.connect_async(self.opts.host, self.opts.port, keepalive=30,
                                  clean_start=False, properties=self._props)
        self.client.loop_start()
        if self.snapshot_s > 0 and not self.leave:
            threading.Thread(target=self._snapshot, name="fleet-snapshot", daemon=True).start()

    def run(self, stop: threading.Event) -> None:
        """Write batches until ``stop`` is set (or, with ``leave``, until the queue is drained).

        Then the current batch is finished and acknowledged and the worker disconnects; its
        session stays on the broker (unless leaving).
        """
        self.start()
        next_log = time.monotonic() + 10.0
        try:
            while not stop.is_set():
                batch = self._take()
                if batch or self._held:
                    self._store(batch, stop)
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + 10.0
                    self._log_stats()
                if self.leave and self._drained():
                    log.info("ingest %s: queue drained; ending the session", self.name)
                    break
        finally:
            self._disconnect()
            self._log_stats()

    def _drained(self) -> bool:
        return (self.connected.is_set() and self.inbox.empty() and not self._held
                and time.monotonic() - self._last_message > 3.0)

    def _take(self) -> list[Delivery]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch, end = [first], time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            left = end - time.monotonic()
            try:
                batch.append(self.inbox.get(timeout=left) if left > 0 else
                             self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[Delivery], stop: threading.Event) -> None:
        now = time.monotonic()
        self._held.extend((now + BACKSTOP_HOLD_S, d) for d in batch if d.backstop)
        batch = [d for d in batch if not d.backstop]
        due = []
        while self._held and self._held[0][0] <= now:
            due.append(self._held.popleft()[1])
        if due:
            batch += self._unseen(due)
        if not batch:
            return
        items, keys = [], {}  # window key -> came through the backstop
        for d in batch:
            try:
                item = parse(d.topic, d.payload, d.received_at, self.opts.root)
            except BadMessage as exc:
                if d.backstop:  # the shared copy is (or was) kept
                    continue
                items.append(Rejected(d.topic, str(exc), d.payload, d.received_at))
                self.stats["rejected"] += 1
                log.warning("ingest %s: rejected a message on %s: %s", self.name, d.topic, exc)
                continue
            if isinstance(item, Window):
                key = (item.device_id, item.seq)
                stored = self._recent.get(key, keys.get(key))
                if stored is not None:  # a second copy; a redelivery unless it is the pair's
                    self.stats["duplicate"] += stored == d.backstop
                    continue
                keys[key] = d.backstop
                if d.backstop:
                    item = replace(item, backstop=True)
            items.append(item)
        delay = 0.5
        while True:
            try:
                result = self.store.write(items)
                break
            except StoreUnavailable as exc:
                self.stats["retries"] += 1
                log.warning("ingest %s: database unavailable (%s); retrying in %.1f s",
                            self.name, exc, delay)
                if stop.wait(delay):
                    return  # not acknowledged: the broker delivers these again
                delay = min(delay * 2, 10.0)
        for key in ("new", "duplicate", "other"):
            self.stats[key] += getattr(result, key)
        for key, backstop in keys.items():
            self._recent[key] = backstop
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        self._ack(batch)

    def _unseen(self, copies: list[Delivery]) -> list[Delivery]:
        """The backstop copies whose window is not stored yet; the others are acknowledged."""
        keyed = []
        for d in copies:
            try:
                item = parse(d.topic, d.payload, d.received_at, self.opts.root)
            except BadMessage:
                item = None  # the shared copy was rejected (or will be) and kept as such
            keyed.append((d, (item.device_id, item.seq) if isinstance(item, Window) else None,
                          item))
        ask = [k for d, k, _ in keyed if k is not None and k not in self._recent]
        try:
            stored = self.store.existing(ask) if ask else set()
        except StoreUnavailable:
            stored = set()  # the write path retries; duplicates are absorbed there
        keep, done = [], []
        for d, key, item in keyed:
            if item is None or key in self._recent or key in stored:
                done.append(d)
            else:
                keep.append(d)
        self._ack(done)
        return keep

    def _ack(self, batch: list[Delivery]) -> None:
        with self._ack_lock:
            for d in batch:
                if d.mid is not None and d.qos > 0 and d.generation == self._generation:
                    self.client.ack(d.mid, d.qos)

    def _disconnect(self) -> None:
        self._stopping = True
        props = None
        if self.leave:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    def _log_stats(self) -> None:
        s = self.stats
        log.info("ingest %s: %d windows stored, %d duplicates absorbed, %d statuses/"
                 "availabilities, %d rejected, %d database retries, %d waiting", self.name,
                 s["new"], s["duplicate"], s["other"], s["rejected"], s["retries"],
                 self.inbox.qsize())

    # -- the retained snapshot -------------------------------------------------------------
    def _snapshot(self) -> None:
        """Read every kiosk's retained status and availability once (clean, short session)."""
        got = threading.Event()
        snap = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                           client_id=f"{self.client_id}-snapshot")
        configure(snap, self.opts)

        def on_connect(client, userdata, flags, reason_code, properties):
            if not reason_code.is_failure:
                for leaf in ("status", "availability"):
                    client.subscribe(f"{self.opts.root}/+/{leaf}", qos=1)

        def on_message(client, userdata, msg):
            if msg.retain:  # live messages come through the shared subscription
                self.inbox.put(Delivery(msg.topic, bytes(msg.payload), self.clock()))

        snap.on_connect, snap.on_message = on_connect, on_message
        snap.on_subscribe = lambda *a: got.set()
        try:
            snap.connect_async(self.opts.host, self.opts.port, keepalive=30)
            snap.loop_start()
            if got.wait(60.0):
                time.sleep(self.snapshot_s)
            else:
                log.warning("ingest %s: no retained snapshot (broker unreachable); statuses "
                            "arrive with the kiosks' next ones", self.name)
        finally:
            snap.disconnect()
            snap.loop_stop()
