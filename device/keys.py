"""The public keys a device trusts for model bundles: load them, name them, check signatures.

The public key is a PEM file, and the devices trust it through
``[provisioning] trusted_keys``: each entry is a path to such a file, the PEM text itself, or the
raw 32-byte key in base64 (what ``kiosk-provision keygen`` prints). Making keys and signing is
the operator's side (``provisioning.keys``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device.errors import BundleError


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of sha256 over its raw bytes."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode()


def load_public_key(spec: str | os.PathLike | bytes) -> Ed25519PublicKey:
    """A public key from a PEM file path, PEM text/bytes, or base64 of the raw 32 bytes.

    Raises:
        BundleError: the spec is none of those, or not an Ed25519 key.
    """
    if isinstance(spec, bytes):
        text = spec.decode("ascii", "replace")
    else:
        text = str(spec).strip()
        if "-----BEGIN" not in text and not _looks_b64_key(text):
            try:
                text = Path(text).expanduser().read_text()
            except OSError as exc:
                raise BundleError(f"cannot read public key {spec}: {exc}") from exc
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise BundleError(f"not a usable public key ({str(spec)[:60]}): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"public key {str(spec)[:60]} is not Ed25519")
    return key


def _looks_b64_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def trusted_keyring(specs) -> dict[str, Ed25519PublicKey]:
    """``{key_id: key}`` for every trusted key spec (see ``load_public_key``)."""
    ring = {}
    for spec in specs or ():
        key = load_public_key(spec)
        ring[key_id(key)] = key
    return ring


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
        return True
    except InvalidSignature:
        return False
