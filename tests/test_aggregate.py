import pytest

from device.aggregate import WindowAggregator, emotion_label, gender_label
from device.manifest import DEFAULT_AGE_GROUPS
from device.tracking import TrackSummary
from device.types import EMOTIONS

_ids = iter(range(1, 10_000))


def summary(dwell=3.0, attention=1.0, gender="female", p=0.9, emotion="happy", ep=0.8,
            age_group="25-37", analyzed=True, end=10.0):
    emotions = None
    if analyzed:
        rest = (1.0 - ep) / (len(EMOTIONS) - 1)
        emotions = {e: (ep if e == emotion else rest) for e in EMOTIONS}
    return TrackSummary(
        track_id=next(_ids), start=end - dwell, end=end, dwell_s=dwell, attention_s=attention,
        n_frames=10, n_analyzed=3 if analyzed else 0,
        age=30.0 if analyzed else None, age_group=age_group if analyzed else None,
        gender=gender if analyzed else None, gender_prob=p if analyzed else None,
        emotions=emotions)


def test_counts_means_and_breakdowns():
    agg = WindowAggregator(min_dwell_s=1.0, k_anonymity=3)
    agg.add(summary(dwell=0.4, attention=0.4))  # passer-by: impression only
    agg.add(summary(dwell=2.0, attention=1.0, gender="female", emotion="happy", age_group="15-24"))
    agg.add(summary(dwell=4.0, attention=0.0, gender="male", emotion="sad", age_group="60+"))
    agg.add(summary(dwell=6.0, attention=2.0, gender="male", emotion="happy"))
    out = agg.close(0.0, 60.0)
    assert out["window_start"] == 0.0 and out["window_end"] == 60.0
    assert out["impressions"] == 4 and out["visitors"] == 3 and out["watchers"] == 2
    assert out["dwell_s_mean"] == pytest.approx(4.0)
    assert out["attention_s_mean"] == pytest.approx(1.0)
    assert out["gender"] == {"female": 1, "male": 2, "unknown": 0}
    assert out["age_groups"] == {**dict.fromkeys(DEFAULT_AGE_GROUPS, 0), "unknown": 0,
                                 "15-24": 1, "60+": 1, "25-37": 1}
    assert out["emotions"] == {**dict.fromkeys(EMOTIONS, 0), "unknown": 0, "happy": 2, "sad": 1}
    assert out["suppressed"] is False


def test_exact_keys():
    out = WindowAggregator(k_anonymity=0).close(0, 60)
    assert set(out) == {"window_start", "window_end", "impressions", "visitors", "watchers",
                        "dwell_s_mean", "attention_s_mean", "gender", "age_groups", "emotions",
                        "suppressed"}
    assert out["dwell_s_mean"] is None and out["attention_s_mean"] is None
    assert list(out["age_groups"]) == [*DEFAULT_AGE_GROUPS, "unknown"]


def test_fewer_than_k_visitors_suppresses_breakdowns_only():
    agg = WindowAggregator(k_anonymity=3)
    for _ in range(5):
        agg.add(summary(dwell=0.2))  # impressions do not count towards k
    agg.add(summary(dwell=5.0))
    agg.add(summary(dwell=5.0))
    out = agg.close(0, 60)
    assert out["suppressed"] is True
    assert not {"gender", "age_groups", "emotions"} & set(out)
    assert out["impressions"] == 7 and out["visitors"] == 2 and out["dwell_s_mean"] == 5.0


def test_exactly_k_visitors_is_not_suppressed():
    agg = WindowAggregator(k_anonymity=3)
    for _ in range(3):
        agg.add(summary())
    out = agg.close(0, 60)
    assert out["suppressed"] is False and out["gender"]["female"] == 3


