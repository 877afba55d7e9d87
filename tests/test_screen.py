"""The screen on a Pi: the DRM view over the camera's own preview, retried when it is missing.

The Pi camera is a stand-in ``Picamera2`` (in ``sys.modules`` as ``picamera2``) that records
every call and fails the way picamera2 does when the preview is started late or drawn over
without one. The appliance runs with its real wiring: ``open_source``, ``PiCameraSource``,
``open_display``, ``DrmSink``, the display thread and the status LED logic.
"""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest

from device.errors import DisplayError
from device.health import Health, led_pattern
from device.screen import Screen
from tests.test_app import FakePipeline, RecordingLeds


class StandInPicamera2:
    """Records calls; raises where picamera2 would (preview after start, overlay without one)."""

    instances: list[StandInPicamera2] = []
    fail_preview: str | None = None  # the DRM preview cannot start (no screen, desktop busy)
    frames_before_unplug: int | None = None  # the first camera object stops after this many

    def __init__(self, num):
        self.num, self.calls, self.started, self.preview, self.frames = num, [], False, None, 0
        StandInPicamera2.instances.append(self)

    def create_video_configuration(self, main):
        return {"main": main}

    def configure(self, config):
        self.calls.append("configure")
        self.size = config["main"]["size"]

    def start_preview(self, kind, **options):
        if self.started:
            raise RuntimeError("the preview must be started before the camera")
        if self.fail_preview:
            raise RuntimeError(self.fail_preview)
        self.calls.append(f"start_preview:{kind}")
        self.preview = kind

    def start(self):
        self.calls.append("start")
        self.started = True

    def capture_array(self, name):
        first = self is StandInPicamera2.instances[0]
        if not self.started or (first and self.frames == StandInPicamera2.frames_before_unplug):
            raise RuntimeError("camera stopped delivering")
        self.frames += 1
        time.sleep(0.01)  # a camera delivers at its own pace
        return np.full((self.size[1], self.size[0], 4), 90, np.uint8)

    def set_overlay(self, overlay):
        if self.preview is None:
            raise RuntimeError("set_overlay needs a running preview")
        if overlay is not None:
            assert overlay.ndim == 3 and overlay.shape[2] == 4 and overlay.dtype == np.uint8
        self.calls.append("set_overlay" if overlay is not None else "clear_overlay")

    def stop(self):
        self.calls.append("stop")
        self.started = False

    def stop_preview(self):
        self.calls.append("stop_preview")
        self.preview = None

    def close(self):
        self.calls.append("close")


@pytest.fixture
def picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2
    module.Preview = types.SimpleNamespace(DRM="DRM", QTGL="QTGL", NULL="NULL")
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(StandInPicamera2, "instances", [])
    monkeypatch.setattr(StandInPicamera2, "fail_preview", None)
    monkeypatch.setattr(StandInPicamera2, "frames_before_unplug", None)
    return StandInPicamera2


def pi_app(tmp_path, frames=40, **overrides):
    from device.app import App
    from device.config import load_config

    cfg = load_config(None, {"state.dir": str(tmp_path / "state"), "device.id": "pi",
                             "source.spec": "picamera", "display.sink": "drm",
                             "display.max_fps": 100.0, "source.retry_max_s": 0.1,
                             **overrides})
    return App(cfg, pipeline=FakePipeline(), leds=RecordingLeds(), max_frames=frames)


def test_the_drm_view_draws_over_the_preview_the_camera_started_before_it_started(
        picamera2, tmp_path):
    app = pi_app(tmp_path)
    assert app.run() == 0 and app.frames == 40
    (cam,) = picamera2.instances
    calls = cam.calls
    assert calls[:3] == ["configure", "start_preview:DRM", "start"], calls
    assert "set_overlay" in calls  # frames were shown over that same camera's preview
    assert calls.index("set_overlay") > calls.index("start")
    # closing: the overlay is cleared, then the camera stops its own preview
    assert calls[-4:] == ["clear_overlay", "stop", "stop_preview", "close"], calls
    assert app.board.get("display") == "drm" and app.board.get("display_state") == "ok"
    assert app.display.shown >= 1


def test_a_camera_that_comes_back_gets_its_own_preview_and_the_screen_follows_it(
        picamera2, tmp_path, monkeypatch):
    from device import vision_loop

    monkeypatch.setattr(vision_loop, "BACKOFF_START_S", 0.01)
    picamera2.frames_before_unplug = 15
    app = pi_app(tmp_path, frames=60)
    assert app.run() == 0 and app.frames == 60
    first, second = picamera2.instances[:2]
    assert "stop_preview" in first.calls and first.calls[-1] == "close"
    assert second.calls[:3] == ["configure", "start_preview:DRM", "start"]
    assert "set_overlay" in second.calls  # not drawn over the dead camera's preview
    assert app.board.get("display_state") == "ok"


def test_a_preview_that_cannot_start_leaves_the_camera_counting_and_says_why(
        picamera2, tmp_path):
    picamera2.fail_preview = "DRM device busy (a desktop session holds it)"
    app = pi_app(tmp_path)
    assert app.run() == 0 and app.frames == 40  # counting went on without the screen
    (cam,) = picamera2.instances
    assert cam.calls[:2] == ["configure", "start"] and "set_overlay" not in cam.calls
    assert app.board.get("display_state") == "unavailable"
    assert "DRM device busy" in app.board.get("display_error")
    assert "degraded" in app.leds.calls and "error" not in app.leds.calls
    snapshot = app.board.snapshot()
    assert snapshot["camera"] == "ok" or snapshot["camera"] == "ended"


