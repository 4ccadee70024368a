"""``cadr-device`` replay end to end: table, outputs, records, startup refusals, subcommands."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from device_bundle import DEMO_KEY, THRESHOLD, build_bundle
from PIL import Image

import cadr_device
from cadr_convert.bundle_writer import write_manifest
from cadr_convert.signing import load_private_key, sign_bundle
from cadr_device import bundle_location, cli
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Prediction
from cadr_device.errors import BundleError
from cadr_device.images import load_rgb
from cadr_device.pipeline import CaptureResult
from cadr_device.preprocess import model_input
from cadr_device.signing import Keyring, default_key_dir

pytestmark = pytest.mark.slow

RECORD_FIELDS = (
    "capture_id", "status", "captured_at", "recorded_at", "source", "model_id", "model",
    "demonstration_only", "runtime", "backend", "probability", "threshold",
    "target_sensitivity", "label", "positive", "inference_ms", "app_version", "notices",
)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "ward-b").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for number, name in enumerate(("a.jpg", "b.png", "ward-b/c.jpg")):
        size = (160 + 40 * number, 120)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name, quality=92)
    (folder / ".hidden.jpg").write_bytes(b"skipped: hidden files are not screened")
    return folder


def _replay(images: Path, out: Path, bundle: Path, *extra: str) -> int:
    return cli.main(["--source", str(images), "--out", str(out), "--bundle", str(bundle),
                     "--headless", "--log-level", "WARNING", *extra])


def _resign(bundle: Path, change: dict[str, object]) -> None:
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text(encoding="utf-8"))
    manifest.pop("files")
    manifest.update(change)
    write_manifest(bundle, manifest)
    sign_bundle(bundle, load_private_key(DEMO_KEY))


def test_console_script_prints_table(tmp_path: Path, images: Path, bundle_dir: Path) -> None:
    script = Path(sys.executable).with_name("cadr-device")
    out = tmp_path / "out"

    run = subprocess.run(
        [str(script), "--source", str(images), "--out", str(out), "--headless",
         "--bundle", str(bundle_dir), "--locale", "en"],
        capture_output=True, text=True, timeout=300, check=False,
    )

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["File", "Label", "Probability", "Threshold", "Decision",
                                "Inference", "(ms)", "Status"]
    rows = [line for line in lines if line.startswith(("a.jpg", "b.png", "ward-b/c.jpg"))]
    assert len(rows) == 3
    for row in rows:
        cells = row.split()
        assert cells[1] in ("severe", "non-severe")
        assert 0.0 <= float(cells[2]) <= 1.0
        assert cells[3] == f"{THRESHOLD:.3f}"
        assert cells[-1] == "ok"
    assert "Images: 3 (screened: 3, failed: 0)" in lines
    assert "Model: cadr-test@0.0.1" in lines
    assert "Threshold 0.370 (chosen for 90% sensitivity)" in lines
    assert "Demonstration model – not for clinical use" in lines
    assert lines[-1] == "Screening aid, not a diagnosis"
    assert "Loaded TFLite runtime ai-edge-litert" in run.stderr
    assert "Self-test passed for cadr-test@0.0.1" in run.stderr


def test_replay_writes_records_annotated_and_results(tmp_path: Path, images: Path,
                                                     bundle_dir: Path) -> None:
    out = tmp_path / "out"

    assert _replay(images, out, bundle_dir) == 0

    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["file"] for r in results] == ["a.jpg", "b.png", "ward-b/c.jpg"]
    sha256 = yaml.safe_load((bundle_dir / "manifest.yaml").read_text())["files"]["model.tflite"]

    for result in results:
        record = json.loads(Path(result["record"]).read_text(encoding="utf-8"))
        for field in RECORD_FIELDS:
            assert field in record, field
        assert record["source"] == Path(result["file"]).name
        assert record["model"] == {"name": "cadr-test", "version": "0.0.1", "sha256": sha256,
                                   "file": "model.tflite"}
        assert record["demonstration_only"] is True
        assert record["backend"] == "cpu"
        assert record["runtime"].startswith("ai-edge-litert ")
        assert record["target_sensitivity"] == 0.9
        assert record["probability"] == result["probability"]
        assert record["label"] in ("severe", "non_severe")
        assert record["positive"] == (record["probability"] >= THRESHOLD)
        assert record["captured_at"].endswith("Z")
        assert "Demonstration model – not for clinical use" in record["notices"]
        assert "Screening aid, not a diagnosis" in record["notices"]
        annotated = out / "annotated" / f"{result['capture_id']}_{Path(result['file']).stem}.jpg"
        assert Image.open(annotated).format == "JPEG"
        _check_model_input(Path(result["record"]), record, images / result["file"],
                           bundle_dir)


def _check_model_input(record_path: Path, record: dict[str, Any], source: Path,
                       bundle_dir: Path) -> None:
    """Assert the record's PNG is exactly the uint8 input the model was given."""
    manifest = load_bundle(bundle_dir, Keyring.from_directory(default_key_dir())).manifest
    expected = model_input(load_rgb(source), manifest.preprocess)
    png_path = record_path.with_name("model_input.png")
    png_bytes = png_path.read_bytes()

    with Image.open(png_path) as image:
        assert image.format == "PNG"
        stored = np.asarray(image)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, expected)
    entry = record["model_input"]
    assert entry["file"] == "model_input.png"
    assert (entry["width"], entry["height"]) == (expected.shape[1], expected.shape[0])
    assert entry["sha256"] == hashlib.sha256(png_bytes).hexdigest()
    assert entry["pixels_sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert record["files"]["model_input.png"]["sha256"] == entry["sha256"]


def test_japanese_table(tmp_path: Path, images: Path, bundle_dir: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _replay(images, tmp_path / "out", bundle_dir, "--locale", "ja") == 0

    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["ファイル", "結果", "確率"]
    assert "重症" in printed or "非重症" in printed
    assert "閾値 0.370（感度 90% を目標に設定）" in printed
    assert "デモ用モデル – 臨床使用不可" in printed
    assert "スクリーニング補助であり診断ではありません" in printed


def test_selftest_mismatch_refuses_to_screen(tmp_path: Path, images: Path,
                                             bundle_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    cases = manifest["selftest"]["cases"]
    cases[0]["probability"] = (cases[0]["probability"] + 0.5) % 1.0  # off by 0.5
    _resign(bundle, {"selftest": manifest["selftest"]})
    out = tmp_path / "out"

    assert _replay(images, out, bundle) == 6

    error = capsys.readouterr().err
    assert "self-test probability" in error
    assert "golden_00.png" in error
    assert "screening is disabled" in error
    assert not (out / "results.jsonl").exists()
    assert not (out / "records" / "index.jsonl").exists()


def test_tampered_model_is_rejected(tmp_path: Path, images: Path, bundle_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    model = bundle / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))

    assert _replay(images, tmp_path / "out", bundle) == 3

    error = capsys.readouterr().err
    assert "model.tflite" in error
    assert "sha256" in error


def test_untrusted_signer_is_rejected(tmp_path: Path, images: Path, bundle_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from cadr_convert.signing import generate_keypair

    keys = tmp_path / "keys"
    generate_keypair(tmp_path / "other.pem", keys / "other.pub")

    code = _replay(images, tmp_path / "out", bundle_dir, "--keys", str(keys))

    assert code == 3
    assert "not among the trusted keys" in capsys.readouterr().err


def test_torn_results_line_is_repaired(tmp_path: Path, images: Path, bundle_dir: Path) -> None:
    out = tmp_path / "out"
    assert _replay(images, out, bundle_dir) == 0
    results = out / "results.jsonl"
    whole = results.read_bytes()
    results.write_bytes(whole + b'{"file":"d.jpg","capt')  # power cut mid-append

    assert _replay(images, out, bundle_dir, "--force") == 0

    lines = results.read_bytes().splitlines()
    assert len(lines) == 6
    assert all(json.loads(line)["status"] == "ok" for line in lines)
    assert results.read_bytes().startswith(whole)


def test_existing_results_need_force(tmp_path: Path, images: Path, bundle_dir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _replay(images, out, bundle_dir) == 0

    with pytest.raises(SystemExit) as raised:
        _replay(images, out, bundle_dir)

    assert raised.value.code == 2
    assert "--force" in capsys.readouterr().err


def test_bundle_path_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "system"
    repository = tmp_path / "repository"
    monkeypatch.setattr(bundle_location, "SYSTEM_BUNDLE", system)
    monkeypatch.setattr(bundle_location, "REPOSITORY_BUNDLE", repository)
    monkeypatch.delenv(cli.BUNDLE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(BundleError, match="no bundle found"):
        cli.resolve_bundle_path(None)
    (tmp_path / "models" / "cadr-demo").mkdir(parents=True)
    assert cli.resolve_bundle_path(None) == tmp_path / "models" / "cadr-demo"
    repository.mkdir()
    assert cli.resolve_bundle_path(None) == repository
    system.mkdir()
    assert cli.resolve_bundle_path(None) == system
    monkeypatch.setenv(cli.BUNDLE_ENV, str(tmp_path / "from-env"))
    assert cli.resolve_bundle_path(None) == tmp_path / "from-env"
    assert cli.resolve_bundle_path(tmp_path / "explicit") == tmp_path / "explicit"


def test_configured_bundle_between_environment_and_system(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr(bundle_location, "SYSTEM_BUNDLE", system)
    monkeypatch.delenv(cli.BUNDLE_ENV, raising=False)
    configured = tmp_path / "configured"

    assert bundle_location.locate_bundle(None, None).origin == "installed"
    chosen = bundle_location.locate_bundle(None, configured)
    assert (chosen.path, chosen.origin) == (configured, "model.bundle")
    monkeypatch.setenv(cli.BUNDLE_ENV, str(tmp_path / "from-env"))
    chosen = bundle_location.locate_bundle(None, configured)
    assert (chosen.path, chosen.origin) == (tmp_path / "from-env", "$CADR_BUNDLE")
    chosen = bundle_location.locate_bundle(tmp_path / "explicit", configured)
    assert (chosen.path, chosen.origin) == (tmp_path / "explicit", "--bundle")


def test_bundle_from_environment(tmp_path: Path, images: Path, bundle_dir: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.BUNDLE_ENV, str(bundle_dir))
    out = tmp_path / "out"

    code = cli.main(["--source", str(images / "a.jpg"), "--out", str(out), "--headless",
                     "--log-level", "WARNING"])

    assert code == 0
    assert json.loads((out / "results.jsonl").read_text())["model_id"] == "cadr-test@0.0.1"


def test_records_list_and_export(tmp_path: Path, images: Path, bundle_dir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _replay(images, out, bundle_dir) == 0
    capsys.readouterr()

    assert cli.main(["records", "list", "--out", str(out), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["source"] for e in entries] == ["a.jpg", "b.png", "c.jpg"]

    assert cli.main(["records", "list", "--records", str(out / "records")]) == 0
    listing = capsys.readouterr().out
    assert f"Records in {out / 'records'}: 3" in listing
    assert entries[0]["capture_id"] in listing

    dest = tmp_path / "usb"
    assert cli.main(["records", "export", str(dest), "--out", str(out)]) == 0
    assert f"Records exported to {dest}: 3" in capsys.readouterr().out
    assert len((dest / "index.jsonl").read_text().splitlines()) == 3


def test_records_list_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["records", "list", "--records", str(tmp_path / "none")]) == 7
    assert "no records folder" in capsys.readouterr().err


def test_run_without_camera_module(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    real_import = importlib.import_module

    def import_without_app(name: str, package: str | None = None) -> object:
        if name == "cadr_device.app":  # a replay-only build ships no camera module
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", import_without_app)

    assert cli.main(["run", "--config", "/nonexistent.yaml"]) == 1
    assert cli.main(["capture"]) == 1
    error = capsys.readouterr().err
    assert "'run' needs the camera module cadr_device.app" in error
    assert "'capture' needs the camera module cadr_device.app" in error


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs; skipped where mounting is not permitted."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        pytest.skip("mounting a 1 MiB tmpfs needs root and mount(8)")
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, timeout=30, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run([umount, str(mount_point)], capture_output=True, timeout=30, check=True)


def test_full_disk_stops_replay(tiny_filesystem: Path, images: Path, bundle_dir: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny_filesystem / "out"

    assert _replay(images, out, bundle_dir) == 7

    error = capsys.readouterr().err
    assert "disk is full" in error
    assert "not saved" in error
    assert not list((out / "records").glob("*-*-*/*"))
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 1
    assert results[0]["status"] == "failed"
    assert results[0]["record"] is None


def test_replay_with_converter_bundle(tmp_path: Path, images: Path, tiny_bundle: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    manifest = yaml.safe_load((tiny_bundle.bundle / "manifest.yaml").read_text())
    out = tmp_path / "out"

    code = cli.main(["--source", str(images), "--out", str(out), "--headless", "--bundle",
                     str(tiny_bundle.bundle), "--keys", str(tiny_bundle.key_dir),
                     "--log-level", "WARNING"])

    assert code == 0
    printed = capsys.readouterr().out
    assert f"Model: {manifest['name']}@{manifest['version']}" in printed
    assert "Screening aid, not a diagnosis" in printed
    if not manifest["demonstration_only"]:
        assert "Demonstration model" not in printed
    records = list((out / "records").glob("*-*-*/*/record.json"))
    assert len(records) == 3
    for path in records:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record["demonstration_only"] is manifest["demonstration_only"]
        assert record["threshold"] == manifest["decision"]["threshold"]


def test_missing_source_creates_nothing(tmp_path: Path, bundle_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"

    assert _replay(tmp_path / "no-such-folder", out, bundle_dir) == 4

    assert "no-such-folder: no such file or folder" in capsys.readouterr().err
    assert not out.exists()


def test_empty_source_folder(tmp_path: Path, bundle_dir: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image suffix, so not listed")

    assert _replay(empty, tmp_path / "out", bundle_dir) == 4

    assert "no image files found" in capsys.readouterr().err


def test_table_threshold_near_one_has_three_decimals(tmp_path: Path, bundle_dir: Path) -> None:
    manifest = load_bundle(bundle_dir, Keyring.from_directory(default_key_dir())).manifest
    near_one = dataclasses.replace(manifest, decision=dataclasses.replace(
        manifest.decision, threshold=0.996))
    screening = SimpleNamespace(bundle=SimpleNamespace(manifest=near_one))
    prediction = Prediction(0.996, 0.996, True, "severe", 1.5)
    result = CaptureResult("20261204T201500.123Z-3f9a1c", prediction, "cadr-test@0.0.1",
                           tmp_path / "record.json", None)

    table = cli.format_table([cli.Row("a.jpg", result, 2.0)], screening, lambda text: text)

    cells = table.splitlines()[2].split()
    assert cells[2] == "0.996"
    assert cells[3] == "0.996"
    assert cells[4:7] == ["p", ">=", "0.996"]
    assert "Threshold 0.996 (chosen for 90% sensitivity)" in table.splitlines()


def test_records_list_json_of_empty_store(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "records"
    root.mkdir()

    assert cli.main(["records", "list", "--records", str(root), "--json"]) == 0

    assert json.loads(capsys.readouterr().out) == []


def test_undecodable_and_control_names(tmp_path: Path, bundle_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "source"
    source.mkdir()
    pixels = np.random.default_rng(8).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    shift_jis_name = os.fsdecode(b"\x8a\xb3\x8e\xd2A.jpg")
    for name in (shift_jis_name, "line\nbreak.jpg", "esc\x1b[31m.jpg", "zz.jpg"):
        Image.fromarray(pixels).save(source / name, quality=92)
    out = tmp_path / "out"

    assert _replay(source, out, bundle_dir, "--locale", "en") == 0

    results = [json.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    assert sorted(r["file"] for r in results) == [
        "esc\\x1b[31m.jpg", "line\\nbreak.jpg", "zz.jpg", "\ufffd\ufffd\ufffd\ufffdA.jpg"]
    assert all(r["status"] == "ok" for r in results)
    records = [json.loads(p.read_text(encoding="utf-8"))
               for p in (out / "records").glob("*/*/record.json")]
    assert "\ufffd\ufffd\ufffd\ufffdA.jpg" in {r["source"] for r in records}
    assert len(records) == 4
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    assert sum(1 for line in printed.splitlines() if line.endswith(" ok")) == 4


def test_bundle_for_newer_app_is_rejected(tmp_path: Path, images: Path, bundle_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    _resign(bundle, {"min_app_version": "99.0.0"})
    out = tmp_path / "out"

    assert _replay(images, out, bundle) == 3

    error = capsys.readouterr().err
    assert str(bundle / "manifest.yaml") in error
    assert "cadr-test@0.0.1 needs cadr app 99.0.0 or newer" in error
    assert f"this app is {cadr_device.__version__}" in error
    assert "update the app" in error
    assert not (out / "results.jsonl").exists()


@pytest.mark.parametrize("out_name", [".", "out", "ward-b/out"])
def test_out_inside_source_is_rejected(images: Path, bundle_dir: Path, out_name: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = images / out_name

    with pytest.raises(SystemExit) as raised:
        _replay(images, out, bundle_dir)

    assert raised.value.code == 2
    assert "is inside --source" in capsys.readouterr().err
    assert not (images / "out").exists()
    assert not (images / "results.jsonl").exists()


def test_out_beside_source_is_accepted(tmp_path: Path, images: Path, bundle_dir: Path) -> None:
    # A sibling whose name starts with the source's name is not inside it.
    assert _replay(images, tmp_path / "images-out", bundle_dir) == 0


def test_help_and_docs_list_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from cadr_device.camera import CameraError
    from cadr_device.errors import (
        BundleError,
        ImageError,
        RecordError,
        RuntimeLoadError,
        SelfTestError,
    )
    from cadr_device.instance import AlreadyRunningError
    from cadr_device.triggers import TriggerError

    codes = {0, 1, 2, 130} | {error.exit_code for error in (
        BundleError, ImageError, RuntimeLoadError, SelfTestError, RecordError, CameraError,
        TriggerError, AlreadyRunningError)}
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    docs = (Path(__file__).resolve().parent.parent / "docs" / "records.md").read_text(
        encoding="utf-8")

    for code in sorted(codes):
        assert f" {code} " in help_text, f"--help does not list exit code {code}"
        assert f"| {code} |" in docs, f"docs/records.md does not list exit code {code}"


def test_bundle_path_to_a_file_is_named(tmp_path: Path, images: Path, bundle_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = _replay(images, tmp_path / "out", bundle_dir / "manifest.yaml")

    assert code == 3
    assert "manifest.yaml: is a file, not a bundle directory" in capsys.readouterr().err


@pytest.mark.parametrize("threads", ["0", "17"])
def test_threads_outside_range_rejected(tmp_path: Path, images: Path, bundle_dir: Path,
                                        threads: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        _replay(images, tmp_path / "out", bundle_dir, "--threads", threads)

    assert raised.value.code == 2
    assert f"got {threads}" in capsys.readouterr().err


def test_single_image_footer_has_no_plural(tmp_path: Path, images: Path, bundle_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert _replay(images / "a.jpg", tmp_path / "out", bundle_dir, "--locale", "en") == 0

    printed = capsys.readouterr().out
    assert "Images: 1 (screened: 1, failed: 0)" in printed
    assert "1 images" not in printed


def test_subcommand_help_lists_what_applies(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["capture", "--help"])
    capture_help = " ".join(capsys.readouterr().out.split())

    assert "needs the camera module" not in run_help
    assert "--replay" in run_help
    assert "--bundle" in run_help
    for option in ("--bundle", "--keys", "--locale", "--records"):
        assert option not in capture_help, option
    assert "--runtime-dir" in capture_help
    assert "--config" in capture_help
