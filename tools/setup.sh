# Sourced by tools/run.sh and tools/test.sh: make .venv with the project installed, once.
# Usage: source tools/setup.sh EXTRAS [debian-packages...]
# Idempotent: pip runs again only when pyproject.toml or the extras change.
extras="$1"; shift || true
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
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing audience-kiosk[$extras] into .venv (first run takes a few minutes)" >&2
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".[$extras]"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; echo "setup: pip install failed (full log: $log)" >&2; return 1
  fi
  rm -f .venv/.installed-*; touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
