"""tools.reanalyze: what analysing each tracked face less often changes in the visitors' answers."""

import json

import pytest

from device.tracking import TrackSummary
from device.types import EMOTIONS
from tests.shared_data import sample
from tools.reanalyze import compare, main


def summary(track_id, dwell=2.0, age=30.0, group="25-37", gender="female", p=0.9,
            emotion="happy"):
    emotions = {e: (0.7 if e == emotion else 0.05) for e in EMOTIONS}
    return TrackSummary(track_id=track_id, start=0.0, end=dwell, dwell_s=dwell, attention_s=1.0,
                        n_frames=10, n_analyzed=10, age=age, age_group=group, gender=gender,
                        gender_prob=p, emotions=emotions)


def test_compare_counts_visitors_whose_labels_stay_the_same():
    base = {1: summary(1), 2: summary(2, age=40.0, group="38-47"), 3: summary(3, dwell=0.2)}
    other = {1: summary(1, age=31.0, p=0.6),  # P(female) under the 0.7 floor: "unknown" now
             2: summary(2, age=36.0, group="25-37", emotion="sad"),
             3: summary(3, gender="male")}  # too short to be a visitor: not compared
    got = compare(base, other, min_dwell=1.0, gender_prob=0.7, emotion_prob=0.4)
    assert got["visitors"] == 2
    assert got["same_gender"] == 0.5 and got["same_emotion"] == 0.5 and got["same_age_group"] == 0.5
    assert got["age_change_median_y"] == 2.5 and got["age_change_max_y"] == 4.0
    assert compare(base, base, 1.0, 0.7, 0.4)["same_gender"] == 1.0
    with pytest.raises(ValueError, match="different visitors"):
        compare(base, {1: other[1]}, 1.0, 0.7, 0.4)


def test_the_tool_runs_the_clip_once_per_interval(tmp_path, capsys, monkeypatch):
    import tools.bench

    frames = tools.bench.load_frames(str(sample("stage_and_audience.mp4")), 45)
    monkeypatch.setattr(tools.bench, "load_frames", lambda source, limit=None: frames)
    out = tmp_path / "reanalyze.json"
    assert main(["--source", "clip", "--intervals", "0,0.2", "--min-dwell", "0.5",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["clips"]["clip"]["rows"]
    assert [r["reanalyze_s"] for r in rows] == [0.0, 0.2]
    assert rows[0]["analyses_vs_first"] == 1.0 and rows[0]["same_gender"] == 1.0
    assert 0 < rows[1]["analyses_per_frame"] < rows[0]["analyses_per_frame"]
    assert rows[1]["visitors"] == rows[0]["visitors"] >= 1  # the same people, tracked alike
    assert "analyses/frame" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--source", "clip", "--intervals", "0,-1"])
