"""Reading kiosk messages back (fleet/messages.py) and per-kiosk gap tracking (fleet/gaps.py):
pure functions, no broker, no database."""

from __future__ import annotations

import json
import random

import pytest

from device.schemas import validator
from fleet.errors import BadMessage
from fleet.gaps import Gap, Span, missing, missing_ranges, track
from fleet.messages import Availability, Status, Window, parse, split_topic
from tests.fleet_fixtures import SUPPRESSED, status_payload, window_payload


def test_a_real_audience_message_reads_back_as_it_was_sent():
    payload = window_payload("lobby-1", 42, 1796000000.0)
    validator("audience").validate(json.loads(payload))  # what the kiosk interface promises
    w = parse("kiosk/lobby-1/audience", payload, 5.0)
    assert isinstance(w, Window)
    assert (w.device_id, w.seq, w.window_start, w.window_end) == ("lobby-1", 42, 1796000000.0,
                                                                  1796000060.0)
    assert w.visitors == 4 and w.gender == {"female": 2, "male": 1, "unknown": 1}
    assert w.female_share == pytest.approx(66.7) and w.dominant_emotion == "happy"
    assert w.received_at == 5.0 and not w.suppressed


def test_a_suppressed_window_has_no_breakdowns():
    payload = window_payload("lobby-1", 1, 1796000000.0, SUPPRESSED)
    validator("audience").validate(json.loads(payload))
    w = parse("kiosk/lobby-1/audience", payload, 0.0)
    assert w.suppressed and w.gender is None and w.age_groups is None and w.emotions is None


def test_status_and_availability():
    payload = status_payload("lobby-1", 1796000000.0, spool_depth=5)
    validator("status").validate(json.loads(payload))
    s = parse("kiosk/lobby-1/status", payload, 1.0)
    assert isinstance(s, Status) and s.time == 1796000000.0 and s.fields["spool_depth"] == 5
    a = parse("kiosk/lobby-1/availability", b"offline", 2.0)
    assert a == Availability("lobby-1", False, 2.0)


@pytest.mark.parametrize("topic, payload, why", [
    ("kiosk/lobby-1/cmd", b"{}", "not a kiosk topic"),
    ("kiosk/lobby 1/audience", b"{}", "not a kiosk id"),
    ("other/lobby-1/audience", b"{}", "not a kiosk topic"),
    ("kiosk/lobby-1/audience", b"\xff\xfe", "not JSON"),
    ("kiosk/lobby-1/audience", b"[1, 2]", "JSON object"),
    ("kiosk/lobby-1/availability", b"maybe", "online or offline"),
    ("kiosk/lobby-1/status", b'{"device_id": "lobby-1"}', "time"),
])
def test_what_is_not_a_kiosk_message_is_refused_with_the_reason(topic, payload, why):
    with pytest.raises(BadMessage, match=why):
        parse(topic, payload, 0.0)


@pytest.mark.parametrize("field, value, why", [
    ("device_id", "lobby-2", "does not match the topic"),
    ("seq", 0, "seq"), ("seq", "7", "seq"), ("seq", True, "seq"),
    ("visitors", -1, "visitors"), ("window_start", "2026-11-28T10:00:00", "window_start"),
    ("window_end", "2020-01-01T00:00:00.000Z", "before window_start"),
    ("female_share", 101, "female_share"), ("dwell_s_mean", float("nan"), "dwell_s_mean"),
    ("gender", {"female": -1}, "gender"), ("suppressed", "no", "suppressed"),
])
def test_each_bad_field_is_named(field, value, why):
    msg = json.loads(window_payload("lobby-1", 3, 1796000000.0))
    msg[field] = value
    with pytest.raises(BadMessage, match=why):
        parse("kiosk/lobby-1/audience", json.dumps(msg).encode(), 0.0)


