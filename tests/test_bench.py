"""tools.bench reports the agreed keys (timings themselves are measured by hand, never asserted)."""

import json

from tests.shared_data import sample
from tools.bench import main, run_bench

KEYS = {"frames", "faces", "fps", "ms_per_frame_p50", "ms_per_frame_p95", "peak_rss_mb",
        "detector", "analyzer", "analyzer_flip", "accelerator"}


def test_bench_report_on_a_clip(tmp_path):
    report = run_bench(str(sample("stage_and_audience.mp4")), limit=12)
    assert KEYS <= set(report)
    assert report["frames"] == 12 and report["faces"] >= 6  # the performer is in every frame
    assert report["ms_per_frame_p95"] >= report["ms_per_frame_p50"] > 0
    assert report["fps"] == round(1000 / report["ms_per_frame_p50"], 1)
    assert report["clip_mb"] > 0 and report["process_peak_rss_mb"] > report["peak_rss_mb"]
    assert report["ms_per_frame_mean"] > 0
    assert report["fps_from_mean"] == round(1000 / report["ms_per_frame_mean"], 1)
    # each tracked face analysed again only after reanalyze_s: fewer analyses than with 0
    every = run_bench(str(sample("stage_and_audience.mp4")), limit=12, reanalyze_s=0)
    assert every["faces"] == report["faces"]  # the same faces are found and tracked
    assert every["analyses_per_frame"] > report["analyses_per_frame"] >= 1 / 12


def test_bench_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--source", str(sample("multiface.jpg")), "--repeat", "3",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == 3 and report["faces"] == 18
    assert "ms_per_frame_p50" in capsys.readouterr().out
