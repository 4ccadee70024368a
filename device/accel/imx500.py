"""The Raspberry Pi AI Camera (Sony IMX500) back-end: the network runs on the sensor.

Set-up, through picamera2's IMX500 helper (picamera2 0.3, ``picamera2.devices.IMX500``):

1. ``imx500/packerOut.zip`` from the bundle is packaged into ``network.rpk`` with
   Raspberry Pi OS's ``imx500-package`` (package ``imx500-tools``), once per bundle,
   into a cache folder keyed by the zip's sha256. :func:`package_network` is meant to run
   when a bundle is installed; :func:`build_imx500_classifier` runs it on first use too.
2. ``IMX500(network.rpk)`` uploads the network to the sensor. It must be created before
   ``Picamera2(imx500.camera_num)`` opens the camera.
3. The inference region is set to the framing guide's centred square with
   ``set_inference_roi_abs``, so the sensor classifies the area the guide shows.
4. Each frame's request metadata carries the sensor's output tensor;
   ``imx500.get_outputs(metadata, add_batch=True)`` returns it as float arrays.

Without request metadata (image replay, the golden self-test), :class:`Imx500Classifier`
runs the bundle's CPU model on the model input instead and logs that.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cadr_device.accel.status import CPU, IMX500, AcceleratorUnavailable
from cadr_device.bundle import Bundle, sha256_file
from cadr_device.classifier import Classifier, Prediction
from cadr_device.errors import CadrError
from cadr_device.preprocess import PreprocessRule

logger = logging.getLogger(__name__)

PACKAGER = "imx500-package"
NETWORK_FILE = "network.rpk"

#: Time limit of ``imx500-package``, in seconds.
PACKAGER_TIMEOUT_S = 120.0

#: Full IMX500 sensor area in pixels, the coordinate space of ``set_inference_roi_abs``
#: (picamera2 0.3.38, ``IMX500.__get_full_sensor_resolution``).
SENSOR_SIZE = (4056, 3040)

#: Seconds between repeated log lines about frames without sensor output.
MISSING_OUTPUT_LOG_INTERVAL_S = 30.0


@dataclass(frozen=True)
class Roi:
    """An inference region in full-sensor pixels: (left, top, width, height)."""

    left: int
    top: int
    width: int
    height: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Return ``(left, top, width, height)`` as ``set_inference_roi_abs`` takes it."""
        return (self.left, self.top, self.width, self.height)