def _mutations(rnd: random.Random, base: dict):
    """Random damage to a valid message: dropped, retyped, nested and junk values."""
    junk = [None, True, -1, 2**70, 1e308, "", "x" * 300, [], {}, {"a": {"b": []}}, [[[]]],
            float("inf")]
    for _ in range(400):
        msg = json.loads(json.dumps(base))
        for _ in range(rnd.randint(1, 4)):
            key = rnd.choice([*msg, "extra"])
            if rnd.random() < 0.3:
                msg.pop(key, None)
            else:
                msg[key] = rnd.choice(junk)
        yield json.dumps(msg, allow_nan=True).encode()
    for _ in range(200):
        yield bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64)))


def test_fuzzed_payloads_are_a_window_or_a_clear_refusal():
    """Whatever arrives on a kiosk topic: a valid record or BadMessage, never another error."""
    rnd = random.Random(7)
    base = json.loads(window_payload("lobby-1", 3, 1796000000.0))
    outcomes = {"ok": 0, "refused": 0}
    for payload in _mutations(rnd, base):
        for leaf in ("audience", "status", "availability"):
            try:
                parse(f"kiosk/lobby-1/{leaf}", payload, 0.0)
                outcomes["ok"] += 1
            except BadMessage:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and outcomes["ok"] > 0, outcomes


def test_split_topic():
    assert split_topic("kiosk/a-1/status") == ("a-1", "status")
    assert split_topic("site/a-1/audience", root="site") == ("a-1", "audience")


# -- gaps ------------------------------------------------------------------------------------

def apply(span, gaps, seq, now):
    """Run track() the way the store does: the whole gap list stands in for the near rows."""
    change = track(span, gaps, seq, now)
    gaps = [g for g in gaps if g not in change.remove] + list(change.add)
    return change.span, sorted(gaps, key=lambda g: g.first)


def test_in_order_windows_make_no_gap():
    span, gaps = Span(), []
    for seq in range(1, 6):
        span, gaps = apply(span, gaps, seq, float(seq))
    assert span == Span(1, 5) and gaps == []


def test_a_jump_opens_a_gap_and_late_windows_fill_it_into_one_row():
    span, gaps = apply(Span(1, 3), [], 8, 10.0)
    assert span == Span(1, 8) and gaps == [Gap(4, 7, 10.0)]
    span, gaps = apply(span, gaps, 6, 11.0)
    assert gaps == [Gap(4, 5, 10.0), Gap(6, 6, 10.0, 11.0), Gap(7, 7, 10.0)]
    for seq, t in ((4, 12.0), (7, 13.0), (5, 14.0)):
        span, gaps = apply(span, gaps, seq, t)
    assert gaps == [Gap(4, 7, 10.0, 14.0)]  # detected at 10, complete at 14
    assert missing(gaps) == 0


def test_a_window_below_the_first_one_seen_extends_the_span():
    span, gaps = apply(Span(5, 9), [], 2, 1.0)
    assert span == Span(2, 9) and gaps == [Gap(3, 4, 1.0)]
    span, gaps = apply(span, gaps, 4, 2.0)
    assert missing(gaps) == 1 and gaps[0] == Gap(3, 3, 1.0)


@pytest.mark.parametrize("seed", range(20))
def test_any_arrival_order_keeps_the_open_gaps_equal_to_what_is_missing(seed):
    rnd = random.Random(seed)
    seqs = list(range(1, 60))
    dropped = set(rnd.sample(seqs, 5))  # never arrive (a spool that dropped them)
    order = [s for s in seqs if s not in dropped]
    rnd.shuffle(order)
    span, gaps, seen = Span(), [], []
    for t, seq in enumerate(order):
        span, gaps = apply(span, gaps, seq, float(t))
        seen.append(seq)
        assert [(g.first, g.last) for g in gaps if g.open] == missing_ranges(seen)
        assert all(g.first <= g.last for g in gaps)
        covered = [s for g in gaps for s in range(g.first, g.last + 1)]
        assert len(covered) == len(set(covered))  # rows never overlap
    assert {s for g in gaps if g.open for s in range(g.first, g.last + 1)} == \
        {s for s in dropped if min(order) < s < max(order)}
