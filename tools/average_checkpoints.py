"""Average the weights of checkpoints of one training run (a "model soup", stochastic weight
averaging after the fact), and validate the result as training does.

    python -m tools.average_checkpoints OUT/epoch6.keras OUT/epoch8.keras OUT/epoch10.keras \
        --data CACHE/faces.npz --out avg.keras [--json avg.json]

Checkpoints of one run (``tools.train --keep-epochs`` keeps one per epoch) lie in one basin of
the loss, so their mean is a model too, often a better one than any of them. Every weight is
averaged, then the batch-norm statistics are measured again on clean training faces with the
averaged weights (``tools.training.batchnorm.recalibrate``, the faces ``tools.train`` uses) and
the training report is computed on the validation split, one pass and mirror-averaged as the
appliance runs it (``mirror_`` keys). The checkpoints must share one architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def average_weights(weight_lists: list[list]) -> list:
    """The element-wise mean of several models' ``get_weights()`` lists (pure numpy).

    Raises ValueError when the lists do not have the same shapes in the same order.
    """
    import numpy as np

    if not weight_lists:
        raise ValueError("no checkpoints to average")
    shapes = [[np.shape(w) for w in ws] for ws in weight_lists]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("the checkpoints have different architectures")
    return [np.mean([np.asarray(ws[i], np.float64) for ws in weight_lists], axis=0)
            .astype(np.asarray(weight_lists[0][i]).dtype) for i in range(len(shapes[0]))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.average_checkpoints",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help=".keras checkpoints of one run")
    ap.add_argument("--data", type=Path, required=True, help="cache written by tools.prepare")
    ap.add_argument("--out", type=Path, required=True, help="the averaged .keras model")
    ap.add_argument("--bn-faces", type=int, default=2048,
                    help="clean train faces the batch-norm statistics are measured on")
    ap.add_argument("--seed", type=int, default=0, help="tools.train's --seed (picks the faces)")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all)")
    ap.add_argument("--json", type=Path, help="also write the validation report here")
    args = ap.parse_args(argv)
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tools.train import fmt, set_threads

    set_threads(args.threads)
    import keras
    import numpy as np

    from tools.prepare import load_cache
    from tools.training import losses  # noqa: F401  registers the losses for load_model
    from tools.training.batchnorm import recalibrate
    from tools.training.data import as_input, split_indices
    from tools.training.validation import head_predictions, mirror_average, predict_keras, report

    models = [keras.models.load_model(c, compile=False) for c in args.checkpoints]
    model = models[0]
    try:
        model.set_weights(average_weights([m.get_weights() for m in models]))
    except ValueError as exc:
        raise SystemExit(f"average_checkpoints: {exc}") from exc
    data = load_cache(args.data)
    train_idx, val_idx = split_indices(data, 0), split_indices(data, 1)
    rng = np.random.default_rng(args.seed)
    recalibrate(model, as_input(data["x"][rng.permutation(train_idx)[:args.bn_faces]]))
    val_x = data["x"][val_idx]
    plain = predict_keras(model, val_x)
    metrics = report(head_predictions(plain), data, val_idx)
    both = mirror_average(plain, predict_keras(model, val_x[:, :, ::-1]))
    metrics |= {f"mirror_{k}": v for k, v in report(head_predictions(both), data, val_idx).items()}
    model.save(args.out)
    print(f"{len(models)} checkpoints averaged into {args.out}: {fmt(metrics)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"checkpoints": [str(c) for c in args.checkpoints],
                                         **metrics}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
