"""Ed25519 signing keys for model bundles: make them, load them, name them.

The private key is a PEM (PKCS#8, unencrypted) file readable only by its owner; keep it off the
devices. The public key is a PEM file too, and the devices trust it through
``[provisioning] trusted_keys``: each entry is a path to such a file, the PEM text itself, or the
raw 32-byte key in base64 (what ``keygen`` prints).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.errors import BundleError

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of sha256 over its raw bytes."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode()


def keygen(out_dir: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair as ``out_dir/signing.key`` (mode 0600) and ``out_dir/signing.pub``.

    Raises:
        FileExistsError: a key is already there and ``overwrite`` is false (keys are not
            replaced by accident: devices trusting the old one would reject new bundles).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise FileExistsError(f"a signing key already exists in {out}")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # created 0600 from the start: the key is never readable by others, not even briefly
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(priv_path, 0o600)
    pub_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; ValueError when it is something else."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


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
