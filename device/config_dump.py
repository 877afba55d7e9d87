"""Print a :class:`device.config.Config` back as TOML, with secrets redacted."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass

# Keys whose values are secrets. The config never holds a password itself (only where to find
# one), but anything named like a secret is masked in case a future key carries one.
SECRET_WORDS = ("password", "secret", "token")
REDACTED = "***"


def _is_secret(key: str) -> bool:
    return any(w in key for w in SECRET_WORDS) and not key.endswith(("_file", "_env"))


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is JSON-compatible for our values


def _table(obj, name: str, lines: list[str]) -> None:
    nested = []
    lines.append(f"[{name}]")
    for f in fields(obj):
        if f.metadata.get("internal"):
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            nested.append((f.name, value))
        elif value is None:
            lines.append(f"# {f.name} = (not set)")
        elif _is_secret(f.name):
            lines.append(f"{f.name} = {_scalar(REDACTED)}")
        else:
            lines.append(f"{f.name} = {_scalar(value)}")
    lines.append("")
    for key, value in nested:
        _table(value, f"{name}.{key}", lines)


def to_toml(cfg) -> str:
    """The effective configuration as TOML text (unset optional keys shown as comments)."""
    lines: list[str] = []
    for f in fields(cfg):
        if not f.metadata.get("internal"):
            _table(getattr(cfg, f.name), f.name, lines)
    return "\n".join(lines).rstrip() + "\n"
