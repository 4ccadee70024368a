"""Device configuration: defaults, validation messages, CLI overrides and the generated doc."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cadr_device.config import (
    SETTINGS,
    ConfigError,
    config_from_options,
    defaults,
    load_config,
    render_markdown,
)

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "device.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))

    for setting in SETTINGS:
        assert config.get(setting.key) == setting.default, setting.key


def test_values_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, (
        "display:\n  locale: en\n"
        "live:\n  enabled: true\n  max_rate_hz: 4\n"
        "camera:\n  still_size: [2304, 1296]\n"
        "trigger:\n  gpio_pin: null\n"
    )))

    assert config.get("display.locale") == "en"
    assert config.get("live.enabled") is True
    assert config.get("live.max_rate_hz") == 4.0
    assert config.size("camera.still_size") == (2304, 1296)
    assert config.get("trigger.gpio_pin") is None


def test_unknown_key_names_key_and_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "live:\n  enable: true\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert str(path) in message
    assert "'live.enable'" in message
    assert "'enabled'" in message
    assert "'max_rate_hz'" in message
    assert caught.value.key == "live.enable"


def test_unknown_section_names_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "cameras:\n  source: replay\n"))

    message = str(caught.value)
    assert "'cameras'" in message
    assert "'camera'" in message


@pytest.mark.parametrize(("text", "key", "allowed"), [
    ("display:\n  locale: fr\n", "display.locale", "one of ja, en"),
    ("camera:\n  source: usb\n", "camera.source", "one of picamera2, replay"),
    ("camera:\n  colour_order: bgr\n", "camera.colour_order", "one of auto, documented, swapped"),
    ("model:\n  num_threads: 0\n", "model.num_threads", "an integer from 1 to 16"),
    ("model:\n  num_threads: 2.5\n", "model.num_threads", "an integer from 1 to 16"),
    ("live:\n  enabled: yes please\n", "live.enabled", "true or false"),
    ("live:\n  max_rate_hz: -1\n", "live.max_rate_hz", "a number from 0.1 to 30"),
    ("camera:\n  preview_size: [1280]\n", "camera.preview_size", "a list [width, height]"),
    ("camera:\n  preview_size: null\n", "camera.preview_size", "a list [width, height]"),
    ("trigger:\n  gpio_pin: 40\n", "trigger.gpio_pin", "an integer from 0 to 27, or null"),
    ("records:\n  min_free_mb: true\n", "records.min_free_mb", "an integer from 1"),
], ids=["locale", "source", "colour", "threads-zero", "threads-float", "bool", "rate",
        "size-short", "size-null", "pin", "bool-as-int"])
def test_invalid_value_names_key_and_allowed(tmp_path: Path, text: str, key: str,
                                             allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))

    message = str(caught.value)
    assert f"'{key}'" in message
    assert allowed in message
    assert caught.value.key == key


def test_section_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'live': must be a mapping"):
        load_config(write(tmp_path, "live: true\n"))


def test_not_yaml_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "live: [\n"))


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_config_error_exit_code() -> None:
    assert ConfigError(Path("x"), "bad").exit_code == 2


def test_flags_override_file(tmp_path: Path) -> None:
    path = write(tmp_path, "display:\n  locale: ja\nrecords:\n  directory: /srv/records\n")
    options = argparse.Namespace(config=path, bundle=tmp_path / "b", keys=None, locale="en",
                                 records=tmp_path / "r", replay=tmp_path / "imgs",
                                 overlay_dir=tmp_path / "png", runtime_dir=None)

    config = config_from_options(options)

    assert config.get("display.locale") == "en"
    assert config.get("records.directory") == str(tmp_path / "r")
    assert config.get("model.bundle") == str(tmp_path / "b")
    assert config.get("camera.source") == "replay"
    assert config.get("replay.path") == str(tmp_path / "imgs")
    assert config.get("viewfinder.render_dir") == str(tmp_path / "png")
    assert config.get("model.keys") == defaults().get("model.keys")


def test_config_is_frozen() -> None:
    config = defaults()

    with pytest.raises(AttributeError):
        config.path = Path("/elsewhere")  # type: ignore[misc]


def test_docs_match_settings() -> None:
    documented = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")

    assert documented == render_markdown(), (
        "docs/configuration.md is out of date; regenerate it with the command it contains")


def test_every_setting_documented() -> None:
    rendered = render_markdown()

    for setting in SETTINGS:
        assert f"`{setting.key}`" in rendered
