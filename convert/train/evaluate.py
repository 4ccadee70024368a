"""Scoring a trained model and its int8 bundle on a held-out labelled folder.

``python -m cadr_convert.train.evaluate --model M.keras --bundle DIR --data TEST_DIR
--out metrics.json`` runs the float Keras model and the bundle's int8 model (through
the device's own classifier and LiteRT) on the same model inputs, and writes ROC AUC
for both plus sensitivity and specificity at the bundle's threshold. The model card of
the demonstration bundle quotes these numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadr_convert.folding import normalise
from cadr_convert.metrics import operating_point, roc_auc
from cadr_convert.train.data import TrainingDataError, load_labelled
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Classifier
from cadr_device.signing import Keyring, default_key_dir

logger = logging.getLogger(__name__)

#: Batch size of the float model's predictions, in images.
PREDICT_BATCH = 64


@dataclass(frozen=True)
class Evaluation:
    """Float and int8 scores of one labelled folder."""

    data: str
    images: int
    positives: int
    float_auc: float
    int8_auc: float
    auc_drop: float
    threshold: float
    int8_sensitivity: float
    int8_specificity: float
    agreement: float
    max_probability_difference: float


def evaluate(model_path: Path, bundle_dir: Path, data: Path, normalisation: str,
             key_dir: Path | None = None) -> Evaluation:
    """Score ``data`` with the float model and the verified bundle's int8 model.

    Raises:
        BundleError: If the bundle does not verify against the trusted keys.
        TrainingDataError: If the folder or an image cannot be used.
    """
    import keras  # noqa: PLC0415 - TensorFlow loads only for evaluation

    bundle = load_bundle(bundle_dir, Keyring.from_directory(key_dir or default_key_dir()))
    manifest = bundle.manifest
    labels = (manifest.negative_label, manifest.positive_label)
    inputs = load_labelled(data, labels, manifest.preprocess)

    model = keras.models.load_model(model_path, compile=False)
    float_scores = model.predict(normalise(inputs.inputs, normalisation),
                                 batch_size=PREDICT_BATCH, verbose=0).reshape(-1)

    classifier = Classifier(bundle, num_threads=2)
    int8_scores = np.array([classifier.probability(row)[0] for row in inputs.inputs])

    threshold = manifest.decision.threshold
    point = operating_point(inputs.targets, int8_scores, threshold)
    float_auc = roc_auc(inputs.targets, float_scores)
    int8_auc = roc_auc(inputs.targets, int8_scores)
    agreement = float(np.mean((float_scores >= threshold) == (int8_scores >= threshold)))
    return Evaluation(
        data=str(data), images=len(inputs), positives=int(inputs.targets.sum()),
        float_auc=round(float_auc, 4), int8_auc=round(int8_auc, 4),
        auc_drop=round(float_auc - int8_auc, 4), threshold=threshold,
        int8_sensitivity=round(point.sensitivity, 4), int8_specificity=round(point.specificity, 4),
        agreement=round(agreement, 4),
        max_probability_difference=round(float(np.abs(float_scores - int8_scores).max()), 4),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation command and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cadr_convert.train.evaluate",
        description="Score a float model and its int8 bundle on a held-out labelled folder.",
    )
    parser.add_argument("--model", type=Path, required=True, help="the .keras model")
    parser.add_argument("--bundle", type=Path, required=True, help="the bundle made from it")
    parser.add_argument("--data", type=Path, required=True,
                        help="labelled folder never used for training or threshold choice")
    parser.add_argument("--normalisation",
                        help="the model's normalisation (default: from cadr-train.json)")
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    try:
        normalisation = args.normalisation or _sidecar_normalisation(args.model)
        result = evaluate(args.model, args.bundle, args.data, normalisation)
    except (TrainingDataError, ValueError, OSError) as e:
        logger.error("Evaluation failed: %s", e)
        return 3

    text = json.dumps(asdict(result), indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


def _sidecar_normalisation(model_path: Path) -> str:
    sidecar = model_path.parent / "cadr-train.json"
    try:
        data: Any = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{sidecar}: cannot read the trainer's sidecar ({e}); "
                         "pass --normalisation") from e
    return str(data["normalisation"])


if __name__ == "__main__":
    sys.exit(main())
