"""``kiosk-fleet ingest`` against a real mosquitto: simulated kiosks publish with the appliance's
own message and spool code; workers store into SQLite or a real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device.schemas import validator
from fleet.store import open_store
from tests.fleet_fixtures import (  # noqa: F401  (fixtures)
    fleet_broker,
    ingest,
    pg_cluster,
    pg_url,
    status_payload,
    wait_rows,
    window_payload,
)
from tools.fleet_sim import Fleet, SimKiosk, plans

T0 = 1796000000.0


def simulate(broker, kiosks: int, windows: int, interval_s: float = 0.05, **plan_kw) -> dict:
    """Simulated kiosks until every window is acknowledged by the broker; their summary."""
    rng = np.random.default_rng(3)
    sims = [SimKiosk(p, broker.host, broker.port, np.random.default_rng(rng.integers(2**32)),
                     window_s=interval_s) for p in plans(kiosks, **plan_kw)]
    fleet = Fleet(sims, windows, interval_s, status_s=0.5)
    fleet.run(threading.Event(), drain_s=30)
    fleet.close()
    return fleet.summary()


def publisher(broker):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-pub")
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def publish(c, topic, payload, retain=False):
    c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)


def test_simulated_kiosks_are_stored_with_their_status(tmp_path, fleet_broker, ingest, listen):
    db = f"sqlite:{tmp_path / 'fleet.db'}"
    seen = listen(fleet_broker, ["kiosk/#"])
    worker = ingest(db, fleet_broker)
    summary = simulate(fleet_broker, kiosks=8, windows=6)
    assert summary["windows_sent"] == 48 and summary["unacked"] == 0
    assert wait_rows(db, 48) == 48
    # what the simulated kiosks send is what a kiosk sends
    for leaf in ("audience", "status"):
        sample = seen.payloads(f"kiosk/berlin-mitte-01/{leaf}")
        assert sample, leaf
        validator(leaf).validate(json.loads(sample[-1]))
    time.sleep(1.0)  # the last statuses and the goodbyes
    worker.stop()
    store = open_store(db)
    kiosks = {k["device_id"]: k for k in store.kiosks()}
    assert len(kiosks) == 8
    k = kiosks["berlin-mitte-01"]
    assert (k["low_seq"], k["high_seq"], k["windows"]) == (1, 6, 6)
    assert k["model_version"] == "1.4.0" and k["spool_depth"] == 0
    assert k["availability"] == "offline"  # the simulated kiosks said goodbye
    assert store.gaps() == {} or all(not g.open for gs in store.gaps().values() for g in gs)
    store.close()


def test_two_workers_share_the_windows_on_postgresql(pg_url, fleet_broker, ingest):
    w1 = ingest(pg_url, fleet_broker, name="w1", backstop=False)
    w2 = ingest(pg_url, fleet_broker, name="w2", backstop=False)
    simulate(fleet_broker, kiosks=10, windows=20, interval_s=0.02)
    assert wait_rows(pg_url, 200) == 200
    a, b = w1.worker.stats["new"], w2.worker.stats["new"]
    assert a + b == 200 and a > 40 and b > 40, (a, b)  # both did a share
    assert open_store(pg_url).totals()["deliveries"] == 200


def test_windows_sent_while_every_worker_is_down_arrive_when_one_returns(
        pg_url, fleet_broker, ingest):
    w1 = ingest(pg_url, fleet_broker, name="w1")  # backstop: its plain subscription queues all
    w2 = ingest(pg_url, fleet_broker, name="w2", backstop=False)
    w1.stop()
    w2.stop()
    pub = publisher(fleet_broker)
    for seq in range(1, 21):
        publish(pub, "kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 60 * seq))
    ingest(pg_url, fleet_broker, name="w1")
    assert wait_rows(pg_url, 20) == 20
    ingest(pg_url, fleet_broker, name="w2", backstop=False)  # its queued share: duplicates
    time.sleep(1.5)
    store = open_store(pg_url)
    assert store.totals()["rows"] == 20
    assert store.gaps().get("lobby-1", []) == [] or \
        all(not g.open for g in store.gaps()["lobby-1"])
    pub.disconnect()


def test_mosquitto_forgets_shared_subscriptions_on_restart_and_the_backstop_keeps_the_windows(
        tmp_path, fleet_broker, ingest):
    """Windows published after a broker restart, before the workers are back, reach only the
    backstop worker's plain subscription (restored with its session); without one they would
    be dropped by the broker."""
    plain = f"sqlite:{tmp_path / 'plain.db'}"
    ingest(f"sqlite:{tmp_path / 'backstop.db'}", fleet_broker, name="b1")
    ingest(plain, fleet_broker, name="n1", group="other", backstop=False)
    fleet_broker.restart()
    pub = publisher(fleet_broker)  # before the workers' first reconnect (1 s)
    for seq in range(1, 11):
        publish(pub, "kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 60 * seq))
    assert wait_rows(f"sqlite:{tmp_path / 'backstop.db'}", 10) == 10
    time.sleep(1.0)
    assert wait_rows(plain, 10, timeout=1) == 0  # mosquitto 2.0's behaviour, kept in view
    pub.disconnect()


def test_late_windows_fill_their_gap_and_a_bad_message_does_not_block(
        tmp_path, fleet_broker, ingest):
    db = f"sqlite:{tmp_path / 'fleet.db'}"
    ingest(db, fleet_broker)
    pub = publisher(fleet_broker)
    for seq in (1, 2, 5):
        publish(pub, "kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 3600 * seq))
    publish(pub, "kiosk/lobby-1/audience", b"{not json")
    assert wait_rows(db, 3) == 3
    store = open_store(db)
    assert [(g.first, g.last, g.open) for g in store.gaps()["lobby-1"]] == [(3, 4, True)]
    for seq in (4, 3):  # after the outage, in any order
        publish(pub, "kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 3600 * seq))
    assert wait_rows(db, 5) == 5
    (gap,) = store.gaps()["lobby-1"]
    assert (gap.first, gap.last) == (3, 4) and gap.filled_at >= gap.detected_at
    (late,) = store.windows(T0 + 3 * 3600, T0 + 4 * 3600)  # in its own hour
    assert late["seq"] == 3
    assert store.totals()["rejected"] == 1
    store.close()
    pub.disconnect()


def test_retained_states_of_silent_kiosks_are_read_at_start(tmp_path, fleet_broker, ingest):
    pub = publisher(fleet_broker)
    publish(pub, "kiosk/gone-1/status", status_payload("gone-1", T0, spool_depth=4), retain=True)
    publish(pub, "kiosk/gone-1/availability", b"offline", retain=True)
    db = f"sqlite:{tmp_path / 'fleet.db'}"
    w = ingest(db, fleet_broker, snapshot_s=0.5)
    end = time.monotonic() + 10
    store = open_store(db)
    while time.monotonic() < end and not store.kiosks():
        time.sleep(0.1)
    time.sleep(0.5)
    (k,) = store.kiosks()
    assert (k["device_id"], k["availability"], k["spool_depth"]) == ("gone-1", "offline", 4)
    store.close()
    w.stop()
    pub.disconnect()


def test_leave_stores_the_queued_share_and_ends_the_session(pg_url, fleet_broker, ingest):
    ingest(pg_url, fleet_broker, name="w1", backstop=False)
    w2 = ingest(pg_url, fleet_broker, name="w2", backstop=False)
    w2.stop()  # its share queues from now on
    pub = publisher(fleet_broker)
    for seq in range(1, 21):
        publish(pub, "kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 60 * seq))
    assert wait_rows(pg_url, 20, timeout=2) < 20  # half waits for w2
    leaving = ingest(pg_url, fleet_broker, name="w2", backstop=False, leave=True)
    leaving.thread.join(30)
    assert not leaving.thread.is_alive(), "leave did not finish"
    assert wait_rows(pg_url, 20) == 20
    # the session is gone: reconnecting under its id finds nothing
    present = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kiosk-fleet-test-w2",
                    protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    connected = threading.Event()
    c.on_connect = lambda cl, u, flags, rc, p: (flags.session_present and present.set(),
                                                 connected.set())
    c.connect(fleet_broker.host, fleet_broker.port, clean_start=False, properties=props)
    c.loop_start()
    assert connected.wait(5) and not present.is_set()
    c.disconnect()
    c.loop_stop()
    pub.disconnect()
