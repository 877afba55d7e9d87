# Sourced by tools/test.sh: make .venv-ha with the Home Assistant release the tests check the
# discovery payloads with (tools/requirements-ha.txt), once. Home Assistant is a test-time tool
# in its own virtual environment, never a dependency of the appliance.
# Idempotent: pip runs again only when the requirements file changes.
ha_reqs=tools/requirements-ha.txt
if [ ! -x .venv-ha/bin/python ]; then
  echo "setup: creating .venv-ha (Home Assistant for the tests)" >&2
  "${PYTHON:-python3}" -m venv .venv-ha
fi
ha_stamp=".venv-ha/.installed-$(sha256sum "$ha_reqs" | cut -c1-16)"
if [ ! -f "$ha_stamp" ]; then
  echo "setup: installing Home Assistant into .venv-ha (first run takes a few minutes)" >&2
  if ! .venv-ha/bin/python -m pip install -r "$ha_reqs" >.venv-ha/pip-install.log 2>&1; then
    tail -n 30 .venv-ha/pip-install.log >&2
    echo "setup: pip install failed (full log: .venv-ha/pip-install.log)" >&2; return 1
  fi
  touch "$ha_stamp"
fi
