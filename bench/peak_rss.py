"""Run a command and write its exact peak RSS; a small launcher between the bench and it.

On Linux a child's ``ru_maxrss`` also counts the address space it was forked from: exec
keeps the high-water mark of the pre-exec copy. A child forked straight from the bench
process (hundreds of MiB once TensorFlow is loaded) would report the bench's size. This
launcher is a small Python process, so the command's ``ru_maxrss`` from ``wait4`` is
its own peak unless that peak is below the launcher's RSS (about 10 MiB).

Usage: python peak_rss.py RESULT.json -- COMMAND [ARG...]
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result_path, argv = sys.argv[1], sys.argv[3:]

    pid = os.posix_spawnp(argv[0], argv, os.environ)
    # The bench stops a run that times out by signalling this launcher; pass it on.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _frame: os.kill(pid, received))

    _, status, usage = os.wait4(pid, 0)
    with open(result_path, "w", encoding="utf-8") as result:
        json.dump({"returncode": os.waitstatus_to_exitcode(status),
                   "ru_maxrss_kib": usage.ru_maxrss}, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
