"""``kiosk run`` end to end: the real appliance process, the real models, a real mosquitto.

The source is the shipped self-test portrait, looped (``ImageSource`` advances media time by 1 s
per frame), with 1 s windows so that many windows pass in a few seconds. One in-process test at
the end drives the App with a fake pipeline and a failing source (camera-lost backoff).
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.mqtt import Topics, discovery_messages
from device.schemas import validator

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "models" / "selftest" / "astronaut.jpg"
DEVICE = "e2e"
PREFIX = f"kiosk/{DEVICE}/"


class Appliance:
    """``python -m device.cli run ...`` as a child process, its log in a file."""

    def __init__(self, tmp_path, broker=None, *extra, name="app"):
        self.log = tmp_path / f"{name}.log"
        args = [sys.executable, "-m", "device.cli", "run", "--source", str(PORTRAIT), "--loop",
                "--device-id", DEVICE, "--window", "1", "--state-dir", str(tmp_path / "state"),
                *(["--mqtt", f"{broker.host}:{broker.port}"] if broker else ["--no-mqtt"]),
                *extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def appliance(tmp_path):
    made = []

    def start(*args, **kw):
        made.append(Appliance(tmp_path, *args, **kw))
        return made[-1]

    yield start
    for app in made:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(10)


def seqs(sub):
    return [json.loads(p)["seq"] for p in sub.payloads(PREFIX + "audience")]


def contiguous_to(sub, n) -> bool:
    got = set(seqs(sub))
    return bool(got) and max(got) >= n and got >= set(range(1, max(got) + 1))


def test_messages_commands_and_clean_stop(mosquitto, listen, appliance, tmp_path):
    sub = listen(mosquitto, [PREFIX + "#", "homeassistant/#"])
    app = appliance(mosquitto)
    assert sub.wait_for(lambda s: len(seqs(s)) >= 2, 60), app.text()
    assert sub.wait_for(lambda s: s.payloads(PREFIX + "status"), 15)
    # commands: good and malformed, answered in order
    sub.publish(PREFIX + "cmd", json.dumps({"id": "p", "cmd": "ping"}))
    sub.publish(PREFIX + "cmd", b"{broken")
    sub.publish(PREFIX + "cmd", json.dumps({"id": 3, "cmd": "selfdestruct"}))
    sub.publish(PREFIX + "cmd", json.dumps({"id": "s", "cmd": "status"}))
    assert sub.wait_for(lambda s: len(s.payloads(PREFIX + "cmd/result")) >= 4, 15)
    before = max(seqs(sub))
    assert app.stop() == 0
    text = app.text()
    assert "Traceback" not in text
    # the window open at SIGTERM was closed and delivered before "offline"
    assert sub.wait_for(lambda s: s.payloads(PREFIX + "availability")[-1:] == [b"offline"], 10)
    assert contiguous_to(sub, before + 1)

    results = [json.loads(p) for p in sub.payloads(PREFIX + "cmd/result")]
    for r in results:
        validator("cmd_result").validate(r)
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert "not JSON" in results[1]["error"] and "'selfdestruct'" in results[2]["error"]
    assert results[3]["result"]["camera"] == "ok" and results[3]["result"]["state"] == "running"
    for p in sub.payloads(PREFIX + "audience"):
        msg = json.loads(p)
        validator("audience").validate(msg)
        assert msg["device_id"] == DEVICE and msg["frames"] >= 0
    statuses = [json.loads(p) for p in sub.payloads(PREFIX + "status")]
    for s in statuses:
        validator("status").validate(s)
    assert statuses[-1]["state"] == "stopped"
    assert any(s["fps"] > 0 for s in statuses)
    for a in sub.payloads(PREFIX + "availability"):
        validator("availability").validate(a.decode())
    discovery = [(t, json.loads(p)) for t, p, _ in sub.messages
                 if t.startswith("homeassistant/") and t.split("/")[2] == DEVICE]
    assert len({t for t, _ in discovery}) == len(discovery_messages(
        Topics(PREFIX), DEVICE, DEVICE, "homeassistant"))
    for _, config in discovery:
        validator("discovery").validate(config)
    # privacy: the state dir holds the spool and the model slots, no frames, no crops
    state = tmp_path / "state"
    files = [p.relative_to(state) for p in state.rglob("*") if p.is_file()]
    outside_slots = [f for f in files if f.parts[0] != "models"]  # provisioning's A/B slots
    assert outside_slots and all(f.name.startswith("spool.db") for f in outside_slots), files
    assert not [f for f in files if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".npy")]


def test_outage_and_sigkill_mid_outage_lose_no_window(mosquitto_persistent, listen, appliance):
    broker = mosquitto_persistent
    sub = listen(broker, [PREFIX + "audience", PREFIX + "availability"], client_id="consumer",
                 clean_session=False)
    app = appliance(broker)
    assert sub.wait_for(lambda s: len(seqs(s)) >= 2, 60), app.text()

    # 1. broker away for ~20 s while the appliance keeps counting
    broker.stop()
    at_stop = max(seqs(sub))
    time.sleep(20)
    broker.start()
    assert sub.wait_for(lambda s: contiguous_to(s, at_stop + 15), 40), (seqs(sub), app.text())

    # 2. broker away again, the appliance is SIGKILLed in the middle, restarted, broker returns
    broker.stop()
    at_stop = max(seqs(sub))
    time.sleep(4)
    assert app.stop(signal.SIGKILL) == -signal.SIGKILL
    app2 = appliance(broker, name="app2")
    time.sleep(6)  # the new process spools windows while the broker is still away
    broker.start()
    assert sub.wait_for(lambda s: contiguous_to(s, at_stop + 6), 40), (seqs(sub), app2.text())
    assert "Traceback" not in app2.text()

    # 3. killed while connected: the broker publishes the last will
    sub.messages.clear()
    assert app2.stop(signal.SIGKILL) == -signal.SIGKILL
    assert sub.wait_for(lambda s: b"offline" in s.payloads(PREFIX + "availability"), 10)


def test_reload_config_rejects_a_bad_file_and_restarts_with_a_good_one(mosquitto, listen,
                                                                     appliance, tmp_path):
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text("[aggregate]\nk_anonymity = 3\n")
    sub = listen(mosquitto, [PREFIX + "#"])
    app = appliance(mosquitto, "--config", str(cfg))
    assert sub.wait_for(lambda s: len(seqs(s)) >= 1, 60), app.text()
    cfg.write_text("[aggregate]\nk_anonimity = 2\n")
    sub.publish(PREFIX + "cmd", json.dumps({"id": 1, "cmd": "reload-config"}))
    assert sub.wait_for(lambda s: s.payloads(PREFIX + "cmd/result"), 15)
    bad = json.loads(sub.payloads(PREFIX + "cmd/result")[0])
    assert bad["ok"] is False
    assert "[aggregate] k_anonimity: unknown key (did you mean 'k_anonymity'?)" in bad["error"]
    assert app.proc.poll() is None  # still running on the old configuration

    cfg.write_text("[aggregate]\nk_anonymity = 2\n")
    sub.publish(PREFIX + "cmd", json.dumps({"id": 2, "cmd": "reload-config"}))
    assert sub.wait_for(lambda s: len(s.payloads(PREFIX + "cmd/result")) >= 2, 15)
    good = json.loads(sub.payloads(PREFIX + "cmd/result")[1])
    assert good["ok"] and good["result"]["changed"] == ["aggregate"]
    n = max(seqs(sub))
    # the same process (exec) comes back online and keeps counting where it left off
    assert sub.wait_for(lambda s: contiguous_to(s, n + 2), 60), app.text()
    assert "restarting with the new configuration" in app.text()
    assert app.stop() == 0


def test_unknown_config_key_stops_with_the_key_named(tmp_path):
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('[mqtt]\nhost = "localhost"\nprot = 1883\n')
    run = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(cfg)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "[mqtt] prot: unknown key (did you mean 'port'?)" in run.stderr


def test_missing_camera_is_reported_and_retried(mosquitto, listen, tmp_path):
    sub = listen(mosquitto, [PREFIX + "status", PREFIX + "audience"])
    run = subprocess.run(
        [sys.executable, "-m", "device.cli", "run", "--source", "camera:/dev/video-unplugged",
         "--mqtt", f"{mosquitto.host}:{mosquitto.port}", "--device-id", DEVICE, "--window", "1",
         "--state-dir", str(tmp_path / "state"), "--duration", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr
    assert "not found or busy" in run.stderr
    assert "retrying in 1 s" in run.stderr and "retrying in 2 s" in run.stderr
    assert "window 1:" in run.stderr  # windows keep closing while the camera is away
    statuses = [json.loads(p) for p in sub.payloads(PREFIX + "status")]
    lost = [s for s in statuses if s["camera"] == "lost"]
    assert lost and "not found or busy" in lost[0]["error"]
    windows = [json.loads(p) for p in sub.payloads(PREFIX + "audience")]
    assert windows and all(w["frames"] == 0 for w in windows)


# -- in process, with fakes behind the App's seams ---------------------------------------------

class FakePipeline:
    accelerator, model_version, analyzer_available = "cpu", "fake-1", False

    def __init__(self):
        self.trackers = set()  # ids of the trackers ``process`` was handed

    def self_test(self):
        return {"faces": 1}

    def process(self, frame, tracker=None):
        self.trackers.add(id(tracker))
        return []


class FlakySource:
    """Yields ``n`` frames, then fails as an unplugged camera does."""

    def __init__(self, n):
        self.n, self.i = n, 0

    def read(self):
        from device.errors import SourceError
        from device.types import Frame

        if self.i >= self.n:
            raise SourceError("camera unplugged")
        self.i += 1
        return Frame(image=__import__("numpy").zeros((48, 64, 3), "uint8"), timestamp=self.i * 0.1)

    def close(self):
        pass


class RecordingLeds:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a: self.calls.append(name)


def test_camera_lost_mid_run_backs_off_reopens_and_keeps_windows(tmp_path, monkeypatch):
    from device import vision_loop
    from device.app import App
    from device.config import load_config
    from device.errors import SourceError

    monkeypatch.setattr(vision_loop, "BACKOFF_START_S", 0.05)
    opens = []

    def open_source(spec, loop=False, pace=False):
        opens.append(time.monotonic())
        if len(opens) in (1, 3):  # missing at start, and once more after the first loss
            raise SourceError("no camera at /dev/video0")
        return FlakySource(5)

    cfg = load_config(None, {"state.dir": str(tmp_path), "device.id": "fake",
                             "aggregate.window_s": 0.5, "source.retry_max_s": 0.2})
    leds = RecordingLeds()
    app = App(cfg, pipeline=FakePipeline(), open_source=open_source, leds=leds, max_frames=15)
    states = []
    app.board.set = (lambda orig: lambda **kw: (states.append(kw.get("camera")), orig(**kw)))(
        app.board.set)
    assert app.run() == 0
    assert app.frames == 15 and len(opens) >= 5
    assert [s for s in states if s][:4] == ["lost", "ok", "lost", "lost"]
    assert leds.calls[0] == "starting" and "error" in leds.calls and "running" in leds.calls
    assert leds.calls[-1] == "close"
    gaps = [b - a for a, b in zip(opens, opens[1:])]
    assert max(gaps) < 1.0  # backoff capped at retry_max_s (+ processing)


def _fake_app(tmp_path, **overrides):
    from device.app import App
    from device.config import load_config

    cfg = load_config(None, {"state.dir": str(tmp_path / "state"), "device.id": "fake",
                             "aggregate.window_s": 0.5, **overrides})
    return App(cfg, pipeline=FakePipeline(), open_source=lambda *a, **k: FlakySource(10**6),
               leds=RecordingLeds(), max_frames=40)


def test_png_display_is_written_from_its_own_thread(tmp_path):
    out = tmp_path / "screen.png"
    app = _fake_app(tmp_path, **{"display.sink": f"png:{out}", "display.png_every": 1})
    assert app.run() == 0
    assert out.is_file() and app.display.shown >= 1
    assert not (tmp_path / "state" / "snapshots").exists()  # debug snapshots are off


def test_a_display_that_cannot_open_is_reported_and_counting_goes_on(tmp_path, caplog):
    app = _fake_app(tmp_path, **{"display.sink": "fb:/dev/fb-missing"})
    assert app.run() == 0
    assert app.frames == 40
    assert "display fb:/dev/fb-missing unavailable" in caplog.text and "trying again" in caplog.text
    status = app.board.snapshot()
    assert status["display_state"] == "unavailable" and "fb-missing" in status["display_error"]
    assert "degraded" in app.leds.calls and "error" not in app.leds.calls


def test_debug_snapshots_only_when_enabled(tmp_path):
    app = _fake_app(tmp_path, **{"privacy.debug_snapshots": True})
    assert app.run() == 0
    assert list((tmp_path / "state" / "snapshots").glob("snapshot-*.png"))


def test_mailbox_keeps_only_the_newest_frame():
    from device.worker import Mailbox

    box = Mailbox()
    for i in range(5):
        box.put(i)
    assert box.get(0) == 4 and box.dropped == 4
    assert box.get(0.01) is None


@pytest.mark.parametrize("setting,expected", [("auto", True), ("off", False)])
def test_models_mirror_average_reaches_the_pipeline_the_app_builds(tmp_path, setting, expected):
    from device.pipeline import pipeline_for
    from tests.tiny_models import make_models_dir

    models = make_models_dir(tmp_path / "models")
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["analyzer"]["test_time"] = "flip"
    (models / "manifest.json").write_text(json.dumps(manifest))
    app = _fake_app(tmp_path, **{"models.dir": str(models), "models.mirror_average": setting})
    assert pipeline_for(app.cfg.models, models).analyzer.flip is expected


def test_models_reanalyze_s_reaches_the_pipeline_the_app_builds(tmp_path):
    from device.config import REANALYZE_S
    from device.pipeline import pipeline_for
    from tests.tiny_models import make_models_dir

    models = make_models_dir(tmp_path / "models")
    app = _fake_app(tmp_path, **{"models.dir": str(models)})
    assert pipeline_for(app.cfg.models, models).reanalyze_s == REANALYZE_S > 0
    app = _fake_app(tmp_path, **{"models.dir": str(models), "models.reanalyze_s": 0.0})
    assert pipeline_for(app.cfg.models, models).reanalyze_s == 0.0
    # the loop hands the pipeline its tracker, so the pipeline can ask which faces are due
    assert app.run() == 0
    assert app._pipeline.trackers == {id(app.tracker)}


def test_boot_loads_each_model_once_and_self_tests_once(tmp_path, monkeypatch):
    """First boot (slots seeded from the shipped models) and a later boot alike."""
    from collections import Counter

    from device import pipeline as pipeline_module
    from device import runtime
    from device.app import App
    from device.config import load_config

    loads, tests = Counter(), Counter()
    init, self_test = runtime.TFLiteModel.__init__, pipeline_module.VisionPipeline.self_test

    def counting_init(model, path, *a, **k):
        loads[Path(path).name] += 1
        init(model, path, *a, **k)

    def counting_self_test(p):
        tests["pipeline"] += 1
        return self_test(p)

    monkeypatch.setattr(runtime.TFLiteModel, "__init__", counting_init)
    monkeypatch.setattr(pipeline_module.VisionPipeline, "self_test", counting_self_test)
    cfg = load_config(None, {"state.dir": str(tmp_path / "state"), "device.id": "boot",
                             "source.spec": "demo"})
    for boot in ("first", "later"):
        loads.clear(), tests.clear()
        app = App(cfg, leds=RecordingLeds(), max_frames=2)
        assert app.run() == 0, boot
        manifest = json.loads((tmp_path / "state" / "models" / "active" / "manifest.json")
                              .read_text())
        files = {manifest[role]["file"] for role in ("detector", "analyzer")}
        assert dict(loads) == {name: 1 for name in files}, (boot, loads)
        assert tests["pipeline"] == 1, boot
