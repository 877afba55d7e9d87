"""A short soak (``tools.soak``): the real appliance, a broker restarted and a source unplugged
at random; every window arrives or is accounted for, and the samples and plot are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_short_soak_loses_no_window_and_writes_its_samples_and_plot(tmp_path):
    out, png = tmp_path / "soak.json", tmp_path / "soak.png"
    run = subprocess.run(
        [sys.executable, "-m", "tools.soak", "--duration", "45", "--window", "2",
         "--sample-s", "1", "--broker-every-s", "10", "--broker-down-s", "4",
         "--unplug-every-s", "12", "--unplug-s", "3", "--warmup-s", "10", "--seed", "3",
         "--work", str(tmp_path / "work"), "--out", str(out), "--plot", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    w, f = result["windows"], result["faults"]
    assert f["broker_restarts"] >= 1 and f["unplugs"] >= 1
    assert w["lost"] == 0 and w["expected"] >= 10 and not w["unexpected"]
    assert w["received"] + w["in_spool"] + w["dropped_counted"] >= w["expected"]
    assert len(result["samples"]) >= 30
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in result["samples"])
    assert result["slopes"]["rss_mb_per_h"] is not None
    log = (tmp_path / "work" / "kiosk.log").read_text()
    assert "unplugged" in log and "is back" in log  # the source went and came back
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
