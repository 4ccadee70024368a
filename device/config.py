"""The device configuration file (``/etc/cadr/device.yaml``): settings, defaults and validation.

Every setting is declared once in :data:`SETTINGS` with its default, type, allowed values
and help text. :func:`load_config` validates a YAML file against that table and returns a
frozen :class:`DeviceConfig`. An unknown key or an invalid value raises
:class:`ConfigError`, which names the dotted key and the allowed values.
``docs/configuration.md`` is rendered from the same table by :func:`render_markdown`,
and a test keeps the two equal.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cadr_device.errors import CadrError

#: Default configuration path, used by the systemd unit and the documentation.
DEFAULT_CONFIG_PATH = Path("/etc/cadr/device.yaml")

#: Largest configuration file read, in bytes.
MAX_CONFIG_BYTES = 256 * 1024


class ConfigError(CadrError):
    """The device configuration file is missing, not YAML, or has an invalid key or value."""

    exit_code = 2

    def __init__(self, path: Path, message: str, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = f"{path}" if key is None else f"{path}: key {key!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default, type, allowed values and help text.

    Attributes:
        key: Dotted key, ``section.name``.
        default: Value used when the file omits the key.
        kind: One of ``str``, ``path``, ``int``, ``float``, ``bool``, ``size`` (a list
            ``[width, height]`` of positive integers).
        help: One sentence for the documentation.
        choices: Allowed values for a ``str`` setting, or None for any string.
        minimum: Smallest allowed number, for ``int`` and ``float``.
        maximum: Largest allowed number, for ``int`` and ``float``.
        nullable: Whether ``null`` is allowed (it means "off" or "not set").
    """

    key: str
    default: Any
    kind: str
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False

    def allowed(self) -> str:
        """Describe the allowed values in words, for errors and the documentation."""
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "size":
            text = "a list [width, height] of positive integers"
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            text = f"{noun} from {_number(self.minimum)} to {_number(self.maximum)}"
        elif self.kind == "path":
            text = "a file system path"
        else:
            text = "a string"
        return text + (", or null" if self.nullable else "")


