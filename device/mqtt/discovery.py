"""Home Assistant MQTT discovery: one device per kiosk, one entity per number it publishes.

Every entity is one row of a table (:data:`WINDOW`, :data:`STATUS`, :data:`CONTROLS`, plus one row
per age group, emotion and gender made by :func:`breakdown_entities`), so a new field in the
``audience`` or ``status`` message needs one more row and nothing else. Pure functions, no I/O.

Works with Home Assistant 2024.3 and newer (checked against 2024.3.3 itself by the tests). Entity
ids carry the device id (``sensor.audience_kiosk_lobby_2_visitors``) and so does the device name
(``Audience kiosk lobby-2``), so two kiosks never share a name.

What Home Assistant shows when a number does not exist (an empty or k-anonymity-suppressed window,
a field an older kiosk does not send): a template that renders ``None`` makes a numeric sensor
*unknown* on every release; text and enum sensors before 2024.9 would show the word ``None``
instead, so they render an explicit word (``none``) that is one of their options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from device import __version__
from device.manifest import DEFAULT_AGE_GROUPS, parse_age_groups
from device.mqtt.messages import Topics
from device.types import EMOTIONS

MIN_HA_VERSION = "2024.3"
NONE_WORD = "none"  # what a text/enum entity shows when the kiosk has no value


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity.

    Attributes:
        key: unique per kiosk; part of the unique id, the entity id and the config topic.
        name: what Home Assistant shows next to the device name.
        source: which topic feeds it: ``audience``, ``status`` or ``cmd`` (buttons).
        template: the ``value_template`` (``None`` for buttons).
        options: further discovery options (unit, device class, state class, ...).
        component: ``sensor``, ``binary_sensor`` or ``button``.
        enabled: False for the long tail: the entity exists but is off until a user enables it.
        diagnostic: an ``entity_category: diagnostic`` entity (the kiosk's health).
    """

    key: str
    name: str
    source: str
    template: str | None
    options: dict = field(default_factory=dict)
    component: str = "sensor"
    enabled: bool = True
    diagnostic: bool = False


def field_template(path: str, optional_in: str | None = None) -> str:
    """``{{ value_json.<path> }}``; ``None`` (so *unknown*) when ``optional_in`` is absent."""
    if optional_in is None:
        return "{{ value_json." + path + " }}"
    return "{{ value_json." + path + " if '" + optional_in + "' in value_json else None }}"


def text_template(name: str) -> str:
    """A text field: :data:`NONE_WORD` when it is null or absent, at most 255 characters."""
    value = "value_json." + name
    return ("{{ (" + value + " if " + value + " is defined and " + value + " is not none "
            "else '" + NONE_WORD + "') | string | truncate(255, true, '') }}")


def people(key, name, path, icon="mdi:account-group", optional_in=None, **kw) -> Entity:
    """A count of people in one window."""
    return Entity(key, name, "audience", field_template(path, optional_in),
                  {"state_class": "measurement", "unit_of_measurement": "people",
                   "suggested_display_precision": 0, "icon": icon}, **kw)


def seconds(key, name, path, source="audience", **kw) -> Entity:
    """A duration in seconds."""
    return Entity(key, name, source, field_template(path),
                  {"device_class": "duration", "state_class": "measurement",
                   "unit_of_measurement": "s", "suggested_display_precision": 1}, **kw)


def percent(key, name, template, icon) -> Entity:
    return Entity(key, name, "audience", template,
                  {"state_class": "measurement", "unit_of_measurement": "%",
                   "suggested_display_precision": 0, "icon": icon})


def enum(key, name, path, options, source="status", icon=None, **kw) -> Entity:
    """A word out of a fixed list (plus :data:`NONE_WORD`)."""
    extra = {"icon": icon} if icon else {}
    return Entity(key, name, source, text_template(path),
                  {"device_class": "enum", "options": [*options, NONE_WORD], **extra}, **kw)


def status_text(key, name, path, icon, enabled=True) -> Entity:
    return Entity(key, name, "status", text_template(path), {"icon": icon},
                  enabled=enabled, diagnostic=True)


def status_count(key, name, path, state_class="measurement", icon="mdi:tray-full") -> Entity:
    return Entity(key, name, "status", field_template(path),
                  {"state_class": state_class, "unit_of_measurement": "windows",
                   "suggested_display_precision": 0, "icon": icon}, diagnostic=True)


