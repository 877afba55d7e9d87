"""What every reader returns, and the one error a wrong layout raises."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from device.errors import KioskError


class DatasetLayoutError(KioskError, FileNotFoundError):
    """A data set folder is not laid out as its public release; the message says what is missing."""


@dataclass
class FaceRecord:
    """One labelled face. Labels a data set does not give stay None.

    Attributes:
        path: image file (None when the pixels come inline, as in ``fer2013.csv``).
        age: years. gender: 0 male, 1 female. race: UTKFace code 0..4.
        emotion: index into ``device.types.EMOTIONS`` (original / folder label).
        votes: FER+ annotator votes mapped onto the 7 emotions (float, may sum to 0).
        usage: split name the data set gives (``Training``, ``PublicTest``, ...).
        pixels: inline 48x48 uint8 image.
    """

    path: Path | None = None
    age: int | None = None
    gender: int | None = None
    race: int | None = None
    emotion: int | None = None
    votes: np.ndarray | None = field(default=None, repr=False)
    usage: str | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)

    def image(self) -> np.ndarray | None:
        """The face as BGR uint8 (inline pixels expanded to 3 channels), or None if unreadable."""
        if self.pixels is not None:
            return cv2.cvtColor(self.pixels, cv2.COLOR_GRAY2BGR)
        return cv2.imread(str(self.path), cv2.IMREAD_COLOR)


@dataclass
class ReadResult:
    """Records read from a data set, and skipped entries counted by reason."""

    records: list[FaceRecord]
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.records)

    def summary(self) -> str:
        extra = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return f"{len(self.records)} records" + (f" (skipped {extra})" if extra else "")


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetLayoutError(f"{what}: expected a folder at {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{what}: expected a file at {path}")
    return path


def load_gray(path: Path) -> np.ndarray | None:
    """A grayscale uint8 image, or None when the file cannot be decoded."""
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
