"""FER+ split folders (``FER2013Train|Valid|Test/label.csv``) and the original FER2013 labels.

``label.csv`` rows: ``fer0000000.png,"(0, 0, 48, 48)",`` then 10 vote counts in the order of
``FERPLUS_VOTES``. The original labels, when present, are ``fer2013_labels.csv`` in the parent
folder (``Image name,Usage,emotion``, Kaggle order).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from device.types import EMOTIONS
from tools.datasets.common import FaceRecord, ReadResult, require_dir, require_file

FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                 "contempt", "unknown", "NF")
# FER+ vote column -> our emotion index. Contempt is folded into disgust (the nearest of our 7,
# and FER2013 itself has no contempt class); unknown and NF (not a face) carry no emotion.
_TO_OURS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
            "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "disgust"}


def ferplus_to_emotions(votes: np.ndarray) -> np.ndarray:
    """10 FER+ vote counts -> 7 vote counts in ``EMOTIONS`` order (unknown and NF dropped)."""
    votes = np.asarray(votes, dtype=np.float32)
    out = np.zeros(votes.shape[:-1] + (len(EMOTIONS),), dtype=np.float32)
    for i, name in enumerate(FERPLUS_VOTES):
        if name in _TO_OURS:
            out[..., EMOTIONS.index(_TO_OURS[name])] += votes[..., i]
    return out


def ferplus_majority(votes10: np.ndarray) -> int | None:
    """The 7-class index of the FER+ majority vote, or None when it is contempt, unknown or NF.

    Ties go to the first column, as ``numpy.argmax`` does.
    """
    winner = FERPLUS_VOTES[int(np.argmax(votes10))]
    if winner in ("contempt", "unknown", "NF") or np.sum(votes10) == 0:
        return None
    return EMOTIONS.index(_TO_OURS[winner])


def read_original_labels(path: Path) -> dict[str, tuple[str, int]]:
    """``fer2013_labels.csv`` -> {image name: (usage, emotion index)}."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                out[row["Image name"]] = (row["Usage"], int(row["emotion"]))
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _parse_row(row: list[str]) -> tuple[str, np.ndarray] | None:
    if len(row) < 12:
        return None
    try:
        votes = np.array([float(v) for v in row[2:12]], dtype=np.float32)
    except ValueError:
        return None
    if (votes < 0).any():
        return None
    return row[0].strip(), votes


def read_ferplus(split_dir: Path, original_labels: Path | None = None) -> ReadResult:
    """One FER+ split folder: ``FaceRecord.votes`` the 10 raw votes, ``emotion`` the original label.

    Args:
        split_dir: e.g. ``.../ferplus/FER2013Valid`` holding ``label.csv`` and the PNGs.
        original_labels: ``fer2013_labels.csv``; defaults to the one in ``split_dir``'s parent
            when present (records then carry ``emotion`` and ``usage``).
    Raises:
        DatasetLayoutError: no folder or no ``label.csv``.
    """
    split_dir = require_dir(split_dir, "FER+ split")
    label_csv = require_file(split_dir / "label.csv", "FER+ split (label.csv with 10 vote columns)")
    if original_labels is None and (split_dir.parent / "fer2013_labels.csv").is_file():
        original_labels = split_dir.parent / "fer2013_labels.csv"
    originals = read_original_labels(Path(original_labels)) if original_labels else {}
    records, skipped = [], Counter()
    with open(label_csv, newline="") as f:
        for row in csv.reader(f):
            parsed = _parse_row(row)
            if parsed is None:
                skipped["malformed_row"] += 1
                continue
            name, votes = parsed
            path = split_dir / name
            if not path.is_file():
                skipped["missing_image"] += 1
                continue
            usage, emotion = originals.get(name, (None, None))
            if originals and emotion is None:
                skipped["no_original_label"] += 1
            records.append(FaceRecord(path=path, votes=votes, emotion=emotion, usage=usage))
    return ReadResult(records, skipped)
