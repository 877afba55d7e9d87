"""TFLite runtime seam (quantisation, Edge TPU fallback) and alignment geometry."""

import logging

import cv2
import numpy as np
import pytest

from device.align import EYE_DISTANCE, align_face, alignment_matrix, template_eyes
from device.errors import ModelError
from device.models import MODELS_DIR
from device.runtime import TensorSpec, TFLiteModel, cpu_twin, dequantize, quantize

FLOAT_DETECTOR = MODELS_DIR / "src" / "face_detection_short_range.tflite"


@pytest.mark.parametrize("dtype,zero", [(np.int8, -3), (np.uint8, 128)])
def test_quantize_round_trip_uses_the_tensors_own_parameters(dtype, zero):
    spec = TensorSpec(0, "t", (5,), np.dtype(dtype), scale=0.05, zero_point=zero)
    x = np.array([-1.0, -0.05, 0.0, 0.4, 1.0], np.float32)
    q = quantize(x, spec)
    assert q.dtype == dtype
    assert np.allclose(dequantize(q, spec), x, atol=spec.scale / 2 + 1e-6)
    # values beyond the integer range saturate instead of wrapping around
    big = quantize(np.array([1e6, -1e6], np.float32), spec)
    assert big[0] == np.iinfo(dtype).max and big[1] == np.iinfo(dtype).min


def test_float_tensors_pass_through():
    spec = TensorSpec(0, "f", (2,), np.dtype(np.float32), 0.0, 0)
    assert not spec.quantized
    assert quantize(np.array([0.25, 2.0]), spec).dtype == np.float32


def test_real_model_loads_and_runs():
    m = TFLiteModel(FLOAT_DETECTOR, threads=1)
    assert m.inputs[0].shape == (1, 128, 128, 3)
    outs = m.run(np.zeros((1, 128, 128, 3), np.float32))
    assert [o.shape for o in outs] and all(np.isfinite(o).all() for o in outs)


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TFLiteModel(tmp_path / "none.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="cannot load"):
        TFLiteModel(junk)


def test_edgetpu_model_falls_back_to_cpu_twin_with_a_warning(tmp_path, caplog):
    cpu = tmp_path / "det.tflite"
    cpu.write_bytes(FLOAT_DETECTOR.read_bytes())
    (tmp_path / "det_edgetpu.tflite").write_bytes(b"compiled for the TPU, unusable on the CPU")
    assert cpu_twin(tmp_path / "det_edgetpu.tflite") == cpu
    with caplog.at_level(logging.WARNING):
        m = TFLiteModel(tmp_path / "det_edgetpu.tflite")
    assert m.accelerator == "cpu" and m.path == cpu
    assert "Edge TPU delegate" in caplog.text


def test_alignment_puts_eyes_on_the_template_for_any_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        re = rng.uniform(50, 400, 2)
        angle, dist = rng.uniform(-0.8, 0.8), rng.uniform(10, 200)
        le = re + dist * np.array([np.cos(angle), np.sin(angle)])
        m = alignment_matrix(re, le, 64)
        mapped = np.c_[np.array([re, le]), np.ones(2)] @ m.T
        assert np.allclose(mapped, template_eyes(64), atol=1e-6)
    assert template_eyes(64)[1, 0] - template_eyes(64)[0, 0] == pytest.approx(EYE_DISTANCE * 64)


def test_aligned_crop_is_upright():
    # draw two dark "eyes" on a tilted line; after alignment they sit level at the template spots
    img = np.full((200, 200, 3), 255, np.uint8)
    re, le = (60.0, 120.0), (140.0, 80.0)
    for x, y in (re, le):
        cv2.circle(img, (int(x), int(y)), 6, (0, 0, 0), -1)
    crop = align_face(img, re, le, size=64)
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    for (x, y) in template_eyes(64):
        assert crop[int(round(y)), int(round(x))] < 60
    assert align_face(img, re, le, size=48, gray=False).shape == (48, 48, 3)


def test_alignment_rejects_coincident_eyes():
    with pytest.raises(ValueError, match="coincide"):
        alignment_matrix((5, 5), (5, 5), 64)
