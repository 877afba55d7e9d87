"""The window clock and closing a window into the spool."""

from __future__ import annotations

import json

import pytest

from device.aggregate import WindowAggregator
from device.spool import Spool, SpoolError
from device.windows import Windows
from tests.test_aggregate import summary


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig(tmp_path):
    mono, wall = Clock(100.0), Clock(1_764_000_000.0)
    spooled, lost = [], []
    spool = Spool(str(tmp_path / "spool.db"), max_age_s=3600)
    windows = Windows(60.0, WindowAggregator(k_anonymity=1), spool, "kiosk/k/audience", "k",
                      model_version=lambda: "1.5.0", spooled=spooled.append, lost=lost.append,
                      clock=mono, wall=wall)
    yield windows, spool, mono, wall, spooled, lost
    spool.close()


def test_a_window_is_due_after_window_s_on_the_monotonic_clock(rig):
    windows, _, mono, wall, _, _ = rig
    assert not windows.due()
    wall.t -= 3600  # NTP sets the wall clock back: the window's length does not change
    mono.t += 59.9
    assert not windows.due()
    mono.t += 0.1
    assert windows.due()


def test_closing_spools_the_window_with_its_frames_and_ended_tracks(rig):
    windows, spool, mono, wall, spooled, lost = rig
    for _ in range(3):
        windows.count_frame()
    mono.t += 60
    wall.t += 60
    seq = windows.close([summary(), summary()])
    assert seq == 1 and spooled == [1] and lost == []
    (row,) = spool.pending()
    message = json.loads(row.payload)
    assert message["frames"] == 3 and message["visitors"] == 2
    assert message["model_version"] == "1.5.0" and message["duration_s"] == 60.0
    assert windows.frames == 0 and not windows.due()  # the next window started at the close


def test_a_window_the_spool_cannot_take_is_reported_not_raised(rig, monkeypatch):
    windows, spool, _, _, spooled, lost = rig

    def full(topic, make_payload, **kw):
        raise SpoolError("cannot write to the spool: database or disk is full")

    monkeypatch.setattr(spool, "append", full)
    windows.count_frame()
    assert windows.close() is None
    assert spooled == [] and lost == ["cannot write to the spool: database or disk is full"]
    assert windows.frames == 0  # counting goes on in a new window
