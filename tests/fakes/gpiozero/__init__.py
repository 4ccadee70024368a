"""A stand-in for gpiozero 2.0's ``Button`` without GPIO hardware.

It follows the real signature ``Button(pin=None, *, pull_up=True, active_state=None,
bounce_time=None, hold_time=1, hold_repeat=False, pin_factory=None)``, the
``when_pressed`` property (a callback with no argument or one, the device) and
``close()``. Tests press a button with ``button.pin.drive_low()``, as on gpiozero's
``MockFactory`` pins, which pulls an input with the internal pull-up to ground.
Setting ``FAKE_GPIOZERO_NO_PINS=1`` makes construction raise ``BadPinFactory``, as on a
machine without GPIO.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any


class GPIOZeroError(Exception):
    """Base class of gpiozero's errors."""


class BadPinFactory(GPIOZeroError, ImportError):  # noqa: N818 - gpiozero's name
    """No pin factory could be loaded."""


class PinInvalidPin(GPIOZeroError):  # noqa: N818 - gpiozero's name
    """The pin number does not exist."""


#: Buttons made in this process, in order.
instances: list[Button] = []


class MockPin:
    """One GPIO pin whose level a test drives."""

    def __init__(self, number: int, button: Button) -> None:
        self.number = number
        self._button = button
        self.state = 1 if button.pull_up else 0

    def drive_low(self) -> None:
        """Connect the pin to ground: a press when the pull-up is on."""
        was = self.state
        self.state = 0
        if was == 1 and self._button.pull_up:
            self._button._fire()

    def drive_high(self) -> None:
        """Release the pin back to the pull-up level."""
        self.state = 1


class Button:
    """A push button between ``pin`` and ground (with ``pull_up=True``)."""

    def __init__(self, pin: int | None = None, *, pull_up: bool = True,
                 active_state: bool | None = None, bounce_time: float | None = None,
                 hold_time: float = 1, hold_repeat: bool = False, pin_factory: Any = None) -> None:
        if os.environ.get("FAKE_GPIOZERO_NO_PINS") == "1":
            raise BadPinFactory("Unable to load any default pin factory!")
        if pin is None or not 0 <= pin <= 53:
            raise PinInvalidPin(f"{pin!r} is not a valid pin")
        self.pull_up = pull_up
        self.bounce_time = bounce_time
        self.hold_time = hold_time
        self.pin = MockPin(pin, self)
        self._when_pressed: Callable[..., Any] | None = None
        self.closed = False
        instances.append(self)

    @property
    def when_pressed(self) -> Callable[..., Any] | None:
        return self._when_pressed

    @when_pressed.setter
    def when_pressed(self, value: Callable[..., Any] | None) -> None:
        self._when_pressed = value

    @property
    def is_pressed(self) -> bool:
        return self.pin.state == 0 if self.pull_up else self.pin.state == 1

    def _fire(self) -> None:
        callback = self._when_pressed
        if callback is None or self.closed:
            return
        if len(inspect.signature(callback).parameters) == 0:
            callback()
        else:
            callback(self)

    def close(self) -> None:
        self.closed = True
