"""Strict configuration: defaults, named errors, overrides, check-config output."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import Config, check_config_main, load_config
from device.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="kiosk.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_filled_in(tmp_path):
    cfg = load_config(write(tmp_path, '[device]\nid = "lobby-1"\n'))
    assert isinstance(cfg, Config)
    assert cfg.aggregate.window_s == 60 and cfg.aggregate.k_anonymity == 3
    assert cfg.mqtt.prefix == "kiosk/lobby-1/" and cfg.mqtt.client_id == "audience-kiosk-lobby-1"
    assert cfg.mqtt.host == "" and cfg.mqtt.qos == 1
    assert cfg.spool.path == "/var/lib/audience-kiosk/spool.db"
    assert cfg.privacy.debug_snapshots is False
    with pytest.raises(AttributeError):
        cfg.device.id = "x"  # frozen


@pytest.mark.parametrize("text,message", [
    ("[mqtt]\nprot = 1883\n", "[mqtt] prot: unknown key (did you mean 'port'?)"),
    ("[mqtt]\nport = \"1883\"\n", "[mqtt] port: must be int, not str"),
    ("[mqtt]\nport = 70000\n", "[mqtt] port: must be a TCP port"),
    ("[mqtt]\nqos = 0\n", "[mqtt] qos: must be 1 or 2"),
    ("[mqtt]\npassword = \"x\"\n", "[mqtt] password: unknown key (passwords are never written"),
    ("[mqtt.tls]\ncafile = \"ca.pem\"\n",
     "[mqtt.tls] cafile: unknown key (did you mean 'ca_file'?)"),
    ("[mqtt]\ntls = 1\n", "[mqtt] tls: must be a table"),
    ("[mqt]\nhost = \"x\"\n", "[mqt]: unknown section (did you mean [mqtt]?)"),
    ("[aggregate]\nk_anonymity = true\n", "[aggregate] k_anonymity: must be int, not bool"),
    ("[aggregate]\nwindow_s = 0\n", "[aggregate] window_s: must be >= 0.5"),
    ("[aggregate]\nage_groups = [1, 2]\n", "[aggregate] age_groups[0]: must be str"),
    ("[leds]\nrgb_pins = [1, 2]\n", "[leds] rgb_pins: must be three BCM GPIO numbers"),
    ("[display]\nsink = \"hdmi\"\n", "[display] sink: must be 'auto', 'drm'"),
    ("[display]\nsink = \"png:\"\n", "[display] sink: must be 'auto', 'drm'"),
    ("[source]\nspec = \"picamera:x\"\n", "[source] spec: the Pi camera number must be"),
    ("[source]\nspec = \"camera:front\"\n", "[source] spec: a camera is camera:N"),
    ("[source]\nspec = \"\"\n", "[source] spec: must not be empty"),
    ("[source]\nspec = \"no/such/clip.mp4\"\n", "[source] spec: no such file or folder"),
    ("[display]\nsink = \"drm\"\n[source]\nspec = \"camera:0\"\n",
     "[display] sink = 'drm' draws over the Pi camera's own preview, so it needs [source] spec"),
    ("[display]\nsink = \"drm\"\n", "(got [source] spec = 'auto')"),
    ("[device]\nid = \"a/b\"\n", "[device] id: must be letters, digits"),
    ("[mqtt]\nprefix = \"kiosk/#/\"\n", "[mqtt] prefix: must not contain MQTT wildcards"),
    ("[mqtt]\npassword_env = \"PW\"\n", "[mqtt] username: required when a password"),
    ("[display]\nsink = \"png:/tmp/x.png\"\nblur_faces = false\n", "[display] blur_faces"),
    ("mqtt = 3\n", "[mqtt]: must be a table"),
    ("[models]\nmirror_average = true\n", "[models] mirror_average: must be str, not bool"),
    ("[models]\nmirror_average = \"yes\"\n", "[models] mirror_average: must be 'auto', 'on'"),
    ("[models]\nreanalyze_s = -0.1\n", "[models] reanalyze_s: must be 0 or more"),
    ("[mqtt\n", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)  # also the familiar built-in


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_are_taken_from_the_file_and_overrides_from_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    path = write(tmp_path, '[state]\ndir = "state"\n[mqtt]\nusername = "u"\n'
                           'password_file = "secrets/pw"\n', name="etc/kiosk.toml")
    cfg = load_config(path)
    assert cfg.state.dir == str(tmp_path / "etc" / "state")
    assert cfg.spool.path == str(tmp_path / "etc" / "state" / "spool.db")
    assert cfg.mqtt.password_file == str(tmp_path / "etc" / "secrets" / "pw")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, {"state.dir": "elsewhere"})
    assert cfg.state.dir == str(tmp_path / "elsewhere")


def test_overrides_are_checked_like_file_values(tmp_path):
    path = write(tmp_path, '[mqtt]\nhost = "a"\nport = 1884\n')
    cfg = load_config(path, {"mqtt.host": "b", "aggregate.window_s": 2.0, "device.id": "k2"})
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.aggregate.window_s) == ("b", 1884, 2.0)
    assert cfg.mqtt.prefix == "kiosk/k2/"
    with pytest.raises(ConfigError, match=r"\[aggregate\] window_s: must be >= 0.5"):
        load_config(path, {"aggregate.window_s": 0.1})


def test_example_config_in_deploy_is_valid():
    cfg = load_config(ROOT / "deploy" / "kiosk.toml")
    assert cfg.mqtt.password_file and cfg.mqtt.tls is not None
    # a kiosk waits for its camera rather than counting the demo clip when it is missing
    assert cfg.source.spec == "picamera" and cfg.display.sink == "auto"


@pytest.mark.parametrize("spec,sink", [("picamera", "drm"), ("picamera:1", "drm"),
                                       ("camera:0", "auto"), ("camera:/dev/video2", "fb:/dev/fb1"),
                                       ("demo", "none"), ("auto", "auto")])
def test_screens_the_source_can_feed_are_accepted(tmp_path, spec, sink):
    cfg = load_config(write(tmp_path, f'[source]\nspec = "{spec}"\n[display]\nsink = "{sink}"\n'))
    assert (cfg.source.spec, cfg.display.sink) == (spec, sink)


def test_a_source_path_must_exist_and_a_camera_device_need_not(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert load_config(None, {"source.spec": str(clip)}).source.spec == str(clip)
    assert load_config(None, {"source.spec": "camera:/dev/video9"}).source.spec.endswith("video9")


@pytest.mark.parametrize("args,message", [
    (["--source", "picamera:x"], "[source] spec: the Pi camera number must be"),
    (["--display", "hdmi"], "[display] sink: must be"),
    (["--source", "camera:0", "--display", "drm"], "[display] sink = 'drm'"),
])
def test_kiosk_run_stops_with_exit_2_on_a_bad_source_or_screen_before_any_model_loads(
        tmp_path, args, message):
    run = subprocess.run([sys.executable, "-m", "device.cli", "-v", "run", "--no-mqtt",
                          "--state-dir", str(tmp_path / "state"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    # nothing was loaded, seeded or started: no model slots, no spool
    assert "model" not in run.stderr.lower() and not (tmp_path / "state").exists()


def test_check_config_prints_effective_config_without_secrets(tmp_path, capsys):
    secret = "hunter2-very-secret"
    (tmp_path / "pw").write_text(secret)
    path = write(tmp_path, '[device]\nid = "k"\n[mqtt]\nhost = "b"\nusername = "u"\n'
                           'password_file = "pw"\n')
    out = io.StringIO()
    assert check_config_main(path, out=out) == 0
    text = out.getvalue()
    assert 'prefix = "kiosk/k/"' in text and "[mqtt]" in text and "window_s = 60.0" in text
    assert secret not in text


def test_kiosk_check_config_command_exit_status(tmp_path):
    bad = write(tmp_path, "[mqtt]\nprot = 1\n")
    run = subprocess.run([sys.executable, "-m", "device.cli", "check-config", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "[mqtt] prot: unknown key (did you mean 'port'?)" in run.stderr


@pytest.mark.parametrize("value,flip", [("auto", None), ("on", True), ("off", False)])
def test_mirror_average_maps_to_the_analyzer_setting(tmp_path, value, flip):
    cfg = load_config(write(tmp_path, f'[models]\nmirror_average = "{value}"\n'))
    assert cfg.models.analyzer_flip is flip


def test_a_detector_variant_must_be_known_and_installed(tmp_path):
    cfg = load_config(None, {"models.detector_variant": "yunet"})
    assert cfg.models.detector_variant == "yunet"
    with pytest.raises(ConfigError, match=r"\[models\] detector_variant: unknown detector variant"):
        load_config(None, {"models.detector_variant": "blazeface"})
    # MediaPipe's short-range model is a conversion input only: no int8 file of it is installed
    with pytest.raises(ConfigError, match=r"the 'short' detector is not installed .*installed: "):
        load_config(None, {"models.detector_variant": "short"})
