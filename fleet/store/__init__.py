"""Where the fleet's messages are kept: one small interface, two databases.

``open_store("sqlite:fleet.db")`` is the embedded default (nothing to set up; several workers on
one machine may share the file); ``open_store("postgresql://user@host/db")`` is the multi-writer
store for workers on several machines. Both hold the same tables (``fleet/store/schema.sql``).
"""

from __future__ import annotations

from fleet.errors import BadDatabaseUrl, MissingExtra
from fleet.store.base import Store, WriteResult

__all__ = ["Store", "WriteResult", "open_store"]


def open_store(url: str, **kw) -> Store:
    """The store behind ``--db URL``: ``sqlite:PATH`` or ``postgresql://...``.

    The tables are created when missing; opening never deletes anything.
    """
    if url.startswith("sqlite:"):
        from fleet.store.sqlite import SqliteStore

        path = url[len("sqlite:"):]
        if not path:
            raise BadDatabaseUrl("--db sqlite:PATH needs a file name, e.g. sqlite:fleet.db")
        return SqliteStore(path, **kw)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from fleet.store.postgres import PostgresStore
        except ImportError as exc:
            raise MissingExtra("a postgresql:// database needs psycopg: pip install "
                               f"'audience-kiosk[fleet]' ({exc})") from None

        return PostgresStore(url, **kw)
    raise BadDatabaseUrl(f"--db wants sqlite:PATH or postgresql://..., got {url!r}")
