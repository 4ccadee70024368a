"""Run a bundle's golden self-test in a fresh process, as the device app would.

``python -m cadr_device.update.selftest_cli BUNDLE --keys DIR`` loads and verifies the
bundle, builds the interpreter with the app's runtime and runs the golden cases. The
installer runs it in a subprocess so a crash or hang of the runtime cannot take the
updater down. Exit code 0 means passed; otherwise the code of the error class
(3 bundle invalid, 5 no runtime, 6 self-test mismatch).

After an app update the installer runs it with the new virtual environment's Python and
``--app-version``. It then also checks that this interpreter imports that version of the
app and its command-line modules, and that a runtime loads (exit 7 otherwise). Without a
bundle argument it checks only that.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

import cadr_device
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Classifier
from cadr_device.errors import CadrError
from cadr_device.runtime import load_runtime
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring

logger = logging.getLogger(__name__)

#: Exit code when the app itself is not the expected version or cannot import.
EXIT_APP_BROKEN = 7

#: Modules the device service and the updater start from.
_APP_MODULES = ("cadr_device.cli", "cadr_device.app", "cadr_device.update.cli")


def main(argv: list[str] | None = None) -> int:
    """Verify the bundle and run its self-test; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m cadr_device.update.selftest_cli",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=None,
                        help="bundle directory (required unless --app-version is given)")
    parser.add_argument("--keys", type=Path, required=True, help="trusted key directory")
    parser.add_argument("--app-version", default=None,
                        help="check that this interpreter runs this cadr app version, its "
                        "modules import and a runtime loads")
    args = parser.parse_args(argv)
    if args.bundle is None and args.app_version is None:
        parser.error("give a bundle directory, --app-version, or both")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.app_version is not None:
        problem = check_app(args.app_version)
        if problem is not None:
            logger.error("App check failed: %s", problem)
            return EXIT_APP_BROKEN
        logger.info("App %s imports and loads a runtime", args.app_version)
    if args.bundle is None:
        return 0

    try:
        bundle = load_bundle(args.bundle, Keyring.from_directory(args.keys))
        result = run_selftest(Classifier(bundle))
    except CadrError as e:
        logger.error("Self-test of %s failed: %s", args.bundle, e)
        return e.exit_code
    logger.info("Self-test of %s passed, max difference %.4f", args.bundle,
                result.max_difference)
    return 0


def check_app(expected_version: str) -> str | None:
    """Return why this interpreter's app is unusable, or None when it imports and loads.

    Checks the installed ``cadr_device.__version__``, imports the entry modules and loads
    the interpreter runtime the way the app does.
    """
    if cadr_device.__version__ != expected_version:
        return (f"cadr_device {cadr_device.__version__} from {cadr_device.__file__} is "
                f"installed, expected {expected_version}")
    for module in _APP_MODULES:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any import failure means a broken install
            return f"import of {module} failed: {type(e).__name__}: {e}"
    try:
        runtime = load_runtime()
    except CadrError as e:
        return f"no interpreter runtime loads: {e}"
    logger.info("Runtime %s loads", runtime.label)
    return None


if __name__ == "__main__":
    sys.exit(main())
