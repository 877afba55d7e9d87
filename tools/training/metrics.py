"""Plain-numpy metrics shared by training, conversion and evaluation."""

from __future__ import annotations

import numpy as np

from device.manifest import DEFAULT_AGE_GROUPS, age_group, parse_age_groups


def expected_age(probs: np.ndarray) -> np.ndarray:
    """Years from a softmax over years 0..N-1 (its expectation)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs @ np.arange(probs.shape[-1])


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def mae(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean(np.abs(y_true - y_pred))) if len(y_true) else float("nan")


def confusion(y_true, y_pred, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def told_gender(truth, pred) -> dict[str, float]:
    """``gender_acc`` over the faces whose gender was told (prediction >= 0; -1 is "not told",
    below the model's min_age or min_prob) and ``gender_coverage``, the share told; NaN where
    undefined."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    t = pred >= 0
    return {"gender_acc": accuracy(truth[t], pred[t]),
            "gender_coverage": float(t.mean()) if len(t) else float("nan")}


def class_recall(y_true, y_pred, n: int) -> np.ndarray:
    """Per class 0..n-1: the share of its faces predicted as it (NaN for a class with none)."""
    m = confusion(y_true, y_pred, n)
    rows = m.sum(1)
    return np.where(rows > 0, np.diag(m) / np.maximum(rows, 1), np.nan)


def macro_f1(y_true, y_pred, n: int) -> float:
    """Mean over classes present in ``y_true`` or ``y_pred`` of the per-class F1."""
    m = confusion(y_true, y_pred, n)
    tp = np.diag(m).astype(float)
    prec_den, rec_den = m.sum(0), m.sum(1)
    present = (prec_den + rec_den) > 0
    f1 = np.where(present, 2 * tp / np.maximum(prec_den + rec_den, 1), 0.0)
    return float(f1[present].mean()) if present.any() else float("nan")


def age_groups_of(ages, groups=DEFAULT_AGE_GROUPS) -> np.ndarray:
    parsed = parse_age_groups(groups)
    return np.array([age_group(float(a), parsed) for a in np.asarray(ages)])
