# Sourced by tools/run.sh and tools/test.sh: make .venv with the project installed, once.
# Usage: source tools/setup.sh REQUIREMENTS [debian-packages...]
#   REQUIREMENTS: a pinned file made by tools/lock.sh (deploy/requirements-device.txt for the
#   appliance, tools/requirements-dev.txt for the tests and offline tools); the checkout itself is
#   then installed in editable mode without further dependencies.
# Idempotent: pip runs again only when pyproject.toml or the requirements file change.
reqs="$1"; shift || true
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed (found: $("$PY" --version 2>&1))" >&2; return 1
fi
need=("$@")
if command -v dpkg >/dev/null 2>&1; then
  "$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
  [ ${#need[@]} -gt 0 ] && apt_install "${need[@]}"
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml "$reqs" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing $reqs and audience-kiosk into .venv (first run takes a few minutes)" >&2
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install --require-hashes -r "$reqs" \
         && .venv/bin/python -m pip install --no-deps -e .; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; echo "setup: pip install failed (full log: $log)" >&2; return 1
  fi
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
