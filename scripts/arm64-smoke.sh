#!/usr/bin/env bash
# Emulated arm64 smoke test: install the device app from an offline wheelhouse into a
# Debian Bookworm arm64 root under qemu, run it on test photos there and on this x86-64
# host, and compare every probability.
#
# Usage: scripts/arm64-smoke.sh [BUNDLE_DIR]
#
# BUNDLE_DIR defaults to $CADR_SMOKE_BUNDLE, else models/cadr-demo, else a small bundle that
# scripts/arm64_smoke_compare.py builds with TensorFlow. Needs root (debootstrap, chroot,
# binfmt_misc). When this machine cannot emulate arm64, the script prints one line saying
# why and exits 0, so CI goes on.
#
# Environment:
#   CADR_ARM64_CACHE    where the arm64 root and wheelhouses are kept and reused
#                       (default: .cache/arm64-rootfs in the repository)
#   CADR_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses here)
#   CADR_HOST_PYTHON    Python with cadr installed, for the wheelhouse builder and helpers
#                       (default: .venv/bin/python)
#   CADR_QEMU_CPUS      qemu CPU models to run the app on, space-separated
#                       (default: "cortex-a72 cortex-a76", the cores of Raspberry Pi 4 and 5)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CADR_ARM64_CACHE:-$REPO/.cache/arm64-rootfs}
HOST_PYTHON=${CADR_HOST_PYTHON:-$REPO/.venv/bin/python}
HELPER=$REPO/scripts/arm64_smoke_compare.py
SUITE=bookworm
# python3-venv brings ensurepip's bundled pip, so python3-pip is not needed.
PACKAGES=python3,python3-venv
ROOT=$CACHE/$SUITE-arm64
ROOT_STAMP_NAME=.cadr-rootfs
LOGS=$CACHE/logs
# NOTE: with qemu's default CPU model "max" (qemu 7.2, Debian 12), XNNPACK gave 0.9961 where
# x86-64 and the Pi core models give 0.0273, for one golden input of models/cadr-demo. The
# cause is unknown, so the app runs only on named Pi cores here; see docs/arm64.md.
QEMU_CPUS=${CADR_QEMU_CPUS:-cortex-a72 cortex-a76}
QEMU_CPU=${QEMU_CPUS%% *}
# CPU numbers the fake sysfs lists: Raspberry Pi 4 and 5 have four cores.
GUEST_CPU_LIST=0-3
# Inside the root; rebuilt on every run, so each run installs from scratch.
GUEST_WORK=/opt/cadr-smoke
HOST_WORK=$CACHE/x86_64-run

# Time limits in seconds, with room for a slow mirror and for package scripts, pip and
# the interpreter running under qemu, which is much slower than native.
DEBOOTSTRAP_TIMEOUT_S=1800
STEP_TIMEOUT_S=900

START_S=$SECONDS

skip() {
    echo "arm64 smoke test skipped: $*"
    exit 0
}

fail() {
    echo "arm64 smoke test FAILED: $*" >&2
    exit 1
}

step() {
    printf '[%4ds] %s\n' $((SECONDS - START_S)) "$*"
}

# Run a command with its output in LOGS/NAME.log; on failure show the log's last lines.
logged() {
    local name=$1
    shift
    if ! "$@" >"$LOGS/$name.log" 2>&1; then
        tail -n 30 "$LOGS/$name.log" >&2
        fail "$name failed (full log: $LOGS/$name.log)"
    fi
}

# Mount a minimal sysfs that lists only the CPU numbers, then run the command. cpuinfo (used
# by XNNPACK) crashed under qemu when it read the host's /sys, and without any /sys it fails,
# so LiteRT falls back from XNNPACK to its built-in kernels, which a Pi does not use.
# shellcheck disable=SC2016 # expanded by the inner shell
FAKE_SYSFS_SCRIPT='root=$1; cpus=$2; shift 2
cpu_dir=$root/sys/devices/system/cpu
mount -t tmpfs -o size=64k,mode=0755 cadr-sysfs "$root/sys" && mkdir -p "$cpu_dir" || exit 1
for name in possible present online; do echo "$cpus" >"$cpu_dir/$name"; done
exec "$@"'

# Run a command inside the arm64 root on the qemu CPU model $QEMU_CPU, with no network, its
# own /proc and /sys and a clean environment. The namespaces end with the command, so nothing
# stays mounted; --kill-child stops the command, which as PID 1 ignores SIGTERM, on a timeout.
in_root() {
    timeout --kill-after=10 "$STEP_TIMEOUT_S" unshare --mount --net --pid --fork --kill-child \
        --mount-proc="$ROOT/proc" /bin/sh -c "$FAKE_SYSFS_SCRIPT" sh "$ROOT" "$GUEST_CPU_LIST" \
        chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" "$@"
}

# Print the Debian mirror apt uses on this machine (deb822 .sources first, then .list files).
debian_mirror() {
    if [ -n "${CADR_DEBIAN_MIRROR:-}" ]; then
        echo "$CADR_DEBIAN_MIRROR"
        return
    fi
    local uri=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        uri=$(awk '/^URIs:/ && $2 ~ /debian/ && $2 !~ /security/ { print $2; exit }' \
            /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '
            $1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*debian/ && $i !~ /security/) { print $i; exit } }')
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

