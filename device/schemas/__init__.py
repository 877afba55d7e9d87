"""JSON schemas of everything the appliance publishes or accepts over MQTT.

``load_schema("audience")`` returns the parsed schema; ``validator("audience")`` a jsonschema
validator with the sibling schemas registered (jsonschema is a development dependency only).
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
NAMES = ("availability", "audience", "status", "cmd", "cmd_result", "discovery", "count_map")


def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def validator(name: str):
    """A ``Draft202012Validator`` for one schema, resolving ``$ref`` to the other files here."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = []
    for other in NAMES:
        schema = load_schema(other)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    return Draft202012Validator(load_schema(name), registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)
