"""The images, models and bundles every measurement shares, built once per run.

Generated lesion sets are cached in ``.cache/bench/lesions/`` because ``cadr-lesions`` is
deterministic: the same seed, count and size give byte-identical files. Models are
trained briefly on those images (see :func:`train_classifier`) and converted with the
real ``cadr_convert`` pipeline into bundles signed with the demo key; they are cached in
``.cache/bench/models/`` so later runs measure the same models (``--retrain`` rebuilds).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import REPO

logger = logging.getLogger(__name__)

CACHE = REPO / ".cache" / "bench"
LESION_CACHE = CACHE / "lesions"
MODEL_CACHE = CACHE / "models"

#: The repository's default bundle; it is used for the device measurements when present.
DEFAULT_BUNDLE = REPO / "models" / "cadr-demo"

#: The demo signing key; it may sign only bundles marked demonstration_only.
DEMO_KEY = REPO / "models" / "keys" / "cadr-demo-signing-key.pem"

LABELS = ("non_severe", "severe")
POSITIVE = "severe"

#: Side of the generated images in pixels: the 0.8 centre crop (179 px) is larger than
#: the 128-pixel model input and a little smaller than the 224-pixel one.
IMAGE_SIZE = 224

#: Lenient quality gate: the bench measures fidelity, it does not reject models.
LENIENT_GATE = {"max_auc_drop": 1.0, "min_agreement": 0.0, "min_output_spread": 0.0}


@dataclass(frozen=True)
class Sizes:
    """Image counts per class and training lengths of one run mode."""

    train_per_class: int
    validation_per_class: int
    test_per_class: int
    small_epochs: int
    large_epochs: int
    with_large: bool


FULL = Sizes(train_per_class=150, validation_per_class=60, test_per_class=100,
             small_epochs=8, large_epochs=6, with_large=True)
QUICK = Sizes(train_per_class=20, validation_per_class=15, test_per_class=15,
              small_epochs=1, large_epochs=1, with_large=False)
TINY = Sizes(train_per_class=8, validation_per_class=6, test_per_class=6,
             small_epochs=1, large_epochs=1, with_large=False)

#: Sizes of each run mode: ``full`` is the quoted run, ``quick`` a fast subset, ``tiny``
#: the plumbing check of the tests, whose numbers mean nothing.
SIZES = {"full": FULL, "quick": QUICK, "tiny": TINY}


@dataclass(frozen=True)
class ModelSpec:
    """A classifier the bench trains: backbone, width multiplier and square input side.

    Attributes:
        architecture: A backbone name of ``cadr_convert.train.model.build_model``.
    """

    name: str
    architecture: str
    alpha: float
    size: int
    epochs: int
    flips: bool = True


@dataclass
class TrainedModel:
    """A bench-trained model and everything derived from it.

    Attributes:
        spec: What was trained.
        keras_path: The saved ``.keras`` model (normalised float input).
        bundle: The signed int8 bundle made by ``cadr_convert.convert_int8``.
        float_tflite: A float32 ``.tflite`` of the same wrapped model (raw 0..255 input).
        conversion: The converter's validation summary, as in its report.
        timings_s: Wall time of training and conversion when it was built, in seconds.
        cached: True when an earlier run built it and this run reused it.
    """

    spec: ModelSpec
    keras_path: Path
    bundle: Path
    float_tflite: Path
    conversion: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    @property
    def int8_tflite(self) -> Path:
        return self.bundle / "model.tflite"


def lesion_set(role: str, seed: int, per_class: int) -> Path:
    """Return a cached generated lesion folder (``non_severe/``, ``severe/``), making it once."""
    folder = LESION_CACHE / f"{role}-s{seed}-n{per_class}-{IMAGE_SIZE}"
    if folder.is_dir():
        return folder

    from cadr_convert.lesions.generator import write_dataset

    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("Generating %d images per class into %s (cached for later runs)",
                per_class, folder)
    write_dataset(staging, per_class, seed, IMAGE_SIZE, jobs=2)
    staging.rename(folder)
    return folder


def labelled(folder: Path) -> tuple[list[Path], np.ndarray]:
    """Return the image files of a labelled folder and 1 for the positive class, else 0."""
    files: list[Path] = []
    labels: list[int] = []
    for label in LABELS:
        for path in sorted((folder / label).glob("*.jpg")):
            files.append(path)
            labels.append(int(label == POSITIVE))
    return files, np.asarray(labels, dtype=np.int64)


def train_classifier(spec: ModelSpec, train_dir: Path, out: Path, seed: int = 0) -> Path:
    """Train a classifier briefly on generated images and save it as ``.keras``.

    The backbone comes from ``cadr_convert.train.model.build_model`` (random initial
    weights, nothing downloaded). Inputs go through the device's crop and resize and the
    mobilenet normalisation, as ``cadr-train`` does, but without its tf.data augmentation:
    when ``spec.flips`` is set, horizontal flips double the set instead. A few epochs
    from scratch leave the batch-normalisation moving statistics far from the data, so
    two passes in training mode without weight updates re-estimate them before saving.
    """
    import keras

    from cadr_convert.dataset import labelled_files, load_inputs
    from cadr_convert.folding import normalise
    from cadr_convert.train.model import build_model
    from cadr_device.preprocess import PreprocessRule

    keras.utils.set_random_seed(seed)
    rule = PreprocessRule(spec.size, spec.size)
    images = load_inputs(labelled_files(train_dir, LABELS), rule, f"{spec.name} training images")
    x = normalise(images.inputs, "mobilenet")
    y = np.asarray([g == POSITIVE for g in images.groups], dtype=np.float32)
    if spec.flips:
        x = np.concatenate([x, x[:, :, ::-1, :]])
        y = np.concatenate([y, y])

    model = build_model(spec.size, spec.size, spec.alpha, dropout=0.2,
                        architecture=spec.architecture)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy())
    model.fit(x, y, epochs=spec.epochs, batch_size=16, shuffle=True, verbose=0)

    for _ in range(2):
        for start in range(0, len(x), 32):
            model(x[start:start + 32], training=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


def convert_bundle(spec: ModelSpec, keras_path: Path, calibration: Path, validation: Path,
                   out: Path) -> dict[str, Any]:
    """Convert a bench model with ``cadr_convert.convert_int8`` into a signed demo bundle.

    Returns:
        The converter's validation mapping (float and int8 ROC AUC, threshold, agreement).
    """
    from cadr_convert.context import GateLimits
    from cadr_convert.convert import ConversionRequest, convert_int8

    request = ConversionRequest(
        model=keras_path, calibration=calibration, validation=validation, out=out,
        name=f"bench-{spec.name}", version="0.0.1", signing_key=DEMO_KEY,
        labels=LABELS, positive_label=POSITIVE, normalisation="mobilenet",
        input_size=(spec.size, spec.size), calibration_count=100,
        allow_small_calibration=True, gate=GateLimits(**LENIENT_GATE),
        demonstration_only=True, force=True,
    )
    result = convert_int8(request)
    return result.validation.as_dict()


def float_tflite(keras_path: Path, size: int, out: Path) -> Path:
    """Write a float32 ``.tflite`` of the same wrapped model the int8 bundle came from."""
    import keras

    from cadr_convert.folding import wrap_with_normalisation
    from cadr_convert.quantize import convert_float

    model = keras.models.load_model(keras_path, compile=False)
    wrapped = wrap_with_normalisation(model, "mobilenet", size, size)
    out.write_bytes(convert_float(wrapped))
    return out


def dihedral_variants(sources: list[Path], count: int, out: Path) -> Path:
    """Write ``count`` distinct JPEGs made by flipping and rotating ``sources``.

    The scaling measurement needs 1,000 calibration images; generating them would cost
    minutes, and the converter's time and memory depend on the number of images, not on
    how they were made.
    """
    out.mkdir(parents=True, exist_ok=True)
    transforms = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90,
                  Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
                  Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.TRANSPOSE,
                  Image.Transpose.TRANSVERSE]
    written = 0
    for transform in transforms:
        for source in sources:
            if written == count:
                return out
            with Image.open(source) as image:
                variant = image.convert("RGB") if transform is None else image.transpose(transform)
                variant.save(out / f"{written:05d}.jpg", quality=90)
            written += 1
    if written < count:
        raise ValueError(f"only {written} variants from {len(sources)} images, need {count}")
    return out


def enlarge(source: Path, size: tuple[int, int], out: Path, quality: int = 90) -> Path:
    """Write ``source`` scaled (bicubic) to a camera-sized JPEG at ``out``."""
    with Image.open(source) as image:
        image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(out, quality=quality)
    return out


class Workspace:
    """Per-run state: scratch folder, sizes, and lazily built sets, models and bundles."""

    def __init__(self, work: Path, sizes: Sizes, retrain: bool = False) -> None:
        self.work = work
        self.sizes = sizes
        self.retrain = retrain
        self._models: dict[str, TrainedModel] = {}

    def train_set(self) -> Path:
        return lesion_set("train", 101, self.sizes.train_per_class)

    def validation_set(self) -> Path:
        return lesion_set("val", 303, self.sizes.validation_per_class)

    def test_set(self) -> Path:
        return lesion_set("test", 202, self.sizes.test_per_class)

    def default_bundle_test_set(self) -> Path:
        """A test set for ``models/cadr-demo``, with a seed its recipe did not use."""
        return lesion_set("demo-test", 404, self.sizes.test_per_class)

    def model(self, spec: ModelSpec) -> TrainedModel:
        """Return ``spec`` trained, converted and float-exported, from the cache when present.

        The cache key is the spec and the training set, so a change to either retrains;
        ``--retrain`` (``self.retrain``) rebuilds regardless, for example after a change
        to the converter.
        """
        if spec.name in self._models:
            return self._models[spec.name]

        train_dir = self.train_set()
        folder = MODEL_CACHE / f"{spec.name}-e{spec.epochs}-{train_dir.name}"
        facts_path = folder / "facts.json"
        if self.retrain or not facts_path.is_file():
            self._build(spec, train_dir, folder)
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        trained = TrainedModel(spec, folder / f"{spec.name}.keras", folder / "bundle",
                               folder / "float32.tflite", facts["conversion"],
                               facts["timings_s"], cached=facts["built_by_pid"] != os.getpid())
        self._models[spec.name] = trained
        return trained

    def _build(self, spec: ModelSpec, train_dir: Path, folder: Path) -> None:
        import time

        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        timings: dict[str, float] = {}

        start = time.perf_counter()
        keras_path = train_classifier(spec, train_dir, staging / f"{spec.name}.keras")
        timings["train_s"] = round(time.perf_counter() - start, 1)

        start = time.perf_counter()
        conversion = convert_bundle(spec, keras_path, train_dir, self.validation_set(),
                                    staging / "bundle")
        timings["convert_s"] = round(time.perf_counter() - start, 1)

        float_tflite(keras_path, spec.size, staging / "float32.tflite")
        facts = {"conversion": conversion, "timings_s": timings, "built_by_pid": os.getpid()}
        (staging / "facts.json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        logger.info("Model %s built and cached in %s: %s", spec.name, folder, timings)

    def small_spec(self) -> ModelSpec:
        """Return the default bundle's architecture, trained much more briefly.

        ``scripts/build-demo-model.sh`` builds the default bundle with the small separable
        backbone at alpha 1.0 and 128 x 128 pixels.
        """
        return ModelSpec("separable-1.0-128", "separable", 1.0, 128, self.sizes.small_epochs)

    def large_spec(self) -> ModelSpec:
        """Return the larger backbone: MobileNetV2 alpha 1.0 at 224 x 224."""
        return ModelSpec("mobilenetv2-1.0-224", "mobilenetv2", 1.0, 224,
                         self.sizes.large_epochs, flips=False)

    def device_bundle(self) -> tuple[Path, str]:
        """Return the bundle for device measurements and where it came from.

        The repository's default bundle when it exists and verifies with the packaged
        keys, else the bench-trained small bundle (same recipe, demo key).
        """
        from cadr_device.bundle import load_bundle
        from cadr_device.errors import CadrError
        from cadr_device.signing import Keyring, default_key_dir

        if DEFAULT_BUNDLE.is_dir():
            try:
                load_bundle(DEFAULT_BUNDLE, Keyring.from_directory(default_key_dir()))
                return DEFAULT_BUNDLE, "models/cadr-demo"
            except CadrError as e:
                logger.warning("Default bundle %s does not verify (%s); using the bench one",
                               DEFAULT_BUNDLE, e)
        return self.model(self.small_spec()).bundle, "bench-trained (same recipe)"
