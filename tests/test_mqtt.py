"""The MQTT side against a real mosquitto: spool draining, acks, outages, discovery, commands.

No models here: the publisher is driven directly, as the vision loop would drive it.
"""

import json
import logging
import time

import pytest

from device.config import load_config
from device.mqtt import Publisher, Topics, audience_message, discovery_messages, make_communicator
from device.mqtt.commands import CommandError, parse_command
from device.mqtt.messages import dominant_emotion, female_share
from device.mqtt.publisher import dumps
from device.schemas import validator
from device.spool import Spool
from tests.waiting import wait_until

AGG = {"impressions": 4, "visitors": 3, "watchers": 2, "dwell_s_mean": 4.0,
       "attention_s_mean": 1.0, "gender": {"female": 1, "male": 2, "unknown": 0},
       "age_groups": {"25-37": 3, "unknown": 0},
       "emotions": {"happy": 2, "sad": 1, "unknown": 5}, "suppressed": False}


def make_cfg(broker, tmp_path, **mqtt):
    overrides = {"device.id": "t1", "mqtt.host": broker.host, "mqtt.port": broker.port,
                 "mqtt.status_s": 1.0, "mqtt.reconnect_max_s": 1.0, "state.dir": str(tmp_path)}
    overrides.update({f"mqtt.{k}": v for k, v in mqtt.items()})
    return load_config(None, overrides)


def spool_window(spool, topics):
    """One window as the appliance spools it (with its running visitors total)."""
    return spool.append(topics.audience, lambda seq, totals: dumps(
        audience_message(seq, "t1", time.time() - 1, time.time(), AGG, frames=10,
                         visitors_total=totals["visitors"])), add={"visitors": AGG["visitors"]})


@pytest.fixture
def stack(tmp_path):
    """``stack(broker, **mqtt)`` -> (publisher, spool, topics); stopped after the test."""
    made = []

    def build(broker, status=None, **mqtt):
        cfg = make_cfg(broker, tmp_path, **mqtt)
        topics = Topics(cfg.mqtt.prefix)
        spool = Spool(cfg.spool.path)
        board = status or (lambda: {"device_id": "t1", "state": "running"})
        pub = Publisher(make_communicator(cfg.mqtt), spool, topics, status=board,
                        discovery=discovery_messages(topics, "t1", "T1", "homeassistant", "v1"),
                        ha_status_topic="homeassistant/status", status_s=1.0)
        made.append(pub)
        return pub, spool, topics

    yield build
    for pub in made:
        pub.stop(flush_timeout=1.0)


def seqs(listener, topics):
    return [json.loads(p)["seq"] for p in listener.payloads(topics.audience)]


def test_spooled_windows_are_published_in_order_and_removed_once_acked(mosquitto, listen, stack):
    pub, spool, topics = stack(mosquitto)
    for _ in range(3):
        spool_window(spool, topics)  # written before the broker connection exists
    sub = listen(mosquitto, [topics.audience])
    pub.start()
    assert sub.wait_for(lambda s: len(seqs(s, topics)) >= 3, 15)
    assert seqs(sub, topics)[:3] == [1, 2, 3]
    assert wait_until(lambda: spool.depth == 0, 5)  # deleted once the broker acknowledged
    check = validator("audience")
    for payload in sub.payloads(topics.audience):
        check.validate(json.loads(payload))


def test_availability_status_and_discovery_match_schemas(mosquitto, listen, stack):
    pub, spool, topics = stack(mosquitto)
    expected = {t for t, _ in pub.discovery}
    pub.start()
    first = listen(mosquitto, [topics.prefix + "#", "homeassistant/#"])
    assert first.wait_for(lambda s: expected <= {t for t, _, _ in s.messages}, 10)
    sub = listen(mosquitto, [topics.prefix + "#", "homeassistant/#"])  # sees retained copies
    assert sub.wait_for(lambda s: s.payloads(topics.status), 10)
    assert sub.wait_for(lambda s: expected <= {t for t, _, _ in s.messages}, 10)
    validator("availability").validate(sub.payloads(topics.availability)[-1].decode())
    assert sub.payloads(topics.availability)[-1] == b"online"
    status = json.loads(sub.payloads(topics.status)[-1])
    assert status["spool_depth"] == 0 and status["spool_dropped"] == 0
    configs = [(t, json.loads(p), r) for t, p, r in sub.messages
               if t.startswith("homeassistant/") and t.split("/")[2] == "t1"]
    names = {t.split("/")[3] for t, _, _ in configs}
    assert {"visitors", "watchers", "impressions", "visitors_total", "dwell_mean",
            "attention_mean", "attraction", "female_share", "dominant_emotion", "last_window",
            "camera_problem", "spool_depth", "fps", "reload_config"} <= names
    check = validator("discovery")
    for topic, config, retained in configs:
        check.validate(config)
        assert retained, topic
        assert config.get("state_topic", topics.audience) in (topics.audience, topics.status)
        assert config["availability_topic"] == topics.availability
        assert "has_entity_name" not in config  # not a discovery option: HA drops it
    assert len({c["unique_id"] for _, c, _ in configs}) == len(configs) == len(expected)


