from pathlib import Path

import numpy as np
import pytest

from device.tracking import (
    FACING_THRESHOLD,
    Tracker,
    facing_camera,
    greedy_assign,
    iou,
    pair_costs,
    yaw_offset,
)
from device.types import EMOTIONS, Detection, FaceAttributes


def face(cx, cy, size=80.0, yaw=0.0, roll_deg=0.0):
    """A synthetic detection; ``yaw`` is the nose offset in half ear-distances."""
    s = size
    pts = np.array([
        [-0.2 * s, -0.1 * s], [0.2 * s, -0.1 * s],  # right eye (image left), left eye
        [yaw * 0.35 * s, 0.05 * s], [0.0, 0.25 * s],  # nose tip, mouth
        [-0.35 * s, 0.0], [0.35 * s, 0.0],  # ear tragions
    ])
    a = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    kp = pts @ rot.T + [cx, cy]
    return Detection(box=(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2), score=0.9, keypoints=kp)


def attrs(age=30.0, gender="female", p=0.9, emotion="happy", ep=0.8):
    rest = (1.0 - ep) / (len(EMOTIONS) - 1)
    emotions = {e: (ep if e == emotion else rest) for e in EMOTIONS}
    return FaceAttributes(age=age, age_group="25-37", gender=gender, gender_prob=p,
                          emotions=emotions)


# --- pure functions ---------------------------------------------------------------------------

def _one_pair_cost(ref, box, iou_threshold, max_dist, max_change):
    """The pair cost written out for one pair, as the tracker's docstring defines it."""
    def size(b):
        return max(1.0, float(np.sqrt(max(0.0, (b[2] - b[0]) * (b[3] - b[1])))))
    overlap = iou(ref, box)
    dist = float(np.hypot((box[0] + box[2] - ref[0] - ref[2]) / 2,
                          (box[1] + box[3] - ref[1] - ref[3]) / 2)) / size(ref)
    near = overlap >= iou_threshold or dist <= max_dist
    if near and abs(np.log(size(box) / size(ref))) <= max_change:
        return (1.0 - overlap) + dist
    return np.inf


def test_pair_costs_match_the_definition_pair_by_pair():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (40, 2))
    wh = rng.uniform(0, 120, (40, 2)) * (rng.random((40, 1)) > 0.1)  # some empty boxes
    boxes = np.hstack([xy, xy + wh])
    refs, dets = boxes[:12], boxes[12:]
    change = rng.uniform(0.1, 0.7, 12)
    got = pair_costs(refs, dets, 0.3, 1.0, change)
    want = np.array([[_one_pair_cost(r, d, 0.3, 1.0, c) for d in dets]
                     for r, c in zip(refs, change)])
    assert np.isfinite(want).sum() >= 5 and np.isinf(want).sum() >= 5  # both kinds occur
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # one size limit for every reference gives the same as that limit per reference
    np.testing.assert_array_equal(pair_costs(refs, dets, 0.3, 0.5, 0.2),
                                  pair_costs(refs, dets, 0.3, 0.5, np.full(12, 0.2)))


def test_frontal_face_faces_camera_and_profile_does_not():
    assert facing_camera(face(100, 100).keypoints)
    assert not facing_camera(face(100, 100, yaw=0.9).keypoints)
    assert not facing_camera(face(100, 100, yaw=-0.9).keypoints)


def test_yaw_offset_has_sign_and_scale():
    assert yaw_offset(face(0, 0, yaw=0.4).keypoints) == pytest.approx(0.4)
    assert yaw_offset(face(0, 0, yaw=-0.7).keypoints) == pytest.approx(-0.7)


def test_facing_threshold_is_respected_and_roll_does_not_matter():
    near = face(50, 50, yaw=FACING_THRESHOLD - 0.05, roll_deg=35).keypoints
    beyond = face(50, 50, yaw=FACING_THRESHOLD + 0.05, roll_deg=-35).keypoints
    assert facing_camera(near)
    assert not facing_camera(beyond)
    assert facing_camera(beyond, threshold=0.8)


