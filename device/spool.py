"""The on-device outbox: every audience message is stored here before it is published.

A row leaves the spool only when the broker has acknowledged it (QoS 1 PUBACK), so neither a
broker outage nor a power cut loses a window. The window sequence number is allocated in the same
transaction that stores the message, so ``seq`` keeps counting across restarts. SQLite runs in WAL
mode with ``synchronous=FULL``: a committed row survives a power cut.

Rows older than ``max_age_s`` are dropped (an appliance that is offline for weeks must not fill
its SD card); how many were dropped is persisted and reported in the status message.
"""

from __future__ import annotations

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
"""


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
    """

    def __init__(self, path: str | Path, max_age_s: float = 7 * 86400.0,
                 clock: Callable[[], float] = time.time):
        self.path, self.max_age_s, self.clock = Path(path), max_age_s, clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    def append(self, topic: str, make_payload: Callable[..., str],
               add: dict[str, int] | None = None) -> int:
        """Allocate the next ``seq``, store ``make_payload(seq)`` under it and return the seq.

        The row is committed (and fsynced) before this returns. ``add`` adds to persisted running
        totals (kept beside ``next_seq``, in the same transaction, so a total and the windows it
        counts never disagree); ``make_payload(seq, totals)`` then gets their new values.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._meta("next_seq")
                args = (seq, self._add_totals(add)) if add is not None else (seq,)
                self._db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?)",
                                 (seq, topic, make_payload(*args), self.clock()))
                self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc
                raise
            return seq

    def _add_totals(self, add: dict[str, int]) -> dict[str, int]:
        """Inside a transaction: add to the running totals in ``meta``; return the new values."""
        for key, n in add.items():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", ("total_" + key,))
            self._db.execute("UPDATE meta SET value=value+? WHERE key=?", (int(n), "total_" + key))
        return {key: self._meta("total_" + key) for key in add}

    def pending(self, after: int = 0, limit: int = 100) -> list[SpooledMessage]:
        """Unacknowledged messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, created FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        return [SpooledMessage(*r) for r in rows]

    def ack(self, seq: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    def prune(self) -> int:
        """Drop messages older than ``max_age_s``; return how many (added to :attr:`dropped`)."""
        cutoff = self.clock() - self.max_age_s
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,)).rowcount
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
        """How many messages were dropped for age, ever (persisted)."""
        with self._lock:
            return self._meta("dropped")

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
