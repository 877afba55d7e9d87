"""The fleet report on a simulated week, end to end: kiosks -> mosquitto -> ingest -> report.

    python -m tools.fleet_demo --kiosks 20 --png docs/fleet-report.png

Starts its own mosquitto on a free loopback port and one ``kiosk-fleet ingest`` worker on an
SQLite file, lets ``--kiosks`` simulated kiosks (tools/fleet_sim.py, ``--week``) publish the 7
days before the current hour at an accelerated rate (with an outage replayed late, an outage
longer than the spool keeps, an older model, a kiosk gone offline and one with a backlog), then
runs ``kiosk-fleet report`` over that week and takes a screenshot of the page with headless
Chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet.cli import main as fleet_main
from fleet.store import open_store
from tools.fleet_services import FLEET_BROKER_OPTIONS, Mosquitto, screenshot

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fleet_demo",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--kiosks", type=int, default=20)
    ap.add_argument("--interval-s", type=float, default=0.01,
                    help="real seconds between two simulated windows of a kiosk")
    ap.add_argument("--png", default="docs/fleet-report.png", help="the screenshot")
    ap.add_argument("--out", help="keep the report folder (HTML and CSV) here")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-fleet-demo-"))
    broker = Mosquitto(tmp / "mosquitto", FLEET_BROKER_OPTIONS)
    db = f"sqlite:{tmp / 'fleet.db'}"
    worker = None
    try:
        broker.start()
        with open(tmp / "ingest.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "fleet.cli", "ingest", "--db", db,
                                       "--mqtt", broker.address], cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT)
        time.sleep(2.0)
        end = int(time.time() // 3600) * 3600  # where the simulated week ends
        t = time.monotonic()
        sim = subprocess.run([sys.executable, "-m", "tools.fleet_sim", "--mqtt", broker.address,
                              "--kiosks", str(args.kiosks), "--week", "--interval-s",
                              str(args.interval_s), "--status-s", "2", "--stay-online"],
                             cwd=ROOT, capture_output=True, text=True, timeout=3600)
        print(sim.stdout.strip(), f"({time.monotonic() - t:.0f} s)", flush=True)
        store = open_store(db)
        rows, moved = -1, time.monotonic()
        while time.monotonic() < moved + 10.0:  # until the worker has caught up
            now_rows = store.totals()["rows"]
            if now_rows != rows:
                rows, moved = now_rows, time.monotonic()
            time.sleep(1.0)
        store.close()
        print(f"{rows} windows stored", flush=True)
        out = Path(args.out) if args.out else tmp / "report"
        since, until = time.gmtime(end - 7 * 86400), time.gmtime(end)
        fmt = "%Y-%m-%dT%H:%MZ"
        fleet_main(["report", "--db", db, "--since", time.strftime(fmt, since), "--until",
                    time.strftime(fmt, until), "--out", str(out),
                    "--title", f"Audience report: {args.kiosks} kiosks, one simulated week"])
        png = screenshot(out / "report.html", Path(args.png), 1240, 3400)
        print(f"wrote {png}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
