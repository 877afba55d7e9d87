"""The report's numbers, from stored windows and kiosk rows (pure functions, no I/O).

Windows are counted in the hour of their ``window_start`` (UTC), so a window that arrived late
after an outage lands in its own hour. Shares (gender, age group, emotion) come only from
windows that were not suppressed for k-anonymity; how many windows and visitors were suppressed
is counted beside them so the report can say what the shares leave out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from device.types import EMOTIONS
from fleet.gaps import Gap

DWELL_BINS = (0, 2, 5, 10, 20, 40, 60)  # seconds; the last bin is open-ended
ATTENTION_BINS = (0, 1, 2, 5, 10, 20)
GENDERS = ("female", "male", "unknown")
STALE_S = 600.0  # a kiosk silent this long is not counted as online, whatever it last said


def default_site(device_id: str) -> str:
    """A kiosk's site by naming convention: its id without the last ``-part``
    (``berlin-mitte-03`` -> ``berlin-mitte``); an id without ``-`` is its own site."""
    return device_id.rsplit("-", 1)[0] if "-" in device_id else device_id


def _age_key(label: str) -> tuple[int, str]:
    """Age groups in age order ("0-2" < "15-24" < "60+"), whatever order they were seen in."""
    digits = "".join(c for c in label.split("-")[0] if c.isdigit())
    return (int(digits) if digits else 10**6, label)


def bin_index(value: float, edges: tuple) -> int:
    """The histogram bin of ``value``: ``edges[i] <= value < edges[i + 1]``; the last is open."""
    for i in range(len(edges) - 1, -1, -1):
        if value >= edges[i]:
            return i
    return 0


def bin_labels(edges: tuple, unit: str = "s") -> list[str]:
    return [f"{a}-{b} {unit}" for a, b in zip(edges, edges[1:], strict=False)] + \
        [f"{edges[-1]}+ {unit}"]


@dataclass
class Summary:
    """Everything the report shows about the audience in one period."""

    since: float
    until: float
    # site -> hour (epoch s) -> [visitors, watchers, windows]
    hourly: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    windows: int = 0
    suppressed_windows: int = 0
    impressions: int = 0
    visitors: int = 0
    watchers: int = 0
    suppressed_visitors: int = 0
    shares: dict[str, Counter] = field(
        default_factory=lambda: {"gender": Counter(), "age_groups": Counter(),
                                 "emotions": Counter()})
    age_order: list[str] = field(default_factory=list)
    dwell: list[int] = field(default_factory=lambda: [0] * len(DWELL_BINS))
    attention: list[int] = field(default_factory=lambda: [0] * len(ATTENTION_BINS))
    kiosks: set[str] = field(default_factory=set)
    site_kiosks: dict[str, set[str]] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        return sorted(self.hourly)

    @property
    def hours(self) -> list[int]:
        """Every hour (epoch seconds at its start) of the period, empty ones included."""
        first = int(self.since // 3600) * 3600
        return list(range(first, int(self.until), 3600))

    @property
    def suppressed_share(self) -> float | None:
        """Percent of visitors in suppressed windows (None without visitors)."""
        return 100.0 * self.suppressed_visitors / self.visitors if self.visitors else None

    def labels(self, kind: str) -> list[str]:
        """The labels of one breakdown, in reading order, "unknown" last."""
        if kind == "gender":
            return list(GENDERS)
        if kind == "emotions":
            return [*EMOTIONS, "unknown"]
        return sorted((a for a in self.age_order if a != "unknown"), key=_age_key) + ["unknown"]

    def share_rows(self, kind: str) -> list[tuple[str, int, float]]:
        """``(label, visitors, percent)`` over the unsuppressed windows."""
        counts = self.shares[kind]
        total = sum(counts.values())
        return [(label, counts[label], 100.0 * counts[label] / total if total else 0.0)
                for label in self.labels(kind)]


def summarize(windows: Iterable[dict], since: float, until: float,
              site_of: Callable[[str], str] = default_site) -> Summary:
    """Fold stored windows (``Store.windows`` rows) into a :class:`Summary`."""
    s = Summary(since, until)
    for w in windows:
        site = site_of(w["device_id"])
        hour = int(w["window_start"] // 3600) * 3600
        cell = s.hourly.setdefault(site, {}).setdefault(hour, [0, 0, 0])
        v = int(w["visitors"])
        cell[0] += v
        cell[1] += int(w["watchers"])
        cell[2] += 1
        s.windows += 1
        s.kiosks.add(w["device_id"])
        s.site_kiosks.setdefault(site, set()).add(w["device_id"])
        s.impressions += int(w["impressions"])
        s.visitors += v
        s.watchers += int(w["watchers"])
        if w["suppressed"]:
            s.suppressed_windows += 1
            s.suppressed_visitors += v
        else:
            for kind in ("gender", "age_groups", "emotions"):
                s.shares[kind].update({k: n for k, n in (w[kind] or {}).items() if n})
            for label in w["age_groups"] or {}:
                if label not in s.age_order:
                    s.age_order.append(label)
        if v and w["dwell_s_mean"] is not None:
            s.dwell[bin_index(w["dwell_s_mean"], DWELL_BINS)] += v
        if v and w["attention_s_mean"] is not None:
            s.attention[bin_index(w["attention_s_mean"], ATTENTION_BINS)] += v
    return s


def health(kiosks: list[dict], gaps: dict[str, list[Gap]], now: float,
           site_of: Callable[[str], str] = default_site, stale_s: float = STALE_S) -> list[dict]:
    """One row per kiosk: online, last seen, versions, spool, gaps.

    ``online`` is what the kiosk's retained availability says, and only while its last status
    or window is younger than ``stale_s`` (a broker that lost the last will cannot keep a dead
    kiosk online); ``silent`` marks a kiosk that says online but was not heard from.
    """
    rows = []
    for k in kiosks:
        g = gaps.get(k["device_id"], [])
        open_gaps = [x for x in g if x.open]
        said_online = k.get("availability") == "online"
        fresh = k.get("last_seen") is not None and now - k["last_seen"] <= stale_s
        rows.append({
            "device_id": k["device_id"], "site": site_of(k["device_id"]),
            "online": "online" if said_online and fresh else
                      ("silent" if said_online else (k.get("availability") or "unknown")),
            "last_seen": k.get("last_seen"), "model_version": k.get("model_version") or "",
            "app_version": k.get("app_version") or "", "state": k.get("state") or "",
            "spool_depth": k.get("spool_depth"), "spool_dropped": k.get("spool_dropped"),
            "windows": k.get("windows") or 0, "last_seq": k.get("high_seq"),
            "missing": sum(x.size for x in open_gaps),
            "open_gaps": [(x.first, x.last) for x in open_gaps],
            "filled_gaps": len(g) - len(open_gaps)})
    return sorted(rows, key=lambda r: (r["site"], r["device_id"]))
