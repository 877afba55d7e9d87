"""Overhead of the whole appliance over the bare vision path, on the same in-memory frames.

``python -m tools.bench --source PATH --app [--display SINK] [--mqtt HOST:PORT]`` runs the frames
once through detect -> align -> analyze -> track (the bench's own loop) and once through
``device.app.App`` (windows, spool, MQTT publisher thread, display renderer thread, LEDs), and
compares the median time between frames. The display and MQTT run on their own threads, so the
difference is what they cost the vision loop (GIL contention included).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from device.sources.base import FrameSource


class MemorySource(FrameSource):
    """Frames already decoded into memory; records when each one is taken."""

    kind = "memory"

    def __init__(self, frames: list):
        super().__init__("memory")
        self.frames, self.pos, self.taken = frames, 0, []

    def read(self):
        self.taken.append(time.perf_counter())
        if self.pos >= len(self.frames):
            return None
        frame = self.frames[self.pos]
        self.pos += 1
        return frame


def app_ms_per_frame(frames: list, pipeline, display: str, mqtt: str | None,
                     window_s: float = 2.0) -> float:
    """Median milliseconds between frames inside a real ``App`` run over ``frames``."""
    from device.app import App
    from device.config import load_config

    state = tempfile.mkdtemp(prefix="kiosk-bench-")
    overrides = {"state.dir": state, "display.sink": display, "aggregate.window_s": window_s,
                 "device.id": "bench"}
    if mqtt:
        host, port = mqtt.rsplit(":", 1)
        overrides["mqtt.host"], overrides["mqtt.port"] = host, int(port)
    cfg = load_config(None, overrides)
    source = MemorySource(frames)
    app = App(cfg, pipeline=pipeline, open_source=lambda *a, **k: source)
    app.run()
    gaps = np.diff(np.array(source.taken[1:-1])) * 1000  # skip the first read (setup before it)
    return float(np.median(gaps))


def overhead_report(frames: list, pipeline, bare_ms: float, display: str, mqtt: str | None) -> dict:
    app_ms = app_ms_per_frame(frames, pipeline, display, mqtt)
    return {"app_display": display, "app_mqtt": mqtt or "none (spool only)",
            "app_ms_per_frame_p50": round(app_ms, 3),
            "app_overhead_pct": round(100 * (app_ms - bare_ms) / bare_ms, 1)}
