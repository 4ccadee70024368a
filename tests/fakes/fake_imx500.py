"""A stand-in for picamera2's ``IMX500`` helper (``picamera2.devices.IMX500``, picamera2 0.3.38).

It keeps the real class's public surface that cadr uses: ``IMX500(network_file,
camera_id='', tensor_injection=False)`` raising ``RuntimeError('IMX500: Requested camera
dev-node not found')`` without a camera and ``RuntimeError('Firmware file ... does not
exist.')`` for a missing network; ``camera_num``; ``network_intrinsics`` (None for a
network packaged without intrinsics); ``config``; ``set_inference_roi_abs((left, top,
width, height))`` bounded to the 4056x3040 sensor; ``get_outputs(metadata,
add_batch=False)`` reading ``CnnOutputTensor`` and reshaping in Fortran order as the real
one does; and the static ``get_kpi_info(metadata)``.

The real ``get_outputs`` reads the tensor shapes from the ``CnnOutputTensorInfo`` bytes;
the fake takes them from :attr:`FakeIMX500.output_shapes`. :func:`frame_metadata` builds a
frame's metadata with the sensor output the test wants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FULL_SENSOR = (0, 0, 4056, 3040)


@dataclass
class FakeImx500Settings:
    """Fault switches; tests change them, :func:`reset` restores them."""

    no_camera: bool = False
    camera_num: int = 0
    task: str | None = None
    instances: list[FakeIMX500] = field(default_factory=list)


settings = FakeImx500Settings()


def reset() -> None:
    """Restore the default settings."""
    global settings  # noqa: PLW0603 - one sensor per process, like the real one
    settings = FakeImx500Settings()


class FakeNetworkIntrinsics:
    """The part of ``NetworkIntrinsics`` that cadr reads: ``task``."""

    def __init__(self, task: str) -> None:
        self.task = task


class FakeIMX500:
    """One IMX500 with a network loaded."""

    def __init__(self, network_file: str, camera_id: str = "", tensor_injection: bool = False):
        if settings.no_camera:
            raise RuntimeError("IMX500: Requested camera dev-node not found")
        if not os.path.isfile(network_file):
            raise RuntimeError(f"Firmware file {network_file} does not exist.")
        self.network_file = network_file
        self.camera_id = camera_id
        self.tensor_injection = tensor_injection
        self.output_shapes: list[tuple[int, ...]] = [(1,)]
        self.roi_calls: list[tuple[int, int, int, int]] = []
        self._config: dict[str, Any] = {"network_file": network_file, "input_tensor": {}}
        self.set_inference_roi_abs(FULL_SENSOR)
        settings.instances.append(self)

    @property
    def camera_num(self) -> int:
        return settings.camera_num

    @property
    def config(self) -> dict[str, Any]:
        return self._config

    @property
    def network_intrinsics(self) -> FakeNetworkIntrinsics | None:
        return FakeNetworkIntrinsics(settings.task) if settings.task else None

    def set_inference_roi_abs(self, roi: tuple[int, int, int, int]) -> None:
        left, top, width, height = (int(v) for v in roi)
        left, top = max(left, 0), max(top, 0)
        width = min(width, FULL_SENSOR[2] - left)
        height = min(height, FULL_SENSOR[3] - top)
        self._config["roi"] = (left, top, width, height)
        self.roi_calls.append((left, top, width, height))

    def get_outputs(self, metadata: dict[str, Any], add_batch: bool = False,
                    ) -> list[np.ndarray] | None:
        output_tensor = metadata.get("CnnOutputTensor")
        if not output_tensor:
            return None
        values = np.fromiter(output_tensor, dtype=np.float32)
        outputs = []
        offset = 0
        for shape in self.output_shapes:
            size = int(np.prod(shape))
            tensor = values[offset:offset + size].reshape(shape, order="F")
            outputs.append(np.expand_dims(tensor, 0) if add_batch else tensor)
            offset += size
        return outputs

    @staticmethod
    def get_kpi_info(metadata: dict[str, Any]) -> tuple[float, float] | None:
        kpi = metadata.get("CnnKpiInfo")
        if kpi is None:
            return None
        return kpi[0] / 1000, kpi[1] / 1000


def frame_metadata(*outputs: float, dnn_us: int = 4200, dsp_us: int = 300) -> dict[str, Any]:
    """Return one frame's request metadata with the sensor's output values."""
    return {"CnnOutputTensor": list(outputs), "CnnKpiInfo": [dnn_us, dsp_us],
            "ScalerCrop": FULL_SENSOR, "SensorTimestamp": 1}
