"""Shared helpers for the provisioning tests: small model folders, keys, bundles, a broken model.

The model sets use the MediaPipe short-range detector shipped in ``models/src`` (it runs on the
device's runtime like the int8 one, and is small); nothing comes from outside the repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.manifest import sha256_file
from device.models import MODELS_DIR
from provisioning import keys
from provisioning.build import build_bundle

DETECTOR = MODELS_DIR / "src" / "face_detection_short_range.tflite"


def make_models(folder: Path, version: str = "1.0.0", detector: Path = DETECTOR) -> Path:
    """A models folder with one detector and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(detector, folder / detector.name)
    manifest = {"version": version, "detector": {
        "file": detector.name, "sha256": sha256_file(folder / detector.name), "variant": "short"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def broken_copy(src: Path, dst: Path, min_size: int = 1000, every: bool = False) -> Path:
    """A copy of a TFLite model that still loads but answers differently.

    The largest constant tensor (``every``: each one with more than ``min_size`` values) is
    negated in place, found by its bytes, so the flatbuffer stays valid.
    """
    from ai_edge_litert.interpreter import Interpreter

    data = bytearray(src.read_bytes())
    it = Interpreter(model_path=str(src))
    it.allocate_tensors()
    # fill the activations with values of this run, so only constants can match the file
    inp = it.get_input_details()[0]
    noise = np.random.default_rng(0).uniform(-1, 1, inp["shape"])
    it.set_tensor(inp["index"], noise.astype(inp["dtype"]))
    it.invoke()
    found = []
    for d in it.get_tensor_details():
        try:
            t = it.get_tensor(d["index"])
        except ValueError:
            continue
        at = bytes(data).find(t.tobytes()) if t.size > min_size else -1
        if at >= 0:
            found.append((at, t))
    if not every:
        found = [max(found, key=lambda f: f[1].size)]
    for at, t in found:
        flipped = -t if t.dtype.kind == "f" else np.clip(-t.astype(np.int64), -127, 127)
        data[at:at + t.nbytes] = flipped.astype(t.dtype).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    priv, pub = keys.keygen(folder)
    return keys.load_private_key(priv), pub


@pytest.fixture(scope="session")
def other_key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("otherkeys")
    priv, pub = keys.keygen(folder)
    return keys.load_private_key(priv), pub


@pytest.fixture(scope="session")
def good_models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("good") / "models", "1.0.0")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, signing_key, other_key, good_models):
    """Bundle bytes by name: v2 (good), v0 (older), untrusted (other key), badkat, factory."""
    key = signing_key[0]
    out = {"v2": build_bundle(good_models, key, "2.0.0"),
           "v3": build_bundle(good_models, key, "3.0.0"),
           "v0": build_bundle(good_models, key, "0.5.0"),
           "untrusted": build_bundle(good_models, other_key[0], "2.0.0")}
    out["badkat"] = bad_kat_bundle(tmp_path_factory.mktemp("bad"), good_models, key, "2.0.0")
    return out


def bad_kat_bundle(tmp: Path, good: Path, key, version: str) -> bytes:
    """A properly signed bundle whose model does not give the answers recorded with it."""
    from provisioning.build import build_manifest
    from provisioning.bundle import write_bundle

    manifest = build_manifest(good, version)
    broken = broken_copy(DETECTOR, tmp / DETECTOR.name)
    manifest["models"]["detector"]["sha256"] = sha256_file(broken)
    return write_bundle(manifest, {broken.name: broken.read_bytes()}, key)
