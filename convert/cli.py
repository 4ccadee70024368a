"""Command line of ``cadr-convert --int8``: options, logging and exit codes.

Exit codes: 0 bundle written, 2 usage error, 3 input error, 4 quality gate failed,
5 conversion or final bundle check failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from cadr_convert.context import GateLimits
from cadr_convert.conversion_errors import EXIT_OK, EXIT_USAGE, ConversionError
from cadr_convert.convert import (
    ACCELERATOR_TARGETS,
    CPU_TARGET,
    DEFAULT_INTENDED_USE,
    ConversionRequest,
    convert_int8,
)
from cadr_convert.dataset import MIN_CALIBRATION_IMAGES
from cadr_convert.folding import NORMALISATIONS
from cadr_convert.settings import DEFAULT_CROP_FRACTION, DEFAULT_RESAMPLE
from cadr_device.preprocess import RESAMPLING

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^(\d+)(?:x(\d+))?$")

EPILOG = """\
exit codes: 0 bundle written; 2 usage error; 3 input error (model, labels, images,
signing key, output folder); 4 quality gate failed (report in OUT.rejected/, no bundle);
5 conversion or final bundle check failed.

A cadr-train.json beside the model supplies --labels, --positive-label,
--normalisation, --input-size, --crop-fraction and --resample; an option that
contradicts it is an error.
"""


def _labels(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected NEGATIVE,POSITIVE, got {text!r}")
    return parts[0], parts[1]


def _size(text: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0 or (match.group(2) and int(match.group(2)) == 0):
        raise argparse.ArgumentTypeError(f"expected N or WIDTHxHEIGHT in pixels, got {text!r}")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; every option's help names its unit and default."""
    parser = argparse.ArgumentParser(
        prog="cadr-convert",
        description="Convert a Keras binary classifier into a signed full-integer int8 "
                    "TFLite model bundle, validated against the float model.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--int8", action="store_true", required=True,
                        help="full-integer int8 conversion with uint8 raw-pixel input (required; "
                             "the only mode)")
    parser.add_argument("model", type=Path,
                        help="source model: .keras or .h5 file, or a SavedModel folder")
    parser.add_argument("--calibration", type=Path, required=True, metavar="DIR",
                        help="folder of JPEG/PNG images for the representative dataset, searched "
                             "recursively; first-level subfolders are sampled evenly")
    parser.add_argument("--validation", type=Path, required=True, metavar="DIR",
                        help="labelled folder with one subfolder per label, searched recursively")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="bundle folder to create; rejected if it exists unless --force")

    parser.add_argument("--signing-key", type=Path, metavar="PEM",
                        help="Ed25519 private key that signs manifest.yaml (required; the demo "
                             "key models/keys/cadr-demo-signing-key.pem only with "
                             "--demonstration-only)")
    parser.add_argument("--name", required=True,
                        help="bundle name: lower-case letters, digits, '.', '_' or '-'")
    parser.add_argument("--version", required=True, help="bundle version, MAJOR.MINOR.PATCH")

    parser.add_argument("--labels", type=_labels, metavar="NEGATIVE,POSITIVE",
                        help="the two class names in the model's output order (default: from "
                             "cadr-train.json)")
    parser.add_argument("--positive-label",
                        help="the severe class (default: the second label)")
    parser.add_argument("--normalisation", choices=NORMALISATIONS,
                        help="pixel scaling the model was trained with, folded into the graph: "
                             "mobilenet x/127.5-1, unit x/255, imagenet (x/255-mean)/std, none "
                             "raw 0..255 (default: from cadr-train.json)")
    parser.add_argument("--input-size", type=_size, metavar="N|WxH",
                        help="model input size in pixels (default: the model's fixed input "
                             "shape, else cadr-train.json)")
    parser.add_argument("--crop-fraction", type=float, metavar="FRACTION",
                        help="side of the centred square crop as a fraction of the shorter image "
                             f"side, in (0, 1] (default: from cadr-train.json, else "
                             f"{DEFAULT_CROP_FRACTION})")
    parser.add_argument("--resample", choices=sorted(RESAMPLING),
                        help="resize filter (default: from cadr-train.json, else "
                             f"{DEFAULT_RESAMPLE})")

    parser.add_argument("--calibration-count", type=int, default=300, metavar="N",
                        help="calibration images sampled, in images (default: %(default)s; "
                             f"fewer than {MIN_CALIBRATION_IMAGES} is an error)")
    parser.add_argument("--allow-small-calibration", action="store_true",
                        help=f"accept fewer than {MIN_CALIBRATION_IMAGES} calibration images "
                             "(test models only)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the calibration sampling (default: %(default)s)")

    parser.add_argument("--target-sensitivity", type=_fraction, default=0.90,
                        help="sensitivity the int8 threshold must reach on validation, 0..1 "
                             "(default: %(default)s)")
    defaults = GateLimits()
    parser.add_argument("--max-auc-drop", type=float, default=defaults.max_auc_drop,
                        help="gate: largest allowed float minus int8 ROC AUC "
                             "(default: %(default)s)")
    parser.add_argument("--min-agreement", type=_fraction, default=defaults.min_agreement,
                        help="gate: smallest allowed fraction of validation images where float "
                             "and int8 decide alike (default: %(default)s)")
    parser.add_argument("--min-output-spread", type=_fraction, default=defaults.min_output_spread,
                        help="gate: smallest allowed max minus min int8 probability; below it the "
                             "output counts as constant (default: %(default)s)")

    parser.add_argument("--demonstration-only", action="store_true",
                        help="mark the bundle 'demonstration model – not for clinical use'")
    parser.add_argument("--intended-use", default=DEFAULT_INTENDED_USE,
                        help="intended-use statement stored in the manifest (default: the "
                             "screening-aid statement)")

    parser.add_argument("--target", action="append", choices=(CPU_TARGET, *ACCELERATOR_TARGETS),
                        default=None,
                        help="extra accelerator model to build; repeatable (cpu is always "
                             "built)")

    parser.add_argument("--layer-errors", action="store_true",
                        help="add the per-layer quantization error to the report even when "
                             "the gate passes (always added when it fails)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out folder")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def request_from_args(args: argparse.Namespace) -> ConversionRequest:
    """Turn parsed options into a :class:`ConversionRequest`."""
    return ConversionRequest(
        model=args.model, calibration=args.calibration, validation=args.validation,
        out=args.out, name=args.name, version=args.version, signing_key=args.signing_key,
        labels=args.labels, positive_label=args.positive_label,
        normalisation=args.normalisation, input_size=args.input_size,
        crop_fraction=args.crop_fraction, resample=args.resample,
        calibration_count=args.calibration_count, seed=args.seed,
        allow_small_calibration=args.allow_small_calibration,
        target_sensitivity=args.target_sensitivity,
        gate=GateLimits(args.max_auc_drop, args.min_agreement, args.min_output_spread),
        demonstration_only=args.demonstration_only, intended_use=args.intended_use,
        targets=(CPU_TARGET, *(args.target or ())), layer_errors=args.layer_errors,
        force=args.force,
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``cadr-convert`` and return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # TensorFlow's C++ start-up messages would bury the progress lines; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if args.calibration_count <= 0:
        print("cadr-convert: --calibration-count must be positive", file=sys.stderr)
        return EXIT_USAGE

    try:
        result = convert_int8(request_from_args(args))
    except ConversionError as e:
        print(f"cadr-convert: {e}", file=sys.stderr)
        return e.exit_code

    validation = result.validation
    print(f"cadr-convert: wrote {result.bundle}: int8 ROC AUC {validation.int8_auc:.4f} "
          f"(float {validation.float_auc:.4f}), threshold {validation.threshold:.4f}, "
          f"sensitivity {validation.int8_point.sensitivity:.4f}, specificity "
          f"{validation.int8_point.specificity:.4f}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