def test_discovery_is_sent_again_when_home_assistant_comes_online(mosquitto, listen, stack):
    pub, _, _ = stack(mosquitto)
    pub.start()
    sub = listen(mosquitto, ["homeassistant/sensor/#"])
    n = len([t for t, _ in pub.discovery if t.startswith("homeassistant/sensor/")])
    assert sub.wait_for(lambda s: len(s.messages) >= n, 10)  # the retained copies
    sub.publish("homeassistant/status", "online")
    assert sub.wait_for(lambda s: len(s.messages) >= 2 * n, 10)


def test_broker_outage_loses_nothing_and_keeps_order(mosquitto_persistent, listen, stack):
    broker = mosquitto_persistent
    pub, spool, topics = stack(broker)
    sub = listen(broker, [topics.audience], client_id="consumer", clean_session=False)
    pub.start()
    spool_window(spool, topics)
    pub.notify()
    assert sub.wait_for(lambda s: seqs(s, topics) == [1], 10)
    broker.stop()
    for _ in range(3):  # windows closed while the broker is away
        spool_window(spool, topics)
        pub.notify()
    assert spool.depth >= 3
    broker.start()
    ok = sub.wait_for(lambda s: set(seqs(s, topics)) >= {1, 2, 3, 4}, 20)
    assert ok, (seqs(sub, topics), spool.depth, pub._inflight, pub.comm.connected,
                broker.log.read_text())
    got = seqs(sub, topics)
    assert sorted(set(got)) == [1, 2, 3, 4]
    assert [s for s in got if s > 1] == sorted(s for s in got if s > 1)
    # what a Home Assistant total_increasing sensor ends on equals the fleet database's sum,
    # however the replay was bunched: each window carries the running total
    windows = {w["seq"]: w for w in map(json.loads, sub.payloads(topics.audience))}
    assert windows[4]["visitors_total"] == sum(w["visitors"] for w in windows.values()) == 12


BAD_COMMANDS = [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"id": 7}', "missing field 'cmd'"),
    (b'{"id": 7, "cmd": 5}', "'cmd' must be a string"),
    (b'{"id": 7, "cmd": "reboot"}', "unknown command 'reboot'"),
    (b'{"id": false, "cmd": "ping"}', "'id' must be"),
    (b'{"cmd": "ping", "force": true}', "unknown field 'force'"),
    # nesting is checked before parsing: the parser's recursion is never reached
    (b"[" * 1500 + b"]" * 1500, "nests 1500 levels deep"),
    (b'{"cmd": ' + b"[" * 20 + b'"ping"' + b"]" * 20 + b"}", "nests 21 levels deep"),
]


@pytest.mark.parametrize("payload,problem", BAD_COMMANDS)
def test_parse_command_names_the_problem(payload, problem):
    with pytest.raises(CommandError, match=problem):
        parse_command(payload)


