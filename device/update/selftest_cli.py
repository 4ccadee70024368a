"""Run a bundle's golden self-test in a fresh process, as the device app would.

``python -m cadr_device.update.selftest_cli BUNDLE --keys DIR`` loads and verifies the
bundle, builds the interpreter with the app's runtime and runs the golden cases. The
installer runs it in a subprocess so a crash or hang of the runtime cannot take the
updater down. Exit code 0 means passed; otherwise the code of the error class
(3 bundle invalid, 5 no runtime, 6 self-test mismatch).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cadr_device.bundle import load_bundle
from cadr_device.classifier import Classifier
from cadr_device.errors import CadrError
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Verify the bundle and run its self-test; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m cadr_device.update.selftest_cli",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("--keys", type=Path, required=True, help="trusted key directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        bundle = load_bundle(args.bundle, Keyring.from_directory(args.keys))
        result = run_selftest(Classifier(bundle))
    except CadrError as e:
        logger.error("Self-test of %s failed: %s", args.bundle, e)
        return e.exit_code
    logger.info("Self-test of %s passed, max difference %.4f", args.bundle,
                result.max_difference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
