"""Quantisation-aware fine-tuning of the detector graph (tools/convert/finetune.py)."""

from __future__ import annotations

import numpy as np
import pytest

from device.detector import float_detector_path
from tools.convert.tflite_graph import read_graph

SHORT = float_detector_path("short")


@pytest.fixture(scope="module")
def graph():
    return read_graph(SHORT)


@pytest.fixture(scope="module")
def frames():
    import cv2

    from tests.shared_data import sample
    from tools.convert.detector import calibration_samples
    from tools.convert.scenes import make_scenes

    face = cv2.imread(str(sample("two_people.jpg")))
    chips = [face[50:260, 200:420], face[40:250, 0:200]]
    return calibration_samples([face] + make_scenes(chips, 7, seed=3), 128, 128)


def test_quantised_tensors_follow_tflite_fusion(graph):
    from tools.convert.finetune import quantised_tensors

    q = quantised_tensors(graph)
    by_out = {op.outputs[0]: op for op in graph.ops}
    # a conv read only by a ReLU is fused with it: the ReLU's output carries the grid
    for t in q:
        op = by_out[t]
        assert op.name not in ("PAD", "MAX_POOL_2D", "RESHAPE")
        if op.name == "CONV_2D" and op.options["fused_activation_function"] == "NONE":
            readers = [o for o in graph.ops if t in o.inputs]
            assert not readers or any(o.name != "RELU" for o in readers)
    assert sum(by_out[t].name == "RELU" for t in q) > 10


def test_simulation_is_the_float_model_when_off_and_close_to_it_when_on(graph, frames):
    import tensorflow as tf

    from tools.convert.finetune import QuantSim, _head_tensors, activation_ranges, quantised_tensors
    from tools.convert.tf_rebuild import run_graph

    fixed = _head_tensors(graph)
    ranges = activation_ranges(graph, frames[:3], sorted(set(quantised_tensors(graph)) | fixed),
                               fixed=fixed)
    sim = QuantSim(graph, ranges, fixed=fixed)
    x = tf.constant(frames[0])
    want = [v.numpy() for v in run_graph(graph, x)]
    off = [v.numpy() for v in sim(x, quantise=False)]
    on = [v.numpy() for v in sim(x)]
    for w, o, _ in zip(want, off, on, strict=True):
        assert np.abs(o - w).max() < 1e-4
    score = int(np.argmin([w.shape[-1] for w in want]))
    band = np.abs(want[score]) < 3  # near the threshold; far logits may be clipped by the range
    err = np.abs(on[score] - want[score])[band]
    assert band.sum() > 20 and 0 < float(np.median(err)) < 0.5  # int8 noise, not a broken graph


def test_finetune_lowers_the_simulated_int8_error_it_is_trained_on(graph, frames):
    from tools.convert.finetune import finetune

    fixed = frames[:4]  # one batch, twenty steps: the loss on it has to come down
    tuned, ranges, report = finetune(graph, fixed, fixed, epochs=20, batch=4, lr=5e-5,
                                     range_lr=1e-3, log=lambda _: None)
    assert report.loss_last < 0.97 * report.loss_first
    assert report.steps == 20
    changed = [i for i in tuned.constants if not np.array_equal(tuned.constants[i],
                                                                 graph.constants[i])]
    assert changed and all(tuned.constants[i].dtype == np.float32 for i in changed)
    assert all(lo <= 0 <= hi for lo, hi in ranges.values())


def test_learnt_ranges_reach_the_int8_model(graph, frames, tmp_path):
    from device.runtime import TFLiteModel
    from tools.convert.finetune import _head_tensors, activation_ranges, quantised_tensors
    from tools.convert.quantize import to_int8

    fixed = _head_tensors(graph)
    tensors = sorted(set(quantised_tensors(graph)) - fixed)
    ranges = activation_ranges(graph, frames, tensors)
    relu = next(t for t in tensors if next(o for o in graph.ops if o.outputs[0] == t).name
                == "RELU")
    lo, hi = ranges[relu]
    learnt = {relu: (lo, hi / 3)}  # a third of its range: three times finer steps
    plain = tmp_path / "plain.tflite"
    tuned = tmp_path / "tuned.tflite"
    plain.write_bytes(to_int8(graph, frames, ranges="mse"))
    tuned.write_bytes(to_int8(graph, frames, ranges="mse", learnt=learnt))

    def scales(path):
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(str(path))
        return {d["name"]: d["quantization"][0] for d in it.get_tensor_details()}

    a, b = scales(plain), scales(tuned)
    diff = [k for k in a if k in b and a[k] and b[k] and not np.isclose(a[k], b[k])]
    assert diff, "the learnt range changed no tensor's scale"
    assert any(np.isclose(b[k], hi / 3 / 255, rtol=0.02) for k in diff)
    TFLiteModel(tuned, threads=1).run(frames[0])  # still a working model


def test_finetune_frames_are_fresh_per_epoch_and_reproducible():
    from tools.convert.detector import finetune_frames

    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 255, (60, 60, 3), dtype=np.uint8) for _ in range(8)]
    make = finetune_frames(chips, 8, 96, 64, seed=0)
    a0, a1 = make(0), make(1)
    assert len(a0) == 8 and a0[0].shape == (1, 64, 96, 3)
    assert not all(np.array_equal(x, y) for x, y in zip(a0, a1, strict=True))
    again = finetune_frames(chips, 8, 96, 64, seed=0)(1)
    assert all(np.array_equal(x, y) for x, y in zip(a1, again, strict=True))


def test_detector_cli_fine_tunes_before_converting(tmp_path):
    import json

    import cv2

    from tests.shared_data import sample
    from tools.convert import main

    face = cv2.imread(str(sample("two_people.jpg")))
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, (y, x) in enumerate(((50, 200), (40, 0), (60, 120))):
        cv2.imwrite(str(calib / f"c{i}.png"), face[y:y + 210, x:x + 210])
    out, report = tmp_path / "short_int8.tflite", tmp_path / "report.json"
    assert main(["detector", "--float", str(SHORT), "--calib", str(calib), "--out", str(out),
                 "--scenes", "3", "--finetune-epochs", "1", "--finetune-frames", "4",
                 "--eval", str(sample("two_people.jpg")), "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    tuned = rep["quantisation"]["finetune"]
    assert tuned["epochs"] == 1 and tuned["steps"] == 1 and tuned["band_std_before"] > 0
    assert rep["agreement"]["overall"]["float_detections"] == 2
