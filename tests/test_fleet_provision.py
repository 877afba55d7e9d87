"""``kiosk-provision flash --all`` at fleet scale: hundreds of simulated kiosks (retained
statuses, canned provisioning answers; the real device path is tested in
test_provision_cli.py) get a bundle, the tool shows progress and ends with a per-outcome
summary."""

from __future__ import annotations

import threading
import time

import numpy as np

from provisioning.cli import main
from provisioning.mqtt_tool import outcome_summary
from tests.fleet_fixtures import fleet_broker  # noqa: F401  (fixture)
from tools.fleet_sim import Fleet, SimKiosk, plans


def test_outcome_summary_counts_and_groups_reasons():
    results = {"a": {"outcome": "applied"}, "b": {"outcome": "rejected", "reason": "not newer"},
               "c": {"outcome": "rejected", "reason": "not newer"},
               "d": {"outcome": "timeout", "reason": "no result within 5 s"}}
    assert outcome_summary(results) == ["outcomes: applied 1, rejected 2, timeout 1",
                                        "  rejected: 2 x not newer",
                                        "  timeout: 1 x no result within 5 s"]


def test_flash_all_over_two_hundred_kiosks_shows_progress_and_a_summary(
        tmp_path, fleet_broker, capsys):
    rng = np.random.default_rng(11)
    kiosks = [SimKiosk(p, fleet_broker.host, fleet_broker.port,
                       np.random.default_rng(rng.integers(2**32)), window_s=1.0)
              for p in plans(200, provision="mix")]
    fleet = Fleet(kiosks, windows=1, interval_s=1.0, status_s=30.0)
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, args=(stop,), kwargs={"linger": True},
                              daemon=True)
    runner.start()
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and sum(k.connected for k in kiosks) < 200:
            time.sleep(0.1)
        time.sleep(0.5)  # their retained statuses are on the broker
        bundle = tmp_path / "m.kbundle"
        bundle.write_bytes(bytes(range(256)) * 400)  # 100 KiB; simulated kiosks do not check it
        t = time.monotonic()
        rc = main(["flash", str(bundle), "--mqtt", f"{fleet_broker.host}:{fleet_broker.port}",
                   "--all", "--timeout", "8", "--discover-s", "1.5"])
        took = time.monotonic() - t
    finally:
        stop.set()
        runner.join(10)
    out = capsys.readouterr().out
    assert rc == 1, out  # not every kiosk applied it
    assert "found 200 device(s): berlin-mitte-01, " in out and " and 180 more" in out
    assert "sent 200/200 (100 KiB each)" in out
    progress = [line for line in out.splitlines() if "/200 answered: " in line]
    assert len(progress) >= 2 and any("working: " in line for line in progress), out
    assert "outcomes: applied 190, rejected 4, rolled_back 4, timeout 2" in out, out
    assert "  rejected: 4 x not newer than the installed 1.4.0" in out
    assert "190 of 200 device(s) applied the bundle; not applied: " in out
    # per-device lines only for what did not apply; no step lines for 200 kiosks
    assert out.count(": APPLIED") == 0 and out.count(": REJECTED") == 4
    assert not [line for line in out.splitlines() if line.endswith(": kat_passed")]
    assert len(out.splitlines()) < 60 and took < 25, (len(out.splitlines()), took)
    print(out)
