"""Mixup within a batch, only between faces of the same kind (tools.training.mix)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tools.training.mix import mixup, pair_within_kind


def test_rows_are_paired_only_within_their_kind():
    kind = tf.constant([0, 1, 0, 1, 0, 1, 1], tf.int32)
    for seed in range(5):
        partner, same = pair_within_kind(kind, seed=seed)
        p, s = partner.numpy(), same.numpy()
        assert all(kind.numpy()[p] == kind.numpy())
        assert all(p[p[s]] == np.flatnonzero(s))  # pairs are mutual


def test_mixed_targets_are_blends_of_two_rows_of_the_same_kind():
    imgs = tf.constant(np.stack([np.full((4, 4, 1), v, np.float32) for v in (0, 1, 0, 1)]))
    y = {"age": tf.constant([[10.], [-1.], [50.], [-1.]]),
         "age_reg": tf.constant([[10.], [-1.], [50.], [-1.]]),
         "gender": tf.constant([[0.], [-1.], [1.], [-1.]]),
         "emotion": tf.constant([[0.] * 7, [4., 0, 0, 0, 0, 0, 0], [0.] * 7,
                                 [0, 0, 0, 2., 0, 0, 0]]),
         "emotion_orig": tf.constant([[-1], [0], [-1], [3]])}
    kind = tf.constant([0, 1, 0, 1], tf.int32)
    out_x, out = mixup(imgs, y, kind, alpha=0.4, prob=1.0, seed=1)
    lam = 1 - out["gender"].numpy()[0, 0]  # row 0 (male) mixed with row 2 (female)
    assert 0.5 <= lam <= 1.0
    assert np.isclose(out["age"].numpy()[0, 0], lam * 10 + (1 - lam) * 50)
    assert np.allclose(out_x.numpy()[0], 0.0)  # both face images are 0
    e = out["emotion"].numpy()[1]
    assert np.isclose(e.sum(), 1.0) and e[0] >= 0.5 and np.isclose(e[0] + e[3], 1.0)
    assert np.array_equal(out["emotion_orig"].numpy(), y["emotion_orig"].numpy())


def test_prob_zero_changes_nothing():
    imgs = tf.random.uniform((4, 4, 4, 1))
    y = {"age": tf.ones((4, 1)), "age_reg": tf.ones((4, 1)), "gender": tf.ones((4, 1)),
         "emotion": tf.zeros((4, 7)), "emotion_orig": tf.zeros((4, 1), tf.int32)}
    out_x, out = mixup(imgs, y, tf.zeros(4, tf.int32), prob=0.0)
    assert out_x is imgs and out is y
