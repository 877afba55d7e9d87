"""Building a bundle from a models folder (the build machine's side of provisioning)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import device
from device import kat
from device.bundle import parse_version
from device.errors import BundleError, ModelError
from device.manifest import load_manifest, model_path
from device.runtime import cpu_twin, runtime_name
from provisioning.bundle import FORMAT, write_bundle

KAT_KERNELS = ("builtin", "reference")  # checked besides the runtime's default (XNNPACK)


def model_files(models_dir: Path, manifest: dict) -> dict[str, bytes]:
    """The files the models manifest names (checked against their sha256), by name.

    An Edge TPU model travels with its CPU twin, which devices without the accelerator use.
    """
    files = {}
    for role in ("detector", "analyzer"):
        entry = manifest.get(role)
        if not entry:
            continue
        path = model_path(models_dir, entry)
        files[path.name] = path.read_bytes()
        twin = cpu_twin(path)
        if twin != path and twin.is_file():
            files[twin.name] = twin.read_bytes()
    return files


def build_manifest(models_dir: Path, version: str, min_app_version: str | None = None,
                   created: dt.datetime | None = None) -> dict:
    """The bundle manifest (without ``files``) for the models in ``models_dir``.

    The known-answer outputs are recorded here by running the models with the device's runtime,
    then checked under TFLite's own kernels too (a kiosk whose CPU XNNPACK cannot use runs
    those), so a bundle whose answers would not hold there is refused here, not on the kiosks.

    Raises:
        ModelError: the recorded answers do not hold under another kernel set.
    """
    models = copy.deepcopy(load_manifest(models_dir))
    models.pop("kat", None)  # a slot's own answers are replaced by fresh ones
    models["version"] = str(version)
    created = created or dt.datetime.now(dt.UTC)
    answers = kat.record(models_dir)
    failed = {k: p for k, p in kat.check_kernels(models_dir, answers, KAT_KERNELS).items() if p}
    if failed:
        raise ModelError("the known answers do not hold under other CPU kernels: " + "; ".join(
            f"{k}: {', '.join(p)}" for k, p in failed.items()))
    return {
        "format": FORMAT,
        "version": str(version),
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "min_app_version": min_app_version or device.__version__,
        "models": models,
        "metrics": models.get("metrics", {}),
        "builder": {"runtime": runtime_name(), "app_version": device.__version__},
        "kat": answers,
    }


def build_bundle(models_dir: str | Path, key, version: str,
                 min_app_version: str | None = None) -> bytes:
    """A signed bundle of the models in ``models_dir``, as bytes.

    Raises:
        BundleError: the models folder is incomplete or its models do not run.
    """
    models_dir = Path(models_dir)
    if not version or not str(version).strip():
        raise BundleError("a bundle needs a version")
    parse_version(version)  # a version no device can order is refused here, not on a kiosk
    if min_app_version is not None:
        parse_version(min_app_version)
    try:
        manifest = build_manifest(models_dir, version, min_app_version)
        files = model_files(models_dir, manifest["models"])
    except ModelError as exc:
        raise BundleError(f"cannot build a bundle from {models_dir}: {exc}") from exc
    return write_bundle(manifest, files, key)
