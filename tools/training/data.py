"""From the prepared cache to tf.data pipelines and per-head target arrays."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tools.training.augment import augment


def targets(data: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Per-head targets for rows ``idx``; missing labels stay -1 (or all-zero votes).

    With distillation (``data["emotion_soft"]``, see ``tools.training.teacher``) the
    original-label head gets those soft targets instead of class indices.
    """
    age = np.where(data["age"][idx] >= 0, np.minimum(data["age"][idx], 100), -1)
    return {"age": age.astype(np.float32)[:, None],
            "age_reg": age.astype(np.float32)[:, None],
            "gender": data["gender"][idx].astype(np.float32)[:, None],
            "emotion": data["votes"][idx].astype(np.float32),
            "emotion_orig": (data["emotion_soft"][idx] if "emotion_soft" in data
                             else data["emotion"][idx].astype(np.int32)[:, None])}


def split_indices(data: dict[str, np.ndarray], split: int) -> np.ndarray:
    return np.flatnonzero(data["split"] == split)


def train_dataset(data: dict[str, np.ndarray], idx: np.ndarray, batch: int, seed: int,
                  epoch: int, augment_on: bool = True, erase: float = 0.0,
                  teacher=None, alpha: float = 0.5, temperature: float = 2.0) -> tf.data.Dataset:
    """One epoch of shuffled, augmented batches; the order depends only on (seed, epoch).

    ``teacher``: online distillation, the original-label targets become the teacher's view of
    each augmented face mixed with the label (``tools.training.teacher.online_targets``).
    """
    order = np.random.default_rng([seed, epoch]).permutation(idx)
    x = data["x"][order]
    ds = tf.data.Dataset.from_tensor_slices((x, targets(data, order))).batch(batch)

    def prep(images, y):
        images = tf.cast(images[..., None], tf.float32) / 255.0
        if augment_on:
            images = augment(images, erase=erase)
        if teacher is not None:
            from tools.training.teacher import online_targets

            y = dict(y, emotion_orig=online_targets(teacher, images, y["emotion_orig"], alpha,
                                                    temperature))
        return images, y

    return ds.map(prep, num_parallel_calls=1).prefetch(2)


def as_input(x_uint8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) gray faces -> the float model input (N, H, W, 1) in [0, 1]."""
    return (x_uint8.astype(np.float32) / 255.0)[..., None]