def _number(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


#: Every setting of the device app. This table is the only place defaults live.
SETTINGS: tuple[Setting, ...] = (
    Setting("model.bundle", None, "path",
            "Model bundle directory made by cadr-convert. `--bundle` and `$CADR_BUNDLE` "
            "take precedence; null looks up `/var/lib/cadr/bundles/current`, then the "
            "demonstration bundle `models/cadr-demo` of a source checkout.", nullable=True),
    Setting("model.keys", "/etc/cadr/keys", "path",
            "Directory of trusted public keys (`*.pub` files); the keys shipped with the app "
            "are used when it does not exist."),
    Setting("model.backend", "auto", "str",
            "Inference back-end; auto tries an accelerator and falls back to the CPU.",
            choices=("auto", "cpu", "edgetpu", "imx500")),
    Setting("model.num_threads", 2, "int",
            "CPU threads of the interpreter, fixed when it is built.", minimum=1, maximum=16),
    Setting("records.directory", "/var/lib/cadr/records", "path",
            "Where capture records (still JPEG, model input PNG, annotated copy, "
            "record.json) are written."),
    Setting("records.min_free_mb", 200, "int",
            "A capture is rejected when less free space than this remains, in MiB.",
            minimum=1, maximum=1_000_000),
    Setting("display.locale", "ja", "str", "Language of on-screen text and records.",
            choices=("ja", "en")),
    Setting("display.font_size_px", 22, "int", "On-screen text height in pixels.",
            minimum=8, maximum=96),
    Setting("display.result_seconds", 8.0, "float",
            "How long the result panel stays on screen after a capture, in seconds.",
            minimum=1.0, maximum=600.0),
    Setting("camera.source", "picamera2", "str",
            "Frame source: the Raspberry Pi camera, or image files replayed as frames.",
            choices=("picamera2", "replay")),
    Setting("camera.preview_size", [1280, 720], "size",
            "Viewfinder (picamera2 main stream) size in pixels; the overlay is drawn at "
            "this size."),
    Setting("camera.lores_size", [320, 240], "size",
            "Low-resolution stream size for live inference, in pixels."),
    Setting("camera.lores_format", "YUV420", "str",
            "Pixel format of the lores stream; picamera2 0.3 accepts only YUV420 on VC4 "
            "boards (Raspberry Pi 4 and older).",
            choices=("YUV420", "RGB888", "BGR888", "XRGB8888", "XBGR8888")),
    Setting("camera.main_format", "XBGR8888", "str", "Pixel format of the main stream.",
            choices=("RGB888", "BGR888", "XRGB8888", "XBGR8888")),
    Setting("camera.still_size", None, "size",
            "Still capture size in pixels; null keeps the main stream size and never "
            "switches camera mode.", nullable=True),
    Setting("camera.still_timeout_s", 5.0, "float",
            "A still capture that takes longer falls back to the latest viewfinder frame, "
            "in seconds.", minimum=0.1, maximum=60.0),
    Setting("camera.colour_order", "auto", "str",
            "Channel order of RGB formats: auto runs the start-up check, documented trusts "
            "picamera2's table, swapped exchanges red and blue.",
            choices=("auto", "documented", "swapped")),
    Setting("camera.preview", "drm", "str",
            "picamera2 preview window: drm (console), qtgl (desktop) or null (no window).",
            choices=("drm", "qtgl", "null")),
    Setting("camera.frame_rate_hz", 15.0, "float",
            "Largest rate at which the app reads viewfinder frames and redraws the overlay.",
            minimum=1.0, maximum=60.0),
    Setting("replay.path", None, "path",
            "Image file or folder served as frames when camera.source is replay.",
            nullable=True),
    Setting("replay.loop", False, "bool",
            "Start again at the first file after the last one; false ends the run."),
    Setting("replay.auto_capture", True, "bool",
            "Capture every replayed file once, as if the button were pressed."),
    Setting("replay.frames_per_image", 3, "int",
            "Viewfinder frames shown per replayed file before its capture.",
            minimum=1, maximum=1000),
    Setting("viewfinder.render_dir", None, "path",
            "Write every rendered viewfinder (frame and overlay) to PNG files here; for "
            "headless runs and documentation.", nullable=True),
    Setting("live.enabled", False, "bool",
            "Classify the lores stream continuously and show a smoothed severity bar."),
    Setting("live.max_rate_hz", 2.0, "float",
            "Largest live inference rate, in inferences per second.",
            minimum=0.1, maximum=30.0),
    Setting("live.window", 5, "int",
            "Number of recent live probabilities averaged for the bar.", minimum=1, maximum=100),
    Setting("trigger.gpio_pin", 17, "int",
            "BCM GPIO number of the capture button (wired to GND, internal pull-up); null "
            "disables it.", minimum=0, maximum=27, nullable=True),
    Setting("trigger.bounce_s", 0.05, "float",
            "Button debounce time in seconds.", minimum=0.0, maximum=1.0),
    Setting("trigger.keyboard", True, "bool",
            "Capture on Enter when standard input is a terminal."),
    Setting("runtime.directory", "/run/cadr", "path",
            "Directory of the pid file that cadr-device capture signals."),
)

_BY_KEY = {setting.key: setting for setting in SETTINGS}
_SECTIONS = sorted({setting.key.split(".")[0] for setting in SETTINGS})


@dataclass(frozen=True)
class DeviceConfig:
    """Validated settings, read with :meth:`get` by dotted key."""

    path: Path | None
    values: Mapping[str, Any]

    def get(self, key: str) -> Any:
        """Return the value of a dotted key from :data:`SETTINGS`."""
        if key not in _BY_KEY:
            raise KeyError(f"unknown setting {key!r}")
        return self.values[key]

    def path_value(self, key: str) -> Path | None:
        """Return a ``path`` setting as a Path, or None when it is null."""
        value = self.get(key)
        return None if value is None else Path(value)

    def size(self, key: str) -> tuple[int, int] | None:
        """Return a ``size`` setting as (width, height), or None when it is null."""
        value = self.get(key)
        return None if value is None else (int(value[0]), int(value[1]))

    def replace(self, overrides: Mapping[str, Any]) -> DeviceConfig:
        """Return a copy with some keys set, validating each new value."""
        values = dict(self.values)
        where = self.path or Path("<command line>")
        for key, value in overrides.items():
            if key not in _BY_KEY:
                raise ConfigError(where, f"unknown key; allowed keys are {sorted(_BY_KEY)}", key)
            values[key] = _validate(_BY_KEY[key], value, where)
        return DeviceConfig(self.path, values)


def defaults() -> DeviceConfig:
    """Return the configuration with every default, as when the file is empty."""
    return DeviceConfig(None, {setting.key: setting.default for setting in SETTINGS})


def load_config(path: Path) -> DeviceConfig:
    """Read and validate the YAML configuration at ``path``.

    Raises:
        ConfigError: If the file is unreadable or not a mapping, or if a key is unknown
            or has a value that :data:`SETTINGS` does not allow. The message names the key.
    """
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(path, f"file is larger than {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(path, "configuration file not found; create it or pass --config "
                          "with an existing file (docs/configuration.md lists the keys)") from e
    except UnicodeDecodeError as e:
        raise ConfigError(path, "configuration file is not UTF-8 text") from e
    except OSError as e:
        raise ConfigError(path, f"cannot read configuration file ({e.strerror})") from e

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(path, f"not valid YAML ({e})") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must be a YAML mapping of sections "
                          f"({', '.join(_SECTIONS)})")
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path) -> DeviceConfig:
    """Validate parsed YAML (a mapping of sections) against :data:`SETTINGS`."""
    values = {setting.key: setting.default for setting in SETTINGS}

    for section, body in data.items():
        if section not in _SECTIONS:
            raise ConfigError(path, f"unknown section; allowed sections are {_SECTIONS}",
                              str(section))
        if not isinstance(body, dict):
            raise ConfigError(path, "must be a mapping of settings", str(section))
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in _BY_KEY:
                allowed = sorted(k.split(".", 1)[1] for k in _BY_KEY if k.startswith(f"{section}."))
                raise ConfigError(path, f"unknown key; allowed keys in {section!r} are {allowed}",
                                  key)
            values[key] = _validate(_BY_KEY[key], value, path)

    return DeviceConfig(path, values)


