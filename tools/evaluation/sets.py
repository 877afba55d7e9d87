"""One evaluation per data set: crops as the appliance makes them, metrics, and details for plots.

Each ``evaluate_*`` takes a reader's records, a ``DevicePath`` (crops and predictions as the
appliance makes them) and optionally the PCA baseline, and returns (metrics for the JSON, details
for the report).
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from device.manifest import DEFAULT_AGE_GROUPS
from device.types import EMOTIONS, GENDERS
from tools.datasets import RACES
from tools.datasets.ferplus import ferplus_majority
from tools.evaluation.device_path import UNTOLD
from tools.evaluation.stats import accuracy_interval, mae_interval
from tools.training.metrics import accuracy, age_groups_of, macro_f1, mae, told_gender

CK_SHARED = ("angry", "disgust", "fear", "happy", "sad", "surprise")


def told(pred_gender) -> np.ndarray:
    """Which gender predictions were made (``pred_gender`` holds ``UNTOLD``, -1, for the
    faces below the model's min_age or min_prob)."""
    return np.asarray(pred_gender) != UNTOLD


def gender_scores(genders, pred_gender) -> dict:
    """``gender_acc``: accuracy over the faces whose gender was told (None when none was), and
    ``gender_coverage``: the share of faces told (None without faces)."""
    return {k: None if np.isnan(v) else v for k, v in told_gender(genders, pred_gender).items()}


def device_crops(records, path, desc: str):
    """Aligned crops through detector + alignment; (crops, found flags, kept records)."""
    crops, found, kept = [], [], []
    for rec in tqdm(records, desc=desc, mininterval=10):
        img = rec.image()
        if img is None:
            continue
        crop, ok = path.device_crop(img)
        crops.append(crop)
        found.append(ok)
        kept.append(rec)
    return crops, np.array(found, bool), kept


def plain_crops(records, path, desc: str):
    """Pre-framed crops (FER, CK+) resized; (crops, kept records)."""
    crops, kept = [], []
    for rec in tqdm(records, desc=desc, mininterval=10):
        img = rec.image()
        if img is None:
            continue
        crops.append(path.framed_crop(img))
        kept.append(rec)
    return crops, kept


def _age_gender(ages, genders, pred_age, pred_gender) -> dict:
    return {"n": int(len(ages)), "age_mae": mae(ages, pred_age),
            **gender_scores(genders, pred_gender)}


def age_gender_metrics(ages, genders, races, pred) -> dict:
    """UTKFace metrics, with the fairness breakdowns by race, gender and age group; gender
    accuracy and coverage as ``gender_scores`` says, overall and in every breakdown."""
    groups, pred_groups = age_groups_of(ages), age_groups_of(pred.age)
    out = _age_gender(ages, genders, pred.age, pred.gender)
    out["age_group_acc"] = accuracy(groups, pred_groups)

    def breakdown(keys, names):
        res = {}
        for k, name in names:
            m = keys == k
            if m.any():
                res[name] = _age_gender(ages[m], genders[m], pred.age[m], pred.gender[m])
                res[name]["age_group_acc"] = accuracy(groups[m], pred_groups[m])
        return res

    out["by_race"] = breakdown(races, list(enumerate(RACES)))
    out["by_gender"] = breakdown(genders, list(enumerate(GENDERS)))
    out["by_age_group"] = breakdown(groups, [(g, g) for g in DEFAULT_AGE_GROUPS])
    return out


def evaluate_utkface(records, path, baseline=None):
    crops, found, kept = device_crops(records, path, "utkface")
    pred = path.predict(crops)
    ages = np.array([r.age for r in kept], float)
    genders = np.array([r.gender for r in kept], int)
    races = np.array([r.race for r in kept], int)
    metrics = {"n": len(kept), "no_face": int((~found).sum()),
               **{k: v for k, v in age_gender_metrics(ages, genders, races, pred).items()
                  if k != "n"}}
    details = {"ages": ages, "pred_age": pred.age, "genders": genders, "pred_gender": pred.gender}
    if baseline is not None:
        details["baseline"] = baseline_gender(baseline, crops, genders, pred.gender)
    return metrics, details


def baseline_gender(baseline, crops, genders, pred_gender) -> dict:
    """The baseline's gender accuracy on the same faces as the model's: those it told."""
    t = told(pred_gender)
    if not t.any():
        return {"gender_acc": None}
    base = baseline.predict_gender([c for c, keep in zip(crops, t) if keep])
    return {"gender_acc": accuracy(np.asarray(genders)[t], base)}


def evaluate_aaf(records, path, baseline=None):
    crops, found, kept = device_crops(records, path, "aaf")
    pred = path.predict(crops)
    ages = np.array([r.age for r in kept], float)
    genders = np.array([r.gender for r in kept], int)
    metrics = {"n": len(kept), "no_face": int((~found).sum()), "age_mae": mae(ages, pred.age),
               **gender_scores(genders, pred.gender)}
    details = {"ages": ages, "pred_age": pred.age, "genders": genders, "pred_gender": pred.gender}
    if baseline is not None:
        details["baseline"] = baseline_gender(baseline, crops, genders, pred.gender)
    return metrics, details


def evaluate_fer(records, path, baseline=None, reference=None):
    """FER+ split: ``fer2013`` on original labels, ``ferplus`` on 7-class majority votes.
    ``reference``: optional crops -> (N, 7) probabilities of another emotion model, run on the
    same crops (``details["reference"]``)."""
    crops, kept = plain_crops(records, path, "fer")
    pred = np.argmax(path.predict(crops).emotion, axis=1)
    base = baseline.predict_emotion(crops) if baseline is not None else None
    orig = np.array([-1 if r.emotion is None else r.emotion for r in kept])
    major = np.array([-1 if (m := ferplus_majority(r.votes)) is None else m for r in kept])
    o, m = orig >= 0, major >= 0
    fer = {"n": int(o.sum()), "acc": accuracy(orig[o], pred[o]),
           "macro_f1": macro_f1(orig[o], pred[o], len(EMOTIONS))}
    ferplus = {"n": int(m.sum()), "acc": accuracy(major[m], pred[m])}
    details = {"fer2013": (orig[o], pred[o]), "ferplus": (major[m], pred[m])}
    if base is not None:
        details["baseline"] = {
            "fer2013": {"acc": accuracy(orig[o], base[o]),
                        "macro_f1": macro_f1(orig[o], base[o], len(EMOTIONS))},
            "ferplus": {"acc": accuracy(major[m], base[m])}}
    if reference is not None and crops:
        ref = np.argmax(reference(crops), axis=1)
        details["reference"] = {"fer2013": (orig[o], ref[o]), "ferplus": (major[m], ref[m])}
    return fer, ferplus, details


def ck_predictions(probs: np.ndarray) -> np.ndarray:
    """Argmax over the six emotions CK+ shares with ours, as indices into ``EMOTIONS``."""
    shared = [EMOTIONS.index(e) for e in CK_SHARED]
    return np.array(shared)[np.argmax(np.asarray(probs)[:, shared], axis=1)]


def evaluate_ck(records, path, baseline=None, reference=None):
    crops, kept = plain_crops(records, path, "ck")
    truth = np.array([r.emotion for r in kept], int)
    pred = ck_predictions(path.predict(crops).emotion)
    details = {"ck": (truth, pred)}
    if reference is not None and crops:
        details["reference"] = {"ck": (truth, ck_predictions(reference(crops)))}
    if baseline is not None:
        details["baseline"] = {"acc": accuracy(truth, ck_predictions(
            baseline.predict_emotion_probs(crops)))}
    return {"n": len(kept), "acc": accuracy(truth, pred)}, details


def rounded_interval(pair) -> list[float]:
    """Rounded outwards to 4 decimals, so the interval still holds the number it is about."""
    lo, hi = pair
    return [math.floor(lo * 1e4) / 1e4, math.ceil(hi * 1e4) / 1e4]


def intervals(details: dict) -> dict:
    """95 % confidence intervals of the headline numbers: Wilson for accuracies, a seeded
    bootstrap for age MAE. Keyed like the metrics: ``{"utkface": {"age_mae": [lo, hi], ...}}``.
    Gender accuracy's is over the faces whose gender was told (None when none was)."""
    out = {}
    for key in ("utkface", "aaf"):
        d = details.get(key)
        if d is None:
            continue
        t = told(d["pred_gender"])
        out[key] = {
            "age_mae": rounded_interval(mae_interval(d["ages"], d["pred_age"])),
            "gender_acc": rounded_interval(accuracy_interval(
                np.asarray(d["genders"])[t], np.asarray(d["pred_gender"])[t])) if t.any() else None}
        if key == "utkface":
            out[key]["age_group_acc"] = rounded_interval(accuracy_interval(
                age_groups_of(d["ages"]), age_groups_of(d["pred_age"])))
    for key in ("fer2013", "ferplus"):
        if key in details.get("fer", {}):
            out[key] = {"acc": rounded_interval(accuracy_interval(*details["fer"][key]))}
    if "ck" in details:
        out["ck"] = {"acc": rounded_interval(accuracy_interval(*details["ck"]["ck"]))}
    return out
