"""Every tracked text speaks of the product, not of how it was made.

A word search over ``git ls-files`` (text files only) for what belongs in no product text:
numbered work periods ("session 3"), throwaway scripts, references to issues or closing notes,
and absolute paths of a development machine. History goes into the changelogs, with versions and
dates; data and caches are named by documented locations (``tools/locations.py``) or arguments.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "numbered work period": re.compile(
        r"\bsessions?[- ]#?\d"
        r"|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|same) session\b",
        re.IGNORECASE),
    "throwaway script": re.compile(r"\bthrowaway\b", re.IGNORECASE),
    "issue reference": re.compile(r"\bthe issue\b|\bissue #?\d", re.IGNORECASE),
    "closing note": re.compile(r"\bclosing notes?\b", re.IGNORECASE),
    # an absolute path of a development machine: /work/..., /home/<user>/..., /Users/<user>/...
    # (not "$ROOT/work/" or "venv/work/": a path inside a folder the text names itself)
    "absolute development path": re.compile(r"(?<![\w$}.)/-])/(work|home/\w+|Users/\w+)/"),
}

# Technical phrases the patterns would otherwise catch, each with why it stays. Entries are
# (file, exact text on the line); a phrase allowed here is allowed only in that file.
ALLOWED = [
    # .gitignore: a repository-relative pattern (a folder named "work" in the checkout's root)
    (".gitignore", "/work/"),
]

# this file has to spell the patterns out
SELF = "tests/test_texts.py"


def tracked_texts() -> list[Path]:
    """Tracked files that exist in the working tree and hold text (no NUL byte, valid UTF-8)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    out = []
    for name in filter(None, names):
        path = ROOT / name
        if name == SELF or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(path)
    return out


def hits(path: Path) -> list[str]:
    """``file:line: what: text`` for every forbidden word on a line of ``path``."""
    return hits_in(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))


def hits_in(name: str, text: str) -> list[str]:
    """The same for ``text``, as if it were the tracked file ``name``."""
    allowed = [phrase for file, phrase in ALLOWED if file == name]
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        rest = line
        for phrase in allowed:
            rest = rest.replace(phrase, "")
        for what, pattern in FORBIDDEN.items():
            if pattern.search(rest):
                found.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
    return found


def test_tracked_texts_speak_of_the_product():
    found = [hit for path in tracked_texts() for hit in hits(path)]
    assert not found, "\n".join(["history or development paths in tracked texts:", *found])


@pytest.mark.parametrize("line", [
    "Session 3: distillation", "over sessions 3-5", "the session-2 lines", "in the third session",
    "measured with a throwaway script", "the issue's anchor model", "see issue 3",
    "the closing note says", "--out /work/cache/faces.npz", "/home/alice/data",
])
def test_the_search_finds_each_kind_of_slip(line):
    assert hits_in("README.md", line)


@pytest.mark.parametrize("line", [
    "a persistent session (`clean_session=False`, fixed client id)",
    "flags.session_present and present.set()", "props.SessionExpiryInterval = 0",
    '@pytest.fixture(scope="session")', "ends its session for good", "session_expiry = 3600",
    'cp "$WHEEL" "$ROOT$IN/work/"', "the issuer's key", "$C/faces.npz in ~/.cache/audience-kiosk/",
])
def test_technical_words_pass(line):
    assert hits_in("README.md", line) == []


def test_an_allowed_phrase_is_allowed_only_in_its_file():
    assert hits_in(".gitignore", "/work/") == []
    assert hits_in("README.md", "/work/")
