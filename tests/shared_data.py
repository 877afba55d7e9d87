"""Where the tests find ../shared/data (sample footage), with a clear failure when it is absent."""

from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "data" / "samples"


def sample(name: str) -> Path:
    """Path of a sample file; fails (never skips) with the reason when it is not there."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.fail(f"sample footage {path} is missing: these tests need ../shared/data beside "
                    "the clone")
    return path


def read_frames(path: Path, indices) -> dict[int, np.ndarray]:
    """The frames of a video at the given indices, decoded in order."""
    cap, out, i = cv2.VideoCapture(str(path)), {}, 0
    while len(out) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{path} ended before frame {max(indices)}"
        if i in indices:
            out[i] = frame
        i += 1
    return out
