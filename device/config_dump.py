"""Print a :class:`device.config.Config` back as TOML (``tomli_w``), with secrets redacted."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import tomli_w

# Keys whose values are secrets. The config never holds a password itself (only where to find
# one), but anything named like a secret is masked in case a future key carries one.
SECRET_WORDS = ("password", "secret", "token")
REDACTED = "***"


def _is_secret(key: str) -> bool:
    return any(w in key for w in SECRET_WORDS) and not key.endswith(("_file", "_env"))


def _table(obj, name: str, unset: list[str]) -> dict:
    """One section as a dict; keys left unset (None) are collected in ``unset``."""
    out = {}
    for f in fields(obj):
        if f.metadata.get("internal"):
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out[f.name] = _table(value, f"{name}.{f.name}", unset)
        elif value is None:
            unset.append(f"[{name}] {f.name}")
        else:
            out[f.name] = REDACTED if _is_secret(f.name) else value
    return out


def to_toml(cfg) -> str:
    """The effective configuration as TOML text; keys that are not set are listed in a comment
    at the end (TOML has no null)."""
    unset: list[str] = []
    doc = {f.name: _table(getattr(cfg, f.name), f.name, unset)
           for f in fields(cfg) if not f.metadata.get("internal")}
    text = tomli_w.dumps(doc)
    if unset:
        text += "\n# not set: " + ", ".join(unset) + "\n"
    return text
