"""The multi-writer store: PostgreSQL (psycopg 3, the ``fleet`` extra).

Ingest workers on several machines write to one database; each batch is one transaction that
locks the rows of the kiosks it touches (in sorted order, so workers never deadlock). A lost
connection (the server restarting, the network) raises :class:`StoreUnavailable` and the next
call connects again, so a worker rides out a database restart by retrying its batch.
"""

from __future__ import annotations

from contextlib import contextmanager

import psycopg

from fleet.errors import StoreUnavailable
from fleet.store.base import STATEMENTS, SqlStore

SCHEMA_LOCK = 0x6B696F736B  # advisory lock: workers starting together create the tables once


class PostgresStore(SqlStore):
    """A fleet database at a ``postgresql://`` URL (libpq's connection string)."""

    PH = "%s"
    LOCK = " FOR UPDATE"
    COLUMNS_SQL = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"

    def __init__(self, url: str, connect_timeout_s: int = 5, **kw):
        super().__init__(**kw)
        self.url, self.connect_timeout_s = url, connect_timeout_s
        self._conn: psycopg.Connection | None = None
        with self._transaction():
            self._execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in STATEMENTS:
                self._execute(statement)
            self._migrate()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True,
                                             connect_timeout=self.connect_timeout_s)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot reach the fleet database: {exc}") from exc
        return self._conn

    @contextmanager
    def _transaction(self):
        conn = self._connection()
        try:
            with conn.transaction():
                self._cur = conn.cursor()
                yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop()
            raise StoreUnavailable(f"the fleet database went away: {exc}") from exc

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def _execute(self, sql: str, params=()):
        self._cur.execute(self._sql(sql), params)
        return self._cur

    def _query(self, sql: str, params=()):
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor(name="fleet_read") as cur:
                cur.itersize = 2000
                cur.execute(self._sql(sql), params)
                yield from cur
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop()
            raise StoreUnavailable(f"the fleet database went away: {exc}") from exc

    def close(self) -> None:
        self._drop()
