"""The ``kiosk`` command: ``analyze``, ``run`` and ``check-config``."""

from __future__ import annotations

import argparse
import logging
import sys

from device import __version__
from device.errors import KioskError


def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="every face in images or videos, with its attributes")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, video or folder of images")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="analyze every N-th video frame")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--models", metavar="DIR", help="models folder (default: the installed models)")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run the appliance: camera to anonymous aggregates over MQTT")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (see deploy/kiosk.toml)")
    p.add_argument("--source", help="auto | picamera | camera:N | demo | video, image or folder")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker (overrides [mqtt] host/port)")
    p.add_argument("--no-mqtt", action="store_true",
                   help="no broker: windows are spooled and written to the log")
    p.add_argument("--device-id", help="device id used in topics")
    p.add_argument("--window", type=float, metavar="SECONDS", help="aggregation window length")
    p.add_argument("--state-dir", metavar="DIR", help="where the spool, seq and model slots live")
    p.add_argument("--display", metavar="SINK", help="png:PATH | fb:/dev/fbN | drm | none")
    p.add_argument("--loop", action="store_true", help="replay a file source forever")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop cleanly after this long")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop cleanly after N frames")


def _add_doctor(sub) -> None:
    from device.doctor import HELP

    p = sub.add_parser("doctor", help="check an installation: camera, display, models, broker...",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="TOML configuration (see deploy/kiosk.toml)")
    p.add_argument("--source", help="auto | picamera | camera:N | demo | video, image or folder")
    p.add_argument("--display", metavar="SINK", help="png:PATH | fb:/dev/fbN | drm | none")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker (overrides [mqtt] host/port)")
    p.add_argument("--device-id", help="device id used in topics")
    p.add_argument("--state-dir", metavar="DIR", help="where the spool, seq and model slots live")
    p.add_argument("--json", action="store_true", help="JSON lines (one per check), not a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__)
    parser.add_argument("--version", action="version", version=f"audience-kiosk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_analyze(sub)
    _add_run(sub)
    _add_doctor(sub)
    p = sub.add_parser("check-config", help="validate a TOML configuration and print it")
    p.add_argument("file", metavar="FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "analyze":
            from device.analyze_cmd import run_analyze

            return run_analyze(args.paths, as_json=args.json, every=max(1, args.every),
                               threads=args.threads, models_dir=args.models)
        if args.command == "run":
            from device.app import run_main

            return run_main(args)
        if args.command == "doctor":
            from device.doctor import doctor_main

            return doctor_main(args)
        if args.command == "check-config":
            from device.config import check_config_main

            return check_config_main(args.file)
    except KioskError as exc:
        print(f"kiosk: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
