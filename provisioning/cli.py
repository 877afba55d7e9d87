"""``kiosk-provision`` / ``python -m provisioning``: keys, bundles, flashing and fleet status.

    kiosk-provision keygen --out keys/
    kiosk-provision build models/ --key keys/signing.key --version 2026.12.01 -o m.kbundle
    kiosk-provision verify m.kbundle --pubkey keys/signing.pub
    kiosk-provision flash m.kbundle --mqtt broker:1883 --device kiosk-01 [--device ...]
    kiosk-provision flash m.kbundle --mqtt broker:1883 --all
    kiosk-provision flash m.kbundle --target /media/sd/var/lib/audience-kiosk --pubkey k.pub
    kiosk-provision status --mqtt broker:1883

Exit status: 0 when everything asked for succeeded, 1 when a bundle, device or check failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from device.bundle import read_bundle
from device.errors import BundleError, KioskError
from device.keys import key_id, load_public_key, public_b64, trusted_keyring
from device.pipeline import model_problems
from provisioning import keys


def cmd_keygen(args) -> int:
    priv, pub = keys.keygen(args.out, overwrite=args.force)
    key = load_public_key(str(pub))
    print(f"private key: {priv} (mode 0600; keep it off the devices)")
    print(f"public key:  {pub}  id {key_id(key)}")
    print(f"devices trust it with [provisioning] trusted_keys = [\"{pub.name}\"] "
          f"(or the raw key {public_b64(key)})")
    return 0


def cmd_build(args) -> int:
    from provisioning.build import build_bundle

    data = build_bundle(args.models_dir, keys.load_private_key(args.key), args.version,
                        args.min_app_version)
    Path(args.output).write_bytes(data)
    describe(read_bundle(data), args.output)
    return 0


def describe(bundle, name) -> None:
    """Print what a bundle holds."""
    m = bundle.manifest
    print(f"{name}: bundle {m['version']} created {m.get('created')} by key {bundle.key_id}, "
          f"needs app >= {m.get('min_app_version')}")
    for fname, meta in m["files"].items():
        print(f"  {fname}  {meta['size']} bytes  sha256 {meta['sha256'][:16]}...")
    models = m["models"]
    det = models.get("detector", {})
    print(f"  detector: {det.get('file')} (variant {det.get('variant', '?')})")
    an = models.get("analyzer")
    if an:
        heads = {k: v.get("labels", v.get("kind")) for k, v in an.get("heads", {}).items()}
        print(f"  analyzer: {an.get('file')} input {an.get('input')} heads {heads}")
        print(f"  age groups: {an.get('age_groups')}")
    else:
        print("  analyzer: none (faces are detected, attributes are not estimated)")
    k = m.get("kat", {})
    print(f"  known-answer test: {len(k.get('detector', {}).get('detections', []))} face(s) "
          f"in the picture, {len(k.get('analyzer', {}).get('faces', []))} aligned face(s)")
    if m.get("metrics"):
        print(f"  metrics: {json.dumps(m['metrics'])}")


def cmd_verify(args) -> int:
    data = Path(args.bundle).read_bytes()
    bundle = read_bundle(data, trusted_keyring(args.pubkey))
    print("signature: good; file hashes: good")
    describe(bundle, args.bundle)
    if args.no_kat:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = unpack(bundle, Path(tmp))
        problems = model_problems(folder)  # the self-test a device runs before using them
    print("known-answer test on this machine: " + ("passed" if not problems else
          "FAILED: " + "; ".join(problems)))
    return 1 if problems else 0


def unpack(bundle, folder: Path) -> Path:
    """Write a checked bundle's models and its slot manifest (with the KAT) into ``folder``."""
    for name, blob in bundle.files.items():
        (folder / name).write_bytes(blob)
    manifest = dict(bundle.manifest["models"], version=bundle.version, kat=bundle.manifest["kat"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def cmd_flash(args) -> int:
    data = Path(args.bundle).read_bytes()
    if args.target:
        return flash_target(args, data)
    if args.pubkey:  # catch a wrong file before it goes out to a fleet
        read_bundle(data, trusted_keyring(args.pubkey))
    from provisioning import mqtt_tool

    session = mqtt_tool.Session(mqtt_tool.broker_options(args))
    try:
        ids, results = args.device or [], {}
        if args.all:
            table = mqtt_tool.device_table(session, args.discover_s)
            ids = sorted(table)
            print(f"found {len(ids)} device(s): {names(ids)}")
            for d in [d for d in ids if table[d].get("availability") == "offline"]:
                print(f"{d}: OFFLINE (its last will says so); not sent")
                results[d] = {"outcome": "offline"}
        if not ids:
            print("no devices to flash", file=sys.stderr)
            return 1
        online = [d for d in ids if d not in results]
        if online:
            results.update(mqtt_tool.flash(session, data, online, args.timeout))
    finally:
        session.close()
    failed = sorted(d for d, r in results.items() if r.get("outcome") != "applied")
    if len(ids) > mqtt_tool.VERBOSE_MAX:
        print("\n".join(mqtt_tool.outcome_summary(results)))
    print(f"{len(ids) - len(failed)} of {len(ids)} device(s) applied the bundle"
          + (f"; not applied: {names(failed)}" if failed else ""))
    return 1 if failed else 0


def names(ids: list[str], most: int = 20) -> str:
    """Device ids for one line: the first ``most``, then how many more."""
    if not ids:
        return "none"
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more


def flash_target(args, data: bytes) -> int:
    """Install onto a mounted card's state dir; the device tries it at its next boot."""
    from device.provision import Provisioner

    if not args.pubkey:
        print("flash --target needs --pubkey (the key the device trusts)", file=sys.stderr)
        return 2
    prov = Provisioner(args.target, args.pubkey, allow_downgrade=args.allow_downgrade)
    out = prov.handle(data, offline=True)
    print(f"{args.target}: {out['outcome']}" + (f" ({out['reason']})" if out.get("reason") else ""))
    return 0 if out["outcome"] == "installed" else 1


def cmd_status(args) -> int:
    from provisioning import mqtt_tool

    session = mqtt_tool.Session(mqtt_tool.broker_options(args))
    try:
        table = mqtt_tool.device_table(session, args.discover_s)
    finally:
        session.close()
    if not table:
        print("no devices found")
        return 1
    print(f"{'device':20} {'online':8} {'models':14} {'app':10} {'state':9} {'camera':8} error")
    for device_id, s in sorted(table.items()):
        print(f"{device_id:20} {s.get('availability', '?'):8} {s.get('model_version', '?'):14} "
              f"{s.get('app_version', '?'):10} {s.get('state', '?'):9} {s.get('camera', '?'):8} "
              f"{s.get('error') or ''}")
    return 0


def _broker_args(p, required: bool) -> None:
    from provisioning.mqtt_tool import add_broker_arguments

    add_broker_arguments(p, required)
    p.add_argument("--discover-s", type=float, default=2.0,
                   help="seconds to collect retained status messages")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kiosk-provision", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    p.add_argument("--out", required=True, help="folder for signing.key and signing.pub")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.set_defaults(func=cmd_keygen)
    p = sub.add_parser("build", help="build a signed bundle from a models folder")
    p.add_argument("models_dir")
    p.add_argument("--key", required=True, help="signing.key")
    p.add_argument("--version", required=True)
    p.add_argument("--min-app-version", help="oldest app that may run it (default: this one)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("verify", help="check a bundle's signature, hashes and known answers")
    p.add_argument("bundle")
    p.add_argument("--pubkey", required=True, action="append", help="trusted key (repeatable)")
    p.add_argument("--no-kat", action="store_true", help="skip running the known-answer test")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("flash", help="send a bundle to devices over MQTT, or onto a card")
    p.add_argument("bundle")
    p.add_argument("--device", action="append", help="device id (repeatable)")
    p.add_argument("--all", action="store_true", help="every device with a retained status")
    p.add_argument("--target", help="a mounted card's state dir ([state] dir on that card)")
    p.add_argument("--pubkey", action="append", help="check the bundle against this key first")
    p.add_argument("--allow-downgrade", action="store_true", help="(--target) accept older")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for every device's result (covers its health window)")
    _broker_args(p, required=False)
    p.set_defaults(func=cmd_flash)
    p = sub.add_parser("status", help="every device's model version, app version and health")
    _broker_args(p, required=True)
    p.set_defaults(func=cmd_status)
    return ap


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.cmd == "flash" and bool(args.target) == bool(args.mqtt):
        ap.error("flash needs exactly one of --target DIR or --mqtt HOST:PORT")
    if args.cmd == "flash" and args.mqtt and bool(args.all) == bool(args.device):
        ap.error("flash --mqtt needs --device ID (repeatable) or --all")
    try:
        return args.func(args)
    except (BundleError, KioskError, ValueError, OSError, ConnectionError) as exc:
        print(f"kiosk-provision {args.cmd}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
