"""``kiosk-fleet report``: numbers from stored windows, a self-contained HTML page and CSV files,
looked at in headless Chromium."""

from __future__ import annotations

import csv
import re
import time

import cv2
import numpy as np
import pytest

from fleet.cli import main
from fleet.messages import parse
from fleet.report_data import default_site, health, summarize
from fleet.store import open_store
from tests.fleet_fixtures import window_payload
from tools.fleet_services import screenshot
from tools.fleet_sim import history, plans

END = 1796428800.0  # 2026-12-05 00:00 UTC
START = END - 2 * 86400


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory):
    """Two days of eight simulated kiosks at four sites, 5-minute windows, plus history."""
    path = tmp_path_factory.mktemp("report") / "fleet.db"
    store = open_store(f"sqlite:{path}", clock=lambda: END)
    rng = np.random.default_rng(5)
    for p in plans(8):
        store.write([parse(t, body, END) for t, body in
                     history(p, START, 2 * 288, 300.0, np.random.default_rng(rng.integers(2**31)))])
    # a kiosk whose windows 3..4 never came, one that says online, one offline
    store.write([parse("kiosk/berlin-mitte-01/availability", b"online", END),
                 parse("kiosk/cologne-dom-01/availability", b"offline", END)])
    store.write([parse("kiosk/leipzig-9/audience", window_payload("leipzig-9", s, START + 3600 * s),
                       END) for s in (1, 2, 5)])
    store.close()
    return f"sqlite:{path}"


def test_summary_counts_windows_in_their_hour_and_shares_without_suppressed_ones():
    rows = [{"device_id": "a-1", "window_start": 7200.0 + 60 * i, "visitors": 4, "watchers": 1,
             "impressions": 5, "suppressed": False, "dwell_s_mean": 6.0, "attention_s_mean": 1.5,
             "gender": {"female": 3, "male": 1, "unknown": 0},
             "age_groups": {"25-37": 4, "unknown": 0}, "emotions": {"happy": 4}} for i in range(3)]
    rows.append({"device_id": "a-2", "window_start": 3600.0, "visitors": 2, "watchers": 2,
                 "impressions": 2, "suppressed": True, "dwell_s_mean": 30.0,
                 "attention_s_mean": 12.0, "gender": None, "age_groups": None, "emotions": None})
    s = summarize(rows, 0.0, 4 * 3600.0)
    assert s.hourly == {"a": {7200: [12, 3, 3], 3600: [2, 2, 1]}}
    assert s.visitors == 14 and s.suppressed_visitors == 2
    assert s.suppressed_share == pytest.approx(100 * 2 / 14)
    assert s.share_rows("gender")[0] == ("female", 9, 75.0)  # the suppressed window is left out
    assert s.dwell == [0, 0, 12, 0, 2, 0, 0] and len(s.hours) == 4
    s.age_order = ["60+", "15-24", "unknown", "3-7"]
    assert s.labels("age_groups") == ["3-7", "15-24", "60+", "unknown"]
    assert default_site("berlin-mitte-03") == "berlin-mitte" and default_site("lobby") == "lobby"


def test_health_says_online_only_for_kiosks_heard_from():
    kiosks = [{"device_id": "a-1", "availability": "online", "last_seen": 1000.0},
              {"device_id": "a-2", "availability": "online", "last_seen": 0.0},
              {"device_id": "a-3", "availability": "offline", "last_seen": 1000.0}]
    rows = health(kiosks, {}, now=1100.0)
    assert [r["online"] for r in rows] == ["online", "silent", "offline"]


def test_report_page_and_csv(fleet_db, tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--db", fleet_db, "--since", "2026-12-03", "--until", "2026-12-05",
                 "--out", str(out), "--title", "Test fleet"]) == 0
    html = (out / "report.html").read_text()
    assert "<script" not in html and not re.search(r"(src|href)=\"https?:", html)  # offline
    for text in ("Test fleet", "berlin-mitte (2 kiosks)", "munich-airport", "Dominant emotion",
                 "Age group", "suppressed", "Fleet health", "leipzig-9", "3–4"):
        assert text in html, text
    assert html.count("<svg") == 4 + 1 + 3 + 2  # 4 sites (+ leipzig), 3 shares, 2 histograms
    with open(out / "hourly.csv") as f:
        hourly = list(csv.DictReader(f))
    store = open_store(fleet_db)
    visitors = sum(w["visitors"] for w in store.windows(START, END))
    store.close()
    assert sum(int(r["visitors"]) for r in hourly) == visitors
    assert {r["site"] for r in hourly} >= {"berlin-mitte", "cologne-dom", "hamburg-hbf",
                                            "munich-airport"}
    with open(out / "kiosks.csv") as f:
        kiosks = {r["device_id"]: r for r in csv.DictReader(f)}
    assert kiosks["leipzig-9"]["missing"] == "2" and kiosks["leipzig-9"]["open_gaps"] == "3-4"
    assert kiosks["cologne-dom-01"]["online"] == "offline"
    with open(out / "shares.csv") as f:
        shares = list(csv.DictReader(f))
    for kind in ("gender", "age_groups", "emotions"):
        total = sum(float(r["percent"]) for r in shares if r["breakdown"] == kind)
        assert total == pytest.approx(100.0, abs=0.1), kind


def test_the_page_renders_in_chromium(fleet_db, tmp_path):
    """Headless Chromium draws the page: charts, bars and the table, not a blank or error."""
    out = tmp_path / "report"
    assert main(["report", "--db", fleet_db, "--since", "2026-12-03", "--until", "2026-12-05",
                 "--out", str(out)]) == 0
    t = time.monotonic()
    png = screenshot(out / "report.html", tmp_path / "report.png", 1240, 3000)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1240 and 1500 < img.shape[0] < 3000
    assert time.monotonic() - t < 60
    # the chart colours are on the page: visitors (light blue) and watchers (dark blue)
    for bgr in ((0xe1, 0xca, 0x9e), (0xa3, 0x6c, 0x2b)):
        assert (np.abs(img.astype(int) - bgr).sum(axis=2) < 10).sum() > 2000, bgr
    (tmp_path / "keep").mkdir()
    cv2.imwrite(str(tmp_path / "keep" / "report.png"), img)


def test_report_rejects_an_empty_period(fleet_db, tmp_path):
    with pytest.raises(SystemExit):
        main(["report", "--db", fleet_db, "--since", "2026-12-05", "--until", "2026-12-03",
              "--out", str(tmp_path)])


def test_gaps_command_lists_missing_windows(fleet_db, capsys):
    assert main(["gaps", "--db", fleet_db]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("leipzig-9"))
    assert line.split()[1:4] == ["5", "2", "3-4"], line
