"""Fleet load and fault test: simulated kiosks -> mosquitto -> ingest workers -> PostgreSQL.

    python -m tools.fleet_load --kiosks 1000 --windows-per-kiosk 60 --workers 2 \\
        --json docs/fleet-load.json --faults

Starts its own mosquitto and PostgreSQL on free loopback ports (nothing else is contacted),
``--workers`` ``kiosk-fleet ingest`` processes in one shared-subscription group, and the
simulated kiosks (``tools/fleet_sim.py``: one MQTT connection per kiosk, the appliance's own
message, spool and status code) in ``--sim-procs`` processes. Each kiosk publishes
``--windows-per-kiosk`` windows, one every ``--interval-s`` seconds. With ``--faults``, at a
quarter, half and three quarters of the publishing time it SIGKILLs an ingest worker (restarted
a few seconds later under the same name, as systemd would), restarts the broker (SIGTERM: it
saves its sessions), and restarts PostgreSQL (fast shutdown).

When every kiosk's spool is empty and the database has caught up (or ``--timeout-s`` passed),
it compares the database with what the kiosks numbered and writes the JSON: windows sent,
rows, lost (numbers a kiosk sent that are not in the database), duplicated (rows beyond one
per ``(device_id, seq)``), duplicate deliveries the store absorbed, sustained windows/s, and
end-to-end latency (window end, which the kiosk stamps when it publishes, to the commit that
stored it) p50/p99/max. Bounded: the run stops by itself after ``--timeout-s``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fleet.store import open_store
from tools.fleet_services import FLEET_BROKER_OPTIONS, Mosquitto, Postgres

ROOT = Path(__file__).resolve().parents[1]


class Worker:
    """One ``kiosk-fleet ingest`` process."""

    def __init__(self, name: str, db: str, broker: str, logdir: Path, backstop: bool):
        self.name, self.db, self.broker, self.logdir = name, db, broker, logdir
        self.backstop = backstop
        self.proc: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.logdir / f"ingest-{self.name}.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleet.cli", "ingest", "--db", self.db, "--mqtt",
                 self.broker, "--group", "load", "--name", self.name, "--snapshot-s", "0",
                 *([] if self.backstop else ["--no-backstop"])],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def wait_connected(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "connected to" in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not connect")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def percentile_ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000.0, 1) if len(values) else None


def check(db: str, last_seq: dict[str, int]) -> dict:
    """Compare the database with what the kiosks numbered."""
    store = open_store(db)
    try:
        rows = list(store._query(  # noqa: SLF001  (one read the interface has no need for)
            "SELECT device_id, seq, window_end, ingested_at, deliveries FROM windows"))
        gaps = store.gaps()
    finally:
        store.close()
    keys = {(r[0], r[1]) for r in rows}
    expected = {(d, s) for d, n in last_seq.items() for s in range(1, n + 1)}
    lost = sorted(expected - keys)
    latency = np.array([r[3] - r[2] for r in rows])
    ingested = [r[3] for r in rows]
    span = (max(ingested) - min(r[2] for r in rows)) if rows else 0.0
    return {"rows": len(rows), "lost": len(lost), "lost_sample": lost[:10],
            "duplicated": len(rows) - len(keys),
            "unexpected": len(keys - expected),
            "duplicate_deliveries_absorbed": sum(r[4] for r in rows) - len(rows),
            "windows_per_s": round(len(rows) / span, 1) if span else None,
            "latency_ms_p50": percentile_ms(latency, 50),
            "latency_ms_p99": percentile_ms(latency, 99),
            "latency_ms_max": percentile_ms(latency, 100),
            "open_gaps_at_end": sum(1 for g in gaps.values() for x in g if x.open),
            "gaps_detected_and_filled": sum(1 for g in gaps.values() for x in g if not x.open)}


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-fleet-load-"))
    broker = Mosquitto(tmp / "mosquitto", FLEET_BROKER_OPTIONS)
    pg = Postgres()
    workers, sims, faults = [], [], []
    t0 = time.monotonic()
    try:
        broker.start()
        pg.start()
        open_store(pg.url).close()  # the tables, before the workers race for them
        # the first worker keeps the backstop subscription (fleet/ingest.py), the others share
        workers = [Worker(f"w{i + 1}", pg.url, broker.address, tmp, backstop=i == 0)
                   for i in range(args.workers)]
        for w in workers:
            w.start()
        for w in workers:
            w.wait_connected()
        time.sleep(0.5)  # the shared subscription exists before the first window
        per = -(-args.kiosks // args.sim_procs)
        for p in range(args.sim_procs):
            first, n = p * per, min(per, args.kiosks - p * per)
            if n <= 0:
                break
            out = tmp / f"sim-{p}.json"
            with open(tmp / f"sim-{p}.log", "wb") as log:
                sims.append((out, subprocess.Popen(
                    [sys.executable, "-m", "tools.fleet_sim", "--mqtt", broker.address,
                     "--kiosks", str(n), "--first", str(first), "--prefix", "load",
                     "--windows", str(args.windows_per_kiosk), "--interval-s",
                     str(args.interval_s), "--status-s", "5", "--seed", str(p + 1),
                     "--json", str(out)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
        started = time.monotonic()
        publish_s = args.windows_per_kiosk * args.interval_s
        plan = []
        if "kill" in args.faults:
            plan += [(0.25, "SIGKILL ingest worker w1", lambda: workers[0].kill()),
                     (0.25 + 3.0 / publish_s, "ingest worker w1 restarted", workers[0].start)]
        if "broker" in args.faults:
            plan.append((0.5, "broker restarted (SIGTERM, start)", broker.restart))
        if "pg" in args.faults:
            plan.append((0.75, "PostgreSQL restarted (fast shutdown, start)", pg.restart))
        deadline = started + args.timeout_s
        for frac, what, act in plan:
            while time.monotonic() < started + frac * publish_s:
                time.sleep(0.05)
            t = time.monotonic()
            act()
            faults.append({"at_s": round(t - started, 1), "what": what,
                           "took_s": round(time.monotonic() - t, 2)})
            print(f"[{t - started:6.1f} s] {what}", flush=True)
        for _, proc in sims:
            proc.wait(max(1.0, deadline - time.monotonic()))
        summaries = [json.loads(out.read_text()) for out, _ in sims]
        last_seq = {d: s for x in summaries for d, s in x["last_seq"].items()}
        sent = sum(x["windows_sent"] for x in summaries)
        store = open_store(pg.url)
        try:  # until the database has every window, or it made no progress for 30 s
            rows, moved = -1, time.monotonic()
            while time.monotonic() < min(deadline, moved + 30.0) and rows < sent:
                now_rows = store.totals()["rows"]
                if now_rows != rows:
                    rows, moved = now_rows, time.monotonic()
                time.sleep(0.5)
        finally:
            store.close()
        result = check(pg.url, last_seq)
        firsts = [x["first_publish"] for x in summaries if x["first_publish"]]
        lasts = [x["last_publish"] for x in summaries if x["last_publish"]]
        return {
            "command": "python -m tools.fleet_load " + " ".join(sys.argv[1:]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, loopback only",
            "broker": "mosquitto " + subprocess.run(
                [broker_bin(), "-h"], capture_output=True, text=True).stdout.split("\n")[0]
            .replace("mosquitto version ", ""),
            "database": "PostgreSQL " + pg.bindir.parent.name,
            "kiosks": args.kiosks, "workers": args.workers, "sim_procs": args.sim_procs,
            "windows_per_kiosk": args.windows_per_kiosk, "interval_s": args.interval_s,
            "windows_sent": sent,
            "kiosk_publishes": sum(x["publishes"] for x in summaries),
            "kiosk_spools_left": sum(x["unacked"] for x in summaries),
            "offered_windows_per_s": round(sent / (max(lasts) - min(firsts)), 1)
            if firsts and lasts and max(lasts) > min(firsts) else None,
            **result, "faults": faults,
            "wall_s": round(time.monotonic() - t0, 1)}
    finally:
        for _, proc in sims:
            if proc.poll() is None:
                proc.kill()
        for w in workers:
            w.stop()
        broker.stop()
        pg.cleanup()
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", flush=True)


def broker_bin() -> str:
    from tools.fleet_services import MOSQUITTO
    return MOSQUITTO


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fleet_load",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--kiosks", type=int, default=20)
    ap.add_argument("--windows-per-kiosk", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval-s", type=float, default=1.0,
                    help="seconds between two windows of one kiosk (accelerated: a real "
                         "kiosk closes one a minute)")
    ap.add_argument("--sim-procs", type=int, default=2, help="processes for the kiosks")
    ap.add_argument("--faults", nargs="?", const="kill,broker,pg", default="",
                    help="kill a worker, restart the broker and PostgreSQL mid-run (all three, "
                         "or a comma-separated choice of kill, broker, pg)")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="stop after this long")
    ap.add_argument("--json", required=True, help="write the result here")
    ap.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = ap.parse_args(argv)
    result = run(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
