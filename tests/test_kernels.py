"""CPU kernel sets: the runtime's choice, the detector's float output convolutions, and known
answers that hold whichever kernels run the models (real interpreters, the shipped model files)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device import kat
from device.detector import FaceDetector
from device.errors import ModelError
from device.manifest import load_manifest, model_path, sha256_file
from device.models import MODELS_DIR
from device.runtime import (
    KERNELS,
    KERNELS_ENV,
    TFLiteModel,
    active_kernels,
    available_kernels,
    set_kernels,
    use_kernels,
)

DETECTOR = model_path(MODELS_DIR, load_manifest(MODELS_DIR)["detector"])
# the first model the float-head rewrite was made for (two 1x1 output convolutions)
BLAZEFACE = MODELS_DIR / "src" / "face_detector_full_wide_int8.tflite"
EXPECTED = {"auto": "xnnpack", "builtin": "builtin", "reference": "reference"}


@pytest.fixture(autouse=True)
def _default_kernels():
    set_kernels(None)
    yield
    set_kernels(None)


def test_this_runtime_offers_every_kernel_set():
    assert available_kernels() == list(KERNELS)


@pytest.mark.parametrize("kernels", list(KERNELS))
def test_the_interpreter_is_built_with_the_chosen_kernels(kernels, monkeypatch):
    import device.runtime as rt

    real = rt._interpreter_api()
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real[0](*args, **kwargs)

    monkeypatch.setattr(rt, "_interpreter_api", lambda: (spy, real[1], real[2]))
    model = TFLiteModel(DETECTOR, kernels=kernels)
    from ai_edge_litert.interpreter import OpResolverType

    want = None if kernels == "auto" else getattr(OpResolverType, KERNELS[kernels])
    assert seen.get("experimental_op_resolver_type") == want
    assert model.kernels == kernels
    # XNNPACK takes the graph only under "auto"; the others run TFLite's own kernels
    assert model.cpu_kernels == EXPECTED[kernels]


def test_the_choice_comes_from_the_environment_or_set_kernels(monkeypatch):
    assert active_kernels() == "auto"
    monkeypatch.setenv(KERNELS_ENV, "builtin")
    assert active_kernels() == "builtin" and TFLiteModel(DETECTOR).cpu_kernels == "builtin"
    with use_kernels("reference"):
        assert TFLiteModel(DETECTOR).kernels == "reference"
    assert active_kernels() == "builtin"
    monkeypatch.setenv(KERNELS_ENV, "fastest")
    with pytest.raises(ModelError, match=KERNELS_ENV):
        TFLiteModel(DETECTOR)
    with pytest.raises(ValueError, match="unknown TFLite kernel set"):
        set_kernels("fastest")


def test_a_missing_xnnpack_is_said_once(monkeypatch, caplog):
    import device.runtime as rt

    monkeypatch.setattr(rt, "_warned", set())
    monkeypatch.setattr(rt.TFLiteModel, "_cpu_kernels", lambda self: "builtin")
    with caplog.at_level("WARNING", logger="device.runtime"):
        TFLiteModel(DETECTOR)
        TFLiteModel(DETECTOR)
    said = [r for r in caplog.records if "XNNPACK did not start" in r.getMessage()]
    assert len(said) == 1 and DETECTOR.name in said[0].getMessage()


def test_blazeface_computes_its_output_convolutions_in_float():
    from tools.convert.float_heads import float_heads

    model = TFLiteModel(BLAZEFACE)
    assert model.inputs[0].dtype == np.int8
    assert [o.dtype for o in model.outputs] == [np.float32, np.float32]
    ops = [op["op_name"] for op in TFLiteModel(BLAZEFACE, kernels="builtin")
           .interpreter._get_ops_details()]
    assert ops.count("CAST") == 1 and ops.count("MUL") == 2
    data = BLAZEFACE.read_bytes()
    assert float_heads(data) == data  # already converted: unchanged


def test_the_shipped_detector_computes_its_heads_in_float():
    from tools.convert.float_heads import float_heads

    model = TFLiteModel(DETECTOR)
    assert model.inputs[0].dtype == np.int8
    assert len(model.outputs) == 12 and all(o.dtype == np.float32 for o in model.outputs)
    ops = [op["op_name"] for op in TFLiteModel(DETECTOR, kernels="builtin")
           .interpreter._get_ops_details()]
    assert ops.count("CAST") == 12 and ops.count("MUL") == 12
    data = DETECTOR.read_bytes()
    assert float_heads(data) == data  # already converted: unchanged


def _head_sums(path, feature_values):
    """The head convolutions computed exactly (int64) from the int8 feature map, as the model
    should give them: float32(sum) * float32(scale)."""
    from tools.convert.float_heads import _model, head_path

    fb, model = _model(path.read_bytes())
    graph = model.subgraphs[0]
    convs, _ = head_path(model, fb)
    out = {}
    for i in convs:
        op = graph.operators[i]
        w_t, b_t = graph.tensors[int(op.inputs[1])], graph.tensors[int(op.inputs[2])]
        w = np.frombuffer(bytes(model.buffers[w_t.buffer].data), np.float32)
        w = w.reshape(int(w_t.shape[0]), -1).astype(np.int64)
        b = np.frombuffer(bytes(model.buffers[b_t.buffer].data), np.float32).astype(np.int64)
        mul = next(o for o in graph.operators if int(o.inputs[0]) == int(op.outputs[0]))
        scale = np.frombuffer(bytes(model.buffers[graph.tensors[int(mul.inputs[1])].buffer].data),
                              np.float32)
        q = feature_values.astype(np.int64).reshape(-1, w.shape[1])
        out[w.shape[0]] = (q @ w.T + b).astype(np.float32) * scale
    return out


@pytest.mark.parametrize("kernels", ["builtin", "reference"])
def test_the_float_heads_are_exact_whatever_the_kernels(kernels):
    """Their sums are float32 integers: the outputs are exactly the integer sums times the
    scale, so no kernel's summation order or fused multiply-add can change a bit."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(BLAZEFACE), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=getattr(OpResolverType, KERNELS[kernels]))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.random.default_rng(1).integers(-128, 128, inp["shape"],
                                                                   dtype=np.int8))
    it.invoke()
    cast = next(op for op in it._get_ops_details() if op["op_name"] == "CAST")
    want = _head_sums(BLAZEFACE, it.get_tensor(cast["inputs"][0]))
    for o in it.get_output_details():
        got = it.get_tensor(o["index"]).reshape(-1, int(o["shape"][-1]))
        assert np.array_equal(got, want[int(o["shape"][-1])])


