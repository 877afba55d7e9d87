"""Soak test: the appliance for hours on looped footage, with the broker and the source failing.

    python -m tools.soak --duration 7200 --out docs/soak.json --plot docs/soak.png

Runs ``kiosk run`` (``tools.soak_kiosk``: the real appliance, its source behind a plug) on a
looped, paced clip with short windows, against a real mosquitto that it restarts at random, and
unplugs and replugs the source at random. Every ``--sample-s`` it samples the appliance's RSS,
open file descriptors and threads (``/proc``), the spool's file size, and the loop's fps, lag and
dropped frames (its status message). A listener with a persistent session counts every window
seq. At the end each seq the appliance allocated is received, still in the spool, counted as
dropped, or lost; the JSON says how many of each, and the slopes of RSS, fds and threads after the
warm-up. Needs Linux (``/proc``) and Debian's mosquitto.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device import __version__
from tools.fleet_services import Mosquitto
from tools.soak_report import plot, slope_per_hour, window_account

DEVICE = "soak"
PREFIX = f"kiosk/{DEVICE}/"


class Listener:
    """Counts audience seqs and keeps the latest status; rides out broker restarts."""

    def __init__(self, broker: Mosquitto):
        self.seqs: dict[int, int] = {}
        self.status: dict = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-listener",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(PREFIX + "audience", 1), (PREFIX + "status", 0)])
        self.client.on_message = self._message
        self.client.reconnect_delay_set(0.5, 2)
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _message(self, client, userdata, msg) -> None:
        data = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("audience"):
                self.seqs[data["seq"]] = self.seqs.get(data["seq"], 0) + 1
            else:
                self.status = data

    def latest(self) -> dict:
        with self._lock:
            return dict(self.status)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def proc_sample(pid: int) -> dict:
    """RSS (MB), threads and open fds of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    sample = {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 2),
              "threads": int(fields["Threads"]),
              "fds": len(list(Path(f"/proc/{pid}/fd").iterdir()))}
    if not (sample["rss_mb"] and sample["fds"]):
        raise ValueError(f"process {pid} is exiting")  # not a sample of the running appliance
    return sample


def spool_kb(state: Path) -> float:
    return round(sum(p.stat().st_size for p in state.glob("spool.db*")
                     if p.is_file() and not p.name.endswith(".reserve")) / 1024, 1)


def write_config(work: Path, broker: Mosquitto, opts) -> Path:
    cfg = work / "kiosk.toml"
    cfg.write_text(f"""[device]
id = "{DEVICE}"
[source]
spec = "{opts.source}"
loop = true
pace = true
retry_max_s = 2.0
[aggregate]
window_s = {opts.window}
[mqtt]
host = "{broker.host}"
port = {broker.port}
status_s = {opts.sample_s}
discovery = false
[spool]
max_bytes = {opts.spool_max_bytes}
[clock]
trusted = true
[state]
dir = "{work / 'state'}"
""")
    return cfg


class Faults:
    """The broker restarts and source unplugs, at random times (seeded)."""

    def __init__(self, opts, broker: Mosquitto, plug: Path, t0: float):
        self.opts, self.broker, self.plug, self.t0 = opts, broker, plug, t0
        self.rng = random.Random(opts.seed)
        self.broker_down: list[list[float]] = []
        self.unplugged: list[list[float]] = []
        self._next_broker = self._draw(0.0, opts.broker_every_s)
        self._next_unplug = self._draw(0.0, opts.unplug_every_s)
        self._broker_back = self._replug = None

    def _draw(self, t: float, mean: float) -> float | None:
        """The next fault's time: ``mean`` seconds apart on average (0: never)."""
        return t + self.rng.expovariate(1 / mean) if mean > 0 else None

    def step(self, t: float) -> None:
        """Start or end the faults due at ``t`` (seconds since the start)."""
        if self._broker_back is not None and t >= self._broker_back:
            self.broker.start()
            self.broker_down[-1][1], self._broker_back = t, None
            self._next_broker = self._draw(t, self.opts.broker_every_s)
        elif self._next_broker is not None and self._broker_back is None \
                and t >= self._next_broker:
            self.broker.stop()
            self.broker_down.append([t, t])
            self._broker_back = t + self.rng.uniform(0.5, 1.5) * self.opts.broker_down_s
        if self._replug is not None and t >= self._replug:
            self.plug.touch()
            self.unplugged[-1][1], self._replug = t, None
            self._next_unplug = self._draw(t, self.opts.unplug_every_s)
        elif self._next_unplug is not None and self._replug is None and t >= self._next_unplug:
            self.plug.unlink()
            self.unplugged.append([t, t])
            self._replug = t + self.rng.uniform(0.5, 1.5) * self.opts.unplug_s

    def end(self, t: float) -> None:
        """Everything back: broker up, source plugged in."""
        if self._broker_back is not None:
            self.broker.start()
            self.broker_down[-1][1] = t
        if self._replug is not None:
            self.plug.touch()
            self.unplugged[-1][1] = t
        self._next_broker = self._next_unplug = self._broker_back = self._replug = None


