"""Start-up time and memory of ``kiosk run`` as a kiosk installs it (the built wheel in a venv).

Builds the wheel from this checkout, installs it with the pinned device dependencies into a fresh
virtual environment (or reuses ``--venv``), then starts ``kiosk run`` on the built-in demo clip
``--runs`` times from an empty folder with a bare environment, and reports medians of:

* ``first_frame_s``: process start (as the kernel counts it, interpreter start-up included) to
  the first analysed frame, from the appliance's own log line;
* ``wall_s``: the whole run (``--max-frames`` frames, then a clean stop);
* ``peak_rss_mb``: the process's peak resident memory (``ru_maxrss``).

    python -m tools.startup --runs 5 [--venv DIR] [--json OUT]

The first run of a fresh state folder also seeds the model slots; every run here starts from an
empty folder, as a kiosk's first boot does, and ``--warm`` reuses one folder (later boots).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST = re.compile(r"first frame analysed ([0-9.]+) s after the process started")


def install(venv: Path) -> None:
    """A venv with the pinned device dependencies and the wheel built from this checkout."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r",
                    str(ROOT / "deploy" / "requirements-device.txt")], check=True)
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist,
                        str(ROOT)], check=True)
        (wheel,) = Path(dist).glob("audience_kiosk-*.whl")
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)


def one_run(venv: Path, work: Path, state: Path, frames: int) -> dict:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    log = work / "run.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(venv / "bin" / "kiosk"), "run", "--source", "demo",
                                 "--no-mqtt", "--state-dir", str(state),
                                 "--max-frames", str(frames)],
                                cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"kiosk run failed ({proc.returncode}):\n{text[-2000:]}")
    match = FIRST.search(text)
    if match is None:
        raise SystemExit("kiosk run did not log its first analysed frame")
    return {"first_frame_s": float(match.group(1)), "wall_s": round(wall, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=30, help="frames per run (default 30)")
    ap.add_argument("--venv", type=Path, help="reuse this venv (made if missing)")
    ap.add_argument("--warm", action="store_true", help="reuse one state folder across runs")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kiosk-startup-") as tmp:
        venv = args.venv or Path(tmp) / "venv"
        if not (venv / "bin" / "kiosk").exists():
            install(venv)
        work = Path(tmp) / "work"
        work.mkdir()
        runs = []
        for i in range(args.runs):
            state = work / ("state" if args.warm else f"state{i}")
            runs.append(one_run(venv, work, state, args.frames))
            print(json.dumps(runs[-1]), flush=True)
    out = {"runs": len(runs), "frames": args.frames, "warm": args.warm,
           "first_frame_s_p50": statistics.median(r["first_frame_s"] for r in runs),
           "wall_s_p50": statistics.median(r["wall_s"] for r in runs),
           "peak_rss_mb_p50": statistics.median(r["peak_rss_mb"] for r in runs),
           "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
           "python": sys.version.split()[0], "machine": os.uname().machine,
           "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": out, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
