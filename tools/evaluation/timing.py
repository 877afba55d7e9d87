"""Median time of one analyzer call on one face, one interpreter thread.

    python -m tools.evaluation.timing --model models/ --runs 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.models import MODELS_DIR


def time_analyzer(models_dir: Path, runs: int = 500, warmup: int = 20,
                  flip: bool | None = None) -> dict:
    """Per-face milliseconds of ``Analyzer.analyze`` on one 64x64 face (interpreter, 1 thread),
    with the manifest's mirror averaging unless ``flip`` overrides it."""
    from device.analyzer import Analyzer

    analyzer = Analyzer(models_dir, threads=1, flip=flip)
    face = np.random.default_rng(0).integers(0, 256, (analyzer.size, analyzer.size), np.uint8)
    for _ in range(warmup):
        analyzer.analyze([face])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        analyzer.analyze([face])
        times.append((time.perf_counter() - t) * 1000)
    return {"model": analyzer.name, "runs": runs, "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)), "threads": 1, "flip": analyzer.flip,
            "test_time": analyzer.test_time}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.evaluation.timing",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="force mirror averaging on or off (default: as the manifest says)")
    args = ap.parse_args(argv)
    print(json.dumps(time_analyzer(args.model, args.runs, flip=args.flip), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
