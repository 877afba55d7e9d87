"""The on-device outbox: every audience message is stored here before it is published.

A row leaves the spool only when the broker has acknowledged it (QoS 1 PUBACK), so neither a
broker outage nor a power cut loses a window. The window sequence number is allocated in the same
transaction that stores the message, so ``seq`` keeps counting across restarts. SQLite runs in WAL
mode with ``synchronous=FULL``: a committed row survives a power cut.

Rows older than ``max_age_s`` are dropped (an appliance that is offline for weeks must not fill
its SD card), and so are the oldest rows once the stored payloads pass ``max_bytes`` or the card
itself is full (SQLite's "database or disk is full"): the newest windows are the ones kept. How
many were dropped is persisted and reported in the status message (``spool_dropped``, of which
``spool_dropped_full`` for space).

Windows closed before the wall clock was trusted (``device.clock``) are stored with their
monotonic end time and the boot it belongs to (table ``unsynced``). While :attr:`Spool.hold_boot`
names that boot they are held back from the broker; :meth:`Spool.restamp` gives them wall-clock
times once the clock is trusted. Their ``created`` time is not believed, so age never drops them
(the byte bound does).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.errors import KioskError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL          -- wall-clock seconds, compared with max_age_s
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('dropped', 0);
-- windows closed before the wall clock was trusted: monotonic end time, on the boot named
CREATE TABLE IF NOT EXISTS unsynced (seq INTEGER PRIMARY KEY, boot TEXT NOT NULL,
                                     mono_end REAL NOT NULL);
-- dropped_full: of dropped, those for space; last_trusted: latest trusted stamp (epoch s)
INSERT OR IGNORE INTO meta VALUES ('dropped_full', 0), ('last_trusted', 0);
"""
FREE_FRACTION = 0.1  # a full card: drop this share of the oldest rows (at least one) and retry
# Room set aside next to the database (``<spool>.reserve``): on a full card SQLite needs space to
# delete rows and checkpoint its WAL, so the reserve is given up first and made again once the
# card has room.
RESERVE_BYTES = 1 << 20
WAL_PAGES = 64  # checkpoint the WAL into the database every 64 pages (256 kB)


class SpoolError(KioskError, OSError):
    """The spool database cannot be opened or written."""


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    topic: str
    payload: str
    created: float


