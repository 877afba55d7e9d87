"""Check discovery payloads with Home Assistant's own code; run by HA's Python (``.venv-ha``).

Reads ``[[topic, payload], ...]`` (JSON) on stdin and prints ``{"problems": [...]}``: one line per
payload Home Assistant would reject (its voluptuous ``DISCOVERY_SCHEMA`` of the component), per
key it would silently drop (the schemas remove unknown keys), and per template that does not
compile. Also prints the Home Assistant version it checked with.
"""

from __future__ import annotations

import importlib
import json
import sys

import voluptuous as vol
from homeassistant.const import __version__ as ha_version
from homeassistant.helpers.template import Template


def check(topic: str, payload: dict) -> list[str]:
    """What Home Assistant would object to in one payload (empty when it takes all of it)."""
    component = topic.split("/")[1]
    try:
        module = importlib.import_module(f"homeassistant.components.mqtt.{component}")
    except ImportError:
        return [f"{topic}: Home Assistant has no MQTT component {component!r}"]
    try:
        taken = module.DISCOVERY_SCHEMA(dict(payload))
    except vol.Invalid as exc:
        return [f"{topic}: rejected: {exc}"]
    problems = [f"{topic}: key {key!r} is dropped by Home Assistant"
                for key in payload if key not in taken]
    problems += [f"{topic}: device key {key!r} is dropped by Home Assistant"
                 for key in payload.get("device", {}) if key not in taken.get("device", {})]
    for key, value in payload.items():
        if key.endswith("template"):
            try:
                Template(value).ensure_valid()
            except Exception as exc:  # TemplateError: say which one and why
                problems.append(f"{topic}: {key} does not compile: {exc}")
    return problems


def main() -> None:
    messages = json.load(sys.stdin)
    problems = [p for topic, payload in messages for p in check(topic, payload)]
    json.dump({"ha_version": ha_version, "checked": len(messages), "problems": problems},
              sys.stdout)


if __name__ == "__main__":
    main()