def _int8_short_detector(tmp_path):
    """A small full-integer BlazeFace (short range: two feature maps, concatenated outputs)."""
    import cv2

    from device.detector import float_detector_path
    from tools.convert.detector import calibration_samples
    from tools.convert.quantize import to_int8
    from tools.convert.scenes import make_scenes
    from tools.convert.tflite_graph import read_graph

    rng = np.random.default_rng(0)
    chips = [np.clip(rng.normal(110, 50, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    face = kat.kat_picture(256)
    images = [face] + make_scenes(chips + [cv2.resize(face, (96, 96))], 5, seed=3)
    path = tmp_path / "short_int8.tflite"
    graph = read_graph(float_detector_path("short"))
    path.write_bytes(to_int8(graph, calibration_samples(images, 128, 128)))
    return path, face


@pytest.mark.slow
def test_float_heads_keep_the_int8_answers_without_their_grid(tmp_path):
    from tools.convert import main

    int8_path, face = _int8_short_detector(tmp_path)  # two feature maps, concatenated outputs
    float_path = tmp_path / "short_float_heads.tflite"
    assert main(["float-heads", "--in", str(int8_path), "--out", str(float_path)]) == 0
    q, f = TFLiteModel(int8_path), TFLiteModel(float_path)
    assert all(o.dtype == np.int8 for o in q.outputs)
    assert all(o.dtype == np.float32 for o in f.outputs)
    x = FaceDetector(model=q).raw(face)  # exercise the detector's own path on both
    assert len(x[0]) and len(FaceDetector(model=f).raw(face)[0])
    rng = np.random.default_rng(2)
    inp = rng.uniform(-1, 1, q.inputs[0].shape).astype(np.float32)
    for spec, a, b in zip(q.outputs, q.run(inp), f.run(inp)):
        # the same convolution before its output rounding: at most half a step apart
        assert np.max(np.abs(a - b)) <= spec.scale / 2 + 1e-4
        assert np.mean(a != b) > 0.5  # and off the grid almost everywhere


@pytest.mark.parametrize("recorded", ["auto", "builtin", "reference"])
def test_known_answers_hold_under_every_kernel_set(recorded):
    with use_kernels(recorded):
        answers = kat.record(MODELS_DIR)
    assert answers["detector"]["kernels"] == EXPECTED[recorded]
    assert answers["detector"]["detections"] and answers["analyzer"]["faces"]
    assert kat.check_kernels(MODELS_DIR, answers) == {k: [] for k in KERNELS}


def test_the_kernel_spread_on_the_known_answer_picture_is_under_the_floors(capsys):
    from tools.kernel_spread import main

    assert main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "1 pictures, kernel sets auto, builtin, reference" in out and "keypoint_px" in out


def _shifted_keypoints(src, dst, pixels: float):
    """A copy of the float-head detector whose keypoints all sit ``pixels`` input pixels to the
    right: BlazeFace's regressor (x of its 6 keypoints) or YuNet's three landmark heads (x of
    5 landmarks, in strides)."""
    from tools.convert.float_heads import _model, _pack, head_path

    fb, model = _model(src.read_bytes())
    graph = model.subgraphs[0]
    convs, _ = head_path(model, fb)
    for i in convs:
        conv = graph.operators[i]
        mul = next(o for o in graph.operators if int(o.inputs[0]) == int(conv.outputs[0]))
        name = (graph.tensors[int(mul.outputs[0])].name or b"").decode()
        if name.startswith("kps_"):
            first, step = 0, float(name.split("_")[1])  # YuNet: offsets in strides
        elif graph.tensors[int(conv.outputs[0])].shape[-1] == 16:
            first, step = 4, 1.0  # BlazeFace: box, then keypoints, in input pixels
        else:
            continue
        scale = np.frombuffer(bytes(model.buffers[graph.tensors[int(mul.inputs[1])].buffer].data),
                              np.float32)
        bias = graph.tensors[int(conv.inputs[2])]
        values = np.frombuffer(bytes(model.buffers[bias.buffer].data), np.float32).copy()
        values[first::2] += np.round(pixels / step / scale[first::2])  # in the sums' units
        model.buffers[bias.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    dst.write_bytes(_pack(model))


def test_the_floors_still_catch_a_detector_whose_keypoints_moved(tmp_path):
    answers = kat.record(MODELS_DIR)
    folder = tmp_path / "models"
    shutil.copytree(MODELS_DIR, folder, ignore=shutil.ignore_patterns("src", "train", "eval"))
    _shifted_keypoints(DETECTOR, folder / DETECTOR.name, 2 * kat.KEYPOINT_PX)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["detector"]["sha256"] = sha256_file(folder / DETECTOR.name)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    problems = kat.check(folder, answers)
    assert any("keypoints moved" in p for p in problems), problems
    assert not any("boxes" in p for p in problems)  # only the keypoints changed


def test_older_bundles_tighter_tolerances_are_widened_to_the_floors():
    k = {"fingerprint": {"atol": 0.26}, "tolerance": {"box_px": 3.0, "score": 0.05}}
    tol = kat.detector_tolerances(k)
    assert tol == {"logit": kat.LOGIT_TOL, "weak_logit": kat.WEAK_LOGIT_TOL, "box_px": 3.0,
                   "keypoint_px": kat.KEYPOINT_PX, "score": kat.SCORE_TOL}


def test_detections_pair_with_themselves_when_their_order_swaps():
    a = {"box": [0, 0, 10, 10], "score": 0.9, "keypoints": [[2, 3]]}
    b = {"box": [50, 50, 60, 60], "score": 0.8, "keypoints": [[52, 53]]}
    far = {"box": [100, 0, 110, 10], "score": 0.7, "keypoints": [[102, 3]]}
    b2 = dict(b, box=[50.5, 50, 60.5, 60])
    assert kat.pair_detections([a, b], [b2, a]) == [(a, a), (b, b2)]
    assert kat.pair_detections([a], [far]) == []  # another face is no match


def test_the_known_answers_can_run_on_models_already_loaded():
    """A kiosk tests the set it is about to run and loads it once: the KAT takes its models."""
    from device.analyzer import Analyzer

    answers = kat.record(MODELS_DIR)
    detector, analyzer = TFLiteModel(DETECTOR, kernels="builtin"), Analyzer(MODELS_DIR)
    assert kat.check(MODELS_DIR, answers, detector_model=detector, analyzer=analyzer) == []
    assert kat.self_test(MODELS_DIR, detector_model=detector, analyzer=analyzer) == []
