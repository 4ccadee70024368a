"""Console-script entry points of the model-engineering tools.

The tools need the ``convert`` extra (TensorFlow, matplotlib, packaging), which a device
install leaves out. These wrappers import each tool on demand, so a device user who runs
one gets a one-line error naming the missing package and the install command instead of a
traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

#: Top-level modules that only the ``convert`` extra installs.
CONVERT_EXTRA_MODULES = frozenset({"tensorflow", "keras", "matplotlib", "packaging"})

#: Exit code when the tool's dependencies are missing (the converter's input-error code).
EXIT_MISSING_DEPENDENCY = 3


def convert_main() -> int:
    """Run ``cadr-convert``."""
    return _run("cadr-convert", "cadr_convert.cli")


def package_main() -> int:
    """Run ``cadr-package``."""
    return _run("cadr-package", "cadr_convert.package_cli")


def train_main() -> int:
    """Run ``cadr-train``."""
    return _run("cadr-train", "cadr_convert.train.cli")


def lesions_main() -> int:
    """Run ``cadr-lesions``."""
    return _run("cadr-lesions", "cadr_convert.lesions.cli")


def _run(program: str, module_name: str) -> int:
    # TensorFlow and Keras are imported lazily inside the tools, so a missing package
    # can surface while importing the module or later, once the work starts.
    try:
        module = importlib.import_module(module_name)
        main: Callable[[], int] = module.main
        return main()
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in CONVERT_EXTRA_MODULES:
            raise
        print(f"{program}: error: missing Python package {missing!r}; this tool runs on a "
              "model engineer's workstation: install it with pip install 'cadr[convert]'",
              file=sys.stderr)
        return EXIT_MISSING_DEPENDENCY