def test_commands_over_mqtt_ping_status_and_malformed(mosquitto, listen, stack):
    pub, spool, topics = stack(mosquitto)
    pub.start()
    sub = listen(mosquitto, [topics.cmd_result, topics.status])
    # the retained status comes after the publisher's SUBSCRIBE to cmd: commands will be heard
    assert sub.wait_for(lambda s: s.payloads(topics.status), 10)
    sub.publish(topics.cmd, json.dumps({"id": "a1", "cmd": "ping"}))
    sub.publish(topics.cmd, json.dumps({"id": 2, "cmd": "status"}))
    for payload, _ in BAD_COMMANDS:
        sub.publish(topics.cmd, payload)
    total = 2 + len(BAD_COMMANDS)
    assert sub.wait_for(lambda s: len(s.payloads(topics.cmd_result)) >= total, 15)
    results = [json.loads(p) for p in sub.payloads(topics.cmd_result)]
    check = validator("cmd_result")
    for r in results:
        check.validate(r)
    assert results[0] == {**results[0], "id": "a1", "cmd": "ping", "ok": True,
                          "result": {"pong": True}}
    assert results[1]["ok"] and results[1]["result"]["spool_depth"] == 0
    for r, (_, problem) in zip(results[2:], BAD_COMMANDS):
        assert r["ok"] is False and problem in r["error"]
    assert results[4]["id"] == 7  # the id is echoed even when the command is bad
    assert spool.depth == 0 and spool.next_seq == 1  # nothing changed


def test_password_is_never_logged_nor_published(mosquitto, listen, stack, tmp_path, caplog):
    secret = "s3cret-Pa55-word"
    (tmp_path / "pw").write_text(secret + "\n")
    caplog.set_level(logging.DEBUG)
    pub, _, topics = stack(mosquitto, username="kiosk", password_file=str(tmp_path / "pw"))
    sub = listen(mosquitto, [topics.prefix + "#"])
    pub.start()
    assert sub.wait_for(lambda s: s.payloads(topics.status), 10)
    assert secret not in caplog.text
    assert all(secret.encode() not in p for _, p, _ in sub.messages)


def test_no_broker_configured_uses_the_null_communicator(tmp_path):
    cfg = load_config(None, {"state.dir": str(tmp_path)})
    comm = make_communicator(cfg.mqtt)
    assert not comm.connected and comm.publish("x", "y") == 0


def test_derived_fields():
    assert female_share({"female": 1, "male": 3, "unknown": 9}) == 25.0
    assert female_share({"female": 0, "male": 0, "unknown": 2}) is None
    assert female_share(None) is None
    assert dominant_emotion({"happy": 2, "sad": 1, "unknown": 5}) == "happy"
    assert dominant_emotion({"happy": 0, "unknown": 5}) is None


def _tls_files(folder):
    """A throw-away CA and a server certificate for 127.0.0.1 (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca):
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    srv_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("test CA", ca_key, "test CA", ca_key, True)
    srv = cert("127.0.0.1", srv_key, "test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    files = {"ca.crt": ca.public_bytes(pem), "server.crt": srv.public_bytes(pem),
             "server.key": srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())}
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    return {k: str(folder / k) for k in files}


def test_tls_and_password_auth_against_a_real_broker(tmp_path, tmp_path_factory, listen, stack,
                                                     caplog):
    import subprocess

    from tests.conftest import Broker

    secret = "tls-Pa55-wordX"
    work = tmp_path_factory.mktemp("tlsbroker")
    files = _tls_files(work)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(work / "passwd"), "kiosk", secret],
                   check=True, capture_output=True)
    broker = Broker(work, anonymous=False, extra=[f"password_file {work / 'passwd'}",
                                 f"cafile {files['ca.crt']}", f"certfile {files['server.crt']}",
                                 f"keyfile {files['server.key']}"])
    broker.start()
    try:
        caplog.set_level(logging.DEBUG)
        (tmp_path / "pw").write_text(secret)
        pub, spool, topics = stack(broker, username="kiosk", password_file=str(tmp_path / "pw"),
                                   tls={"ca_file": files["ca.crt"]})
        sub = listen(broker, [topics.prefix + "#"], username="kiosk", password=secret,
                     ca_file=files["ca.crt"])
        pub.start()
        spool_window(spool, topics)
        pub.notify()
        assert sub.wait_for(lambda s: s.payloads(topics.audience), 15)
        assert secret not in caplog.text
        # a wrong password: refused, reported without the password, the window stays spooled
        (tmp_path / "pw2").write_text("wrong-" + secret)
        bad, _, _ = stack(broker, username="kiosk", password_file=str(tmp_path / "pw2"),
                                  tls={"ca_file": files["ca.crt"]}, client_id="bad")
        bad.start()
        assert wait_until(lambda: "broker refused the connection" in caplog.text, 10)
        assert not bad.comm.connected
        assert secret not in caplog.text
    finally:
        broker.stop()