def test_degenerate_keypoints_are_not_facing():
    kp = face(10, 10).keypoints.copy()
    kp[2] = np.nan
    assert not facing_camera(kp)
    assert not facing_camera(np.zeros((6, 2)))


def test_iou_and_greedy_assignment():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    cost = np.array([[0.1, 0.2], [0.15, np.inf], [np.inf, np.inf]])
    assert sorted(greedy_assign(cost)) == [(0, 0)]
    cost = np.array([[0.5, 0.2], [0.1, 0.9]])
    assert sorted(greedy_assign(cost)) == [(0, 1), (1, 0)]


# --- tracking ---------------------------------------------------------------------------------

def run(tracker, frames, fps=10.0, attributes=None):
    """Feed lists of detections; return the track ids seen per frame, in detection order."""
    ids = []
    for i, dets in enumerate(frames):
        tracks = tracker.update(dets, attributes(i, dets) if attributes else None, i / fps)
        by_box = {tr.box: tr.track_id for tr in tracks}
        ids.append([by_box.get(tuple(float(v) for v in d.box)) for d in dets])
    return ids


def test_one_walking_face_is_one_track():
    tracker = Tracker()
    ids = run(tracker, [[face(100 + 12 * i, 200)] for i in range(30)])
    assert ids[0] == [None]  # not yet confirmed (min_hits=2)
    assert {i[0] for i in ids[1:]} == {1}
    summaries = tracker.flush()
    assert len(summaries) == 1
    s = summaries[0]
    assert s.n_frames == 30 and s.n_analyzed == 0 and s.age is None and s.emotion is None
    assert s.dwell_s == pytest.approx(2.9) and s.start == 0.0 and s.end == pytest.approx(2.9)


def test_crossing_faces_keep_their_ids_through_occlusion():
    frames = []
    for i in range(40):
        a, b = face(100 + 15 * i, 200), face(700 - 15 * i, 210)
        overlap = abs(a.box[0] - b.box[0]) < 80
        frames.append([a] if overlap else [a, b])  # b hidden behind a while they overlap
    tracker = Tracker()
    ids = run(tracker, frames)
    first, last = ids[2], ids[-1]
    assert len(set(first)) == 2 and first == last
    assert len(tracker.flush()) == 2


def test_short_miss_keeps_the_track():
    frames = [[face(300, 200)] for _ in range(10)] + [[]] * 5
    frames += [[face(305, 200)] for _ in range(10)]
    tracker = Tracker(max_missed_s=1.0)
    ids = run(tracker, frames)
    assert ids[9] == ids[15] == [1]
    assert tracker.pop_finished() == []
    summaries = tracker.flush()
    assert len(summaries) == 1 and summaries[0].n_frames == 20


def test_face_leaving_and_a_new_one_entering_are_two_people():
    leaving = [[face(300, 200)] for _ in range(10)]
    gap = [[]] * 15  # 1.5 s without a face, longer than max_missed_s
    entering = [[face(310, 205)] for _ in range(10)]
    tracker = Tracker(max_missed_s=1.0)
    ids = run(tracker, leaving + gap + entering)
    assert ids[9] == [1] and ids[-1] == [2]
    ended = tracker.pop_finished()
    assert [s.track_id for s in ended] == [1]
    assert [s.track_id for s in tracker.flush()] == [2]


def test_new_face_far_away_starts_its_own_track_while_another_is_tracked():
    frames = [[face(100, 200)] for _ in range(5)]
    frames += [[face(100, 200), face(500, 200)] for _ in range(5)]
    ids = run(Tracker(), frames)
    assert ids[-1] == [1, 2]


