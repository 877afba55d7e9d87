"""The store interface and the SQL both databases share.

Exactly once from at-least-once: a window is inserted keyed on ``(device_id, seq)``; a second
delivery only counts in ``deliveries``. A batch is written in one transaction (the worker
acknowledges the broker after the commit, so a crash in between means a redelivery, which is
absorbed here). Per kiosk, the window, the kiosk's seq span and its gap rows change in that same
transaction, under a lock on the kiosk's row; a batch takes its kiosks in sorted order, so
concurrent workers never deadlock.
"""

from __future__ import annotations

import abc
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files

from fleet import gaps as gapmod
from fleet.messages import Availability, Rejected, Status, Window

SCHEMA = files("fleet.store").joinpath("schema.sql").read_text()
# the statements, comments stripped (they may hold semicolons)
STATEMENTS = [st.strip() for st in re.sub(r"--[^\n]*", "", SCHEMA).split(";") if st.strip()]

WINDOW_COLUMNS = ("device_id", "seq", "window_start", "window_end", "duration_s", "frames",
                  "model_version", "impressions", "visitors", "watchers", "dwell_s_mean",
                  "attention_s_mean", "suppressed", "gender", "age_groups", "emotions",
                  "female_share", "dominant_emotion", "received_at", "ingested_at", "clock_synced")
KIOSK_COLUMNS = ("device_id", "low_seq", "high_seq", "windows", "last_seen", "status_time",
                 "status_received_at", "status", "model_version", "app_version", "state",
                 "spool_depth", "spool_dropped", "availability", "availability_at")


# Columns added after the first release: (table, column, definition), added to older databases.
MIGRATIONS = [("windows", "clock_synced", "INTEGER NOT NULL DEFAULT 1")]


# Statuses are ordered by the kiosk's clock (two workers may store them out of order), unless
# the stored one arrived this much earlier: a kiosk whose clock was set back is not ignored.
STATUS_CLOCK_GRACE_S = 60.0


@dataclass
class WriteResult:
    """What one :meth:`Store.write` did."""

    new: int = 0
    duplicate: int = 0  # redeliveries (a backstop worker's extra copies are not counted)
    other: int = 0  # statuses, availabilities, rejected messages
    outcomes: list[str] = field(default_factory=list)  # per item: new, duplicate, stored


