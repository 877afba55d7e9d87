"""A full SD card: the spool keeps the newest windows and counts what it dropped, the screen and
debug snapshots fail softly, and the vision loop never stops. On a real (small) filesystem."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from device.display import PngSink
from device.errors import DisplayError, SourceError
from device.spool import Spool
from device.types import Frame
from tests.card import fill, free, small_card


def _payload(seq: int) -> str:
    return json.dumps({"seq": seq, "pad": "x" * 600})  # about one real window


@pytest.fixture
def card(tmp_path):
    with small_card(tmp_path / "card", size="8m") as path:
        yield path


def _check(spool: Spool, appended: int) -> list[int]:
    seqs = [m.seq for m in spool.pending(limit=10**6)]
    assert seqs == list(range(seqs[0], appended + 1))  # the newest, without holes
    assert seqs[0] - 1 == spool.dropped == spool.dropped_full  # every other one counted
    ok = sqlite3.connect(spool.path).execute("PRAGMA integrity_check").fetchone()
    assert ok == ("ok",)
    return seqs


def test_a_full_card_drops_the_oldest_windows_counts_them_and_keeps_the_newest(card):
    spool = Spool(card / "state" / "spool.db")
    for _ in range(500):  # the broker has been away for a while
        spool.append("t", _payload)
    fill(card)  # then the logs fill the card
    for _ in range(2000):
        spool.append("t", _payload)  # never raises: room is made by dropping the oldest
    seqs = _check(spool, 2500)
    assert spool.dropped_full > 0 and len(seqs) < 2500
    spool.close()


def test_the_spool_grows_again_once_the_card_has_room(card):
    spool = Spool(card / "state" / "spool.db")
    for _ in range(300):
        spool.append("t", _payload)
    fill(card)
    for _ in range(300):
        spool.append("t", _payload)
    dropped = spool.dropped
    assert dropped > 0 and not spool.reserve.exists()  # the reserve was given up
    free(card)
    spool.prune()  # the publisher's minute: the reserve comes back, and with it the room
    assert spool.reserve.exists()
    for _ in range(300):
        spool.append("t", _payload)
    assert spool.dropped == dropped  # nothing more dropped
    _check(spool, 900)
    spool.close()


def test_the_spool_is_bounded_in_bytes_and_the_bound_counts_what_it_drops(tmp_path):
    path = tmp_path / "s.db"
    with Spool(path, max_bytes=10_000) as spool:
        for _ in range(40):
            spool.append("t", _payload)
        assert spool.bytes <= 10_000 and spool.depth >= 10_000 // 700
        _check(spool, 40)
    with Spool(path, max_bytes=10_000) as spool:
        assert spool.dropped_full == 40 - spool.depth  # persisted


def test_one_window_larger_than_the_bound_is_still_kept(tmp_path):
    with Spool(tmp_path / "s.db", max_bytes=100) as spool:
        spool.append("t", _payload)
        assert spool.depth == 1  # the newest window is never the one dropped


def test_a_png_screen_on_a_full_card_is_a_display_error(tmp_path):
    with small_card(tmp_path / "card", size="1m", inodes=16) as card:
        sink = PngSink(card / "screen.png")
        fill(card, inodes=True)
        with pytest.raises(DisplayError, match="No space left"):
            sink.show(np.zeros((48, 64, 3), np.uint8))


class _Sink:
    type_key, wants_frames = "fake", True

    def __init__(self):
        self.shown = 0

    def show(self, image):
        self.shown += 1

    def close(self):
        pass


def test_a_debug_snapshot_on_a_full_card_does_not_take_the_screen_away(tmp_path):
    from device.worker import DisplayWorker

    with small_card(tmp_path / "card", size="1m", inodes=16) as card:
        fill(card, inodes=True)
        sink = _Sink()
        worker = DisplayWorker(sink, lambda image, *a, **k: image, snapshot_dir=str(card / "snaps"),
                               max_fps=1000)
        worker.start()
        for _ in range(3):
            worker.submit(np.zeros((48, 64, 3), np.uint8), [], None, {})
            time.sleep(0.2)
        worker.stop()
        assert worker.sink is sink and sink.shown >= 2  # not swapped for a null screen


class _FillingSource:
    """Frames at 100 a second; the card fills at frame ``fill_at`` and has room at ``free_at``."""

    def __init__(self, card, fill_at: int, free_at: int):
        self.card, self.fill_at, self.free_at, self.i = card, fill_at, free_at, 0

    def read(self):
        if self.i == self.fill_at:
            fill(self.card, inodes=True)
        if self.i == self.free_at:
            free(self.card)
        self.i += 1
        time.sleep(0.01)
        return Frame(image=np.zeros((48, 64, 3), np.uint8), timestamp=self.i * 0.01)

    def close(self):
        pass


def test_the_vision_loop_runs_on_through_a_full_card(tmp_path):
    from device.app import App
    from device.config import load_config
    from tests.test_app import FakePipeline, RecordingLeds

    with small_card(tmp_path / "card", size="8m", inodes=64) as card:
        cfg = load_config(None, {"state.dir": str(card / "state"), "device.id": "full",
                                 "aggregate.window_s": 0.5, "display.sink": f"png:{card}/s.png",
                                 "display.png_every": 1})
        source = _FillingSource(card, fill_at=60, free_at=260)

        def open_source(*a, **k):
            if source.i >= 400:
                raise SourceError("done")
            return source

        app = App(cfg, pipeline=FakePipeline(), open_source=open_source, leds=RecordingLeds(),
                  max_frames=320)
        states = []
        app.board.set = (lambda orig: lambda **kw: (states.append(kw.get("display_state")),
                                                    orig(**kw)))(app.board.set)
        assert app.run() == 0
        assert app.frames == 320  # the loop never stopped
        assert "unavailable" in states  # the screen said it could not write
        assert type(app.display.sink).__name__ == "Screen"  # and is retried, not dropped
        spool = Spool(cfg.spool.path)
        stored, dropped = spool.next_seq - 1, spool.dropped
        assert stored >= 5 and app.windows.lost_count == 0 and app.windows.waiting == 0
        assert spool.depth + dropped == stored  # every window stored or counted as dropped
        spool.close()
