"""Home Assistant discovery, checked by Home Assistant's own code (release pinned in
``tools/requirements-ha.txt``, installed into ``.venv-ha`` by ``tools/test.sh``), and the window
fields it relies on: running visitors total, partial windows, names that carry the device id."""

from __future__ import annotations

import json
import logging
import re
import subprocess

import pytest

from device.aggregate import WindowAggregator
from device.mqtt import Topics, discovery_messages
from device.schemas import load_schema, validator
from device.spool import Spool
from device.windows import Windows
from tests.fake_clock import FakeClock
from tests.ha.server import HA_PYTHON, ROOT, ha_missing
from tests.test_aggregate import summary

CHECKER = ROOT / "tests" / "ha" / "check_discovery.py"
# keys Home Assistant 2024.3 ignores on purpose: later releases read them (see discovery.py)
IGNORED_BY_OLDER_HA = {"options"}


def ha_check(messages) -> dict:
    """Run Home Assistant's schemas over ``[(topic, payload)]`` in its own interpreter."""
    if (why := ha_missing()) is not None:
        pytest.fail(why)
    res = subprocess.run([str(HA_PYTHON), str(CHECKER)], input=json.dumps(messages),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def kiosk(device_id="lobby-2", name="lobby-2", url=""):
    return discovery_messages(Topics(f"kiosk/{device_id}/"), device_id, name, "homeassistant",
                              "1.7.1", configuration_url=url)


def real_problems(report) -> list[str]:
    return [p for p in report["problems"]
            if not any(f"key {k!r} is dropped" in p for k in IGNORED_BY_OLDER_HA)]


def test_home_assistant_takes_every_discovery_payload_whole():
    report = ha_check(kiosk(url="http://kiosk-lobby-2.local:9100/"))
    assert report["ha_version"] == "2024.3.3"
    assert report["checked"] == len(kiosk())
    assert real_problems(report) == []
    for _, payload in kiosk():
        validator("discovery").validate(payload)


@pytest.mark.parametrize("change, expect", [
    ({"has_entity_name": True}, "key 'has_entity_name' is dropped"),
    ({"state_class": "sometimes"}, "rejected"),
    ({"device_class": "people"}, "rejected"),
    ({"value_template": "{{ value_json.visitors "}, "invalid template"),
])
def test_the_check_fails_on_a_payload_home_assistant_would_reject_or_trim(change, expect):
    topic, payload = kiosk()[0]
    report = ha_check([(topic, {**payload, **change})])
    assert any(expect in p for p in report["problems"]), report


def template_fields(payload: dict) -> set[str]:
    text = payload.get("value_template", "") + payload.get("json_attributes_template", "")
    return set(re.findall(r"value_json\.([a-z_]+)", text))


def test_every_number_of_the_window_and_every_status_field_has_an_entity():
    used: dict[str, set[str]] = {"audience": set(), "status": set()}
    for _, payload in kiosk():
        source = payload.get("state_topic", "/cmd").rsplit("/", 1)[1]
        if source in used:
            used[source] |= template_fields(payload)
    labels = {"device_id", "window_start", "suppressed", "seq", "time", "model_version"}
    assert set(load_schema("audience")["properties"]) - labels <= used["audience"]
    assert set(load_schema("status")["properties"]) - labels - {"display_error", "window_s"} \
        <= used["status"]
    breakdowns = {p["name"] for _, p in kiosk() if p.get("enabled_by_default") is False}
    assert {"Age 60+", "Age unknown", "Emotion happy", "Gender female"} <= breakdowns


def test_two_kiosks_are_two_devices_whose_names_and_entity_ids_carry_their_ids():
    a, b = kiosk("lobby-1", "Lobby"), kiosk("lobby-2", "Lobby")
    assert a[0][1]["device"]["name"] == "Lobby (lobby-1)"
    assert b[0][1]["device"]["name"] == "Lobby (lobby-2)"
    assert kiosk("lobby-2", "lobby-2")[0][1]["device"]["name"] == "Audience kiosk lobby-2"
    assert {p["object_id"] for _, p in a}.isdisjoint({p["object_id"] for _, p in b})
    assert all("lobby_2" in p["object_id"] for _, p in b)
    assert a[0][1]["device"]["identifiers"] != b[0][1]["device"]["identifiers"]


def test_status_entities_are_diagnostic_and_camera_is_a_problem_sensor():
    by_key = {t.split("/")[3]: p for t, p in kiosk()}
    camera = by_key["camera_problem"]
    assert camera["device_class"] == "problem" and camera["entity_category"] == "diagnostic"
    assert all(p["entity_category"] == "diagnostic" for p in by_key.values()
               if p.get("state_topic", "").endswith("/status"))
    assert by_key["visitors_total"]["state_class"] == "total_increasing"
    assert by_key["last_window"]["device_class"] == "timestamp"
    assert by_key["reload_config"]["command_topic"] == "kiosk/lobby-2/cmd"
    assert json.loads(by_key["reload_config"]["payload_press"])["cmd"] == "reload-config"


def test_the_visitors_total_survives_a_restart_and_a_cut_window_is_partial(tmp_path):
    clock = FakeClock()
    messages = []
    for _ in range(2):  # two runs on the same spool: the total keeps counting
        spool = Spool(str(tmp_path / "spool.db"))
        windows = Windows(60.0, WindowAggregator(k_anonymity=1), spool, "kiosk/k/audience", "k",
                          model_version=lambda: "1", spooled=lambda s: None,
                          lost=lambda m: None, clock=clock)
        clock.advance(60)
        windows.close([summary(), summary()])  # a whole window
        clock.advance(0.6)
        windows.close([summary()])  # cut short by a stop
        messages += [json.loads(m.payload) for m in spool.pending()]
        for m in spool.pending():
            spool.ack(m.seq)
        spool.close()
    assert [m["visitors_total"] for m in messages] == [2, 3, 5, 6]
    assert [m["partial"] for m in messages] == [False, True, False, True]
    for m in messages:
        validator("audience").validate(m)


def test_paho_errors_for_normal_events_are_not_logged_as_errors(caplog):
    from device.mqtt.paho_comm import paho_logger

    logger = paho_logger()
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.error("Client is not connected. Socket: None). Last known Connection State: x")
        logger.error("failed to receive on socket: boom")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == \
        ["failed to receive on socket: boom"]


def test_a_config_the_kiosk_no_longer_announces_is_emptied_so_ha_forgets_it(
        mosquitto, listen, tmp_path):
    from device.mqtt import Publisher, make_communicator
    from device.mqtt.discovery import config_wildcard
    from tests.test_mqtt import make_cfg

    cfg = make_cfg(mosquitto, tmp_path)
    topics = Topics(cfg.mqtt.prefix)
    old = "homeassistant/sensor/t1/retired_sensor/config"
    other = "homeassistant/sensor/t2/visitors/config"  # another kiosk's: left alone
    sub = listen(mosquitto, ["homeassistant/#"])
    sub.publish(old, b'{"name": "Retired"}', retain=True)
    sub.publish(other, b'{"name": "Visitors"}', retain=True)
    current = discovery_messages(topics, "t1", "t1", "homeassistant")
    for discovery in (current, []):  # announced entities stay; with discovery off, all go
        pub = Publisher(make_communicator(cfg.mqtt), Spool(cfg.spool.path), topics,
                        status=lambda: {}, discovery=discovery,
                        forget_topic=config_wildcard("homeassistant", "t1"))
        pub.start()
        gone = {t for t, _ in current} if not discovery else {old}
        assert sub.wait_for(lambda s, g=gone: g <= {t for t, p, _ in s.messages if p == b""}, 15)
        pub.stop(flush_timeout=1.0)
    assert b"" not in sub.payloads(other)
    if not discovery:
        emptied = {t for t, p, _ in sub.messages if p == b""}
        assert emptied == {old, *(t for t, _ in current)}
