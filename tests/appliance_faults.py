"""``kiosk run`` with faults injected through the appliance's seams (for the tests only).

    python -m tests.appliance_faults [--fail-models VERSION] [--die-at STEP] -- RUN-ARGS...

``--fail-models``: models of that version raise on every frame once they run (models that break
only after they were switched in). ``--die-at``: the process dies (exit 86, no clean-up) right
after that provisioning step was journaled: received, staged, kat_passed or switched.
"""

from __future__ import annotations

import argparse
import os
import sys

from device.app import run_main
from device.cli import build_parser
from device.pipeline import pipeline_for

DIED = 86


class FailingPipeline:
    """A pipeline that raises on every frame, as models broken in a way no test caught would."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def process(self, frame, tracker=None):
        raise RuntimeError(f"injected fault for models {self.inner.model_version}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fail-models", metavar="VERSION")
    ap.add_argument("--die-at", metavar="STEP")
    ap.add_argument("run", nargs=argparse.REMAINDER)
    opts = ap.parse_args(argv)
    run_args = opts.run[1:] if opts.run[:1] == ["--"] else opts.run

    def build(models_cfg, folder):
        pipeline = pipeline_for(models_cfg, folder)
        if opts.fail_models and str(pipeline.model_version) == opts.fail_models:
            return FailingPipeline(pipeline)
        return pipeline

    def on_step(step: str) -> None:
        if step == opts.die_at:
            print(f"dying at provisioning step {step!r}", file=sys.stderr, flush=True)
            os._exit(DIED)

    args = build_parser().parse_args(["run", *run_args])
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_main(args, build_pipeline=build, on_provision_step=on_step)


if __name__ == "__main__":
    sys.exit(main())