def test_different_sized_face_at_same_place_is_not_the_same_track():
    frames = [[face(300, 200, size=60)] for _ in range(3)] + [[face(300, 200, size=200)]] * 3
    ids = run(Tracker(), frames)
    assert ids[2] == [1] and ids[-1] == [2]


def test_single_frame_false_detection_is_never_reported():
    tracker = Tracker(min_hits=2)
    assert tracker.update([face(100, 100)], None, 0.0) == []
    assert tracker.update([], None, 0.1) == []
    assert tracker.pop_finished(now=5.0) == []
    assert tracker.flush() == []


def test_pop_finished_with_now_ends_stale_tracks_without_frames():
    tracker = Tracker(max_missed_s=1.0)
    run(tracker, [[face(100, 100)]] * 3)
    assert tracker.pop_finished(now=0.9) == []
    assert len(tracker.active) == 1
    ended = tracker.pop_finished(now=2.5)
    assert len(ended) == 1 and tracker.active == []
    assert tracker.pop_finished(now=3.0) == []  # handed out once only


def test_attributes_are_smoothed_over_sparse_analysis():
    ages = [28, 31, 90, 30, 29, 33, 32]  # one wild outlier: the median ignores it

    def every_third(i, dets):
        if i % 3:
            return [None]
        k = i // 3
        g = ("female", 0.8) if k % 2 == 0 else ("male", 0.6)  # P(female) 0.8 and 0.4
        emo = "happy" if k < 5 else "sad"
        return [attrs(age=ages[k] + 0.25, gender=g[0], p=g[1], emotion=emo, ep=0.7)]

    tracker = Tracker()
    run(tracker, [[face(200, 200)] for _ in range(21)], attributes=every_third)
    (s,) = tracker.flush()
    assert s.n_frames == 21 and s.n_analyzed == 7
    assert s.age == pytest.approx(31.25)
    assert s.age_group == "25-37"
    assert s.gender == "female"
    assert s.gender_prob == pytest.approx((4 * 0.8 + 3 * 0.4) / 7)
    assert s.emotion == "happy"
    assert s.emotions["happy"] == pytest.approx((5 * 0.7 + 2 * 0.05) / 7)
    assert sum(s.emotions.values()) == pytest.approx(1.0)


def test_track_keeps_latest_attributes_and_smoothed_view():
    tracker = Tracker(min_hits=1)
    tracker.update([face(50, 50)], [attrs(age=20)], 0.0)
    (track,) = tracker.update([face(52, 50)], [None], 0.1)
    assert track.attributes.age == 20
    (track,) = tracker.update([face(54, 50)], [attrs(age=40, gender="male", p=0.9)], 0.2)
    assert track.attributes.age == 40
    assert track.smoothed.gender_prob == pytest.approx(0.5)


def test_attention_accumulates_only_while_facing():
    # 1 s facing, 1 s turned away, 1 s facing again, at 10 fps
    frames = [[face(300, 200, yaw=0.0 if (i < 10 or i >= 20) else 0.9)] for i in range(30)]
    tracker = Tracker()
    run(tracker, frames)
    (s,) = tracker.flush()
    assert s.dwell_s == pytest.approx(2.9)
    assert s.attention_s == pytest.approx(1.9, abs=0.11)  # two 0.9 s spans plus half-intervals
    assert s.attention_s < s.dwell_s


def test_never_facing_means_no_attention():
    tracker = Tracker()
    run(tracker, [[face(300, 200, yaw=-0.95)]] * 10)
    assert tracker.flush()[0].attention_s == 0.0


def test_attention_threshold_is_configurable():
    frames = [[face(300, 200, yaw=0.7)]] * 10
    strict, lax = Tracker(), Tracker(attention_yaw=0.8)
    run(strict, frames)
    run(lax, frames)
    assert strict.flush()[0].attention_s == 0.0
    assert lax.flush()[0].attention_s == pytest.approx(0.9)


def test_attributes_must_match_detections():
    with pytest.raises(ValueError, match="2 attributes for 1 detections"):
        Tracker().update([face(0, 0)], [None, None], 0.0)


