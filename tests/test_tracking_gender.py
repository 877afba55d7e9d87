"""A visitor's gender from the whole track: told only where most analysed frames told it."""

import numpy as np
import pytest

from device.tracking import Tracker
from tests.test_tracking import attrs, face, run


def seen(age, min_age=3.0, p_female=0.8):
    """What the analyzer says of a face of estimated ``age`` with the manifest's ``min_age``:
    gender untold below it (``device.analyzer.Analyzer._gender``)."""
    if age < min_age:
        return attrs(age=age, gender="unknown", p=None)
    return attrs(age=age, gender="female" if p_female >= 0.5 else "male",
                 p=max(p_female, 1 - p_female))


def summary_of(frames_attrs):
    """The summary of one face seen still over one frame per entry (None: not analyzed)."""
    tracker = Tracker(min_hits=1)
    run(tracker, [[face(200, 200)] for _ in frames_attrs],
        attributes=lambda i, dets: [frames_attrs[i]])
    (s,) = tracker.flush()
    return s


def test_a_childs_track_has_no_gender_even_when_a_frame_told_one():
    # a toddler estimated 1.5-2.5 y in most frames, 4.2 y in one: the median is below 3
    s = summary_of([seen(1.5), seen(2.0), None, seen(4.2), seen(2.5)])
    assert s.n_analyzed == 4 and s.age < 3.0 and s.age_group == "0-2"
    assert s.gender == "unknown" and s.gender_prob is None
    assert s.emotion == "happy"  # the rest of the summary is as before


def test_p_female_is_averaged_over_the_frames_that_told_it_only():
    # an adult estimated below min_age in one frame: that frame says nothing about gender
    s = summary_of([seen(30, p_female=0.9), seen(2.0), seen(31, p_female=0.7),
                    seen(33, p_female=0.2)])
    assert s.gender == "female" and s.gender_prob == pytest.approx((0.9 + 0.7 + 0.2) / 3)
    s = summary_of([seen(30, p_female=0.3), seen(2.0), seen(31, p_female=0.1)])
    assert s.gender == "male" and s.gender_prob == pytest.approx(1 - 0.2)


def test_a_visitor_the_model_is_unsure_of_on_most_frames_is_unknown():
    # frames below the model's min_prob are untold like a child's (Analyzer._gender): one
    # sure frame in three does not make the visitor a woman
    unsure = attrs(age=30, gender="unknown", p=None)
    s = summary_of([seen(30, p_female=0.9), unsure, unsure])
    assert s.gender == "unknown" and s.gender_prob is None and s.age_group == "25-37"
    s = summary_of([seen(30, p_female=0.9), unsure, seen(31, p_female=0.8)])
    assert s.gender == "female" and s.gender_prob == pytest.approx(0.85)


def test_a_track_whose_frames_never_told_gender_is_unknown():
    s = summary_of([seen(0.5), seen(2.0), seen(1.5)])
    assert s.gender == "unknown" and s.gender_prob is None and s.age == pytest.approx(1.5)


def test_half_the_frames_telling_is_not_enough():
    # lower median of [2, 2, 5, 5] is 2: below min_age 3
    s = summary_of([seen(2.0), seen(5.0), seen(2.0), seen(5.0)])
    assert s.gender == "unknown" and s.age < 3.0


@pytest.mark.parametrize("seed", range(20))
def test_the_track_tells_gender_exactly_when_its_median_age_is_at_least_min_age(seed):
    """Most frames told <=> the lower median of the frames' ages >= min_age."""
    rng = np.random.default_rng(seed)
    min_age = float(rng.uniform(1, 12))
    ages = rng.uniform(0, 16, size=int(rng.integers(1, 9))).round(2)
    s = summary_of([seen(float(a), min_age) for a in ages])
    lower_median = float(np.sort(ages)[(len(ages) + 1) // 2 - 1])
    assert (s.gender != "unknown") == (lower_median >= min_age)
    assert (s.gender_prob is None) == (s.gender == "unknown")


def test_the_live_label_of_a_child_has_no_gender():
    tracker = Tracker(min_hits=1)
    tracker.update([face(50, 50)], [seen(1.0)], 0.0)
    (track,) = tracker.update([face(52, 50)], [seen(2.0)], 0.1)
    assert track.smoothed.gender == "unknown" and track.smoothed.gender_prob is None
    assert track.attributes.gender == "unknown"
