#!/usr/bin/env bash
# The appliance on an emulated Raspberry Pi: a Debian Bookworm arm64 root run under qemu-user,
# checked against this (x86) machine.
#
#   sudo bash tools/pi_emulated.sh [--root DIR] [--cache DIR] [--cpu a72,a76] [--samples DIR]
#                                  [--mirror URL] [--fresh]
#
# What it does:
#  1. Makes (or reuses) a Debian Bookworm arm64 root with debootstrap and qemu-user-static
#     (python3, python3-venv, ca-certificates); a tarball of it is kept in the cache folder, so a
#     removed root comes back without the network.
#  2. Builds the wheel from this checkout (pip wheel --no-deps) and installs it in a virtual
#     environment inside the root, with the locked runtime dependencies
#     (deploy/requirements-device.txt, --require-hashes) when the lock exists, else with pip's
#     own resolution.
#  3. On this machine, with the checkout's .venv: makes a signing key and a bundle of the shipped
#     models (kiosk-provision keygen / build), and runs kiosk analyze --json on the pictures
#     (the sample pictures and the self-test picture).
#  4. In the root, for each emulated CPU (--cpu: a72 is a Pi 4's Cortex-A72, a76 a Pi 5's
#     Cortex-A76): QEMU_CPU set to it and a Pi's CPU description (/proc/cpuinfo and
#     /sys/devices/system/cpu, as XNNPACK reads them) mounted in, so the runtime picks the ARM
#     kernels a real Pi uses. Checks that XNNPACK runs, runs kiosk-provision verify on the bundle
#     and kiosk analyze --json on the same pictures, and compares with this machine
#     (python -m tools.compare_analyze: boxes within 2 px, age within 1 year, P(female) within
#     0.05, the same emotion).
#  5. Once more without any CPU description (no /sys: XNNPACK cannot start and TFLite's own
#     kernels run, as on a system that hides its CPU): the bundle's known-answer test must still
#     pass. The analyze comparison is printed for information only; TFLite's own kernels round
#     int8 results differently from XNNPACK, see models/README.md.
#
# Exit status 0 when every verify passed and every XNNPACK comparison is within tolerance.
# Needs root (debootstrap, chroot, mounts), Debian or Raspberry Pi OS on x86_64 (installs
# debootstrap, qemu-user-static and binfmt-support with apt-get when missing), the checkout's
# .venv (bash tools/test.sh or tools/run.sh makes it), and for the first run network access to
# the Debian mirror and PyPI. Emulated CPUs are slow: the timings of anything run in the root
# say nothing about a Pi.
set -euo pipefail

ROOT=/var/tmp/kiosk-pi-root
CACHE=/var/tmp/kiosk-pi-cache
CPUS=a72,a76
MIRROR=http://deb.debian.org/debian
FRESH=0
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd)
SAMPLES=$CHECKOUT/../shared/data/samples

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --cpu) CPUS=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --mirror) MIRROR=$2; shift 2 ;;
        --fresh) FRESH=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

START=$(date +%s)
say() { printf '\n== %s\n' "$*"; }
die() { echo "pi_emulated: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts)"
[ "$(uname -m)" = x86_64 ] || die "runs on an x86_64 build machine"
HOST_PY=$CHECKOUT/.venv/bin/python
[ -x "$HOST_PY" ] || die "no .venv in the checkout: run bash tools/test.sh (or tools/run.sh) once"
[ -d "$SAMPLES" ] || die "sample pictures not found in $SAMPLES (--samples DIR)"
for cpu in ${CPUS//,/ }; do
    case "$cpu" in a72|a76) ;; *) die "--cpu takes a72 and/or a76, not $cpu" ;; esac
done
case "$ROOT" in /|"") die "--root must be a folder of its own" ;; esac

# --- tools and binfmt -----------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
        || ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    update-binfmts --enable qemu-aarch64
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt for qemu-aarch64 is not registered"

