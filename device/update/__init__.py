"""Field updates: signed model and app packages, atomic install, self-test, rollback, recovery.

A package (``NAME-VERSION.cadrpkg``) is a tar file holding one model bundle and a signed
package manifest. :mod:`.package` verifies every member before anything is written under
the install root, :mod:`.install` stages, self-tests and switches the ``current`` link, and
:mod:`.journal` lets ``cadr-update recover`` finish or undo an install that a power cut
interrupted. :mod:`.app_install` builds a new venv for an app package
(``cadr-app-VERSION.cadrpkg``). ``docs/updates.md`` describes the format, the flow and the
exit codes.
"""
