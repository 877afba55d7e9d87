"""The window clock and closing a window into the spool."""

from __future__ import annotations

import json

import pytest

from device.aggregate import WindowAggregator
from device.spool import Spool, SpoolError
from device.windows import Windows
from tests.fake_clock import FakeClock
from tests.test_aggregate import summary


@pytest.fixture
def rig(tmp_path):
    clock = FakeClock()
    spooled, lost = [], []
    spool = Spool(str(tmp_path / "spool.db"), max_age_s=3600)
    windows = Windows(60.0, WindowAggregator(k_anonymity=1), spool, "kiosk/k/audience", "k",
                      model_version=lambda: "1.5.0", spooled=spooled.append, lost=lost.append,
                      clock=clock)
    yield windows, spool, clock, spooled, lost
    spool.close()


def test_a_window_is_due_after_window_s_on_the_monotonic_clock(rig):
    windows, _, clock, _, _ = rig
    assert not windows.due()
    clock.jump(-3600)  # NTP sets the wall clock back: the window's length does not change
    clock.advance(59.9)
    assert not windows.due()
    clock.advance(0.1)
    assert windows.due()


def test_closing_spools_the_window_with_its_frames_and_ended_tracks(rig):
    windows, spool, clock, spooled, lost = rig
    for _ in range(3):
        windows.count_frame()
    clock.advance(60)
    seq = windows.close([summary(), summary()])
    assert seq == 1 and spooled == [1] and lost == []
    (row,) = spool.pending()
    message = json.loads(row.payload)
    assert message["frames"] == 3 and message["visitors"] == 2
    assert message["model_version"] == "1.5.0" and message["duration_s"] == 60.0
    assert message["clock_synced"] is True
    assert windows.frames == 0 and not windows.due()  # the next window started at the close


def test_a_window_the_spool_cannot_take_waits_in_memory_and_is_stored_next_time(rig,
                                                                                 monkeypatch):
    windows, spool, clock, spooled, lost = rig
    real = spool.append

    def full(topic, make_payload, **kw):
        raise SpoolError("cannot write to the spool: database or disk is full")

    monkeypatch.setattr(spool, "append", full)
    windows.count_frame()
    clock.advance(60)
    assert windows.close() is None
    assert spooled == [] and lost == ["cannot write to the spool: database or disk is full"]
    assert windows.frames == 0 and windows.waiting == 1  # counting goes on in a new window
    monkeypatch.setattr(spool, "append", real)  # room again
    clock.advance(60)
    assert windows.close() == 2
    assert spooled == [1, 2] and windows.waiting == 0 and windows.lost_count == 0
    first, second = (json.loads(m.payload) for m in spool.pending())
    assert first["frames"] == 1 and second["frames"] == 0  # the older window first


def test_past_the_memory_backlog_the_oldest_waiting_window_is_lost_and_counted(tmp_path,
                                                                               monkeypatch):
    clock, lost = FakeClock(), []
    spool = Spool(tmp_path / "s.db")
    windows = Windows(60.0, WindowAggregator(k_anonymity=1), spool, "t", "k",
                      model_version=lambda: "1", spooled=lambda seq: None, lost=lost.append,
                      clock=clock, backlog_max=2)

    def full(topic, make_payload, **kw):
        raise SpoolError("disk is full")

    monkeypatch.setattr(spool, "append", full)
    for _ in range(4):
        clock.advance(60)
        windows.close()
    assert windows.waiting == 2 and windows.lost_count == 2
    spool.close()
