"""The Markdown evaluation report: headline table, confusion matrices, fairness table, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.types import EMOTIONS, GENDERS
from tools.training.metrics import confusion

GENDER_SHADES = ("Buolamwini & Gebru, \"Gender Shades: Intersectional Accuracy Disparities in "
                 "Commercial Gender Classification\", FAT* 2018")


def _f(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def _ci(pair, pct=False) -> str:
    if not pair or any(v is None or not np.isfinite(v) for v in pair):
        return ""
    lo, hi = pair
    return f" ({100 * lo:.1f}–{100 * hi:.1f})" if pct else f" ({lo:.2f}–{hi:.2f})"


def headline(metrics: dict) -> list[str]:
    base = metrics.get("baseline_pca", {})
    ci = metrics.get("ci95", {})
    rows = ["| data set | n | metric | model (95 % CI) | PCA baseline |", "|---|---|---|---|---|"]

    def row(key, name, metric, pct):
        m = metrics.get(key)
        if m is None or metric not in m:
            return
        b = base.get(key, {}).get(metric)
        rows.append(f"| {key} | {m.get('n', '')} | {name} | {_f(m[metric], pct)}"
                    f"{_ci(ci.get(key, {}).get(metric), pct)} | "
                    f"{_f(b, pct) if b is not None else '–'} |")

    row("utkface", "age MAE (years)", "age_mae", False)
    row("utkface", "gender accuracy (faces told)", "gender_acc", True)
    row("utkface", "gender coverage (share told)", "gender_coverage", True)
    row("utkface", "age-group accuracy", "age_group_acc", True)
    row("fer2013", "accuracy (original labels)", "acc", True)
    row("fer2013", "macro F1", "macro_f1", True)
    row("ferplus", "accuracy (FER+ majority)", "acc", True)
    row("ck", "accuracy (6 shared classes)", "acc", True)
    row("aaf", "age MAE (years)", "age_mae", False)
    row("aaf", "gender accuracy (faces told)", "gender_acc", True)
    row("aaf", "gender coverage (share told)", "gender_coverage", True)
    for key in ("utkface", "aaf"):
        if key in metrics:
            rows.append(f"\n{key}: no face found in {metrics[key]['no_face']} of "
                        f"{metrics[key]['n']} images (analysed whole).")
    return rows


def reference(ref: dict, metrics: dict) -> list[str]:
    """Ours against the reference emotion model on the same faces."""
    rows = [f"`{ref['file']}` ran on the same crops as ours "
            f"({'averaged with the mirror image' if ref.get('flip') else 'one pass'}). "
            "McNemar's exact test counts the faces only one of the two gets right; p is the "
            "chance of a split at least this uneven if both were equally accurate.", "",
            "| data set | n | ours | reference (95 % CI) | ours - reference | only ours right | "
            "only reference right | McNemar p |", "|---|---|---|---|---|---|---|---|"]
    for key, name in (("fer2013", "FER2013, original labels"), ("ferplus", "FER+ majority"),
                      ("ck", "CK+48, 6 classes")):
        r = ref.get(key)
        if r is None:
            continue
        pr = r["paired"]
        rows.append(f"| {name} | {r['n']} | {_f(metrics[key]['acc'], True)} | "
                    f"{_f(r['acc'], True)}{_ci(r.get('acc_ci95'), True)} | "
                    f"{100 * pr['acc_diff']:+.1f} points | {pr['only_a']} | {pr['only_b']} | "
                    f"{pr['p']:.3g} |")
    return rows


def fairness(utk: dict) -> list[str]:
    rows = ["| group | n | age MAE | gender acc | gender coverage | age-group acc |",
            "|---|---|---|---|---|---|"]
    for title, key in (("race", "by_race"), ("gender", "by_gender"), ("age group", "by_age_group")):
        for name, m in utk.get(key, {}).items():
            rows.append(f"| {title}: {name} | {m['n']} | {_f(m['age_mae'])} | "
                        f"{_f(m['gender_acc'], True)} | {_f(m.get('gender_coverage'), True)} | "
                        f"{_f(m.get('age_group_acc'), True)} |")
    return rows


def told_faces(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    """The (truth, prediction) pairs whose gender was told (prediction not -1)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    t = pred >= 0
    return truth[t], pred[t]


def confusion_table(truth, pred, labels) -> list[str]:
    m = confusion(truth, pred, len(labels))
    rows = ["| true \\ predicted | " + " | ".join(labels) + " | recall |",
            "|---" * (len(labels) + 2) + "|"]
    for i, name in enumerate(labels):
        total = m[i].sum()
        rec = f"{100 * m[i, i] / total:.0f}%" if total else "–"
        rows.append(f"| **{name}** | " + " | ".join(str(v) for v in m[i]) + f" | {rec} |")
    return rows


