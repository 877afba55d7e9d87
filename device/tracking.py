"""Following faces from frame to frame, so each person is counted once.

A ``Tracker`` matches each frame's detections to its tracks (IoU with a constant-velocity
prediction, plus centre distance for fast or half-hidden faces; greedy, cheapest pair first),
keeps tracks through short misses and hands out a ``TrackSummary`` when one ends.

A visitor's gender comes from the whole track: P(female) is averaged over the analyzed frames
whose gender was told, and the track's gender is "unknown" unless most of its analyzed frames told
it. The analyzer leaves gender untold on faces that look younger than the model's ``min_age`` and
on faces whose likelier gender is less probable than the model's ``min_prob``, so a visitor who
looks like a child, or whom the model is unsure of on most frames, stays "unknown", without the
tracker having to know the model.

Privacy: a track holds only its box, a velocity, running sums and a fixed-size age histogram; no
image, crop, embedding or identity. All of it is dropped once the track's summary is handed out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.manifest import DEFAULT_AGE_GROUPS, age_group, parse_age_groups
from device.types import EMOTIONS, GENDERS, UNKNOWN, Detection, FaceAttributes

# |nose offset| / half the ear-to-ear distance below which a face counts as turned to the camera.
# With the nose tip about 1.3x as far in front of the ear axis as an ear is from the midline,
# offset ~= 1.3 * tan(yaw), so 0.5 is a head yaw of roughly 20 degrees either way.
FACING_THRESHOLD = 0.5
AGE_BINS = 101  # whole years 0..100; older ages go into the last bin
# Sizes change smoothly: |log(size ratio)| may be jitter (0.2) plus 1.0/s (someone walking up),
# never over 2x, so a track does not jump to another face nearby at another scale (video cuts).
SIZE_JITTER, SIZE_RATE, SIZE_MAX = 0.2, 1.0, np.log(2.0)
VELOCITY_TAU_S = 0.3  # time constant of the velocity average
# ``Tracker.wanted``: a face is due again this much before its interval is over (cameras'
# timestamps jitter by milliseconds; without it a 0.1 s interval at 30 fps could take 4 frames)
DUE_SLACK_S = 0.005


def yaw_offset(keypoints) -> float:
    """How far the nose sits from the middle of the face, along the ear-to-ear axis.

    Args:
        keypoints: 6 x 2 detector keypoints (``device.types.KEYPOINT_NAMES`` order).
    Returns:
        0 for a frontal face, about +-1 when the nose is over an ear (profile); the sign tells
        the side. Uses the eyes when the ears are closer together than the eyes (unreliable
        tragions). ``nan`` when the keypoints are degenerate or not finite.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(6, 2).tolist()  # plain floats: 6 points
    if not all(math.isfinite(v) for point in kp for v in point):
        return float("nan")
    (rx, ry), (lx, ly), (nx, ny) = kp[0], kp[1], kp[2]
    (ax, ay), (bx, by) = kp[4], kp[5]
    if math.hypot(bx - ax, by - ay) < math.hypot(lx - rx, ly - ry):
        (ax, ay), (bx, by) = (rx, ry), (lx, ly)  # the eyes span the face better than the ears
    ux, uy = bx - ax, by - ay
    half_sq = (ux * ux + uy * uy) / 2.0  # |axis| * (|axis| / 2): projection normalised to half
    if half_sq <= 1e-9:
        return float("nan")
    return ((nx - (ax + bx) / 2.0) * ux + (ny - (ay + by) / 2.0) * uy) / half_sq


