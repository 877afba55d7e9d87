"""Topic names and the JSON messages the appliance publishes (pure functions, no I/O).

Every message here has a JSON schema in ``device/schemas/``; the tests check real messages taken
from a real broker against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from device import __version__
from device.types import EMOTIONS


def iso_utc(t: float) -> str:
    """Wall-clock seconds as ISO 8601 UTC with milliseconds, e.g. ``2026-11-28T10:00:00.000Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Topics:
    """The appliance's topics under one prefix (``kiosk/<device id>/``)."""

    prefix: str

    @property
    def availability(self) -> str:
        return self.prefix + "availability"

    @property
    def status(self) -> str:
        return self.prefix + "status"

    @property
    def audience(self) -> str:
        return self.prefix + "audience"

    @property
    def cmd(self) -> str:
        return self.prefix + "cmd"

    @property
    def cmd_result(self) -> str:
        return self.prefix + "cmd/result"


def female_share(gender: dict | None) -> float | None:
    """Percentage of women among visitors whose gender was given, or None when there were none.

    Works whether the aggregator reports counts or shares.
    """
    if not gender:
        return None
    female, male = float(gender.get("female") or 0), float(gender.get("male") or 0)
    return round(100.0 * female / (female + male), 1) if female + male > 0 else None


def dominant_emotion(emotions: dict | None) -> str | None:
    """The emotion with the largest count/share, or None when nothing was counted.

    "unknown" (visitors without a confident emotion) never wins.
    """
    known = {k: v or 0 for k, v in (emotions or {}).items() if k in EMOTIONS}
    if not known:
        return None
    name = max(known, key=known.get)
    return name if known[name] > 0 else None


def audience_message(seq: int, device_id: str, window_start: float, window_end: float,
                     aggregates: dict, frames: int = 0, model_version: str = "") -> dict:
    """One window's message for the ``audience`` topic.

    Args:
        seq: the window's sequence number from the spool (increases by one per window).
        window_start, window_end: wall-clock seconds.
        aggregates: :meth:`WindowAggregator.close` output (copied in as it is).
        frames: frames processed in the window (0 means the camera delivered nothing).
    """
    msg = {"seq": seq, "device_id": device_id, "window_start": iso_utc(window_start),
           "window_end": iso_utc(window_end),
           "duration_s": round(max(0.0, window_end - window_start), 3),
           "frames": int(frames), "model_version": model_version}
    msg.update({k: v for k, v in aggregates.items() if k not in ("window_start", "window_end")})
    msg["female_share"] = female_share(aggregates.get("gender"))
    msg["dominant_emotion"] = dominant_emotion(aggregates.get("emotions"))
    return msg


def device_block(device_id: str, name: str, model_version: str = "") -> dict:
    """Home Assistant's ``device`` block: ties the sensors to one device in its registry."""
    block = {"identifiers": [f"audience_kiosk_{device_id}"], "name": name,
             "manufacturer": "audience-kiosk", "model": "Audience kiosk", "sw_version": __version__}
    if model_version:
        block["hw_version"] = f"models {model_version}"
    return block


# object_id -> (name, value template, extra options). A template that renders "None" makes the
# Home Assistant sensor "unknown" (mqtt/sensor.py compares with PAYLOAD_NONE), which is what a
# k-anonymity-suppressed or empty window should show.
SENSORS = {
    "visitors": ("Visitors", "{{ value_json.visitors }}",
                 {"state_class": "measurement", "unit_of_measurement": "people",
                  "icon": "mdi:account-group"}),
    "watchers": ("Watchers", "{{ value_json.watchers }}",
                 {"state_class": "measurement", "unit_of_measurement": "people",
                  "icon": "mdi:eye"}),
    "dwell_mean": ("Mean dwell", "{{ value_json.dwell_s_mean }}",
                   {"device_class": "duration", "state_class": "measurement",
                    "unit_of_measurement": "s"}),
    "female_share": ("Female share", "{{ value_json.female_share }}",
                     {"state_class": "measurement", "unit_of_measurement": "%",
                      "icon": "mdi:gender-female"}),
    "dominant_emotion": ("Dominant emotion", "{{ value_json.dominant_emotion }}",
                         {"device_class": "enum", "options": list(EMOTIONS),
                          "icon": "mdi:emoticon-outline"}),
}


def discovery_messages(topics: Topics, device_id: str, name: str, discovery_prefix: str,
                       model_version: str = "") -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery: ``[(config topic, config payload)]``, published retained."""
    device = device_block(device_id, name, model_version)
    out = []
    for object_id, (label, template, extra) in SENSORS.items():
        config = {"name": label, "unique_id": f"audience_kiosk_{device_id}_{object_id}",
                  "has_entity_name": True, "state_topic": topics.audience,
                  "value_template": template, "availability_topic": topics.availability,
                  "payload_available": "online", "payload_not_available": "offline",
                  "qos": 1, "device": device,
                  "origin": {"name": "audience-kiosk", "sw_version": __version__}, **extra}
        out.append((f"{discovery_prefix}/sensor/{device_id}/{object_id}/config", config))
    return out
