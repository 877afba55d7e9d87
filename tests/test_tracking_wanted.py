"""Tracker.wanted: which faces to analyse when each visitor needs answers only every so often."""

import numpy as np

from device.tracking import Tracker
from tests.test_tracking import attrs, face


def test_wanted_asks_for_new_faces_and_for_tracks_due_again():
    tracker = Tracker()
    a, b = face(100, 100), face(400, 100)
    assert tracker.wanted([a, b], 0.0, 0.2) == [True, True]  # nobody is tracked yet
    tracker.update([a, b], [attrs(), None], 0.0)  # b detected but not analysed
    # a was analysed at 0.0: not again before 0.2 s; b never was; c is new
    c = face(250, 300)
    assert tracker.wanted([a, b, c], 0.1, 0.2) == [False, True, True]
    assert tracker.wanted([a, b, c], 0.2, 0.2) == [True, True, True]
    assert tracker.wanted([a, b, c], 0.1, 0.0) == [True, True, True]  # 0: every face
    assert tracker.wanted([], 0.1, 0.2) == []


def test_wanted_pairs_as_update_does_and_changes_nothing():
    rng = np.random.default_rng(5)
    tracker, twin = Tracker(), Tracker()
    for i in range(60):
        t = i / 30
        dets = [face(100 + 3 * i + rng.uniform(-2, 2), 120), face(400 - 2 * i, 200, size=60)]
        dets = dets[: 1 + (i % 7 != 3)]  # the second face missed now and then
        want = tracker.wanted(dets, t, 0.1)
        analysed = [attrs(age=20 + i) if w else None for w in want]
        seen = tracker.update(dets, analysed, t)
        same = twin.update(dets, analysed, t)
        assert [tr.track_id for tr in seen] == [tr.track_id for tr in same]
        for tr in seen:  # every face seen now was analysed less than 0.1 s ago
            assert tr.last_analyzed is not None and t - tr.last_analyzed < 0.1 + 1e-9
    a, b = tracker.flush(), twin.flush()
    assert [(s.track_id, s.n_analyzed, s.age) for s in a] == [(s.track_id, s.n_analyzed, s.age)
                                                            for s in b]
    assert 0 < a[0].n_analyzed < a[0].n_frames  # fewer analyses than sightings, but some


def test_wanted_does_not_pair_with_a_track_that_has_expired():
    tracker = Tracker(max_missed_s=0.5)
    tracker.update([face(100, 100)], [attrs()], 0.0)
    assert tracker.wanted([face(100, 100)], 0.4, 1.0) == [False]
    assert tracker.wanted([face(100, 100)], 0.6, 1.0) == [True]  # that visitor has left


def test_update_takes_the_pairing_wanted_made_for_the_same_frame(monkeypatch):
    tracker = Tracker()
    tracker.update([face(100, 100), face(400, 100)], None, 0.0)
    calls = []
    real = tracker._cost
    monkeypatch.setattr(tracker, "_cost", lambda *a: calls.append(1) or real(*a))
    dets = [face(104, 100), face(396, 100)]
    tracker.wanted(dets, 0.1, 0.2)
    ids = [tr.track_id for tr in tracker.update(dets, None, 0.1)]
    assert ids == [1, 2] and len(calls) == 1  # one cost matrix for the frame, not two
    tracker.update([face(108, 100)], None, 0.2)  # no plan for these: computed afresh
    assert len(calls) == 2
