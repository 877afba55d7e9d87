"""The pinned installs: what a kiosk installs is what pyproject.toml allows, and exists for a Pi."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DEVICE_LOCK = ROOT / "deploy" / "requirements-device.txt"
DEV_LOCK = ROOT / "tools" / "requirements-dev.txt"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.M)

# a Raspberry Pi on Raspberry Pi OS Bookworm: aarch64, glibc 2.36, CPython 3.11
PI_TAGS = [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)] + ["manylinux2014_aarch64"]


def pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall(path.read_text())}


def device_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_every_device_dependency_is_pinned_within_what_pyproject_allows(machine):
    locked = pins(DEVICE_LOCK)
    env = {"platform_machine": machine, "python_version": "3.11", "sys_platform": "linux"}
    for req in device_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not pinned in {DEVICE_LOCK.name}"
        assert req.specifier.contains(locked[name], prereleases=True), (req, locked[name])


def test_the_device_lock_pins_every_file_by_hash():
    text = DEVICE_LOCK.read_text()
    assert len(PIN.findall(text)) == text.count("==")
    for block in re.split(r"\n(?=\S)", text.split("\n", 2)[2]):
        if PIN.match(block):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_tests_run_with_the_versions_the_kiosks_run():
    """A model is measured with the same numpy, OpenCV and LiteRT that the devices use."""
    device, dev = pins(DEVICE_LOCK), pins(DEV_LOCK)
    differ = {n: (v, dev.get(n)) for n, v in device.items() if dev.get(n) != v}
    assert not differ, differ
    from importlib.metadata import version

    for name in ("numpy", "opencv-python-headless", "ai-edge-litert"):
        assert version(name) == device[name], (name, version(name), device[name])


@pytest.mark.slow
def test_every_pinned_dependency_has_a_wheel_for_a_raspberry_pi(tmp_path):
    """A dependency without a Pi wheel would have a kiosk compile it, or fail, at install."""
    platforms = [arg for tag in PI_TAGS for arg in ("--platform", tag)]
    res = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
         "--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation", "cp",
         "--require-hashes", "-r", str(DEVICE_LOCK), "-d", str(tmp_path)],
        capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    got = {canonicalize_name(p.name.split("-")[0]) for p in tmp_path.glob("*.whl")}
    assert set(pins(DEVICE_LOCK)) <= got, set(pins(DEVICE_LOCK)) - got
    arm = [p.name for p in tmp_path.glob("*.whl") if "aarch64" in p.name]
    assert any(n.startswith("numpy-") for n in arm) and any("litert" in n for n in arm), arm
