"""The model bundle: one signed zip file that carries a model set from the build machine to devices.

Members (flat, no folders; nothing else is accepted)::

    manifest.json     what is inside (see below); these exact bytes are signed
    signature.json    {"alg": "ed25519", "key_id": "<16 hex>", "signature": "<base64>"}
    <model files>     each named in manifest["files"] with its sha256 and size

``manifest.json``::

    {
      "format": 1,
      "version": "2026.12.01",              # the model-set version devices report
      "created": "2026-12-01T10:00:00Z",
      "min_app_version": "0.1.0",           # devices running older software refuse it
      "files": {"face_detector_full_int8.tflite": {"sha256": "...", "size": 123}, ...},
      "models": {...},                      # the device's models/manifest.json (device/manifest.py)
      "kat": {...}                          # known-answer tests (device/kat.py)
    }

Zip was chosen over tar: each member carries a CRC, the central directory gives every name and
size before anything is read, and there are no links or device nodes to defend against. The
signature covers the manifest, and the manifest's sha256s bind the model files to it.

Reading and checking a bundle is the device's job (here); making one is the operator's
(``provisioning.bundle.write_bundle``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from device import keys
from device.errors import BundleError

FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
MAX_BUNDLE = 64 << 20  # whole file
MAX_MEMBER = 48 << 20  # one model file
MAX_MANIFEST = 2 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Bundle:
    """A bundle that passed every check: signature, names, sizes and hashes."""

    manifest: dict
    files: dict[str, bytes] = field(repr=False)
    key_id: str
    sha256: str  # of the whole bundle file

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


def parse_version(text: str) -> Version:
    """A model-set or app version (PEP 440: ``1.4.0``, ``2026.12.01``, ``1.5.0rc1``).

    Raises:
        BundleError: ``text`` is not a version, so no device could ever order it.
    """
    try:
        return Version(str(text))
    except InvalidVersion:
        raise BundleError(f"{str(text)!r} is not a version (use numbers such as 1.4.0 or "
                          "2026.12.01; PEP 440)") from None


def version_key(version: str) -> tuple:
    """Sort key in PEP 440 order (``1.3rc1 < 1.3``, ``2.0.0.dev0 < 2.0.0``); a name that is no
    version (the ``factory`` placeholder of a models folder without a manifest) sorts first."""
    try:
        return (1, Version(str(version)))
    except InvalidVersion:
        return (0, str(version))


def manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


def check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise BundleError(f"unsafe member name in bundle: {name!r}")


def read_bundle(data: bytes, trusted=None) -> Bundle:
    """Open and check a bundle.

    Args:
        data: the bundle file's bytes.
        trusted: ``{key_id: Ed25519PublicKey}`` (``keys.trusted_keyring``); ``None`` skips the
            signature check (only for ``verify`` without a key: the result says so).
    Raises:
        BundleError: with the reason: damaged or truncated archive, unsafe or unexpected member,
            oversize member, unsigned, untrusted key, bad signature, bad manifest, hash mismatch.
    """
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"bundle is {len(data)} bytes, more than the {MAX_BUNDLE} allowed")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise BundleError(f"damaged or truncated bundle: {exc}") from exc
    members = _member_table(infos)
    if SIGNATURE not in members:
        raise BundleError("unsigned bundle: it has no signature.json")
    if MANIFEST not in members:
        raise BundleError("bundle has no manifest.json")
    body = _read(zf, members[MANIFEST], MAX_MANIFEST)
    kid = _check_signature(body, _read(zf, members[SIGNATURE], 4096), trusted)
    manifest = _parse_manifest(body)
    listed = manifest["files"]
    extra = set(members) - set(listed) - {MANIFEST, SIGNATURE}
    if extra:
        raise BundleError(f"bundle holds files its manifest does not list: {sorted(extra)}")
    files = {}
    for name, meta in listed.items():
        if name not in members:
            raise BundleError(f"model file {name} listed in the manifest is not in the bundle")
        blob = _read(zf, members[name], MAX_MEMBER)
        if len(blob) != meta["size"] or hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise BundleError(f"model file {name} does not match its sha256 in the signed "
                              "manifest (tampered or damaged)")
        files[name] = blob
    return Bundle(manifest, files, kid, hashlib.sha256(data).hexdigest())


def _member_table(infos) -> dict[str, zipfile.ZipInfo]:
    members, total = {}, 0
    for info in infos:
        check_name(info.filename)
        if info.is_dir() or info.filename in members:
            raise BundleError(f"bad or duplicate member in bundle: {info.filename!r}")
        if info.file_size > MAX_MEMBER:
            raise BundleError(f"bundle member {info.filename} is oversize ({info.file_size} bytes)")
        total += info.file_size
        members[info.filename] = info
    if total > MAX_BUNDLE:
        raise BundleError(f"bundle members add up to {total} bytes, more than {MAX_BUNDLE}")
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, never more than ``limit`` whatever its header claims (zip bombs)."""
    if info.file_size > limit:
        raise BundleError(f"bundle member {info.filename} is oversize ({info.file_size} bytes)")
    try:
        with zf.open(info) as f:
            blob = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise BundleError(f"damaged bundle member {info.filename}: {exc}") from exc
    if len(blob) > limit or len(blob) != info.file_size:
        raise BundleError(f"bundle member {info.filename} is not the size its header says")
    return blob


def _check_signature(body: bytes, sig_blob: bytes, trusted) -> str:
    try:
        sig = json.loads(sig_blob)
        kid, signature = str(sig["key_id"]), base64.b64decode(sig["signature"], validate=True)
        if sig.get("alg") != "ed25519":
            raise ValueError(f"unsupported signature algorithm {sig.get('alg')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"unreadable signature.json: {exc}") from exc
    if trusted is None:
        return kid
    if kid not in trusted:
        raise BundleError(f"bundle is signed by an untrusted key ({kid})")
    if not keys.verify(trusted[kid], signature, body):
        raise BundleError("signature does not match the manifest (tampered or damaged)")
    return kid


def _parse_manifest(body: bytes) -> dict:
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise BundleError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json is not an object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"unsupported bundle format {manifest.get('format')!r} (want {FORMAT})")
    for key, kind in (("version", str), ("files", dict), ("models", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BundleError(f"manifest.json: {key!r} is missing or not a {kind.__name__}")
    parse_version(manifest["version"])
    if manifest.get("min_app_version") is not None:
        parse_version(manifest["min_app_version"])
    for name, meta in manifest["files"].items():
        check_name(name)
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str)
                and isinstance(meta.get("size"), int)):
            raise BundleError(f"manifest.json: files[{name!r}] needs sha256 and size")
    models = manifest["models"]
    if not isinstance(models.get("detector"), dict):
        raise BundleError("manifest.json: models has no detector")
    for role in ("detector", "analyzer"):
        entry = models.get(role)
        if entry is not None and (not isinstance(entry, dict)
                                  or entry.get("file") not in manifest["files"]):
            raise BundleError(f"manifest.json: models.{role} names a file the bundle lacks")
    return manifest
