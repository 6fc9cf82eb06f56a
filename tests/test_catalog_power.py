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

# Devices whose idle_power comes from public idle readings (nvidia-smi / rocm-smi / amd-smi
# pastes; validation/power_idle.py lists every reading): (value W, low, high) -- the catalog
# value is the median and must lie inside the range of the readings.
SOURCED_IDLE_POWER: dict[str, tuple[float, float, float]] = {
    "H100-SXM": (70.0, 69.0, 73.0),
    "H200": (73.0, 73.0, 73.65),
    "A100-80GB-SXM": (51.0, 49.0, 52.0),
    "B200": (138.0, 136.0, 142.0),
    "L40S": (22.0, 19.0, 23.0),
    "MI300X": (158.0, 137.0, 180.0),
    "MI325X": (140.0, 140.0, 140.0),
}

# Link latencies (seconds) and the word their note must carry: vendor upper bounds for
# ConnectX-6 adapters ("sub-600ns" HDR InfiniBand, "sub 0.8usec" 200GbE), and the NVLink4
# per-step figure derived from a measured 8-GPU NCCL all-reduce (13.35 us / 14 steps).
SOURCED_LINK_LATENCY = {
    "IB-HDR-200": (600e-9, "upper bound"),
    "RoCE-200GbE": (0.8e-6, "upper bound"),
    "NVLink4": (13.35e-6 / 14, "derived"),
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
    have = {d.name: d for d in DEVICES if d.idle_power is not None}
    assert set(have) == set(SOURCED_IDLE_POWER), "a new idle figure needs a row here"
    for name, (value, lo, hi) in SOURCED_IDLE_POWER.items():
        d = have[name]
        assert d.idle_power == pytest.approx(value), name
        assert lo <= d.idle_power <= hi, name
        q = d.quantities["idle_power"]
        # what was measured is said: bare idle, or the reading's own wording
        assert "idle" in q.source.lower() or "0%" in q.source, name
        assert q.note and ("bare idle" in q.note or "~140" in q.note), name


@pytest.mark.parametrize("name", sorted(SOURCED_IDLE_POWER))
def test_idle_fraction_of_peak_is_plausible(name):
    # idle boards draw 5-25% of their TDP; a figure outside that is a transcription slip
    d = hardware.load_device(name)
    assert 0.05 <= d.idle_power / d.peak_power <= 0.25


@pytest.mark.parametrize("name", sorted(SOURCED_IDLE_POWER))
def test_power_model_uses_the_catalog_idle(name):
    d = hardware.load_device(name)
    assert energy.power(d, 0.0) == pytest.approx(d.idle_power)
    assert energy.power(name, 0.25) == pytest.approx(d.idle_power + 0.25 * (d.peak_power - d.idle_power))
    # an explicit idle_power (e.g. idle with a CUDA context) still overrides the file
    assert energy.power(d, 0.0, idle_power=d.idle_power + 40) == pytest.approx(d.idle_power + 40)
    assert hardware.power(d, 1.0) == pytest.approx(d.peak_power)


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
    value, word = SOURCED_LINK_LATENCY[name]
    assert link.latency == pytest.approx(value, rel=0.01)
    q = link.quantities["latency"]
    assert q.source.strip() and word in (q.note or "")


def test_h100_scale_up_latency_is_its_nvlink4_figure():
    h100 = hardware.load_device("H100-SXM")
    assert h100.scale_up_link == "NVLink4"
    assert h100.scale_up_latency == pytest.approx(hardware.load_link("NVLink4").latency)
    # the roofline charges 2(tp-1) steps per all-reduce: at tp = 8 that is the measured
    # 8-byte all-reduce time of the cited nccl-tests run (13.03-13.67 us)
    assert 13.0e-6 <= 2 * (8 - 1) * h100.scale_up_latency <= 13.7e-6


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
