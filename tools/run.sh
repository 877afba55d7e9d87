#!/usr/bin/env bash
# Set up on first use, then run the appliance: the camera if there is one, else the demo clip.
# Extra arguments go to `kiosk run` (e.g. --source VIDEO, --mqtt HOST:PORT, --display png:out.png).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh deploy/requirements-device.txt
exec .venv/bin/kiosk run --config deploy/demo.toml "$@"