class Store(abc.ABC):
    """The database seam: write batches, read what a report needs."""

    @abc.abstractmethod
    def write(self, items: list) -> WriteResult:
        """Store Window, Status, Availability and Rejected items in one transaction.

        Raises:
            StoreUnavailable: the database cannot be reached; nothing was written, or the
                transaction's outcome is unknown (writing the same batch again is safe).
        """

    @abc.abstractmethod
    def windows(self, since: float, until: float) -> Iterator[dict]:
        """Windows with ``since <= window_start < until``, oldest first, breakdowns decoded."""

    @abc.abstractmethod
    def existing(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these ``(device_id, seq)`` windows are stored."""

    @abc.abstractmethod
    def kiosks(self) -> list[dict]:
        """Every kiosk's row (span, latest status, availability)."""

    @abc.abstractmethod
    def gaps(self) -> dict[str, list[gapmod.Gap]]:
        """Every kiosk's gap rows, by device id."""

    @abc.abstractmethod
    def totals(self) -> dict:
        """``rows``, ``deliveries`` and ``kiosks``: the load test's bookkeeping."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""


class SqlStore(Store):
    """The SQL both back-ends run; each sets the placeholder and its transaction calls."""

    PH = "?"  # placeholder
    LOCK = ""  # row lock suffix of the kiosk read (PostgreSQL: FOR UPDATE)
    COLUMNS_SQL = "SELECT name FROM pragma_table_info(?)"  # a table's column names

    def __init__(self, clock=time.time):
        self.clock = clock

    # -- what a back-end provides ----------------------------------------------------------
    @abc.abstractmethod
    def _transaction(self):
        """A context manager: one transaction, committed on success, rolled back on error."""

    @abc.abstractmethod
    def _execute(self, sql: str, params=()):
        """Run one statement (``?`` placeholders) inside the current transaction; a cursor."""

    @abc.abstractmethod
    def _query(self, sql: str, params=()) -> Iterator[tuple]:
        """Rows of a read-only query, streamed."""

    def _migrate(self) -> None:
        """Inside the schema transaction: add the columns an older database lacks."""
        for table, column, definition in MIGRATIONS:
            have = {r[0] for r in self._execute(self.COLUMNS_SQL, (table,)).fetchall()}
            if column not in have:
                self._execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def _sql(self, sql: str) -> str:
        return sql if self.PH == "?" else sql.replace("?", self.PH)

    # -- writing ---------------------------------------------------------------------------
    def write(self, items: list) -> WriteResult:
        result = WriteResult(outcomes=[""] * len(items))
        by_kiosk: dict[str, list[int]] = {}
        rejected = []
        for i, item in enumerate(items):
            if isinstance(item, Rejected):
                rejected.append(i)
            else:
                by_kiosk.setdefault(item.device_id, []).append(i)
        with self._transaction():
            now = self.clock()
            for device_id in sorted(by_kiosk):
                self._write_kiosk(device_id, [(i, items[i]) for i in by_kiosk[device_id]], now,
                                  result)
            for i in rejected:
                r = items[i]
                self._execute("INSERT INTO rejected VALUES (?, ?, ?, ?)",
                              (r.received_at, r.topic, r.reason,
                               r.payload[:4096].decode("utf-8", "replace")))
                result.outcomes[i], result.other = "stored", result.other + 1
        return result

    def _write_kiosk(self, device_id: str, items: list, now: float, result: WriteResult) -> None:
        self._execute("INSERT INTO kiosks (device_id) VALUES (?) ON CONFLICT (device_id) "
                      "DO NOTHING", (device_id,))
        (row,) = self._execute(
            f"SELECT low_seq, high_seq, last_seen, status_time, status_received_at, "
            f"availability_at FROM kiosks WHERE device_id = ?{self.LOCK}", (device_id,)).fetchall()
        span = gapmod.Span(row[0], row[1])
        last_seen, status_time, status_received, availability_at = row[2:6]
        new = 0
        windows = sorted((x for x in items if isinstance(x[1], Window)), key=lambda x: x[1].seq)
        for i, w in windows:
            if self._insert_window(w, now):
                span = self._track(device_id, span, w.seq, now)
                new += 1
                result.outcomes[i] = "new"
                last_seen = max(last_seen or 0.0, w.received_at)
            else:
                if not w.backstop:  # a redelivery, not a backstop worker's extra copy
                    self._execute("UPDATE windows SET deliveries = deliveries + 1 "
                                  "WHERE device_id = ? AND seq = ?", (device_id, w.seq))
                    result.duplicate += 1
                result.outcomes[i] = "duplicate"
        result.new += new
        sets = {"low_seq": span.low, "high_seq": span.high}
        statuses = [x for x in items if isinstance(x[1], Status)]
        for i, _ in statuses:
            result.outcomes[i] = "stored"
        if statuses:
            latest = max((s for _, s in statuses), key=lambda s: s.time)
            if status_time is None or latest.time > status_time \
                    or latest.received_at - status_received > STATUS_CLOCK_GRACE_S:
                f = latest.fields
                sets.update(status_time=latest.time, status_received_at=latest.received_at,
                            status=json.dumps(f),
                            model_version=f.get("model_version"), app_version=f.get("app_version"),
                            state=f.get("state"), spool_depth=f.get("spool_depth"),
                            spool_dropped=f.get("spool_dropped"))
            last_seen = max(last_seen or 0.0, latest.time)
        avails = [x for x in items if isinstance(x[1], Availability)]
        for i, _ in avails:
            result.outcomes[i] = "stored"
        if avails:
            last = max((a for _, a in avails), key=lambda a: a.received_at)
            if availability_at is None or last.received_at >= availability_at:
                sets.update(availability="online" if last.online else "offline",
                            availability_at=last.received_at)
        result.other += len(statuses) + len(avails)
        sets["last_seen"] = last_seen
        assign = ", ".join(f"{k} = ?" for k in sets)
        self._execute(f"UPDATE kiosks SET {assign}, windows = windows + ? WHERE device_id = ?",
                      (*sets.values(), new, device_id))

    def _insert_window(self, w: Window, now: float) -> bool:
        values = (w.device_id, w.seq, w.window_start, w.window_end, w.duration_s, w.frames,
                  w.model_version, w.impressions, w.visitors, w.watchers, w.dwell_s_mean,
                  w.attention_s_mean, int(w.suppressed),
                  *(None if m is None else json.dumps(m, separators=(",", ":"))
                    for m in (w.gender, w.age_groups, w.emotions)),
                  w.female_share, w.dominant_emotion, w.received_at, now, int(w.clock_synced))
        cur = self._execute(
            f"INSERT INTO windows ({', '.join(WINDOW_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(WINDOW_COLUMNS))}) ON CONFLICT (device_id, seq) DO NOTHING",
            values)
        return cur.rowcount == 1

    def _track(self, device_id: str, span: gapmod.Span, seq: int, now: float) -> gapmod.Span:
        near = []
        if span.low is not None and span.low <= seq <= span.high:
            near = [gapmod.Gap(*r) for r in self._execute(
                "SELECT first_seq, last_seq, detected_at, filled_at FROM gaps "
                "WHERE device_id = ? AND first_seq <= ? AND last_seq >= ?",
                (device_id, seq + 1, seq - 1)).fetchall()]
        change = gapmod.track(span, near, seq, now)
        for g in change.remove:
            self._execute("DELETE FROM gaps WHERE device_id = ? AND first_seq = ?",
                          (device_id, g.first))
        for g in change.add:
            self._execute("INSERT INTO gaps VALUES (?, ?, ?, ?, ?)",
                          (device_id, g.first, g.last, g.detected_at, g.filled_at))
        return change.span

    # -- reading ---------------------------------------------------------------------------
    def windows(self, since: float, until: float) -> Iterator[dict]:
        for row in self._query(f"SELECT {', '.join(WINDOW_COLUMNS)} FROM windows "
                               "WHERE window_start >= ? AND window_start < ? "
                               "ORDER BY window_start", (since, until)):
            w = dict(zip(WINDOW_COLUMNS, row, strict=True))
            w["suppressed"], w["clock_synced"] = bool(w["suppressed"]), bool(w["clock_synced"])
            for key in ("gender", "age_groups", "emotions"):
                w[key] = json.loads(w[key]) if w[key] else None
            yield w

    def existing(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self._query("SELECT device_id, seq FROM windows WHERE (device_id, seq) IN "
                               f"(VALUES {', '.join(['(?, ?)'] * len(chunk))})",
                               [x for key in chunk for x in key])
            out.update((d, int(s)) for d, s in rows)
        return out

    def kiosks(self) -> list[dict]:
        rows = self._query(f"SELECT {', '.join(KIOSK_COLUMNS)} FROM kiosks ORDER BY device_id")
        return [dict(zip(KIOSK_COLUMNS, r, strict=True)) for r in rows]

    def gaps(self) -> dict[str, list[gapmod.Gap]]:
        out: dict[str, list[gapmod.Gap]] = {}
        for device_id, *rest in self._query(
                "SELECT device_id, first_seq, last_seq, detected_at, filled_at FROM gaps "
                "ORDER BY device_id, first_seq"):
            out.setdefault(device_id, []).append(gapmod.Gap(*rest))
        return out

    def totals(self) -> dict:
        (rows, deliveries), = list(self._query(
            "SELECT COUNT(*), COALESCE(SUM(deliveries), 0) FROM windows"))
        (kiosks,), = list(self._query("SELECT COUNT(*) FROM kiosks"))
        (rejected,), = list(self._query("SELECT COUNT(*) FROM rejected"))
        return {"rows": int(rows), "deliveries": int(deliveries), "kiosks": int(kiosks),
                "rejected": int(rejected)}
