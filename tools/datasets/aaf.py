"""All-Age-Faces: ``aglined faces/%05dA%02d.jpg`` (person id, age) and ``image sets/*.txt``.

The split files hold ``NAME GENDER`` lines with 0 = FEMALE, 1 = male: the opposite of UTKFace and
of this project, so it is flipped here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tools.datasets.common import FaceRecord, ReadResult, require_dir, require_file

_NAME = re.compile(r"^(\d+)A(\d+)\.jpg$", re.IGNORECASE)


def read_aaf(root: Path, split: str = "val") -> ReadResult:
    """The faces listed in ``image sets/<split>.txt``, with age from the name and our gender code.

    Raises:
        DatasetLayoutError: ``aglined faces/`` or the split file is missing.
    """
    root = require_dir(root, "All-Age-Faces")
    faces = require_dir(root / "aglined faces", "All-Age-Faces (aligned images)")
    listing = require_file(root / "image sets" / f"{split}.txt", "All-Age-Faces split list")
    records, skipped = [], Counter()
    for line in listing.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        match = _NAME.match(parts[0]) if len(parts) == 2 else None
        if match is None or parts[1] not in ("0", "1"):
            skipped["malformed_line"] += 1
            continue
        path = faces / parts[0]
        if not path.is_file():
            skipped["missing_image"] += 1
            continue
        gender = 1 - int(parts[1])  # AAF: 0 female, 1 male -> ours: 0 male, 1 female
        records.append(FaceRecord(path=path, age=int(match.group(2)), gender=gender))
    return ReadResult(records, skipped)
