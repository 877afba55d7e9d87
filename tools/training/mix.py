"""Mixup inside a training batch, between faces that carry the same labels.

A batch mixes faces with age and gender labels (UTKFace, All-Age-Faces) and FER faces with emotion
labels, and each head's loss skips the rows it has no label for. So a face is only mixed with
another face of its own kind: a blend of a UTKFace face and a FER face would carry half a label
for each head and none whole. Each row is paired with one other row of its kind (a random
pairing per batch) and, with probability ``prob``, becomes ``lam * itself + (1 - lam) * partner``
with ``lam`` drawn from Beta(alpha, alpha) and folded into [0.5, 1], so the row stays mostly
itself: its targets are mixed the same way (FER+ votes as distributions, P(female), age in
years); a single original FER label (a class index) stays the row's own.
"""

from __future__ import annotations

import tensorflow as tf


def pair_within_kind(kind: tf.Tensor, seed=None) -> tuple[tf.Tensor, tf.Tensor]:
    """(partner index per row, whether the partner is of the same kind): rows are sorted by
    kind with random ties and paired with their neighbour (0-1, 2-3, ...); a row left without a
    neighbour of its kind is its own partner."""
    b = tf.shape(kind)[0]
    key = tf.cast(kind, tf.float32) * 2.0 + tf.random.uniform((b,), seed=seed)
    order = tf.argsort(key)
    pos = tf.math.invert_permutation(order)
    mate = tf.bitwise.bitwise_xor(pos, 1)
    mate = tf.where(mate < b, mate, pos)  # the last of an odd batch
    partner = tf.gather(order, mate)
    same = tf.equal(tf.gather(kind, partner), kind) & tf.not_equal(partner, tf.range(b))
    return tf.where(same, partner, tf.range(b)), same


def _normalised(votes: tf.Tensor) -> tf.Tensor:
    total = tf.reduce_sum(votes, axis=-1, keepdims=True)
    return votes / tf.maximum(total, 1e-7)


def mixup(images: tf.Tensor, y: dict, kind: tf.Tensor, alpha: float = 0.2, prob: float = 0.5,
          seed=None) -> tuple[tf.Tensor, dict]:
    """Mix each row of ``images`` (B, H, W, C) and its targets ``y`` (``tools.training.data``'s
    heads) with a partner of the same ``kind`` (B,); see the module docstring."""
    if prob <= 0 or alpha <= 0:
        return images, y
    b = tf.shape(images)[0]
    partner, same = pair_within_kind(kind, seed)
    g1 = tf.random.gamma((b,), alpha, seed=seed)
    g2 = tf.random.gamma((b,), alpha, seed=seed)
    lam = g1 / tf.maximum(g1 + g2, 1e-7)
    lam = tf.maximum(lam, 1 - lam)
    on = same & (tf.random.uniform((b,), seed=seed) < prob)
    lam = tf.where(on, lam, tf.ones_like(lam))
    col = lam[:, None]

    def blend(t):
        return col * t + (1 - col) * tf.gather(t, partner)

    images = (tf.reshape(lam, (-1, 1, 1, 1)) * images
              + tf.reshape(1 - lam, (-1, 1, 1, 1)) * tf.gather(images, partner))
    mixed = on[:, None]
    out = dict(y)
    # a mixed row's partner is of its kind, so it has the same labels: no -1 or empty votes meet
    for head in ("age", "age_reg", "gender"):
        out[head] = tf.where(mixed & (y[head] >= 0), blend(y[head]), y[head])
    heads = ("emotion", "emotion_orig") if y["emotion_orig"].shape[-1] > 1 else ("emotion",)
    for head in heads:  # vote counts or soft targets: blended as distributions
        has = tf.reduce_sum(y[head], -1, keepdims=True) > 0
        out[head] = tf.where(mixed & has, blend(_normalised(y[head])), y[head])
    return images, out
