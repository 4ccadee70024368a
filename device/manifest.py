"""The bundle manifest: schema, parsing and validation.

A bundle directory holds ``manifest.yaml``; this module turns its text into a typed
:class:`Manifest` or raises :class:`~cadr_device.errors.BundleError` naming the field.
The format is documented in ``docs/bundle-format.md``; every key listed there is
checked here, and unknown top-level keys are rejected so a typo cannot hide a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cadr_device.errors import BundleError
from cadr_device.preprocess import PreprocessRule

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
SIGNATURE_NAME = "manifest.sig"

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

TOP_LEVEL_KEYS = frozenset({
    "schema_version", "name", "version", "created", "demonstration_only", "intended_use",
    "labels", "positive_label", "model", "preprocess", "decision", "toolchain",
    "provenance", "selftest", "accelerators", "min_app_version", "files",
})


@dataclass(frozen=True)
class ModelSpec:
    """The model file and its tensor contract."""

    file: str
    input_dtype: str
    color_order: str
    input_scale: float
    input_zero_point: int
    output_kind: str
    positive_index: int


@dataclass(frozen=True)
class Decision:
    """The operating point: probability at or above ``threshold`` means the positive class."""

    threshold: float
    target_sensitivity: float
    sensitivity: float
    specificity: float
    validation_images: int


@dataclass(frozen=True)
class SelfTestCase:
    """One golden input image (lossless PNG at the model's input size) and its expected output."""

    file: str
    probability: float


@dataclass(frozen=True)
class SelfTest:
    """Golden inputs with expected probabilities and the allowed absolute difference."""

    cases: tuple[SelfTestCase, ...]
    tolerance: float


@dataclass(frozen=True)
class Manifest:
    """A validated bundle manifest; ``raw`` keeps the parsed YAML for reports."""

    name: str
    version: str
    created: str
    demonstration_only: bool
    intended_use: str
    labels: tuple[str, ...]
    positive_label: str
    model: ModelSpec
    preprocess: PreprocessRule
    decision: Decision
    selftest: SelfTest
    files: dict[str, str]
    min_app_version: str
    accelerators: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def model_id(self) -> str:
        """Name and version, as logs and records cite the model."""
        return f"{self.name}@{self.version}"

    @property
    def negative_label(self) -> str:
        """The label that is not the positive one."""
        return next(label for label in self.labels if label != self.positive_label)


def parse_manifest(text: str, path: Path) -> Manifest:
    """Parse and validate manifest text read from ``path``.

    Raises:
        BundleError: Naming ``path`` and the offending field.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BundleError(path, f"manifest is not valid YAML ({e}); rebuild the bundle") from e
    if not isinstance(data, dict):
        raise BundleError(path, "manifest must be a YAML mapping; rebuild the bundle")

    reader = _Reader(path, data)
    version = reader.integer("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            path, f"schema version {version} is not supported (this app reads {SCHEMA_VERSION}); "
            "convert the model again with a matching cadr-convert", "schema_version",
        )
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise BundleError(path, f"unknown key; allowed keys are {sorted(TOP_LEVEL_KEYS)}",
                          unknown[0])

    labels = reader.labels()
    positive = reader.string("positive_label")
    if positive not in labels:
        raise BundleError(path, f"positive label {positive!r} is not one of {list(labels)}",
                          "positive_label")

    return Manifest(
        name=reader.matching("name", _NAME, "lower-case letters, digits, '.', '_' or '-'"),
        version=reader.matching("version", _SEMVER, "a semantic version such as 1.2.0"),
        created=reader.string("created"),
        demonstration_only=reader.boolean("demonstration_only"),
        intended_use=reader.string("intended_use"),
        labels=labels,
        positive_label=positive,
        model=_model_spec(reader, labels),
        preprocess=_preprocess_rule(reader),
        decision=_decision(reader),
        selftest=_selftest(reader),
        files=reader.file_hashes(),
        min_app_version=reader.matching("min_app_version", _SEMVER, "a semantic version"),
        accelerators=reader.mapping("accelerators", required=False),
        raw=data,
    )


def _model_spec(reader: _Reader, labels: tuple[str, ...]) -> ModelSpec:
    model = reader.sub("model")
    inp = model.sub("input")
    out = model.sub("output")
    spec = ModelSpec(
        file=model.string("file"),
        input_dtype=inp.choice("dtype", ("uint8",)),
        color_order=inp.choice("color_order", ("RGB",)),
        input_scale=inp.number("scale"),
        input_zero_point=inp.integer("zero_point"),
        output_kind=out.choice("kind", ("sigmoid", "softmax")),
        positive_index=out.integer("positive_index"),
    )
    if spec.input_scale != 1.0 or spec.input_zero_point != 0:
        raise BundleError(
            reader.path, "the model must take raw uint8 pixels (scale 1.0, zero point 0); "
            "convert it again with cadr-convert, which folds normalisation into the graph",
            "model.input.scale",
        )
    if not 0 <= spec.positive_index < len(labels):
        raise BundleError(reader.path, f"must index one of {len(labels)} labels",
                          "model.output.positive_index")
    return spec


def _preprocess_rule(reader: _Reader) -> PreprocessRule:
    pre = reader.sub("preprocess")
    model_input = reader.sub("model").sub("input")
    try:
        return PreprocessRule(
            width=model_input.integer("width"),
            height=model_input.integer("height"),
            crop=pre.string("crop"),
            crop_fraction=pre.number("crop_fraction"),
            resample=pre.string("resample"),
        )
    except ValueError as e:
        raise BundleError(reader.path, str(e), "preprocess") from e


def _decision(reader: _Reader) -> Decision:
    dec = reader.sub("decision")
    decision = Decision(
        threshold=dec.number("threshold"),
        target_sensitivity=dec.number("target_sensitivity"),
        sensitivity=dec.number("sensitivity"),
        specificity=dec.number("specificity"),
        validation_images=dec.integer("validation_images"),
    )
    for name in ("threshold", "target_sensitivity", "sensitivity", "specificity"):
        value = getattr(decision, name)
        if not 0.0 <= value <= 1.0:
            raise BundleError(reader.path, f"must be within [0, 1], got {value}",
                              f"decision.{name}")
    return decision


def _selftest(reader: _Reader) -> SelfTest:
    section = reader.sub("selftest")
    items = section.value("cases")
    if not isinstance(items, list) or not items:
        raise BundleError(reader.path, "must be a non-empty list of {file, probability}",
                          "selftest.cases")
    cases = []
    for i, item in enumerate(items):
        case = _Reader(reader.path, item, f"selftest.cases[{i}]")
        cases.append(SelfTestCase(file=case.string("file"), probability=case.number("probability")))
    return SelfTest(cases=tuple(cases), tolerance=section.number("tolerance"))


class _Reader:
    """Typed access to one mapping of the manifest, with errors that name the dotted field."""

    def __init__(self, path: Path, data: Any, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise BundleError(path, "must be a mapping", prefix or None)
        self.path = path
        self.data = data
        self.prefix = prefix

    def _field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def value(self, key: str) -> Any:
        if key not in self.data:
            raise BundleError(self.path, "required field is missing", self._field(key))
        return self.data[key]

    def sub(self, key: str) -> _Reader:
        return _Reader(self.path, self.value(key), self._field(key))

    def mapping(self, key: str, required: bool = True) -> dict[str, Any]:
        if not required and key not in self.data:
            return {}
        value = self.value(key)
        if not isinstance(value, dict):
            raise BundleError(self.path, "must be a mapping", self._field(key))
        return value

    def string(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str) or not value:
            raise BundleError(self.path, f"must be a non-empty string, got {value!r}",
                              self._field(key))
        return value

    def matching(self, key: str, pattern: re.Pattern[str], description: str) -> str:
        value = self.string(key)
        if not pattern.match(value):
            raise BundleError(self.path, f"must be {description}, got {value!r}", self._field(key))
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in allowed:
            raise BundleError(self.path, f"must be one of {list(allowed)}, got {value!r}",
                              self._field(key))
        return value

    def integer(self, key: str) -> int:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BundleError(self.path, f"must be an integer, got {value!r}", self._field(key))
        return value

    def number(self, key: str) -> float:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BundleError(self.path, f"must be a number, got {value!r}", self._field(key))
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.value(key)
        if not isinstance(value, bool):
            raise BundleError(self.path, f"must be true or false, got {value!r}", self._field(key))
        return value

    def labels(self) -> tuple[str, ...]:
        value = self.value("labels")
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, str) and v for v in value) or value[0] == value[1]):
            raise BundleError(self.path,
                              f"must be a list of two distinct label names, got {value!r}",
                              self._field("labels"))
        return tuple(value)

    def file_hashes(self) -> dict[str, str]:
        files = self.mapping("files")
        if not files:
            raise BundleError(self.path, "must list every bundle file with its sha256", "files")
        for name, digest in files.items():
            if (not isinstance(name, str) or not isinstance(digest, str)
                    or not _SHA256.match(digest)):
                raise BundleError(self.path,
                                  f"entry {name!r} must map to a lower-case sha256 hex digest",
                                  "files")
        return dict(files)
