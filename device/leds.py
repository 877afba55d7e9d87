"""Status LEDs on GPIO: what the appliance is doing, whether someone is there, and their mood.

Built on gpiozero, so every device takes ``pin_factory`` (None: gpiozero's default, resolved
lazily) and tests drive them with ``gpiozero.pins.mock.MockFactory``. Kiosks without LEDs use
``NullLeds``, which has the same methods and does nothing, so callers never branch.

Status LED patterns: starting: slow blink (``blink_s`` on/off); running: solid on; degraded
(counting, but the screen or the broker is missing and being retried): on with a short dark gap
(``degraded_s``); error (camera lost, models broken): fast blink (``fast_blink_s`` on/off).

RGB LED colours (``emotion``), (red, green, blue) in 0..1; None or "unknown": off::

    happy: yellow    surprise: orange    neutral: dim white    sad: blue
    angry: red       fear: purple        disgust: green
"""

from __future__ import annotations

EMOTION_COLOURS = {
    "happy": (1.0, 0.8, 0.0),
    "surprise": (1.0, 0.4, 0.0),
    "neutral": (0.2, 0.2, 0.2),
    "sad": (0.0, 0.0, 1.0),
    "angry": (1.0, 0.0, 0.0),
    "fear": (0.5, 0.0, 1.0),
    "disgust": (0.0, 1.0, 0.0),
}
OFF = (0.0, 0.0, 0.0)


def emotion_colour(name: str | None) -> tuple[float, float, float]:
    """The RGB colour for an emotion; off for None or "unknown"; ValueError for anything else."""
    if name is None or name == "unknown":
        return OFF
    try:
        return EMOTION_COLOURS[name]
    except KeyError:
        raise ValueError(f"no LED colour for emotion {name!r}; "
                         f"known: {', '.join(EMOTION_COLOURS)}") from None


class NullLeds:
    """Same methods as ``StatusLeds``; does nothing (no LEDs fitted)."""

    def starting(self) -> None:
        pass

    def running(self) -> None:
        pass

    def degraded(self) -> None:
        pass

    def error(self) -> None:
        pass

    def presence(self, present: bool) -> None:
        pass

    def emotion(self, name: str | None) -> None:
        emotion_colour(name)  # same validation as the real LEDs

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StatusLeds(NullLeds):
    """A status LED, an optional presence LED and an optional RGB LED for the dominant emotion.

    Args:
        status_pin: GPIO of the status LED (any gpiozero pin spec: 17, "GPIO17", "BOARD11").
        presence_pin: GPIO of an LED lit while a face is in view, or None.
        rgb_pins: (red, green, blue) GPIOs of an RGB LED (PWM), or None.
        pin_factory: gpiozero pin factory; None: gpiozero's default.
        blink_s, fast_blink_s: on and off times of the starting and error blinks.
        degraded_s: (on, off) times of the degraded pattern.
    """

    def __init__(self, status_pin, presence_pin=None, rgb_pins=None, pin_factory=None,
                 blink_s: float = 0.5, fast_blink_s: float = 0.1,
                 degraded_s: tuple[float, float] = (1.8, 0.2)):
        from gpiozero import LED, RGBLED  # imported here: NullLeds needs no GPIO library

        self.blink_s, self.fast_blink_s, self.degraded_s = blink_s, fast_blink_s, degraded_s
        self._devices = []
        try:
            self.status = self._own(LED(status_pin, pin_factory=pin_factory))
            self.presence_led = (None if presence_pin is None
                                 else self._own(LED(presence_pin, pin_factory=pin_factory)))
            self.rgb = (None if rgb_pins is None
                        else self._own(RGBLED(*rgb_pins, pin_factory=pin_factory)))
        except Exception:
            self.close()
            raise

    def _own(self, device):
        self._devices.append(device)
        return device

    def starting(self) -> None:
        """Slow blink while the appliance starts."""
        self.status.blink(on_time=self.blink_s, off_time=self.blink_s)

    def running(self) -> None:
        """Solid on while analysis runs."""
        self.status.on()

    def degraded(self) -> None:
        """On with a short dark gap: counting, but the screen or the broker is missing."""
        on, off = self.degraded_s
        self.status.blink(on_time=on, off_time=off)

    def error(self) -> None:
        """Fast blink after an error."""
        self.status.blink(on_time=self.fast_blink_s, off_time=self.fast_blink_s)

    def presence(self, present: bool) -> None:
        """Light the presence LED while someone is in view (no-op without one)."""
        if self.presence_led is not None:
            self.presence_led.value = bool(present)

    def emotion(self, name: str | None) -> None:
        """Colour the RGB LED for ``name`` (see ``EMOTION_COLOURS``); None: off."""
        colour = emotion_colour(name)
        if self.rgb is not None:
            self.rgb.color = colour

    def close(self) -> None:
        """Turn everything off and release the pins (safe to call twice)."""
        for device in reversed(self._devices):
            device.close()
        self._devices = []
