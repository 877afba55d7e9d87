"""Benchmark the per-frame path: ``python -m tools.bench --source PATH [--threads N] [--json OUT]``.

The whole clip (or image) is decoded into memory first, so file decoding is not timed; then each
frame goes through detect -> align -> analyze -> track exactly as on the device (with the default
``[models] reanalyze_s``, ``--reanalyze-s``: each tracked face analysed again only after that many
seconds; 0 analyses every face on every frame), and the wall time of each frame is recorded.
Medians and the 95th percentile are reported, and the mean beside them: with ``reanalyze_s`` the
frames that analyse a face cost more than those that do not, and the mean counts both.

Memory: ``peak_rss_mb`` is the process's peak resident set minus the decoded clip held for the
benchmark (which the device never holds); ``process_peak_rss_mb`` and ``clip_mb`` are reported too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time

import numpy as np

from device.config import REANALYZE_S


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def load_frames(source: str, limit: int | None = None) -> list:
    from device.sources import open_source

    frames = []
    with open_source(source) as src:
        for frame in src:
            frames.append(frame)
            if limit and len(frames) >= limit:
                break
    if not frames:
        raise SystemExit(f"bench: no frames in {source}")
    return frames


class Progress:
    """A small progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.tty = total, label, sys.stderr.isatty()

    def update(self, i: int) -> None:
        if self.tty and (i % 5 == 0 or i == self.total):
            done = int(30 * i / self.total)
            sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (30 - done)}] {i}/{self.total}")
            if i == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def run_bench(source: str, threads: int = 1, repeat: int = 1, analyze_every: int = 1,
              models_dir: str | None = None, limit: int | None = None, tracking: bool = True,
              app: bool = False, display: str = "png:/tmp/kiosk-bench.png",
              mqtt: str | None = None, reanalyze_s: float = REANALYZE_S) -> dict:
    """Time the per-frame path over every frame of ``source``; returns the report dict."""
    from device.pipeline import VisionPipeline

    frames = load_frames(source, limit)
    clip_mb = sum(f.image.nbytes for f in frames) / 2**20
    pipeline = VisionPipeline(models_dir, threads=threads, analyze_every=analyze_every,
                              reanalyze_s=reanalyze_s)
    tracker = None
    if tracking:
        try:
            from device.tracking import Tracker

            tracker = Tracker()
        except ImportError:
            tracker = None
    pipeline.process(frames[0])  # warm-up: first invoke allocates
    times, faces, analysed = [], 0, 0
    progress = Progress(len(frames) * repeat, "bench")
    clock = time.perf_counter
    for r in range(repeat):
        shift = r * (frames[-1].timestamp + 1)  # each pass later than the one before
        for i, frame in enumerate(frames):
            if shift:
                frame = dataclasses.replace(frame, timestamp=frame.timestamp + shift)
            t0 = clock()
            result = pipeline.process(frame, tracker=tracker)
            if tracker is not None:
                tracker.update([d for d, _ in result], [a for _, a in result], frame.timestamp)
            times.append(clock() - t0)
            faces += len(result)
            analysed += sum(a is not None for _, a in result)
            progress.update(r * len(frames) + i + 1)
    ms = np.array(times) * 1000
    process_peak = peak_rss_mb()
    info = pipeline.describe()
    extra = {}
    if app:
        from tools.bench_app import overhead_report

        extra = overhead_report(frames, pipeline, float(np.median(ms)), display, mqtt)
    p50 = round(float(np.median(ms)), 3)  # fps from the reported median, so the two agree
    return extra | {
        "source": source, "frames": len(times), "faces": faces,
        "frame_size": list(frames[0].image.shape[1::-1]),
        "threads": threads, "analyze_every": analyze_every, "tracking": tracker is not None,
        "reanalyze_s": reanalyze_s if tracker is not None else 0.0,
        "analyses_per_frame": round(analysed / len(times), 3),
        "fps": round(1000.0 / p50, 1),
        "ms_per_frame_p50": p50,
        "ms_per_frame_p95": round(float(np.percentile(ms, 95)), 3),
        "ms_per_frame_mean": round(float(np.mean(ms)), 3),
        "fps_from_mean": round(1000.0 / float(np.mean(ms)), 1),
        "peak_rss_mb": round(process_peak - clip_mb, 1),
        "process_peak_rss_mb": round(process_peak, 1), "clip_mb": round(clip_mb, 1),
        "detector": info["detector"], "analyzer": info["analyzer"] or "none installed",
        "analyzer_flip": info["analyzer_flip"], "accelerator": info["accelerator"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="video, image or folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="passes over the clip")
    p.add_argument("--analyze-every", type=int, default=1, metavar="N")
    p.add_argument("--reanalyze-s", type=float, default=REANALYZE_S, metavar="S",
                   help="[models] reanalyze_s (default %(default)s; 0: every face, every frame)")
    p.add_argument("--limit", type=int, help="use only the first N frames")
    p.add_argument("--models", metavar="DIR", help="models folder (default: installed)")
    p.add_argument("--no-tracking", action="store_true")
    p.add_argument("--app", action="store_true",
                   help="also run the frames through the whole appliance and report its overhead")
    p.add_argument("--display", default="png:/tmp/kiosk-bench.png", help="display sink for --app")
    p.add_argument("--mqtt", metavar="HOST:PORT",
                   help="broker for --app (default: none, spool only)")
    p.add_argument("--json", metavar="OUT", help="also write the report here")
    args = p.parse_args(argv)
    report = run_bench(args.source, args.threads, args.repeat, args.analyze_every, args.models,
                       args.limit, not args.no_tracking, args.app, args.display, args.mqtt,
                       args.reanalyze_s)
    for key, value in report.items():
        print(f"{key:>20}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
