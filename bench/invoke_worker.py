"""Time ``Interpreter.invoke`` of one ``.tflite`` file; run as a script in any venv.

This file imports only numpy and the named runtime, never cadr, so the same code runs in
the project venv (LiteRT) and in the separate numpy 1.x venv that tflite-runtime 2.14
needs. It prints one JSON object: invoke times in milliseconds, or the import error.

Usage: python invoke_worker.py --runtime ai_edge_litert --model M --threads 2 --runs 100
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from importlib import metadata

import numpy as np

#: Runtime name on the command line → module that contains ``Interpreter``.
MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime", choices=sorted(MODULES), required=True)
    parser.add_argument("--model", required=True, help=".tflite file")
    parser.add_argument("--threads", type=int, required=True, help="interpreter threads")
    parser.add_argument("--runs", type=int, required=True, help="timed invokes")
    parser.add_argument("--warmup", type=int, default=5, help="untimed invokes first")
    args = parser.parse_args()

    try:
        module = importlib.import_module(MODULES[args.runtime])
    except Exception as e:  # noqa: BLE001 - any import failure is the result to report
        print(json.dumps({"importable": False, "error": f"{type(e).__name__}: {e}"}))
        return 0

    interpreter = module.Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if detail["dtype"] == np.uint8:
        data = rng.integers(0, 256, size=detail["shape"], dtype=np.uint8)
    else:
        data = rng.uniform(0.0, 255.0, size=detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], data)

    for _ in range(args.warmup):
        interpreter.invoke()
    times_ms = []
    for _ in range(args.runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1000.0)

    distribution = args.runtime.replace("_", "-")
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "unknown"
    print(json.dumps({"importable": True, "numpy": np.__version__, "version": version,
                      "input_dtype": np.dtype(detail["dtype"]).name, "times_ms": times_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
