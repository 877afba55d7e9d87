"""The fleet load and fault tool (tools/fleet_load.py), at test size: a few dozen simulated
kiosks, two ingest workers, its own mosquitto and PostgreSQL, and all three faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("kiosks", "windows_sent", "rows", "lost", "duplicated", "windows_per_s",
        "latency_ms_p50", "latency_ms_p99")


@pytest.mark.slow
def test_a_small_fleet_loses_and_duplicates_nothing_through_all_three_faults(tmp_path):
    out = tmp_path / "load.json"
    res = subprocess.run(
        [sys.executable, "-m", "tools.fleet_load", "--kiosks", "30", "--windows-per-kiosk", "20",
         "--workers", "2", "--interval-s", "0.4", "--faults", "--timeout-s", "120",
         "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(KEYS) <= set(result)
    assert result["kiosks"] == 30 and result["windows_sent"] == 600
    assert result["rows"] == 600 and result["lost"] == 0 and result["duplicated"] == 0
    assert result["open_gaps_at_end"] == 0
    assert [f["what"].split(" ")[0] for f in result["faults"]] == \
        ["SIGKILL", "ingest", "broker", "PostgreSQL"]
    assert result["windows_per_s"] > 0 and result["latency_ms_p99"] >= result["latency_ms_p50"]
