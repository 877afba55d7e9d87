"""What the kiosks publish, read back into records (pure functions, no I/O).

The kiosk interface is ``device/schemas/``; this module checks what the database needs from it
without depending on a schema library: each field's type and range, with an error that names the
field. Anything else (a topic that is not a kiosk's, a payload that is not JSON) raises
:class:`BadMessage`, never another exception.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime

from fleet.errors import BadMessage

LEAVES = ("audience", "status", "availability")
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
BREAKDOWNS = ("gender", "age_groups", "emotions")


@dataclass(frozen=True)
class Window:
    """One ``audience`` message, as stored (times are epoch seconds, UTC)."""

    device_id: str
    seq: int
    window_start: float
    window_end: float
    duration_s: float
    frames: int
    model_version: str
    impressions: int
    visitors: int
    watchers: int
    dwell_s_mean: float | None
    attention_s_mean: float | None
    suppressed: bool
    gender: dict | None
    age_groups: dict | None
    emotions: dict | None
    female_share: float | None
    dominant_emotion: str | None
    received_at: float
    backstop: bool = False  # a worker's extra copy (fleet/ingest.py): not a redelivery
    clock_synced: bool = True  # False: filed under its arrival (see parse_audience)


@dataclass(frozen=True)
class Status:
    """One ``status`` message: ``time`` is the kiosk's clock; ``fields`` the whole object."""

    device_id: str
    time: float
    fields: dict
    received_at: float


@dataclass(frozen=True)
class Availability:
    """``online`` / ``offline`` (the kiosk's last will), as the broker delivered it."""

    device_id: str
    online: bool
    received_at: float


def split_topic(topic: str, root: str = "kiosk") -> tuple[str, str]:
    """``kiosk/<id>/<leaf>`` -> ``(device id, leaf)`` for the three leaves the fleet stores."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != root or parts[2] not in LEAVES:
        raise BadMessage(f"not a kiosk topic: {topic!r}")
    if not DEVICE_ID.match(parts[1]):
        raise BadMessage(f"device id in {topic!r} is not a kiosk id")
    return parts[1], parts[2]


def parse_time(value, field: str) -> float:
    """An ISO 8601 UTC time (``...Z``) as epoch seconds."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise BadMessage(f"{field}: wants an ISO 8601 UTC time ending in Z, got {value!r}")
    try:
        t = datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise BadMessage(f"{field}: not an ISO 8601 time: {value!r}") from None
    return t