# The audience message, one row per number (age groups, emotions and gender: breakdown_entities).
WINDOW = (
    people("visitors", "Visitors", "visitors"),
    people("watchers", "Watchers", "watchers", icon="mdi:eye"),
    people("impressions", "Impressions", "impressions", icon="mdi:account-eye"),
    Entity("visitors_total", "Visitors total", "audience", field_template("visitors_total"),
           {"state_class": "total_increasing", "unit_of_measurement": "people",
            "suggested_display_precision": 0, "icon": "mdi:account-multiple-plus"}),
    seconds("dwell_mean", "Mean dwell", "dwell_s_mean"),
    seconds("attention_mean", "Mean attention", "attention_s_mean"),
    percent("attraction", "Attraction",
            "{{ (100 * value_json.attraction_ratio) | round(1) "
            "if value_json.attraction_ratio is not none else None }}", "mdi:magnet"),
    percent("female_share", "Female share", "{{ value_json.female_share }}", "mdi:gender-female"),
    enum("dominant_emotion", "Dominant emotion", "dominant_emotion", EMOTIONS, source="audience",
         icon="mdi:emoticon-outline"),
    Entity("last_window", "Last window", "audience", field_template("window_end"),
           {"device_class": "timestamp", "json_attributes_topic": "audience",
            "json_attributes_template": "{{ {'seq': value_json.seq, 'partial': "
                                        "value_json.partial} | tojson }}"}),
    Entity("last_window_partial", "Last window partial", "audience",
           "{{ 'ON' if value_json.partial else 'OFF' }}", {"icon": "mdi:timer-off-outline"},
           component="binary_sensor", diagnostic=True),
    seconds("window_length", "Last window length", "duration_s", diagnostic=True, enabled=False),
    Entity("frames", "Frames in last window", "audience", field_template("frames"),
           {"state_class": "measurement", "unit_of_measurement": "frames",
            "suggested_display_precision": 0, "icon": "mdi:filmstrip"},
           diagnostic=True, enabled=False),
    Entity("window_clock_synced", "Last window clock synced", "audience",
           "{{ 'ON' if value_json.clock_synced is not false else 'OFF' }}",
           {"icon": "mdi:clock-check-outline"}, component="binary_sensor", diagnostic=True,
           enabled=False),
)

# The status message: the kiosk's health (diagnostic entities).
STATUS = (
    Entity("camera_problem", "Camera", "status",
           "{{ 'OFF' if value_json.camera == 'ok' else 'ON' }}", {"device_class": "problem"},
           component="binary_sensor", diagnostic=True),
    enum("camera", "Camera state", "camera", ("starting", "ok", "lost", "ended"),
         diagnostic=True),
    enum("state", "State", "state", ("starting", "running", "error", "stopping", "stopped"),
         diagnostic=True),
    enum("display_state", "Screen", "display_state", ("starting", "ok", "unavailable", "off"),
         diagnostic=True),
    Entity("fps", "Frame rate", "status", field_template("fps"),
           {"state_class": "measurement", "unit_of_measurement": "fps",
            "suggested_display_precision": 1, "icon": "mdi:speedometer"}, diagnostic=True),
    status_count("spool_depth", "Spool depth", "spool_depth"),
    status_count("spool_dropped", "Spool dropped", "spool_dropped", "total_increasing",
                 "mdi:tray-remove"),
    status_count("spool_dropped_full", "Spool dropped (card full)", "spool_dropped_full",
                 "total_increasing", "mdi:sd"),
    status_count("windows_waiting", "Windows waiting in memory", "windows_waiting"),
    status_count("windows_lost", "Windows lost", "windows_lost", "total_increasing",
                 "mdi:alert"),
    Entity("spool_bytes", "Spool size", "status", field_template("spool_bytes"),
           {"device_class": "data_size", "state_class": "measurement", "unit_of_measurement": "B",
            "suggested_display_precision": 0}, diagnostic=True),
    Entity("frames_dropped", "Frames dropped", "status", field_template("frames_dropped"),
           {"state_class": "total_increasing", "unit_of_measurement": "frames",
            "suggested_display_precision": 0, "icon": "mdi:filmstrip-off"}, diagnostic=True),
    seconds("lag", "Frame lag", "lag_s", source="status", diagnostic=True),
    Entity("clock_synced", "Clock synced", "status",
           "{{ 'ON' if value_json.clock_synced else 'OFF' }}", {"icon": "mdi:clock-check"},
           component="binary_sensor", diagnostic=True),
    seconds("uptime", "Uptime", "uptime_s", source="status", diagnostic=True),
    status_text("accelerator", "Accelerator", "accelerator", "mdi:chip"),
    status_text("model_version", "Model version", "model_version", "mdi:brain"),
    status_text("app_version", "Software version", "app_version", "mdi:package-variant"),
    status_text("error", "Last error", "error", "mdi:alert-circle-outline"),
    status_text("source", "Source", "source", "mdi:camera", enabled=False),
    status_text("display", "Screen sink", "display", "mdi:monitor", enabled=False),
    Entity("analyzer_available", "Face analysis", "status",
           "{{ 'ON' if value_json.analyzer_available else 'OFF' }}",
           {"icon": "mdi:face-recognition"},
           component="binary_sensor", diagnostic=True, enabled=False),
    Entity("last_seq", "Last window number", "status", field_template("last_seq"),
           {"icon": "mdi:counter"}, diagnostic=True, enabled=False),
)

