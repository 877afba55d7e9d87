"""A CPU that cannot keep up: frames are dropped at the source (counted), the status reports them
and the loop's real rate, and the delay between a frame's time and its analysis stays bounded."""

from __future__ import annotations

import threading
import time

import pytest

from device.sources import DemoSource, VideoFileSource
from device.sources.base import Pacer
from tests.shared_data import SAMPLES


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_the_pacer_calls_a_frame_late_only_past_max_lag():
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=lambda s: None, max_lag_s=0.2)
    assert not pacer.late(0.0)  # nothing is late before the first frame
    pacer.wait(0.0)
    clock.t = 1.0
    assert pacer.late(0.5) and not pacer.late(0.85)  # due 0.5 s / 0.15 s ago
    pacer.wait(0.85)
    assert pacer.lag_s == pytest.approx(0.15)


def _read_slowly(source, seconds: float, per_frame_s: float):
    """Read like a loop that needs ``per_frame_s`` a frame; (worst lag over the last second,
    frames read). Lag: real time since the first frame less media time since it."""
    t0 = time.monotonic()
    first = None
    lags, n = [], 0
    while time.monotonic() - t0 < seconds:
        frame = source.read()
        now = time.monotonic()
        if first is None:
            first = (now, frame.timestamp)
        lags.append((now, (now - first[0]) - (frame.timestamp - first[1])))
        time.sleep(per_frame_s)  # the slowed pipeline
        n += 1
    end = lags[-1][0]
    return max(lag for t, lag in lags if t > end - 1.0), n


def test_a_paced_clip_faster_than_the_loop_drops_frames_and_lag_stays_bounded():
    source = DemoSource(fps=30, loop=True, pace=True)  # 30 frames a second
    worst, n = _read_slowly(source, seconds=3.0, per_frame_s=0.1)  # the loop manages 10
    assert worst < 0.5, f"the loop fell {worst:.1f} s behind the source"
    assert source.dropped_frames >= n  # about two of every three frames dropped
    assert source.lag_s < 0.35


def test_a_paced_video_file_drops_without_decoding_and_lag_stays_bounded():
    source = VideoFileSource(SAMPLES / "stage_and_audience.mp4", loop=True, pace=True)
    worst, n = _read_slowly(source, seconds=3.0, per_frame_s=0.15)
    assert worst < 0.6, f"the loop fell {worst:.1f} s behind the video"
    assert source.dropped_frames > 0
    source.close()


def test_the_status_reports_dropped_frames_and_the_real_rate(tmp_path):
    from device.app import App
    from device.config import load_config
    from tests.test_app import RecordingLeds

    class SlowPipeline:
        accelerator, model_version, analyzer_available = "cpu", "slow-1", False

        def self_test(self):
            return {"faces": 1}

        def process(self, frame, tracker=None):
            time.sleep(0.1)  # a throttled CPU: 10 frames a second at most
            return []

    cfg = load_config(None, {"state.dir": str(tmp_path / "state"), "device.id": "slow",
                             "aggregate.window_s": 1.0})
    app = App(cfg, pipeline=SlowPipeline(),
              open_source=lambda *a, **k: DemoSource(fps=30, loop=True, pace=True),
              leds=RecordingLeds(), duration_s=4.0)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.2):
            seen.append(app.board.snapshot())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert app.run() == 0
    stop.set()
    watcher.join()
    last = [s for s in seen if s["frames_dropped"]][-1]
    assert 5 <= last["fps"] <= 12  # the loop's real rate, not the source's 30
    assert last["frames_dropped"] >= 20 and last["lag_s"] < 0.35