def test_ids_are_not_reused_and_memory_is_bounded():
    tracker = Tracker(max_missed_s=0.2)
    seen = set()
    for n in range(5):
        for i in range(3):
            for tr in tracker.update([face(100, 100)], None, n * 10 + i * 0.1):
                seen.add(tr.track_id)
    assert seen == {1, 2, 3, 4, 5}
    tracker.pop_finished(now=1e6)
    assert tracker.active == [] and tracker._tracks == []
    # a very long track keeps fixed-size statistics
    tracker = Tracker(min_hits=1)
    for i in range(3000):
        (track,) = tracker.update([face(100, 100)], [attrs(age=i % 100)], i * 0.01)
    assert track._stats.age_count.size == 101 and track._stats.n == 3000
    assert track.smoothed.age == pytest.approx(49.0)


def test_jittery_detections_with_misses_stay_one_track():
    # A face that stands still, seen at 30 fps by a detector whose box jumps by up to 10% of its
    # size, dropping out for 0.3 s at a time: the velocity must not send the track away.
    rng = np.random.default_rng(7)
    tracker, ids = Tracker(), set()
    for i in range(150):
        if i % 30 >= 21:
            continue
        cx, cy = 500 + rng.uniform(-9, 9), 300 + rng.uniform(-9, 9)
        det = face(cx, cy, size=90 * rng.uniform(0.93, 1.07))
        ids |= {tr.track_id for tr in tracker.update([det], None, i / 30)}
    assert ids == {1} and len(tracker.flush()) == 1


def test_another_face_appearing_nearby_at_another_scale_is_a_new_track():
    # A video cut (or someone stepping in as another leaves): the new face overlaps the old box
    # but is a third smaller from one frame to the next, which no face does.
    frames = [[face(300, 100, size=97)] for _ in range(10)] + [[face(340, 87, size=65)]] * 10
    ids = run(Tracker(), frames, fps=30)
    assert ids[9] == [1] and ids[-1] == [2]


# --- a real clip ----------------------------------------------------------------------------------

CLIP = Path(__file__).parent / "data" / "stage_and_audience_faces.npz"
CUTS = (20, 82, 211)  # first frames of the clip's new shots (colour histogram jumps)
PEOPLE_PER_SHOT = (1, 2, 1, 4)  # faces the detector finds in each shot, counted by eye


def clip_frames(step=1):
    """Detections in the public-domain clip ``stage_and_audience.mp4`` (White House, 640x360,
    29.97 fps, 275 frames), as BlazeFace full-range found them (boxes, scores, keypoints only;
    recorded with ``FaceDetector(models/src/face_detection_full_range.tflite).detect``)."""
    d = np.load(CLIP)
    for n in range(0, int(d["n_frames"]), step):
        rows = np.flatnonzero(d["frame"] == n)
        dets = [Detection(tuple(float(v) for v in d["box"][r]), float(d["score"][r]),
                          d["keypoints"][r]) for r in rows]
        yield n, n / float(d["fps"]), dets


@pytest.mark.parametrize("step", [1, 3])  # full rate and a Pi-like 10 fps
def test_real_clip_counts_each_person_once_per_shot(step):
    tracker = Tracker()
    for _, t, dets in clip_frames(step):
        tracker.update(dets, None, t)
    summaries = tracker.flush()
    fps = 29.97
    cut_times = [0.0, *(c / fps for c in CUTS), 1e9]
    per_shot = [0] * len(PEOPLE_PER_SHOT)
    for s in summaries:
        shot = next(k for k in range(len(per_shot)) if cut_times[k] <= s.start < cut_times[k + 1])
        assert s.end < cut_times[shot + 1], f"track {s.track_id} runs across a cut"
        per_shot[shot] += 1
    assert tuple(per_shot) == PEOPLE_PER_SHOT
