"""The validation report: UTKFace val (age MAE, gender accuracy), FER2013Valid (original + FER+)."""

from __future__ import annotations

import numpy as np

from tools.training.data import as_input
from tools.training.metrics import accuracy, age_groups_of, expected_age, mae

UTK, FER = 0, 1


def head_predictions(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Decoded predictions from raw head outputs (whichever heads are present)."""
    out = {}
    if "age" in outputs:
        a = np.asarray(outputs["age"]).reshape(len(outputs["age"]), -1)
        out["age"] = expected_age(a) if a.shape[1] > 1 else a[:, 0]
    if "age_reg" in outputs:
        out["age_reg"] = np.asarray(outputs["age_reg"]).reshape(-1)
    if "gender" in outputs:
        out["gender"] = (np.asarray(outputs["gender"]).reshape(-1) >= 0.5).astype(int)
    for name in ("emotion", "emotion_orig"):
        if name in outputs:
            out[name] = np.argmax(outputs[name], axis=-1)
    if "emotion" in outputs and "emotion_orig" in outputs:
        mix = (np.asarray(outputs["emotion"]) + np.asarray(outputs["emotion_orig"])) / 2
        out["emotion_mix"] = np.argmax(mix, axis=-1)
    return out


def report(pred: dict[str, np.ndarray], data: dict[str, np.ndarray], idx: np.ndarray) -> dict:
    """Metrics on rows ``idx`` of the cache, given decoded predictions for those rows."""
    src = data["source"][idx]
    res = {}
    u = src == UTK
    if u.any():
        ages = data["age"][idx][u]
        res["utk_n"] = int(u.sum())
        for head in ("age", "age_reg"):
            if head in pred:
                res[f"utk_{head}_mae"] = mae(ages, pred[head][u])
        if "age" in pred:
            res["utk_age_group_acc"] = accuracy(age_groups_of(ages), age_groups_of(pred["age"][u]))
        if "gender" in pred:
            res["utk_gender_acc"] = accuracy(data["gender"][idx][u], pred["gender"][u])
    f = src == FER
    if f.any():
        orig, major = data["emotion"][idx][f], data["majority"][idx][f]
        res["fer_n"] = int(f.sum())
        for head in ("emotion", "emotion_orig", "emotion_mix"):
            if head in pred:
                p = pred[head][f]
                res[f"fer_{head}_acc_orig"] = accuracy(orig[orig >= 0], p[orig >= 0])
                res[f"fer_{head}_acc_ferplus"] = accuracy(major[major >= 0], p[major >= 0])
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
                   flip: bool = False) -> dict:
    return report(head_predictions(predict_keras(model, data["x"][idx], batch, flip)), data, idx)


def selection_score(m: dict) -> float:
    """One number to keep the best epoch: gender and emotion accuracy up, age MAE (decades) down."""
    age = min(m.get("utk_age_mae", 99), m.get("utk_age_reg_mae", 99))
    emo = max(m.get("fer_emotion_acc_orig", 0), m.get("fer_emotion_orig_acc_orig", 0))
    return m.get("utk_gender_acc", 0) + emo - age / 10
