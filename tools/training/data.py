"""From the prepared cache to tf.data pipelines and per-head target arrays."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tools.training.augment import augment
from tools.training.mix import mixup as mix_batch
from tools.training.sampling import epoch_order, group_keys


def vote_targets(votes: np.ndarray, original: np.ndarray, orig_vote: float = 0.0) -> np.ndarray:
    """FER+ vote counts, with the original FER2013 label counted as ``orig_vote`` more votes
    where the face has both (a face with no FER+ votes stays unlabelled: all zeros)."""
    out = np.asarray(votes, np.float32).copy()
    has = (out.sum(1) > 0) & (np.asarray(original) >= 0)
    if orig_vote:
        out[np.flatnonzero(has), np.asarray(original)[has]] += orig_vote
    return out


def targets(data: dict[str, np.ndarray], idx: np.ndarray,
            orig_vote: float = 0.0) -> dict[str, np.ndarray]:
    """Per-head targets for rows ``idx``; missing labels stay -1 (or all-zero votes).

    With distillation (``data["emotion_soft"]``, see ``tools.training.teacher``) the
    original-label head gets those soft targets instead of class indices. ``orig_vote``: the
    original label's weight among the FER+ votes of the ``emotion`` head (``vote_targets``).
    """
    age = np.where(data["age"][idx] >= 0, np.minimum(data["age"][idx], 100), -1)
    return {"age": age.astype(np.float32)[:, None],
            "age_reg": age.astype(np.float32)[:, None],
            "gender": data["gender"][idx].astype(np.float32)[:, None],
            "emotion": vote_targets(data["votes"][idx], data["emotion"][idx], orig_vote),
            "emotion_orig": (data["emotion_soft"][idx] if "emotion_soft" in data
                             else data["emotion"][idx].astype(np.int32)[:, None])}


def split_indices(data: dict[str, np.ndarray], split: int) -> np.ndarray:
    return np.flatnonzero(data["split"] == split)


def train_dataset(data: dict[str, np.ndarray], idx: np.ndarray, batch: int, seed: int,
                  epoch: int, augment_on: bool = True, erase: float = 0.0,
                  teacher=None, alpha: float = 0.5, temperature: float = 2.0,
                  orig_vote: float = 0.0, eye_jitter: float = 0.0,
                  weights: np.ndarray | None = None,
                  mixup: tuple[float, float] | None = None) -> tf.data.Dataset:
    """One epoch of shuffled, augmented batches; the order depends only on (seed, epoch).

    ``weights``: relative draw weights of the rows of ``idx``
    (``tools.training.sampling.sampling_weights``); the epoch is then a weighted draw with
    replacement of as many faces, instead of a permutation.

    ``mixup``: ``(alpha, prob)`` of ``tools.training.mix.mixup`` (faces mixed only with faces of
    their own kind, after augmentation); None: off.

    ``eye_jitter``: standard deviation of each eye keypoint's noise per axis, as a fraction of
    the eye distance (``tools.training.augment.random_affine``).

    ``teacher``: online distillation, the original-label targets become the teacher's view of
    each augmented face mixed with the label (``tools.training.teacher.online_targets``).
    """
    order = epoch_order(idx, weights, seed, epoch)
    x = data["x"][order]
    kind = group_keys(data, order)[0].astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, targets(data, order, orig_vote), kind))
    ds = ds.batch(batch)

    def prep(images, y, kinds):
        images = tf.cast(images[..., None], tf.float32) / 255.0
        if augment_on:
            images = augment(images, erase=erase, eye_jitter=eye_jitter)
        if mixup is not None:
            images, y = mix_batch(images, y, kinds, *mixup)
        if teacher is not None:
            from tools.training.teacher import online_targets

            y = dict(y, emotion_orig=online_targets(teacher, images, y["emotion_orig"], alpha,
                                                    temperature))
        return images, y

    return ds.map(prep, num_parallel_calls=1).prefetch(2)


def as_input(x_uint8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) gray faces -> the float model input (N, H, W, 1) in [0, 1]."""
    return (x_uint8.astype(np.float32) / 255.0)[..., None]
