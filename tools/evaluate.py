"""Evaluate the installed attribute model the way the appliance runs it.

    python -m tools.evaluate --utkface DIR --ferplus .../FER2013Test --ck DIR --aaf DIR \
        --model models/ --json eval.json --report eval.md --baseline pca

UTKFace and All-Age-Faces images go through the device path (detector -> alignment -> analyzer;
no face found: the whole image is analysed and counted as ``no_face``). Being face chips, they are
first put in a black canvas (``--pad``), as a face appears in a camera frame: the full-range
detector finds no face in a raw chip. FER and CK+ crops go
straight to the analyzer, resized to its input. ``--baseline pca`` fits eigenfaces + a linear
classifier on a ``tools.prepare`` cache (``--baseline-cache``, by default ``faces.npz`` in the
folder ``tools.locations`` documents: ``~/.cache/audience-kiosk/``) and reports it beside the
model.

The appliance does not tell the gender of faces that look younger than the model's ``min_age``
(``heads.gender.min_age`` in its manifest), nor of faces whose likelier gender is less probable
than its ``min_prob`` (``heads.gender.min_prob``): ``gender_acc`` is the accuracy over the faces
whose gender was told and ``gender_coverage`` their share, overall and in every breakdown.

Every headline number also gets a 95 % confidence interval (``ci95`` in the JSON). With
``--reference-emotion PATH`` another Keras emotion classifier (for example ``fer``'s
mini-Xception, whose published FER2013 accuracy is the reference the converter's emotion-head
rule uses) runs on the same FER and CK+ crops, and the report
compares it with ours face by face (McNemar's exact test): the fairest comparison with a
published number that was measured on other data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from device.models import MODELS_DIR
from tools.locations import default_faces, shown


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.evaluate",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--utkface", type=Path, help="UTKFace chips folder")
    ap.add_argument("--ferplus", type=Path,
                    help="one FER+ split folder (label.csv); original labels from "
                         "fer2013_labels.csv in its parent when present")
    ap.add_argument("--utkface-val-split", action="store_true",
                    help="only the validation files of tools.prepare's seeded 90/10 UTKFace split "
                         "(our own validation; the held-out chips need no flag)")
    ap.add_argument("--ck", type=Path, help="CK+48 class folders")
    ap.add_argument("--aaf", type=Path, help="All-Age-Faces root (uses image sets/val.txt)")
    ap.add_argument("--aaf-val-slice", action="store_true",
                    help="read --aaf's train split (image sets/train.txt) and keep only the "
                         "validation slice of tools.prepare's seeded 90/10 split of it (our own "
                         "validation; the held-out val split needs no flag)")
    ap.add_argument("--model", type=Path, default=MODELS_DIR,
                    help="models folder with manifest.json, or an analyzer .tflite beside one")
    ap.add_argument("--json", type=Path, help="write the metrics here")
    ap.add_argument("--report", type=Path, help="write a Markdown report (plots beside it)")
    ap.add_argument("--baseline", choices=("pca",), help="also evaluate the eigenfaces baseline")
    ap.add_argument("--baseline-cache", type=Path, default=default_faces(),
                    help="tools.prepare cache the baseline is fitted on (its train split; "
                         "default: %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many images per data set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pad", type=float, default=None,
                    help="canvas padding around UTKFace/AAF chips before detection, as a fraction "
                         "of the side (default 1.0: the chip in a canvas 3x its side)")
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="force the analyzer's mirror averaging on or off (default: as the "
                         "model's manifest says)")
    ap.add_argument("--reference-emotion", type=Path, metavar="KERAS_FILE",
                    help="also run this Keras 7-emotion classifier (gray square input, FER2013 "
                         "class order) on the FER and CK+ crops and compare it with ours; "
                         "needs TensorFlow (the [train] extra)")
    ap.add_argument("--reference-flip", action="store_true",
                    help="average the reference over each face and its mirror image (default: "
                         "one pass, as such models are usually published)")
    return ap.parse_args(argv)


def load_reference(path: Path, flip: bool):
    """crops -> (N, 7) probabilities of a Keras emotion classifier; fails naming the problem."""
    try:
        import keras  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"--reference-emotion needs TensorFlow/Keras "
                         f"(pip install -e '.[train]'): {e}") from None
    import numpy as np

    from tools.training.teacher import load_teacher

    try:
        model = load_teacher([path], flip=flip)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--reference-emotion {path}: {e}") from None
    return lambda crops: model.predict(np.stack(crops))


def _limit(records, n):
    return records[:n] if n else records


def run(args) -> tuple[dict, dict]:
    """(metrics, details) for every data set given on the command line."""
    from tools import datasets as ds
    from tools.evaluation import sets
    from tools.evaluation.device_path import DevicePath, models_dir_for

    models_dir, _tmp = models_dir_for(args.model)
    path = DevicePath(models_dir, threads=args.threads, flip=args.flip,
                      **({} if args.pad is None else {"pad": args.pad}))
    baseline = None
    if args.baseline == "pca":
        from tools.baseline_pca import fit_from_cache
        from tools.prepare import load_cache

        if not args.baseline_cache.is_file():
            raise SystemExit(f"--baseline pca: no tools.prepare cache at {args.baseline_cache}; "
                             "make one with python -m tools.prepare or name it with "
                             "--baseline-cache")
        baseline = fit_from_cache(load_cache(args.baseline_cache))
    reference = (load_reference(args.reference_emotion, args.reference_flip)
                 if args.reference_emotion else None)
    metrics, details = {}, {}
    if args.utkface:
        recs = ds.read_utkface(args.utkface).records
        if args.utkface_val_split:
            recs = validation_slice(recs)
        recs = _limit(recs, args.limit)
        metrics["utkface"], details["utkface"] = sets.evaluate_utkface(recs, path, baseline)
    if args.ferplus:
        recs = _limit(ds.read_ferplus(args.ferplus).records, args.limit)
        metrics["fer2013"], metrics["ferplus"], details["fer"] = sets.evaluate_fer(
            recs, path, baseline, reference)
    if args.ck:
        recs = _limit(ds.read_ck48(args.ck).records, args.limit)
        metrics["ck"], details["ck"] = sets.evaluate_ck(recs, path, baseline, reference)
    if args.aaf:
        if args.aaf_val_slice:
            recs = validation_slice(ds.read_aaf(args.aaf, split="train").records)
        else:
            recs = ds.read_aaf(args.aaf).records
        recs = _limit(recs, args.limit)
        metrics["aaf"], details["aaf"] = sets.evaluate_aaf(recs, path, baseline)
    if baseline is not None:
        metrics["baseline_pca"] = baseline_metrics(details)
    metrics["ci95"] = sets.intervals(details)
    if reference is not None:
        metrics["reference_emotion"] = reference_metrics(details, args.reference_emotion.name,
                                                         args.reference_flip)
    metrics["analyzer"] = {"file": path.analyzer.name, "models_version": path.analyzer.version,
                           "flip": path.analyzer.flip, "test_time": path.analyzer.test_time,
                           "gender_min_age": path.analyzer.gender_min_age,
                           "gender_min_prob": path.analyzer.gender_min_prob}
    return metrics, details


def baseline_metrics(details: dict) -> dict:
    """The baseline's numbers, keyed like the model's."""
    out = {}
    for key in ("utkface", "aaf"):
        if key in details:
            out[key] = details[key]["baseline"]
    if "fer" in details:
        out.update(details["fer"]["baseline"])
    if "ck" in details:
        out["ck"] = details["ck"]["baseline"]
    return out


def reference_metrics(details: dict, name: str, flip: bool) -> dict:
    """The reference model's accuracy on the same faces as ours, with McNemar's paired test
    (``paired.acc_diff`` is ours minus the reference's)."""
    from device.types import EMOTIONS
    from tools.evaluation import sets
    from tools.evaluation.stats import accuracy_interval, mcnemar
    from tools.training.metrics import accuracy, macro_f1

    out = {"file": name, "flip": flip}
    for group, key in (("fer", "fer2013"), ("fer", "ferplus"), ("ck", "ck")):
        ref = details.get(group, {}).get("reference", {}).get(key)
        if ref is None:
            continue
        truth, pred = ref
        own_truth, own_pred = details[group][key]
        m = {"n": int(len(truth)), "acc": accuracy(truth, pred),
             "acc_ci95": sets.rounded_interval(accuracy_interval(truth, pred))}
        if key == "fer2013":
            m["macro_f1"] = macro_f1(truth, pred, len(EMOTIONS))
        m["paired"] = mcnemar(own_pred == own_truth, pred == truth)
        out[key] = m
    return out


def validation_slice(records: list) -> list:
    """The records ``tools.prepare`` keeps out of training: its seeded 90/10 split by file."""
    from tools.prepare import utk_split

    return [r for r, s in zip(records, utk_split(len(records), 0.1, 0)) if s == 1]


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not any((args.utkface, args.ferplus, args.ck, args.aaf)):
        print("give at least one of --utkface, --ferplus, --ck, --aaf", file=sys.stderr)
        return 2
    from tools.datasets import DatasetLayoutError

    try:
        metrics, details = run(args)
    except DatasetLayoutError as exc:  # a wrong folder: say which, no traceback
        print(f"python -m tools.evaluate: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.report:
        from tools.evaluation.report import write_report

        given = sys.argv[1:] if argv is None else list(argv)
        write_report(args.report, metrics, details,
                     command=" ".join(["python -m tools.evaluate", *map(shown, given)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
