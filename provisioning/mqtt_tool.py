"""The operator's MQTT side: find devices, send them a bundle, wait for what each one says.

Topics (``<root>`` is ``kiosk``)::

    <root>/<id>/status              retained JSON from the appliance (model and app version, state)
    <root>/<id>/availability        retained "online" / "offline" (the appliance's last will)
    <root>/<id>/provision/bundle    the bundle file's bytes (QoS 1, never retained)
    <root>/<id>/provision/progress  {"step": "received" | "staged" | "kat_passed" | "switched", ...}
    <root>/<id>/provision/result    {"outcome": "applied" | "rejected" | "rolled_back", ...}
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

FINAL = ("applied", "rejected", "rolled_back")
VERBOSE_MAX = 20  # above this many devices, steps are summed up in progress lines


@dataclass
class BrokerOptions:
    """How to reach the broker, with the appliance's own kinds of credentials."""

    host: str
    port: int = 1883
    username: str | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    root: str = "kiosk"


def add_broker_arguments(p, required: bool = True) -> None:
    """The broker options every operator command takes (``--mqtt HOST:PORT``, credentials, TLS)."""
    p.add_argument("--mqtt", required=required, metavar="HOST:PORT", help="the broker")
    p.add_argument("--username")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
    p.add_argument("--ca-file")
    p.add_argument("--cert-file", help="client certificate (mutual TLS)")
    p.add_argument("--key-file", help="client certificate's key")
    p.add_argument("--tls-insecure", action="store_true", help="skip host-name check (test rigs)")
    p.add_argument("--root", default="kiosk", help="topic root (default: kiosk)")


def broker_options(args) -> BrokerOptions:
    """:class:`BrokerOptions` from the parsed :func:`add_broker_arguments` options."""
    host, _, port = args.mqtt.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--mqtt wants HOST:PORT, got {args.mqtt!r}")
    return BrokerOptions(host, int(port), args.username, args.password_file, args.tls,
                         args.ca_file, args.cert_file, args.key_file, args.tls_insecure, args.root)


