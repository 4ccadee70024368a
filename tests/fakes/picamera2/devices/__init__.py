"""A stand-in for ``picamera2.devices``: its ``IMX500`` is the fake of tests/fakes/fake_imx500.py.

The real package exports ``IMX500`` from ``picamera2/devices/__init__.py`` (picamera2 0.3.38),
which is where :mod:`cadr_device.accel.imx500` imports it from.
"""

from fakes.fake_imx500 import FakeIMX500 as IMX500  # noqa: N814 - the real class name

__all__ = ["IMX500"]
