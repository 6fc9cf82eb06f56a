"""Power, energy per token and dollars per million tokens, from the hardware catalog.

- :func:`power` -- ``idle + (peak - idle) * utilisation`` watts per device
  (:func:`hermes_qn.hardware.power`), times ``devices``.
- :func:`joules_per_token` -- ``power * time / tokens``.
- :func:`dollars_per_million_tokens` -- ``price_per_hour / 3600 * devices *
  time / tokens * 1e6``.

Idle power: vendors publish none, so the catalog's ``idle_power`` (A100-80GB-SXM,
H100-SXM, H200, B200, L40S, MI300X, MI325X) is the median of public idle readings
(``validation/power_idle.md``). It is **bare** idle, with no CUDA context; a serving
engine that keeps a model resident idles 26-66 W higher, so pass ``idle_power=``
(W) for that state. Devices without a reading need ``idle_power=`` (the error says
so). The model is linear in utilisation; measured memory-bound decode draws far
less than peak at full utilisation (``validation/power_splitwise.md``). Cloud
prices exist only for H100-SXM, H200 and TPU-v5e; pass ``price_per_hour=`` for
the others.

Time and tokens are what a stage or a whole pipeline takes: e.g. a decode
step's ``total`` seconds and the ``batch`` tokens it emits, or a solved
network's time and throughput over a window. Utilisation is the busy fraction
of the device during that time (1 for a step timed alone; a station's
utilisation from a queueing solution for a long-run average, in which case
``time`` is the window and ``tokens`` what it delivered).

Examples
--------
>>> from hermes_qn import hardware, energy
>>> h100 = hardware.load_device("H100-SXM")
>>> energy.power(h100, 0.5, idle_power=100.0)        # 100 + (700 - 100) * 0.5  W
400.0
>>> energy.joules_per_token(h100, time=0.02, tokens=64, idle_power=100.0)  # 700 W * 20 ms / 64
0.21875
>>> round(energy.dollars_per_million_tokens(h100, time=1.0, tokens=1000), 4)  # 4.916 USD/h
1.3656
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import hardware as _hw
from .errors import ValidationError
from .hardware import Device

__all__ = ["dollars_per_million_tokens", "joules_per_token", "power"]


def _device_iv(func: str, device: Any) -> Device:
    if isinstance(device, str):
        device = _hw.load_device(device)
    if not isinstance(device, Device):
        raise ValidationError(f"{func}: device must be a hermes_qn.hardware.Device or a catalog "
                              f"name; got {type(device).__name__}; valid: load_device(...)")
    return device


def _positive(name: str, value: Any, *, zero: bool = False) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: got {value!r}; valid: a number or array of numbers") from None
    bad = ~np.isfinite(a) | ((a < 0) if zero else (a <= 0))
    if bad.any():
        raise ValidationError(f"{name}: got {float(a[bad].flat[0])!r}; valid: finite numbers "
                              f"{'>= 0' if zero else '> 0'}")
    return a


def _devices_iv(devices: Any) -> int:
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise ValidationError(f"devices: got {devices!r}; valid: an integer >= 1")
    return int(devices)


def _out(x: Any) -> Any:
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _where(device: Device) -> str:
    return f"hardware/{device.path.name}" if device.path else f"Device {device.name!r}"


def power(device: Device | str, utilisation: Any = 1.0, *, devices: int = 1,
          idle_power: float | None = None) -> Any:
    """Electrical power of ``devices`` devices busy ``utilisation`` of the time, in watts.

    ``devices * (idle + (peak - idle) * utilisation)`` with ``peak`` the
    device's ``peak_power`` (TDP / board power) and ``idle`` its
    ``idle_power``, or the ``idle_power`` argument (W). A catalog file carries
    ``idle_power`` (bare idle, no CUDA context) only where public idle readings
    were found (its ``notes`` say so otherwise); for a device without one, or for
    idle with a model resident, pass ``idle_power=``.

    Raises
    ------
    ValidationError
        Utilisation outside [0, 1]; no peak power; no idle power known.
    """
    device = _device_iv("power", device)
    n = _devices_iv(devices)
    if idle_power is None and device.idle_power is None:
        raise ValidationError(
            f"{_where(device)}: {device.name} has no idle_power (the catalog has no published "
            "idle figure for this device; see the notes in its file); valid: pass idle_power=<W> "
            "explicitly, e.g. a measured value, or add idle_power to the device file")
    return _out(n * np.asarray(_hw.power(device, utilisation, idle_power=idle_power)))


def joules_per_token(device: Device | str, time: Any, tokens: Any, *, utilisation: Any = 1.0,
                     devices: int = 1, idle_power: float | None = None) -> Any:
    """Energy per token, in joules: ``power(device, utilisation) * time / tokens``.

    Parameters
    ----------
    device : Device or str
        One of the devices doing the work.
    time : float or array_like
        Seconds the work takes (wall clock), > 0.
    tokens : float or array_like
        Tokens produced (or processed) in ``time``, > 0.
    utilisation : float or array_like
        Busy fraction over ``time``, in [0, 1].
    devices : int
        Devices drawing power (e.g. the tensor-parallel group).
    idle_power : float, optional
        Idle watts per device; required where the catalog has none.

    Returns
    -------
    float or ndarray
        J per token (W * s / token).
    """
    t = _positive("time", time)
    k = _positive("tokens", tokens)
    p = np.asarray(power(device, utilisation, devices=devices, idle_power=idle_power))
    return _out(p * t / k)


def dollars_per_million_tokens(device: Device | str, time: Any, tokens: Any, *,
                               devices: int = 1, price_per_hour: float | None = None) -> Any:
    """Rental cost per million tokens, in USD: ``price/3600 * devices * time / tokens * 1e6``.

    Parameters
    ----------
    device : Device or str
        Supplies ``price_per_hour`` (USD per device-hour) unless overridden.
    time : float or array_like
        Seconds the work takes, > 0.
    tokens : float or array_like
        Tokens produced in ``time``, > 0.
    devices : int
        Devices rented for the work.
    price_per_hour : float, optional
        USD per device-hour, overriding or standing in for the catalog's.

    Raises
    ------
    ValidationError
        No price in the catalog and none passed (the message lists the devices
        that have one), or a non-positive time, token count or price.
    """
    device = _device_iv("dollars_per_million_tokens", device)
    n = _devices_iv(devices)
    price = device.price_per_hour if price_per_hour is None else price_per_hour
    if price is None:
        priced = [name for name in _hw.list_hardware("device")
                  if _hw.load_device(name).price_per_hour is not None]
        raise ValidationError(
            f"{_where(device)}: {device.name} has no price_per_hour; valid: pass "
            f"price_per_hour=<USD per device-hour>, or use a device with a catalog price "
            f"({', '.join(priced) or 'none'})")
    price = float(_positive("price_per_hour", price))
    t = _positive("time", time)
    k = _positive("tokens", tokens)
    return _out(price / 3600.0 * n * t / k * 1e6)
