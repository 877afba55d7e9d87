"""A tiny but real multi-head int8 TFLite model and manifest, made with TensorFlow for tests.

It is untrained (random weights, fixed seed): tests use it to check plumbing and decoding, never
accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from device.manifest import DEFAULT_AGE_GROUPS, sha256_file
from device.models import MODELS_DIR
from device.types import EMOTIONS


def build_tiny_multihead(out: Path, age_kind: str = "distribution", size: int = 64) -> Path:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((size, size, 1), batch_size=1)
    x = tf.keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    if age_kind == "distribution":
        age = tf.keras.layers.Dense(101, activation="softmax", name="age")(x)
    else:
        age = tf.keras.layers.Dense(1, name="age")(x)
    gender = tf.keras.layers.Dense(2, activation="softmax", name="gender")(x)
    emotion = tf.keras.layers.Dense(7, activation="softmax", name="emotion")(x)
    model = tf.keras.Model(inp, {"age": age, "gender": gender, "emotion": emotion})
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(16):
            yield [rng.uniform(0, 1, (1, size, size, 1)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out.write_bytes(conv.convert())
    return out


def make_models_dir(dest: Path, age_kind: str = "distribution") -> Path:
    """A models folder with the shipped detector and a tiny multi-head model, and its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    det_src = MODELS_DIR / "face_detector_full_int8.tflite"
    if not det_src.is_file():
        det_src = MODELS_DIR / "src" / "face_detection_full_range.tflite"
    det = dest / det_src.name
    shutil.copy(det_src, det)
    ana = build_tiny_multihead(dest / "tiny_multihead_int8.tflite", age_kind)
    age_head = ({"output": "age", "kind": "distribution", "bins": list(range(101))}
                if age_kind == "distribution" else {"output": "age", "kind": "regression"})
    manifest = {
        "version": "test-1",
        "detector": {"file": det.name, "sha256": sha256_file(det), "variant": "full"},
        "analyzer": {
            "file": ana.name, "sha256": sha256_file(ana),
            "input": {"size": 64, "channels": 1, "scale": 255.0},
            "heads": {"age": age_head,
                      "gender": {"output": "gender", "labels": ["male", "female"]},
                      "emotion": {"output": "emotion", "labels": list(EMOTIONS)}},
            "age_groups": list(DEFAULT_AGE_GROUPS),
        },
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest
