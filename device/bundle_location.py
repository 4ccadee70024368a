"""Where the model bundle is looked up, the same way for the replay and the camera app.

Order: the ``--bundle`` flag, ``$CADR_BUNDLE``, the configuration's ``model.bundle``
(camera app only), the installed bundle ``/var/lib/cadr/bundles/current``, then the
demonstration bundle ``models/cadr-demo`` of a source checkout. The environment variable
comes before the configuration file so that one run can be pointed at another bundle
without editing ``/etc/cadr/device.yaml``. Whichever folder is chosen, the bundle is
still verified against the trusted keys when it is loaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cadr_device.errors import BundleError

logger = logging.getLogger(__name__)

#: Environment variable naming a bundle folder.
BUNDLE_ENV = "CADR_BUNDLE"

#: Bundle that ``cadr-update`` installs on a device.
SYSTEM_BUNDLE = Path("/var/lib/cadr/bundles/current")

#: The demonstration bundle in a source checkout, relative to this package's folder.
REPOSITORY_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "cadr-demo"

#: The same bundle relative to the working directory, for a non-editable install run
#: from the checkout (``make demo``), where the package folder is in site-packages.
WORKING_DIR_BUNDLE = Path("models") / "cadr-demo"


@dataclass(frozen=True)
class BundleLocation:
    """A chosen bundle folder and the rule that chose it, for the log.

    Attributes:
        path: The bundle folder; not yet verified.
        origin: ``--bundle``, ``$CADR_BUNDLE``, ``model.bundle``, ``installed`` or
            ``repository``.
    """

    path: Path
    origin: str


def locate_bundle(explicit: Path | None, configured: Path | None = None) -> BundleLocation:
    """Return the bundle folder by the lookup order of this module and log the choice.

    Args:
        explicit: The ``--bundle`` flag, or None.
        configured: The configuration's ``model.bundle``, or None when it is not set.

    Raises:
        BundleError: If no candidate folder exists, listing every place tried.
    """
    location = _choose(explicit, configured)
    logger.info("Using bundle %s (from %s)", location.path, location.origin)
    return location


def _choose(explicit: Path | None, configured: Path | None) -> BundleLocation:
    if explicit is not None:
        return BundleLocation(explicit, "--bundle")
    from_env = os.environ.get(BUNDLE_ENV)
    if from_env:
        return BundleLocation(Path(from_env), f"${BUNDLE_ENV}")
    if configured is not None:
        return BundleLocation(configured, "model.bundle")

    candidates = (
        (SYSTEM_BUNDLE, "installed"),
        (REPOSITORY_BUNDLE, "repository"),
        (WORKING_DIR_BUNDLE.absolute(), "repository"),
    )
    for candidate, origin in candidates:
        if candidate.is_dir():
            return BundleLocation(candidate, origin)
    tried = ", ".join(str(path) for path, _ in candidates)
    raise BundleError(SYSTEM_BUNDLE, f"no bundle given and no bundle found at {tried}; pass "
                      f"--bundle with a folder made by cadr-convert, or set ${BUNDLE_ENV}")