def facing_camera(keypoints, threshold: float = FACING_THRESHOLD) -> bool:
    """True when the face is turned to the camera: ``|yaw_offset| <= threshold`` (about 20 deg)."""
    offset = yaw_offset(keypoints)
    return bool(np.isfinite(offset) and abs(offset) <= threshold)


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def greedy_assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, col) taken cheapest first; ``inf`` entries are never paired."""
    pairs, rows, cols = [], set(), set()
    for r, c in zip(*np.unravel_index(np.argsort(cost, axis=None, kind="stable"), cost.shape)):
        if not np.isfinite(cost[r, c]):
            break
        if r not in rows and c not in cols:
            pairs.append((int(r), int(c)))
            rows.add(r), cols.add(c)
    return pairs


@dataclass(frozen=True)
class TrackSummary:
    """What is left of a track once it ended; the attribute fields are None if never analyzed."""

    track_id: int
    start: float  # first seen (frame timestamp)
    end: float  # last seen
    dwell_s: float  # end - start
    attention_s: float  # time spent facing the camera
    n_frames: int  # frames the face was detected in
    n_analyzed: int  # of those, frames with attributes
    age: float | None = None  # median over analyzed frames
    age_group: str | None = None
    gender: str | None = None  # "male" | "female" | "unknown" (see the module docstring)
    gender_prob: float | None = None  # averaged probability of ``gender``; None when "unknown"
    emotions: dict[str, float] | None = None  # averaged probabilities

    @property
    def emotion(self) -> str | None:  # the dominant averaged emotion
        return max(self.emotions, key=self.emotions.get) if self.emotions else None


class _Smoother:
    """Bounded per-track attribute statistics: running sums plus a whole-year age histogram."""

    def __init__(self):
        self.n, self.emotions = 0, np.zeros(len(EMOTIONS))
        self.told, self.female = 0, 0.0  # frames whose gender was told, and their P(female) sum
        self.age_count, self.age_sum = np.zeros(AGE_BINS, dtype=np.int64), np.zeros(AGE_BINS)

    def add(self, attrs: FaceAttributes) -> None:
        self.n += 1
        if attrs.gender in GENDERS and attrs.gender_prob is not None:
            p = float(attrs.gender_prob)
            self.told += 1
            self.female += p if attrs.gender == "female" else 1.0 - p
        self.emotions += [float(attrs.emotions.get(e, 0.0)) for e in EMOTIONS]
        i = int(np.clip(np.floor(attrs.age), 0, AGE_BINS - 1))
        self.age_count[i], self.age_sum[i] = self.age_count[i] + 1, self.age_sum[i] + attrs.age

    def median_age(self) -> float:
        # the lower median's bin, reported as the mean of the ages that fell into it
        i = int(np.searchsorted(np.cumsum(self.age_count), (self.n + 1) // 2))
        return float(self.age_sum[i] / self.age_count[i])

    def gender(self) -> tuple[str, float | None]:
        """(gender, its averaged probability); ("unknown", None) unless most frames told it."""
        if 2 * self.told <= self.n:
            return UNKNOWN, None
        female = self.female / self.told
        return ("female", female) if female >= 0.5 else ("male", 1.0 - female)

    def result(self, groups) -> dict:
        if self.n == 0:
            return {}
        age = self.median_age()
        gender, prob = self.gender()
        return {"age": age, "age_group": age_group(age, groups),
                "gender": gender, "gender_prob": prob,
                "emotions": {e: float(v) for e, v in zip(EMOTIONS, self.emotions / self.n)}}


class Track:
    """A face followed over frames. Read-only for callers; the ``Tracker`` updates it.

    Attributes:
        track_id: stable int for the life of the track (never reused within a run).
        box: (x1, y1, x2, y2) of the latest matched detection.
        attributes: the latest analyzed ``FaceAttributes`` (None until the first analysis).
        facing: whether the face was turned to the camera at its latest detection.
        first_seen, last_seen: timestamps of the first and latest matched detection.
        last_analyzed: timestamp of the latest frame with attributes (None: never analyzed).
        hits: number of frames the face was detected in.
    """

    def __init__(self, track_id: int, det: Detection, attrs, t: float, groups,
                 yaw_threshold: float = FACING_THRESHOLD):
        self.track_id = track_id
        self.box = tuple(float(v) for v in det.box)
        self.velocity = np.zeros(2)  # box centre, pixels per second
        self.attributes, self.facing, self._yaw_threshold = None, False, yaw_threshold
        self.first_seen = self.last_seen = t
        self.last_analyzed: float | None = None
        self.hits, self.n_analyzed, self.attention_s = 0, 0, 0.0
        self._stats, self._groups = _Smoother(), groups
        self._observe(det, attrs, t)

    @property
    def dwell_s(self) -> float:
        return self.last_seen - self.first_seen

    @property
    def smoothed(self) -> FaceAttributes | None:
        """Attributes averaged over the track so far (steadier than ``attributes`` for labels)."""
        r = self._stats.result(self._groups)
        return FaceAttributes(**r) if r else None

    def predicted_box(self, t: float) -> tuple[float, float, float, float]:
        """The box moved on at constant velocity to time ``t``."""
        dx, dy = self.velocity * max(0.0, t - self.last_seen)
        return tuple(float(v + d) for v, d in zip(self.box, (dx, dy, dx, dy)))

    def _observe(self, det: Detection, attrs, t: float) -> None:
        facing = facing_camera(det.keypoints, self._yaw_threshold)
        dt = t - self.last_seen
        if self.hits and dt > 0:
            v = (_centre(det.box) - _centre(self.box)) / dt
            # time-constant average: frame-to-frame box jitter would make a wild velocity
            a = 1.0 if self.hits == 1 else min(1.0, dt / VELOCITY_TAU_S)
            self.velocity = (1.0 - a) * self.velocity + a * v
            # trapezoid rule: half an interval counts when the face faced the camera at one end
            self.attention_s += dt * (int(self.facing) + int(facing)) / 2.0
        self.box, self.facing = tuple(float(v) for v in det.box), facing
        self.last_seen, self.hits = max(self.last_seen, t), self.hits + 1
        if attrs is not None:
            self.attributes, self.n_analyzed = attrs, self.n_analyzed + 1
            self.last_analyzed = t
            self._stats.add(attrs)

    def summary(self) -> TrackSummary:
        """This track's summary as of now."""
        return TrackSummary(
            track_id=self.track_id, start=self.first_seen, end=self.last_seen,
            dwell_s=self.dwell_s, attention_s=self.attention_s, n_frames=self.hits,
            n_analyzed=self.n_analyzed, **self._stats.result(self._groups))


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def pair_costs(refs: np.ndarray, boxes: np.ndarray, iou_threshold: float, max_dist: float,
               max_change) -> np.ndarray:
    """Cost of continuing each reference box (rows) with each detection box (columns).

    A pair may match when the boxes overlap by ``iou_threshold`` (IoU) or their centres are within
    ``max_dist`` reference sizes, and their sizes differ by at most ``max_change`` in log ratio
    (``max_dist`` and ``max_change`` each a number, or one per reference); its cost is then
    (1 - IoU) + centre distance in reference sizes, else ``inf``. Sizes are the geometric mean of
    width and height, at least a pixel.
    """
    r, b = refs[:, None, :], boxes[None, :, :]
    inter = (np.maximum(0.0, np.minimum(r[..., 2], b[..., 2]) - np.maximum(r[..., 0], b[..., 0]))
             * np.maximum(0.0, np.minimum(r[..., 3], b[..., 3]) - np.maximum(r[..., 1], b[..., 1])))
    area_r = (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_r + area_b - inter
    overlap = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    size_r = np.maximum(1.0, np.sqrt(np.maximum(0.0, area_r)))
    size_b = np.maximum(1.0, np.sqrt(np.maximum(0.0, area_b)))
    dist = np.hypot((b[..., 0] + b[..., 2] - r[..., 0] - r[..., 2]) / 2.0,
                    (b[..., 1] + b[..., 3] - r[..., 1] - r[..., 3]) / 2.0) / size_r

    def per_ref(value):  # a number, or one per reference (a column against the detections)
        value = np.asarray(value, dtype=np.float64)
        return value[:, None] if value.ndim else value

    near = (overlap >= iou_threshold) | (dist <= per_ref(max_dist))
    sizes_agree = np.abs(np.log(size_b / size_r)) <= per_ref(max_change)
    return np.where(near & sizes_agree, (1.0 - overlap) + dist, np.inf)


class Tracker:
    """Multi-face tracker with summaries of ended tracks.

    Args:
        iou_threshold: a detection may continue a track when its IoU with the track's predicted
            box is at least this...
        max_center_dist: ...or when its centre is within this many box sizes of the predicted
            centre (fast movement, partly hidden faces). Sizes must agree (``SIZE_*``).
        max_missed_s: a track ends when not detected for longer than this.
        min_hits: frames a track needs before it is reported; shorter tracks end silently
            (they are mostly false detections).
        attention_yaw: ``facing_camera`` threshold (see ``FACING_THRESHOLD``).
        age_groups: labels used for a summary's ``age_group`` (from its median age).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed_s: float = 1.0, min_hits: int = 2,
                 attention_yaw: float = FACING_THRESHOLD, max_center_dist: float = 1.0,
                 age_groups=DEFAULT_AGE_GROUPS):
        self.iou_threshold, self.max_center_dist = iou_threshold, max_center_dist
        self.max_missed_s, self.min_hits = max_missed_s, min_hits
        self.attention_yaw, self._groups = attention_yaw, parse_age_groups(age_groups)
        self._tracks, self._finished = [], []  # list[Track], list[TrackSummary]
        self._planned = None  # ``wanted``'s pairing, for ``update`` on the same frame
        self._next_id, self._now = 1, float("-inf")

    def update(self, detections, attributes=None, timestamp: float = 0.0) -> list[Track]:
        """Feed one frame.

        Args:
            detections: this frame's ``Detection`` list.
            attributes: a list as long as ``detections`` with ``FaceAttributes`` or None for faces
                not analyzed this frame; None means nothing was analyzed.
            timestamp: the frame's time in seconds (non-decreasing).
        Returns:
            confirmed tracks (``hits >= min_hits``) detected in this frame.
        """
        detections = list(detections)
        attributes = [None] * len(detections) if attributes is None else list(attributes)
        if len(attributes) != len(detections):
            raise ValueError(f"{len(attributes)} attributes for {len(detections)} detections")
        t = float(timestamp)
        self._expire(t)
        pairs = self._pairs(detections, t, self._tracks)
        for ti, di in pairs:
            self._tracks[ti]._observe(detections[di], attributes[di], t)
        new = sorted(set(range(len(detections))) - {di for _, di in pairs})
        born = [Track(self._next_id + k, detections[di], attributes[di], t, self._groups,
                      self.attention_yaw) for k, di in enumerate(new)]
        self._next_id += len(born)
        self._tracks += born
        seen = [self._tracks[ti] for ti, _ in pairs] + born
        return sorted((tr for tr in seen if tr.hits >= self.min_hits), key=lambda tr: tr.track_id)

    def wanted(self, detections, timestamp: float, interval_s: float) -> list[bool]:
        """Which of a frame's detections to analyze when each visitor needs attributes only
        every ``interval_s`` seconds.

        A detection that will start a new track is wanted, and so is one that will continue a
        track never analyzed or last analyzed ``interval_s`` (less ``DUE_SLACK_S``) or more
        before ``timestamp``. The pairing is the one :meth:`update` makes with the same
        detections and timestamp; nothing is changed. ``interval_s`` 0 wants every detection.
        """
        detections = list(detections)
        if interval_s <= 0:
            return [True] * len(detections)
        t = float(timestamp)
        alive = self._alive(max(self._now, t))
        out = [True] * len(detections)
        for ti, di in self._pairs(detections, t, alive, plan=True):
            last = alive[ti].last_analyzed
            out[di] = last is None or t - last >= interval_s - DUE_SLACK_S
        return out

    def _pairs(self, detections, t: float, tracks, plan: bool = False) -> list[tuple[int, int]]:
        """(track index, detection index) pairs, cheapest first. ``plan``: keep them for the
        next call on the same detections, time and tracks (``wanted`` then ``update`` on one
        frame pair once)."""
        key = (t, tuple(map(id, detections)), tuple(map(id, tracks)))
        planned, self._planned = self._planned, None
        if planned is not None and planned[0] == key:
            return planned[1]
        pairs = greedy_assign(self._cost(detections, t, tracks))
        if plan:
            self._planned = (key, pairs)
        return pairs

    def _cost(self, detections, t: float, tracks=None) -> np.ndarray:
        """Tracks x detections: the cheaper of the pair costs against each track's predicted box
        and (tighter, in case detector jitter spoilt the velocity) its last box. ``tracks``:
        these instead of the live ones."""
        tracks = self._tracks if tracks is None else tracks
        if not tracks or not detections:
            return np.full((len(tracks), len(detections)), np.inf)
        boxes = np.array([d.box for d in detections], dtype=np.float64)
        gap = np.array([t - tr.last_seen for tr in tracks])
        change = np.minimum(SIZE_MAX, SIZE_JITTER + SIZE_RATE * gap)
        predicted = np.array([tr.predicted_box(t) for tr in tracks], dtype=np.float64)
        last = np.array([tr.box for tr in tracks], dtype=np.float64)
        n = len(tracks)  # both references of every track in one call: rows n.. are the last boxes
        cost = pair_costs(np.concatenate([predicted, last]), boxes, self.iou_threshold,
                          np.repeat([self.max_center_dist, self.max_center_dist / 2], n),
                          np.concatenate([change, np.full(n, SIZE_JITTER)]))
        return np.minimum(cost[:n], cost[n:])

    def _alive(self, now: float) -> list[Track]:
        """The tracks not missed for longer than ``max_missed_s`` at ``now``."""
        return [tr for tr in self._tracks if now - tr.last_seen <= self.max_missed_s]

    def _expire(self, now: float) -> None:
        self._now = max(self._now, now)
        alive = self._alive(self._now)
        ended = [tr for tr in self._tracks if tr not in alive]
        self._tracks = alive
        self._finish(ended)

    def _finish(self, tracks) -> None:  # unconfirmed tracks end without a summary
        self._finished += [tr.summary() for tr in tracks if tr.hits >= self.min_hits]

    @property
    def active(self) -> list[Track]:
        """Confirmed tracks still alive, whether or not detected in the latest frame."""
        return [tr for tr in self._tracks if tr.hits >= self.min_hits]

    def pop_finished(self, now: float | None = None) -> list[TrackSummary]:
        """Summaries of tracks that ended since the last call (and forget them).

        Args:
            now: also end tracks not seen for ``max_missed_s`` before this time (use it when no
                frames arrive, e.g. the camera stalled); None: only what ``update`` ended.
        """
        if now is not None:
            self._expire(float(now))
        out, self._finished = self._finished, []
        return sorted(out, key=lambda s: s.end)

    def flush(self) -> list[TrackSummary]:
        """End every track now (e.g. at shutdown) and return all pending summaries."""
        self._finish(self._tracks)
        self._tracks = []  # nothing of an ended track is kept
        return self.pop_finished()
