"""Simulated kiosks: many MQTT kiosks in one process, publishing with the appliance's own code.

Each simulated kiosk is a connection of its own (its client id, its last will, its retained
``status`` and ``availability``) and builds its messages the way the appliance does:
:class:`WindowAggregator` counts visitors, :func:`audience_message` makes the message, a real
:class:`Spool` (in memory) allocates ``seq`` and keeps every window until the broker
acknowledges it, :class:`StatusBoard` makes the status. Only the camera and the models are
replaced: visitors are drawn at random (seeded), with a daily rhythm.

One thread drives all the kiosks of a process: a selector waits on their sockets and paho's
external-loop calls (``loop_read``, ``loop_write``, ``loop_misc``) do the rest. A thousand
appliances would need two threads, a model and an SQLite file each; a thousand of these fit in
two processes, and the broker still sees a thousand clients.

    python -m tools.fleet_sim --mqtt 127.0.0.1:1883 --kiosks 20 --windows 100 --interval-s 0.5
    python -m tools.fleet_sim --mqtt 127.0.0.1:1883 --kiosks 20 --week  # a week of 60 s windows

Window times are real time (each window ends when it is published), or with ``--start`` virtual
time: window ``j`` covers ``start + j * window_s`` onwards, published as fast as ``--interval-s``
allows. Simulated kiosks answer a model bundle on ``provision/bundle`` with a canned outcome
(``--provision``); the appliance's real provisioning path is tested elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import math
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.aggregate import WindowAggregator
from device.manifest import DEFAULT_AGE_GROUPS
from device.mqtt.messages import Topics, audience_message
from device.spool import Spool
from device.tracking import TrackSummary
from device.types import EMOTIONS
from device.wiring import StatusBoard

CANNED = ("applied", "rejected", "rolled_back", "silent")
REASONS = {"rejected": "not newer than the installed 1.4.0",
           "rolled_back": "pipeline error after the switch: no frames"}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


@dataclass
class KioskPlan:
    """What one simulated kiosk does besides counting.

    Attributes:
        traffic: visitors per minute at the busiest hour.
        outage: virtual ``(from, to)``: no broker link; windows wait in the spool.
        offline_at: virtual time after which the kiosk is gone (its last will says offline).
        hold_last: windows still waiting in the spool at the end (a slow uplink).
        provision: the canned answer to a bundle (applied, rejected, rolled_back, silent).
    """

    device_id: str
    model_version: str = "1.4.0"
    traffic: float = 3.0
    outage: tuple[float, float] | None = None
    offline_at: float | None = None
    hold_last: int = 0
    provision: str = "applied"
    max_age_s: float = 7 * 86400.0


def rhythm(t: float) -> float:
    """0..1: how busy a public screen is at time ``t`` (UTC): quiet at night, peaks at lunch
    and in the early evening, Saturdays busier and Sundays quieter than weekdays."""
    h = (t % 86400) / 3600.0
    day = math.exp(-((h - 12.5) / 2.2) ** 2) + 0.9 * math.exp(-((h - 17.5) / 2.0) ** 2)
    base = 0.03 + (0.25 if 8 <= h < 21 else 0.0) + 0.75 * day
    weekday = int(t // 86400 + 3) % 7  # 0 = Monday
    return min(1.0, base * (1.25 if weekday == 5 else 0.6 if weekday == 6 else 1.0))


class Visitors:
    """Random visitors, as the tracker would summarise them when they leave."""

    def __init__(self, rng: np.random.Generator, age_bias: float = 0.0):
        self.rng = rng
        ages = np.array([0.01, 0.04, 0.07, 0.22, 0.28, 0.18, 0.12, 0.08])
        ages = ages * np.exp(age_bias * np.linspace(-1, 1, len(ages)))
        self.age_p = ages / ages.sum()

    def draw(self, start: float, n: int, passers: int) -> list[TrackSummary]:
        out, r = [], self.rng
        for i in range(n + passers):
            dwell = float(r.lognormal(1.7, 0.8)) if i < n else float(r.uniform(0.1, 0.9))
            look = float(r.uniform(0.1, 0.8)) if r.random() < 0.55 else 0.0
            emo = r.dirichlet(np.array([0.3, 0.1, 0.2, 2.2, 0.5, 0.5, 3.0]))
            out.append(TrackSummary(
                track_id=i, start=start, end=start + dwell, dwell_s=dwell,
                attention_s=round(dwell * look, 2), n_frames=10, n_analyzed=5,
                age_group=str(r.choice(DEFAULT_AGE_GROUPS, p=self.age_p)),
                gender=("female" if r.random() < 0.52 else "male"),
                gender_prob=float(0.55 + 0.45 * math.sqrt(r.random())),
                emotions={e: float(p) for e, p in zip(EMOTIONS, emo, strict=True)}))
        return out


class SimKiosk:
    """One simulated kiosk: a paho client, an in-memory spool, an aggregator, a status board."""

    def __init__(self, plan: KioskPlan, host: str, port: int, rng: np.random.Generator,
                 root: str = "kiosk", window_s: float = 60.0, max_inflight: int = 20,
                 ack_timeout_s: float = 30.0):
        self.plan, self.host, self.port = plan, host, port
        self.window_s, self.max_inflight, self.ack_timeout_s = window_s, max_inflight, ack_timeout_s
        self.rng, self.visitors = rng, Visitors(rng, float(rng.uniform(-0.6, 0.6)))
        self.topics = Topics(f"{root}/{plan.device_id}/")
        self.virtual_now = time.time()
        self.spool = Spool(":memory:", max_age_s=plan.max_age_s, clock=lambda: self.virtual_now)
        self.aggregator = WindowAggregator()
        cfg = SimpleNamespace(device=SimpleNamespace(id=plan.device_id),
                              source=SimpleNamespace(spec="simulated"),
                              aggregate=SimpleNamespace(window_s=window_s),
                              display=SimpleNamespace(sink="none"))
        self.board = StatusBoard(cfg, wall=lambda: self.virtual_now)
        self.board.set(state="running", model_version=plan.model_version, accelerator="cpu",
                       analyzer_available=True, camera="ok", fps=float(rng.uniform(8, 12)))
        self.inflight: dict[int, tuple[int, float]] = {}  # mid -> (seq, sent at)
        self.connected = self.gone = False
        self.dirty = False  # something to send may be waiting: pump() has work
        self.sent = self.published = self.acked = 0
        self.first_publish = self.last_publish = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=plan.device_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.answers: list = []  # (due, topic, payload) canned provisioning messages

    # -- paho callbacks (the fleet's thread) -----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        self.connected = self.dirty = True
        client.subscribe(self.topics.prefix + "provision/bundle", qos=1)
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        self.publish_status()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        sent = self.inflight.pop(mid, None)
        if sent is not None:
            self.spool.ack(sent[0])
            self.acked += 1
            self.dirty = True

    def _on_message(self, client, userdata, msg) -> None:
        outcome = self.plan.provision
        if outcome == "silent":
            return
        sha = hashlib.sha256(msg.payload).hexdigest()
        now = time.monotonic() + float(self.rng.uniform(0.1, 0.5))
        steps = ["received"] + (["staged", "kat_passed", "switched"] if outcome != "rejected"
                                else [])
        pace = float(self.rng.uniform(0.3, 1.0))  # seconds per step; a real kiosk takes minutes
        for i, step in enumerate(steps):
            self.answers.append((now + pace * i, "provision/progress",
                                 {"bundle_version": "canned", "step": step,
                                  "bundle_sha256": sha}))
        self.answers.append((now + pace * len(steps), "provision/result",
                             {"bundle_version": "canned", "outcome": outcome,
                              "reason": REASONS.get(outcome, ""), "t": round(time.time(), 3),
                              "bundle_sha256": sha}))

    # -- what the kiosk does -----------------------------------------------------------------
    def close_window(self, start: float, end: float) -> int:
        """Count random visitors into the window ``start..end`` and spool its message."""
        self.virtual_now = end
        minutes = (end - start) / 60.0
        rate = self.plan.traffic * rhythm(start) * minutes
        for summary in self.visitors.draw(start, int(self.rng.poisson(rate)),
                                          int(self.rng.poisson(rate * 1.5))):
            self.aggregator.add(summary)
        figures = self.aggregator.close(start, end)
        frames = int(max(0.0, end - start) * 10)
        seq = self.spool.append(self.topics.audience, lambda s: dumps(audience_message(
            s, self.plan.device_id, start, end, figures, frames, self.plan.model_version)))
        self.board.set(last_seq=seq)
        self.sent += 1
        self.dirty = True
        self.spool.prune()
        return seq

    def status(self) -> dict:
        return {**self.board.snapshot(), "spool_depth": self.spool.depth,
                "spool_dropped": self.spool.dropped}

    def publish_status(self) -> None:
        if self.connected:
            self.client.publish(self.topics.status, dumps(self.status()), qos=1, retain=True)

    def pump(self, hold: int = 0) -> None:
        """Hand the oldest unsent windows to paho (as the appliance's Publisher does)."""
        if not self.connected or self.gone or len(self.inflight) >= self.max_inflight:
            return
        self.dirty = False
        busy = {seq for seq, _ in self.inflight.values()}
        pending = self.spool.pending(limit=self.max_inflight + len(busy) + hold)
        for msg in pending[:len(pending) - hold] if hold else pending:
            if len(self.inflight) >= self.max_inflight:
                break
            if msg.seq not in busy:
                info = self.client.publish(msg.topic, msg.payload, qos=1)
                self.inflight[info.mid] = (msg.seq, time.monotonic())
                self.published += 1
                self.last_publish = time.time()
                self.first_publish = self.first_publish or self.last_publish

    def forget_stale(self) -> None:
        """A window unacknowledged this long on a live link is sent again."""
        now = time.monotonic()
        for mid in [m for m, (_, t) in self.inflight.items() if now - t > self.ack_timeout_s]:
            del self.inflight[mid]
            self.dirty = True

    def due_answers(self) -> None:
        now = time.monotonic()
        for item in [a for a in self.answers if a[0] <= now]:
            self.answers.remove(item)
            if self.connected:
                self.client.publish(self.topics.prefix + item[1], dumps(item[2]), qos=1)


class Fleet:
    """Drives many :class:`SimKiosk` clients from one thread.

    Args:
        windows: windows per kiosk.
        interval_s: real seconds between two windows of one kiosk (kiosks are staggered).
        start: virtual start time of the first window (None: real time).
        status_s: real seconds between status messages.
    """

    def __init__(self, kiosks: list[SimKiosk], windows: int, interval_s: float,
                 start: float | None = None, status_s: float = 10.0):
        self.kiosks, self.windows, self.interval_s = kiosks, windows, interval_s
        self.start, self.status_s = start, status_s
        self.sel = selectors.DefaultSelector()
        self.closed = [0] * len(kiosks)
        self.last_end = [time.time()] * len(kiosks)
        self.reconnect_at = [0.0] * len(kiosks)
        self._socks: dict[int, object] = {}
        self._due: list[tuple[float, int]] = []
        t0 = time.monotonic()
        for i, k in enumerate(kiosks):
            k.client.on_socket_open = lambda c, u, s, i=i: self._register(i, s)
            k.client.on_socket_close = lambda c, u, s, i=i: self._unregister(i, s)
            heapq.heappush(self._due, (t0 + interval_s * (i / max(1, len(kiosks))), i))
        self._next_misc = self._next_status = 0.0
        if start is not None:  # the status clock starts with the simulated time
            for k in kiosks:
                k.virtual_now = start

    def _register(self, i: int, sock) -> None:
        self._socks[i] = sock
        self.sel.register(sock, selectors.EVENT_READ, i)

    def _unregister(self, i: int, sock) -> None:
        if self._socks.pop(i, None) is not None:
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _virtual(self, i: int, j: int) -> tuple[float, float]:
        if self.start is None:
            end = time.time()
            start, self.last_end[i] = self.last_end[i], end
            return start, end
        w = self.kiosks[i].window_s
        return self.start + j * w, self.start + (j + 1) * w

    def _link_wanted(self, k: SimKiosk) -> bool:
        t, plan = k.virtual_now, k.plan
        if plan.offline_at is not None and t >= plan.offline_at:
            return False
        return not (plan.outage and plan.outage[0] <= t < plan.outage[1])

    def connect(self, i: int) -> None:
        k = self.kiosks[i]
        try:
            if k.client.host:  # connected before: same address, same client
                k.client.reconnect()
            else:
                k.client.connect(k.host, k.port, keepalive=20)
        except OSError:
            self.reconnect_at[i] = time.monotonic() + 0.5 + float(k.rng.uniform(0, 0.5))

    def step(self, timeout: float = 0.02) -> None:
        """Read what arrived, close due windows, keep the links alive."""
        for key, _ in self.sel.select(timeout):
            k = self.kiosks[key.data]
            if k.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                self._lost(key.data)
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, i = heapq.heappop(self._due)
            j = self.closed[i]
            self.kiosks[i].close_window(*self._virtual(i, j))
            self.closed[i] = j + 1
            if j + 1 < self.windows:
                heapq.heappush(self._due, (now + self.interval_s, i))
        misc = now >= self._next_misc
        status = now >= self._next_status
        if misc:
            self._next_misc = now + 0.5
        if status:
            self._next_status = now + self.status_s
        for i, k in enumerate(self.kiosks):
            wanted = self._link_wanted(k)
            if k.connected and not wanted and not k.gone:
                self._leave(k)
            elif not k.connected and wanted and i not in self._socks and \
                    now >= self.reconnect_at[i]:
                k.gone = False
                self.connect(i)
            if k.dirty:
                k.pump(hold=k.plan.hold_last)
            if k.client.want_write():
                k.client.loop_write()
            if misc and i in self._socks:
                if k.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                    self._lost(i)
                k.forget_stale()
                k.due_answers()
            if status:
                k.publish_status()

    def _leave(self, k: SimKiosk) -> None:
        """The kiosk's link drops (an outage, or for good): the connection is cut without a
        goodbye, so the broker publishes its last will (availability offline)."""
        sock = k.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        k.gone, k.connected = True, False

    def _lost(self, i: int) -> None:
        self.kiosks[i].connected = False
        self.reconnect_at[i] = time.monotonic() + 0.5 + float(self.kiosks[i].rng.uniform(0, 0.5))

    @property
    def done(self) -> bool:
        return all(c >= self.windows for c in self.closed)

    def backlog(self) -> int:
        """Windows not yet acknowledged by the broker (held-back ones excluded)."""
        return sum(max(0, k.spool.depth - k.plan.hold_last) for k in self.kiosks
                   if self._link_wanted(k))

    def run(self, stop: threading.Event, linger: bool = False, drain_s: float = 300.0) -> None:
        """Until every window is closed and acknowledged (``linger``: until ``stop``)."""
        for i in range(len(self.kiosks)):
            self.connect(i)
        deadline = check = None
        while not stop.is_set():
            self.step()
            if self.done and not linger and (check is None or time.monotonic() >= check):
                check = time.monotonic() + 0.5
                deadline = deadline or time.monotonic() + drain_s
                if self.backlog() == 0 or time.monotonic() > deadline:
                    break
        for k in self.kiosks:  # a last status, so the fleet sees the final spool figures
            k.publish_status()
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(k.client.want_write() for k in self.kiosks):
            self.step(0.01)

    def close(self, offline: bool = True) -> None:
        """Disconnect every kiosk; ``offline``: say so first (as a stopping appliance does)."""
        for k in self.kiosks:
            if k.connected and offline:
                k.client.publish(k.topics.availability, "offline", qos=1, retain=True)
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(k.connected and k.client.want_write()
                                             for k in self.kiosks):
            self.step(0.01)
        for k in self.kiosks:
            k.client.disconnect()
            k.client.loop_write()

    def summary(self) -> dict:
        firsts = [k.first_publish for k in self.kiosks if k.first_publish]
        return {"kiosks": len(self.kiosks), "windows_sent": sum(k.sent for k in self.kiosks),
                "publishes": sum(k.published for k in self.kiosks),
                "acked": sum(k.acked for k in self.kiosks),
                "unacked": sum(k.spool.depth for k in self.kiosks),
                "spool_dropped": sum(k.spool.dropped for k in self.kiosks),
                "first_publish": min(firsts) if firsts else None,
                "last_publish": max((k.last_publish or 0) for k in self.kiosks) or None,
                "last_seq": {k.plan.device_id: k.spool.next_seq - 1 for k in self.kiosks}}


def history(plan: KioskPlan, start: float, windows: int, window_s: float,
            rng: np.random.Generator):
    """A kiosk's windows as ``(topic, payload)`` without a broker (fast, for reports in tests):
    the same aggregator, message and spool code as :class:`SimKiosk`, all delivered."""
    kiosk = SimKiosk(plan, "", 0, rng, window_s=window_s)
    for j in range(windows):
        kiosk.close_window(start + j * window_s, start + (j + 1) * window_s)
        for msg in kiosk.spool.pending(limit=10):
            yield msg.topic, msg.payload.encode()
            kiosk.spool.ack(msg.seq)
    yield kiosk.topics.status, dumps(kiosk.status()).encode()


SITES = ("berlin-mitte", "hamburg-hbf", "munich-airport", "cologne-dom", "leipzig-west",
         "dresden-neustadt", "frankfurt-zeil", "stuttgart-koenig")


def plans(n: int, first: int = 0, provision: str = "applied", week: bool = False,
          start: float | None = None, windows: int = 0, window_s: float = 60.0,
          prefix: str | None = None) -> list[KioskPlan]:
    """Kiosk ids and behaviours: ``<site>-NN`` over a few sites, or ``<prefix>-NNNN``.

    ``provision="mix"`` gives most kiosks ``applied`` and a few each of the other outcomes.
    ``week`` (with ``start``): a fleet with a history: one older model, one outage that is
    replayed, one outage past the spool's age limit (windows dropped), one kiosk gone offline
    before the end, one with a backlog at the end.
    """
    out = []
    sites = 4 if n <= 8 else min(len(SITES), max(4, n // 4))  # about four kiosks a site
    for i in range(first, first + n):
        device_id = f"{prefix}-{i:04d}" if prefix else f"{SITES[i % sites]}-{i // sites + 1:02d}"
        p = KioskPlan(device_id, traffic=2.0 + (i * 7919 % 13) / 4.0)
        if provision == "mix":
            p.provision = ("silent" if i % 100 == 42 else "rejected" if i % 50 == 7
                           else "rolled_back" if i % 50 == 23 else "applied")
        elif provision in CANNED:
            p.provision = provision
        out.append(p)
    if week and start is not None and len(out) >= 6:
        end = start + windows * window_s
        out[1].model_version = "1.3.0"
        out[2].outage = (start + 2.3 * 86400, start + 2.3 * 86400 + 7 * 3600)  # replayed late
        out[3].outage = (start + 3.1 * 86400, start + 4.6 * 86400)  # longer than the spool keeps
        out[3].max_age_s = 86400.0
        out[4].offline_at = end - 5 * 3600
        out[5].hold_last = 12
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fleet_sim",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt", required=True, metavar="HOST:PORT")
    ap.add_argument("--kiosks", type=int, default=20)
    ap.add_argument("--first", type=int, default=0, help="index of the first kiosk (processes "
                                                         "sharing a fleet take turns)")
    ap.add_argument("--prefix", help="ids <prefix>-NNNN instead of <site>-NN")
    ap.add_argument("--windows", type=int, default=10, help="windows per kiosk")
    ap.add_argument("--interval-s", type=float, default=1.0,
                    help="real seconds between two windows of a kiosk")
    ap.add_argument("--window-s", type=float, default=60.0, help="window length (virtual time)")
    ap.add_argument("--start", help="virtual start (ISO, UTC) instead of real time")
    ap.add_argument("--week", action="store_true", help="the 7 days before now, with a history "
                                                         "(outages, an older model, a backlog)")
    ap.add_argument("--status-s", type=float, default=10.0)
    ap.add_argument("--provision", default="applied", choices=[*CANNED, "mix"])
    ap.add_argument("--serve", action="store_true", help="stay connected until SIGTERM")
    ap.add_argument("--stay-online", action="store_true", help="leave without saying offline")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)
    host, _, port = args.mqtt.rpartition(":")
    start, window_s = None, args.interval_s  # real time: a window lasts one interval
    if args.week:
        args.windows, window_s = int(7 * 86400 / args.window_s), args.window_s
        start = (int(time.time() // 3600) * 3600) - args.windows * args.window_s
    elif args.start:
        from datetime import UTC, datetime
        t = datetime.fromisoformat(args.start)
        start = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
        window_s = args.window_s
    rng = np.random.default_rng(args.seed)
    kiosks = [SimKiosk(p, host, int(port), np.random.default_rng(rng.integers(2**32)),
                       window_s=window_s)
              for p in plans(args.kiosks, args.first, args.provision, args.week, start,
                             args.windows, window_s, args.prefix)]
    fleet = Fleet(kiosks, args.windows, args.interval_s, start, args.status_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fleet.run(stop, linger=args.serve)
    fleet.close(offline=not args.stay_online)
    summary = fleet.summary()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)
    print(json.dumps({k: v for k, v in summary.items() if k != "last_seq"}), flush=True)
    return 0 if fleet.backlog() == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
