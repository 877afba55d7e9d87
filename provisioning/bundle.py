"""Making a model bundle (the format and its checks are in ``device.bundle``)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

from device import keys
from device.bundle import FORMAT, MANIFEST, SIGNATURE, check_name, manifest_bytes

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same bytes for the same inputs


def write_bundle(manifest: dict, files: dict[str, bytes], key) -> bytes:
    """Sign ``manifest`` (its ``files`` entry is filled in here) and pack it with the files.

    Args:
        manifest: everything but ``files``; ``format`` defaults to the current one.
        files: file name -> contents.
        key: an ``Ed25519PrivateKey``.
    Returns:
        The bundle file's bytes.
    """
    manifest = dict(manifest, files={
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in sorted(files.items())})
    manifest.setdefault("format", FORMAT)
    for name in files:
        check_name(name)
    body = manifest_bytes(manifest)
    sig = {"alg": "ed25519", "key_id": keys.key_id(key.public_key()),
           "signature": base64.b64encode(key.sign(body)).decode()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _add(zf, MANIFEST, body)
        _add(zf, SIGNATURE, json.dumps(sig, indent=1).encode())
        for name, data in sorted(files.items()):
            _add(zf, name, data)
    return buf.getvalue()


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, _FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)
