"""``cadr-train``: train the binary classifier from a labelled image folder."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cadr_convert.folding import NORMALISATIONS
from cadr_convert.train.model import ARCHITECTURES
from cadr_device.preprocess import RESAMPLING

logger = logging.getLogger(__name__)

EPILOG = """\
DATA (and --val) hold one subfolder per label, for example non_severe/ and severe/.
Images go through the device's own crop and resize. The saved model takes normalised
input; cadr-train.json, written beside it, records the normalisation, labels, input size
and crop, and cadr-convert reads it from there.

exit codes: 0 model written; 2 invalid option; 3 unusable data or initial weights."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``cadr-train``."""
    parser = argparse.ArgumentParser(
        prog="cadr-train",
        description="Train a small int8-friendly binary image classifier for cadr-convert, "
                    "on the CPU.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="training image folder")
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.keras)")
    parser.add_argument("--val", type=Path,
                        help="validation image folder (default: split --val-fraction off DATA)")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="validation share split off DATA without --val (default 0.15)")
    parser.add_argument("--labels", metavar="NEGATIVE,POSITIVE",
                        help="the two label subfolders, negative first "
                             "(default: the subfolders in sorted order)")
    parser.add_argument("--input-size", type=int, default=128,
                        help="model input side in pixels (default 128)")
    parser.add_argument("--crop-fraction", type=float, default=0.8,
                        help="centred square crop side as a fraction of the shorter image "
                             "side, as on the device (default 0.8)")
    parser.add_argument("--resample", choices=sorted(RESAMPLING), default="bilinear",
                        help="resize filter, as on the device (default bilinear)")
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="separable",
                        help="backbone: separable (small depthwise-separable stack, trains "
                             "from scratch) or mobilenetv2 (keras.applications, best with "
                             "--init-weights) (default separable)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="width multiplier of the backbone's channels (default 1.0)")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="mobilenet",
                        help="pixel scaling the model is trained with (default mobilenet: "
                             "x/127.5-1)")
    parser.add_argument("--epochs", type=int, default=30, help="largest number of epochs")
    parser.add_argument("--patience", type=int, default=6,
                        help="epochs without a better validation ROC AUC before stopping "
                             "(default 6)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="initial Adam learning rate, cosine-decayed (default 0.002)")
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="dropout rate before the output (default 0.2)")
    parser.add_argument("--label-smoothing", type=float, default=0.1,
                        help="share of each target moved towards 0.5, so that confident "
                             "probabilities stay below the int8 output's top step; 0 turns it "
                             "off (default 0.1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, shuffling, augmentation and split (default 0)")
    parser.add_argument("--init-weights", type=Path,
                        help="starting weights: a .keras model of the same architecture (layers "
                             "matched by name and shape), or MobileNetV2 no-top weights of the "
                             "same alpha with --architecture mobilenetv2 (never downloaded)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow CPU threads (default 0: TensorFlow's choice)")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``cadr-train`` and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    labels = None
    if args.labels:
        parts = [p.strip() for p in args.labels.split(",")]
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            logger.error("Invalid --labels %r: give two different names, NEGATIVE,POSITIVE",
                         args.labels)
            return 2
        labels = (parts[0], parts[1])

    # Imported here so that --help works without loading TensorFlow.
    from cadr_convert.train.data import TrainingDataError  # noqa: PLC0415
    from cadr_convert.train.trainer import TrainConfig, train  # noqa: PLC0415

    try:
        config = TrainConfig(
            data=args.data, out=args.out, val=args.val, labels=labels,
            input_size=args.input_size, crop_fraction=args.crop_fraction,
            resample=args.resample, architecture=args.architecture, alpha=args.alpha,
            normalisation=args.normalisation,
            epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
            learning_rate=args.learning_rate, dropout=args.dropout,
            label_smoothing=args.label_smoothing, seed=args.seed,
            val_fraction=args.val_fraction, init_weights=args.init_weights,
        )
        _set_threads(args.threads)
    except ValueError as e:
        logger.error("Invalid option: %s", e)
        return 2

    try:
        result = train(config)
    except TrainingDataError as e:
        logger.error("%s", e)
        return 3
    except ValueError as e:
        logger.error("Cannot train: %s", e)
        return 3

    logger.info("Wrote %s (validation ROC AUC %.4f); convert it with: cadr-convert --int8 %s ...",
                result.model_path, result.val_auc, result.model_path)
    return 0


def _set_threads(threads: int) -> None:
    if threads < 0:
        raise ValueError(f"--threads must be 0 or positive, got {threads}")
    if threads == 0:
        return
    import tensorflow as tf  # noqa: PLC0415

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