def plots(out_dir: Path, stem: str, details: dict) -> list[str]:
    """PNG plots beside the report; returns Markdown image lines. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    for key, title in (("fer2013", "FER2013 (original labels)"), ("ferplus", "FER+ majority"),
                       ("ck", "CK+48 (6 classes)")):
        src = details.get("fer", {}).get(key) if key != "ck" else details.get("ck", {}).get("ck")
        if src is None:
            continue
        m = confusion(*src, len(EMOTIONS)).astype(float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(7), EMOTIONS, rotation=45)
        ax.set_yticks(range(7), EMOTIONS)
        for i in range(7):
            for j in range(7):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.tight_layout()
        name = f"{stem}_confusion_{key}.png"
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        lines.append(f"![{title}]({name})")
    for key in ("utkface", "aaf"):
        d = details.get(key)
        if d is None:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(d["ages"], d["pred_age"], s=2, alpha=0.3)
        ax.plot([0, 100], [0, 100], "k--", lw=1)
        ax.set_xlabel("true age")
        ax.set_ylabel("predicted age")
        ax.set_title(f"{key}: age")
        fig.tight_layout()
        name = f"{stem}_age_{key}.png"
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        lines.append(f"![{key} age]({name})")
    return lines


def gender_rule(analyzer: dict) -> str:
    """The analyzer's gender limits (age, probability), in words for the report."""
    age, prob = analyzer.get("gender_min_age"), analyzer.get("gender_min_prob")
    words = f"from an estimated {age:g} years" if age else "at any age"
    if prob and prob > 0.5:
        return f"{words}, and when the likelier gender's probability is at least {prob:g}"
    return f"{words}, whatever the likelier gender's probability"


def mirror_words(analyzer: dict) -> str:
    """How the analyzer treated each face's mirror image, in words for the report."""
    if analyzer.get("flip"):
        return "on (each face and its mirror image, averaged by the appliance)"
    if analyzer.get("test_time") == "in_model":
        return "inside the model (the file averages each face with its mirror image; one call)"
    return "off"


def write_report(path: Path, metrics: dict, details: dict, command: str = "") -> None:
    """Write ``path`` (Markdown) and its PNG plots beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ["# Attribute model evaluation", ""]
    if command:
        out += ["Produced by:", "", f"    {command}", ""]
    if "analyzer" in metrics:
        a = metrics["analyzer"]
        out += [f"Analyzer `{a['file']}`, models {a['models_version']}, mirror averaging "
                f"{mirror_words(a)}.", ""]
    out += ["## Headline", ""] + headline(metrics) + [""]
    if "utkface" in metrics or "aaf" in metrics:
        out += ["Gender is told as the appliance tells it, by the model's `min_age` and "
                f"`min_prob` ({gender_rule(metrics.get('analyzer', {}))}): gender accuracy is "
                "over the faces told (the PCA baseline's too, on the same faces), coverage is "
                "the share of faces told.", ""]
    if "ci95" in metrics:
        out += ["Intervals: 95 %, Wilson's for accuracies, a seeded bootstrap (2,000 resamples) "
                "for age MAE. They say how far the same model could read on another draw of "
                "faces like these, not how it does on other data sets.", ""]
    if "reference_emotion" in metrics:
        out += ["## Reference emotion model, same faces", ""] + reference(
            metrics["reference_emotion"], metrics) + [""]
    if "utkface" in metrics:
        out += ["## Fairness (UTKFace)", "",
                "Accuracy and error broken down by race, gender and age group, as urged by "
                f"{GENDER_SHADES}: a single average hides the groups a model fails.", ""]
        out += fairness(metrics["utkface"]) + [""]
        d = details["utkface"]
        out += ["### Gender confusion (UTKFace, faces told)", ""] + confusion_table(
            *told_faces(d["genders"], d["pred_gender"]), list(GENDERS)) + [""]
    for key, title in (("fer2013", "FER2013, original labels"), ("ferplus", "FER+ majority")):
        if key in details.get("fer", {}):
            out += [f"### Emotion confusion: {title}", ""] + confusion_table(
                *details["fer"][key], list(EMOTIONS)) + [""]
    if "ck" in details:
        out += ["### Emotion confusion: CK+48 (argmax over 6 shared classes)", ""] + \
            confusion_table(*details["ck"]["ck"], list(EMOTIONS)) + [""]
    try:
        images = plots(path.parent, path.stem, details)
    except ImportError:
        images = ["(plots skipped: matplotlib is not installed; pip install matplotlib)"]
    out += ["## Plots", ""] + images + [""]
    path.write_text("\n".join(out))
