"""``kiosk doctor``: every check through its seam, and the real parts the project has.

Hardware is faked where the rest of the suite fakes it (a stand-in cv2.VideoCapture and Picamera2
behind the real camera sources, the PNG sink for the screen, a stand-in delegate loader); the
models, a sample video, mosquitto (anonymous, with a password file, with TLS) and the command
itself are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import namedtuple
from pathlib import Path

import cv2
import numpy as np
import pytest

from device import doctor, doctor_checks
from device.cli import build_parser, main
from device.config import load_config
from device.display import open_sink
from device.doctor import FAIL, OK, SKIP, WARN, Check, Seams, run_checks
from device.doctor_checks import (
    build_pipeline,
    check_accelerator,
    check_broker,
    check_camera,
    check_clock,
    check_display,
    check_models,
    check_spool,
    make_test_card,
    models_folder,
    read_clock_sync,
)
from device.errors import DisplayError, SourceError
from device.manifest import load_manifest, model_path
from device.runtime import edgetpu_status
from device.sources import OpenCVCameraSource, PiCameraSource
from device.sources.base import FrameSource
from device.types import Frame
from tests.shared_data import sample

REPO = Path(__file__).resolve().parents[1]
DiskUsage = namedtuple("DiskUsage", "total used free")
PLENTY = DiskUsage(64 << 30, 1 << 30, 63 << 30)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class TickingCapture:
    """Stands in for cv2.VideoCapture: a camera of ``size`` delivering a frame every ``dt`` s."""

    def __init__(self, clock, size=(320, 240), dt=0.1, fail_after=None):
        self.clock, self.size, self.dt, self.fail_after = clock, size, dt, fail_after
        self.reads, self.released = 0, False

    def __call__(self, *args):  # the capture factory's signature
        return self

    def isOpened(self):
        return not self.released

    def read(self):
        if self.fail_after is not None and self.reads >= self.fail_after:
            return False, None
        self.reads += 1
        self.clock.t += self.dt
        return True, np.zeros((self.size[1], self.size[0], 3), np.uint8)

    def get(self, prop):
        return 0.0  # like many USB cameras: no declared rate

    def set(self, *a):
        return True

    def release(self):
        self.released = True


class StandInPicamera2:
    """Stands in for picamera2.Picamera2 (RGB888 main stream), ticking the fake clock per frame."""

    def __init__(self, clock, dt=1 / 30):
        self.clock, self.dt, self.started, self.closed = clock, dt, False, False

    def __call__(self, num):
        return self

    def create_video_configuration(self, main):
        return {"main": main}

    def configure(self, config):
        self.size = config["main"]["size"]

    def start(self):
        self.started = True

    def capture_array(self, name):
        self.clock.t += self.dt
        return np.zeros((self.size[1], self.size[0], 4), np.uint8)

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


class DemoLike(FrameSource):
    """What ``open_source("auto")`` returns on a machine without a camera: the demo clip."""

    kind = "demo"

    def __init__(self):
        super().__init__("demo:astronaut")
        self.fps, self.closed = 15.0, False

    def read(self):
        return Frame(np.zeros((36, 64, 3), np.uint8), 0.0)

    def close(self):
        self.closed = True


class RecordingSink:
    """A display that records what it was shown (and whether it was closed)."""

    type_key = "fake"

    def __init__(self, fail=False):
        self.shown, self.closed, self.fail = [], False, fail

    def show(self, image):
        if self.fail:
            raise DisplayError("the screen went away")
        self.shown.append(image)

    def close(self):
        self.closed = True


class FakePipeline:
    model_version = "9.9.9"

    def __init__(self, attributes=True):
        self.attributes = attributes

    def self_test(self):
        return {"faces": 1, **({"attributes": [{}]} if self.attributes else {})}


def cfg_for(tmp_path, **overrides):
    base = {"state.dir": str(tmp_path / "state"), "device.id": "doc1"}
    return load_config(None, {**base, **overrides})


def seams(clock=None, **kw):
    defaults = dict(open_source=lambda *a: pytest.fail("no source expected"),
                    make_pipeline=lambda m, folder: FakePipeline(),
                    edgetpu_status=lambda: (False, "did not load: libedgetpu.so.1: missing"),
                    clock_sync=lambda: (True, "test"), disk_usage=lambda p: PLENTY,
                    clock=clock or FakeClock())
    return Seams(**{**defaults, **kw})


def camera_opener(capture):
    """An ``open_source`` seam giving the real OpenCV camera source on a stand-in capture."""
    return lambda spec, loop, pace, preview: OpenCVCameraSource(0, capture_factory=capture)


def rows_by_name(rows):
    return {r.name: r for r in rows}


# -- camera ----------------------------------------------------------------------------------------
def test_camera_reports_size_and_measured_rate_of_a_camera_and_stops_after_n_frames(tmp_path):
    clock = FakeClock()
    cap = TickingCapture(clock, size=(320, 240), dt=0.1)
    row, source = check_camera(cfg_for(tmp_path).source, camera_opener(cap), clock, frames=12)
    assert (row.status, row.required) == (OK, True)
    assert "320x240" in row.detail and "12 frames" in row.detail and "10.0 fps" in row.detail
    assert cap.reads == 12 and not cap.released  # kept open for the display check
    source.close()
    assert cap.released


def test_camera_stops_reading_after_its_time_limit(tmp_path):
    clock = FakeClock()
    cap = TickingCapture(clock, dt=0.5)  # a 2 fps camera: the 2 s limit ends the reading
    row, source = check_camera(cfg_for(tmp_path).source, camera_opener(cap), clock, frames=30,
                               seconds=2.0)
    source.close()
    assert row.status == OK and cap.reads == 4
    assert "4 frames in 1.5 s = 2.0 fps" in row.detail


def test_pi_camera_through_the_stand_in_picamera2(tmp_path):
    clock = FakeClock()
    cam = StandInPicamera2(clock)
    cfg = cfg_for(tmp_path, **{"source.spec": "picamera"})
    row, source = check_camera(
        cfg.source, lambda spec, loop, pace, preview: PiCameraSource(picamera2_factory=cam),
        clock)
    source.close()
    assert row.status == OK and "1280x720" in row.detail and "30.0 fps" in row.detail
    assert cam.closed


def test_camera_that_does_not_open_fails_with_the_reason(tmp_path):
    def open_source(spec, loop, pace, preview):
        raise SourceError("camera 0 not found or busy (no frames could be opened)")

    row, source = check_camera(cfg_for(tmp_path, **{"source.spec": "camera:0"}).source,
                               open_source)
    assert source is None
    assert row.failed and "camera:0: camera 0 not found or busy" in row.detail


def test_camera_that_opens_but_delivers_nothing_fails_and_is_closed_by_the_runner(tmp_path):
    clock = FakeClock()
    cap = TickingCapture(clock, fail_after=0)
    rows = run_checks(lambda: cfg_for(tmp_path, **{"source.spec": "camera:0"}), seams(
        clock, open_source=lambda *a: OpenCVCameraSource(0, retries=2, capture_factory=cap)))
    camera = rows_by_name(rows)["camera"]
    assert camera.failed and "opened, but" in camera.detail
    assert "stopped delivering" in camera.detail
    assert cap.released
    assert doctor.exit_status(rows) == 1


def test_auto_without_a_camera_fails_and_says_it_would_run_the_demo(tmp_path):
    demo = DemoLike()
    rows = run_checks(lambda: cfg_for(tmp_path), seams(open_source=lambda *a: demo))
    camera = rows_by_name(rows)["camera"]
    assert camera.failed and "no camera found" in camera.detail and "demo" in camera.detail
    assert demo.closed


def test_an_explicit_demo_or_file_source_passes(tmp_path):
    cfg = cfg_for(tmp_path, **{"source.spec": "demo"})
    row, source = check_camera(cfg.source, lambda *a: DemoLike(), FakeClock())
    source.close()
    assert row.status == OK and "64x36" in row.detail and "not a camera" in row.detail


def test_real_video_file_source(tmp_path):
    clip = sample("stage_and_audience.mp4")
    cfg = cfg_for(tmp_path, **{"source.spec": str(clip)})
    row, source = check_camera(cfg.source, doctor._open_source)
    source.close()
    assert row.status == OK and "640x360" in row.detail and "30 frames read" in row.detail


# -- display ---------------------------------------------------------------------------------------
def test_drm_display_gets_the_open_pi_camera_and_shows_one_test_card(tmp_path):
    clock = FakeClock()
    cam = StandInPicamera2(clock)
    sink, seen = RecordingSink(), {}

    def open_display(display_cfg, source):
        seen["sink"], seen["source_open"] = display_cfg.sink, not cam.closed
        seen["source"] = source
        return sink

    def open_source(spec, loop, pace, preview):
        seen["preview"] = preview  # the Pi camera must start the DRM preview before it starts
        return PiCameraSource(picamera2_factory=cam)

    rows = run_checks(lambda: cfg_for(tmp_path, **{"source.spec": "picamera",
                                                   "display.sink": "drm"}),
                      seams(clock, open_source=open_source, open_display=open_display))
    display = rows_by_name(rows)["display"]
    assert display.status == OK and display.required
    assert seen["preview"] == "drm"
    assert seen["sink"] == "drm" and seen["source_open"]
    assert isinstance(seen["source"], PiCameraSource)
    assert len(sink.shown) == 1 and sink.closed and cam.closed


def test_png_display_gets_the_test_card_and_no_camera_image(tmp_path):
    cfg = cfg_for(tmp_path, **{"display.sink": f"png:{tmp_path / 'screen' / 'd.png'}"})
    row = check_display(cfg.display, None, doctor.open_display)
    assert row.status == OK
    written = cv2.imread(str(tmp_path / "screen" / "d.png"))
    assert written is not None and np.array_equal(written, make_test_card())


def test_display_that_cannot_open_or_show_fails_and_is_closed(tmp_path):
    cfg = cfg_for(tmp_path, **{"display.sink": "fb:/dev/fb7"})
    row = check_display(cfg.display, None, lambda d, s: open_sink(d.sink))
    assert row.failed and "fb:/dev/fb7" in row.detail and "fb7" in row.detail
    broken = RecordingSink(fail=True)
    row = check_display(cfg.display, None, lambda d, s: broken)
    assert row.failed and "the screen went away" in row.detail and broken.closed


def test_drm_display_without_a_camera_fails_and_none_is_skipped(tmp_path):
    from types import SimpleNamespace

    drm = SimpleNamespace(sink="drm", png_every=1)
    row = check_display(drm, None, lambda d, s: pytest.fail("must not open"))
    assert row.failed and "camera did not open" in row.detail
    row = check_display(cfg_for(tmp_path).display, None, lambda d, s: pytest.fail("no"))
    assert (row.status, row.required) == (SKIP, False)


def test_auto_display_passes_with_the_screen_it_finds_and_warns_without_one():
    from types import SimpleNamespace

    from device.display import NullSink

    auto = SimpleNamespace(sink="auto", png_every=1)
    screen = RecordingSink()
    screen.type_key = "fb"
    row = check_display(auto, None, lambda d, s: screen)
    assert (row.status, row.required) == (OK, True) and row.detail.startswith("auto (fb): showed")
    assert len(screen.shown) == 1 and screen.closed
    nothing = NullSink()
    row = check_display(auto, None, lambda d, s: nothing)
    assert (row.status, row.required) == (WARN, False) and "no screen" in row.detail
    assert nothing.closed and nothing.frames == 0


def test_default_seams_are_the_appliances_own(tmp_path, monkeypatch):
    from device import wiring

    calls = []
    monkeypatch.setattr(wiring, "open_display", lambda d, s: calls.append((d, s)) or "sink")
    display, source = cfg_for(tmp_path, **{"display.sink": "png:x.png"}).display, object()
    assert doctor.open_display(display, source) == "sink"
    assert calls == [(display, source)]
    monkeypatch.setattr(wiring, "preview_for", lambda d: "drm-for-test")
    assert doctor.preview_for(display) == "drm-for-test"


# -- accelerator -----------------------------------------------------------------------------------
def test_edgetpu_status_says_why_the_delegate_did_not_load():
    def load_delegate(lib):
        raise OSError(f"{lib}: cannot open shared object file: No such file or directory")

    loaded, reason = edgetpu_status(load_delegate)
    assert not loaded and "libedgetpu.so.1: cannot open shared object file" in reason
    assert edgetpu_status(lambda lib: object()) == (True, "libedgetpu.so.1 loaded")


def test_real_edgetpu_status_on_this_machine():
    loaded, reason = doctor._edgetpu_status()  # the real loader, its __del__ complaint muted
    if loaded:
        pytest.skip("this machine has a working Edge TPU runtime")
    assert "libedgetpu" in reason


def test_accelerator_is_informative_and_warns_only_when_models_want_the_edge_tpu(tmp_path):
    missing = lambda: (False, "did not load: libedgetpu.so.1: missing")  # noqa: E731
    shipped = Path(cfg_for(tmp_path).models.dir)
    row = check_accelerator(shipped, missing)
    assert (row.status, row.required) == (OK, False) and "CPU" in row.detail
    assert "libedgetpu.so.1: missing" in row.detail
    tpu = tmp_path / "tpu"
    tpu.mkdir()
    (tpu / "manifest.json").write_text(json.dumps(
        {"version": "1", "detector": {"file": "det_edgetpu.tflite", "sha256": "x"}}))
    row = check_accelerator(tpu, missing)
    assert (row.status, row.required) == (WARN, False) and "det_edgetpu.tflite" in row.detail
    row = check_accelerator(tpu, lambda: (True, "libedgetpu.so.1 loaded"))
    assert row.status == OK and "used by det_edgetpu.tflite" in row.detail


# -- models ----------------------------------------------------------------------------------------
def test_shipped_models_pass_their_self_test(tmp_path):
    cfg = cfg_for(tmp_path)
    folder, origin = models_folder(cfg)
    assert folder == Path(cfg.models.dir) and origin == "installed with the software"
    row = check_models(cfg.models, folder, origin)
    version = load_manifest(folder)["version"]
    assert row.status == OK and f"models {version}" in row.detail
    assert "self-test passed" in row.detail


def test_models_without_an_attribute_model_warn_and_broken_ones_fail(tmp_path):
    cfg = cfg_for(tmp_path)
    shipped = Path(cfg.models.dir)
    manifest = load_manifest(shipped)
    det = model_path(shipped, manifest["detector"])
    only = tmp_path / "detector-only"
    only.mkdir()
    (only / det.name).write_bytes(det.read_bytes())
    (only / "manifest.json").write_text(json.dumps(
        {"version": "0.1", "detector": manifest["detector"]}))
    row = check_models(cfg.models, only, "test", build_pipeline)
    assert (row.status, row.required) == (WARN, True) and "no attribute model" in row.detail
    (only / det.name).write_bytes(b"not a model")
    row = check_models(cfg.models, only, "test", build_pipeline)
    assert row.failed and str(only) in row.detail


def test_models_come_from_the_active_slot_when_the_state_has_one(tmp_path):
    from device.slots import MODELS_SUBDIR, SlotStore

    cfg = cfg_for(tmp_path)
    store = SlotStore(Path(cfg.state.dir) / MODELS_SUBDIR, Path(cfg.models.dir))
    store.ensure()
    folder, origin = models_folder(cfg)
    assert folder == store.slot_dir("a") and origin == "slot a"
    assert check_models(cfg.models, folder, origin).status == OK


def test_a_crashing_check_becomes_a_failed_row_not_a_traceback(tmp_path):
    def make_pipeline(models_cfg, folder):
        raise KeyError("detector")

    rows = run_checks(lambda: cfg_for(tmp_path, **{"source.spec": "demo"}),
                      seams(open_source=lambda *a: DemoLike(), make_pipeline=make_pipeline))
    models = rows_by_name(rows)["models"]
    assert models.failed and "KeyError" in models.detail
    assert [r.name for r in rows] == ["config", "camera", "display", "accelerator", "models",
                                      "broker", "clock", "spool"]


# -- broker ----------------------------------------------------------------------------------------
def test_broker_pass_publishes_one_unretained_qos1_message_to_the_doctor_topic(
        tmp_path, mosquitto, listen):
    cfg = cfg_for(tmp_path, **{"mqtt.host": mosquitto.host, "mqtt.port": mosquitto.port})
    # a running appliance holds the broker with its own client id: the doctor must not kick it
    appliance = listen(mosquitto, ["kiosk/doc1/#"], client_id=cfg.mqtt.client_id)
    row = check_broker(cfg.mqtt)
    assert (row.status, row.required) == (OK, True)
    assert "kiosk/doc1/doctor" in row.detail and f"{mosquitto.port}" in row.detail
    assert appliance.wait_for(lambda s: s.payloads("kiosk/doc1/doctor"), 10)
    topic, payload, retained = appliance.messages[0]
    assert topic == "kiosk/doc1/doctor" and not retained and json.loads(payload)["doctor"]
    assert appliance.client.is_connected()
    assert [t for t, _, _ in appliance.messages] == ["kiosk/doc1/doctor"]  # no will, nothing else


def test_broker_with_nothing_listening_fails_with_the_reason(tmp_path):
    from tests.conftest import _free_port

    port = _free_port()
    cfg = cfg_for(tmp_path, **{"mqtt.host": "127.0.0.1", "mqtt.port": port})
    row = check_broker(cfg.mqtt, timeout=5)
    assert row.failed and f"127.0.0.1:{port}" in row.detail and "refused" in row.detail


def test_broker_credentials_right_wrong_and_unreadable(tmp_path, tmp_path_factory):
    from tests.conftest import Broker

    work = tmp_path_factory.mktemp("pwbroker")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(work / "passwd"), "kiosk", "s3cret-pw"],
                   check=True, capture_output=True)
    broker = Broker(work, anonymous=False, extra=[f"password_file {work / 'passwd'}"])
    broker.start()
    try:
        def row_with(password_file):
            cfg = cfg_for(tmp_path, **{"mqtt.host": broker.host, "mqtt.port": broker.port,
                                       "mqtt.username": "kiosk",
                                       "mqtt.password_file": str(password_file)})
            return check_broker(cfg.mqtt, timeout=5)

        (tmp_path / "good").write_text("s3cret-pw\n")
        (tmp_path / "bad").write_text("wrong-pw")
        good, bad = row_with(tmp_path / "good"), row_with(tmp_path / "bad")
        assert good.status == OK and "as kiosk" in good.detail
        assert bad.failed and "refused the connection" in bad.detail
        assert "s3cret" not in bad.detail + good.detail and "wrong-pw" not in bad.detail
        missing = row_with(tmp_path / "nope")
        assert missing.failed and "[mqtt] password_file" in missing.detail
    finally:
        broker.stop()


def test_broker_over_tls_needs_the_configured_ca(tmp_path, tmp_path_factory):
    from tests.conftest import Broker
    from tests.test_mqtt import _tls_files

    work = tmp_path_factory.mktemp("tlsbroker")
    files = _tls_files(work)
    broker = Broker(work, extra=[f"cafile {files['ca.crt']}", f"certfile {files['server.crt']}",
                                 f"keyfile {files['server.key']}"])
    broker.start()
    try:
        base = {"mqtt.host": broker.host, "mqtt.port": broker.port}
        ok = check_broker(cfg_for(tmp_path, **base, **{"mqtt.tls": {"ca_file": files["ca.crt"]}})
                          .mqtt, timeout=5)
        assert ok.status == OK and "over TLS" in ok.detail
        system_cas = check_broker(cfg_for(tmp_path, **base, **{"mqtt.tls": {}}).mqtt, timeout=5)
        assert system_cas.failed and "certificate" in system_cas.detail.lower()
        plain = check_broker(cfg_for(tmp_path, **base).mqtt, timeout=5)
        assert plain.failed and "closed before the broker answered" in plain.detail
        assert "[mqtt.tls]" in plain.detail
    finally:
        broker.stop()


class SilentClient:
    """A paho client stand-in that connects but never answers (``answer``) or never acks."""

    def __init__(self, answer: bool):
        self.answer = answer
        self.on_connect = self.on_publish = None

    def __call__(self, *args, **kw):
        return self

    def __getattr__(self, name):  # enable_logger, will_set, will_clear, disconnect, ...
        return lambda *a, **kw: None

    def loop_start(self):
        if self.answer:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.reasoncodes import ReasonCode

            threading.Thread(target=self.on_connect, args=(
                self, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)).start()

    def publish(self, *a, **kw):
        return namedtuple("Info", "mid")(7)


def test_broker_that_never_answers_or_never_acknowledges_fails(tmp_path):
    cfg = cfg_for(tmp_path, **{"mqtt.host": "broker.test"})
    row = check_broker(cfg.mqtt, client_factory=SilentClient(answer=False), timeout=0.2)
    assert row.failed and "did not answer" in row.detail
    row = check_broker(cfg.mqtt, client_factory=SilentClient(answer=True), timeout=0.2)
    assert row.failed and "did not acknowledge" in row.detail


def test_no_broker_configured_is_skipped_and_not_required(tmp_path):
    row = check_broker(cfg_for(tmp_path).mqtt)
    assert (row.status, row.required) == (SKIP, False)


# -- clock -----------------------------------------------------------------------------------------
def fake_run(stdout="", stderr="", returncode=0, raises=None):
    def run(cmd, **kw):
        assert cmd == ["timedatectl", "show", "-p", "NTPSynchronized", "--value"]
        if raises:
            raise raises
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)

    return run


def test_clock_sync_reader(tmp_path):
    flag = tmp_path / "synchronized"
    assert read_clock_sync(fake_run("yes\n"), flag)[0] is True
    assert read_clock_sync(fake_run("no\n"), flag)[0] is False
    synced, why = read_clock_sync(fake_run(stderr="System has not been booted with systemd as "
                                           "init system (PID 1). Can't operate.\n",
                                           returncode=1), flag)
    assert synced is None and "not been booted with systemd" in why and str(flag) in why
    synced, why = read_clock_sync(fake_run(raises=FileNotFoundError("timedatectl")), flag)
    assert synced is None and "timedatectl not found" in why
    flag.write_text("")
    assert read_clock_sync(fake_run(raises=FileNotFoundError("timedatectl")), flag)[0] is True


def test_clock_is_a_warning_never_a_failure():
    wall = lambda: 1_800_000_000.0  # noqa: E731
    ok = check_clock(lambda: (True, "timedatectl: NTPSynchronized=yes"), wall)
    off = check_clock(lambda: (False, "timedatectl: NTPSynchronized=no"), wall)
    unknown = check_clock(lambda: (None, "timedatectl not found"), wall)
    assert ok.status == OK and "2027-01-15T08:00:00.000Z" in ok.detail
    assert off.status == WARN and "set-ntp" in off.detail
    assert unknown.status == WARN and unknown.detail.startswith("unknown: timedatectl not found")
    assert not any(r.required for r in (ok, off, unknown))


# -- spool -----------------------------------------------------------------------------------------
def test_spool_space_and_permissions(tmp_path):
    cfg = cfg_for(tmp_path)
    need = doctor_checks.spool_need_bytes(cfg)
    assert need > 7 * 1440 * 1024  # a week of one-minute windows, at least
    row = check_spool(cfg, lambda p: PLENTY)
    assert row.status == OK and "made at the first start" in row.detail
    assert not Path(cfg.state.dir).exists()  # the doctor creates nothing
    Path(cfg.state.dir).mkdir()
    assert check_spool(cfg, lambda p: PLENTY).detail.startswith(f"{cfg.state.dir}: writable")
    full = check_spool(cfg, lambda p: DiskUsage(need, need, need - 1))
    assert full.failed and "a full spool needs about" in full.detail
    locked = check_spool(cfg, lambda p: PLENTY, access=lambda p, mode: False)
    assert locked.failed and "not writable" in locked.detail
    Path(cfg.state.dir).rmdir()
    uncreatable = check_spool(cfg, lambda p: PLENTY, access=lambda p, mode: False)
    assert (uncreatable.status, uncreatable.required) == (WARN, True)
    assert "StateDirectory=" in uncreatable.detail


# -- config, table, command ------------------------------------------------------------------------
def test_bad_config_fails_names_the_key_and_skips_what_needs_it(tmp_path):
    bad = tmp_path / "kiosk.toml"
    bad.write_text("[mqtt]\nprot = 1883\n")
    args = build_parser().parse_args(["doctor", "--config", str(bad)])
    out = _Out()
    code = doctor.doctor_main(args, seams(), out)
    rows = {line.split()[0]: line for line in out.lines()}
    assert code == 1
    assert list(rows) == ["config", "camera", "display", "accelerator", "models", "broker",
                          "clock", "spool"]
    assert "fail" in rows["config"] and "[mqtt] prot: unknown key" in rows["config"]
    for name in ("camera", "display", "models", "broker", "spool"):
        assert rows[name].split()[1] == "skip"
    assert rows["clock"].split()[1] == "ok" and rows["accelerator"].split()[1] == "ok"


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def lines(self):
        return [ln for ln in self.text.splitlines()[1:] if ln and not ln.startswith("kiosk")]


def test_table_is_aligned_and_json_lines_carry_every_row(tmp_path):
    rows = [Check("config", OK, "fine", True), Check("accelerator", WARN, "cpu", False),
            Check("camera", FAIL, "no camera", True)]
    lines = doctor.format_table(rows).splitlines()
    starts = {line.index(word) for line, word in zip(lines, ["STATUS", "ok", "warn", "fail"])}
    assert len(starts) == 1
    words = ["DETAIL", "fine", "cpu", "no camera"]
    details = {line.index(word) for line, word in zip(lines, words)}
    assert len(details) == 1
    assert lines[-1] == ("kiosk doctor: NOT READY: required check(s) failed: camera "
                         "(warnings: accelerator)")
    args = build_parser().parse_args(["doctor", "--json", "--source", "demo",
                                      "--state-dir", str(tmp_path / "s")])
    out = _Out()
    doctor.doctor_main(args, seams(open_source=lambda *a: DemoLike()), out)
    parsed = [json.loads(line) for line in out.text.splitlines()]
    assert [p["check"] for p in parsed][:2] == ["config", "camera"]
    assert set(parsed[0]) == {"check", "status", "required", "detail"}


def test_every_required_part_passing_exits_zero_even_with_warnings(tmp_path):
    clock = FakeClock()
    cap = TickingCapture(clock)
    rows = run_checks(lambda: cfg_for(tmp_path, **{"source.spec": "camera:0",
                                                   "display.sink": f"png:{tmp_path / 'd.png'}"}),
                      seams(clock, open_source=camera_opener(cap),
                            clock_sync=lambda: (None, "no systemd")))
    assert {r.name: r.status for r in rows} == {
        "config": OK, "camera": OK, "display": OK, "accelerator": OK, "models": OK,
        "broker": SKIP, "clock": WARN, "spool": OK}
    assert doctor.exit_status(rows) == 0


def test_help_states_the_rule_and_the_docstring_holds_the_same_rule(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    rule = " ".join(doctor.RULE.split())
    assert rule in help_text and rule in " ".join(doctor.__doc__.split())
    assert "Exit status: 0 when every required check passes" in rule


def test_video_png_and_real_broker_pass_and_nothing_but_the_png_is_written(tmp_path, mosquitto):
    clip = sample("stage_and_audience.mp4")
    work = tmp_path / "work"
    work.mkdir()
    args = build_parser().parse_args([
        "doctor", "--source", str(clip), "--display", "png:d.png", "--device-id", "doc1",
        "--mqtt", f"{mosquitto.host}:{mosquitto.port}", "--state-dir", str(work / "state")])
    out = _Out()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        code = doctor.doctor_main(args, Seams(clock_sync=lambda: (None, "no systemd here")), out)
    finally:
        os.chdir(cwd)
    statuses = {line.split()[0]: line.split()[1] for line in out.lines()}
    assert code == 0, out.text
    assert statuses == {"config": OK, "camera": OK, "display": OK, "accelerator": OK,
                        "models": OK, "broker": OK, "clock": WARN, "spool": OK}
    assert sorted(p.name for p in work.iterdir()) == ["d.png"]  # no frames, crops or state


def test_kiosk_doctor_on_a_machine_without_camera_names_what_is_missing(tmp_path):
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera device")
    proc = subprocess.run([sys.executable, "-m", "device.cli", "doctor",
                           "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    camera = next(ln for ln in proc.stdout.splitlines() if ln.startswith("camera"))
    assert camera.split()[1] == "fail" and "no camera found" in camera and "demo" in camera
    assert "NOT READY: required check(s) failed: camera" in proc.stdout
