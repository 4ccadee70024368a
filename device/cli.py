"""``cadr-device``: screen image files (replay), list and export records, run the camera.

Replay is the default command::

    cadr-device --source DIR --out OUT --headless [--bundle B] [--keys DIR] [--locale ja]

It loads a runtime, verifies the bundle, builds the interpreter once, runs the golden
self-test and then screens every image, writing ``OUT/records/`` (the record store),
``OUT/annotated/<capture_id>_<stem>.jpg`` and ``OUT/results.jsonl``, and printing a
summary table. This module is the one error boundary: it maps exceptions to the exit
codes below and prints one line to stderr.

Exit codes (also in ``docs/records.md``):
    0  every image was screened and recorded; ``run`` stopped normally; ``capture`` sent
    1  another error (for example, the camera module is not installed)
    2  invalid command line or device configuration, or ``--out`` inside ``--source``
    3  the bundle is missing, malformed, tampered with, unsigned or needs a newer app
    4  one or more images could not be screened (each is named on stderr and recorded),
       or a file or folder of the source could not be read (permission denied, broken
       symbolic link, loop); hidden files and files without an image suffix are skipped
       with a warning but do not change the exit code
    5  no TFLite runtime could be loaded
    6  the golden self-test failed, so nothing was screened
    7  a record could not be written (for example, the disk is full); the run stopped
    8  ``run``: no camera could be opened, ``--replay`` has no image files, or camera
       frames kept failing
    9  ``capture``: the request could not be delivered to a running app
    10  ``run``: another app already uses the same runtime directory
    130  interrupted
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadr_device import __version__
from cadr_device.annotate import MODEL, NOT_A_DIAGNOSIS, banner_lines, label_text, threshold_text
from cadr_device.bundle import Bundle, check_app_version, load_bundle
from cadr_device.bundle_location import BUNDLE_ENV, SYSTEM_BUNDLE, locate_bundle
from cadr_device.classifier import Classifier
from cadr_device.durable import append_line, atomic_write, make_private_dir, repair_torn_tail
from cadr_device.errors import CadrError, ImageError, RecordError
from cadr_device.i18n import noop as _noop
from cadr_device.i18n import translator
from cadr_device.images import ImageScan, load_rgb, scan_image_files
from cadr_device.names import display_name
from cadr_device.pipeline import CaptureResult, Screening
from cadr_device.records import RecordStore
from cadr_device.runtime import load_runtime
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring, default_key_dir

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_IMAGES_FAILED = ImageError.exit_code
EXIT_RECORD = RecordError.exit_code
EXIT_INTERRUPTED = 130

DEFAULT_CONFIG = Path("/etc/cadr/device.yaml")
DEFAULT_RECORDS_DIR = Path("/var/lib/cadr/records")
DEFAULT_THREADS = 2
#: Interpreter thread range, the same as the configuration's ``model.num_threads``.
MIN_THREADS = 1
MAX_THREADS = 16

RECORDS_SUBDIR = "records"
ANNOTATED_SUBDIR = "annotated"
RESULTS_NAME = "results.jsonl"

SUBCOMMANDS = ("run", "capture", "records")


# Table and footer text, translated when printed.
HEADERS = (_noop("File"), _noop("Label"), _noop("Probability"), _noop("Threshold"),
           _noop("Decision"), _noop("Inference (ms)"), _noop("Status"))
STATUS_OK = _noop("ok")
STATUS_FAILED = _noop("failed")
NOT_SAVED = _noop("not saved")
# Counts come after a colon, so one wording fits every number without plural forms.
FOOTER_COUNTS = _noop("Images: {total} (screened: {screened}, failed: {failed})")
FOOTER_SKIPPED = _noop("Files or folders skipped: {count} (see the log)")
NO_RESULT = "-"


@dataclass(frozen=True)
class Row:
    """One line of the replay summary table."""

    file: str
    result: CaptureResult
    elapsed_ms: float


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cadr-device`` and return its exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        if args.command is None:
            if args.source is None or args.out is None:
                parser.error("replay needs --source and --out (or use a subcommand)")
            if _is_inside(args.out, args.source):
                parser.error(f"--out {args.out} is inside --source {args.source}, so a later "
                             "run would screen this run's outputs; choose an --out folder "
                             "outside the source")
            if _has_results(args.out) and not args.force:
                parser.error(f"{args.out} already contains results of an earlier run; pass "
                             "--force to add this run to them, or choose another --out")
            return replay(args)
        handler = {"run": _run_camera, "capture": _request_capture,
                   "records": _records}[args.command]
        return handler(args)
    except CadrError as e:
        print(f"cadr-device: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("cadr-device: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser: replay options at the top level plus subcommands."""
    parser = argparse.ArgumentParser(
        prog="cadr-device",
        description="Screen photographs of skin lesions for severe cutaneous adverse drug "
        "reactions (SJS/TEN) with a signed int8 model bundle. Without a subcommand, replay "
        "image files. Every result is a screening aid, not a diagnosis.",
        epilog="Subcommands: 'run' (camera app), 'capture' (ask the running app for a "
        "capture), 'records list|export'. Exit codes: 0 ok; 1 other error; 2 invalid "
        "command line or configuration; 3 bundle missing, invalid or needing a newer app; "
        "4 an image or source folder could not be screened; 5 no TFLite runtime; "
        "6 self-test failed; 7 record not written; 8 camera failed (run); 9 capture "
        "request not delivered (capture); 10 another app uses the runtime directory (run); "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="lowest level of log lines written to stderr (default: INFO)")

    replay_options = parser.add_argument_group("replay (default command)")
    replay_options.add_argument("--source", type=Path, metavar="PATH",
                                help="image file, or folder walked recursively in sorted "
                                "order (JPEG, PNG, WebP, BMP, TIFF)")
    replay_options.add_argument("--out", type=Path, metavar="DIR",
                                help="output folder for records/, annotated/ and results.jsonl; "
                                "created with mode 0700")
    replay_options.add_argument("--headless", action="store_true",
                                help="do not open a preview window; replay never opens one "
                                "in this version, so this flag only documents intent")
    replay_options.add_argument("--force", action="store_true",
                                help="allow an --out folder that already contains results; this "
                                "run is appended to them and no record is deleted")
    _add_common(replay_options)
    replay_options.add_argument("--threads", type=_thread_count, default=DEFAULT_THREADS,
                                metavar="N",
                                help=f"CPU threads of the TFLite interpreter, {MIN_THREADS} to "
                                f"{MAX_THREADS} (default: {DEFAULT_THREADS})")

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (("run", "run the camera app on the Raspberry Pi camera, or on image "
                        "files with --replay"),
                       ("capture", "ask the running camera app to take a capture")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                         help=f"device configuration file (default: {DEFAULT_CONFIG})")
        if name == "run":
            _add_common(sub)
            sub.add_argument("--records", type=Path, default=None,
                             help=f"records folder (default: the configuration's, else "
                             f"{DEFAULT_RECORDS_DIR})")
        sub.add_argument("--runtime-dir", type=Path, default=None,
                         help="folder of the app's pid file and lock (default: "
                         "runtime.directory of the configuration, /run/cadr)")
        if name == "run":
            _add_camera_run_options(sub)

    records = commands.add_parser("records", help="list or export capture records")
    actions = records.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list records from the index")
    _add_records_location(listing)
    listing.add_argument("--json", action="store_true",
                         help="print the index entries as a JSON array, one entry per line, "
                         "instead of a table")
    export = actions.add_parser("export", help="copy every record and the index to DEST")
    export.add_argument("dest", type=Path, metavar="DEST",
                        help="destination folder, e.g. a mounted USB stick; created if missing")
    _add_records_location(export)
    return parser


