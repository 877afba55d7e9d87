"""The keypoint noise tool: its pure functions on made-up detections and answers, then one short
run on the shipped models (the self-test picture and a few frames of a sample clip)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.types import Detection, FaceAttributes
from tests.shared_data import sample
from tools import keypoint_noise as kn


def _det(x: float, y: float, eye_px: float = 20.0, side: float = 50.0) -> Detection:
    """A face whose right eye is at (x, y) and left eye ``eye_px`` to its right."""
    kp = np.zeros((6, 2), np.float32)
    kp[0], kp[1] = (x, y), (x + eye_px, y)
    return Detection((x - 15, y - 15, x - 15 + side, y - 15 + side), 0.9, kp)


def _attrs(age=30.0, female=0.7, emotions=(0.1, 0, 0, 0.6, 0.1, 0, 0.2)) -> FaceAttributes:
    from device.manifest import DEFAULT_AGE_GROUPS, age_group, parse_age_groups
    from device.types import EMOTIONS

    gender = "female" if female >= 0.5 else "male"
    return FaceAttributes(age=age, age_group=age_group(age, parse_age_groups(DEFAULT_AGE_GROUPS)),
                          gender=gender, gender_prob=max(female, 1 - female),
                          emotions=dict(zip(EMOTIONS, emotions)))


def test_eyes_and_their_distance():
    eyes = kn.eyes_of(_det(10, 20, eye_px=30))
    assert eyes.tolist() == [[10, 20], [40, 20]]
    assert kn.eye_distance(eyes) == pytest.approx(30)
    assert kn.eye_distance(np.stack([eyes, eyes * 2])).tolist() == pytest.approx([30, 60])


def test_match_pairs_each_box_once_best_overlap_first():
    a = [(0, 0, 10, 10), (100, 100, 110, 110), (50, 50, 60, 60)]
    b = [(101, 100, 111, 110), (1, 0, 11, 10), (0, 1, 10, 11), (300, 300, 310, 310)]
    pairs = dict(kn.match(a, b))
    assert pairs[1] == 0 and pairs[0] in (1, 2) and 2 not in pairs
    assert kn.match(a, [], 0.5) == [] and kn.match([], b) == []
    assert kn.match([(0, 0, 10, 10)], [(5, 0, 15, 10)], min_iou=0.5) == []  # IoU 1/3


def test_steady_motion_leaves_no_residual():
    prev, nxt = np.array([[10.0, 5.0], [30.0, 5.0]]), np.array([[14.0, 7.0], [34.0, 7.0]])
    assert np.allclose(kn.residuals(prev, (prev + nxt) / 2, nxt), 0)
    assert np.allclose(kn.residuals(prev, (prev + nxt) / 2 + [1.0, -2.0], nxt), [[1, -2]] * 2)


def test_triplets_follow_each_face_and_skip_a_missed_frame():
    frames = [[_det(10 + 2 * t, 10), _det(200, 50 + t)] for t in range(5)]
    del frames[3][1]  # the second face is missed in frame 3
    got = list(kn.triplets(frames))
    middles = [(t, i) for t in range(1, 4) for i, d in enumerate(frames[t])
               if any(c is d for _, c, _ in got)]
    assert middles == [(1, 0), (1, 1), (2, 0), (3, 0)]
    for prev, cur, nxt in got:
        assert np.allclose(kn.residuals(kn.eyes_of(prev), kn.eyes_of(cur), kn.eyes_of(nxt)), 0)


def test_consecutive_links_one_face_across_frames():
    frames = [[_det(10 + t, 10), _det(200, 50)] for t in range(5)]
    followed = list(kn.triplets(frames))
    pairs = kn.consecutive(followed)
    assert len(followed) == 6 and len(pairs) == 4
    for a, b in pairs:
        assert followed[b][0] is followed[a][1] and followed[b][1] is followed[a][2]


def test_lag_one_correlation_tells_noise_from_motion():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(4001, 2, 2))
    res = kn.residuals(noise[:-2], noise[1:-1], noise[2:])
    lag = kn.lag_one_correlation(res[:-1], res[1:])
    assert lag == pytest.approx([-2 / 3, -2 / 3], abs=0.04)
    wobble = np.sin(np.arange(400) / 20.0)[:, None, None] * np.ones((1, 2, 2))
    res = kn.residuals(wobble[:-2], wobble[1:-1], wobble[2:])
    assert min(kn.lag_one_correlation(res[:-1], res[1:])) > 0.99
    assert kn.lag_one_correlation(res[:2], res[1:3]) is None


def test_noise_summary_recovers_a_known_spread():
    rng = np.random.default_rng(0)
    eye_px = rng.uniform(10, 60, 5000)
    rel = rng.normal(0, 1, (5000, 2, 2)) * [0.03, 0.02]
    s = kn.noise_summary(rel * eye_px[:, None, None], eye_px)
    assert (s["faces"], s["eyes"]) == (5000, 10000)
    assert s["sigma"] == pytest.approx([0.03, 0.02], rel=0.03)
    assert s["robust_sigma"] == pytest.approx([0.03, 0.02], rel=0.05)
    assert s["mean"] == pytest.approx([0, 0], abs=2e-3)
    assert s["eye_correlation"] == pytest.approx([0, 0], abs=0.05)
    # the length of a 2-D Gaussian step: Rayleigh-like, between the two sigmas' medians
    assert 0.02 * 1.1774 < s["rel"]["median"] < 0.03 * 1.1774
    assert s["px"]["p95"] > s["px"]["median"] > 0


def test_robust_sigma_ignores_a_few_wild_keypoints_and_correlation_is_measured():
    rng = np.random.default_rng(2)
    common = rng.normal(0, 0.02, (3000, 1, 2))
    rel = common + rng.normal(0, 0.01, (3000, 2, 2))
    rel[:30] += 1.0  # 1 % swapped faces
    s = kn.noise_summary(rel * 20.0, np.full(3000, 20.0))
    assert s["robust_sigma"] == pytest.approx([np.hypot(0.02, 0.01)] * 2, rel=0.08)
    assert min(s["sigma"]) > 0.08
    assert min(s["eye_correlation"]) > 0.5


def test_an_empty_summary_says_so():
    s = kn.noise_summary(np.zeros((0, 2, 2)), np.zeros(0))
    assert s["faces"] == 0 and s["sigma"] is None and s["rel"]["median"] is None
    bands = kn.by_eye_band(np.zeros((3, 2, 2)), [9.0, 20.0, 40.0])
    assert list(bands) == ["8-16", "16-32", "32+"]
    assert [b["faces"] for b in bands.values()] == [1, 1, 1]


def test_the_per_frame_sigma_is_what_made_the_residuals():
    rng = np.random.default_rng(3)
    true = 0.04
    noise = rng.normal(0, true, (20000, 2, 2))
    res = kn.residuals(noise[:-2], noise[1:-1], noise[2:])
    s = kn.noise_summary(res, np.ones(len(res)))
    assert kn.per_frame_sigma(s["sigma"]) == pytest.approx([true, true], rel=0.03)


def test_moved_eyes_scale_with_the_face_and_repeat_with_the_seed():
    eyes = np.array([[100.0, 50.0], [140.0, 50.0]])  # 40 px apart
    a = kn.moved_eyes(eyes, [0.05, 0.025], 20000, np.random.default_rng(7))
    b = kn.moved_eyes(eyes, [0.05, 0.025], 20000, np.random.default_rng(7))
    assert a.shape == (20000, 2, 2) and np.array_equal(a, b)
    d = (a - eyes).reshape(-1, 2)
    assert d.std(axis=0) == pytest.approx([2.0, 1.0], rel=0.03)
    assert np.array_equal(kn.moved_eyes(eyes, [0, 0], 3, np.random.default_rng(0)),
                          np.repeat(eyes[None], 3, axis=0))


def test_answer_deltas_and_their_summary():
    base = _attrs(30.0, 0.7)
    moved = [_attrs(30.0, 0.7), _attrs(41.0, 0.4, (0.1, 0, 0, 0.2, 0.1, 0, 0.6))]
    d = kn.answer_deltas(base, moved)
    assert d["female"] == pytest.approx([0, 0.3])
    assert d["emotion"] == pytest.approx([0, 0.4])
    assert d["age"] == pytest.approx([0, 11])
    assert d["gender_changed"].tolist() == [0, 1]
    assert d["emotion_changed"].tolist() == [0, 1]
    assert d["age_group_changed"].tolist() == [0, 1]  # 25-37 -> 38-47
    s = kn.movement_summary([d, kn.answer_deltas(base, [base, base])])
    assert (s["faces"], s["draws"]) == (2, 4)
    assert s["female"]["median"] == 0 and s["female"]["max"] == pytest.approx(0.3)
    assert s["age_years"]["max"] == pytest.approx(11)
    assert s["changed"] == {"gender": 0.25, "emotion": 0.25, "age_group": 0.25}
    assert kn.movement_summary([])["changed"]["gender"] is None


def test_choose_keeps_order_and_repeats():
    assert kn.choose(5, 10, 0) == [0, 1, 2, 3, 4]
    picked = kn.choose(100, 10, 4)
    assert len(picked) == 10 and picked == sorted(set(picked)) and picked == kn.choose(100, 10, 4)


def test_noise_levels():
    frame = {"per_frame_sigma": [0.08, 0.07], "per_frame_robust_sigma": [0.03, 0.03]}
    assert kn.noise_levels(frame) == {"sigma": [0.08, 0.07], "robust_sigma": [0.03, 0.03]}
    assert kn.noise_levels(frame, [0.01, 0.02]) == {"given": [0.01, 0.02]}
    assert kn.noise_levels({"per_frame_sigma": None, "per_frame_robust_sigma": None}) == {}


@pytest.mark.parametrize("bad", [["--draws", "0"], ["--sigma", "-0.1"], ["--sigma", "1,2,3"]])
def test_bad_arguments_stop_with_usage(bad):
    with pytest.raises(SystemExit) as e:
        kn.main(bad)
    assert e.value.code == 2


def test_a_short_run_on_the_shipped_models(tmp_path, capsys):
    out = tmp_path / "noise.json"
    clip = sample("stage_and_audience.mp4")
    assert kn.main([str(clip), "--frames", "8", "--kernel-every", "4", "--movement-every", "4",
                    "--draws", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kernels: stills" in text and "frame residual" in text and "|dP(female)|" in text
    r = json.loads(out.read_text())
    assert r["command"].startswith("python -m tools.keypoint_noise ") and r["date"]
    assert r["pictures"] == ["astronaut.jpg"] and r["videos"] == ["stage_and_audience.mp4"]
    assert r["detector"]["kernels"] == {"auto": "xnnpack", "builtin": "builtin"}
    stills = r["kernel_noise"]["stills"]
    assert stills["faces"] == 1 and stills["px"]["max"] < 1.0  # the self-test portrait
    frame = r["frame_noise"]
    assert frame["clips"]["stage_and_audience.mp4"]["frames"] == 8 and frame["faces"] > 0
    assert set(r["movement"]["levels"]) == {"sigma", "robust_sigma"}
    level = r["movement"]["levels"]["sigma"]
    assert level["eye_sigma"] == frame["per_frame_sigma"]
    assert level["draws"] == 3 * level["faces"] and level["faces"] >= 1
    assert 0 <= level["female"]["median"] <= level["female"]["p95"] <= 1


def test_the_analyzer_can_come_from_another_folder(tmp_path, capsys):
    import shutil

    from device.models import MODELS_DIR

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(MODELS_DIR / "multihead_int8.tflite", other)
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    # a set that tells no gender below an age: the tool still reads the model's own P(female)
    manifest["analyzer"]["heads"]["gender"]["min_age"] = 200.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    args = ["--sigma", "0.03", "--draws", "4", "--seed", "5"]
    assert kn.main(args) == 0
    same = capsys.readouterr().out
    assert kn.main([*args, "--analyzer-models", str(other)]) == 0
    assert capsys.readouterr().out == same  # the same faces, draws and answers
    assert "given 0.030, 0.030" in same
