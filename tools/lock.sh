#!/usr/bin/env bash
# Re-resolve the pinned dependency sets from pyproject.toml with uv:
#   deploy/requirements-device.txt  what a kiosk installs (Python 3.11, aarch64 and x86_64)
#   tools/requirements-dev.txt      the development and test environment, with the fleet extra
#                                   (Python 3.11, x86_64)
# The device set is resolved for both CPUs under the development set's versions, so a model is
# measured with the same numpy, OpenCV and LiteRT that the kiosks run. Run it after changing a
# dependency in pyproject.toml, then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv" && "$tmp/uv/bin/pip" install -q "uv==$UV_VERSION"
uv() { "$tmp/uv/bin/uv" "$@"; }
header() { printf '# %s: pinned by tools/lock.sh (uv %s) from pyproject.toml; do not edit.\n# %s\n' \
  "$1" "$UV_VERSION" "$2"; }
compile() { uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header \
  --quiet -c tools/lock-constraints.txt "$@"; }
{ header "development and tests" "Used by tools/setup.sh: pip install --require-hashes -r tools/requirements-dev.txt"
  compile --extra dev --extra train --extra fleet --python-platform x86_64-manylinux_2_28; } \
  > tools/requirements-dev.txt
for arch in aarch64 x86_64; do
  compile -c tools/requirements-dev.txt --python-platform "$arch-manylinux_2_28" \
    -o "$tmp/device-$arch.txt"
done
if ! diff -u "$tmp/device-aarch64.txt" "$tmp/device-x86_64.txt"; then
  echo "lock: aarch64 and x86_64 resolve to different versions; pin the difference in pyproject.toml" >&2
  exit 1
fi
{ header "the device install (Python 3.11 on aarch64 and x86_64)" \
    "pip install --require-hashes -r deploy/requirements-device.txt, then the wheel with --no-deps"
  cat "$tmp/device-aarch64.txt"; } > deploy/requirements-device.txt
echo "lock: wrote tools/requirements-dev.txt and deploy/requirements-device.txt"
