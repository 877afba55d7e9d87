"""Ed25519 signing keys for model bundles, the operator's side: make a key pair, load the private
key. The private key is a PEM (PKCS#8, unencrypted) file readable only by its owner; keep it off
the devices. Public keys, key ids and signature checks are in ``device.keys``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"


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