def _add_common(group: argparse._ActionsContainer) -> None:
    group.add_argument("--bundle", type=Path, default=None, metavar="DIR",
                       help=f"model bundle folder (default: ${BUNDLE_ENV}, else {SYSTEM_BUNDLE}, "
                       f"else the demonstration bundle models/cadr-demo in a source checkout)")
    group.add_argument("--keys", type=Path, default=None, metavar="DIR",
                       help="folder of trusted public keys (*.pub) (default: /etc/cadr/keys if "
                       "it exists, else the keys shipped with the package)")
    group.add_argument("--locale", choices=("ja", "en"), default=None,
                       help="display language of results (default: from CADR_LOCALE, LC_ALL, "
                       "LC_MESSAGES or LANG; English unless it starts with 'ja')")


def _add_camera_run_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--replay", type=Path, default=None,
                     help="serve this image file or folder as camera frames instead of the "
                     "Raspberry Pi camera (sets camera.source: replay)")
    sub.add_argument("--overlay-dir", type=Path, default=None,
                     help="write every rendered viewfinder (frame and overlay) to PNG files "
                     "in this folder (viewfinder.render_dir)")
    sub.add_argument("--max-frames", type=_positive_int, default=None,
                     help="stop after this many viewfinder frames (for tests and demos)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _thread_count(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {value}")
    return value


def _add_records_location(sub: argparse.ArgumentParser) -> None:
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, metavar="DIR",
                       help="a replay output folder; uses DIR/records")
    where.add_argument("--records", type=Path, default=None, metavar="DIR",
                       help=f"records folder (default: {DEFAULT_RECORDS_DIR})")