class Spool:
    """A durable FIFO of outgoing messages keyed by ``seq``. Safe to share between threads.

    Args:
        path: the SQLite file (its folder is created).
        max_age_s: messages older than this are dropped by :meth:`prune` and counted.
        clock: wall clock (seconds since the epoch); a seam for tests.
        max_bytes: payload bytes kept at most (None: no bound); the oldest rows go first.
    """

    def __init__(self, path: str | Path, max_age_s: float = 7 * 86400.0,
                 clock: Callable[[], float] = time.time, max_bytes: int | None = None):
        self.path, self.max_age_s, self.clock = Path(path), max_age_s, clock
        self.max_bytes = max_bytes
        self._full_cap: int | None = None  # payload bytes allowed since the card was full
        self.hold_boot: str | None = None  # unsynced windows of this boot wait for restamp()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # a small WAL, truncated after each checkpoint: little of the card goes to it
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={RESERVE_BYTES}")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        self._make_reserve()

    def _make_reserve(self) -> None:
        """Set the reserve aside if it is missing and the card has room for it (three times
        over); from then on the spool may grow to ``max_bytes`` again."""
        if self.reserve.exists() or str(self.path) == ":memory:":
            return
        try:
            if shutil.disk_usage(self.reserve.parent).free < 3 * RESERVE_BYTES:
                return
            with open(self.reserve, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)
        except OSError:
            self.reserve.unlink(missing_ok=True)
            return
        self._full_cap = None

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    def append(self, topic: str, make_payload: Callable[..., str],
               unsynced: tuple[str, float] | None = None, trusted_at: float | None = None,
               add: dict[str, int] | None = None) -> int:
        """Allocate the next ``seq``, store ``make_payload(seq)`` under it and return the seq.

        The row is committed (and fsynced) before this returns. A full card drops the oldest
        rows (counted) and tries once more before giving up with :class:`SpoolError`.

        Args:
            add: adds to persisted running totals (kept beside ``next_seq``, in the same
                transaction, so a total and the windows it counts never disagree);
                ``make_payload(seq, totals)`` then gets their new values.
            unsynced: ``(boot id, monotonic end)`` of a window stamped before the wall clock was
                trusted (see :meth:`restamp`).
            trusted_at: the window's trusted wall-clock stamp (remembered: see
                :attr:`last_trusted`).
        """
        with self._lock:
            try:
                return self._append(topic, make_payload, unsynced, trusted_at, add)
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                    raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc
                first = exc
            try:
                self._free_space()
                return self._append(topic, make_payload, unsynced, trusted_at, add)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot write to the spool {self.path}: {first} (and after "
                                 f"dropping its oldest windows: {exc})") from exc

    def _append(self, topic, make_payload, unsynced, trusted_at, add=None) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._meta("next_seq")
            args = (seq, self._add_totals(add)) if add is not None else (seq,)
            self._db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?)",
                             (seq, topic, make_payload(*args), self.clock()))
            self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
            if unsynced is not None:
                self._db.execute("INSERT INTO unsynced VALUES (?, ?, ?)", (seq, *unsynced))
            if trusted_at is not None:
                self._db.execute("UPDATE meta SET value=MAX(value, ?) WHERE key='last_trusted'",
                                 (int(trusted_at),))
            bound = min(b for b in (self.max_bytes, self._full_cap, float("inf")) if b is not None)
            if bound != float("inf"):
                self._trim(bound)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return seq

    def _trim(self, max_bytes: int) -> None:
        """Inside a transaction: drop the oldest rows (never the newest) to fit ``max_bytes``."""
        rows = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq").fetchall()
        excess = sum(size for _, size in rows) - max_bytes
        cut = []
        for seq, size in rows[:-1]:
            if excess <= 0:
                break
            cut.append(seq)
            excess -= size
        if cut:
            self._drop_upto(cut[-1], len(cut))

    def _drop_upto(self, seq: int, n: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
        self._db.execute("DELETE FROM unsynced WHERE seq <= ?", (seq,))
        self._db.execute("UPDATE meta SET value=value+? WHERE key IN ('dropped', 'dropped_full')",
                         (n,))

    def _free_space(self) -> None:
        """The card is full: give up the reserve, drop the oldest share of the rows and stop
        growing (each new row then takes the pages of the oldest), and shrink the WAL."""
        self.reserve.unlink(missing_ok=True)
        (size,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) "
                                   "FROM outbox").fetchone()
        self._full_cap = int(size * (1 - FREE_FRACTION))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._trim(self._full_cap)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _add_totals(self, add: dict[str, int]) -> dict[str, int]:
        """Inside a transaction: add to the running totals in ``meta``; return the new values."""
        for key, n in add.items():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", ("total_" + key,))
            self._db.execute("UPDATE meta SET value=value+? WHERE key=?", (int(n), "total_" + key))
        return {key: self._meta("total_" + key) for key in add}

    def pending(self, after: int = 0, limit: int = 100) -> list[SpooledMessage]:
        """Unacknowledged messages with ``seq > after``, oldest first (held ones left out)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, created FROM outbox WHERE seq > ? AND seq NOT IN "
                "(SELECT seq FROM unsynced WHERE boot = ?) ORDER BY seq LIMIT ?",
                (after, self.hold_boot or "", limit)).fetchall()
        return [SpooledMessage(*r) for r in rows]

    def ack(self, seq: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq=?", (seq,))
            self._db.execute("DELETE FROM unsynced WHERE seq=?", (seq,))

    def restamp(self, boot: str, offset: float, rewrite: Callable[[str, float], str]) -> int:
        """Give this boot's unsynced windows wall-clock times, now that the clock is trusted.

        Each window ended at wall-clock ``monotonic end + offset``; ``rewrite(payload, end)``
        returns its payload stamped so. Returns how many windows were restamped.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._restamp(boot, offset, rewrite)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return n

    def _restamp(self, boot: str, offset: float, rewrite) -> int:
        rows = self._db.execute(
            "SELECT o.seq, o.payload, u.mono_end FROM outbox o JOIN unsynced u USING (seq) "
            "WHERE u.boot = ?", (boot,)).fetchall()
        for seq, payload, mono_end in rows:
            end = mono_end + offset
            self._db.execute("UPDATE outbox SET payload=?, created=? WHERE seq=?",
                             (rewrite(payload, end), end, seq))
        self._db.execute("DELETE FROM unsynced WHERE boot = ?", (boot,))
        return len(rows)

    def prune(self) -> int:
        """Drop messages older than ``max_age_s``; return how many (added to :attr:`dropped`).

        Also sets the reserve aside again once the card has room.
        """
        cutoff = self.clock() - self.max_age_s
        with self._lock:
            self._make_reserve()
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("DELETE FROM outbox WHERE created < ? AND seq NOT IN "
                                 "(SELECT seq FROM unsynced)", (cutoff,)).rowcount
            if n:
                self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (n,))
            self._db.execute("COMMIT")
        return n

    @property
    def depth(self) -> int:
        """How many messages wait for the broker."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    @property
    def dropped(self) -> int:
        """How many messages were dropped for age or space, ever (persisted)."""
        with self._lock:
            return self._meta("dropped")

    @property
    def dropped_full(self) -> int:
        """Of :attr:`dropped`, those dropped for space (``max_bytes`` or a full card)."""
        with self._lock:
            return self._meta("dropped_full")

    @property
    def bytes(self) -> int:
        """Payload bytes waiting (what ``max_bytes`` bounds)."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) "
                                    "FROM outbox").fetchone()[0]

    @property
    def last_trusted(self) -> int:
        """The latest trusted wall-clock stamp of any window (epoch seconds; 0: none yet)."""
        with self._lock:
            return self._meta("last_trusted")

    @property
    def next_seq(self) -> int:
        with self._lock:
            return self._meta("next_seq")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
