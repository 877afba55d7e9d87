"""``kiosk analyze PATH...``: every face in images or videos, as a table or JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from device.errors import KioskError
from device.sources import open_source


def face_record(path: str, frame, detection, attrs) -> dict:
    """One face as a flat JSON-able dict."""
    rec = {"file": path, "frame": frame.index, "t": round(frame.timestamp, 3),
           "box": [round(float(v), 1) for v in detection.box], "score": round(detection.score, 3)}
    if attrs is not None:
        rec.update(attrs.to_dict())
    return rec


def damage(source) -> str:
    """How much of a source could not be read, in words."""
    if getattr(source, "frame_count", None):
        read = source.frame_count - source.bad_frames
        return (f"damaged: {source.bad_frames} of {source.frame_count} frames could not be "
                f"decoded and were skipped ({read} read)")
    return f"{source.bad_frames} unreadable images skipped"


def format_row(rec: dict) -> str:
    """One table row; a gender not told (a face younger than the model's min_age, or one the
    model is unsure of) reads "?" with "-" for its probability."""
    box = "{:.0f},{:.0f},{:.0f},{:.0f}".format(*rec["box"])
    if "age" in rec:
        told = rec.get("gender_prob") is not None
        gender = rec["gender"] if told else "?"
        prob = f"{rec['gender_prob']:.2f}" if told else "   -"
        attrs = (f"{rec['age']:5.1f}  {rec['age_group']:>6}  {gender:<6} "
                 f"{prob}  {rec['emotion']:<8} "
                 f"{rec['emotions'][rec['emotion']]:.2f}")
    else:
        attrs = "    -       -  -         -  -           -"
    name = Path(rec["file"]).name[:28]
    return f"{name:<28} {rec['frame']:>5} {box:>19} {rec['score']:.2f}  {attrs}"


HEADER = (f"{'file':<28} {'frame':>5} {'box x1,y1,x2,y2':>19} {'det':>4}  {'age':>5}  "
          f"{'group':>6}  "
          f"{'gender':<6} {'p':>4}  {'emotion':<8} {'p':>4}")


def run_analyze(paths: list[str], as_json: bool = False, every: int = 1, threads: int = 1,
                models_dir: str | None = None, out=None, err=None) -> int:
    """Analyze every face in the given files; returns the exit status (1 if any file failed)."""
    out, err = out or sys.stdout, err or sys.stderr
    from device.pipeline import VisionPipeline

    pipeline = VisionPipeline(models_dir, threads=threads)
    if not pipeline.analyzer_available:
        print("note: no attribute model is installed; showing detections only", file=err)
    if not as_json:
        print(HEADER, file=out)
    failed = 0
    for path in paths:
        try:
            with open_source(path) as source:
                faces_in_file = 0
                for frame in source:
                    if frame.index % every:
                        continue
                    for det, attrs in pipeline.process(frame):
                        faces_in_file += 1
                        rec = face_record(frame.source or path, frame, det, attrs)
                        print(json.dumps(rec) if as_json else format_row(rec), file=out)
                if source.bad_frames:
                    print(f"warning: {path}: {damage(source)}", file=err)
                if not as_json and faces_in_file == 0:
                    print(f"{Path(path).name[:28]:<28}     -   (no faces found)", file=out)
        except KioskError as exc:
            failed += 1
            print(f"error: {exc}", file=err)
    return 1 if failed else 0
