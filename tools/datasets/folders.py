"""Class-folder layouts: FER image folders (``train/angry/*.jpg``) and CK+48 (``anger/*.png``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from device.types import EMOTIONS
from tools.datasets.common import DatasetLayoutError, FaceRecord, ReadResult, require_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# CK+48 folder -> our emotion (None: contempt, which we do not predict)
CK_CLASSES = {"anger": "angry", "contempt": None, "disgust": "disgust", "fear": "fear",
              "happy": "happy", "sadness": "sad", "surprise": "surprise"}


def _read_class_dirs(root: Path, mapping: dict[str, str | None], what: str) -> ReadResult:
    present = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    found = [name for name in mapping if name in present]
    if not found:
        raise DatasetLayoutError(f"{what}: no class folders in {root}; expected some of "
                                 f"{sorted(mapping)}")
    records, skipped = [], Counter()
    for name in found:
        target = mapping[name]
        for path in sorted(present[name].iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped["not_an_image"] += 1
            elif target is None:
                skipped[f"class_{name}"] += 1
            else:
                records.append(FaceRecord(path=path, emotion=EMOTIONS.index(target)))
    for name in set(present) - set(mapping):
        skipped[f"unknown_folder_{name}"] += 1
    return ReadResult(records, skipped)


def read_fer_folders(root: Path) -> ReadResult:
    """One split of the FER image-folder layout (``root/angry/*.jpg`` ... ``root/neutral``)."""
    root = require_dir(root, "FER class folders")
    return _read_class_dirs(root, {e: e for e in EMOTIONS}, "FER class folders")


def read_ck48(root: Path) -> ReadResult:
    """CK+48 (``anger, contempt, disgust, fear, happy, sadness, surprise``); contempt is skipped."""
    root = require_dir(root, "CK+48")
    return _read_class_dirs(root, CK_CLASSES, "CK+48")