class Session:
    """A connected paho client that records every message on the topics it subscribes to."""

    def __init__(self, opts: BrokerOptions, timeout: float = 10.0):
        self.opts = opts
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"kiosk-provision-{int(time.time() * 1000) % 10**9}")
        if opts.username:
            password = (Path(opts.password_file).read_text().rstrip("\r\n")
                        if opts.password_file else None)
            self.client.username_pw_set(opts.username, password)
        if opts.tls or opts.ca_file or opts.cert_file:
            self.client.tls_set(ca_certs=opts.ca_file, certfile=opts.cert_file,
                                keyfile=opts.key_file, cert_reqs=ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(opts.insecure)
        self._refused: str | None = None
        self._answered = threading.Event()  # the broker accepted or refused the connection
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._acked: set[int] = set()
        where = f"the broker at {opts.host}:{opts.port}"
        try:
            self.client.connect(opts.host, opts.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:  # refused, unknown host, TLS handshake failed
            raise ConnectionError(f"cannot reach {where}: {exc.strerror or exc}") from None
        self.client.loop_start()
        if not self._answered.wait(timeout) or self._refused:
            self.close()
            why = f"it refused the connection ({self._refused})" if self._refused else \
                f"no answer in {timeout:.0f} s"
            raise ConnectionError(f"no connection to {where}: {why}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:  # e.g. "Not authorized": wrong user name or password
            self._refused = str(reason_code)
        self._answered.set()

    def topic(self, device_id: str, leaf: str) -> str:
        return f"{self.opts.root}/{device_id}/{leaf}"

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload))
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def subscribe(self, topics: list[str], timeout: float = 10.0) -> None:
        """Subscribe and wait for the broker to confirm (so nothing sent after is missed)."""
        mids = {self.client.subscribe(t, qos=1)[1] for t in topics}
        if not self.wait(lambda: mids <= self._acked, timeout):
            raise ConnectionError("the broker did not confirm the subscriptions")

    def wait(self, done, timeout: float) -> bool:
        """Wait until ``done()`` is true (checked whenever a message arrives)."""
        with self._cond:
            return self._cond.wait_for(done, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_table(session: Session, wait_s: float = 2.0) -> dict[str, dict]:
    """Every device's retained status (plus its availability) by device id."""
    root = session.opts.root
    session.subscribe([f"{root}/+/status", f"{root}/+/availability"])
    time.sleep(wait_s)
    devices: dict[str, dict] = {}
    for topic, payload in list(session.messages):
        parts = topic.split("/")
        if len(parts) != 3 or not payload:
            continue
        entry = devices.setdefault(parts[1], {})
        if parts[2] == "status":
            try:
                entry.update(json.loads(payload))
            except ValueError:
                entry["error"] = "unreadable status"
        else:
            entry["availability"] = payload.decode(errors="replace")
    return devices


class Progress:
    """One line now and then for a large fleet: how many answered, with which outcome."""

    def __init__(self, total: int, say=print, every_s: float = 1.0):
        self.total, self.say, self.every_s = total, say, every_s
        self.steps: dict[str, str] = {}
        self.start = self._last = time.monotonic()
        self._shown = None

    def step(self, device_id: str, step: str) -> None:
        self.steps[device_id] = step

    def show(self, results: dict, force: bool = False) -> None:
        now = time.monotonic()
        counts = {o: sum(r.get("outcome") == o for r in results.values()) for o in FINAL}
        busy = {}
        for d, step in self.steps.items():
            if d not in results:
                busy[step] = busy.get(step, 0) + 1
        line = (f"{len(results)}/{self.total} answered: "
                + ", ".join(f"{o} {n}" for o, n in counts.items() if n)
                + ("; working: " + ", ".join(f"{s} {n}" for s, n in busy.items()) if busy
                   else ""))
        if line != self._shown and (force or now - self._last >= self.every_s):
            self.say(f"[{now - self.start:5.0f} s] {line}")
            self._shown, self._last = line, now


def flash(session: Session, data: bytes, device_ids: list[str], timeout: float,
          say=print) -> dict[str, dict]:
    """Send the bundle to each device and wait for each one's final outcome.

    Up to ``VERBOSE_MAX`` devices every step of every device is shown; for a larger fleet,
    progress lines count the answers and each device's line shows only when it did not apply.

    Returns ``{device_id: result}``; a device that said nothing in time gets outcome ``timeout``.
    """
    sha = hashlib.sha256(data).hexdigest()
    verbose = len(device_ids) <= VERBOSE_MAX
    progress_line = None if verbose else Progress(len(device_ids), say)
    if verbose:
        session.subscribe([session.topic(d, f"provision/{leaf}")
                           for d in device_ids for leaf in ("progress", "result")])
    else:
        session.subscribe([session.topic("+", f"provision/{leaf}")
                           for leaf in ("progress", "result")])
    start, shown = len(session.messages), time.monotonic()
    for i, d in enumerate(device_ids):
        info = session.client.publish(session.topic(d, "provision/bundle"), data, qos=1)
        info.wait_for_publish(timeout)
        if verbose:
            say(f"{d}: sent {len(data) / 1024:.0f} KiB")
        elif i + 1 == len(device_ids) or time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            say(f"sent {i + 1}/{len(device_ids)} ({len(data) / 1024:.0f} KiB each)")
    results: dict[str, dict] = {}
    seen = start
    wanted = set(device_ids)

    def progress() -> bool:
        nonlocal seen
        for topic, payload in session.messages[seen:]:
            _note(session, topic, payload, sha, results, say, wanted, progress_line)
        seen = len(session.messages)
        if progress_line is not None:
            progress_line.show(results)
        return all(d in results for d in device_ids)

    session.wait(progress, timeout)
    if progress_line is not None:
        progress_line.show(results, force=True)
    for d in device_ids:
        results.setdefault(d, {"outcome": "timeout", "reason": f"no result within {timeout:.0f} s"})
    return results


def _note(session, topic, payload, sha, results, say, wanted=None, progress=None) -> None:
    parts = topic.split("/")
    try:
        msg = json.loads(payload)
    except ValueError:
        return
    if not isinstance(msg, dict) or msg.get("bundle_sha256") not in (sha, None):
        return  # someone else's bundle
    device_id, leaf = parts[-3], parts[-1]
    if wanted is not None and device_id not in wanted:
        return
    if leaf == "progress":
        if progress is None:
            say(f"{device_id}: {msg.get('step')}")
        else:
            progress.step(device_id, str(msg.get("step")))
    elif msg.get("outcome") in FINAL and device_id not in results:
        results[device_id] = msg
        reason = f" ({msg['reason']})" if msg.get("reason") else ""
        if progress is None or msg["outcome"] != "applied":
            say(f"{device_id}: {msg['outcome'].upper()}{reason}")


def outcome_summary(results: dict[str, dict]) -> list[str]:
    """Lines that count the devices per outcome and, for each failure, per reason."""
    by_outcome: dict[str, list[str]] = {}
    for d, r in results.items():
        by_outcome.setdefault(r.get("outcome", "?"), []).append(d)
    order = [o for o in (*FINAL, "timeout", "offline") if o in by_outcome]
    order += sorted(o for o in by_outcome if o not in order)
    lines = ["outcomes: " + ", ".join(f"{o} {len(by_outcome[o])}" for o in order)]
    for outcome in sorted(o for o in by_outcome if o != "applied"):
        reasons: dict[str, int] = {}
        for d in by_outcome[outcome]:
            reason = results[d].get("reason") or "no reason given"
            reasons[reason] = reasons.get(reason, 0) + 1
        lines.append(f"  {outcome}: " + "; ".join(f"{n} x {r}" for r, n in
                                                  sorted(reasons.items(), key=lambda x: -x[1])))
    return lines
