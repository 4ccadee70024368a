#!/usr/bin/env bash
# Create the IMX500 toolchain environment used by `cadr-convert --target imx500`.
#
# Sony's converter (imx500-converter[tf] 3.19, through uni-tensorflow 3.19) and its
# quantizer (model-compression-toolkit 2.5) need TensorFlow 2.15 (Keras 2) and numpy < 2,
# which cannot share the main venv's TensorFlow 2.21 and numpy 2. They live in their own
# venv; the converter runs them as a subprocess and never imports them.
#
# Usage: scripts/imx500-toolchain.sh [VENV_DIR]    (default: .cache/imx500-venv)
# Environment: PYTHON (an interpreter 3.10 or 3.11), CADR_IMX500_FORCE=1 to rebuild.
#
# Idempotent: a stamp file records the pinned requirements; a venv whose stamp matches
# is left alone. The converter's Java 17 runtime is installed with apt when `java` is
# missing and this runs as root; otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_DIR="${1:-.cache/imx500-venv}"
STAMP="$VENV_DIR/.cadr-toolchain"

# The versions pip resolved together on Python 3.11 when this script was written:
# uni-tensorflow 3.19.0 requires tensorflow>=2.14,<2.16 and mct-quantizers~=1.6, which
# rules out model-compression-toolkit 2.6 (it needs mct-quantizers~=1.7).
REQUIREMENTS=(
    "imx500-converter[tf]==3.19.2"
    "model-compression-toolkit==2.5.1"
    "tensorflow==2.15.1"
    "numpy>=1.24,<2"
)
STAMP_TEXT="$(printf '%s\n' "${REQUIREMENTS[@]}")"

say() { printf 'imx500-toolchain: %s\n' "$*"; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3.10 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 11) else 1)'; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_java() {
    if command -v java >/dev/null 2>&1; then
        say "Java present: $(java -version 2>&1 | head -n 1)"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "Java is missing and this is not root; run: sudo apt-get install openjdk-17-jre-headless"
        return 1
    fi
    say "installing openjdk-17-jre-headless with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless
    say "Java installed: $(java -version 2>&1 | head -n 1)"
}

ensure_java

if [ "${CADR_IMX500_FORCE:-0}" != "1" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] \
        && [ -x "$VENV_DIR/bin/imxconv-tf" ]; then
    say "toolchain already installed in $VENV_DIR; nothing to do (CADR_IMX500_FORCE=1 rebuilds it)"
    exit 0
fi

if ! PYTHON_BIN="$(find_python)"; then
    say "no Python 3.10 or 3.11 found; uni-tensorflow 3.19 supports only those. Set PYTHON=/path/to/python3.11"
    exit 1
fi

start=$(date +%s)
say "creating $VENV_DIR with $PYTHON_BIN ($("$PYTHON_BIN" --version 2>&1))"
rm -rf "$VENV_DIR"
mkdir -p "$(dirname "$VENV_DIR")"
"$PYTHON_BIN" -m venv "$VENV_DIR"
"$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
say "installing ${REQUIREMENTS[*]}"
"$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"

# Import check: the driver needs these modules and this command.
"$VENV_DIR/bin/python" -c 'import model_compression_toolkit, tensorflow, numpy; print("imx500-toolchain: TensorFlow", tensorflow.__version__, "MCT", model_compression_toolkit.__version__, "numpy", numpy.__version__)'
"$VENV_DIR/bin/imxconv-tf" --version >/dev/null

printf '%s' "$STAMP_TEXT" > "$STAMP"
say "toolchain ready in $VENV_DIR after $(( $(date +%s) - start )) s"
