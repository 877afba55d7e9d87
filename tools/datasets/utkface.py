"""UTKFace: ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` chips, gender 0 male 1 female."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tools.datasets.common import DatasetLayoutError, FaceRecord, ReadResult, require_dir

RACES = ("white", "black", "asian", "indian", "other")


def parse_utk_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name, or None when the name is malformed."""
    parts = name.split("_")
    if len(parts) < 4:  # three upstream files lack the race field
        return None
    try:
        age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 <= age <= 120 and gender in (0, 1) and 0 <= race < len(RACES)):
        return None
    return age, gender, race


def read_utkface(root: Path) -> ReadResult:
    """All chips under ``root`` (searched recursively, sorted by name for a stable order).

    Raises:
        DatasetLayoutError: ``root`` is not a folder or holds no ``*.jpg``.
    """
    root = require_dir(root, "UTKFace")
    files = sorted(p for p in root.rglob("*.jpg") if p.is_file())
    if not files:
        raise DatasetLayoutError(f"UTKFace: no *.jpg chips under {root} "
                                 "(expected AGE_GENDER_RACE_DATETIME.jpg.chip.jpg files)")
    records, skipped = [], Counter()
    for path in files:
        parsed = parse_utk_name(path.name)
        if parsed is None:
            skipped["malformed_name"] += 1
            continue
        age, gender, race = parsed
        records.append(FaceRecord(path=path, age=age, gender=gender, race=race))
    return ReadResult(records, skipped)
