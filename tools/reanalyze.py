"""What analysing each tracked face less often costs in answers and saves in work.

    python -m tools.reanalyze --source CLIP [--source CLIP ...] [--intervals 0,0.1,0.2,0.5]
        [--models DIR] [--min-dwell 1.0] [--json OUT]

Each clip runs through the appliance's vision path (detect, align, analyze, track) once per
interval of ``[models] reanalyze_s``: a tracked face is analysed again only that many seconds
after its last analysis, a new face at once (``device.tracking.Tracker.wanted``). Tracking uses
only the detections, so every run follows the same visitors with the same track ids; each
visitor's answers (the track summary the aggregates are made of) are compared with interval 0's,
which analyses every face on every frame:

* ``analyses_per_frame``: faces analysed per frame, the attribute model's share of the work
  (each analysis is two interpreter calls with the mirror image); the same on every machine;
* for the visitors (dwell of ``--min-dwell`` seconds or more): the share whose aggregate labels
  stay the same (gender and dominant emotion with the aggregator's probability floors, age
  group), and the median and largest change of the median age;
* the attribute time saved is the drop in analyses; ``tools.bench --reanalyze-s`` times it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

MIN_DWELL_S = 1.0


def run_clip(frames, models: str | None, interval: float) -> tuple[dict, int]:
    """Track summaries by track id, and the faces analysed, for one pass over ``frames``."""
    from device.pipeline import VisionPipeline
    from device.tracking import Tracker

    pipeline, tracker = VisionPipeline(models, reanalyze_s=interval), Tracker()
    summaries, analysed = [], 0
    for frame in frames:
        faces = pipeline.process(frame, tracker=tracker)
        analysed += sum(a is not None for _, a in faces)
        tracker.update([d for d, _ in faces], [a for _, a in faces], frame.timestamp)
        summaries += tracker.pop_finished(frame.timestamp)
    summaries += tracker.flush()
    return {s.track_id: s for s in summaries}, analysed


def compare(base: dict, other: dict, min_dwell: float, gender_prob: float,
            emotion_prob: float) -> dict:
    """How the visitors' aggregate answers in ``other`` differ from ``base`` (pure)."""
    from device.aggregate import emotion_label, gender_label

    ids = sorted(i for i, s in base.items() if s.dwell_s >= min_dwell)
    if set(ids) - set(other):
        raise ValueError("the runs followed different visitors: tracking must not depend on "
                         "the analysis")
    same = {"gender": 0, "emotion": 0, "age_group": 0}
    age_moves = []
    for i in ids:
        a, b = base[i], other[i]
        same["gender"] += gender_label(a, gender_prob) == gender_label(b, gender_prob)
        same["emotion"] += emotion_label(a, emotion_prob) == emotion_label(b, emotion_prob)
        same["age_group"] += a.age_group == b.age_group
        if a.age is not None and b.age is not None:
            age_moves.append(abs(a.age - b.age))
    n = len(ids)
    return {"visitors": n,
            **{f"same_{k}": (round(v / n, 4) if n else None) for k, v in same.items()},
            "age_change_median_y": round(float(np.median(age_moves)), 2) if age_moves else None,
            "age_change_max_y": round(float(np.max(age_moves)), 2) if age_moves else None}


def main(argv: list[str] | None = None) -> int:
    from device.config import AggregateConfig
    from tools.bench import load_frames

    p = argparse.ArgumentParser(prog="python -m tools.reanalyze",
                                description=__doc__.split("\n")[0])
    p.add_argument("--source", action="append", required=True, help="video (repeatable)")
    p.add_argument("--intervals", default="0,0.1,0.2,0.5",
                   help="comma-separated reanalyze_s values; the first is the reference")
    p.add_argument("--models", metavar="DIR", help="models folder (default: installed)")
    p.add_argument("--min-dwell", type=float, default=MIN_DWELL_S,
                   help="visitors: tracks of at least this many seconds (the aggregator's)")
    p.add_argument("--json", metavar="OUT", help="also write the report here")
    args = p.parse_args(argv)
    try:
        intervals = [float(v) for v in args.intervals.split(",")]
    except ValueError:
        p.error(f"--intervals must be numbers separated by commas, got {args.intervals!r}")
    if not intervals or any(not v >= 0 for v in intervals):
        p.error("--intervals must be seconds >= 0")
    floors = AggregateConfig()
    report = {"intervals": intervals, "min_dwell_s": args.min_dwell, "clips": {}}
    for source in args.source:
        frames = load_frames(source)
        runs = [run_clip(frames, args.models, v) for v in intervals]
        rows = []
        for v, (summaries, analysed) in zip(intervals, runs):
            row = {"reanalyze_s": v, "analyses_per_frame": round(analysed / len(frames), 3),
                   "analyses_vs_first": round(analysed / max(runs[0][1], 1), 3)}
            row |= compare(runs[0][0], summaries, args.min_dwell, floors.min_gender_prob,
                           floors.min_emotion_prob)
            rows.append(row)
        report["clips"][source] = {"frames": len(frames), "rows": rows}
        print(f"{source} ({len(frames)} frames)")
        print(f"{'reanalyze_s':>11} {'analyses/frame':>14} {'share':>6} {'visitors':>8} "
              f"{'gender':>7} {'emotion':>7} {'age grp':>7} {'age med':>7} {'age max':>7}")
        for r in rows:
            pct = {k: f"{100 * r[k]:.1f}%" if r[k] is not None else "-"
                   for k in ("same_gender", "same_emotion", "same_age_group")}
            print(f"{r['reanalyze_s']:>11} {r['analyses_per_frame']:>14} "
                  f"{r['analyses_vs_first']:>6} {r['visitors']:>8} {pct['same_gender']:>7} "
                  f"{pct['same_emotion']:>7} {pct['same_age_group']:>7} "
                  f"{str(r['age_change_median_y']):>7} {str(r['age_change_max_y']):>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