def resolve_bundle_path(explicit: Path | None) -> Path:
    """Return the replay's bundle folder by :func:`~cadr_device.bundle_location.locate_bundle`.

    The order is ``explicit``, ``$CADR_BUNDLE``, the installed bundle, the repository's.

    Raises:
        BundleError: If no candidate exists, listing every place tried.
    """
    return locate_bundle(explicit).path


def prepare_screening(args: argparse.Namespace, store: RecordStore) -> Screening:
    """Load the runtime and bundle, build the interpreter once and pass the self-test.

    Raises:
        RuntimeLoadError, BundleError, SelfTestError: Startup failures; nothing is screened.
    """
    runtime = load_runtime()
    keyring = Keyring.from_directory(args.keys or default_key_dir())
    bundle: Bundle = load_bundle(resolve_bundle_path(args.bundle), keyring)
    check_app_version(bundle)
    classifier = Classifier(bundle, num_threads=args.threads, runtime=runtime)
    run_selftest(classifier)
    return Screening(bundle, classifier, store, locale=args.locale, backend="cpu")


def replay(args: argparse.Namespace) -> int:
    """Screen every image of ``args.source`` and print the summary table.

    Returns:
        0, or 4 when any image failed. A record that cannot be written stops the run
        with :class:`RecordError` (exit code 7).
    """
    scan = scan_image_files(args.source)
    files = scan.files
    if not files:
        raise ImageError(args.source, "no image files found (JPEG, PNG, WebP, BMP or TIFF)"
                         + _skipped_note(scan))

    out: Path = args.out
    try:
        make_private_dir(out / ANNOTATED_SUBDIR)
    except OSError as e:
        raise RecordError(f"{out}: cannot create the output folder ({e.strerror})") from e
    store = RecordStore(out / RECORDS_SUBDIR)
    screening = prepare_screening(args, store)
    results_path = out / RESULTS_NAME
    repair_torn_tail(results_path)
    logger.info("Screening files from %s with model %s: %d", display_name(args.source),
                screening.model_id, len(files))

    rows = []
    for path in files:
        row = _screen_file(screening, path, args.source, out)
        rows.append(row)
        try:
            append_line(results_path, _result_line(row, screening))
        except OSError as e:
            raise RecordError(f"{results_path}: cannot append the result of {row.file} "
                              f"({e.strerror}); free space and run again") from e
        if row.result.prediction is not None and row.result.record_path is None:
            # Classified but not saved: the disk is full or failing, so stop here.
            raise RecordError(row.result.error or "record not written")

    _ = translator(args.locale).gettext
    print(format_table(rows, screening, _, skipped=len(scan.skipped)))
    failed = sum(1 for row in rows if not row.result.ok)
    if scan.unreadable:
        logger.error("%d files or folders under %s could not be read; see the warnings above",
                     len(scan.unreadable), display_name(args.source))
    return EXIT_IMAGES_FAILED if failed or scan.unreadable else EXIT_OK


def _skipped_note(scan: ImageScan) -> str:
    if not scan.skipped:
        return ""
    return f"; skipped {len(scan.skipped)} other files or folders (see the log)"


def _screen_file(screening: Screening, path: Path, source_root: Path, out: Path) -> Row:
    start = time.perf_counter()
    shown_name = _display_name(path, source_root)
    try:
        image = load_rgb(path)
    except ImageError as e:
        # Records keep base names only, so the folder path leaves the message.
        result = screening.screen_failed(path.name, f"{display_name(path.name)}: {e.reason}")
        return Row(shown_name, result, (time.perf_counter() - start) * 1000.0)

    result = screening.screen(image, source=path.name)
    if result.annotated_path is not None:
        target = out / ANNOTATED_SUBDIR / f"{result.capture_id}_{display_name(path.stem)}.jpg"
        try:
            atomic_write(target, result.annotated_path.read_bytes())
        except OSError as e:
            raise RecordError(f"{target}: cannot write the annotated copy ({e.strerror})") from e
    return Row(shown_name, result, (time.perf_counter() - start) * 1000.0)


def _is_inside(out: Path, source: Path) -> bool:
    """Return whether ``out`` is the folder ``source`` or under it, after resolving links."""
    if not source.is_dir():
        return False
    resolved_out = out.resolve()
    resolved_source = source.resolve()
    return resolved_out == resolved_source or resolved_source in resolved_out.parents


def _has_results(out: Path) -> bool:
    results = out / RESULTS_NAME
    return results.is_file() and results.stat().st_size > 0


def _display_name(path: Path, source_root: Path) -> str:
    if source_root.is_dir():
        return display_name(path.relative_to(source_root).as_posix())
    return display_name(path.name)


