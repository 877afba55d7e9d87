"""The embedded store: one SQLite file, nothing to set up.

WAL mode lets a report read while workers write; writers take the file's lock in turn
(``BEGIN IMMEDIATE``), so several workers on one machine may share a file. Workers on several
machines need PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from fleet.errors import StoreUnavailable
from fleet.store.base import STATEMENTS, SqlStore


class SqliteStore(SqlStore):
    """A fleet database in the SQLite file ``path`` (its folder is created)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0, **kw):
        super().__init__(**kw)
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_s,
                                       check_same_thread=False)
            self._wal(time.monotonic() + busy_timeout_s)
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                for statement in STATEMENTS:
                    self._db.execute(statement)
                self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the fleet database {self.path}: {exc}") from exc

    def _wal(self, deadline: float) -> None:
        """Switch the file to WAL. Switching needs the file to itself and SQLite does not wait
        for it (workers opening a new file together would be refused "database is locked"), so
        this waits, up to the busy timeout, as every other statement here does."""
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _transaction(self):
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked past the busy timeout
            raise StoreUnavailable(f"{self.path}: {exc}") from exc
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            raise

    def _execute(self, sql: str, params=()):
        return self._db.execute(sql, params)

    def _query(self, sql: str, params=()):
        cur = self._db.execute(sql, params)
        while rows := cur.fetchmany(1000):
            yield from rows

    def close(self) -> None:
        self._db.close()