# Commands the kiosk accepts, as buttons.
CONTROLS = (
    Entity("reload_config", "Reload configuration", "cmd", None,
           {"payload_press": '{"id": "home-assistant", "cmd": "reload-config"}',
            "entity_category": "config", "icon": "mdi:reload"}, component="button"),
)


def slug(label: str) -> str:
    """An age group or emotion label as part of an id: ``60+`` -> ``60_plus``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower().replace("+", "_plus")).strip("_")


def breakdown_entities(age_groups=DEFAULT_AGE_GROUPS) -> tuple[Entity, ...]:
    """One disabled-by-default count per age group, emotion and gender (present unsuppressed)."""
    ages = [label for label, _, _ in parse_age_groups(age_groups)] + ["unknown"]
    rows = [people(f"age_{slug(a)}", f"Age {a}" if a != "unknown" else "Age unknown",
                   f"age_groups['{a}']", "mdi:cake-variant", "age_groups", enabled=False)
            for a in ages]
    rows += [people(f"emotion_{e}", f"Emotion {e}", f"emotions.{e}", "mdi:emoticon-outline",
                    "emotions", enabled=False) for e in (*EMOTIONS, "unknown")]
    rows += [people(f"gender_{g}", f"Gender {g}", f"gender.{g}", "mdi:human-male-female",
                    "gender", enabled=False) for g in ("female", "male", "unknown")]
    return tuple(rows)


def entities(age_groups=DEFAULT_AGE_GROUPS) -> tuple[Entity, ...]:
    """Every entity a kiosk announces."""
    return (*WINDOW, *breakdown_entities(age_groups), *STATUS, *CONTROLS)


def device_name(device_id: str, name: str) -> str:
    """The device's name in Home Assistant; it always carries the device id."""
    if not name or name == device_id:
        return f"Audience kiosk {device_id}"
    return name if device_id in name else f"{name} ({device_id})"


def device_block(device_id: str, name: str, model_version: str = "",
                 configuration_url: str = "") -> dict:
    """Home Assistant's ``device`` block: ties the entities to one device in its registry."""
    block = {"identifiers": [f"audience_kiosk_{device_id}"],
             "name": device_name(device_id, name), "manufacturer": "audience-kiosk",
             "model": "Audience kiosk", "sw_version": __version__}
    if model_version:
        block["hw_version"] = f"models {model_version}"
    if configuration_url:
        block["configuration_url"] = configuration_url
    return block


def entity_config(entity: Entity, topics: Topics, device_id: str, device: dict) -> dict:
    """The discovery payload of one entity."""
    ident = f"audience_kiosk_{device_id}_{entity.key}".replace("-", "_")
    config = {"name": entity.name, "unique_id": ident, "object_id": ident,
              "availability_topic": topics.availability, "payload_available": "online",
              "payload_not_available": "offline", "qos": 1, "device": device,
              "origin": {"name": "audience-kiosk", "sw_version": __version__}}
    topic = {"audience": topics.audience, "status": topics.status, "cmd": topics.cmd}
    if entity.component == "button":
        config["command_topic"] = topics.cmd
    else:
        config["state_topic"] = topic[entity.source]
        config["value_template"] = entity.template
    options = dict(entity.options)
    if "json_attributes_topic" in options:
        options["json_attributes_topic"] = topic[options["json_attributes_topic"]]
    config.update(options)
    if not entity.enabled:
        config["enabled_by_default"] = False
    if entity.diagnostic:
        config["entity_category"] = "diagnostic"
    return config


def config_topic(discovery_prefix: str, component: str, device_id: str, key: str) -> str:
    return f"{discovery_prefix}/{component}/{device_id}/{key}/config"


def config_wildcard(discovery_prefix: str, device_id: str) -> str:
    """Matches every discovery config this kiosk may ever have published (to forget old ones)."""
    return f"{discovery_prefix}/+/{device_id}/+/config"


def discovery_messages(topics: Topics, device_id: str, name: str, discovery_prefix: str,
                       model_version: str = "", configuration_url: str = "",
                       age_groups=DEFAULT_AGE_GROUPS) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery: ``[(config topic, config payload)]``, published retained."""
    device = device_block(device_id, name, model_version, configuration_url)
    return [(config_topic(discovery_prefix, e.component, device_id, e.key),
             entity_config(e, topics, device_id, device)) for e in entities(age_groups)]
