"""A small real filesystem for full-card tests: a tmpfs of a few megabytes, filled on demand."""

from __future__ import annotations

import errno
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_card(path: Path, size: str = "8m", inodes: int | None = None):
    """Mount a tmpfs of ``size`` (and ``inodes`` files) at ``path``; fails loudly without root."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.fail("the full-card tests need a small real filesystem: `mount -t tmpfs` failed "
                    f"({res.stderr.strip() or res.returncode}); run them as root, as CI does")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(card: Path, inodes: bool = False) -> None:
    """Use up every free block of ``card`` (ENOSPC from then on), and with ``inodes`` every free
    inode too (mount it with few)."""
    with open(card / "filler", "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    n = 0
    while inodes:
        try:
            (card / f"inode-{n}").touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return
        n += 1


def free(card: Path) -> None:
    """Give the card its room back."""
    for p in card.glob("inode-*"):
        p.unlink()
    (card / "filler").unlink(missing_ok=True)
