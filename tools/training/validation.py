"""The validation report: UTKFace val (age MAE, gender accuracy, per race), All-Age-Faces val
slice (age MAE, gender accuracy), FER2013Valid (original labels, FER+ majority, per-class recall).
"""

from __future__ import annotations

import numpy as np

from device.types import EMOTIONS
from tools.datasets.utkface import RACES
from tools.training.data import as_input
from tools.training.metrics import (
    accuracy,
    age_groups_of,
    class_recall,
    expected_age,
    mae,
    told_gender,
)

UTK, FER, AAF = 0, 1, 2
ADULT = 15  # years: the adult slice of the gender figures


def tell_gender(gender: np.ndarray, est_age: np.ndarray, min_age: float,
                confidence: np.ndarray | None = None, min_prob: float = 0.5) -> np.ndarray:
    """Gender predictions with -1 ("not told") where the estimated age is below ``min_age`` or
    the likelier gender's probability (``confidence``) below ``min_prob``, as the appliance does
    (``device.analyzer``)."""
    untold = np.asarray(est_age) < min_age
    if confidence is not None:
        untold |= np.asarray(confidence) < min_prob
    return np.where(untold, -1, np.asarray(gender))


def gender_confidence(p_female: np.ndarray) -> np.ndarray:
    """The likelier gender's probability, ``max(p, 1 - p)``, per face."""
    p = np.asarray(p_female, float).reshape(-1)
    return np.maximum(p, 1 - p)


def head_predictions(outputs: dict[str, np.ndarray], min_age: float = 0.0,
                     min_prob: float = 0.5) -> dict[str, np.ndarray]:
    """Decoded predictions from raw head outputs (whichever heads are present); gender is not
    told (-1) below the estimated age ``min_age`` or the confidence ``min_prob``."""
    out = {}
    if "age" in outputs:
        a = np.asarray(outputs["age"]).reshape(len(outputs["age"]), -1)
        out["age"] = expected_age(a) if a.shape[1] > 1 else a[:, 0]
    if "age_reg" in outputs:
        out["age_reg"] = np.asarray(outputs["age_reg"]).reshape(-1)
    if "gender" in outputs:
        p_female = np.asarray(outputs["gender"]).reshape(-1)
        out["gender"] = (p_female >= 0.5).astype(int)
        if "age" in out:  # rows below the gender age or confidence limit are "not told" (-1)
            out["gender"] = tell_gender(out["gender"], out["age"], min_age,
                                        gender_confidence(p_female), min_prob)
    for name in ("emotion", "emotion_orig"):
        if name in outputs:
            out[name] = np.argmax(outputs[name], axis=-1)
    if "emotion" in outputs and "emotion_orig" in outputs:
        mix = (np.asarray(outputs["emotion"]) + np.asarray(outputs["emotion_orig"])) / 2
        out["emotion_mix"] = np.argmax(mix, axis=-1)
    return out


def _groups(prefix: str, names, masks, truth_age, truth_gender, pred) -> dict:
    """Per group: gender accuracy and coverage (when predicted) and age MAE (when predicted)."""
    out = {}
    for name, m in zip(names, masks):
        if not m.any():
            continue
        if "gender" in pred:
            g = told_gender(truth_gender[m], pred["gender"][m])
            out[f"{prefix}_gender_acc_{name}"] = g["gender_acc"]
            out[f"{prefix}_gender_coverage_{name}"] = g["gender_coverage"]
        if "age" in pred:
            out[f"{prefix}_age_mae_{name}"] = mae(truth_age[m], pred["age"][m])
    return out


