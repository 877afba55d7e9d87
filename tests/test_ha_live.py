"""A real Home Assistant (the release in ``tools/requirements-ha.txt``) on the test broker sees
the kiosk's device and entities, updates them with each window and shows them unavailable once
the kiosk stops; its log has no warning or error about MQTT."""

from __future__ import annotations

import json
import re

import pytest

from device.mqtt import Publisher, Topics, discovery_messages, make_communicator
from device.spool import Spool
from tests.ha.server import HomeAssistant, ha_missing
from tests.test_mqtt import make_cfg, spool_window

DEVICE = "t1"  # the id make_cfg gives the kiosk


@pytest.fixture
def home_assistant(mosquitto, tmp_path):
    if (why := ha_missing()) is not None:
        pytest.fail(why)
    ha = HomeAssistant(tmp_path / "ha", mosquitto.host, mosquitto.port)
    ha.start()
    yield ha
    ha.stop()


def test_home_assistant_shows_every_entity_updates_it_and_marks_it_unavailable(
        mosquitto, home_assistant, tmp_path, listen):
    ha = home_assistant
    other = listen(mosquitto, ["kiosk/lobby-2/cmd"])  # a second kiosk, also named "Lobby"
    for topic, config in discovery_messages(Topics("kiosk/lobby-2/"), "lobby-2", "Lobby",
                                            "homeassistant"):
        other.publish(topic, json.dumps(config), retain=True)
    cfg = make_cfg(mosquitto, tmp_path / "kiosk")
    topics = Topics(cfg.mqtt.prefix)
    discovery = discovery_messages(topics, DEVICE, DEVICE, "homeassistant", "1.7.1")
    spool = Spool(cfg.spool.path)
    pub = Publisher(make_communicator(cfg.mqtt), spool, topics,
                    status=lambda: {"device_id": DEVICE, "state": "running", "camera": "ok",
                                    "fps": 9.5, "uptime_s": 12.0, "error": None},
                    discovery=discovery, ha_status_topic="homeassistant/status", status_s=1.0)
    enabled = [f"{t.split('/')[1]}.{p['object_id']}" for t, p in discovery
               if p.get("enabled_by_default", True)]
    pub.start()
    try:
        ha.wait(lambda: all(ha.state(e) for e in enabled), 60, "every enabled entity")
        assert ha.template("{{ device_attr('sensor.audience_kiosk_t1_visitors', 'name') }}") \
            == "Audience kiosk t1"
        ha.wait(lambda: ha.state("sensor.audience_kiosk_lobby_2_visitors"), 30, "lobby-2")
        assert ha.template("{{ device_attr('sensor.audience_kiosk_lobby_2_visitors', 'name') }}"
                           ) == "Lobby (lobby-2)"
        ha.wait(lambda: ha.state("binary_sensor.audience_kiosk_t1_camera_problem")["state"]
                == "off", 20, "the camera's problem sensor to read off")
        for total in (3, 6):  # two windows of 3 visitors each
            spool_window(spool, topics)
            pub.notify()
            ha.wait(lambda t=total: ha.state("sensor.audience_kiosk_t1_visitors_total")["state"]
                    == str(t), 30, f"visitors total {total}")
        visitors = ha.state("sensor.audience_kiosk_t1_visitors")
        assert visitors["state"] == "3"
        assert visitors["attributes"]["state_class"] == "measurement"
        assert ha.state("sensor.audience_kiosk_t1_fps")["state"] == "9.5"
        assert ha.state("sensor.audience_kiosk_t1_dominant_emotion")["state"] == "happy"
        assert ha.state("sensor.audience_kiosk_t1_last_window")["attributes"]["partial"] is False
    finally:
        pub.stop(flush_timeout=1.0)
        spool.close()
    ha.wait(lambda: all(ha.state(e)["state"] == "unavailable" for e in enabled), 30,
            "every entity to go unavailable after the kiosk stopped")
    complaints = [line for line in ha.log_text().splitlines()
                  if re.search(r" (WARNING|ERROR) ", line) and re.search(r"mqtt|kiosk", line, re.I)]
    assert complaints == []
