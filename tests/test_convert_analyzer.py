"""``python -m tools.convert analyzer``: int8 conversion, float/int8 gate, manifest, Edge TPU."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow  # noqa: E402,F401  the [train] extra; the test command installs it (a missing one fails)

from tools.convert import analyzer as conv
from tools.convert import gender_rules as rules
from tools.convert.edgetpu import compile_for_edgetpu, compiler_command, parse_op_counts
from tools.edgetpu_check import check
from tools.evaluation.manifest import update_manifest

COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Input model: /m/face_detector_full_int8.tflite
Input size: 300.00KiB
Number of operations that will run on Edge TPU: 70
Number of operations that will run on CPU: 2
Input model: /m/multihead_int8.tflite
Number of operations that will run on Edge TPU: 31
Number of operations that will run on CPU: 0
"""


def test_gate_flags_accuracy_and_mae_losses():
    f = {"utk_age_mae": 6.0, "utk_gender_acc": 0.90, "fer_emotion_acc_orig": 0.60, "utk_n": 10}
    ok = {"utk_age_mae": 6.25, "utk_gender_acc": 0.895, "fer_emotion_acc_orig": 0.595}
    assert conv.compare(f, ok) == []
    bad = {"utk_age_mae": 6.4, "utk_gender_acc": 0.88, "fer_emotion_acc_orig": 0.60}
    problems = conv.compare(f, bad)
    assert len(problems) == 2
    assert any("utk_age_mae" in p and "years" in p for p in problems)
    assert any("utk_gender_acc" in p and "point" in p for p in problems)


def _emotion(head, ferplus, orig, min_recall):
    return {f"fer_{head}_acc_ferplus": ferplus, f"fer_{head}_acc_orig": orig,
            f"fer_{head}_min_recall_ferplus": min_recall}


def test_emotion_output_is_chosen_by_ferplus_majority_above_the_recall_floor():
    m = {"utk_age_mae": 6.0, "utk_age_reg_mae": 6.5, **_emotion("emotion", 0.80, 0.59, 0.19),
         **_emotion("emotion_orig", 0.69, 0.65, 0.38), **_emotion("emotion_mix", 0.77, 0.63, 0.31)}
    # the FER+ head is the most accurate but lets disgust collapse (0.19 < 2/7): the mix wins;
    # the original labels' accuracy plays no part
    assert conv.choose_heads(m, "auto", "auto") == ("age", "emotion_mix", False)
    m.update(_emotion("emotion", 0.81, 0.50, 0.30))
    assert conv.choose_heads(m, "auto", "auto") == ("age", "emotion", False)
    branch = {**_emotion("emotion", 0.82, 0.66, 0.35), **_emotion("emotion_mix", 0.78, 0.66, 0.4)}
    assert conv.choose_heads(m, "auto", "auto", branch) == ("age", "emotion", True)
    branch.update(_emotion("emotion", 0.805, 0.70, 0.5))  # the branch must win on FER+ majority
    assert conv.choose_heads(m, "auto", "auto", branch) == ("age", "emotion", False)
    assert conv.choose_heads(m, "age_reg", "emotion_orig") == ("age_reg", "emotion_orig", False)
    assert conv.choose_heads({}, "auto", "auto") == ("age", "emotion", False)
    # nobody clears the floor: the least collapsed, and the gate names the classes
    low = {**_emotion("emotion", 0.8, 0.6, 0.1), **_emotion("emotion_orig", 0.7, 0.6, 0.2)}
    assert conv.choose_heads(low, "auto", "auto")[1] == "emotion_orig"
    shipped = {"fer_emotion_recall_ferplus_disgust": 0.19, "fer_emotion_recall_ferplus_happy": 0.9}
    (problem,) = conv.emotion_problems(shipped)
    assert "disgust 0.190" in problem and "happy" not in problem
    assert conv.emotion_problems(shipped, floor=0.1) == []


def test_gender_min_age_is_where_told_children_become_reliable():
    rng = np.random.default_rng(0)
    est = rng.uniform(0, 60, 4000)
    truth = rng.integers(0, 2, 4000)
    # right half the time below 4 years, 90 % from 4 on
    right = np.where(est < 4, rng.random(4000) < 0.5, rng.random(4000) < 0.9)
    pred = np.where(right, truth, 1 - truth)
    assert rules.choose_min_age(est, truth, pred) == pytest.approx(4, abs=1)
    assert rules.choose_min_age(est, truth, truth) == 0.0  # always right: always told
    assert rules.choose_min_age(est, truth, 1 - truth) == rules.CHILD_AGE  # never right


