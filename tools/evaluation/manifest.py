"""Writing the analyzer's entry into ``models/manifest.json`` (format: ``device/manifest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from device.manifest import DEFAULT_AGE_GROUPS, sha256_file
from device.manifest import gender_min_age as min_age_of
from device.manifest import gender_min_prob as min_prob_of
from device.types import EMOTIONS, GENDERS
from tools.model_def import AGE_BINS, INPUT_SIZE


def analyzer_entry(model: Path, models_dir: Path, age_kind: str = "distribution",
                   test_time: str = "none", gender_min_age: float | None = None,
                   gender_min_prob: float | None = None) -> dict:
    """The manifest's ``analyzer`` entry for a converted model file; ``test_time`` ``"flip"``
    makes the appliance average each face with its mirror image.

    ``gender_min_age``: years below which the appliance does not tell a face's gender
    (``heads.gender.min_age``), ``gender_min_prob`` the probability the likelier gender needs
    (``heads.gender.min_prob``); None leaves a key out (no such limit). A value the appliance
    would refuse raises ModelError naming the key.
    """
    age = {"output": "age", "kind": age_kind}
    if age_kind == "distribution":
        age["bins"] = list(range(AGE_BINS))
    gender = {"output": "gender", "labels": list(GENDERS)}
    if gender_min_age is not None:  # checked as the appliance will check it
        gender["min_age"] = min_age_of({"heads": {"gender": {"min_age": gender_min_age}}})
    if gender_min_prob is not None:
        gender["min_prob"] = min_prob_of({"heads": {"gender": {"min_prob": gender_min_prob}}})
    rel = Path(model).resolve().relative_to(Path(models_dir).resolve())
    return {"file": str(rel), "sha256": sha256_file(model),
            "input": {"size": INPUT_SIZE, "channels": 1, "scale": 255.0},
            "heads": {"age": age, "gender": gender,
                      "emotion": {"output": "emotion", "labels": list(EMOTIONS)}},
            "age_groups": list(DEFAULT_AGE_GROUPS), "test_time": test_time}


def detector_entry(models_dir: Path) -> dict | None:
    """An entry for the default detector variant in ``models_dir``: its int8 model, else its float
    source in ``src/``; None when neither is there."""
    from device.detector import DEFAULT_VARIANT, DETECTOR_VARIANTS

    variant = DETECTOR_VARIANTS[DEFAULT_VARIANT]
    for name in (variant.int8_model, f"src/{variant.float_model}"):
        path = Path(models_dir) / name
        if path.is_file():
            return {"file": name, "sha256": sha256_file(path), "variant": DEFAULT_VARIANT}
    return None


def update_manifest(path: Path, analyzer: dict, metrics: dict | None = None,
                    version: str | None = None) -> dict:
    """Set the analyzer entry (and ``metrics.analyzer``) of ``path``, keeping every other key.

    A missing manifest is created with the default detector found beside it; a manifest without
    one gets it filled in, since the device refuses a manifest that has no ``detector``.
    """
    path = Path(path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    # Provisioning installs only bundles newer than this (numbers compared as numbers), so it is
    # set on purpose, never bumped by a date: "1.0.0" is below any real bundle version.
    data["version"] = version or data.get("version") or "1.0.0"
    if not data.get("detector"):
        data["detector"] = detector_entry(path.parent) or {}
    data["analyzer"] = analyzer
    if metrics is not None:
        data.setdefault("metrics", {})["analyzer"] = metrics
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data