# --- the arm64 root -------------------------------------------------------------------------
mkdir -p "$CACHE"
TARBALL=$CACHE/bookworm-arm64-root.tar.gz
MARK=$ROOT/.kiosk-pi-root
if grep -q " $ROOT/" /proc/mounts; then
    die "something is mounted inside $ROOT (an interrupted run?): umount it first"
fi
if [ -d "$ROOT" ] && [ ! -e "$MARK" ] && [ -n "$(ls -A "$ROOT")" ]; then
    die "$ROOT exists and was not made by this script: choose another --root or remove it"
fi
if [ "$FRESH" = 1 ] && [ -e "$MARK" ]; then
    say "removing $ROOT (--fresh)"
    rm -rf --one-file-system "$ROOT"
fi
if [ -e "$MARK" ]; then
    say "reusing the arm64 root $ROOT"
elif [ -s "$TARBALL" ] && [ "$FRESH" = 0 ]; then
    say "unpacking the arm64 root from $TARBALL"
    mkdir -p "$ROOT"
    tar -xzf "$TARBALL" -C "$ROOT"
else
    say "debootstrap: Debian Bookworm arm64 into $ROOT (minutes)"
    mkdir -p "$ROOT"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR"
    touch "$MARK"
    tar -czf "$TARBALL.part" -C "$ROOT" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* .
    mv "$TARBALL.part" "$TARBALL"
fi
touch "$MARK"
# the interpreter must be reachable inside the root unless binfmt has it open already (flag F)
if ! grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    cp "$(command -v qemu-aarch64-static)" "$ROOT/usr/bin/"
fi

