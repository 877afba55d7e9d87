"""Bad input gets a clear message naming the problem, and changes nothing.

Each case is what a new user could do: a config saved in the wrong encoding, an infinite window,
a mistyped option, a folder of corrupt pictures, a damaged video, a picture too large to decode,
a JSON command nested to exhaust the parser.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from device.config import load_config
from device.errors import ConfigError, FrameDecodeError
from device.mqtt.commands import MAX_DEPTH, handle_command, nesting_depth
from device.sources import VideoFileSource
from device.sources.images import MAX_PIXELS, image_dimensions, read_image
from tests.shared_data import sample

ROOT = Path(__file__).resolve().parents[1]


def kiosk(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "device.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


# -- configuration ------------------------------------------------------------------------------

def test_a_config_that_is_not_utf8_is_a_config_error_for_run_and_check_config(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_bytes('[device]\nname = "Büro"\n'.encode("latin-1"))
    for args in (["check-config", path], ["run", "--config", path, "--no-mqtt"]):
        res = kiosk(*args)
        assert res.returncode == 2, res.stderr
        assert "not UTF-8 text (byte 0xfc at offset 18)" in res.stderr
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_numbers_must_be_finite(tmp_path, value):
    path = tmp_path / "kiosk.toml"
    path.write_text(f"[aggregate]\nwindow_s = {value}\n")
    with pytest.raises(ConfigError, match=r"\[aggregate\] window_s: must be a finite number"):
        load_config(path)


def test_a_mistyped_window_option_is_a_usage_error(tmp_path):
    res = kiosk("run", "--window=--", "--no-mqtt", "--state-dir", tmp_path / "s")
    assert res.returncode == 2 and "--window: must be a number of seconds" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "s").exists()


# -- MQTT commands ----------------------------------------------------------------------------

def test_nesting_is_measured_without_parsing_and_ignores_brackets_in_strings():
    assert nesting_depth(b'{"id": "[[[[", "cmd": "ping"}') == 1
    assert nesting_depth(b'{"id": "a\\"[[[", "cmd": "ping"}') == 1  # an escaped quote
    assert nesting_depth(b"[[[]]]") == 3 and nesting_depth(b"") == 0
    deep = b"[" * 100_000 + b"]" * 100_000  # over the size limit too: refused on size first
    assert "too large" in handle_command(deep, {})["error"]
    nested = b"[" * 1500 + b"]" * 1500
    result = handle_command(nested, {})
    assert result["ok"] is False and f"at most {MAX_DEPTH}" in result["error"]


# -- frame sources --------------------------------------------------------------------------------

def test_a_folder_of_corrupt_pictures_backs_off_instead_of_retrying_every_second(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(np.random.default_rng(i).bytes(4000))
    res = kiosk("run", "--source", folder, "--no-mqtt", "--state-dir", tmp_path / "s",
                "--duration", "7.5")
    assert res.returncode == 0, res.stderr[-2000:]
    retries = re.findall(r"retrying in (\d+) s", res.stderr)
    assert retries[:4] == ["1", "2", "4", "8"][:len(retries[:4])] and len(retries) <= 5, retries
    assert "is back" not in res.stderr  # it never delivered a frame, so it never came back


def damaged_copy(path: Path, out: Path) -> Path:
    data = bytearray(path.read_bytes())
    start = len(data) // 4
    data[start:start + 200_000] = np.random.default_rng(0).bytes(200_000)
    out.write_bytes(bytes(data))
    return out


def test_a_damaged_video_is_read_past_the_damage_and_says_how_much_was_read(tmp_path):
    video = damaged_copy(sample("stage_and_audience.mp4"), tmp_path / "damaged.mp4")
    source = VideoFileSource(video)
    frames = list(source)
    assert source.frame_count == 275
    assert len(frames) + source.bad_frames == 275
    assert 100 < len(frames) < 275, len(frames)  # the decoder alone stopped after 66
    times = [f.timestamp for f in frames]
    assert times == sorted(times) and times[-1] > 8.0  # media time jumps over the damage
    res = kiosk("analyze", video, "--every", "25", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (f"damaged: {source.bad_frames} of 275 frames could not be decoded and were skipped "
            f"({len(frames)} read)") in res.stderr


def test_an_intact_video_reports_no_damage():
    source = VideoFileSource(sample("stage_and_audience.mp4"))
    assert sum(1 for _ in source) == 275 and source.bad_frames == 0


def huge_png(path: Path, side: int = 20000) -> Path:
    """A PNG of side x side black pixels: under 400 kB on disk, gigabytes decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side,
                                                                     8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_pictures_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    png = huge_png(tmp_path / "huge.png")
    assert png.stat().st_size < 1_000_000
    with pytest.raises(FrameDecodeError, match=r"20000x20000 pixels, more than the 40,000,000"):
        read_image(png)
    res = kiosk("analyze", png)
    assert res.returncode == 1 and "20000x20000 pixels" in res.stderr


def test_picture_headers_give_their_size():
    for name in ("multiface.jpg", "two_people.jpg"):
        data = sample(name).read_bytes()
        import cv2

        h, w = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]
        assert image_dimensions(data) == (w, h)
    assert image_dimensions(b"GIF89a....") is None and MAX_PIXELS >= 33_177_600  # 8K UHD


def test_analyze_names_each_picture_of_a_folder(tmp_path):
    import shutil

    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(sample("two_people.jpg"), folder / "a.jpg")
    shutil.copy(sample("multiface.jpg"), folder / "b.jpg")
    res = kiosk("analyze", folder, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    files = [json.loads(line)["file"] for line in res.stdout.splitlines()]
    assert files.count(str(folder / "a.jpg")) == 2 and files.count(str(folder / "b.jpg")) == 6
