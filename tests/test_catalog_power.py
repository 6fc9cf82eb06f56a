"""Checks of the catalog's idle power and latency figures (hardware/*.toml).

The rule of the catalog is "cite or leave out": a figure is there only with a source,
and a figure that is absent is said to be absent in the file's ``notes``. These tests pin
what was sourced, keep the absent ones documented, and check that every power and
latency figure is plausible and usable by ``energy.power`` / ``transfer_time``.
"""

import dataclasses

import numpy as np
import pytest

from hermes_qn import energy, hardware
from hermes_qn.errors import ValidationError

from hermes_qn.catalog_paths import catalog_dir

CATALOG = catalog_dir("hardware").resolve()  # the installed wheel's copy, or the source tree's

# Devices whose idle_power has a published source (vendor document or measurement study).
# None so far: no source consulted gives an absolute per-device idle figure (see each file's
# notes). Add a name here when its file gains a sourced idle_power.
SOURCED_IDLE_POWER: dict[str, tuple[float, float]] = {}

# Link latencies added from vendor documents (seconds): upper bounds quoted by the vendor
# for ConnectX-6 adapters ("sub-600ns" HDR InfiniBand, "sub 0.8usec" 200GbE).
SOURCED_LINK_LATENCY = {
    "IB-HDR-200": 600e-9,
    "RoCE-200GbE": 0.8e-6,
}


def _builtin(kind):
    parts = [hardware.load(name) for name in hardware.list_hardware(kind)]
    return [p for p in parts if p.path is not None and CATALOG in p.path.resolve().parents]


DEVICES = _builtin("device")
LINKS = _builtin("link")
TIERS = _builtin("memory_tier")


def test_catalog_is_found():
    assert len(DEVICES) >= 17 and len(LINKS) >= 19 and len(TIERS) >= 6


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
def test_idle_power_below_peak_and_positive(device):
    if device.idle_power is None:
        pytest.skip("no idle_power in the file")
    assert device.idle_power > 0
    assert device.peak_power is not None, "an idle figure without a peak makes power() unusable"
    assert device.idle_power < device.peak_power
    q = device.quantities["idle_power"]
    assert q.source.strip() and not q.default


def test_sourced_idle_power_present():
    have = {d.name: d.idle_power for d in DEVICES if d.idle_power is not None}
    assert set(SOURCED_IDLE_POWER) <= set(have)
    for name, (lo, hi) in SOURCED_IDLE_POWER.items():
        assert lo <= have[name] <= hi, name


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
def test_missing_idle_power_is_documented(device):
    if device.idle_power is not None:
        return
    notes = device.notes.lower()
    assert "idle_power" in notes or "power" in notes, \
        f"{device.name}: idle_power is absent but its notes do not say so"


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
def test_energy_power_with_catalog_idle(device):
    if device.peak_power is None:
        with pytest.raises(ValidationError):
            energy.power(device, 0.5, idle_power=1.0)
        return
    if device.idle_power is None:
        with pytest.raises(ValidationError, match=r"no published idle figure for this device"):
            energy.power(device, 0.5)
        return
    p = energy.power(device, np.array([0.0, 0.5, 1.0]), devices=2)
    np.testing.assert_allclose(p, 2 * np.array(
        [device.idle_power, (device.idle_power + device.peak_power) / 2, device.peak_power]))


def test_energy_power_with_an_idle_figure_in_the_file():
    # the same path a sourced catalog figure takes: idle read from the Device, not the argument
    h100 = hardware.load_device("H100-SXM")
    d = dataclasses.replace(h100, idle_power=0.1 * h100.peak_power)
    assert energy.power(d, 0.0) == pytest.approx(0.1 * h100.peak_power)
    assert energy.power(d, 1.0, devices=8) == pytest.approx(8 * h100.peak_power)


@pytest.mark.parametrize("name", sorted(SOURCED_LINK_LATENCY))
def test_sourced_link_latency(name):
    link = hardware.load_link(name)
    assert link.latency == pytest.approx(SOURCED_LINK_LATENCY[name])
    q = link.quantities["latency"]
    assert q.source.strip() and "upper bound" in (q.note or "")


@pytest.mark.parametrize("link", LINKS, ids=lambda x: x.name)
def test_link_latency_plausible_or_documented(link):
    if link.latency is None:
        assert "latency" in link.notes.lower(), f"{link.name}: latency absent but not documented"
        return
    # from a cut-through NIC/switch (~100 ns) to a kernel TCP path (tens of us)
    assert 1e-7 <= link.latency <= 1e-3
    assert link.quantities["latency"].source.strip()
    # latency enters transfer_time as the zero-byte cost
    assert hardware.transfer_time(link, 0) == pytest.approx(link.latency)


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.name)
def test_scale_up_latency_plausible_or_documented(device):
    if device.scale_up_latency is None:
        notes = device.notes.lower()
        if device.scale_up_link is not None or device.scale_up_bandwidth is not None:
            assert "latency" in notes or "scale_up" in notes, \
                f"{device.name}: scale_up_latency absent but not documented"
        return
    assert 1e-7 <= device.scale_up_latency <= 1e-4
    assert device.quantities["scale_up_latency"].source.strip()


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.name)
def test_tier_latency_positive(tier):
    if tier.latency is None:
        assert "latency" in tier.notes.lower()
        return
    assert 1e-9 <= tier.latency <= 1e-2