MOUNTS=()
CPU_MOUNTS=0
cpu_umount() {
    if [ "$CPU_MOUNTS" = 1 ]; then
        umount "$ROOT/proc/cpuinfo" "$ROOT/sys"
        CPU_MOUNTS=0
    fi
}
cleanup() {
    local i
    cpu_umount 2>/dev/null || true
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_in() {  # mount_in TARGET mount-arguments...: mounts unless mounted, remembers for cleanup
    local target=$1; shift
    mountpoint -q "$target" && return 0
    mount "$@" "$target"
    MOUNTS+=("$target")
}
mount_in "$ROOT/proc" -t proc proc
# a /dev of its own, never the host's: a bind mount would let what runs in the root (as root)
# replace this machine's device nodes, and a removal of the root would reach through it
mount_in "$ROOT/dev" -t tmpfs -o mode=0755,size=1m kiosk-pi-dev
for node in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    read -r name major minor <<< "$node"
    [ -e "$ROOT/dev/$name" ] || mknod -m 0666 "$ROOT/dev/$name" c "$major" "$minor"
done
# pip inside the root trusts what this machine trusts (a proxy's certificate included)
CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
[ -s "$CA" ] && cp "$CA" "$ROOT/etc/ssl/certs/host-ca-bundle.crt"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

in_root() {  # in_root [VAR=value...] -- command...: a clean environment, no /sys unless mounted
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    chroot "$ROOT" /usr/bin/env -i PATH=/opt/kiosk/venv/bin:/usr/bin:/bin HOME=/root \
        LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt PIP_DEFAULT_TIMEOUT=180 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "${vars[@]}" "$@"
}

# --- the wheel, installed in the root ---------------------------------------------------------
WORK=$CACHE/work
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/wheel" "$WORK/pictures"
say "building the wheel from the checkout"
(cd "$CHECKOUT" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$CHECKOUT" && tar --null -T - --ignore-failed-read -cf -) | tar -xf - -C "$WORK/src"
"$HOST_PY" -m pip wheel --quiet --no-deps -w "$WORK/wheel" "$WORK/src"
WHEEL=$(ls "$WORK"/wheel/*.whl)
echo "$(basename "$WHEEL")"

LOCK=$CHECKOUT/deploy/requirements-device.txt
IN=/opt/kiosk
mkdir -p "$ROOT$IN/work"
cp "$WHEEL" "$ROOT$IN/work/"
ROOT_WHEEL=$IN/work/$(basename "$WHEEL")
if [ -s "$LOCK" ]; then
    STAMP="lock $(sha256sum < "$LOCK" | cut -c1-64)"
else
    STAMP="resolved $(sha256sum < "$CHECKOUT/pyproject.toml" | cut -c1-64)"
fi
if [ ! -x "$ROOT$IN/venv/bin/python" ] || [ "$(cat "$ROOT$IN/venv/.deps" 2>/dev/null)" != "$STAMP" ]; then
    say "installing the runtime dependencies for aarch64 in the root (${STAMP%% *})"
    rm -rf "$ROOT$IN/venv"
    in_root -- python3 -m venv "$IN/venv"
    if [ -s "$LOCK" ]; then
        cp "$LOCK" "$ROOT$IN/work/requirements-device.txt"
        in_root -- "$IN/venv/bin/pip" install --quiet --require-hashes \
            -r "$IN/work/requirements-device.txt"
    else
        echo "no $LOCK: pip resolves the wheel's dependencies itself"
        in_root -- "$IN/venv/bin/pip" install --quiet "$ROOT_WHEEL"
    fi
    echo "$STAMP" > "$ROOT$IN/venv/.deps"
fi
say "installing $(basename "$WHEEL") in the root"
in_root -- "$IN/venv/bin/pip" install --quiet --no-deps --force-reinstall "$ROOT_WHEEL"

# --- this machine: key, bundle, reference answers ---------------------------------------------
say "x86: signing key, bundle of the shipped models, kiosk analyze"
cd "$CHECKOUT"
"$HOST_PY" -m provisioning keygen --out "$WORK/keys" >/dev/null
MODELS=$("$HOST_PY" -c 'from device.pipeline import MODELS_DIR; print(MODELS_DIR)')
SELFTEST=$("$HOST_PY" -c 'from device.pipeline import SELFTEST_DIR; import json; print(SELFTEST_DIR / json.loads((SELFTEST_DIR / "selftest.json").read_text())["image"])')
"$HOST_PY" -m provisioning build "$MODELS" --key "$WORK/keys/signing.key" \
    --version "$(date +%Y.%m.%d)" -o "$WORK/emulated.kbundle"
cp "$SAMPLES"/*.jpg "$SELFTEST" "$WORK/pictures/"
PICTURES=()
for p in "$WORK"/pictures/*.jpg; do PICTURES+=("$IN/work/pictures/$(basename "$p")"); done
"$HOST_PY" -c 'from device.runtime import TFLiteModel; import sys; print("x86 kernels:", TFLiteModel(sys.argv[1]).cpu_kernels)' \
    "$MODELS/$("$HOST_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["detector"]["file"])' "$MODELS/manifest.json")" 2>/dev/null
"$CHECKOUT/.venv/bin/kiosk" analyze --json "$WORK"/pictures/*.jpg > "$WORK/x86.jsonl"
echo "x86: $(wc -l < "$WORK/x86.jsonl") faces"
rm -rf "$ROOT$IN/work/pictures"
cp -r "$WORK/pictures" "$WORK/emulated.kbundle" "$WORK/keys/signing.pub" "$ROOT$IN/work/"

# --- a Pi's CPU description, as XNNPACK's cpuinfo reads it -------------------------------------
fake_cpu() {  # fake_cpu a72|a76 DIR
    local cpu=$1 dir=$2 c features part variant revision
    if [ "$cpu" = a72 ]; then  # Raspberry Pi 4, BCM2711
        features="fp asimd evtstrm crc32 cpuid"; part=0xd08; variant=0x0; revision=3
    else  # Raspberry Pi 5, BCM2712
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
        part=0xd0b; variant=0x4; revision=1
    fi
    rm -rf "$dir"
    mkdir -p "$dir/sys/devices/system/cpu"
    echo 3 > "$dir/sys/devices/system/cpu/kernel_max"
    for f in possible present online; do echo 0-3 > "$dir/sys/devices/system/cpu/$f"; done
    : > "$dir/cpuinfo"
    for c in 0 1 2 3; do
        mkdir -p "$dir/sys/devices/system/cpu/cpu$c/topology" "$dir/sys/devices/system/cpu/cpu$c/cpufreq"
        echo 0 > "$dir/sys/devices/system/cpu/cpu$c/topology/physical_package_id"
        echo 0-3 > "$dir/sys/devices/system/cpu/cpu$c/topology/core_siblings_list"
        echo 0-3 > "$dir/sys/devices/system/cpu/cpu$c/topology/cluster_cpus_list"
        echo "$c" > "$dir/sys/devices/system/cpu/cpu$c/topology/thread_siblings_list"
        echo 1800000 > "$dir/sys/devices/system/cpu/cpu$c/cpufreq/cpuinfo_max_freq"
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$c" "$features" "$variant" "$part" "$revision" >> "$dir/cpuinfo"
    done
    printf 'Model\t\t: Raspberry Pi (emulated %s)\n' "$cpu" >> "$dir/cpuinfo"
}

KERNELS_PY='import sys, logging; logging.disable(logging.WARNING)
from device.pipeline import MODELS_DIR
from device.manifest import load_manifest, model_path
from device.runtime import TFLiteModel
m = load_manifest(MODELS_DIR)
print(" ".join(f"{r} {TFLiteModel(model_path(MODELS_DIR, m[r])).cpu_kernels}" for r in ("detector", "analyzer")))'

FAILED=()
run_in_root() {  # run_in_root LABEL STRICT(1/0) [VAR=value...]
    local label=$1 strict=$2; shift 2
    say "arm64 ($label): kernels, kiosk-provision verify, kiosk analyze"
    local kernels
    kernels=$(in_root "$@" -- "$IN/venv/bin/python" -c "$KERNELS_PY" 2>/dev/null | tail -1)
    echo "kernels: $kernels"
    if [ "$strict" = 1 ] && [[ "$kernels" != "detector xnnpack analyzer xnnpack" ]]; then
        echo "XNNPACK did not start with the emulated Pi's CPU description"
        FAILED+=("$label: XNNPACK not running")
    fi
    if in_root "$@" -- "$IN/venv/bin/kiosk-provision" verify "$IN/work/emulated.kbundle" \
            --pubkey "$IN/work/signing.pub"; then
        echo "verify: passed"
    else
        echo "verify: FAILED"
        FAILED+=("$label: kiosk-provision verify")
    fi
    in_root "$@" -- "$IN/venv/bin/kiosk" analyze --json "${PICTURES[@]}" > "$WORK/arm64-$label.jsonl"
    echo "arm64 ($label): $(wc -l < "$WORK/arm64-$label.jsonl") faces; x86 against arm64:"
    if "$HOST_PY" -m tools.compare_analyze "$WORK/x86.jsonl" "$WORK/arm64-$label.jsonl"; then
        :
    elif [ "$strict" = 1 ]; then
        FAILED+=("$label: kiosk analyze differs from x86")
    else
        echo "(for information: TFLite's own kernels, not what a Pi runs)"
    fi
}

for cpu in ${CPUS//,/ }; do
    fake_cpu "$cpu" "$CACHE/cpu-$cpu"
    mountpoint -q "$ROOT/sys" && die "$ROOT/sys is mounted already: unmount it first"
    mount --bind "$CACHE/cpu-$cpu/sys" "$ROOT/sys"
    mount --bind "$CACHE/cpu-$cpu/cpuinfo" "$ROOT/proc/cpuinfo"
    CPU_MOUNTS=1
    run_in_root "cortex-$cpu, XNNPACK" 1 QEMU_CPU=cortex-$cpu
    cpu_umount
done
run_in_root "no CPU description, TFLite kernels" 0 QEMU_CPU=cortex-a72

say "done in $(( $(date +%s) - START )) s"
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "PASSED: the x86-built bundle verifies on emulated arm64 (XNNPACK and TFLite kernels), and kiosk analyze agrees with x86 under XNNPACK"