def report(pred: dict[str, np.ndarray], data: dict[str, np.ndarray], idx: np.ndarray) -> dict:
    """Metrics on rows ``idx`` of the cache, given decoded predictions for those rows.

    A gender prediction of -1 means "not told" (``tell_gender``): gender accuracies are over the
    faces told, ``*_gender_coverage`` the share told. UTKFace numbers are also given per race
    (``utk_gender_acc_asian``, ``utk_age_mae_asian``, ...), for adults (15+, ``_adult``) and
    per age group (``_age_25-37``) and for each race group's adults (``_adult_asian``);
    ``utk_gender_acc_worst_race``, ``utk_age_mae_worst_race``, ``utk_gender_coverage_worst_race``
    and ``utk_gender_coverage_adult_worst_race`` are the worst race group's.
    """
    src = data["source"][idx]
    res = {}
    u = src == UTK
    if u.any():
        ages = data["age"][idx][u]
        genders, races = data["gender"][idx][u], data["race"][idx][u]
        upred = {k: v[u] for k, v in pred.items()}
        res["utk_n"] = int(u.sum())
        for head in ("age", "age_reg"):
            if head in pred:
                res[f"utk_{head}_mae"] = mae(ages, upred[head])
        if "age" in pred:
            res["utk_age_group_acc"] = accuracy(age_groups_of(ages), age_groups_of(upred["age"]))
        if "gender" in pred:
            res |= {f"utk_{k}": v for k, v in told_gender(genders, upred["gender"]).items()}
        res |= _groups("utk", RACES, [races == r for r in range(len(RACES))], ages, genders,
                       upred)
        res |= _groups("utk", ["adult"], [ages >= ADULT], ages, genders, upred)
        # race groups differ in their share of children, whose gender is mostly not told: the
        # adults of each group show the gap the model itself makes
        res |= _groups("utk", [f"adult_{r}" for r in RACES],
                       [(races == i) & (ages >= ADULT) for i in range(len(RACES))], ages,
                       genders, upred)
        groups = age_groups_of(ages)
        names = list(dict.fromkeys(groups))
        res |= _groups("utk", [f"age_{g}" for g in names], [groups == g for g in names], ages,
                       genders, upred)
        for key in ("gender_acc", "age_mae", "gender_coverage", "gender_coverage_adult"):
            per_race = [res[f"utk_{key}_{r}"] for r in RACES if f"utk_{key}_{r}" in res]
            per_race = [v for v in per_race if np.isfinite(v)]
            if per_race:
                res[f"utk_{key}_worst_race"] = (max if key == "age_mae" else min)(per_race)
    a = src == AAF
    if a.any():
        res["aaf_n"] = int(a.sum())
        if "age" in pred:
            res["aaf_age_mae"] = mae(data["age"][idx][a], pred["age"][a])
        if "gender" in pred:
            res |= {f"aaf_{k}": v
                    for k, v in told_gender(data["gender"][idx][a], pred["gender"][a]).items()}
    f = src == FER
    if f.any():
        orig, major = data["emotion"][idx][f], data["majority"][idx][f]
        res["fer_n"] = int(f.sum())
        for head in ("emotion", "emotion_orig", "emotion_mix"):
            if head in pred:
                p = pred[head][f]
                res[f"fer_{head}_acc_orig"] = accuracy(orig[orig >= 0], p[orig >= 0])
                res[f"fer_{head}_acc_ferplus"] = accuracy(major[major >= 0], p[major >= 0])
                recall = class_recall(major[major >= 0], p[major >= 0], len(EMOTIONS))
                res |= {f"fer_{head}_recall_ferplus_{e}": r for e, r in zip(EMOTIONS, recall)}
                res[f"fer_{head}_min_recall_ferplus"] = float(np.nanmin(recall))
    return res


def mirror_average(outputs: dict, mirrored: dict) -> dict:
    """The mean of each head's outputs on the faces and on their mirror images (every head is a
    probability or a number of years, so the mean is the appliance's average)."""
    return {k: (np.asarray(v) + np.asarray(mirrored[k])) / 2 for k, v in outputs.items()}


def predict_keras(model, x_uint8: np.ndarray, batch: int = 256, flip: bool = False) -> dict:
    """Raw outputs (a dict per head) for uint8 faces; ``flip``: mirror-averaged."""
    outputs = model.predict(as_input(x_uint8), batch_size=batch, verbose=0)
    if flip:
        outputs = mirror_average(outputs, predict_keras(model, x_uint8[:, :, ::-1], batch))
    return outputs


def evaluate_keras(model, data: dict[str, np.ndarray], idx: np.ndarray, batch: int = 256,
                   flip: bool = False, min_age: float = 0.0, min_prob: float = 0.5) -> dict:
    return report(head_predictions(predict_keras(model, data["x"][idx], batch, flip), min_age,
                                   min_prob), data, idx)


def selection_score(m: dict) -> float:
    """One number to keep the best epoch: gender accuracy (overall and the worst UTKFace race
    group's) and FER+ majority accuracy up, age MAE (decades) down."""
    age = min(m.get("utk_age_mae", 99), m.get("utk_age_reg_mae", 99))
    gender = (m.get("utk_gender_acc", 0) + m.get("utk_gender_acc_worst_race",
                                                 m.get("utk_gender_acc", 0))) / 2
    return gender + m.get("fer_emotion_acc_ferplus", 0) - age / 10
