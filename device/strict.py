"""Strict conversion of parsed TOML tables into frozen dataclasses (Frigate's ``extra="forbid"``).

The dataclass is the schema: its fields are the only keys allowed, their annotations the types,
and ``field(metadata={"check": fn, "message": "..."})`` adds a value check. Every error names the
key that failed, e.g. ``[mqtt] prot: unknown key (did you mean 'port'?)``.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

from device.errors import ConfigError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _public(cls) -> list:
    return [f for f in fields(cls) if not f.metadata.get("internal")]


class StrictLoader:
    """Builds dataclasses from tables, refusing unknown keys and wrong types.

    Args:
        base: folder that relative paths are resolved against (None: leave them as written).
        path_keys: ``{(table name, key)}`` whose string values are paths.
        hints: ``{(table name, key): advice}`` shown instead of "did you mean" for known mistakes.
    """

    def __init__(self, base: Path | None = None, path_keys=frozenset(), hints=None):
        self.base, self.path_keys, self.hints = base, set(path_keys), dict(hints or {})

    def sections(self, cls, raw: dict) -> dict:
        """Convert each top-level table of ``raw`` into the dataclass ``cls`` declares for it."""
        out = {}
        names = [f.name for f in _public(cls)]
        hints = typing.get_type_hints(cls)
        for key, value in raw.items():
            sect = f"[{key}]"
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                extra = f" (did you mean [{close[0]}]?)" if close else ""
                raise ConfigError(f"{sect}: unknown section{extra}")
            if not isinstance(value, dict):
                raise ConfigError(f"{sect}: must be a table, not {type(value).__name__}")
            out[key] = self.build(hints[key], value, sect)
        return out

    def build(self, cls, table: dict, section: str):
        """One dataclass from one table; ``section`` (``"[mqtt.tls]"``) prefixes error messages."""
        known = {f.name: f for f in _public(cls)}
        hints = typing.get_type_hints(cls)
        name = section.strip("[]").split(".")[-1]
        values = {}
        for key, value in table.items():
            where = f"{section} {key}"
            if key not in known:
                hint = self.hints.get((name, key))
                close = difflib.get_close_matches(key, known, n=1)
                extra = f" ({hint})" if hint else f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: unknown key{extra}")
            f = known[key]
            value = self.convert(value, hints[key], where)
            self.check(f, value, where)
            if (name, key) in self.path_keys and self.base is not None and value:
                value = ([str(self.base / v) for v in value] if isinstance(value, list)
                         else str(self.base / value))
            values[key] = value
        return cls(**values)

    @staticmethod
    def check(f, value, where: str) -> None:
        """Run a field's ``check``: False gives its ``message``, a ValueError its own words."""
        check = f.metadata.get("check")
        if not check or value is None:
            return
        try:
            ok = check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not ok:
            raise ConfigError(f"{where}: {f.metadata['message']} (got {value!r})")

    def convert(self, value, tp, where: str):
        """Check ``value`` against the annotation ``tp``; nested tables become dataclasses."""
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.convert(value, inner, where)
        if is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: must be a table, not {type(value).__name__}")
            return self.build(tp, value, "[" + where.strip("[").replace("] ", ".") + "]")
        if origin is list:
            if not isinstance(value, list):
                raise ConfigError(f"{where}: must be a list, not {type(value).__name__}")
            (item,) = typing.get_args(tp)
            return [self.convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: must be {_type_name(tp)}, not {type(value).__name__} "
                              f"({value!r})")
        if tp is float and not math.isfinite(value):  # TOML allows inf and nan
            raise ConfigError(f"{where}: must be a finite number (got {value!r})")
        return value
