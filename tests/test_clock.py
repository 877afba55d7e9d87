"""The wall clock before NTP: windows are held, restamped from the monotonic clock, or marked,
and the fleet store never files a window under the kiosk's wrong date."""

from __future__ import annotations

import json
import re

import pytest

from device.aggregate import WindowAggregator
from device.clock import SystemClock
from device.spool import Spool
from device.windows import Windows
from fleet.messages import parse_audience
from fleet.store import open_store
from tests.fake_clock import FakeClock

TRUE_NOW = 1_796_000_000.0  # what the time really is at the test's start (2026-11)
LAST_SHUTDOWN = TRUE_NOW - 14 * 3600  # a Pi boots with last night's time (fake-hwclock)


def _windows(spool, clock, **kw) -> Windows:
    return Windows(60.0, WindowAggregator(k_anonymity=1), spool, "kiosk/k/audience", "k",
                   model_version=lambda: "1", spooled=lambda seq: None, lost=lambda m: None,
                   clock=clock, **kw)


def _times(payload: str) -> tuple[str, str, bool]:
    m = json.loads(payload)
    return m["window_start"], m["window_end"], m["clock_synced"]


def _iso(t: float) -> str:
    from device.mqtt import iso_utc

    return iso_utc(t)


# -- the system clock's checks ---------------------------------------------------------------
def test_timesyncd_file_makes_the_clock_trusted_and_it_stays_trusted(tmp_path):
    asked, mono = [], [0.0]
    flag = tmp_path / "synchronized"
    clock = SystemClock(sync_file=flag, ask=lambda: asked.append(1) or False, check_s=30,
                        monotonic=lambda: mono[0], boot_id="b")
    assert not clock.trusted() and len(asked) == 1
    flag.touch()
    mono[0] = 10.0
    assert not clock.trusted() and len(asked) == 1  # cached: no check before check_s
    mono[0] = 31.0
    assert clock.trusted()
    flag.unlink()
    mono[0] = 1000.0
    assert clock.trusted() and len(asked) == 1  # sticky: never checked again


def test_timedatectl_answer_or_config_makes_it_trusted(tmp_path):
    missing = tmp_path / "none"
    assert SystemClock(sync_file=missing, ask=lambda: True, boot_id="b").trusted()
    assert SystemClock(trusted=True, sync_file=missing, ask=lambda: False, boot_id="b").trusted()
    assert not SystemClock(sync_file=missing, ask=lambda: False, boot_id="b").trusted()
    # no systemd to ask (a container): the kiosk cannot tell and believes its clock
    assert SystemClock(sync_file=missing, ask=lambda: None, boot_id="b").trusted()


def test_timedatectl_answers_are_read_as_yes_no_or_no_answer(monkeypatch):
    import subprocess

    from device import clock as clockmod

    def fake(stdout, rc=0):
        return lambda *a, **kw: subprocess.CompletedProcess(a, rc, stdout=stdout, stderr="")

    for stdout, rc, expected in (("yes\n", 0, True), ("no\n", 0, False), ("", 1, None)):
        monkeypatch.setattr(clockmod.subprocess, "run", fake(stdout, rc))
        assert clockmod.timedatectl_synced() is expected

    def missing(*a, **kw):
        raise FileNotFoundError("timedatectl")

    monkeypatch.setattr(clockmod.subprocess, "run", missing)
    assert clockmod.timedatectl_synced() is None


# -- windows on a clock that jumps -----------------------------------------------------------
def test_windows_before_ntp_are_held_then_restamped_from_the_monotonic_clock(tmp_path):
    clock = FakeClock(mono=20.0, wall=LAST_SHUTDOWN, synced=False)
    true_offset = TRUE_NOW - clock.mono  # true wall time = monotonic + this
    spool = Spool(tmp_path / "s.db")
    windows = _windows(spool, clock)
    for _ in range(2):
        clock.advance(60)
        windows.close()
    assert spool.depth == 2 and spool.pending() == []  # held: the broker gets nothing yet
    clock.jump(TRUE_NOW - LAST_SHUTDOWN)  # NTP steps the clock forward 14 h mid-window
    clock.synced = True
    clock.advance(60)
    windows.close()
    rows = spool.pending()
    assert [r.seq for r in rows] == [1, 2, 3]
    for row, end_mono in zip(rows, (80.0, 140.0, 200.0), strict=True):
        start, end, synced = _times(row.payload)
        assert synced is True
        assert end == _iso(end_mono + true_offset)
        assert start == _iso(end_mono - 60 + true_offset)  # not last night, not 14 h long
    spool.close()


def test_a_window_open_across_the_ntp_step_keeps_its_length(tmp_path):
    clock = FakeClock(wall=0.0, synced=False)  # booted in 1970
    spool = Spool(tmp_path / "s.db")
    windows = _windows(spool, clock)
    clock.advance(30)
    clock.jump(TRUE_NOW)
    clock.synced = True
    clock.advance(30)
    windows.close()
    (row,) = spool.pending()
    start, end, synced = _times(row.payload)
    assert synced and json.loads(row.payload)["duration_s"] == 60.0
    assert start == _iso(clock.wall_t - 60) and end == _iso(clock.wall_t)
    spool.close()


