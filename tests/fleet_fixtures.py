"""Fixtures for the fleet tests: PostgreSQL, a fleet broker, stores of both kinds, messages.

PostgreSQL and mosquitto are Debian's, started on free loopback ports (``tools/fleet_services``);
a missing one fails the test with the command that installs it, never skips it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pytest

from device.mqtt.messages import audience_message
from tools.fleet_services import FLEET_BROKER_OPTIONS, Mosquitto, Postgres, ServiceMissing

AGGREGATES = {"impressions": 6, "visitors": 4, "watchers": 2, "dwell_s_mean": 7.5,
              "attention_s_mean": 2.0, "gender": {"female": 2, "male": 1, "unknown": 1},
              "age_groups": {"15-24": 1, "25-37": 2, "38-47": 1, "unknown": 0},
              "emotions": {"happy": 2, "neutral": 1, "surprise": 1, "unknown": 0},
              "suppressed": False}
SUPPRESSED = {"impressions": 3, "visitors": 2, "watchers": 1, "dwell_s_mean": 3.0,
              "attention_s_mean": 1.0, "suppressed": True}


def window_payload(device_id: str, seq: int, start: float, aggregates=None,
                   window_s: float = 60.0) -> bytes:
    """A real ``audience`` message, made by the appliance's own code."""
    msg = audience_message(seq, device_id, start, start + window_s, aggregates or AGGREGATES,
                           frames=600, model_version="1.4.0")
    return json.dumps(msg).encode()


def status_payload(device_id: str, t: float, **over) -> bytes:
    from device.mqtt.messages import iso_utc

    s = {"device_id": device_id, "time": iso_utc(t), "state": "running", "app_version": "0.1.0",
         "model_version": "1.4.0", "accelerator": "cpu", "analyzer_available": True,
         "camera": "ok", "source": "camera:0", "fps": 9.5, "uptime_s": 100.0,
         "window_s": 60.0, "last_seq": 3, "spool_depth": 0, "spool_dropped": 0}
    s.update(over)
    return json.dumps(s).encode()


def _service(make):
    try:
        return make()
    except ServiceMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL for the session; tests take their own database from ``pg_url``."""
    pg = _service(Postgres)
    pg.start()
    yield pg
    pg.cleanup()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A new, empty database in the session's PostgreSQL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_own():
    """A PostgreSQL of this test's own, to stop and restart."""
    pg = _service(Postgres)
    pg.start()
    yield pg
    pg.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """Each store test runs on both back-ends."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fleet_broker(tmp_path_factory):
    """A mosquitto configured as a fleet's central broker (persistent sessions, deep queues)."""
    broker = _service(lambda: Mosquitto(tmp_path_factory.mktemp("fleet-mq"),
                                        FLEET_BROKER_OPTIONS))
    broker.start()
    yield broker
    broker.stop()


class RunningWorker:
    """An :class:`IngestWorker` on a thread of the test process."""

    def __init__(self, db_url: str, broker, name: str = "w1", **kw):
        from fleet.ingest import IngestWorker
        from fleet.store import open_store
        from provisioning.mqtt_tool import BrokerOptions

        self.store = open_store(db_url)
        self.worker = IngestWorker(self.store, BrokerOptions(broker.host, broker.port),
                                   name=name, batch_wait_s=0.02,
                                   **{"group": "test", **kw})
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop_event,),
                                       daemon=True)
        self.thread.start()
        assert self.worker.connected.wait(10), "ingest worker did not connect"
        time.sleep(0.3)  # its subscriptions are in place

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)
        self.store.close()


@pytest.fixture
def ingest():
    """``ingest(db_url, broker, name=..., **kw)`` -> a running worker, stopped after the test."""
    made: list[RunningWorker] = []

    def factory(db_url, broker, **kw):
        made.append(RunningWorker(db_url, broker, **kw))
        return made[-1]

    yield factory
    for w in made:
        if w.thread.is_alive():
            w.stop()


def wait_rows(db_url: str, n: int, timeout: float = 30.0) -> int:
    """Wait until the store holds ``n`` windows; return how many it holds."""
    from fleet.store import open_store

    store = open_store(db_url)
    try:
        end = time.monotonic() + timeout
        rows = store.totals()["rows"]
        while rows < n and time.monotonic() < end:
            time.sleep(0.1)
            rows = store.totals()["rows"]
        return rows
    finally:
        store.close()


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
