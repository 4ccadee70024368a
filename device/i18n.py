"""Choosing the on-screen language and loading its gettext catalog.

On-screen text, printed results and records' display strings are translated; logs and
error messages for engineers stay English. Message ids are the English text. Catalogs
live in ``cadr_device/locale/<lang>/LC_MESSAGES/cadr.mo`` and are compiled from the
``.po`` files by ``scripts/compile-catalogs.py``.
"""

from __future__ import annotations

import gettext
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

DOMAIN = "cadr"
LOCALE_DIR = Path(__file__).with_name("locale")

#: Languages with a catalog; anything else falls back to English.
SUPPORTED = ("en", "ja")
DEFAULT_LANGUAGE = "en"

#: Environment variables consulted in order when no locale is given, as POSIX does for
#: LC_MESSAGES, with the app's own ``CADR_LOCALE`` first.
LOCALE_VARIABLES = ("CADR_LOCALE", "LC_ALL", "LC_MESSAGES", "LANG")


def noop(message: str) -> str:
    """Mark a message for catalog extraction without translating it at import time.

    Modules import it as ``_noop``, the name the catalog check looks for.
    """
    return message


def resolve_language(locale: str | None = None) -> str:
    """Return ``"ja"`` or ``"en"`` for a locale name, else for the environment.

    Any value starting with ``ja`` (``ja``, ``ja_JP.UTF-8``) selects Japanese; every other
    value, including ``C`` and ``POSIX``, selects English.
    """
    value = locale
    if not value:
        value = next((os.environ[name] for name in LOCALE_VARIABLES if os.environ.get(name)), "")
    return "ja" if value.lower().startswith("ja") else DEFAULT_LANGUAGE


def translator(locale: str | None = None) -> gettext.NullTranslations:
    """Return the translations for ``locale`` (see :func:`resolve_language`).

    A missing catalog is logged as a warning and English text is used, so a broken
    installation still shows every message.
    """
    language = resolve_language(locale)
    try:
        return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language])
    except OSError:
        logger.warning("No %s catalog for %r in %s; showing English text", DOMAIN, language,
                       LOCALE_DIR)
        return gettext.NullTranslations()
