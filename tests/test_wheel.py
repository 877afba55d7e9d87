"""The product as a kiosk installs it: the built wheel in a clean virtual environment.

The wheel is built from this checkout, installed with the pinned device dependencies into a new
venv, and run from a folder outside the checkout with a bare environment, so nothing of the
checkout (``tools``, ``tests``, ``models/``, the sample footage) can stand in for what the wheel
lacks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "deploy" / "requirements-device.txt"

pytestmark = pytest.mark.slow


def _run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT],
               timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = out.glob("audience_kiosk-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the pinned device dependencies and the wheel, nothing else."""
    path = tmp_path_factory.mktemp("kiosk-venv")
    base = getattr(sys, "_base_executable", sys.executable)
    res = _run([base, "-m", "venv", path], timeout=120)
    assert res.returncode == 0, res.stderr
    pip = [path / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in (["--require-hashes", "-r", LOCK], ["--no-deps", wheel]):
        res = _run([*pip, *args], timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    return path


def bare_env(venv: Path, home: Path) -> dict:
    """What a service starts with: the venv on PATH and nothing from this test run."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def installed_path(venv: Path, home: Path, module: str) -> Path:
    res = _run([venv / "bin" / "python", "-c", f"import {module}; print({module}.__file__)"],
               cwd=home, env=bare_env(venv, home), timeout=60)
    assert res.returncode == 0, res.stderr
    return Path(res.stdout.strip()).parent


def test_the_wheel_holds_the_device_its_models_and_nothing_from_the_checkout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"device", "provisioning", "fleet"}, tops
    assert "fleet/store/schema.sql" in names  # the fleet database's tables travel with it
    manifest = json.loads(zipfile.ZipFile(wheel).read("device/models/manifest.json"))
    for role in ("detector", "analyzer"):
        assert f"device/models/{manifest[role]['file']}" in names, role
    spec = json.loads(zipfile.ZipFile(wheel).read("device/models/selftest/selftest.json"))
    assert f"device/models/selftest/{spec['image']}" in names
    assert "device/schemas/audience.schema.json" in names
    assert any(n.startswith("device/models/LICENSE-") for n in names)
    # training checkpoints, float sources and evaluation reports stay in the checkout
    assert not [n for n in names if n.startswith(("device/models/src/", "device/models/train/",
                                                  "device/models/eval/"))]
    assert not [n for n in names if n.endswith((".keras", ".npz"))]


def test_the_installed_wheel_imports_nothing_from_the_checkout(venv, tmp_path):
    site = installed_path(venv, tmp_path, "device")
    assert venv in site.parents and ROOT not in site.parents
    for name in ("tools", "tests", "models"):
        res = _run([venv / "bin" / "python", "-c", f"import {name}"], cwd=tmp_path,
                   env=bare_env(venv, tmp_path), timeout=60)
        assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, (name, res.stderr)


def test_the_installed_wheel_runs_the_appliance_on_its_builtin_demo(venv, tmp_path):
    """No camera here: ``auto`` falls back to the demo clip shipped inside the wheel."""
    res = _run([venv / "bin" / "kiosk", "run", "--no-mqtt", "--state-dir", tmp_path / "state",
                "--display", f"png:{tmp_path / 'screen.png'}", "--window", "2",
                "--max-frames", "90"], cwd=tmp_path, env=bare_env(venv, tmp_path), timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert "demo" in log and "window 1:" in log, log[-3000:]
    assert (tmp_path / "screen.png").stat().st_size > 1000
    # the factory models were seeded into the state dir's slots and self-tested from there
    assert (tmp_path / "state" / "models" / "slots" / "a" / "manifest.json").is_file()


def test_the_installed_wheel_analyzes_a_shipped_picture(venv, tmp_path):
    picture = installed_path(venv, tmp_path, "device.models") / "selftest" / "astronaut.jpg"
    res = _run([venv / "bin" / "kiosk", "analyze", picture, "--json"], cwd=tmp_path,
               env=bare_env(venv, tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    faces = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(faces) == 1, res.stdout
    face = faces[0]
    assert 10 < face["age"] < 80 and face["gender"] in ("female", "male"), face
    assert face["emotion"] in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_the_fleet_extra_stays_off_the_kiosks():
    """kiosk-fleet ships in the wheel, but its dependencies (the [fleet] extra) are not in what
    a kiosk installs."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {canonicalize_name(Requirement(r).name)
             for r in project["optional-dependencies"]["fleet"]}
    assert extra, "the fleet extra is empty"
    pinned = {canonicalize_name(line.split("==")[0]) for line in LOCK.read_text().splitlines()
              if "==" in line and not line.startswith((" ", "#"))}
    assert not extra & pinned, extra & pinned
    assert not {"psycopg-binary", "psycopg-c"} & pinned
    assert "kiosk-fleet" in project["scripts"]
