"""Where the tests find ../shared/data (sample footage), with a clear failure when it is absent."""

from pathlib import Path

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
