"""The site-to-central topology with two real mosquitto processes: the site broker runs the
bridge of ``deploy/mosquitto-site-bridge.conf``, the central one the options of
``deploy/mosquitto-central.conf``; an ingest worker stores from the central broker."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet.store import open_store
from tests.fleet_fixtures import ingest, status_payload, wait_rows, window_payload  # noqa: F401
from tools.fleet_services import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
T0 = 1796000000.0
# what only a real installation has: its listener, paths and TLS files
LOCAL = ("listener", "persistence_location", "cafile", "certfile", "keyfile", "bridge_cafile")


def deploy_lines(name: str, **replace: str) -> list[str]:
    """A deploy/ config's settings, with this machine's values for the local ones."""
    out = []
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        key = line.split(" ", 1)[0]
        if not line.strip() or line.startswith("#") or key in LOCAL:
            continue
        out.append(f"{key} {replace[key]}" if key in replace else line)
    return out


def test_the_bridge_config_forwards_each_kiosk_leaf_and_takes_commands_back():
    lines = deploy_lines("mosquitto-site-bridge.conf")
    topics = [line.split()[1:3] for line in lines if line.startswith("topic ")]
    outs = {t for t, d in topics if d == "out"}
    assert {"kiosk/+/audience", "kiosk/+/status", "kiosk/+/availability"} <= outs
    assert {t for t, d in topics if d == "in"} == {"kiosk/+/cmd", "kiosk/+/provision/bundle"}
    assert "cleansession false" in lines and "persistence true" in lines


def test_windows_sent_while_the_central_broker_is_down_arrive_once_it_is_back(
        tmp_path, ingest):
    central_port = free_port()
    central = Mosquitto(tmp_path / "central", deploy_lines("mosquitto-central.conf"),
                        port=central_port)
    site = Mosquitto(tmp_path / "site", deploy_lines(
        "mosquitto-site-bridge.conf", address=f"127.0.0.1:{central_port}",
        remote_clientid="kiosk-site-test", restart_timeout="1 2"))
    central.start()
    site.start()
    db = f"sqlite:{tmp_path / 'fleet.db'}"
    try:
        worker = ingest(db, central)
        kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lobby-1")
        kiosk.connect(site.host, site.port)
        kiosk.loop_start()

        def send(seq):
            kiosk.publish("kiosk/lobby-1/audience", window_payload("lobby-1", seq, T0 + 60 * seq),
                          qos=1).wait_for_publish(10)

        kiosk.publish("kiosk/lobby-1/status", status_payload("lobby-1", T0), qos=1,
                      retain=True).wait_for_publish(10)
        for seq in (1, 2, 3):
            send(seq)
        assert wait_rows(db, 3) == 3  # through the bridge
        central.stop()
        for seq in range(4, 14):  # the site broker acknowledges and queues them
            send(seq)
        time.sleep(0.5)
        assert wait_rows(db, 13, timeout=0.5) == 3
        central.start()
        assert wait_rows(db, 13, timeout=30) == 13, (site.log.read_text()[-1500:])
        store = open_store(db)
        assert store.totals()["rows"] == 13
        assert all(not g.open for gs in store.gaps().values() for g in gs)
        (k,) = store.kiosks()
        assert k["device_id"] == "lobby-1" and k["high_seq"] == 13
        store.close()
        worker.stop()
        kiosk.disconnect()
        kiosk.loop_stop()
    finally:
        site.stop()
        central.stop()
