#!/bin/sh
# Build the optional tflite-runtime venv that `python -m bench` compares LiteRT against.
# tflite-runtime 2.14 (the last release) is built against numpy 1.x and fails to import
# under numpy 2, so it cannot share the project's venv; this one holds only numpy < 1.27
# and tflite-runtime. Usage: bench/tflite_runtime_venv.sh [PYTHON]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.cache/bench/tflite-runtime-venv"
python=${1:-$(command -v python3.11 || command -v python3)}

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "tflite-runtime==2.14.0" "numpy<1.27"
"$venv/bin/python" -c "import tflite_runtime.interpreter, numpy; print('tflite-runtime ready, numpy', numpy.__version__)"
