"""Kaggle's ``fer2013.csv``: ``emotion,pixels,Usage`` with 2304 space-separated pixel values."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from device.types import EMOTIONS
from tools.datasets.common import DatasetLayoutError, FaceRecord, ReadResult, require_file


def read_fer2013_csv(path: Path, usage: str | None = None) -> ReadResult:
    """Rows of ``fer2013.csv`` as records with inline 48x48 pixels.

    Args:
        path: the CSV file.
        usage: keep only rows of this Usage (``Training``, ``PublicTest``, ``PrivateTest``).
    Raises:
        DatasetLayoutError: the file is missing or lacks the emotion/pixels/Usage columns.
    """
    path = require_file(path, "FER2013 (Kaggle fer2013.csv)")
    records, skipped = [], Counter()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"emotion", "pixels"} <= set(reader.fieldnames or ()):
            raise DatasetLayoutError(f"{path}: expected columns emotion,pixels,Usage, "
                                     f"got {reader.fieldnames}")
        for row in reader:
            if usage and row.get("Usage") != usage:
                continue
            try:
                emotion = int(row["emotion"])
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            except (TypeError, ValueError, OverflowError):
                skipped["malformed_row"] += 1
                continue
            if pixels.size != 48 * 48 or not 0 <= emotion < len(EMOTIONS):
                skipped["malformed_row"] += 1
                continue
            records.append(FaceRecord(emotion=emotion, usage=row.get("Usage"),
                                      pixels=pixels.reshape(48, 48)))
    return ReadResult(records, skipped)