def test_confidence_bands_give_the_accuracy_of_each_band():
    conf = np.array([0.5, 0.52, 0.56, 0.71, 0.74, 0.99, 1.0])
    right = np.array([True, False, False, True, True, True, True])
    bands = rules.confidence_bands(conf, right)
    assert len(bands) == 10 and bands[0] == {"from": 0.5, "to": 0.55, "n": 2, "acc": 0.5}
    assert bands[1] == {"from": 0.55, "to": 0.6, "n": 1, "acc": 0.0}
    assert bands[2]["n"] == 0 and bands[2]["acc"] is None
    assert bands[4] == {"from": 0.7, "to": 0.75, "n": 2, "acc": 1.0}
    assert bands[-1] == {"from": 0.95, "to": 1.0, "n": 2, "acc": 1.0}  # 1.0 is in the last band
    assert sum(b["n"] for b in bands) == len(conf)


@pytest.mark.parametrize("bad", ["0.3", "1", "nan"])
def test_a_bad_gender_min_prob_is_refused_before_converting(tmp_path, keras_model, capsys, bad):
    assert conv.run(_args(tmp_path, *keras_model, **{"gender-min-prob": bad})) == 2
    assert "--gender-min-prob" in capsys.readouterr().out
    assert not (tmp_path / "multihead_int8.tflite").exists()


def test_fairness_gate_names_the_worst_group():
    m = {"utk_gender_acc_white": 0.95, "utk_gender_acc_other": 0.90,
         "utk_gender_acc_worst_race": 0.90}
    (problem,) = rules.fairness_problems(m, 0.93)
    assert "(other)" in problem and "0.9000" in problem
    assert rules.fairness_problems(m, 0.9) == [] and rules.fairness_problems(m, 0) == []
    # per-group numbers are reported, not held to the one-point int8 gate
    assert conv.compare({"utk_gender_acc_other": 0.9}, {"utk_gender_acc_other": 0.85}) == []


def test_edgetpu_skipped_when_compiler_not_on_path(tmp_path, caplog):
    caplog.set_level("INFO")
    assert compile_for_edgetpu([tmp_path / "a.tflite"], tmp_path, which=lambda name: None) is None
    assert "not on PATH" in caplog.text


def test_edgetpu_co_compiles_both_models_and_counts_ops(tmp_path):
    seen = {}

    def runner(cmd, **kw):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0, COMPILER_LOG, "")

    models = [tmp_path / "face_detector_full_int8.tflite", tmp_path / "multihead_int8.tflite"]
    counts = compile_for_edgetpu(models, tmp_path, which=lambda n: "/usr/bin/edgetpu_compiler",
                                 runner=runner)
    assert seen["cmd"] == compiler_command(models, tmp_path, "/usr/bin/edgetpu_compiler")
    assert seen["cmd"][-2:] == [str(m) for m in models]  # one call: co-compiled
    assert "--out_dir" in seen["cmd"]
    assert counts == parse_op_counts(COMPILER_LOG)
    assert counts["multihead_int8.tflite"] == {"tpu": 31, "cpu": 0}

    def failing(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "unsupported op")

    with pytest.raises(RuntimeError, match="unsupported op"):
        compile_for_edgetpu(models, tmp_path, which=lambda n: "edgetpu_compiler", runner=failing)