def _json(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadMessage("payload is not JSON") from None


def _int(msg: dict, key: str, minimum: int = 0) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise BadMessage(f"{key}: wants an integer >= {minimum}, got {v!r}")
    if v > 2**62:
        raise BadMessage(f"{key}: {v} is out of range")
    return v


def _num(msg: dict, key: str, nullable: bool = False, maximum: float | None = None):
    v = msg.get(key)
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0 \
            or (maximum is not None and v > maximum):
        raise BadMessage(f"{key}: wants a number >= 0{' or null' if nullable else ''}, "
                         f"got {v!r}")
    return float(v)


def _counts(msg: dict, key: str) -> dict | None:
    v = msg.get(key)
    if v is None:
        return None
    if not isinstance(v, dict) or len(v) > 64 or not all(
            isinstance(k, str) and len(k) <= 32 and isinstance(n, int)
            and not isinstance(n, bool) and 0 <= n < 2**31 for k, n in v.items()):
        raise BadMessage(f"{key}: wants a map of label -> count")
    return v


def parse_audience(device_id: str, payload: bytes, received_at: float) -> Window:
    """An ``audience`` payload as a :class:`Window`; its ``device_id`` must match the topic's.

    A window the kiosk marks ``clock_synced: false`` was stamped by a clock that was not trusted
    (a Pi before NTP, with no battery-backed clock) and that the kiosk could not restamp: it is
    filed under its arrival (``window_end = received_at``, its length kept) and stored with
    ``clock_synced = 0``, never under the kiosk's 1970 or yesterday.
    """
    msg = _json(payload)
    if not isinstance(msg, dict):
        raise BadMessage("audience: wants a JSON object")
    if msg.get("device_id") != device_id:
        raise BadMessage(f"device_id: {msg.get('device_id')!r} does not match the topic's "
                         f"{device_id!r}")
    suppressed = msg.get("suppressed")
    if not isinstance(suppressed, bool):
        raise BadMessage(f"suppressed: wants true or false, got {suppressed!r}")
    breakdowns = {k: _counts(msg, k) for k in BREAKDOWNS}
    if suppressed and any(breakdowns.values()):
        raise BadMessage("a suppressed window carries no gender, age_groups or emotions")
    start, end = parse_time(msg.get("window_start"), "window_start"), \
        parse_time(msg.get("window_end"), "window_end")
    if end < start:
        raise BadMessage("window_end is before window_start")
    synced = msg.get("clock_synced", True)  # kiosks before 0.6 do not say: they trusted it
    if not isinstance(synced, bool):
        raise BadMessage(f"clock_synced: wants true or false, got {synced!r}")
    if not synced:  # the kiosk's clock was wrong (1970, last night): file it as it arrives
        start, end = received_at - (end - start), received_at
    model, emotion = msg.get("model_version"), msg.get("dominant_emotion")
    if not isinstance(model, str) or len(model) > 64:
        raise BadMessage(f"model_version: wants a string, got {model!r}")
    if emotion is not None and (not isinstance(emotion, str) or len(emotion) > 32):
        raise BadMessage(f"dominant_emotion: wants a label or null, got {emotion!r}")
    visitors = _int(msg, "visitors")
    return Window(
        device_id=device_id, seq=_int(msg, "seq", 1), window_start=start, window_end=end,
        duration_s=_num(msg, "duration_s"), frames=_int(msg, "frames"), model_version=model,
        impressions=_int(msg, "impressions"), visitors=visitors, watchers=_int(msg, "watchers"),
        dwell_s_mean=_num(msg, "dwell_s_mean", nullable=True),
        attention_s_mean=_num(msg, "attention_s_mean", nullable=True), suppressed=suppressed,
        female_share=_num(msg, "female_share", nullable=True, maximum=100.0),
        dominant_emotion=emotion, received_at=received_at, clock_synced=synced, **breakdowns)


def parse_status(device_id: str, payload: bytes, received_at: float) -> Status:
    """A ``status`` payload; ``time`` orders statuses that arrive out of order."""
    msg = _json(payload)
    if not isinstance(msg, dict):
        raise BadMessage("status: wants a JSON object")
    if msg.get("device_id") != device_id:
        raise BadMessage(f"device_id: {msg.get('device_id')!r} does not match the topic's "
                         f"{device_id!r}")
    t = parse_time(msg.get("time"), "time")
    for key in ("spool_depth", "spool_dropped"):
        _int(msg, key)
    for key in ("model_version", "app_version", "state"):
        if not isinstance(msg.get(key), str):
            raise BadMessage(f"{key}: wants a string, got {msg.get(key)!r}")
    return Status(device_id, t, msg, received_at)


def parse_availability(device_id: str, payload: bytes, received_at: float) -> Availability:
    """``online`` or ``offline`` (plain text)."""
    if payload not in (b"online", b"offline"):
        raise BadMessage(f"availability: wants online or offline, got {payload[:20]!r}")
    return Availability(device_id, payload == b"online", received_at)


def parse(topic: str, payload: bytes, received_at: float, root: str = "kiosk"):
    """Any stored message from its topic and payload: a Window, Status or Availability."""
    device_id, leaf = split_topic(topic, root)
    reader = {"audience": parse_audience, "status": parse_status,
              "availability": parse_availability}[leaf]
    return reader(device_id, bytes(payload), received_at)


@dataclass(frozen=True)
class Rejected:
    """A message that could not be read; kept so an operator can see what a kiosk sent."""

    topic: str
    reason: str
    payload: bytes
    received_at: float
