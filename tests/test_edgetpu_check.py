"""The Edge TPU check reads what a Coral would map from the flatbuffer, with no compiler."""

from __future__ import annotations

import numpy as np
import pytest

from device.models import MODELS_DIR
from tools.edgetpu_check import SUPPORTED, check, format_report, main


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, bytes]:
    """Tiny int8 models: one the Edge TPU runs whole, one with an op it lacks, one with a
    dynamic batch, one with a float op in the middle."""
    import tensorflow as tf

    def convert(fn, shape, dynamic=False, int8=True):
        spec = tf.TensorSpec((None if dynamic else 1, *shape), tf.float32)
        concrete = tf.function(fn, input_signature=[spec]).get_concrete_function()
        conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        if int8:
            rng = np.random.default_rng(0)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: (
                [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)] for _ in range(4))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()

    w = tf.constant(np.random.default_rng(1).normal(size=(3, 3, 3, 8)).astype(np.float32))
    conv_relu = lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))  # noqa: E731
    return {
        "whole": convert(lambda x: tf.nn.max_pool2d(conv_relu(x), 2, 2, "VALID"), (16, 16, 3)),
        "reverse": convert(lambda x: tf.reverse(conv_relu(x), axis=[2]), (16, 16, 3)),
        "dynamic": convert(conv_relu, (16, 16, 3), dynamic=True),
        "float": convert(lambda x: tf.math.exp(conv_relu(x)), (16, 16, 3), int8=False),
    }


def test_a_plain_int8_conv_net_maps_whole(tiny_models):
    r = check(tiny_models["whole"], "whole")
    assert r.passes and r.tpu_ops == len(r.ops) > 0
    assert "all" in format_report(r)


def test_an_unsupported_op_moves_it_and_the_rest_to_the_cpu(tiny_models):
    r = check(tiny_models["reverse"], "reverse")
    assert not r.passes
    assert r.first_cpu.name == "REVERSE_V2" and "REVERSE_V2" not in SUPPORTED
    assert r.tpu_ops == r.first_cpu.index
    assert r.counts()["REVERSE_V2"] == {"tpu": 0, "cpu": 1}


def test_dynamic_batch_and_float_tensors_are_named(tiny_models):
    dyn = check(tiny_models["dynamic"], "dynamic")
    assert dyn.tpu_ops == 0 and any("dynamic shape" in p for p in dyn.first_cpu.problems)
    flt = check(tiny_models["float"], "float")
    assert flt.tpu_ops == 0 and any("FLOAT32 tensor" in p for p in flt.first_cpu.problems)


def test_the_shipped_models_as_a_coral_would_take_them():
    """What models/README.md records for each shipped file."""
    reports = {p.name: check(p.read_bytes(), p.name)
               for p in sorted(MODELS_DIR.glob("*_int8.tflite"))}
    assert reports, "no shipped int8 models"
    for name, r in reports.items():
        if name == "multihead_int8.tflite":  # a fixed batch of one: every op on the Edge TPU
            assert r.tpu_ops == len(r.ops) and r.first_cpu is None
        elif name == "face_detector_full_wide_int8.tflite":  # BlazeFace pads channels
            assert r.first_cpu.name == "PAD"
        else:  # YuNet: the whole int8 body, then the exact float heads on the CPU
            assert r.first_cpu.name == "CAST" and r.tpu_ops > 50
            assert all(op.name in ("CAST", "ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "MUL")
                       for op in r.ops[r.tpu_ops:])


def test_cli_writes_json_and_strict_fails_on_cpu_ops(tmp_path, tiny_models, capsys):
    (tmp_path / "a.tflite").write_bytes(tiny_models["whole"])
    (tmp_path / "b.tflite").write_bytes(tiny_models["reverse"])
    assert main([str(tmp_path / "a.tflite"), "--strict"]) == 0
    assert main([str(tmp_path / "a.tflite"), str(tmp_path / "b.tflite"), "--json",
                 str(tmp_path / "r.json")]) == 0
    assert main([str(tmp_path / "b.tflite"), "--strict"]) == 1
    assert main([str(tmp_path / "missing.tflite")]) == 2
    assert "REVERSE_V2" in capsys.readouterr().out