def test_update_manifest_keeps_detector_and_other_keys(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": "x", "detector": {"file": "d.tflite"}, "kat": [1]}))
    update_manifest(path, {"file": "a.tflite"}, {"v": 1})
    data = json.loads(path.read_text())
    assert data["detector"] == {"file": "d.tflite"} and data["kat"] == [1]
    assert data["analyzer"] == {"file": "a.tflite"} and data["metrics"]["analyzer"] == {"v": 1}
    fresh = tmp_path / "new" / "manifest.json"
    fresh.parent.mkdir()
    assert "detector" in update_manifest(fresh, {"file": "a.tflite"})


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    """An untrained, narrow training model (5 heads) saved as .keras, and a tiny cache."""
    from tests.test_train_smoke import write_tiny_cache
    from tools.model_def import build_model

    root = tmp_path_factory.mktemp("conv")
    path = root / "m.keras"
    build_model(width=0.25, head_units=16).save(path)
    return path, write_tiny_cache(root / "faces.npz", n=40)


def _args(tmp_path, keras_path, cache, **kw):
    import argparse

    p = argparse.ArgumentParser()
    conv.add_arguments(p)
    argv = ["--keras", str(keras_path), "--calib", str(cache), "--out",
            str(tmp_path / "multihead_int8.tflite"), "--manifest", str(tmp_path / "manifest.json"),
            "--calib-count", "16", "--report", str(tmp_path / "conv.json")]
    return p.parse_args(argv + [f"--{k}={v}" for k, v in kw.items()])


@pytest.mark.slow
def test_conversion_names_heads_and_writes_manifest(tmp_path, keras_model, monkeypatch):
    from device.analyzer import Analyzer
    from device.runtime import TFLiteModel

    monkeypatch.setattr(conv, "MAX_ACC_DROP", 1.0)  # an untrained model: check plumbing only
    monkeypatch.setattr(conv, "MAX_MAE_RISE", 1e9)
    monkeypatch.setattr(conv, "EMOTION_RECALL_FLOOR", 0.0)
    monkeypatch.setattr(conv, "FAIRNESS_FLOOR", 0.0)
    (tmp_path / "manifest.json").write_text(json.dumps({"detector": {"file": "det.tflite"}}))
    assert conv.run(_args(tmp_path, *keras_model, **{"age-head": "age"})) == 0
    model = TFLiteModel(tmp_path / "multihead_int8.tflite")
    assert {s.name for s in model.outputs} == {"age", "gender", "emotion"}
    assert model.inputs[0].dtype == np.uint8 and model.inputs[0].shape == (1, 64, 64, 1)
    assert all(s.dtype == np.int8 for s in model.outputs)
    # a fixed batch of one, no dynamic dimension: a Coral's compiler could map every op
    coral = check((tmp_path / "multihead_int8.tflite").read_bytes(), "multihead_int8.tflite")
    assert coral.first_cpu is None and coral.tpu_ops == len(coral.ops)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["detector"] == {"file": "det.tflite"}
    assert manifest["analyzer"]["heads"]["age"] == {"output": "age", "kind": "regression",
                                                   "trained_as": "distribution"}
    report = json.loads((tmp_path / "conv.json").read_text())
    assert report["age_head"] == "age" and "utk_gender_acc" in report["int8"]
    assert manifest["analyzer"]["heads"]["gender"]["min_age"] == report["gender_min_age"]
    assert manifest["analyzer"]["heads"]["gender"]["min_prob"] == report["gender_min_prob"] \
        == rules.GENDER_MIN_PROB
    bands = report["gender_confidence_bands"]
    assert [b["from"] for b in bands] == pytest.approx([0.5 + 0.05 * k for k in range(10)])
    assert sum(b["n"] for b in bands) > 0
    assert "fer_emotion_recall_ferplus_disgust" in report["int8"]
    assert set(report["emotion_candidates_float"]) == {"emotion", "emotion_orig", "emotion_mix"}
    # measured with mirror averaging, and the manifest tells the appliance to run it that way
    assert report["test_time"] == "flip" and manifest["analyzer"]["test_time"] == "flip"
    assert Analyzer(tmp_path).flip
    out = Analyzer(tmp_path).analyze([np.zeros((64, 64), np.uint8)])[0]
    assert 0 <= out.age <= 100 and abs(sum(out.emotions.values()) - 1) < 0.05


@pytest.mark.slow
def test_conversion_refused_leaves_manifest_alone(tmp_path, keras_model, monkeypatch, capsys):
    monkeypatch.setattr(conv, "MAX_ACC_DROP", -1.0)  # any result "loses" accuracy
    monkeypatch.setattr(conv, "EMOTION_RECALL_FLOOR", 0.0)
    monkeypatch.setattr(conv, "FAIRNESS_FLOOR", 0.0)
    before = json.dumps({"detector": {"file": "det.tflite"}})
    (tmp_path / "manifest.json").write_text(before)
    assert conv.run(_args(tmp_path, *keras_model, **{"age-head": "age_reg"})) == 1
    assert "int8 conversion rejected" in capsys.readouterr().out
    assert (tmp_path / "manifest.json").read_text() == before


def test_float_mirror_average_is_the_mean_of_both_views():
    import keras

    from tools.training.validation import predict_keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 64, 1))
    flat = keras.layers.Flatten()(inp)
    init = keras.initializers.RandomNormal(stddev=0.05)
    model = keras.Model(inp, {
        "age": keras.layers.Dense(1, kernel_initializer=init, name="age")(flat),
        "emotion": keras.layers.Dense(7, activation="softmax", kernel_initializer=init,
                                      name="emotion")(flat)})
    x = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    plain = predict_keras(model, x)
    mirror = predict_keras(model, np.ascontiguousarray(x[:, :, ::-1]))
    both = predict_keras(model, x, flip=True)
    assert set(both) == set(plain) == {"age", "emotion"}
    for k in both:
        assert np.allclose(both[k], (plain[k] + mirror[k]) / 2, atol=1e-5)
        assert not np.allclose(plain[k], mirror[k], atol=1e-3)  # the views differ


