"""The status LED as the sum of the parts: camera, screen and broker.

Each part reports its own state from its own thread (the vision loop the camera, the display
thread the screen, the MQTT thread the broker); :class:`Health` combines them with
:func:`led_pattern` and changes the LED only when the combined pattern changes.
"""

from __future__ import annotations

import threading


def led_pattern(camera: str, screen_ok: bool | None, broker_ok: bool | None) -> str:
    """The status LED pattern for the parts' states (None: the part is not configured).

    ``starting`` until the camera first delivers, ``error`` while it is lost (nothing is being
    counted), ``degraded`` while counting goes on without the screen or the broker (both are
    retried), ``running`` otherwise.
    """
    if camera == "lost":
        return "error"
    if camera == "starting":
        return "starting"
    if screen_ok is False or broker_ok is False:
        return "degraded"
    return "running"


class Health:
    """Collects the parts' states and drives the status LED (``leds.<pattern>()``)."""

    def __init__(self, leds):
        self.leds = leds
        self._lock = threading.Lock()
        self.parts: dict[str, object] = {"camera": "starting", "screen_ok": None,
                                         "broker_ok": None}
        self.pattern: str | None = None

    def update(self, **parts) -> str:
        """Record new part states (camera=, screen_ok=, broker_ok=); returns the LED pattern."""
        with self._lock:
            unknown = set(parts) - set(self.parts)
            if unknown:
                raise TypeError(f"unknown parts: {sorted(unknown)}")
            self.parts.update(parts)
            pattern = led_pattern(**self.parts)
            if pattern != self.pattern:
                self.pattern = pattern
                getattr(self.leds, pattern)()
            return pattern