def test_a_clock_set_back_after_sync_is_not_trusted(tmp_path):
    clock = FakeClock(wall=TRUE_NOW)
    spool = Spool(tmp_path / "s.db")
    windows = _windows(spool, clock)
    clock.advance(60)
    windows.close()
    clock.jump(-86400)  # someone sets the date back a day (or the RTC battery died)
    clock.advance(60)
    windows.close()
    first, second = spool.pending()
    assert _times(first.payload)[2] is True
    assert _times(second.payload)[2] is False  # marked: the fleet files it under its arrival
    spool.close()


def test_without_ntp_held_windows_go_out_marked_after_hold_s(tmp_path):
    clock = FakeClock(wall=0.0, synced=False)
    spool = Spool(tmp_path / "s.db")
    windows = _windows(spool, clock, hold_s=150)
    for _ in range(2):
        clock.advance(60)
        windows.close()
    assert spool.pending() == []
    clock.advance(60)  # 180 s > hold_s: a shop whose network blocks NTP still reports
    windows.close()
    rows = spool.pending()
    assert len(rows) == 3 and all(_times(r.payload)[2] is False for r in rows)
    spool.close()


def test_windows_of_an_earlier_boot_are_not_restamped_with_this_boots_clock(tmp_path):
    path = tmp_path / "s.db"
    boot1 = FakeClock(mono=20.0, wall=0.0, synced=False, boot_id="boot-1")
    spool = Spool(path)
    windows = _windows(spool, boot1)
    boot1.advance(60)
    windows.close()
    spool.close()  # the power is cut before NTP ever synchronised
    boot2 = FakeClock(mono=5.0, wall=TRUE_NOW, synced=True, boot_id="boot-2")
    spool = Spool(path)
    windows = _windows(spool, boot2)
    boot2.advance(60)
    windows.close()
    old, new = spool.pending()
    assert _times(old.payload) == (_iso(0.0), _iso(60.0), False)  # left as is, marked
    assert _times(new.payload)[2] is True
    spool.close()


def test_age_never_drops_a_window_stamped_by_an_untrusted_clock(tmp_path):
    now = [60.0]  # the spool's wall clock: 1970 at boot
    clock = FakeClock(wall=0.0, synced=False)
    spool = Spool(tmp_path / "s.db", max_age_s=3600, clock=lambda: now[0])
    windows = _windows(spool, clock, hold_s=0)
    clock.advance(60)
    windows.close()
    now[0] = TRUE_NOW  # NTP: by the new clock the row is 56 years old
    assert spool.prune() == 0 and spool.depth == 1
    spool.close()


# -- the fleet store ---------------------------------------------------------------------------
def _audience(start: str, end: str, synced: bool | None) -> bytes:
    msg = {"seq": 1, "device_id": "k", "window_start": start, "window_end": end,
           "duration_s": 60.0, "frames": 10, "model_version": "1", "impressions": 0,
           "visitors": 0, "watchers": 0, "dwell_s_mean": None, "attention_s_mean": None,
           "suppressed": True, "female_share": None, "dominant_emotion": None}
    if synced is not None:
        msg["clock_synced"] = synced
    return json.dumps(msg).encode()


def test_the_fleet_files_an_unsynced_window_under_its_arrival_and_marks_it(tmp_path):
    payload = _audience("1970-01-01T00:01:00.000Z", "1970-01-01T00:02:00.000Z", False)
    w = parse_audience("k", payload, received_at=TRUE_NOW)
    assert (w.window_start, w.window_end, w.clock_synced) == (TRUE_NOW - 60, TRUE_NOW, False)
    store = open_store(f"sqlite:{tmp_path / 'fleet.db'}")
    store.write([w])
    assert list(store.windows(0, 86400)) == []  # nothing under 1970
    (row,) = store.windows(TRUE_NOW - 3600, TRUE_NOW + 1)
    assert row["clock_synced"] is False
    store.close()


def test_the_fleet_keeps_the_kiosks_times_when_its_clock_was_trusted_or_unsaid():
    for synced in (True, None):  # None: a kiosk from before clock_synced existed
        w = parse_audience("k", _audience("2026-11-28T10:00:00.000Z", "2026-11-28T10:01:00.000Z",
                                          synced), received_at=TRUE_NOW)
        assert w.window_end - w.window_start == 60.0 and w.window_end < TRUE_NOW - 3600
        assert w.clock_synced is True


def test_a_fleet_database_from_before_clock_synced_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    from fleet.store.base import STATEMENTS

    for statement in STATEMENTS:
        db.execute(re.sub(r"clock_synced INTEGER NOT NULL DEFAULT 1,\s*", "", statement))
    db.commit()
    assert "clock_synced" not in {r[1] for r in db.execute("PRAGMA table_info(windows)")}
    db.close()
    store = open_store(f"sqlite:{path}")
    store.write([parse_audience("k", _audience("2026-11-28T10:00:00.000Z",
                                               "2026-11-28T10:01:00.000Z", None), TRUE_NOW)])
    assert store.totals()["rows"] == 1
    store.close()


@pytest.mark.parametrize("bad", ["yes", 0, None])
def test_a_bad_clock_synced_is_a_clear_error(bad):
    from fleet.errors import BadMessage

    msg = json.loads(_audience("2026-11-28T10:00:00.000Z", "2026-11-28T10:01:00.000Z", True))
    msg["clock_synced"] = bad
    if bad is None:
        msg.pop("clock_synced")  # absent is fine (older kiosks)
        assert parse_audience("k", json.dumps(msg).encode(), TRUE_NOW).clock_synced
        return
    with pytest.raises(BadMessage, match="clock_synced"):
        parse_audience("k", json.dumps(msg).encode(), TRUE_NOW)
