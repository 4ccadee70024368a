"""Language selection, catalog completeness and Japanese text on annotated images."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from device_bundle import build_bundle
from PIL import Image, ImageDraw

from cadr_device import fonts
from cadr_device.annotate import annotate, banner_lines, result_lines
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Prediction
from cadr_device.i18n import LOCALE_VARIABLES, resolve_language, translator
from cadr_device.manifest import Manifest
from cadr_device.signing import Keyring, default_key_dir

REPO = Path(__file__).resolve().parent.parent
DEVICE = REPO / "device"
CATALOGS = DEVICE / "locale"
COMPILER = REPO / "scripts" / "compile-catalogs.py"

#: Functions whose first string argument is a message id.
MARKERS = frozenset({"_", "_noop", "gettext"})

PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_catalogs", COMPILER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _message_ids_in_code() -> dict[str, str]:
    """Return every marked message id in the device package and where it is."""
    found: dict[str, str] = {}
    for path in sorted(DEVICE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else "")
            first = node.args[0]
            if name in MARKERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, f"{path.relative_to(REPO)}:{node.lineno}")
    return found


@pytest.fixture
def clean_locale(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("value", "expected"), [
    ("ja", "ja"), ("ja_JP.UTF-8", "ja"), ("JA_jp", "ja"), ("en_GB.UTF-8", "en"),
    ("C", "en"), ("POSIX", "en"), ("fr_FR", "en"),
])
def test_language_from_argument(value: str, expected: str, clean_locale: object) -> None:
    assert resolve_language(value) == expected


def test_language_from_environment_order(clean_locale: pytest.MonkeyPatch) -> None:
    assert resolve_language(None) == "en"
    clean_locale.setenv("LANG", "ja_JP.UTF-8")
    assert resolve_language(None) == "ja"
    clean_locale.setenv("LC_MESSAGES", "en_US.UTF-8")
    assert resolve_language(None) == "en"
    clean_locale.setenv("LC_ALL", "ja_JP.UTF-8")
    assert resolve_language(None) == "ja"
    clean_locale.setenv("CADR_LOCALE", "en")
    assert resolve_language(None) == "en"
    assert resolve_language("ja") == "ja"


def test_catalogs_load() -> None:
    japanese = translator("ja")
    english = translator("en")

    assert japanese.gettext("severe") == "重症"
    assert japanese.gettext("non-severe") == "非重症"
    assert (japanese.gettext("Screening aid, not a diagnosis")
            == "スクリーニング補助であり診断ではありません")
    assert (japanese.gettext("Demonstration model – not for clinical use")
            == "デモ用モデル – 臨床使用不可")
    assert english.gettext("severe") == "severe"
    assert type(japanese).__name__ == "GNUTranslations"
    assert type(english).__name__ == "GNUTranslations"


def test_every_message_has_japanese() -> None:
    catalog = _compiler().parse_po(CATALOGS / "ja" / "LC_MESSAGES" / "cadr.po")
    in_code = _message_ids_in_code()

    assert len(in_code) >= 20
    missing = {msgid: where for msgid, where in in_code.items() if not catalog.get(msgid)}
    assert missing == {}, "add these to device/locale/ja/LC_MESSAGES/cadr.po"


def test_catalogs_list_only_used_messages() -> None:
    in_code = _message_ids_in_code()
    for language in ("ja", "en"):
        catalog = _compiler().parse_po(CATALOGS / language / "LC_MESSAGES" / "cadr.po")
        unused = sorted(set(catalog) - set(in_code) - {""})
        assert unused == [], language


def test_translations_keep_placeholders() -> None:
    catalog = _compiler().parse_po(CATALOGS / "ja" / "LC_MESSAGES" / "cadr.po")
    for msgid, msgstr in catalog.items():
        if msgid:
            assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid


def test_compiled_catalogs_are_current() -> None:
    check = subprocess.run([sys.executable, str(COMPILER), "--check"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    bundle_dir = build_bundle(tmp_path_factory.mktemp("bundle"))
    return load_bundle(bundle_dir, Keyring.from_directory(default_key_dir())).manifest


def _prediction(probability: float) -> Prediction:
    return Prediction(probability=probability, threshold=0.37, positive=probability >= 0.37,
                      label="severe" if probability >= 0.37 else "non_severe",
                      inference_ms=1.0)


@pytest.mark.slow
def test_result_lines_in_japanese(manifest: Manifest) -> None:
    _ = translator("ja").gettext

    assert result_lines(_prediction(0.62), manifest, _) == [
        "判定：重症",
        "重症である確率：0.620",
        "閾値 0.370（感度 90% を目標に設定）",
        "スクリーニング補助であり診断ではありません",
    ]
    assert result_lines(_prediction(0.12), manifest, _)[0] == "判定：非重症"
    assert banner_lines(manifest, _) == ["デモ用モデル – 臨床使用不可"]


@pytest.mark.slow
def test_result_lines_in_english(manifest: Manifest) -> None:
    _ = translator("en").gettext

    assert result_lines(_prediction(0.12), manifest, _) == [
        "Result: non-severe",
        "Probability of severe reaction: 0.120",
        "Threshold 0.370 (chosen for 90% sensitivity)",
        "Screening aid, not a diagnosis",
    ]
    assert banner_lines(manifest, _) == ["Demonstration model – not for clinical use"]


@pytest.mark.slow
def test_annotated_image_renders_japanese(manifest: Manifest,
                                          caplog: pytest.LogCaptureFixture) -> None:
    still = Image.fromarray(np.full((480, 640, 3), 128, dtype=np.uint8))
    prediction = _prediction(0.62)

    with caplog.at_level(logging.WARNING, logger="cadr_device.fonts"):
        japanese = annotate(still, prediction, manifest, translator("ja"))
        english = annotate(still, prediction, manifest, translator("en"))

    assert japanese.size[0] == 640
    assert japanese.size[1] > 480
    assert not np.array_equal(np.asarray(japanese), np.asarray(english))
    if not fonts.has_cjk_font():
        assert fonts.CJK_FONT_PACKAGE in caplog.text
        pytest.skip(f"{fonts.CJK_FONT_PACKAGE} is not installed; only the warning was checked")

    # With a CJK font every kanji has its own glyph; a font without them draws one
    # identical "missing glyph" box for both.
    font = fonts.load_font(32)
    heavy = _glyph(font, "重")
    assert heavy.any()
    assert not np.array_equal(heavy, _glyph(font, "症"))


def _glyph(font: fonts.Font, text: str) -> np.ndarray:
    canvas = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(canvas).text((4, 4), text, font=font, fill=255)
    return np.asarray(canvas)


def test_missing_font_warns_once_naming_package(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(fonts, "CJK_FONTS", ((Path("/nonexistent/NotoSansCJK.ttc"), 0),))
    monkeypatch.setattr(fonts, "FALLBACK_FONTS", ((Path("/nonexistent/DejaVuSans.ttf"), 0),))
    fonts._font_file.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="cadr_device.fonts"):
            first = fonts.load_font(20)
            fonts.load_font(30)
    finally:
        fonts._font_file.cache_clear()

    warnings = [r for r in caplog.records if r.name == "cadr_device.fonts"]
    assert len(warnings) == 1
    assert "fonts-noto-cjk" in warnings[0].getMessage()
    assert first.getbbox("A")[2] > 0


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ja"])
def test_threshold_near_one_keeps_three_decimals(manifest: Manifest, language: str) -> None:
    near_one = dataclasses.replace(manifest, decision=dataclasses.replace(
        manifest.decision, threshold=0.996))
    prediction = Prediction(probability=0.996, threshold=0.996, positive=True, label="severe",
                            inference_ms=1.0)

    lines = result_lines(prediction, near_one, translator(language).gettext)

    assert "0.996" in lines[1]
    assert "0.996" in lines[2]
    assert "1.00" not in " ".join(lines)
