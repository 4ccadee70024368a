"""The Coral Edge TPU back-end: ``libedgetpu.so.1`` as a TFLite delegate, or the reason why not.

Every failure ends in :class:`~cadr_device.accel.status.AcceleratorUnavailable` with the
exact reason, and the caller keeps the CPU model:

- the library is missing (the runtime raises ``OSError`` from ``dlopen``);
- no Edge TPU is attached, or its device node is not accessible (the runtime raises
  ``ValueError("Failed to load delegate from libedgetpu.so.1")`` for both, so the device
  nodes are inspected to tell them apart);
- the runtime is older than the version the model was compiled for, or the interpreter
  cannot prepare the Edge TPU model (allocate failure);
- the runtime and libedgetpu are a pair listed in :data:`KNOWN_BAD_PAIRS`;
- an earlier attempt with the same model and runtime never finished, because the process
  crashed inside the delegate: an attempt marker file is left behind, and the next start
  skips the Edge TPU instead of crashing again;
- loading took longer than the deadline (2 s by default).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadr_device.accel.status import AcceleratorUnavailable
from cadr_device.bundle import Bundle
from cadr_device.classifier import Classifier
from cadr_device.errors import CadrError
from cadr_device.runtime import RuntimeInfo, load_delegate
from cadr_device.selftest import run_selftest

logger = logging.getLogger(__name__)

LIBRARY = "libedgetpu.so.1"

#: Time allowed for loading the delegate and preparing the interpreter, in seconds.
DEFAULT_DEADLINE_S = 2.0

#: Attempt marker written before the delegate loads and removed after it returns.
MARKER_NAME = "edgetpu-attempt.json"

#: USB (vendor, product) ids of the Coral USB Accelerator: before its firmware is loaded
#: it enumerates as Global Unichip 1a6e:089a, afterwards as Google 18d1:9302.
USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))

#: Debian package versions of libedgetpu, read from this dpkg status file.
DPKG_STATUS = Path("/var/lib/dpkg/status")
LIBEDGETPU_PACKAGES = ("libedgetpu1-std", "libedgetpu1-max")

_RUNTIME_TOO_OLD = re.compile(
    r"requires runtime version \((?P<needed>\d+)\), which is newer than this runtime version "
    r"\((?P<installed>\d+)\)"
)


@dataclass(frozen=True)
class KnownBadPair:
    """A TFLite runtime and libedgetpu combination that must not be loaded together.

    Attributes:
        runtime: Distribution name, ``ai-edge-litert`` or ``tflite-runtime``.
        runtime_version_prefix: Matches runtime versions starting with this text.
        libedgetpu_version_prefix: Matches libedgetpu package versions starting with it.
        reason: What goes wrong, shown as the fallback reason.
    """

    runtime: str
    runtime_version_prefix: str
    libedgetpu_version_prefix: str
    reason: str


#: NOTE: empty until a pair is confirmed on hardware. The attempt marker covers a pair
#: that crashes the process, and callers may pass their own list to select_backend.
KNOWN_BAD_PAIRS: tuple[KnownBadPair, ...] = ()


@dataclass(frozen=True)
class DeviceRoots:
    """Locations of device nodes, sysfs and dpkg's status, and the access check; tests replace them.

    Attributes:
        dev: The device node folder.
        sys_usb: sysfs' USB device folder.
        dpkg_status: dpkg's status file, read for the libedgetpu version.
        access: ``os.access``; root passes every access check, so tests stand in for it.
    """

    dev: Path = Path("/dev")
    sys_usb: Path = Path("/sys/bus/usb/devices")
    dpkg_status: Path = DPKG_STATUS
    access: Callable[[Path, int], bool] = os.access


def build_edgetpu_classifier(
    bundle: Bundle, num_threads: int, runtime: RuntimeInfo, state_dir: Path | None, *,
    deadline_s: float = DEFAULT_DEADLINE_S, known_bad: tuple[KnownBadPair, ...] = KNOWN_BAD_PAIRS,
    roots: DeviceRoots | None = None,
) -> Classifier:
    """Return a self-tested classifier on the Edge TPU model of ``bundle``.

    Raises:
        AcceleratorUnavailable: With the exact reason, on every failure listed in the
            module docstring; the caller then runs the CPU model.
    """
    roots = roots or DeviceRoots()
    entry = bundle.manifest.accelerators.get("edgetpu")
    if not isinstance(entry, dict) or not entry.get("file"):
        raise AcceleratorUnavailable("the bundle has no Edge TPU model; convert it with "
                                     "cadr-convert --target edgetpu")
    model_file = str(entry["file"])
    try:
        bundle.file(model_file)
    except CadrError as e:
        raise AcceleratorUnavailable(f"the bundle's Edge TPU model is not usable: {e}") from e

    libedgetpu_version = read_libedgetpu_version(roots.dpkg_status)
    _check_known_bad(runtime, libedgetpu_version, known_bad)
    marker = AttemptMarker(state_dir, bundle.manifest.files[model_file], runtime.label)
    marker.check()

    marker.write()
    classifier = _load_with_deadline(bundle, model_file, num_threads=num_threads,
                                     runtime=runtime, deadline_s=deadline_s, roots=roots,
                                     marker=marker)
    # The self-test is the first invoke on the Edge TPU, so the marker stays until it returns.
    try:
        run_selftest(classifier)
    except CadrError as e:
        raise AcceleratorUnavailable(f"the Edge TPU self-test failed: {e}") from e
    finally:
        marker.remove()
    logger.info("Edge TPU delegate loaded for %s (runtime %s, libedgetpu %s)",
                bundle.manifest.model_id, runtime.label, libedgetpu_version or "unknown")
    return classifier


def _load_with_deadline(bundle: Bundle, model_file: str, *, num_threads: int,
                        runtime: RuntimeInfo, deadline_s: float, roots: DeviceRoots,
                        marker: AttemptMarker) -> Classifier:
    """Load the delegate and build the interpreter in a worker thread, bounded by ``deadline_s``.

    NOTE: the bound holds only while the blocking call releases the GIL; a native call
    that hangs while holding it (ctypes.pydll does) blocks this thread too.
    """
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            delegate = load_delegate(LIBRARY, runtime=runtime)
            result["classifier"] = Classifier(bundle, num_threads=num_threads,
                                              delegates=[delegate], runtime=runtime,
                                              model_file=model_file)
        except Exception as e:  # noqa: BLE001 - every delegate failure becomes a reason
            result["error"] = e

    started = time.monotonic()
    worker = threading.Thread(target=attempt, name="edgetpu-load", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        marker.write(state="timed out")
        raise AcceleratorUnavailable(
            f"the Edge TPU delegate did not load within {deadline_s:.1f} s; remove "
            f"{marker.path} to try again after checking the device"
        )
    if "error" in result:
        marker.remove()
        raise AcceleratorUnavailable(diagnose(result["error"], roots)) from result["error"]

    logger.debug("Edge TPU delegate and interpreter ready in %.3f s", time.monotonic() - started)
    return result["classifier"]


def diagnose(error: BaseException, roots: DeviceRoots | None = None) -> str:
    """Return the reason for a delegate or interpreter failure, in words a technician can act on."""
    roots = roots or DeviceRoots()
    message = str(error).strip()
    first_line = message.splitlines()[0] if message else type(error).__name__

    if isinstance(error, OSError) and "cannot open shared object file" in message:
        return (f"{LIBRARY} is not installed ({first_line}); install libedgetpu1-std from "
                "Coral's apt repository")
    too_old = _RUNTIME_TOO_OLD.search(message)
    if too_old:
        return (f"the Edge TPU runtime is version {too_old['installed']} but the model needs "
                f"version {too_old['needed']}; update libedgetpu1-std, or compile the model "
                f"with edgetpu_compiler --min_runtime_version {too_old['installed']}")
    if isinstance(error, ValueError) and "Failed to load delegate" in message:
        return _device_reason(roots, first_line)
    return f"the interpreter could not prepare the Edge TPU model: {first_line}"


def _device_reason(roots: DeviceRoots, first_line: str) -> str:
    """Tell a missing Edge TPU from an inaccessible one by looking at the device nodes."""
    pcie = sorted(roots.dev.glob("apex_*"))
    usb = list(_usb_device_nodes(roots))
    if not pcie and not usb:
        return ("no Edge TPU found: no /dev/apex_* (M.2 or PCIe) and no USB device "
                "1a6e:089a or 18d1:9302; check the cable or card")
    for node in [*pcie, *usb]:
        if node.exists() and not roots.access(node, os.R_OK | os.W_OK):
            group = "apex" if node.name.startswith("apex_") else "plugdev"
            return (f"permission denied on {node}; add the cadr user to the '{group}' group "
                    "(Coral's udev rules set it) and restart")
    return f"libedgetpu could not open the Edge TPU ({first_line})"


def _usb_device_nodes(roots: DeviceRoots) -> list[Path]:
    nodes = []
    for device in sorted(roots.sys_usb.glob("*")):
        try:
            ids = ((device / "idVendor").read_text().strip(),
                   (device / "idProduct").read_text().strip())
            if ids not in USB_IDS:
                continue
            bus = int((device / "busnum").read_text())
            number = int((device / "devnum").read_text())
        except (OSError, ValueError):
            continue
        nodes.append(roots.dev / "bus" / "usb" / f"{bus:03d}" / f"{number:03d}")
    return nodes


def read_libedgetpu_version(status_file: Path = DPKG_STATUS) -> str | None:
    """Return the installed libedgetpu package version from dpkg's status file, or None."""
    try:
        text = status_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if fields.get("Package") in LIBEDGETPU_PACKAGES and "installed" in fields.get("Status", ""):
            return fields.get("Version")
    return None


