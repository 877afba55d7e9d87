"""The converter's gender and fairness rules: when the appliance tells a face's gender, and how
fair across race groups the shipped model must be (``tools.convert analyzer`` applies them)."""

from __future__ import annotations

import numpy as np

# A told child's gender must be right at least this often (``choose_min_age``).
CHILD_GENDER_FLOOR = 0.85
CHILD_AGE = 15  # years: below this estimated age a face counts as a child's
# The likelier gender's probability a face needs for its gender to be told: the floor the
# appliance has always applied to a visitor's gender (``[aggregate] min_gender_prob``), now
# applied to every face too.
GENDER_MIN_PROB = 0.7
# The worst UTKFace race group's gender accuracy (faces told) the shipped model must reach.
FAIRNESS_FLOOR = 0.93


def choose_min_age(est_age: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                   floor: float = CHILD_GENDER_FLOOR, child: float = CHILD_AGE) -> float:
    """The lowest whole year ``a`` from which the faces told as children (estimated age in
    [a, ``child``)) get their gender right at least ``floor`` of the time; ``child`` when none.

    ``est_age`` are the model's estimated ages (the appliance decides on those, not on true
    ages), ``truth``/``pred`` gender 0/1."""
    est_age, right = np.asarray(est_age, float), np.asarray(truth) == np.asarray(pred)
    for a in range(int(child) + 1):
        told = (est_age >= a) & (est_age < child)
        if not told.any() or right[told].mean() >= floor:
            return float(a)
    return float(child)


def confidence_bands(confidence: np.ndarray, right: np.ndarray, width: float = 0.05
                     ) -> list[dict]:
    """Gender accuracy per band of the likelier gender's probability: ``[{"from", "to", "n",
    "acc"}]`` for ``[0.5, 0.55)``, ... ``[0.95, 1.0]`` (``acc`` None in an empty band)."""
    confidence, right = np.asarray(confidence, float), np.asarray(right, bool)
    bands = []
    edges = np.round(np.arange(0.5, 1.0, width), 4)
    for k, lo in enumerate(edges):
        last = k == len(edges) - 1
        m = (confidence >= lo) & ((confidence <= 1.0) if last else (confidence < lo + width))
        bands.append({"from": float(lo), "to": float(min(round(lo + width, 4), 1.0)),
                      "n": int(m.sum()), "acc": float(right[m].mean()) if m.any() else None})
    return bands


def fairness_problems(metrics: dict, floor: float) -> list[str]:
    """The worst UTKFace race group's gender accuracy when below ``floor``."""
    from tools.datasets.utkface import RACES

    worst = metrics.get("utk_gender_acc_worst_race")
    if not floor or worst is None or worst >= floor:
        return []
    name = next(r for r in RACES if metrics.get(f"utk_gender_acc_{r}") == worst)
    return [f"fairness: gender accuracy of the worst UTKFace race group ({name}) is "
            f"{worst:.4f}, below {floor}"]


def gender_validation(trained, data: dict, val: np.ndarray, age_head: str, mirrored: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float model on the validation faces with an age and a gender (UTKFace,
    All-Age-Faces): (the shipped age head's estimates, true gender, predicted gender, the
    likelier gender's probability), each per face; empty arrays when there are none."""
    from tools.training.validation import gender_confidence, head_predictions, predict_keras

    rows = val[(data["age"][val] >= 0) & (data["gender"][val] >= 0)]
    if not len(rows):
        return tuple(np.zeros(0) for _ in range(4))
    outputs = predict_keras(trained, data["x"][rows], flip=mirrored)
    pred = head_predictions(outputs)
    return (pred[age_head], np.asarray(data["gender"][rows]), pred["gender"],
            gender_confidence(outputs["gender"]))
