"""Property tests for the parsers that face the outside: MQTT commands, model bundles, config.

For every input hypothesis can think of (random bytes, random JSON, mutated real files), each
parser either gives a valid result or refuses with its own error naming the problem: never an
unhandled exception, never a partial result.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.bundle import parse_version, read_bundle, version_key
from device.config import Config, load_config
from device.config_dump import to_toml
from device.errors import BundleError, ConfigError
from device.keys import trusted_keyring
from device.mqtt.commands import COMMANDS, CommandError, handle_command, parse_command
from tests.provision_fixtures import bundles, good_models, other_key, signing_key  # noqa: F401  (fixtures)

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=5),
    max_leaves=30)


# -- MQTT commands ------------------------------------------------------------------------------

def _check_command(payload: bytes) -> None:
    try:
        cmd = parse_command(payload)
    except CommandError as exc:
        assert str(exc)
        return
    assert set(cmd) == {"id", "cmd"} and cmd["cmd"] in COMMANDS


@FAST
@given(st.binary(max_size=5000))
def test_any_bytes_are_a_command_or_a_named_refusal(payload):
    _check_command(payload)


@FAST
@given(json_values)
def test_any_json_is_a_command_or_a_named_refusal(value):
    _check_command(json.dumps(value).encode())


@FAST
@given(st.integers(min_value=1, max_value=3000), st.sampled_from([b"[]", b"{}", b'[{"a":'] ))
def test_deep_nesting_is_refused_without_recursion(depth, brackets):
    opening, closing = brackets[:1], brackets[1:2] or b"}"
    _check_command(opening * depth + closing * depth)


@FAST
@given(st.binary(max_size=300))
def test_a_bad_command_runs_no_handler(payload):
    calls = []
    handlers = {name: (lambda n=name: calls.append(n) or {}) for name in COMMANDS}
    result = handle_command(payload, handlers)
    assert result["ok"] is bool(calls)
    assert len(calls) <= 1 and ("error" in result) is (not result["ok"])


# -- model bundles --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ring(signing_key):
    return trusted_keyring([str(signing_key[1])])


def _mutations():
    flip = st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255))
    cut = st.tuples(st.just("cut"), st.floats(0, 1), st.just(0))
    insert = st.tuples(st.just("insert"), st.floats(0, 1), st.integers(0, 255))
    return st.lists(flip | cut | insert, min_size=1, max_size=4)


def _mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op, where, value in ops:
        i = min(int(where * len(out)), max(0, len(out) - 1))
        if not out:
            break
        if op == "flip":
            out[i] ^= value
        elif op == "cut":
            del out[i:]
        else:
            out.insert(i, value)
    return bytes(out)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_mutations())
def test_a_mutated_bundle_is_refused_or_read_whole(bundles, ring, ops):
    original = read_bundle(bundles["v2"], ring)
    data = _mutate(bundles["v2"], ops)
    try:
        got = read_bundle(data, ring)
    except BundleError as exc:
        assert str(exc)
        return
    # a mutation the format does not cover (e.g. zip padding): what was read is the original
    assert got.manifest == original.manifest and got.files == original.files


@FAST
@given(st.binary(max_size=3000))
def test_random_bytes_are_never_a_bundle(ring, data):
    with pytest.raises(BundleError):
        read_bundle(data, ring)


@FAST
@given(st.text(max_size=20))
def test_versions_are_parsed_or_refused_by_name(text):
    try:
        parsed = parse_version(text)
    except BundleError as exc:
        assert repr(text) in str(exc)
        return
    assert version_key(text) == (1, parsed)


def test_versions_order_as_pep_440():
    assert version_key("1.3rc1") < version_key("1.3")
    assert version_key("2.0.0-dev") < version_key("2.0.0")
    assert version_key("2026.12.01") > version_key("2026.11.28") > version_key("1.10.0")
    assert version_key("factory") < version_key("0.0.1")
    with pytest.raises(BundleError, match="'not a version' is not a version"):
        parse_version("not a version")


# -- configuration --------------------------------------------------------------------------------

SECTIONS = [f.name for f in Config.__dataclass_fields__.values() if f.name != "path"]
toml_scalars = (st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                | st.text(max_size=12))
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
tables = st.dictionaries(st.sampled_from(["host", "port", "window_s", "spec", "sink", "id", "qos",
                                          "threads", "k_anonymity", "rgb_pins", "enabled",
                                          "x", "tls"]), toml_values, max_size=4)
documents = st.dictionaries(st.sampled_from(SECTIONS + ["mqt", "extra"]), tables, max_size=4)


def _toml(doc: dict) -> str:
    import tomli_w

    return tomli_w.dumps(doc)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_any_config_is_loaded_or_refused_naming_the_key(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "kiosk.toml"
    path.write_text(_toml(doc))
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(("[", str(path))), str(exc)
        return
    # what loads prints back as valid TOML that loads to the same configuration
    again = tmp_path_factory.mktemp("cfg") / "kiosk.toml"
    again.write_text(to_toml(cfg))
    assert load_config(again).mqtt == cfg.mqtt


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_mutations())
def test_a_mutated_example_config_is_loaded_or_refused(tmp_path_factory, ops):
    from tests.test_config import ROOT

    data = _mutate((ROOT / "deploy" / "demo.toml").read_bytes(), ops)
    path = tmp_path_factory.mktemp("cfg") / "kiosk.toml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc)


def test_check_config_prints_toml_that_reads_back_with_non_ascii_values(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('[device]\nid = "lobby-1"\nname = "Büro \\"Nord\\" 🙂"\n', encoding="utf-8")
    cfg = load_config(path)
    text = to_toml(cfg)
    parsed = tomllib.loads(text)
    assert parsed["device"]["name"] == 'Büro "Nord" 🙂'
    assert "# not set:" in text and "[mqtt] username" in text
