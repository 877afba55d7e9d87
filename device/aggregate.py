"""One time window's audience figures, built from the summaries of ended tracks.

Only counts are kept: ``add`` folds a ``TrackSummary`` into the open window's counters and the
summary itself is not stored, so nothing per person outlives the window.

Window boundaries: a track counts in the window that is open when the tracker reports it ended,
that is when ``add`` is called (up to ``max_missed_s`` after its last sighting). A track that
spans a boundary, or is still active when a window closes, is therefore counted once, in a later
window, with its whole dwell and attention time.

Output of ``close`` and ``current`` (counts are over visitors unless said otherwise)::

    {"window_start": t0, "window_end": t1,
     "impressions": n,            # tracks seen (any dwell)
     "visitors": n,               # tracks with dwell_s >= min_dwell_s
     "watchers": n,               # visitors with attention_s > 0
     "dwell_s_mean": s | None,    # over visitors; None without visitors
     "attention_s_mean": s | None,
     "gender": {"female": n, "male": n, "unknown": n},
     "age_groups": {"0-2": n, ..., "60+": n, "unknown": n},
     "emotions": {"angry": n, ..., "neutral": n, "unknown": n},   # dominant emotion
     "suppressed": bool}

With fewer than ``k_anonymity`` visitors the window is ``suppressed``: the three breakdowns
(gender, age_groups, emotions) are left out, the plain counts stay. A gender the track did not
tell (a child younger than the model's ``min_age``, or a face the model was unsure of on most
frames, see ``device.tracking``), a gender below
``min_gender_prob``, a dominant emotion below ``min_emotion_prob`` and a visitor never analyzed
count as "unknown".
"""

from __future__ import annotations

from device.manifest import DEFAULT_AGE_GROUPS, parse_age_groups
from device.types import EMOTIONS, GENDERS

BREAKDOWNS = ("gender", "age_groups", "emotions")


def gender_label(summary, min_prob: float) -> str:
    """The summary's gender, or "unknown" when missing, not told or below ``min_prob``."""
    if summary.gender not in GENDERS or summary.gender_prob is None:
        return "unknown"
    return summary.gender if summary.gender_prob >= min_prob else "unknown"


def emotion_label(summary, min_prob: float) -> str:
    """The dominant averaged emotion, or "unknown" when missing or below ``min_prob``."""
    emotions = summary.emotions or {}
    known = {e: emotions[e] for e in EMOTIONS if e in emotions}
    if not known:
        return "unknown"
    best = max(known, key=known.get)
    return best if known[best] >= min_prob else "unknown"


def age_label(summary, groups: list[str]) -> str:
    """The summary's age group when it is one of ``groups``, else "unknown"."""
    return summary.age_group if summary.age_group in groups else "unknown"


class WindowAggregator:
    """Counts for the open window; ``close`` returns them and starts a new window.

    When a window ends is not its business: ``device.windows.Windows`` keeps the one clock.

    Args:
        min_dwell_s: dwell a track needs to be a visitor (passers-by are only impressions).
        k_anonymity: fewer visitors than this suppress the breakdowns (0 or 1: never).
        min_gender_prob, min_emotion_prob: confidence below which a label counts as unknown.
        age_groups: the age group labels reported (all of them, zeros included).
    """

    def __init__(self, min_dwell_s: float = 1.0, k_anonymity: int = 3,
                 min_gender_prob: float = 0.7, min_emotion_prob: float = 0.4,
                 age_groups=DEFAULT_AGE_GROUPS):
        self.min_dwell_s, self.k_anonymity = min_dwell_s, k_anonymity
        self.min_gender_prob, self.min_emotion_prob = min_gender_prob, min_emotion_prob
        self.age_groups = [label for label, _, _ in parse_age_groups(age_groups)]
        self.window_start = None
        self._reset()

    def _reset(self) -> None:
        self._impressions = self._visitors = self._watchers = 0
        self._dwell = self._attention = 0.0
        self._gender = dict.fromkeys(("female", "male", "unknown"), 0)
        self._ages = dict.fromkeys([*self.age_groups, "unknown"], 0)
        self._emotions = dict.fromkeys([*EMOTIONS, "unknown"], 0)

    def add(self, summary) -> None:
        """Count one ended track (a ``device.tracking.TrackSummary``) in the open window."""
        self._impressions += 1
        if summary.dwell_s < self.min_dwell_s:
            return
        self._visitors += 1
        self._watchers += summary.attention_s > 0
        self._dwell += summary.dwell_s
        self._attention += summary.attention_s
        self._gender[gender_label(summary, self.min_gender_prob)] += 1
        self._ages[age_label(summary, self.age_groups)] += 1
        self._emotions[emotion_label(summary, self.min_emotion_prob)] += 1

    def current(self, suppress: bool = True) -> dict:
        """A snapshot of the open window (for the display); nothing is reset.

        Args:
            suppress: apply k-anonymity as ``close`` does; False keeps the breakdowns but still
                reports whether ``close`` would suppress them.
        """
        return self._result(self.window_start, None, suppress)

    def close(self, window_start: float, window_end: float) -> dict:
        """The window's aggregates (see the module docstring); the counters start again."""
        result = self._result(window_start, window_end, True)
        self._reset()
        self.window_start = window_end
        return result

    def _result(self, start, end, suppress: bool) -> dict:
        v = self._visitors
        hidden = v < self.k_anonymity
        out = {
            "window_start": start, "window_end": end,
            "impressions": self._impressions, "visitors": v, "watchers": self._watchers,
            "dwell_s_mean": round(self._dwell / v, 2) if v else None,
            "attention_s_mean": round(self._attention / v, 2) if v else None,
            "gender": dict(self._gender), "age_groups": dict(self._ages),
            "emotions": dict(self._emotions), "suppressed": hidden,
        }
        if hidden and suppress:
            for key in BREAKDOWNS:
                del out[key]
        return out