@pytest.mark.slow
def test_conversion_with_an_emotion_branch_and_mirror_in_the_model(tmp_path, keras_model,
                                                                    monkeypatch, caplog):
    import keras

    from device.analyzer import Analyzer
    from device.runtime import TFLiteModel
    from tools.model_def import deploy_model, export_model
    from tools.training.teacher import load_teacher

    monkeypatch.setattr(conv, "MAX_ACC_DROP", 1.0)  # untrained models: check plumbing only
    monkeypatch.setattr(conv, "MAX_MAE_RISE", 1e9)
    monkeypatch.setattr(conv, "EMOTION_RECALL_FLOOR", 0.0)
    monkeypatch.setattr(conv, "FAIRNESS_FLOOR", 0.0)
    keras.utils.set_random_seed(3)
    inp = keras.Input((64, 64, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=2)(inp))
    branch_path = tmp_path / "fer_like.keras"
    keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x)).save(branch_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"detector": {"file": "det.tflite"}}))
    # a stand-in edgetpu_compiler on PATH: the Edge TPU seam, which records what it was given
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "edgetpu_compiler"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/compiler_args\n'
                    'for m in "$@"; do last="$m"; done\n'
                    'echo "Input model: $last"\n'
                    'echo "Number of operations that will run on Edge TPU: 0"\n'
                    'echo "Number of operations that will run on CPU: 70"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    caplog.set_level("INFO")
    # an explicit head ships the branch (under "auto" it would have to win on FER+ majority)
    args = _args(tmp_path, *keras_model, **{"emotion-branch": branch_path,
                                            "test-time": "in-model", "emotion-head": "emotion"})
    assert conv.run(args) == 0
    # a Coral build is warned that the in-model mirror keeps the analyzer off the TPU
    assert "--test-time in-model builds the mirror views" in caplog.text
    assert "multihead_int8.tflite: 0 ops on the Edge TPU, 70 on the CPU" in caplog.text
    assert (tmp_path / "compiler_args").read_text().split()[-1].endswith("multihead_int8.tflite")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    report = json.loads((tmp_path / "conv.json").read_text())
    # the graph mirrors: the appliance is told to make one pass
    assert manifest["analyzer"]["test_time"] == "in_model" and report["test_time"] == "in_model"
    analyzer = Analyzer(tmp_path)
    assert not analyzer.flip and analyzer.test_time == "in_model"
    assert report["emotion_branch"]["file"] == "fer_like.keras"
    assert report["emotion_branch"]["shipped"] and report["emotion_head"] == "emotion"
    assert set(report["emotion_branch"]["candidates_float"]) >= {
        "fer_emotion_acc_orig", "fer_emotion_orig_acc_orig", "fer_emotion_mix_acc_ferplus"}
    assert report["emotion_head"] in ("emotion", "emotion_orig", "emotion_mix")
    # inner tensor names are stripped; the heads keep the names the appliance finds them by
    model = TFLiteModel(tmp_path / "multihead_int8.tflite")
    assert {s.name for s in model.outputs} == {"age", "gender", "emotion"}
    names = [d["name"] for d in model.interpreter.get_tensor_details()]
    assert sum(1 for n in names if n) <= len(model.outputs) + len(model.inputs)
    # the int8 file computes what the float graph computes (one face, the int8 tolerance)
    trained = keras.models.load_model(keras_model[0], compile=False)
    branch = load_teacher(branch_path).members[0]
    float_graph = deploy_model(export_model(trained, emotion=report["emotion_head"]),
                               branch=branch, mirror=True)
    face = np.random.default_rng(1).integers(0, 256, (64, 64), np.uint8)
    want = float_graph.predict(face[None, ..., None] / 255.0, verbose=0)
    got = analyzer.analyze([face])[0]
    assert got.emotions["happy"] == pytest.approx(float(want["emotion"][0, 3]), abs=0.03)
    assert got.age == pytest.approx(float(want["age"][0, 0]), abs=1.5)


@pytest.mark.parametrize("problem", ["missing", "size", "garbage"])
def test_a_bad_emotion_branch_is_refused_before_converting(tmp_path, keras_model, capsys,
                                                            problem):
    import keras

    branch = tmp_path / "branch.keras"
    if problem == "size":  # a 48x48 classifier cannot read the analyzer's 64x64 faces
        inp = keras.Input((48, 48, 1))
        x = keras.layers.GlobalAveragePooling2D()(inp)
        keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x)).save(branch)
    elif problem == "garbage":
        branch.write_bytes(b"not a keras file")
    (tmp_path / "manifest.json").write_text("{}")
    args = _args(tmp_path, *keras_model, **{"emotion-branch": branch})
    assert conv.run(args) == 2
    out = capsys.readouterr().out
    assert f"--emotion-branch {branch}" in out
    expected = {"missing": "not found", "size": "(48, 48, 1)",
                "garbage": "cannot be read as a Keras model"}
    assert expected[problem] in out
    assert not (tmp_path / "multihead_int8.tflite").exists()
    assert (tmp_path / "manifest.json").read_text() == "{}"
