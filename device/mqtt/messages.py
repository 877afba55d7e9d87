"""Topic names and the JSON messages the appliance publishes (pure functions, no I/O).

Every message here has a JSON schema in ``device/schemas/``; the tests check real messages taken
from a real broker against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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


def attraction_ratio(visitors: int, watchers: int) -> float | None:
    """Share of visitors who looked at the screen (0 to 1), or None without visitors."""
    return round(watchers / visitors, 3) if visitors else None


def audience_message(seq: int, device_id: str, window_start: float, window_end: float,
                     aggregates: dict, frames: int = 0, model_version: str = "",
                     visitors_total: int | None = None, partial: bool = False) -> dict:
    """One window's message for the ``audience`` topic.

    Args:
        seq: the window's sequence number from the spool (increases by one per window).
        window_start, window_end: wall-clock seconds.
        aggregates: :meth:`WindowAggregator.close` output (copied in as it is).
        frames: frames processed in the window (0 means the camera delivered nothing).
        visitors_total: visitors of every window so far, this one included (persisted by the
            spool); defaults to this window's visitors.
        partial: the window was cut short (the appliance stopped or restarted before its end).
    """
    msg = {"seq": seq, "device_id": device_id, "window_start": iso_utc(window_start),
           "window_end": iso_utc(window_end),
           "duration_s": round(max(0.0, window_end - window_start), 3),
           "frames": int(frames), "model_version": model_version, "partial": bool(partial)}
    msg.update({k: v for k, v in aggregates.items() if k not in ("window_start", "window_end")})
    visitors = int(aggregates.get("visitors", 0))
    msg["visitors_total"] = visitors if visitors_total is None else int(visitors_total)
    msg["attraction_ratio"] = attraction_ratio(visitors, int(aggregates.get("watchers", 0)))
    msg["female_share"] = female_share(aggregates.get("gender"))
    msg["dominant_emotion"] = dominant_emotion(aggregates.get("emotions"))
    return msg
