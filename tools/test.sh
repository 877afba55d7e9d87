#!/usr/bin/env bash
# Set up on first use (Python packages; Debian's mosquitto broker, PostgreSQL and Chromium for the
# fleet tests), then run every test.
# Extra arguments go to pytest (e.g. -k mqtt, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh tools/requirements-dev.txt mosquitto mosquitto-clients systemd postgresql chromium
source tools/setup_ha.sh
exec .venv/bin/python -m pytest "$@"