def test_low_confidence_and_unanalyzed_count_as_unknown():
    agg = WindowAggregator(k_anonymity=1, min_gender_prob=0.7, min_emotion_prob=0.4)
    agg.add(summary(p=0.65, ep=0.35))
    agg.add(summary(analyzed=False))
    agg.add(summary(p=0.7, ep=0.4, gender="male", emotion="surprise"))
    out = agg.close(0, 60)
    assert out["gender"] == {"female": 0, "male": 1, "unknown": 2}
    assert out["emotions"]["unknown"] == 2 and out["emotions"]["surprise"] == 1
    assert out["age_groups"]["unknown"] == 1 and out["age_groups"]["25-37"] == 2
    assert sum(out["age_groups"].values()) == out["visitors"]


def test_label_helpers():
    assert gender_label(summary(gender="male", p=0.95), 0.7) == "male"
    assert gender_label(summary(analyzed=False), 0.7) == "unknown"
    assert emotion_label(summary(emotion="fear", ep=0.5), 0.4) == "fear"
    assert emotion_label(summary(emotion="fear", ep=0.3), 0.4) == "unknown"


def test_close_resets_and_current_does_not():
    agg = WindowAggregator(k_anonymity=2)
    agg.add(summary())
    snap = agg.current()
    assert snap["visitors"] == 1 and snap["suppressed"] is True and "gender" not in snap
    full = agg.current(suppress=False)
    assert full["suppressed"] is True and full["gender"]["female"] == 1
    agg.add(summary())
    assert agg.current()["visitors"] == 2 and "gender" in agg.current()
    assert agg.close(0, 60)["visitors"] == 2
    assert agg.current()["visitors"] == 0 and agg.current()["impressions"] == 0


def test_custom_age_groups_and_foreign_labels():
    agg = WindowAggregator(k_anonymity=0, age_groups=("0-17", "18-64", "65+"))
    agg.add(summary(age_group="18-64"))
    agg.add(summary(age_group="25-37"))  # not one of this window's groups
    assert agg.close(0, 1)["age_groups"] == {"0-17": 0, "18-64": 1, "65+": 0, "unknown": 1}


def test_a_child_whose_gender_was_not_told_counts_as_unknown_and_not_in_female_share():
    from device.mqtt.messages import audience_message, female_share

    agg = WindowAggregator(k_anonymity=1, min_gender_prob=0.7)
    agg.add(summary(gender="unknown", p=None, age_group="0-2"))  # below the model's min_age
    agg.add(summary(gender="female", p=0.9))
    agg.add(summary(gender="male", p=0.8))
    agg.add(summary(gender="male", p=0.6))  # told, but below min_gender_prob: unknown too
    out = agg.close(0, 60)
    assert out["gender"] == {"female": 1, "male": 1, "unknown": 2}
    assert out["age_groups"]["0-2"] == 1  # the child still counts in its age group
    assert sum(out["gender"].values()) == out["visitors"] == 4
    assert gender_label(summary(gender="unknown", p=None), 0.0) == "unknown"
    assert female_share(out["gender"]) == 50.0  # of the visitors whose gender was given
    assert female_share({"female": 0, "male": 0, "unknown": 3}) is None
    assert audience_message(1, "k", 0, 60, out)["female_share"] == 50.0


def test_tracked_children_reach_the_window_as_unknown():
    from device.tracking import Tracker
    from tests.test_tracking import face
    from tests.test_tracking_gender import seen

    tracker = Tracker()
    for i in range(20):  # a child and an adult, side by side for 2 s
        tracker.update([face(100, 200), face(400, 200)],
                       [seen(1.5 + (i % 3) * 0.5), seen(35.0, p_female=0.9)], i / 10)
    agg = WindowAggregator(k_anonymity=0)
    for s in tracker.flush():
        agg.add(s)
    out = agg.close(0, 60)
    assert out["gender"] == {"female": 1, "male": 0, "unknown": 1}
    assert out["age_groups"]["0-2"] == 1 and out["age_groups"]["25-37"] == 1
