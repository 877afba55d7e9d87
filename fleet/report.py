"""``kiosk-fleet report``: one self-contained HTML page and CSV files for a period.

The page has no scripts and fetches nothing (inline CSS and SVG), so it can be mailed, archived
or opened offline. The CSV files hold the same numbers for a spreadsheet:

* ``hourly.csv``: site, hour (UTC), visitors, watchers, windows
* ``shares.csv``: breakdown, label, visitors, percent (unsuppressed windows only)
* ``distributions.csv``: dwell / attention bin, visitors
* ``kiosks.csv``: the fleet health table
"""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from fleet import svg
from fleet.report_data import (
    ATTENTION_BINS,
    DWELL_BINS,
    Summary,
    bin_labels,
    default_site,
    health,
    summarize,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;background:#f4f5f7;color:#222}
main{max-width:1160px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
h3{font-size:14px;margin:14px 0 4px;color:#444}
.sub{color:#666;margin:0 0 16px}.note{color:#666;font-size:12.5px;margin:4px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card b{display:block;font-size:22px}.card span{color:#666;font-size:12.5px}
section{background:#fff;border-radius:8px;padding:8px 20px 16px;margin-top:16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.two{display:flex;gap:20px;flex-wrap:wrap}
.key{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:-1px}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#555}
svg text.inbar{fill:#fff;font-weight:600}svg text.legend{fill:#333;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:4px 6px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{color:#555;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pill{border-radius:9px;padding:1px 8px;font-size:12px}
.online{background:#dff3e3;color:#1d6b34}.offline{background:#fde2e1;color:#a3231f}
.silent,.unknown{background:#fff1d6;color:#8a5a00}.bad{color:#a3231f;font-weight:600}
"""


def iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return "just now"


def make_report(store, since: float, until: float, out_dir: str | Path,
                site_of=default_site, title: str = "Audience report",
                now: float | None = None) -> Path:
    """Read the period from ``store`` and write ``report.html`` and the CSV files.

    Returns:
        the HTML file's path.
    """
    now = time.time() if now is None else now
    summary = summarize(store.windows(since, until), since, until, site_of)
    rows = health(store.kiosks(), store.gaps(), now, site_of)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out, summary, rows)
    page = out / "report.html"
    page.write_text(render(summary, rows, title, now), encoding="utf-8")
    return page


def write_csv(out: Path, s: Summary, rows: list[dict]) -> None:
    def table(name, header, body):
        with open(out / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)

    table("hourly.csv", ["site", "hour_utc", "visitors", "watchers", "windows"],
          [[site, iso(h).replace(" UTC", ""), *s.hourly[site][h]]
           for site in s.sites for h in sorted(s.hourly[site])])
    table("shares.csv", ["breakdown", "label", "visitors", "percent"],
          [[kind, label, n, f"{pct:.2f}"] for kind in ("gender", "age_groups", "emotions")
           for label, n, pct in s.share_rows(kind)])
    table("distributions.csv", ["distribution", "bin", "visitors"],
          [["dwell", label, v] for label, v in zip(bin_labels(DWELL_BINS), s.dwell,
                                                     strict=True)]
          + [["attention", label, v] for label, v in zip(bin_labels(ATTENTION_BINS),
                                                         s.attention, strict=True)])
    keys = ["device_id", "site", "online", "last_seen", "model_version", "app_version", "state",
            "spool_depth", "spool_dropped", "windows", "last_seq", "missing", "filled_gaps"]
    table("kiosks.csv", [*keys, "open_gaps"],
          [[iso(r[k]) if k == "last_seen" else r[k] for k in keys]
           + [" ".join(f"{a}-{b}" for a, b in r["open_gaps"])] for r in rows])


def _cards(s: Summary, rows: list[dict]) -> str:
    online = sum(r["online"] == "online" for r in rows)
    missing = sum(r["missing"] for r in rows)
    watch = f"{100 * s.watchers / s.visitors:.0f} % of visitors" if s.visitors else ""
    supp = s.suppressed_share
    cards = [(f"{s.visitors:,}", "visitors"), (f"{s.watchers:,}", f"watchers {watch}"),
             (f"{s.impressions:,}", "impressions (any dwell)"),
             (f"{s.windows:,}", f"windows from {len(s.kiosks)} kiosks at {len(s.sites)} sites"),
             ("–" if supp is None else f"{supp:.1f} %", "of visitors in suppressed windows"),
             (f"{online} / {len(rows)}", "kiosks online now"),
             (f"{missing:,}", "windows missing (open gaps)")]
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{v}</b><span>{escape(label)}</span></div>' for v, label in cards) \
        + "</div>"


def _hourly(s: Summary) -> str:
    hours = s.hours
    parts = ['<section><h2>Visitors and watchers per hour</h2><p class="note">'
             f'<span class="key" style="background:{svg.VISITORS}"></span>visitors'
             f'<span class="key" style="background:{svg.WATCHERS}"></span>watchers (visitors '
             'who looked at the screen); hours in UTC, each window counted in the hour it '
             'started, also when it arrived late.</p>']
    for site in s.sites:
        cells = s.hourly[site]
        v = [cells.get(h, [0, 0, 0])[0] for h in hours]
        w = [cells.get(h, [0, 0, 0])[1] for h in hours]
        n = len(s.site_kiosks[site])
        parts.append(f"<h3>{escape(site)} ({n} kiosk{'s' if n != 1 else ''}): {sum(v):,} "
                     f"visitors, {sum(w):,} watchers</h3>"
                     + svg.hourly_chart(hours, v, w))
    if not s.sites:
        parts.append("<p>No windows in this period.</p>")
    return "".join(parts) + "</section>"


def _shares(s: Summary) -> str:
    shown = s.windows - s.suppressed_windows
    supp = s.suppressed_share
    parts = ['<section><h2>Who came</h2><p class="note">Shares of visitors in the '
             f'{shown:,} windows that were not suppressed. {s.suppressed_windows:,} of '
             f'{s.windows:,} windows ({"–" if supp is None else f"{supp:.1f} %"} of visitors) '
             'had fewer visitors than the kiosks\' k-anonymity threshold and carry no '
             'breakdown, so they are left out here; "unknown" is a visitor the kiosk could '
             'not classify with confidence (for gender, also a small child: the kiosks do '
             'not tell the gender of faces younger than their model\'s minimum age).</p>']
    for kind, title in (("gender", "Gender"), ("age_groups", "Age group"),
                        ("emotions", "Dominant emotion")):
        parts.append(f"<h3>{title}</h3>" + svg.share_bar(s.share_rows(kind)))
    return "".join(parts) + "</section>"


def _distributions(s: Summary) -> str:
    return ('<section><h2>How long they stayed and looked</h2><p class="note">Visitors by '
            "their window's mean dwell time (in front of the screen) and mean attention time "
            "(facing it); kiosks report means per window, not per person.</p>"
            '<div class="two"><div><h3>Dwell</h3>'
            + svg.histogram(bin_labels(DWELL_BINS), s.dwell, "#4e79a7")
            + "</div><div><h3>Attention</h3>"
            + svg.histogram(bin_labels(ATTENTION_BINS), s.attention, "#59a14f")
            + "</div></div></section>")


def _health(rows: list[dict], now: float) -> str:
    head = ("kiosk", "site", "online", "last seen", "models", "app", "state", "spool backlog",
            "dropped", "windows", "last seq", "missing (open gaps)", "filled gaps")
    body = []
    for r in rows:
        gaps = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in r["open_gaps"][:3])
        if len(r["open_gaps"]) > 3:
            gaps += ", …"
        missing = f'<span class="bad">{r["missing"]}</span> ({gaps})' if r["missing"] else "0"
        backlog, dropped = r["spool_depth"], r["spool_dropped"]
        cells = [escape(r["device_id"]), escape(r["site"]),
                 f'<span class="pill {r["online"]}">{r["online"]}</span>',
                 f'<span title="{iso(r["last_seen"])}">{ago(r["last_seen"], now)}</span>',
                 escape(r["model_version"]), escape(r["app_version"]), escape(r["state"]),
                 "" if backlog is None else (f'<span class="bad">{backlog}</span>' if backlog
                                             else "0"),
                 "" if dropped is None else (f'<span class="bad">{dropped}</span>' if dropped
                                             else "0"),
                 f'{r["windows"]:,}', "" if r["last_seq"] is None else str(r["last_seq"]),
                 missing, str(r["filled_gaps"])]
        numeric = {7, 8, 9, 10}
        body.append("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    return ('<section><h2>Fleet health</h2><p class="note">Now, from each kiosk\'s latest '
            'status and availability. Spool backlog: windows waiting on the kiosk for its '
            'broker; dropped: windows its spool gave up on (too old); missing: window numbers '
            'not in the database; filled gaps: ranges that arrived late and are complete.</p>'
            "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table></section>")


def render(s: Summary, rows: list[dict], title: str, now: float) -> str:
    """The whole page."""
    period = f"{iso(s.since)} to {iso(s.until)}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{period} · made {iso(now)} · "
            "anonymous per-window aggregates from the kiosks; no images or per-person "
            "records exist</p>"
            + _cards(s, rows) + _hourly(s) + _shares(s) + _distributions(s) + _health(rows, now)
            + "</main></body></html>")
