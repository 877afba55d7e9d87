"""Per-head losses that ignore the samples a head has no label for.

UTKFace faces teach age and gender, FER faces teach emotion: each batch mixes both, so every loss
masks out rows whose target is missing (age/gender/label -1, soft votes all zero) and averages over
the rows that remain.
"""

from __future__ import annotations

import keras
from keras import ops

from tools.model_def import AGE_BINS

_EPS = 1e-7


def _masked_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable("kiosk")
def age_distribution_loss(y_true, y_pred, sigma: float = 2.0, l1_weight: float = 0.1):
    """DEX-style age loss: cross-entropy to a Gaussian around the true year + L1 of the expectation.

    ``y_true`` is (batch, 1) years, -1 where unknown; ``y_pred`` the softmax over years 0..100.
    """
    age = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    mask = age >= 0
    years = ops.arange(AGE_BINS, dtype="float32")
    target = ops.exp(-0.5 * ops.square((years[None, :] - age[:, None]) / sigma))
    target = target / ops.maximum(ops.sum(target, axis=-1, keepdims=True), _EPS)
    ce = -ops.sum(target * ops.log(ops.clip(y_pred, _EPS, 1.0)), axis=-1)
    l1 = ops.abs(ops.sum(y_pred * years[None, :], axis=-1) - age)
    return _masked_mean(ce + l1_weight * l1, mask)


@keras.saving.register_keras_serializable("kiosk")
def age_regression_loss(y_true, y_pred):
    """L1 in decades (years / 10), so its gradient is on the scale of the other heads."""
    age = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    pred = ops.reshape(y_pred, (-1,))
    return _masked_mean(ops.abs(pred - age) / 10.0, age >= 0)


@keras.saving.register_keras_serializable("kiosk")
def gender_loss(y_true, y_pred):
    """Binary cross-entropy on P(female); ``y_true`` -1 where unknown."""
    y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    p = ops.clip(ops.reshape(y_pred, (-1,)), _EPS, 1 - _EPS)
    bce = -(y * ops.log(p) + (1 - y) * ops.log(1 - p))
    return _masked_mean(bce, y >= 0)


@keras.saving.register_keras_serializable("kiosk")
def soft_label_loss(y_true, y_pred):
    """Cross-entropy to soft targets (FER+ votes, normalised here); all-zero rows are unlabelled.

    A row whose targets sum to less than 1 counts with that weight (a teacher's guess for a face
    nobody labelled, ``--teacher-unlabelled``); vote counts and distributions count fully."""
    y = ops.cast(y_true, "float32")
    total = ops.sum(y, axis=-1)
    target = y / ops.maximum(total[:, None], _EPS)
    ce = -ops.sum(target * ops.log(ops.clip(y_pred, _EPS, 1.0)), axis=-1)
    return _masked_mean(ce * ops.minimum(total, 1.0), total > 0)


@keras.saving.register_keras_serializable("kiosk")
class AdjustedSoftLabelLoss(keras.losses.Loss):
    """``soft_label_loss`` on logit-adjusted probabilities (Menon et al., 2021, "Long-tail
    learning via logit adjustment"): during training each class's log-probability is raised by
    ``tau * log(prior)`` before the cross-entropy, so a frequent class has to win by a margin
    and a rare one (disgust, fear) is not learnt away; the model's own output, used at run time,
    is the unadjusted one. ``tau`` 0 is plain ``soft_label_loss``.
    """

    def __init__(self, prior, tau: float = 1.0, name: str = "adjusted_soft_label_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.prior = [float(p) for p in prior]
        self.tau = float(tau)

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, "float32")
        total = ops.sum(y, axis=-1)
        target = y / ops.maximum(total[:, None], _EPS)
        log_prior = ops.log(ops.convert_to_tensor(self.prior, "float32"))
        logits = ops.log(ops.clip(y_pred, _EPS, 1.0)) + self.tau * log_prior[None, :]
        log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        ce = -ops.sum(target * log_probs, axis=-1)
        # one value per batch, like the other losses here: Keras' mean over it is the value
        return ops.broadcast_to(_masked_mean(ce * ops.minimum(total, 1.0), total > 0),
                                ops.shape(total))

    def get_config(self):
        return super().get_config() | {"prior": self.prior, "tau": self.tau}


def class_prior(targets, floor: float = 1e-3):
    """Class frequencies of soft targets (rows normalised; unlabelled rows ignored), floored."""
    import numpy as np

    t = np.asarray(targets, np.float64)
    t = t[t.sum(1) > 0]
    prior = (t / t.sum(1, keepdims=True)).sum(0)
    prior = np.maximum(prior / prior.sum(), floor)
    return prior / prior.sum()


@keras.saving.register_keras_serializable("kiosk")
def sparse_label_loss(y_true, y_pred):
    """Cross-entropy to a class index, -1 where unlabelled."""
    y = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    onehot = ops.one_hot(ops.maximum(y, 0), ops.shape(y_pred)[-1])
    ce = -ops.sum(onehot * ops.log(ops.clip(y_pred, _EPS, 1.0)), axis=-1)
    return _masked_mean(ce, y >= 0)


LOSSES = {"age": age_distribution_loss, "age_reg": age_regression_loss, "gender": gender_loss,
          "emotion": soft_label_loss, "emotion_orig": sparse_label_loss}