def _result_line(row: Row, screening: Screening) -> bytes:
    result = row.result
    prediction = result.prediction
    entry: dict[str, Any] = {
        "file": row.file,
        "capture_id": result.capture_id,
        "status": "ok" if result.ok else "failed",
        "label": None if prediction is None else prediction.label,
        "positive": None if prediction is None else prediction.positive,
        "probability": None if prediction is None else round(prediction.probability, 6),
        "threshold": screening.bundle.manifest.decision.threshold,
        "inference_ms": None if prediction is None else round(prediction.inference_ms, 3),
        "elapsed_ms": round(row.elapsed_ms, 3),
        "model_id": result.model_id,
        "demonstration_only": screening.bundle.manifest.demonstration_only,
        "record": None if result.record_path is None else display_name(result.record_path),
        "error": result.error,
    }
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def format_table(rows: list[Row], screening: Screening, _: Any, skipped: int = 0) -> str:
    """Return the summary table and its footer as display text in the chosen language.

    ``skipped`` is the number of files and folders of the source that were not screened.
    """
    manifest = screening.bundle.manifest
    table = [[_(header) for header in HEADERS]]
    for row in rows:
        prediction = row.result.prediction
        if prediction is None:
            cells = [row.file, NO_RESULT, NO_RESULT, f"{manifest.decision.threshold:.3f}",
                     NO_RESULT, NO_RESULT, _(STATUS_FAILED)]
        else:
            comparison = ">=" if prediction.positive else "<"
            status = _(STATUS_OK) if row.result.ok else _(NOT_SAVED)
            cells = [row.file, label_text(prediction, _), f"{prediction.probability:.3f}",
                     f"{prediction.threshold:.3f}", f"p {comparison} {prediction.threshold:.3f}",
                     f"{prediction.inference_ms:.1f}", status]
        table.append(cells)

    widths = [max(_width(r[c]) for r in table) for c in range(len(HEADERS))]
    lines = ["  ".join(_pad(cell, widths[c]) for c, cell in enumerate(r)).rstrip()
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))

    failed = sum(1 for row in rows if not row.result.ok)
    lines.append("")
    lines.append(_(FOOTER_COUNTS).format(total=len(rows), screened=len(rows) - failed,
                                         failed=failed))
    if skipped:
        lines.append(_(FOOTER_SKIPPED).format(count=skipped))
    lines.append(_(MODEL).format(model_id=manifest.model_id))
    lines.append(threshold_text(manifest, _))
    lines.extend(banner_lines(manifest, _))
    lines.append(_(NOT_A_DIAGNOSIS))
    return "\n".join(lines)


def _width(text: str) -> int:
    """Return the terminal width of ``text``: East Asian wide characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _records(args: argparse.Namespace) -> int:
    root = args.out / RECORDS_SUBDIR if args.out is not None else (
        args.records or DEFAULT_RECORDS_DIR)
    if not root.is_dir():
        raise RecordError(f"{root}: no records folder; pass --records DIR or --out DIR")
    store = RecordStore(root)

    if args.records_command == "export":
        count = store.export(args.dest)
        print(f"Records exported to {args.dest}: {count}")
        return EXIT_OK

    # Entries are streamed, so listing 100,000 records does not hold them all in memory.
    if args.json:
        _print_json_array(store.iter_entries())
        return EXIT_OK
    count = 0
    for entry in store.iter_entries():
        probability = entry.get("probability")
        probability_text = "-" if probability is None else f"{probability:.3f}"
        print(f"{entry['capture_id']}  {entry.get('status', '-'):6}  {probability_text:>5}  "
              f"{entry.get('label') or '-':12}  {entry.get('model_id') or '-'}  "
              f"{entry.get('source') or '-'}")
        count += 1
    print(f"Records in {root}: {count}")
    return EXIT_OK


def _print_json_array(entries: Iterable[dict[str, Any]]) -> None:
    """Print a JSON array with one entry per line, writing each entry as it comes."""
    separator = "[\n"
    for entry in entries:
        sys.stdout.write(separator + json.dumps(entry, ensure_ascii=False))
        separator = ",\n"
    sys.stdout.write("[]\n" if separator == "[\n" else "\n]\n")


def _camera_app(args: argparse.Namespace) -> Any:
    """Import ``cadr_device.app`` lazily; the replay works without the camera stack."""
    try:
        return importlib.import_module("cadr_device.app")
    except ModuleNotFoundError as e:
        if e.name != "cadr_device.app":
            raise
        print(f"cadr-device: error: '{args.command}' needs the camera module cadr_device.app, "
              "which is not installed in this build", file=sys.stderr)
        return None


def _run_camera(args: argparse.Namespace) -> int:
    app = _camera_app(args)
    if app is None:
        return EXIT_ERROR
    return int(app.run_camera(args) or EXIT_OK)


def _request_capture(args: argparse.Namespace) -> int:
    app = _camera_app(args)
    if app is None:
        return EXIT_ERROR
    return int(app.request_capture(args) or EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