def _check_known_bad(runtime: RuntimeInfo, libedgetpu_version: str | None,
                     known_bad: tuple[KnownBadPair, ...]) -> None:
    if libedgetpu_version is None:
        return
    for pair in known_bad:
        if (pair.runtime == runtime.distribution
                and runtime.version.startswith(pair.runtime_version_prefix)
                and libedgetpu_version.startswith(pair.libedgetpu_version_prefix)):
            raise AcceleratorUnavailable(
                f"{runtime.label} with libedgetpu {libedgetpu_version} is a known-bad pair: "
                f"{pair.reason}"
            )


class AttemptMarker:
    """A file that exists while the delegate loads and so remains after a crash inside it.

    The marker names the Edge TPU model's sha256 and the runtime, so installing another
    bundle or runtime tries the Edge TPU again.
    """

    def __init__(self, state_dir: Path | None, model_sha256: str, runtime_label: str) -> None:
        self.path = state_dir / MARKER_NAME if state_dir else None
        self.key = {"model_sha256": model_sha256, "runtime": runtime_label}

    def check(self) -> None:
        """Raise AcceleratorUnavailable if an earlier attempt with the same key never finished."""
        if self.path is None or not self.path.is_file():
            return
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        if {k: previous.get(k) for k in self.key} != self.key:
            logger.info("Ignoring Edge TPU attempt marker %s for another model or runtime",
                        self.path)
            return
        state = previous.get("state", "crashed")
        raise AcceleratorUnavailable(
            f"an earlier attempt to load the Edge TPU delegate for this model {state} "
            f"(marker {self.path}); remove that file to try again"
        )

    def write(self, state: str = "crashed") -> None:
        """Record an attempt in progress; ``state`` is what a leftover marker means."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = {**self.key, "state": state, "pid": os.getpid(), "started": time.time()}
            self.path.write_text(json.dumps(data), encoding="utf-8")
        except OSError as e:
            logger.warning("Cannot write Edge TPU attempt marker %s (%s); a crash in the "
                           "delegate would repeat at every start", self.path, e.strerror)

    def remove(self) -> None:
        """Delete the marker after the attempt returned."""
        if self.path is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            logger.warning("Cannot remove Edge TPU attempt marker %s (%s)", self.path, e.strerror)
