"""``kiosk-fleet``: store every kiosk's windows and report on the fleet.

    kiosk-fleet ingest --db sqlite:fleet.db --mqtt broker:1883
    kiosk-fleet ingest --db postgresql://fleet@db/fleet --mqtt broker:1883 --group fleet --name w1
    kiosk-fleet report --db sqlite:fleet.db --since 2026-11-21 --until 2026-11-28 --out report/
    kiosk-fleet gaps --db sqlite:fleet.db

Exit status: 0 on success, 1 when the database or broker fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import csv
import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from device.errors import KioskError


def parse_when(text: str) -> float:
    """``2026-11-21``, ``2026-11-21T06:00`` (UTC unless an offset is given) as epoch seconds."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"wants an ISO date or time such as 2026-11-21 or 2026-11-21T06:00Z, got {text!r}"
        ) from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def read_sites(path: str) -> dict[str, str]:
    """A CSV of ``device_id,site`` rows (a header row is allowed)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows and rows[0][:2] == ["device_id", "site"]:
        rows = rows[1:]
    bad = [r for r in rows if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise ValueError(f"{path}: each row wants device_id,site; got {bad[0]!r}")
    return {r[0].strip(): r[1].strip() for r in rows}


def cmd_ingest(args) -> int:
    from fleet.ingest import IngestWorker
    from fleet.store import open_store
    from provisioning.mqtt_tool import broker_options

    store = open_store(args.db)
    worker = IngestWorker(store, broker_options(args), group=args.group, name=args.name,
                          batch_max=args.batch, snapshot_s=args.snapshot_s,
                          backstop=args.backstop, leave=args.leave)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger(__name__).info("ingest %s: group %s, database %s", worker.name,
                                     args.group, args.db.split("@")[-1])
    try:
        worker.run(stop)
    finally:
        store.close()
    return 0


def cmd_report(args) -> int:
    from fleet.report import make_report
    from fleet.report_data import default_site
    from fleet.store import open_store

    if args.until <= args.since:
        raise SystemExit("--until must be after --since")
    sites = read_sites(args.sites) if args.sites else {}
    store = open_store(args.db)
    try:
        page = make_report(store, args.since, args.until, args.out,
                           site_of=lambda d: sites.get(d) or default_site(d), title=args.title)
    finally:
        store.close()
    print(f"wrote {page} and hourly.csv, shares.csv, distributions.csv, kiosks.csv beside it")
    return 0


def cmd_gaps(args) -> int:
    from fleet.store import open_store

    store = open_store(args.db)
    try:
        gaps, kiosks = store.gaps(), store.kiosks()
    finally:
        store.close()
    print(f"{'kiosk':24} {'last seq':>9} {'missing':>8}  open gaps (first-last, detected)")
    for k in kiosks:
        open_gaps = [g for g in gaps.get(k["device_id"], []) if g.open]
        text = ", ".join(
            f"{g.first}-{g.last} ({datetime.fromtimestamp(g.detected_at, UTC):%Y-%m-%d %H:%M})"
            for g in open_gaps)
        print(f"{k['device_id']:24} {k['high_seq'] or '':>9} "
              f"{sum(g.size for g in open_gaps):>8}  {text}")
    return 0


def parser() -> argparse.ArgumentParser:
    from provisioning.mqtt_tool import add_broker_arguments

    ap = argparse.ArgumentParser(prog="kiosk-fleet", description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True)
    db_help = "sqlite:PATH (default sqlite:fleet.db) or postgresql://USER@HOST/DB"
    p = sub.add_parser("ingest", help="store every kiosk's audience, status and availability")
    p.add_argument("--db", default="sqlite:fleet.db", help=db_help)
    add_broker_arguments(p)
    p.add_argument("--group", default="kiosk-fleet",
                   help="shared-subscription group: workers in one group split the messages")
    p.add_argument("--name", help="this worker's name in the group, stable across restarts "
                                  "(default: the host name)")
    p.add_argument("--batch", type=int, default=500, help="most messages per transaction")
    p.add_argument("--snapshot-s", type=float, default=3.0,
                   help="seconds to read retained statuses at start (0: skip)")
    p.add_argument("--no-backstop", dest="backstop", action="store_false",
                   help="no plain subscription beside the shared one (one or two workers of a "
                        "group keep it, so a broker restart loses nothing; see the docs)")
    p.add_argument("--leave", action="store_true",
                   help="retire this worker: store what the broker queued for it, then end "
                        "its session")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("report", help="an HTML page and CSV files for a period")
    p.add_argument("--db", default="sqlite:fleet.db", help=db_help)
    p.add_argument("--since", required=True, type=parse_when, help="start (UTC), e.g. 2026-11-21")
    p.add_argument("--until", required=True, type=parse_when, help="end (UTC), exclusive")
    p.add_argument("--out", required=True, help="folder for report.html and the CSV files")
    p.add_argument("--sites", help="CSV of device_id,site (default: the id without its last "
                                   "-part, berlin-mitte-03 -> berlin-mitte)")
    p.add_argument("--title", default="Audience report")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("gaps", help="every kiosk's missing window numbers")
    p.add_argument("--db", default="sqlite:fleet.db", help=db_help)
    p.set_defaults(func=cmd_gaps)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except (KioskError, ValueError, OSError) as exc:
        print(f"kiosk-fleet {args.cmd}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