def _sample(t: float, pid: int, state: Path, listener: Listener) -> dict:
    st = listener.latest()
    return {"t": round(t, 1), **proc_sample(pid), "spool_kb": spool_kb(state),
            **{k: st.get(k) for k in ("spool_depth", "spool_bytes", "fps", "lag_s",
                                       "frames_dropped", "camera")}}


def _spool_after(path: Path) -> tuple[int, set[int], int]:
    """(seqs allocated, seqs still waiting, windows counted as dropped) from the spool file."""
    db = sqlite3.connect(path)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        waiting = {r[0] for r in db.execute("SELECT seq FROM outbox")}
    finally:
        db.close()
    return meta["next_seq"] - 1, waiting, meta["dropped"]


def run(opts) -> dict:
    """One soak run; the result as ``docs/soak.json`` holds it."""
    work = Path(opts.work or tempfile.mkdtemp(prefix="kiosk-soak-"))
    state = work / "state"
    broker = Mosquitto(work / "broker", ["persistence true", "autosave_interval 30"])
    broker.start()
    listener = Listener(broker)
    plug = work / "plug"
    plug.touch()
    cmd = [sys.executable, "-m", "tools.soak_kiosk", "--plug", str(plug), "--", "--config",
           str(write_config(work, broker, opts)), "--duration", str(opts.duration)]
    samples: list[dict] = []
    with open(work / "kiosk.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        faults = Faults(opts, broker, plug, t0)
        quiet = max(15.0, 3 * opts.window)  # no new faults at the end: time to flush
        next_sample = 0.0
        while proc.poll() is None:
            t = time.monotonic() - t0
            faults.step(t) if t < opts.duration - quiet else faults.end(t)
            if t >= next_sample:
                try:
                    samples.append(_sample(t, proc.pid, state, listener))
                except (OSError, KeyError, ValueError):  # it is exiting
                    pass
                next_sample += opts.sample_s
            time.sleep(0.1)
        faults.end(time.monotonic() - t0)
        rc = proc.wait()
    time.sleep(2.0)  # the listener's last acknowledgements
    listener.close()
    broker.stop()
    allocated, waiting, dropped = _spool_after(state / "spool.db")
    received = set(listener.seqs)
    skip = opts.warmup_s if opts.warmup_s is not None else max(60.0, 0.1 * opts.duration)
    slopes = {f"{k}_per_h": _round(slope_per_hour(samples, k, skip))
              for k in ("rss_mb", "fds", "threads")}
    slopes = {"rss_mb_per_h": slopes.pop("rss_mb_per_h"), **slopes}
    return {
        "command": "python -m tools.soak " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "app_version": __version__,
        "machine": f"{platform.machine()}, {platform.node()}"[:60] if opts.name_machine
        else platform.machine(),
        "duration_s": opts.duration, "window_s": opts.window, "source": opts.source,
        "kiosk_exit_status": rc, "faults": {
            "broker_restarts": len(faults.broker_down), "unplugs": len(faults.unplugged),
            "broker_down": faults.broker_down, "unplugged": faults.unplugged},
        "windows": {**window_account(allocated, received, waiting, dropped),
                    "expected_by_time": int(opts.duration // opts.window),
                    "duplicates": sum(n - 1 for n in listener.seqs.values())},
        "slopes": slopes, "slope_after_s": skip,
        "spool": {"max_bytes": opts.spool_max_bytes,
                  "max_kb_seen": max((s["spool_kb"] for s in samples), default=0.0)},
        "samples": samples, "log": str(work / "kiosk.log")}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=7200.0, help="seconds (default 2 h)")
    ap.add_argument("--source", default="demo", help="looped footage (default: the demo clip)")
    ap.add_argument("--window", type=float, default=10.0, help="window length in seconds")
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--broker-every-s", type=float, default=600.0,
                    help="mean seconds between broker restarts (0: never)")
    ap.add_argument("--broker-down-s", type=float, default=30.0, help="mean broker downtime")
    ap.add_argument("--unplug-every-s", type=float, default=900.0,
                    help="mean seconds between source unplugs (0: never)")
    ap.add_argument("--unplug-s", type=float, default=20.0, help="mean time unplugged")
    ap.add_argument("--spool-max-bytes", type=int, default=1 << 20)
    ap.add_argument("--warmup-s", type=float,
                    help="samples before this are left out of the slopes (default: 10 %%, >= 60 s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", help="folder for the broker, state and log (default: a temp one)")
    ap.add_argument("--out", type=Path, default=Path("soak.json"))
    ap.add_argument("--plot", type=Path, help="also draw the samples (PNG)")
    ap.add_argument("--name-machine", action="store_true", help="record the host name")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    result = run(opts)
    opts.out.write_text(json.dumps(result, indent=1) + "\n")
    if opts.plot:
        plot(result, opts.plot)
    w = result["windows"]
    print(f"{w['received']} of {w['expected']} windows received, {w['in_spool']} in the spool, "
          f"{w['dropped_counted']} dropped (counted), {w['lost']} lost, {w['duplicates']} "
          f"duplicates; RSS {result['slopes']['rss_mb_per_h']} MB/h, fds "
          f"{result['slopes']['fds_per_h']}/h; broker restarts "
          f"{result['faults']['broker_restarts']}, unplugs {result['faults']['unplugs']}")
    return 0 if w["lost"] == 0 and result["kiosk_exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