def _validate(setting: Setting, value: Any, path: Path) -> Any:
    """Return ``value`` checked against ``setting``, or raise naming the key."""
    def invalid() -> ConfigError:
        return ConfigError(path, f"invalid value {value!r}; allowed: {setting.allowed()}",
                           setting.key)

    if value is None:
        if setting.nullable:
            return None
        raise invalid()

    if setting.kind == "bool":
        if not isinstance(value, bool):
            raise invalid()
        return value
    if setting.kind in ("int", "float"):
        if not _in_range(setting, value):
            raise invalid()
        return value if setting.kind == "int" else float(value)
    if setting.kind == "size":
        if not _is_size(value):
            raise invalid()
        return list(value)
    if not isinstance(value, str) or not value:
        raise invalid()
    if setting.choices is not None and value not in setting.choices:
        raise invalid()
    return value


def _in_range(setting: Setting, value: Any) -> bool:
    """Return whether ``value`` is a number of the setting's kind within its limits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if setting.kind == "int" and not isinstance(value, int):
        return False
    if setting.minimum is not None and value < setting.minimum:
        return False
    return setting.maximum is None or value <= setting.maximum


def _is_size(value: Any) -> bool:
    """Return whether ``value`` is a list [width, height] of positive integers."""
    if not isinstance(value, list) or len(value) != 2:
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def config_from_options(options: argparse.Namespace) -> DeviceConfig:
    """Load the file named by ``--config`` (defaults when it is not given) and apply flags.

    The flags of ``cadr-device run`` (``--bundle``, ``--keys``, ``--locale``,
    ``--records``, ``--replay``, ``--overlay-dir``, ``--runtime-dir``) override the file.
    """
    config_path = getattr(options, "config", None)
    config = load_config(Path(config_path)) if config_path else defaults()

    flag_keys = {
        "bundle": "model.bundle",
        "keys": "model.keys",
        "locale": "display.locale",
        "records": "records.directory",
        "overlay_dir": "viewfinder.render_dir",
        "runtime_dir": "runtime.directory",
    }
    overrides: dict[str, Any] = {}
    for attribute, key in flag_keys.items():
        value = getattr(options, attribute, None)
        if value is not None:
            overrides[key] = str(value)
    replay = getattr(options, "replay", None)
    if replay is not None:
        overrides["camera.source"] = "replay"
        overrides["replay.path"] = str(replay)
    return config.replace(overrides) if overrides else config


def render_markdown() -> str:
    """Render the settings table of ``docs/configuration.md``."""
    lines = [
        "# Device configuration",
        "",
        "`cadr-device run` reads `/etc/cadr/device.yaml` (another file with `--config PATH`).",
        "The file is a YAML mapping of sections; every key is optional and the defaults below",
        "apply. An unknown key or an invalid value stops start-up with a message that names",
        "the key and the allowed values. Command-line flags (`--bundle`, `--keys`, `--locale`,",
        "`--records`, `--replay`, `--overlay-dir`, `--runtime-dir`) override the file.",
        "",
        "The model bundle is looked up in this order, the same as for the replay: `--bundle`,",
        "`$CADR_BUNDLE`, `model.bundle`, `/var/lib/cadr/bundles/current` (installed by",
        "`cadr-update`), then `models/cadr-demo` of a source checkout. The environment",
        "variable comes before the file, so one run can use another bundle without editing",
        "the file. The app logs the folder it chose and the rule that chose it.",
        "",
        "This page is generated from `cadr_device.config.SETTINGS`; `tests/test_config.py`",
        "fails when the two differ. Regenerate it with",
        "`python -c 'import cadr_device.config as c; print(c.render_markdown(), end=\"\")' "
        "> docs/configuration.md`.",
        "",
        "| key | default | allowed | meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = yaml.safe_dump(setting.default, default_flow_style=True).strip()
        default = default.removesuffix("...").strip()
        lines.append(f"| `{setting.key}` | `{default}` | {setting.allowed()} | {setting.help} |")

    lines += [
        "",
        "## Example",
        "",
        "```yaml",
        "model:",
        "  bundle: /var/lib/cadr/bundles/current",
        "display:",
        "  locale: en",
        "live:",
        "  enabled: true",
        "trigger:",
        "  gpio_pin: 17",
        "```",
        "",
    ]
    return "\n".join(lines)
