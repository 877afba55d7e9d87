"""Converter: flatbuffer reading, TF rebuild fidelity, int8 conversion, agreement maths, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from device.detector import float_detector_path
from device.detector.anchors import AnchorOptions, generate_anchors
from tools.convert import SUBCOMMANDS, main
from tools.convert.agreement import Agreement, match_count
from tools.convert.scenes import make_scenes
from tools.convert.tflite_graph import read_graph

SHORT = float_detector_path("short")


@pytest.fixture(scope="module")
def short_graph():
    return read_graph(SHORT)


def test_read_graph_folds_fp16_weights(short_graph):
    counts = short_graph.op_counts()
    assert "DEQUANTIZE" not in counts  # 74 fp16 -> fp32 DEQUANTIZE ops folded into constants
    assert counts["CONV_2D"] == 21 and counts["DEPTHWISE_CONV_2D"] == 16
    conv = next(op for op in short_graph.ops if op.name == "CONV_2D")
    w = short_graph.constants[conv.inputs[1]]
    assert w.dtype == np.float32 and w.shape == (24, 5, 5, 3)
    assert conv.options["stride_h"] == 2 and conv.options["padding"] == "SAME"
    assert [short_graph.shapes[i] for i in short_graph.outputs] == [(1, 896, 16), (1, 896, 1)]


def test_rebuild_reproduces_short_range_model(short_graph):
    from tools.convert.quantize import rebuild_error

    rng = np.random.default_rng(1)
    xs = [rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32) for _ in range(2)]
    err = rebuild_error(short_graph, SHORT, xs)
    assert err < 2e-4  # outputs reach ~100 (regressors in pixels): relative error ~1e-6


def test_rebuild_at_another_input_size_matches_anchor_count(short_graph):
    from tools.convert.tf_rebuild import as_function

    out = as_function(short_graph, height=128, width=192)(np.zeros((1, 128, 192, 3), np.float32))
    anchors = generate_anchors(AnchorOptions(192, 128, (8, 16, 16, 16)))
    assert len(anchors) == 16 * 24 * 2 + 8 * 12 * 6
    assert tuple(out["regressors"].shape) == (1, len(anchors), 16)
    assert tuple(out["classificators"].shape) == (1, len(anchors), 1)


@pytest.mark.parametrize("ranges", ["minmax", "mse"])
def test_int8_conversion_of_short_model(short_graph, tmp_path, ranges):
    import cv2

    from device.detector import FaceDetector
    from tools.convert.detector import calibration_samples
    from tools.convert.quantize import to_int8

    rng = np.random.default_rng(0)
    chips = [np.clip(rng.normal(110, 50, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    face = cv2.imread(str(_sample("two_people.jpg")))
    images = [face] + make_scenes(chips + [face[50:260, 200:420]], 7, seed=3)
    path = tmp_path / "short_int8.tflite"
    path.write_bytes(to_int8(short_graph, calibration_samples(images, 128, 128), ranges=ranges))
    q = FaceDetector(path)
    assert q.model.inputs[0].dtype == np.int8 and q.model.inputs[0].quantized
    assert all(o.dtype == np.int8 for o in q.model.outputs)
    f = FaceDetector(SHORT)
    a, b = f.detect(face), q.detect(face)
    assert len(a) == 2 and match_count([d.box for d in a], [d.box for d in b]) == 2


def _sample(name: str):
    from pathlib import Path

    path = Path(__file__).parents[1].parent / "shared" / "data" / "samples" / name
    if not path.is_file():
        pytest.fail(f"sample {path} not found: the tests need ../shared/data/samples "
                    "beside the clone")
    return path


def test_match_count_is_one_to_one():
    a = [[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]
    b = [[1, 0, 11, 10], [100, 100, 110, 110]]
    assert match_count(a, b) == 1
    assert match_count(a, []) == 0
    t = Agreement()
    t.add(a, b)
    t.add([], [[0, 0, 1, 1]])
    assert (t.reference, t.candidate, t.matched) == (3, 3, 1)
    assert t.recall == pytest.approx(1 / 3) and t.precision == pytest.approx(1 / 3)


def test_scenes_are_reproducible():
    chips = [np.full((200, 200, 3), v, np.uint8) for v in (50, 150, 250)]
    a, b = make_scenes(chips, 3, seed=7), make_scenes(chips, 3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert {x.shape[:2] for x in make_scenes(chips, 20)} <= {(360, 640), (720, 1280), (480, 640),
                                                             (1080, 1920)}


def test_cli_reports_a_missing_subcommand_module(monkeypatch, capsys):
    monkeypatch.setitem(SUBCOMMANDS, "analyzer", ("tools.convert.no_such_module", "test"))
    assert main(["analyzer"]) == 2
    assert "not installed" in capsys.readouterr().err


def test_cli_detector_requires_its_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detector", "--float", str(SHORT)])
    assert exc.value.code == 2
    assert "--calib" in capsys.readouterr().err


def test_mse_range_clips_rare_outliers_and_keeps_a_dense_range():
    from tools.convert.ranges import mse_range

    dense = np.full(2048, 1000, np.int64)  # uniform over [-8, 8]: every level is used
    assert mse_range(-8.0, 8.0, dense) == (-8.0, 8.0)
    tail = np.zeros(2048, np.int64)
    tail[:200] = 10_000  # values in [0, ~0.8] and a handful out to 8
    tail[-1] = 1
    lo, hi = mse_range(0.0, 8.0, tail)
    assert lo == 0.0 and 0.8 < hi < 3.0  # zero stays exact; the lone value at 8 is clipped


def test_equalise_is_float_exact_and_balances_channels(short_graph):
    from tools.convert.equalise import channel_ranges, equalisable, equalise
    from tools.convert.tf_rebuild import as_function

    rng = np.random.default_rng(2)
    xs = [rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32) for _ in range(2)]
    pairs = equalisable(short_graph)
    kinds = {k for k, *_ in pairs}
    assert kinds == {"relu_dw", "dw_pw"} or kinds == {"dw_pw"}
    g, n = equalise(short_graph, xs, 128, 128)
    assert n == len(pairs) > 0
    assert g.constants is not short_graph.constants  # the graph as read is left alone
    a, b = as_function(short_graph)(xs[0]), as_function(g)(xs[0])
    for k in a:
        assert np.max(np.abs(a[k].numpy() - b[k].numpy())) < 2e-3
    t = pairs[0][1]
    before = channel_ranges(short_graph, [t], xs, 128, 128)[t]
    after = channel_ranges(g, [t], xs, 128, 128)[t]
    spread = (before.max() / before.min(), after.max() / after.min())
    assert spread[1] < 1.01 * max(1.0, spread[0] / 16)  # channels scaled up at most 16x


def test_with_ranges_sets_the_int8_scales(short_graph):
    from tools.convert import ranges as rg
    from tools.convert.tf_rebuild import as_function

    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32) for _ in range(2)]
    cal = rg.calibrated_model(as_function(short_graph), xs)
    tensors = rg.ranged_tensors(cal)
    fixed = rg.fixed_tensors(cal)
    assert fixed <= set(tensors) | fixed and 0 in fixed  # the input keeps its [-1, 1]
    t = next(i for i in tensors if i not in fixed)
    model = rg.quantise_calibrated(rg.with_ranges(cal, {t: (-2.0, 3.1)}))
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    d = next(d for d in it.get_tensor_details() if d["name"] == tensors[t])
    scale, zero = d["quantization"]
    assert scale == pytest.approx(5.1 / 255, rel=1e-3) and d["dtype"] == np.int8
    ops = {o["op_name"] for o in it._get_ops_details()}  # noqa: SLF001
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops  # still one full-integer graph
