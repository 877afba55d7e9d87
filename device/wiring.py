"""Building the appliance's parts from the configuration, and its shared status board.

``make_leds`` returns a working object or a null one with a logged warning, so that a kiosk without
GPIO keeps counting; the screen is opened over the camera source once it runs (``open_display``)
and retried by the display thread when it is missing (see ``deploy/INSTALL-pi.md``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from device import __version__
from device.errors import ConfigError, DisplayError
from device.mqtt.messages import iso_utc

log = logging.getLogger(__name__)


class StatusBoard:
    """What the ``status`` message says; written by the vision loop, read by the MQTT thread."""

    def __init__(self, cfg, clock=time.monotonic, wall=time.time):
        self._lock = threading.Lock()
        self._clock, self._wall, self._started = clock, wall, clock()
        self.values = {"device_id": cfg.device.id, "state": "starting", "app_version": __version__,
                       "model_version": "unknown", "accelerator": "unknown",
                       "analyzer_available": False, "camera": "starting",
                       "source": cfg.source.spec, "fps": 0.0, "frames_dropped": 0, "lag_s": 0.0,
                       "window_s": cfg.aggregate.window_s,
                       "last_seq": None, "display": cfg.display.sink,
                       "display_state": "off" if cfg.display.sink == "none" else "starting",
                       "display_error": None, "error": None}
        self._sources: list = []

    def add_source(self, fn) -> None:
        """``fn() -> dict`` of values read at each snapshot (counters owned by other parts)."""
        self._sources.append(fn)

    def set(self, **values) -> None:
        with self._lock:
            self.values.update(values)

    def get(self, key):
        with self._lock:
            return self.values[key]

    def snapshot(self) -> dict:
        with self._lock:
            values = dict(self.values)
        for fn in self._sources:
            values.update(fn())
        return {"device_id": values.pop("device_id"), "time": iso_utc(self._wall()),
                "uptime_s": round(self._clock() - self._started, 1), **values}


class FpsMeter:
    """Frames per second, smoothed (exponential moving average over frame intervals)."""

    def __init__(self, clock=time.monotonic, alpha: float = 0.1):
        self.clock, self.alpha = clock, alpha
        self._last: float | None = None
        self.fps = 0.0

    def tick(self) -> float:
        now = self.clock()
        if self._last is not None and now > self._last:
            rate = 1.0 / (now - self._last)
            self.fps = rate if self.fps == 0 else (1 - self.alpha) * self.fps + self.alpha * rate
        self._last = now
        return self.fps


def process_age_s(proc: Path = Path("/proc")) -> float | None:
    """Seconds since this process started (interpreter start-up included); None off Linux."""
    try:
        fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        uptime = float((proc / "uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def make_leds(cfg, pin_factory=None):
    """StatusLeds for the ``[leds]`` pins, or NullLeds when none are set or GPIO is unusable."""
    from device.leds import NullLeds, StatusLeds

    if cfg.status_pin is None:
        return NullLeds()
    try:
        return StatusLeds(cfg.status_pin, cfg.presence_pin,
                          tuple(cfg.rgb_pins) if cfg.rgb_pins else None, pin_factory=pin_factory)
    except Exception as exc:  # gpiozero raises many kinds (BadPinFactory, PinInvalidPin, ...)
        log.warning("LEDs on GPIO %s unavailable (%s: %s); running without LEDs",
                    cfg.status_pin, type(exc).__name__, exc)
        return NullLeds()


FRAMEBUFFER = "/dev/fb0"


def preview_for(display) -> str | None:
    """The preview a Pi camera must start for the configured screen (before the camera starts).

    ``drm`` and ``auto`` draw over picamera2's DRM preview when the source is the Pi camera.
    """
    return "drm" if display.sink in ("drm", "auto") else None


def sink_for(display, source, framebuffer: str = FRAMEBUFFER) -> str:
    """The sink spec for ``[display] sink`` once the source is open (``auto`` resolved).

    ``auto``: the DRM view over the Pi camera's preview, else the framebuffer when the device
    has one, else no screen.
    """
    if display.sink != "auto":
        return display.sink
    if getattr(source, "kind", None) == "picamera":
        return "drm"
    return f"fb:{framebuffer}" if Path(framebuffer).exists() else "none"


def open_display(display, source, framebuffer: str = FRAMEBUFFER):
    """Open the screen for ``[display]`` over an open ``source``; DisplayError says why not."""
    from device.display import DrmSink, open_sink

    spec = sink_for(display, source, framebuffer)
    if spec == "drm":
        error = getattr(source, "preview_error", None)
        if error:
            raise DisplayError(f"the Pi camera's DRM preview did not start: {error}")
        return DrmSink.for_source(source)
    options = {"every": display.png_every} if spec.startswith("png:") else {}
    return open_sink(spec, **options)


def overrides_from_args(args) -> dict[str, object]:
    """``kiosk run`` options as dotted config keys (checked like values from the file)."""
    out: dict[str, object] = {}
    if getattr(args, "source", None):
        out["source.spec"] = args.source
    if getattr(args, "loop", False):
        out["source.loop"] = True
    if getattr(args, "device_id", None):
        out["device.id"] = args.device_id
    if getattr(args, "window", None) is not None:
        if not isinstance(args.window, (int, float)):  # argparse leaves "--window=--" a list
            raise ConfigError(f"--window: must be a number of seconds (got {args.window!r})")
        out["aggregate.window_s"] = float(args.window)
    if getattr(args, "state_dir", None):
        out["state.dir"] = args.state_dir
    if getattr(args, "display", None):
        out["display.sink"] = args.display
    if getattr(args, "no_mqtt", False):
        out["mqtt.host"] = ""
    elif getattr(args, "mqtt", None):
        host, sep, port = args.mqtt.rpartition(":")
        if not sep or not port.isdigit():
            host, port = args.mqtt, "1883"
        out["mqtt.host"], out["mqtt.port"] = host.strip("[]"), int(port)
    return out
