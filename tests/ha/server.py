"""A real Home Assistant for the tests: its own config folder, the test broker, the REST API.

:class:`HomeAssistant` writes a minimal configuration (``http``, ``api``, ``onboarding`` and an
MQTT config entry for the given broker), starts ``hass`` from the Home Assistant virtual
environment that ``tools/test.sh`` makes (``.venv-ha``, see ``tools/setup_ha.sh``), creates the
owner account through the onboarding API and then talks to the REST API with its token.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ha_missing() -> str | None:
    """Why Home Assistant cannot be run here, or None when it can."""
    if not HA_PYTHON.exists():
        return ("Home Assistant's virtual environment .venv-ha is missing: run the tests with "
                "bash tools/test.sh (it installs the pinned release once)")
    return None


def config_entries(host: str, port: int) -> dict:
    """``.storage/core.config_entries`` with one MQTT entry (what the UI's config flow writes)."""
    entry = {"entry_id": "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a", "version": 1, "minor_version": 1,
             "domain": "mqtt", "title": host, "source": "user", "unique_id": None,
             "data": {"broker": host, "port": port, "discovery": True,
                      "discovery_prefix": "homeassistant"},
             "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False,
             "disabled_by": None}
    return {"version": 1, "minor_version": 1, "key": "core.config_entries",
            "data": {"entries": [entry]}}


class HomeAssistant:
    """One ``hass`` process. ``start()`` returns once its API answers and a token is known."""

    def __init__(self, workdir: Path, broker_host: str, broker_port: int):
        self.dir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token: str | None = None
        self.proc: subprocess.Popen | None = None
        (workdir / ".storage").mkdir(parents=True, exist_ok=True)
        (workdir / "configuration.yaml").write_text(
            "homeassistant:\n  name: Test\n  time_zone: UTC\n  unit_system: metric\n"
            "  latitude: 0\n  longitude: 0\n  elevation: 0\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nonboarding:\nlogger:\n  default: info\n")
        (workdir / ".storage" / "core.config_entries").write_text(
            json.dumps(config_entries(broker_host, broker_port)))
        self.log = workdir / "home-assistant.log"

    def start(self, timeout: float = 240.0) -> None:
        with open(self.dir / "hass.out", "ab") as out:
            self.proc = subprocess.Popen(
                [str(HA_PYTHON), "-m", "homeassistant", "--config", str(self.dir),
                 "--skip-pip", "--log-file", str(self.log)], stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("Home Assistant exited: " + self.log_text()[-3000:])
            try:
                self._onboard()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(1.0)
        raise RuntimeError("Home Assistant did not answer: " + self.log_text()[-3000:])

    def _onboard(self) -> None:
        client = self.url + "/"
        made = self._post("/api/onboarding/users", {
            "client_id": client, "name": "Test", "username": "test", "password": "test-pass",
            "language": "en"})
        form = urllib.parse.urlencode({"grant_type": "authorization_code",
                                       "code": made["auth_code"], "client_id": client})
        with urllib.request.urlopen(self.url + "/auth/token", form.encode(), timeout=10) as r:
            self.token = json.load(r)["access_token"]

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **self._auth()})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def state(self, entity_id: str) -> dict | None:
        """``/api/states/<entity_id>`` (state, attributes), or None when there is no such entity."""
        req = urllib.request.Request(f"{self.url}/api/states/{entity_id}", headers=self._auth())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def states(self) -> list[dict]:
        req = urllib.request.Request(f"{self.url}/api/states", headers=self._auth())
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def template(self, text: str) -> str:
        """Render a template in Home Assistant (``device_attr``, ``device_entities``, ...)."""
        req = urllib.request.Request(self.url + "/api/template",
                                     json.dumps({"template": text}).encode(),
                                     {"Content-Type": "application/json", **self._auth()})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def wait(self, predicate, timeout: float = 60.0, what: str = "") -> None:
        """Poll ``predicate()`` until it is truthy; fail naming ``what`` on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.5)
        raise AssertionError(f"Home Assistant: timed out waiting for {what}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
