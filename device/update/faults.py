"""Fault injection for tests: kill the installer at a named step.

When the environment variable ``CADR_UPDATE_CRASH_AT`` names a step, the installer sends
itself SIGKILL on reaching it, as a power cut would stop it. Tests use this to prove that
``cadr-update recover`` always leaves one complete, verified bundle. Unset, it does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

CRASH_ENV = "CADR_UPDATE_CRASH_AT"


def crash_point(step: str) -> None:
    """Kill this process with SIGKILL when ``CADR_UPDATE_CRASH_AT`` equals ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        logger.warning("Crashing at step %s because %s is set", step, CRASH_ENV)
        os.kill(os.getpid(), signal.SIGKILL)
