"""Merging command-line options, the trainer's sidecar and the model's own shapes.

Precedence: an explicit option wins; the sidecar fills what the options leave open; the
model's input shape fills the input size. When two sources give different values for
the same setting the conversion stops, because a silently chosen winner could bundle a
model with the wrong labels or normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from cadr_convert.conversion_errors import InputError
from cadr_convert.folding import NORMALISATIONS
from cadr_convert.source_model import Sidecar, SourceModel

T = TypeVar("T")

#: Crop and resize used when neither an option nor the sidecar sets them; the device's
#: framing guide draws the same square.
DEFAULT_CROP_FRACTION = 0.8
DEFAULT_RESAMPLE = "bilinear"


@dataclass(frozen=True)
class Settings:
    """The settings a conversion runs with, after merging every source.

    Attributes:
        labels: (first, second) label names in the model's output order.
        positive_label: The severe class, one of ``labels``.
        positive_index: Index of ``positive_label`` in ``labels``.
        normalisation: One of :data:`cadr_convert.folding.NORMALISATIONS`.
        input_size: Model input (width, height) in pixels.
        crop_fraction: Side of the centre-square crop as a fraction of the shorter side.
        resample: Resize filter name, a key of ``cadr_device.preprocess.RESAMPLING``.
    """

    labels: tuple[str, str]
    positive_label: str
    positive_index: int
    normalisation: str
    input_size: tuple[int, int]
    crop_fraction: float = DEFAULT_CROP_FRACTION
    resample: str = DEFAULT_RESAMPLE


def _merge(name: str, option: T | None, sidecar_value: T | None,
           sidecar: Sidecar | None) -> T | None:
    if option is not None and sidecar_value is not None and option != sidecar_value:
        where = sidecar.path if sidecar else "the sidecar"
        raise InputError(f"{name} conflict: the option gives {option!r} but {where} gives "
                         f"{sidecar_value!r}; drop the option or fix the sidecar")
    return option if option is not None else sidecar_value


def resolve_settings(source: SourceModel, sidecar: Sidecar | None, *,
                     labels: tuple[str, str] | None, positive_label: str | None,
                     normalisation: str | None, input_size: tuple[int, int] | None,
                     crop_fraction: float | None = None, resample: str | None = None) -> Settings:
    """Merge options, sidecar and model shapes into :class:`Settings`.

    Raises:
        InputError: If a setting is missing, conflicting or invalid.
    """
    merged_labels = _merge("labels", labels, sidecar.labels if sidecar else None, sidecar)
    if merged_labels is None:
        raise InputError("the model does not name its labels; pass --labels NEGATIVE,POSITIVE "
                         "in the model's output order")
    if merged_labels[0] == merged_labels[1]:
        raise InputError(f"labels must be two different names, got {list(merged_labels)}")

    positive = _merge("positive label", positive_label,
                      sidecar.positive_label if sidecar else None, sidecar)
    positive = positive if positive is not None else merged_labels[1]
    if positive not in merged_labels:
        raise InputError(f"positive label {positive!r} is not one of {list(merged_labels)}")
    if source.output_kind == "sigmoid" and positive != merged_labels[1]:
        raise InputError(f"a sigmoid model's single unit is the probability of the second label "
                         f"({merged_labels[1]!r}); list the labels as NEGATIVE,POSITIVE")

    merged_normalisation = _merge("normalisation", normalisation,
                                  sidecar.normalisation if sidecar else None, sidecar)
    if merged_normalisation is None:
        raise InputError(f"pass --normalisation, one of {list(NORMALISATIONS)}: the pixel "
                         "scaling the model was trained with")
    if merged_normalisation not in NORMALISATIONS:
        raise InputError(f"normalisation {merged_normalisation!r} is not one of "
                         f"{list(NORMALISATIONS)}")

    size = _merge("input size", input_size, sidecar.input_size if sidecar else None, sidecar)
    if source.input_size is not None:
        if size is not None and size != source.input_size:
            raise InputError(f"input size {size[0]}x{size[1]} conflicts with the model's fixed "
                             f"input {source.input_size[0]}x{source.input_size[1]}")
        size = source.input_size
    if size is None:
        raise InputError("the model's input size is dynamic; pass --input-size WIDTHxHEIGHT")

    crop = _merge("crop fraction", crop_fraction,
                  sidecar.crop_fraction if sidecar else None, sidecar)
    filter_name = _merge("resample", resample, sidecar.resample if sidecar else None, sidecar)

    return Settings(merged_labels, positive, merged_labels.index(positive),
                    merged_normalisation, size,
                    DEFAULT_CROP_FRACTION if crop is None else crop,
                    DEFAULT_RESAMPLE if filter_name is None else filter_name)
