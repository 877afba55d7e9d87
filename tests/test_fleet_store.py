"""The storage seam (fleet/store): the same behaviour on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from fleet.errors import BadDatabaseUrl, StoreUnavailable
from fleet.gaps import Gap
from fleet.messages import Rejected, parse
from fleet.store import open_store
from tests.fleet_fixtures import (  # noqa: F401  (fixtures)
    SUPPRESSED,
    db_url,
    pg_cluster,
    pg_own,
    pg_url,
    status_payload,
    window_payload,
)

T0 = 1796000000.0


def win(device_id: str, seq: int, start: float | None = None, aggregates=None):
    start = T0 + 60 * seq if start is None else start
    return parse(f"kiosk/{device_id}/audience", window_payload(device_id, seq, start, aggregates),
                 T0 + 10_000)


def test_each_window_is_stored_once_however_often_it_is_delivered(db_url):
    store = open_store(db_url)
    first = store.write([win("a-1", s) for s in (1, 2, 3)] + [win("b-1", 1)])
    assert first.outcomes == ["new"] * 4
    again = store.write([win("a-1", 2), win("a-1", 4), win("a-1", 2)])
    assert again.outcomes == ["duplicate", "new", "duplicate"]
    assert store.totals() == {"rows": 5, "deliveries": 7, "kiosks": 2, "rejected": 0}
    rows = list(store.windows(T0, T0 + 86400))
    assert [(r["device_id"], r["seq"]) for r in rows] == \
        [("a-1", 1), ("b-1", 1), ("a-1", 2), ("a-1", 3), ("a-1", 4)]
    assert rows[0]["gender"] == {"female": 2, "male": 1, "unknown": 1}
    store.close()


def test_gaps_are_tracked_and_filled(db_url):
    store = open_store(db_url, clock=iter(range(100, 200)).__next__)
    store.write([win("a-1", 1), win("a-1", 2), win("a-1", 6)])  # 3..5 missing, at t=100
    assert store.gaps() == {"a-1": [Gap(3, 5, 100)]}
    store.write([win("a-1", 4)])
    store.write([win("a-1", 3), win("a-1", 5)])
    assert store.gaps() == {"a-1": [Gap(3, 5, 100, 102)]}  # one row: detected 100, filled 102
    (k,) = store.kiosks()
    assert (k["low_seq"], k["high_seq"], k["windows"]) == (1, 6, 6)
    store.close()


def test_a_late_window_lands_in_its_own_time_slot(db_url):
    """A window replayed after an outage counts where it was measured, not when it came."""
    store = open_store(db_url)
    store.write([win("a-1", 1, T0), win("a-1", 3, T0 + 7200)])
    late = win("a-1", 2, T0 + 3600)
    store.write([late])
    (row,) = store.windows(T0 + 3600, T0 + 7200)
    assert row["seq"] == 2 and row["window_start"] == T0 + 3600
    store.close()


def test_status_newest_wins_and_availability_is_kept(db_url):
    store = open_store(db_url)
    newer = parse("kiosk/a-1/status", status_payload("a-1", T0 + 20, spool_depth=7), 1.0)
    older = parse("kiosk/a-1/status", status_payload("a-1", T0 + 10, model_version="1.3.0"), 2.0)
    store.write([newer, parse("kiosk/a-1/availability", b"online", 3.0)])
    store.write([older, parse("kiosk/a-1/availability", b"offline", 4.0)])
    (k,) = store.kiosks()
    assert k["spool_depth"] == 7 and k["model_version"] == "1.4.0"  # the older one lost
    assert k["availability"] == "offline" and k["last_seen"] == T0 + 20
    store.write([Rejected("kiosk/a-1/audience", "payload is not JSON", b"\xff", 5.0)])
    assert store.totals()["rejected"] == 1
    store.close()


def test_suppressed_windows_keep_no_breakdown(db_url):
    store = open_store(db_url)
    store.write([win("a-1", 1, aggregates=SUPPRESSED)])
    (row,) = store.windows(0, 2e9)
    assert row["suppressed"] is True and row["gender"] is None
    store.close()


def test_concurrent_writers_store_each_window_once(db_url):
    """Two writers (as two ingest workers) deliver overlapping, shuffled batches."""
    import random

    keys = [(f"k-{i % 3}", i // 3 + 1) for i in range(201)]  # 3 kiosks, 67 windows each
    batches = []
    for seed in (1, 2):
        order = keys[:]
        random.Random(seed).shuffle(order)
        batches.append([order[i:i + 25] for i in range(0, len(order), 25)])
    errors = []

    def writer(chunks):
        try:
            store = open_store(db_url)
        except Exception as exc:  # surfaced below, as a failed write would be
            errors.append(exc)
            return
        try:
            for chunk in chunks:
                store.write([win(device_id, seq) for device_id, seq in chunk])
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    store = open_store(db_url)
    assert store.totals() == {"rows": 201, "deliveries": 402, "kiosks": 3, "rejected": 0}
    for device_id, gaps in store.gaps().items():
        assert all(not g.open for g in gaps), (device_id, gaps)  # every number arrived
    store.close()


def test_workers_opening_a_new_sqlite_file_at_once_all_get_it(tmp_path):
    """Ingest workers started together race to create the file and switch it to WAL; none may
    be refused for the lock the others hold for a moment."""
    def opener(url, start, stores, errors):
        start.wait()
        try:
            stores.append(open_store(url))
        except Exception as exc:
            errors.append(exc)

    for attempt in range(15):
        url = f"sqlite:{tmp_path / f'fleet{attempt}.db'}"
        start, errors, stores = threading.Barrier(6), [], []
        threads = [threading.Thread(target=opener, args=(url, start, stores, errors))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for store in stores:
            store.close()
        assert not errors, errors
        assert len(stores) == 6


def test_postgres_restart_is_retried_not_lost(pg_own):
    store = open_store(pg_own.url)
    store.write([win("a-1", 1)])
    pg_own.stop()
    with pytest.raises(StoreUnavailable):
        store.write([win("a-1", 2)])
    pg_own.start()
    assert store.write([win("a-1", 2)]).outcomes == ["new"]  # connects again by itself
    assert store.totals()["rows"] == 2
    store.close()


def test_database_urls():
    with pytest.raises(BadDatabaseUrl, match="sqlite:PATH or postgresql://"):
        open_store("mysql://x")
    with pytest.raises(BadDatabaseUrl, match="needs a file name"):
        open_store("sqlite:")


def test_a_kiosk_whose_clock_went_back_is_not_ignored_for_long(db_url):
    store = open_store(db_url)
    ahead = parse("kiosk/a-1/status", status_payload("a-1", T0 + 86400, spool_depth=1), 100.0)
    store.write([ahead])
    fixed = parse("kiosk/a-1/status", status_payload("a-1", T0, spool_depth=2), 130.0)
    store.write([fixed])
    assert store.kiosks()[0]["spool_depth"] == 1  # within a minute: the kiosk's order wins
    later = parse("kiosk/a-1/status", status_payload("a-1", T0 + 10, spool_depth=3), 200.0)
    store.write([later])
    assert store.kiosks()[0]["spool_depth"] == 3
    store.close()


def test_existing_says_which_windows_are_stored(db_url):
    store = open_store(db_url)
    store.write([win("a-1", 1), win("a-1", 2), win("b-1", 7)])
    asked = [("a-1", 2), ("a-1", 3), ("b-1", 7), ("c-1", 1)] * 300  # more than one chunk
    assert store.existing(asked) == {("a-1", 2), ("b-1", 7)}
    store.close()
