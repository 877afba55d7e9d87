"""Reading and checking ``manifest.json``: which models are installed and how to use them.

Format (keys not listed are allowed and kept)::

    {
      "version": "2026.11.28",
      "detector": {"file": "face_detector_full_int8.tflite", "sha256": "...", "variant": "full"},
      "analyzer": {
        "file": "multihead_int8.tflite", "sha256": "...",
        "input": {"size": 64, "channels": 1, "scale": 255.0},
        "heads": {
          "age": {"output": "age", "kind": "regression"}            # years
                 | {"output": "age", "kind": "distribution", "bins": [0, 1, ..., 100]},
          "gender": {"output": "gender", "labels": ["male", "female"],
                     "min_age": 15.0,  # optional: below this estimated age (years) gender is
                                       # not told ("unknown"); absent or 0: always told
                     "min_prob": 0.7},  # optional: nor when the likelier gender's probability
                                        # is below this; absent or 0.5: told whatever it is
          "emotion": {"output": "emotion", "labels": ["angry", ..., "neutral"]}
        },
        "age_groups": ["0-2", "3-7", "8-14", "15-24", "25-37", "38-47", "48-59", "60+"],
        "test_time": "flip" | "in_model" | "none"  # optional (default none): flip averages
      },                  # each face with its mirror image (two passes per face); in_model: the
                          # model file does that itself (one call), so the runtime does not
      "metrics": {...}
    }

``analyzer`` may be absent: then no attribute model is installed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from device.errors import ModelError

DEFAULT_AGE_GROUPS = ("0-2", "3-7", "8-14", "15-24", "25-37", "38-47", "48-59", "60+")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(models_dir: Path) -> dict:
    """Read ``models_dir/manifest.json``; a clear ModelError when it is missing or malformed."""
    path = Path(models_dir) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"no model manifest at {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model manifest {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or "detector" not in data:
        raise ModelError(f"model manifest {path} has no 'detector' entry")
    return data


def model_path(models_dir: Path, entry: dict, verify: bool = True) -> Path:
    """Path of the model an entry names, checked against its sha256 when ``verify``."""
    try:
        path = Path(models_dir) / entry["file"]
    except (KeyError, TypeError) as exc:
        raise ModelError(f"manifest entry has no 'file': {entry!r}") from exc
    if not path.is_file():
        raise ModelError(f"model file named in the manifest is missing: {path}")
    if verify and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise ModelError(f"model file {path} does not match its sha256 in the manifest")
    return path


def _gender_head(entry: dict) -> dict:
    """The analyzer entry's ``heads.gender`` object ({} when absent)."""
    head = entry.get("heads", {}).get("gender", {})
    if not isinstance(head, dict):
        raise ModelError(f"manifest analyzer.heads.gender must be an object, got {head!r}")
    return head


def gender_min_age(entry: dict) -> float:
    """The analyzer entry's ``heads.gender.min_age``: years below which gender is not told.

    Absent is 0.0: gender is always told. Raises ModelError naming the key when the value is
    not a finite number of years >= 0 (null, a bool, a string or a negative age are refused).
    """
    head = _gender_head(entry)
    if "min_age" not in head:
        return 0.0
    value = head["min_age"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise ModelError(f"manifest analyzer.heads.gender.min_age must be a number of years "
                         f">= 0, got {value!r}")
    return float(value)


def gender_min_prob(entry: dict) -> float:
    """The analyzer entry's ``heads.gender.min_prob``: the probability the likelier gender needs
    for a face's gender to be told.

    Absent is 0.5: the likelier gender is always told. Raises ModelError naming the key when the
    value is not a finite number in [0.5, 1) (null, a bool, a string, a probability below a coin
    toss or one no answer can reach are refused).
    """
    head = _gender_head(entry)
    if "min_prob" not in head:
        return 0.5
    value = head["min_prob"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.5 <= value < 1:
        raise ModelError(f"manifest analyzer.heads.gender.min_prob must be a probability in "
                         f"[0.5, 1), got {value!r}")
    return float(value)


def parse_age_groups(groups) -> list[tuple[str, float, float]]:
    """Turn labels like ``"0-2"``, ``"60+"`` into (label, low, high) with contiguous integer years.

    ``"3-7"`` covers ages from 3 up to (not including) 8; ``"60+"`` has no upper bound.
    Raises ValueError when the groups are not contiguous and increasing.
    """
    out = []
    for label in groups:
        text = str(label).strip()
        try:
            if text.endswith("+"):
                low, high = float(text[:-1]), float("inf")
            else:
                a, b = text.split("-")
                low, high = float(a), float(b) + 1
        except ValueError as exc:
            raise ValueError(f"age group {label!r} is not like '3-7' or '60+'") from exc
        if out and low != out[-1][2]:
            raise ValueError(f"age groups are not contiguous at {label!r}")
        if high <= low:
            raise ValueError(f"age group {label!r} is empty")
        out.append((text, low, high))
    if not out:
        raise ValueError("no age groups given")
    return out


def age_group(age: float, groups: list[tuple[str, float, float]]) -> str:
    """The label of the group that holds ``age`` (below the first: first; above the last: last)."""
    for label, _low, high in groups:
        if age < high:
            return label
    return groups[-1][0]