check_host() {
    [ "$(uname -s)" = Linux ] || skip "host is $(uname -s), not Linux"
    [ "$(uname -m)" = x86_64 ] || skip "host is $(uname -m), not x86-64, so there is no emulated run to compare"
    [ "$(id -u)" = 0 ] || skip "needs root for debootstrap, chroot and binfmt_misc (run with sudo)"
    [ -x "$HOST_PYTHON" ] || fail "$HOST_PYTHON not found; run 'make venv-dev' first or set CADR_HOST_PYTHON"
    command -v unshare >/dev/null || skip "unshare (util-linux) is missing"
}

install_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    [ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    [ ${#missing[@]} -eq 0 ] && return

    command -v apt-get >/dev/null || skip "${missing[*]} missing and apt-get is not available to install them"
    step "installing ${missing[*]} with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends qemu-user-static binfmt-support debootstrap; } \
            >"$LOGS/apt-get.log" 2>&1; then
        skip "apt-get could not install ${missing[*]} (log: $LOGS/apt-get.log)"
    fi
}

register_binfmt() {
    local binfmt=/proc/sys/fs/binfmt_misc
    if [ ! -e "$binfmt/status" ]; then
        mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
            || skip "binfmt_misc is not mounted and cannot be mounted (a container needs --privileged)"
    fi
    if [ ! -e "$binfmt/qemu-aarch64" ] || ! grep -qx enabled "$binfmt/qemu-aarch64"; then
        update-binfmts --enable qemu-aarch64 >"$LOGS/binfmt.log" 2>&1 \
            || skip "could not register qemu-aarch64 with binfmt_misc (log: $LOGS/binfmt.log)"
    fi
    grep -qx enabled "$binfmt/qemu-aarch64" || skip "qemu-aarch64 binfmt entry is not enabled"
}

# Without the F (fix binary) flag the kernel opens the interpreter inside the chroot,
# so it has to exist there under the same path.
copy_interpreter_if_needed() {
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64 interpreter
    grep -q '^flags:.*F' "$entry" && return
    interpreter=$(awk '$1 == "interpreter" { print $2 }' "$entry")
    mkdir -p "$ROOT$(dirname "$interpreter")"
    cp "$interpreter" "$ROOT$interpreter"
}

build_root() {
    local mirror stamp="$SUITE arm64 $PACKAGES"
    if [ -f "$ROOT/$ROOT_STAMP_NAME" ] && [ "$(cat "$ROOT/$ROOT_STAMP_NAME")" = "$stamp" ]; then
        step "reusing arm64 root $ROOT"
        return
    fi
    mirror=$(debian_mirror)
    step "debootstrap $SUITE arm64 from $mirror (several minutes under qemu)"
    rm -rf "$ROOT" "$ROOT.partial"
    if ! timeout "$DEBOOTSTRAP_TIMEOUT_S" debootstrap --arch=arm64 --variant=minbase \
            --include="$PACKAGES" "$SUITE" "$ROOT.partial" "$mirror" >"$LOGS/debootstrap.log" 2>&1; then
        rm -rf "$ROOT.partial"
        skip "debootstrap of $SUITE arm64 from $mirror failed: $(tail -n 1 "$LOGS/debootstrap.log")"
    fi
    echo "$stamp" >"$ROOT.partial/$ROOT_STAMP_NAME"
    mv "$ROOT.partial" "$ROOT"
}

choose_bundle() {
    local requested=${1:-${CADR_SMOKE_BUNDLE:-}}
    if [ -n "$requested" ]; then
        [ -f "$requested/manifest.yaml" ] || fail "$requested: no manifest.yaml; pass a bundle directory"
        BUNDLE=$(cd "$requested" && pwd)
    elif [ -f "$REPO/models/cadr-demo/manifest.yaml" ]; then
        BUNDLE=$REPO/models/cadr-demo
    else
        BUNDLE=$CACHE/fallback-bundle
        if [ ! -f "$BUNDLE/manifest.sig" ]; then
            step "models/cadr-demo not found; building a small demonstration bundle with TensorFlow"
            rm -rf "$BUNDLE"
            logged fallback-bundle timeout "$STEP_TIMEOUT_S" "$HOST_PYTHON" "$HELPER" bundle \
                "$BUNDLE" --key "$REPO/models/keys/cadr-demo-signing-key.pem"
        fi
    fi
    step "bundle $BUNDLE"
}

main() {
    check_host
    mkdir -p "$CACHE" "$LOGS"
    install_tools
    register_binfmt
    build_root
    copy_interpreter_if_needed
    in_root /bin/true 2>"$LOGS/exec.log" \
        || skip "cannot run arm64 programs in $ROOT: $(head -n 1 "$LOGS/exec.log")"

    local python_version glibc
    python_version=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    glibc=$(in_root getconf GNU_LIBC_VERSION | awk '{ print $2 }')
    step "arm64 root: Debian $SUITE, CPython $python_version, glibc $glibc"

    choose_bundle "$@"
    rm -rf "$ROOT$GUEST_WORK" "$HOST_WORK"
    mkdir -p "$ROOT$GUEST_WORK" "$HOST_WORK"
    logged images "$HOST_PYTHON" "$HELPER" images "$HOST_WORK/images"
    cp -r "$HOST_WORK/images" "$ROOT$GUEST_WORK/images"
    # Both sides use one snapshot, so a bundle rebuilt during the run cannot split them.
    cp -r "$BUNDLE" "$HOST_WORK/bundle"
    BUNDLE=$HOST_WORK/bundle
    cp -r "$BUNDLE" "$ROOT$GUEST_WORK/bundle"
    cp "$HELPER" "$ROOT$GUEST_WORK/"

    # arm64: wheelhouse built on the host, copied in, installed inside with no network.
    step "arm64: building the wheelhouse for aarch64, CPython $python_version, glibc $glibc"
    logged wheelhouse-arm64 timeout "$STEP_TIMEOUT_S" "$HOST_PYTHON" -m cadr_convert.wheelhouse \
        --machine aarch64 --python "$python_version" --glibc "$glibc" --project "$REPO" \
        --out "$CACHE/wheelhouse-arm64" --replace
    cp -r "$CACHE/wheelhouse-arm64" "$ROOT$GUEST_WORK/wheelhouse"
    step "arm64: installing $(grep -c -- '--hash=sha256:' "$CACHE/wheelhouse-arm64/requirements.txt") pinned wheels with no network"
    logged venv-arm64 in_root python3 -m venv "$GUEST_WORK/venv"
    logged install-arm64 in_root "$GUEST_WORK/venv/bin/pip" install --disable-pip-version-check \
        --no-index --find-links "$GUEST_WORK/wheelhouse" --require-hashes \
        -r "$GUEST_WORK/wheelhouse/requirements.txt"

    # x86-64: the same app and library versions from an x86-64 wheelhouse, on the host.
    local host_version
    host_version=$("$HOST_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    step "x86-64: building the wheelhouse for x86_64, CPython $host_version"
    logged wheelhouse-x86_64 timeout "$STEP_TIMEOUT_S" "$HOST_PYTHON" -m cadr_convert.wheelhouse \
        --machine x86_64 --python "$host_version" --project "$REPO" \
        --out "$CACHE/wheelhouse-x86_64" --replace
    step "x86-64: installing the same way into $HOST_WORK/venv"
    logged venv-x86_64 "$HOST_PYTHON" -m venv "$HOST_WORK/venv"
    logged install-x86_64 timeout "$STEP_TIMEOUT_S" "$HOST_WORK/venv/bin/pip" \
        install --disable-pip-version-check --no-index \
        --find-links "$CACHE/wheelhouse-x86_64" --require-hashes \
        -r "$CACHE/wheelhouse-x86_64/requirements.txt"

    local cpu
    for cpu in $QEMU_CPUS; do
        QEMU_CPU=$cpu
        step "arm64 on qemu $cpu: cadr-device replay and probe"
        logged "device-arm64-$cpu" in_root "$GUEST_WORK/venv/bin/cadr-device" \
            --source "$GUEST_WORK/images" --bundle "$GUEST_WORK/bundle" \
            --out "$GUEST_WORK/out-$cpu" --headless
        logged "probe-arm64-$cpu" in_root "$GUEST_WORK/venv/bin/python" \
            "$GUEST_WORK/arm64_smoke_compare.py" probe --bundle "$GUEST_WORK/bundle" \
            --images "$GUEST_WORK/images" --json "$GUEST_WORK/probe-$cpu.json"
    done

    step "x86-64: cadr-device replay and probe on the host"
    logged device-x86_64 timeout "$STEP_TIMEOUT_S" "$HOST_WORK/venv/bin/cadr-device" \
        --source "$HOST_WORK/images" --bundle "$BUNDLE" --out "$HOST_WORK/out" --headless
    logged probe-x86_64 timeout "$STEP_TIMEOUT_S" "$HOST_WORK/venv/bin/python" "$HELPER" \
        probe --bundle "$BUNDLE" --images "$HOST_WORK/images" --json "$HOST_WORK/probe.json"

    local failed=()
    for cpu in $QEMU_CPUS; do
        step "comparing arm64 on qemu $cpu with x86-64"
        "$HOST_PYTHON" "$HELPER" compare "$ROOT$GUEST_WORK/probe-$cpu.json" "$HOST_WORK/probe.json" \
            --arm64-label "arm64 (qemu $cpu)" --arm64-records "$ROOT$GUEST_WORK/out-$cpu" \
            --x86-records "$HOST_WORK/out" || failed+=("$cpu")
    done
    [ ${#failed[@]} -eq 0 ] \
        || fail "arm64 on qemu ${failed[*]} differs from x86-64 by more than the tolerance"
    step "arm64 smoke test passed"
}

main "$@"