def framing_roi(rule: PreprocessRule, sensor_size: tuple[int, int] = SENSOR_SIZE) -> Roi:
    """Return the centred square of the framing guide in sensor coordinates.

    NOTE: this assumes the preview shows the whole sensor field of view (no digital zoom).
    A ScalerCrop set elsewhere would move the guide away from this region.
    """
    width, height = sensor_size
    side = int(round(min(width, height) * rule.crop_fraction))
    return Roi((width - side) // 2, (height - side) // 2, side, side)


def package_network(packer_zip: Path, cache_dir: Path, packager: str = PACKAGER,
                    timeout_s: float = PACKAGER_TIMEOUT_S) -> Path:
    """Return ``network.rpk`` for ``packer_zip``, running ``imx500-package`` when not cached.

    Raises:
        AcceleratorUnavailable: If the packager is missing, fails or times out.
    """
    digest = sha256_file(packer_zip)
    out_dir = cache_dir / "imx500" / digest
    network = out_dir / NETWORK_FILE
    if network.is_file():
        return network

    executable = shutil.which(packager)
    if executable is None:
        raise AcceleratorUnavailable(
            f"{packager} not found, so the IMX500 network cannot be packaged; install it with "
            "'sudo apt install imx500-all' on Raspberry Pi OS"
        )
    staging = out_dir.with_name(digest + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [executable, "-i", str(packer_zip), "-o", str(staging)]
    logger.info("Packaging IMX500 network: %s", " ".join(argv))
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                   check=False)
    except subprocess.TimeoutExpired as e:
        raise AcceleratorUnavailable(f"{packager} timed out after {timeout_s:.0f} s") from e
    if completed.returncode != 0 or not (staging / NETWORK_FILE).is_file():
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise AcceleratorUnavailable(
            f"{packager} failed (exit code {completed.returncode}): {' '.join(detail)}"
        )
    # Publish the finished folder in one rename, so a power cut leaves no half file.
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return network


class Imx500Classifier:
    """Reads the sensor's classification for each frame, with the CPU model as the fallback.

    Attributes:
        bundle: The verified bundle.
        runtime: The CPU runtime (for records and the self-test message).
        imx500: picamera2's ``IMX500`` helper with the network loaded.
        cpu: The bundle's CPU classifier, used for inputs without sensor output.
        positive_index: Column of the sensor output that is the positive probability.
        sensor_threshold: Operating point for the sensor's probabilities, chosen by the
            converter on the MCT-quantized model for the bundle's target sensitivity. The
            CPU model's probabilities keep the bundle's threshold.
    """

    def __init__(self, bundle: Bundle, imx500: Any, cpu: Classifier, positive_index: int,
                 sensor_threshold: float) -> None:
        self.bundle = bundle
        self.imx500 = imx500
        self.cpu = cpu
        self.runtime = cpu.runtime
        self.positive_index = positive_index
        self.sensor_threshold = sensor_threshold
        self._last_missing_log = -MISSING_OUTPUT_LOG_INTERVAL_S
        self.missing_outputs = 0

    @property
    def camera_num(self) -> int:
        """The camera number to pass to ``Picamera2``: the IMX500's."""
        return int(self.imx500.camera_num)

    def sensor_probability(self, metadata: dict[str, Any]) -> tuple[float, float] | None:
        """Return (probability, DNN time in ms) from a frame's metadata; None without output."""
        outputs = self.imx500.get_outputs(metadata, add_batch=True)
        if not outputs:
            return None
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        probability = float(np.clip(values[self.positive_index], 0.0, 1.0))
        kpi = self.imx500.get_kpi_info(metadata)
        return probability, float(kpi[0]) if kpi else 0.0

    def probability(self, model_input: np.ndarray,
                    metadata: dict[str, Any] | None = None) -> tuple[float, float]:
        """Return the sensor's probability for the frame of ``metadata``, else the CPU model's."""
        if metadata is not None:
            result = self.sensor_probability(metadata)
            if result is not None:
                return result
        self._note_missing_output(metadata is None)
        return self.cpu.probability(model_input)

    def classify(self, model_input: np.ndarray,
                 metadata: dict[str, Any] | None = None) -> Prediction:
        """Classify one frame at the sensor's operating point, or with the CPU model.

        The prediction's ``backend`` is ``IMX500`` when the sensor's output for the frame
        of ``metadata`` was used, and ``CPU`` when the CPU model classified ``model_input``
        because the metadata was missing or carried no output tensor.
        """
        result = self.sensor_probability(metadata) if metadata is not None else None
        if result is None:
            self._note_missing_output(metadata is None)
            return replace(self.cpu.classify(model_input), backend=CPU)

        probability, elapsed_ms = result
        manifest = self.bundle.manifest
        positive = probability >= self.sensor_threshold
        label = manifest.positive_label if positive else manifest.negative_label
        return Prediction(probability, self.sensor_threshold, positive, label, elapsed_ms,
                          backend=IMX500)

    def _note_missing_output(self, no_metadata: bool) -> None:
        self.missing_outputs += 1
        now = time.monotonic()
        if now - self._last_missing_log >= MISSING_OUTPUT_LOG_INTERVAL_S:
            self._last_missing_log = now
            logger.info("IMX500 output unavailable (%s); the CPU model classified the input "
                        "(%d such inputs so far)",
                        "no request metadata" if no_metadata else "no tensor in this frame",
                        self.missing_outputs)


def build_imx500_classifier(bundle: Bundle, cpu: Classifier, cache_dir: Path,
                            imx500_class: Any = None) -> Imx500Classifier:
    """Package and load the bundle's IMX500 network and aim it at the framing guide.

    Args:
        bundle: The verified bundle.
        cpu: The bundle's CPU classifier, kept for inputs without sensor output.
        cache_dir: Folder for packaged ``network.rpk`` files.
        imx500_class: ``picamera2.devices.IMX500`` or a stand-in; imported when None.

    Raises:
        AcceleratorUnavailable: With the reason, when any step fails.
    """
    entry = bundle.manifest.accelerators.get("imx500")
    if not isinstance(entry, dict) or not entry.get("file"):
        raise AcceleratorUnavailable("the bundle has no IMX500 network; convert it with "
                                     "cadr-convert --target imx500")
    try:
        packer = bundle.file(str(entry["file"]))
    except CadrError as e:
        raise AcceleratorUnavailable(f"the bundle's IMX500 network is not usable: {e}") from e
    expected = (bundle.manifest.preprocess.width, bundle.manifest.preprocess.height)
    contract = entry.get("input", {})
    if (contract.get("width"), contract.get("height")) != expected:
        raise AcceleratorUnavailable(
            f"the IMX500 network input {contract.get('width')}x{contract.get('height')} does not "
            f"match the model input {expected[0]}x{expected[1]}; rebuild the bundle"
        )

    positive_index = int(entry.get("output", {}).get("positive_index", 0))
    threshold = entry.get("decision", {}).get("threshold", bundle.manifest.decision.threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not 0.0 <= threshold <= 1.0:
        raise AcceleratorUnavailable(f"accelerators.imx500.decision.threshold is {threshold!r}, "
                                     "not a probability; rebuild the bundle")

    try:
        network = package_network(packer, cache_dir)
    except OSError as e:
        raise AcceleratorUnavailable(f"the IMX500 network cannot be packaged into {cache_dir} "
                                     f"({e.strerror or e}); check that the folder is "
                                     "writable") from e
    if imx500_class is None:
        imx500_class = _import_imx500()
    try:
        imx500 = imx500_class(str(network))
    except (RuntimeError, OSError) as e:
        raise AcceleratorUnavailable(f"the IMX500 camera did not accept the network: {e}") from e

    intrinsics = imx500.network_intrinsics
    task = getattr(intrinsics, "task", None) if intrinsics is not None else None
    if task not in (None, "classification"):
        raise AcceleratorUnavailable(f"the IMX500 network's task is {task!r}, not classification")
    roi = framing_roi(bundle.manifest.preprocess)
    imx500.set_inference_roi_abs(roi.as_tuple())

    logger.info("IMX500 network %s loaded on camera %s, inference region %s",
                network, imx500.camera_num, roi.as_tuple())
    return Imx500Classifier(bundle, imx500, cpu, positive_index, float(threshold))


def _import_imx500() -> Any:
    try:
        devices = importlib.import_module("picamera2.devices")
    except ImportError as e:
        raise AcceleratorUnavailable(f"picamera2 with IMX500 support is not installed ({e}); "
                                     "install python3-picamera2 and imx500-all") from e
    try:
        return devices.IMX500
    except AttributeError as e:
        raise AcceleratorUnavailable("this picamera2 has no IMX500 helper; update "
                                     "python3-picamera2") from e
