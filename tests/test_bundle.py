"""Bundle format: signing, strict parsing of damaged or hostile files, known-answer tests."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import pytest

from device import kat
from device import keys as device_keys
from device.bundle import MANIFEST, SIGNATURE, read_bundle, version_key
from device.errors import BundleError, KioskError
from provisioning import keys
from provisioning.bundle import write_bundle
from tests.provision_fixtures import DETECTOR, bundles, good_models, other_key, signing_key  # noqa: F401  (fixtures)


@pytest.fixture()
def ring(signing_key):
    return device_keys.trusted_keyring([str(signing_key[1])])


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in entries.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def rejected(data: bytes, ring) -> str:
    with pytest.raises(BundleError) as info:
        read_bundle(data, ring)
    assert isinstance(info.value, (KioskError, ValueError))
    return str(info.value)


def test_good_bundle_round_trips(bundles, ring):
    b = read_bundle(bundles["v2"], ring)
    assert b.version == "2.0.0"
    assert set(b.files) == {DETECTOR.name}
    assert b.files[DETECTOR.name] == DETECTOR.read_bytes()
    m = b.manifest
    assert m["models"]["version"] == "2.0.0" and m["min_app_version"]
    assert m["kat"]["detector"]["detections"], "the KAT picture must contain a face"
    assert m["files"][DETECTOR.name]["size"] == DETECTOR.stat().st_size


def test_keygen_private_key_is_owner_only(tmp_path):
    priv, pub = keys.keygen(tmp_path / "k")
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert device_keys.load_public_key(str(pub)) is not None
    with pytest.raises(FileExistsError):
        keys.keygen(tmp_path / "k")


def test_public_key_forms_agree(signing_key):
    pub = device_keys.load_public_key(str(signing_key[1]))
    b64 = device_keys.public_b64(pub)
    from_pem = device_keys.trusted_keyring([str(signing_key[1])])
    assert device_keys.trusted_keyring([b64]).keys() == from_pem.keys()
    with pytest.raises(BundleError):
        device_keys.load_public_key("/nonexistent/key.pub")


def test_every_flipped_byte_is_caught(bundles, ring):
    data = bundles["v2"]
    step = max(1, len(data) // 400)
    for pos in range(0, len(data), step):
        bad = bytearray(data)
        bad[pos] ^= 0x04
        try:
            read_bundle(bytes(bad), ring)
        except BundleError:
            continue
        # a flip may land in bytes zip ignores (e.g. the timestamp); the content must be intact
        assert read_bundle(bytes(bad), ring).files == read_bundle(data, ring).files, pos


def test_truncated_at_any_length(bundles, ring):
    data = bundles["v2"]
    for n in (0, 10, 100, len(data) // 3, len(data) - 22, len(data) - 1):
        assert rejected(data[:n], ring)


def test_untrusted_key_named(bundles, ring):
    assert "untrusted key" in rejected(bundles["untrusted"], ring)


def test_edited_manifest_breaks_signature(bundles, ring):
    entries = members(bundles["v2"])
    manifest = json.loads(entries[MANIFEST])
    manifest["version"] = "9.9.9"
    entries[MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    assert "signature does not match" in rejected(rezip(entries), ring)


def test_swapped_model_breaks_hash(bundles, ring):
    entries = members(bundles["v2"])
    blob = bytearray(entries[DETECTOR.name])
    blob[5000] ^= 1
    entries[DETECTOR.name] = bytes(blob)  # CRC recomputed: only the signed sha256 can tell
    assert "sha256" in rejected(rezip(entries), ring)


def test_missing_signature(bundles, ring):
    entries = members(bundles["v2"])
    del entries[SIGNATURE]
    assert "unsigned" in rejected(rezip(entries), ring)


@pytest.mark.parametrize("name", ["../evil.tflite", "/etc/passwd", "a/b.tflite", ".hidden",
                                  "x\\..\\y", "dir/"])
def test_unsafe_member_names(bundles, ring, name):
    entries = members(bundles["v2"])
    entries[name] = b"x"
    assert "unsafe" in rejected(rezip(entries), ring) or "bad" in rejected(rezip(entries), ring)


def test_unlisted_member(bundles, ring):
    entries = members(bundles["v2"])
    entries["extra.tflite"] = b"x"
    assert "does not list" in rejected(rezip(entries), ring)


def test_oversize_member(bundles, ring, monkeypatch):
    import device.bundle as pb

    monkeypatch.setattr(pb, "MAX_MEMBER", 1000)
    assert "oversize" in rejected(bundles["v2"], ring)


def test_zip_bomb_member_is_bounded(signing_key, ring, monkeypatch):
    import device.bundle as pb

    bomb = write_bundle({"version": "1", "models": {"detector": {"file": "m.tflite"}}, "kat": {}},
                        {"m.tflite": b"\0" * 5_000_000}, signing_key[0])
    assert len(bomb) < 100_000
    monkeypatch.setattr(pb, "MAX_MEMBER", 1_000_000)
    assert "oversize" in rejected(bomb, ring)


def test_version_order():
    assert version_key("2.0.0") > version_key("1.10.0") > version_key("1.9.9")
    assert version_key("2026.12.01") > version_key("2026.11.28")
    assert version_key("1.3rc1") < version_key("1.3.0")


def test_kat_passes_on_its_own_models(good_models):
    assert kat.self_test(good_models) == []


def test_kat_catches_a_changed_model(bundles, tmp_path, ring):
    b = read_bundle(bundles["badkat"], ring)  # signed and intact: only the KAT can tell
    (tmp_path / DETECTOR.name).write_bytes(b.files[DETECTOR.name])
    (tmp_path / "manifest.json").write_text(json.dumps(dict(b.manifest["models"],
                                                            kat=b.manifest["kat"])))
    problems = kat.self_test(tmp_path)
    assert problems and "detector" in problems[0]


@pytest.mark.slow
def test_attribute_model_known_answers(tmp_path, signing_key, ring):
    """With a (tiny, TensorFlow-made) multi-head model the bundle records each head's outputs."""
    from device.manifest import sha256_file
    from provisioning.build import build_bundle
    from provisioning.cli import unpack
    from tests.provision_fixtures import broken_copy
    from tests.tiny_models import make_models_dir

    models = make_models_dir(tmp_path / "models")
    b = read_bundle(build_bundle(models, signing_key[0], "5.0.0"), ring)
    answers = b.manifest["kat"]["analyzer"]
    assert len(answers["faces"]) >= 2 and set(answers["outputs"]) == {"age", "gender", "emotion"}
    assert b.manifest["models"]["analyzer"]["age_groups"]
    (tmp_path / "slot").mkdir()
    folder = unpack(b, tmp_path / "slot")
    assert kat.self_test(folder) == []
    name = b.manifest["models"]["analyzer"]["file"]
    broken_copy(models / name, folder / name, min_size=4, every=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["analyzer"]["sha256"] = sha256_file(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    problems = kat.self_test(folder)
    assert problems and "head differs" in " ".join(problems), problems
