"""``cadr-lesions``: write a labelled folder of generated schematic lesion images."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cadr_convert.lesions.generator import DEFAULT_SIZE, LABELS, write_dataset


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``cadr-lesions``."""
    parser = argparse.ArgumentParser(
        prog="cadr-lesions",
        description=(
            "Write generated close-up skin images into OUT/non_severe/ and OUT/severe/. "
            "They are schematic drawings for exercising the pipeline, not clinical images."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, required=True, help="images per class")
    parser.add_argument("--seed", type=int, required=True,
                        help="seed of the set; the same seed gives byte-identical files")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"side of each square image in pixels (default {DEFAULT_SIZE})")
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes; the output does not depend on it (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``cadr-lesions`` and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        index = write_dataset(args.out, args.count, args.seed, args.size, args.jobs)
    except ValueError as e:
        logging.getLogger(__name__).error("Invalid option: %s", e)
        return 2
    except OSError as e:
        logging.getLogger(__name__).error("Cannot write %s: %s", e.filename or args.out, e.strerror)
        return 1
    logging.getLogger(__name__).info("Done: %d %s images per class, index %s",
                                     args.count, "/".join(LABELS), index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
