"""How well a checkpoint fits the faces it was trained on, beside its validation numbers.

    python -m tools.training.fit CHECKPOINT.keras --data $C/faces.npz [--sample 8000] [--json OUT]

A network that scores on its own training faces about what it scores on validation faces
under-fits: more epochs at the same size, or more capacity, can still help it. One that scores far
better on its training faces over-fits: regularisation and data help it more than size. Both
splits are measured the same way: clean faces (no augmentation), each averaged with its mirror
image as the appliance runs them, every gender told; ``--sample`` train faces drawn at random
(seeded) keep the run short.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

KEYS = ("utk_age_mae", "utk_gender_acc", "utk_gender_acc_adult", "utk_gender_acc_worst_race",
        "aaf_age_mae", "aaf_gender_acc", "fer_emotion_acc_ferplus", "fer_emotion_acc_orig",
        "fer_emotion_min_recall_ferplus")


def fit_report(model, data: dict, sample: int = 8000, seed: int = 0) -> dict[str, dict]:
    """``{"train": metrics, "val": metrics}`` (``KEYS`` of ``tools.training.validation.report``)
    for a Keras model on a sample of the train split and on the whole validation split."""
    from tools.training.validation import head_predictions, predict_keras, report

    out = {}
    for name, split in (("train", 0), ("val", 1)):
        idx = np.flatnonzero(data["split"] == split)
        if split == 0 and sample and len(idx) > sample:
            idx = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
        metrics = report(head_predictions(predict_keras(model, data["x"][idx], flip=True)),
                         data, idx)
        out[name] = {k: metrics[k] for k in KEYS if k in metrics}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.training.fit",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a .keras model written by tools.train")
    ap.add_argument("--data", type=Path, required=True, help="cache written by tools.prepare")
    ap.add_argument("--sample", type=int, default=8000, help="train faces measured (0: all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from tools.prepare import load_cache
    from tools.training import losses  # noqa: F401  registers the losses for load_model

    result = fit_report(keras.models.load_model(args.checkpoint, compile=False),
                        load_cache(args.data), args.sample)
    print(f"{'metric':34s} {'train':>8s} {'val':>8s}")
    for k, v in result["val"].items():
        print(f"{k:34s} {result['train'].get(k, float('nan')):8.4f} {v:8.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
