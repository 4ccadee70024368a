"""The conversion report: ``report.json``, ``report.md``, ``roc.png`` and ``score_histogram.png``.

The JSON is the record; the Markdown is the same numbers for a reader. Plots use
matplotlib's Agg back-end, so no display is needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cadr_convert.metrics import roc_curve

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
ROC_PNG = "roc.png"
HISTOGRAM_PNG = "score_histogram.png"

#: Histogram bins over probability 0..1.
HISTOGRAM_BINS = 40

#: Plot resolution in dots per inch.
PLOT_DPI = 100


def write_report(directory: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` and ``report.md`` from one report mapping."""
    text = json.dumps(_without_nan(report), indent=2, allow_nan=False,
                      default=_json_default) + "\n"
    (directory / REPORT_JSON).write_text(text, encoding="utf-8")
    (directory / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")


def _without_nan(value: Any) -> Any:
    """Replace NaN (a rate with an empty denominator) by None, which JSON can express."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to report.json")


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    """Render the report mapping as Markdown."""
    model = report["model"]
    validation = report["validation"]
    lines = [
        f"# Conversion report: {model['name']} {model['version']}",
        "",
        f"Status: **{report['status']}**" + (f" ({report['gate_failure']})"
                                            if report.get("gate_failure") else ""),
        "",
        "This compares the int8 model with its float source on the validation images. It "
        "checks the conversion; it is not a clinical validation of the model.",
        "",
    ]
    if report.get("demonstration_only"):
        lines += ["**Demonstration model – not for clinical use.**", ""]

    lines += [
        "## Validation (float vs int8)",
        "",
        "| metric | float | int8 |",
        "|---|---|---|",
        f"| ROC AUC | {_number(validation['float_auc'])} | {_number(validation['int8_auc'])} |",
    ]
    for key, title in (("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
                       ("ppv", "PPV"), ("npv", "NPV")):
        lines.append(f"| {title} at threshold | {_number(validation['float_point'][key])} | "
                     f"{_number(validation['int8_point'][key])} |")
    lines += [
        "",
        f"- Threshold (chosen on int8 for sensitivity ≥ {validation['target_sensitivity']}): "
        f"{validation['threshold']:.4f}",
        f"- Decision agreement: {validation['agreement']:.4f}",
        f"- Probability difference: mean {validation['mean_abs_difference']:.4f}, "
        f"max {validation['max_abs_difference']:.4f}",
        f"- ROC AUC drop: {validation['auc_drop']:.4f}",
        f"- int8 output spread: {validation['int8_spread']:.4f}",
        "",
        "## Quality gate",
        "",
    ]
    lines += [f"- {name}: {_number(limit)}" for name, limit in report["gate"].items()]
    lines += ["", "## Data", ""]
    for name in ("calibration", "validation_set"):
        section = report[name]
        counts = ", ".join(f"{k}: {v}" for k, v in section["per_class"].items())
        lines.append(f"- {name.replace('_set', '')}: {section['images']} images from "
                     f"`{section['folder']}` ({counts})")
    lines.append(f"- calibration seed: {report['calibration']['seed']}")

    if report.get("worst_layers"):
        lines += ["", "## Worst layers (per-layer quantization error)", "",
                  "| tensor | relative RMSE | max abs error | int8 scale |", "|---|---|---|---|"]
        for layer in report["worst_layers"]:
            lines.append(f"| `{layer['name']}` | {layer['relative_rmse']:.4f} | "
                         f"{layer['max_abs_error']:.4f} | {layer['scale']:.6f} |")

    for name, section in report.get("accelerators", {}).items():
        lines += ["", f"## Accelerator: {name}", "", "```json",
                  json.dumps(section, indent=2, default=_json_default), "```"]

    lines += ["", f"Plots: `{ROC_PNG}`, `{HISTOGRAM_PNG}`.", ""]
    return "\n".join(lines)


def write_plots(directory: Path, labels: np.ndarray, float_probabilities: np.ndarray,
                int8_probabilities: np.ndarray, *, threshold: float,
                label_names: tuple[str, str]) -> None:
    """Draw the float and int8 ROC curves and the score histograms per class."""
    import matplotlib  # noqa: PLC0415 - matplotlib loads only when a report is drawn

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(5, 5))
    for name, scores in (("float", float_probabilities), ("int8", int8_probabilities)):
        fpr, tpr = roc_curve(labels, scores)
        axes.plot(fpr, tpr, label=name, drawstyle="steps-post")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title("ROC, float vs int8")
    axes.legend(loc="lower right")
    figure.savefig(directory / ROC_PNG, dpi=PLOT_DPI)
    plt.close(figure)

    figure, rows = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    bins = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    positive = np.asarray(labels).astype(bool)
    for axes, name, scores in zip(rows, ("float", "int8"),
                                  (float_probabilities, int8_probabilities), strict=True):
        axes.hist(scores[~positive], bins=bins, alpha=0.6, label=label_names[0])
        axes.hist(scores[positive], bins=bins, alpha=0.6, label=label_names[1])
        axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
        axes.set_ylabel(f"{name}: images")
        axes.legend(loc="best")
    rows[-1].set_xlabel(f"probability of {label_names[1]}")
    figure.savefig(directory / HISTOGRAM_PNG, dpi=PLOT_DPI)
    plt.close(figure)