def test_auto_screen_uses_the_drm_view_with_the_pi_camera(picamera2, tmp_path):
    app = pi_app(tmp_path, **{"display.sink": "auto"})
    assert app.run() == 0
    (cam,) = picamera2.instances
    assert cam.calls[:3] == ["configure", "start_preview:DRM", "start"]
    assert app.board.get("display") == "drm"


def test_auto_screen_without_a_pi_camera_uses_the_framebuffer_if_there_is_one(tmp_path):
    from device.config import load_config
    from device.wiring import sink_for

    display = load_config(None, {"display.sink": "auto"}).display
    camera = types.SimpleNamespace(kind="camera")
    fb = tmp_path / "fb0"
    assert sink_for(display, camera, framebuffer=str(fb)) == "none"
    fb.write_bytes(b"")
    assert sink_for(display, camera, framebuffer=str(fb)) == f"fb:{fb}"
    assert sink_for(display, types.SimpleNamespace(kind="picamera"), str(fb)) == "drm"


# -- Screen: open, fail, retry with backoff -----------------------------------------------------

class FlakySink:
    type_key = "fb"

    def __init__(self, log, fail_show=False):
        self.log, self.fail_show, self.closed = log, fail_show, False

    def show(self, image):
        if self.fail_show:
            raise DisplayError("framebuffer write failed: cable pulled")
        self.log.append("show")

    def close(self):
        self.closed = True


def test_a_missing_screen_is_retried_with_a_growing_pause_and_reported_once_per_change():
    now = [0.0]
    states, shown, attempts = [], [], []

    def opener(source):
        attempts.append(now[0])
        if len(attempts) < 4:
            raise DisplayError("cannot open framebuffer /dev/fb0: no such device")
        return FlakySink(shown)

    screen = Screen(opener, lambda *s: states.append(s), retry_s=5, retry_max_s=12,
                    clock=lambda: now[0])
    image = np.zeros((4, 4, 3), np.uint8)
    screen.show(image)
    assert attempts == [] and states == []  # no source yet: nothing to open over
    screen.attach(object())
    for t in range(0, 40):
        now[0] = float(t)
        screen.show(image)
    assert attempts == [0.0, 5.0, 15.0, 27.0]  # pauses 5, 10, then capped at 12
    assert [s[0] for s in states] == ["unavailable", "ok"]
    assert "no such device" in states[0][2]
    assert len(shown) == 40 - 27


def test_a_screen_that_fails_while_showing_is_closed_and_reopened():
    now = [0.0]
    states, shown, sinks = [], [], []

    def opener(source):
        sinks.append(FlakySink(shown, fail_show=not sinks))
        return sinks[-1]

    screen = Screen(opener, lambda *s: states.append(s), retry_s=1, clock=lambda: now[0])
    screen.attach(object())
    image = np.zeros((4, 4, 3), np.uint8)
    for t in (0.0, 0.5, 1.0, 1.5):
        now[0] = t
        screen.show(image)
    assert [s[0] for s in states] == ["ok", "unavailable", "ok"]
    assert sinks[0].closed and "cable pulled" in states[1][2]
    assert shown == ["show", "show"]


def test_no_screen_configured_means_nothing_is_rendered():
    from device.display import NullSink
    from device.worker import DisplayWorker

    states = []
    screen = Screen(lambda source: NullSink(), lambda *s: states.append(s))
    worker = DisplayWorker(screen, render=None)
    assert worker.due()
    screen.attach(object())
    screen.show(np.zeros((4, 4, 3), np.uint8))
    assert states == [("off", "none", None)] and not worker.due()


# -- the status LED as the sum of the parts ---------------------------------------------------

@pytest.mark.parametrize("camera,screen_ok,broker_ok,pattern", [
    ("starting", None, None, "starting"),
    ("starting", False, False, "starting"),
    ("ok", None, None, "running"),
    ("ok", True, True, "running"),
    ("ok", False, True, "degraded"),
    ("ok", None, False, "degraded"),
    ("lost", True, True, "error"),
    ("lost", False, False, "error"),
    ("ended", True, None, "running"),
])
def test_led_pattern(camera, screen_ok, broker_ok, pattern):
    assert led_pattern(camera, screen_ok, broker_ok) == pattern


def test_health_drives_real_gpio_leds_only_when_the_pattern_changes():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.leds import StatusLeds

    leds = StatusLeds(17, pin_factory=MockFactory(pin_class=MockPWMPin))
    calls = []
    for name in ("running", "degraded", "error", "starting"):
        setattr(leds, name, (lambda f, n: lambda: (calls.append(n), f()))(getattr(leds, name),
                                                                         name))
    health = Health(leds)
    assert health.update() == "starting"
    health.update(camera="ok", broker_ok=True)
    health.update(screen_ok=True)  # still running: the LED is left alone
    health.update(broker_ok=False)
    assert leds.status.is_lit  # degraded is mostly on
    health.update(camera="lost")
    health.update(camera="ok", broker_ok=True)
    assert calls == ["starting", "running", "degraded", "error", "running"]
    assert leds.status.value == 1
    with pytest.raises(TypeError, match="unknown parts"):
        health.update(cammera="ok")
    leds.close()
