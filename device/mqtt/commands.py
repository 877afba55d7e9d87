"""Commands received on ``<prefix>cmd`` and the results sent on ``<prefix>cmd/result``.

A command is a JSON object ``{"id": "abc", "cmd": "ping"}`` (``id`` optional, echoed back).
Anything else (not JSON, not an object, an unknown command, wrong types, extra fields) is
answered with ``{"ok": false, "error": "..."}`` naming the problem, and changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from device.errors import KioskError
from device.mqtt.messages import iso_utc

COMMANDS = ("ping", "reload-config", "status")
MAX_PAYLOAD = 4096
MAX_DEPTH = 8  # a command is a flat object; anything deeper is refused before it is parsed


class CommandError(KioskError, ValueError):
    """A command message is malformed or names an unknown command."""


def _valid_id(value) -> bool:
    return (isinstance(value, str) and len(value) <= 128) or (
        isinstance(value, int) and not isinstance(value, bool))


def nesting_depth(payload: bytes) -> int:
    """How deeply JSON arrays and objects nest in ``payload`` (brackets inside strings ignored).

    Counted on the bytes before any parsing, so a hostile payload cannot exhaust the parser's
    recursion; unbalanced brackets are left for the parser to report.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def load_json(payload: bytes):
    """Parse a command payload, checking its size and nesting first; CommandError if it is bad."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload too large ({len(payload)} bytes, at most {MAX_PAYLOAD})")
    depth = nesting_depth(payload)
    if depth > MAX_DEPTH:
        raise CommandError(f"payload nests {depth} levels deep (a command is one flat JSON "
                           f"object; at most {MAX_DEPTH})")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"payload is not JSON: {exc}") from None


def parse_command(payload: bytes) -> dict:
    """The ``{"id", "cmd"}`` of a command message; CommandError naming what is wrong."""
    msg = load_json(payload)
    if not isinstance(msg, dict):
        raise CommandError(f"payload must be a JSON object, not {type(msg).__name__}")
    extra = sorted(set(msg) - {"id", "cmd"})
    if extra:
        raise CommandError(f"unknown field {extra[0]!r} (allowed: 'id', 'cmd')")
    if "id" in msg and not _valid_id(msg["id"]):
        raise CommandError(f"'id' must be a string (up to 128 characters) or an integer, "
                           f"not {type(msg['id']).__name__}")
    if "cmd" not in msg:
        raise CommandError("missing field 'cmd'")
    if not isinstance(msg["cmd"], str):
        raise CommandError(f"'cmd' must be a string, not {type(msg['cmd']).__name__}")
    if msg["cmd"] not in COMMANDS:
        raise CommandError(f"unknown command {msg['cmd']!r} (known: {', '.join(COMMANDS)})")
    return {"id": msg.get("id"), "cmd": msg["cmd"]}


def salvage_id(payload: bytes):
    """The ``id`` of a malformed command when it can still be read, so the sender can match it."""
    try:
        msg = load_json(payload)
    except CommandError:
        return None
    return msg.get("id") if isinstance(msg, dict) and _valid_id(msg.get("id")) else None


def handle_command(payload: bytes, handlers: dict[str, Callable[[], dict]],
                   clock: Callable[[], float] = time.time) -> dict:
    """Run one command and return its result message (never raises for a bad command).

    Args:
        payload: the raw MQTT payload.
        handlers: command name -> function returning the result object; a KioskError it raises
            (a ValueError too) becomes an error result.
    """
    base = {"id": salvage_id(payload), "cmd": None, "time": iso_utc(clock())}
    try:
        cmd = parse_command(payload)
        base.update(cmd)
        result = handlers[cmd["cmd"]]()
    except (KioskError, ValueError) as exc:
        return {**base, "ok": False, "error": str(exc)}
    return {**base, "ok": True, "result": result}
