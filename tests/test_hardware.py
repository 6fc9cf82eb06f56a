"""Hardware catalog: every file loads, every number has a source, published figures,
unit conversions, each validation error, listing, user directories, loading by path."""

from __future__ import annotations

import dataclasses
import doctest
import tomllib
from pathlib import Path

import numpy as np
import pytest

from hermes_qn import hardware as hw
from hermes_qn.catalog_paths import catalog_dir
from hermes_qn.errors import ValidationError
from hermes_qn.hardware import Device, Link, MemoryTier

CATALOG = catalog_dir("hardware")
FILES = sorted(CATALOG.rglob("*.toml"))


@pytest.fixture(autouse=True)
def _no_user_path(monkeypatch):
    monkeypatch.delenv(hw.ENV_VAR, raising=False)


# --------------------------------------------------------------------------- catalog


def test_catalog_is_not_empty():
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(CATALOG).as_posix())
def test_every_file_loads(path):
    part = hw.load(path)
    assert isinstance(part, (Device, MemoryTier, Link))
    assert hw.load(part.name) == part  # found by name too


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(CATALOG).as_posix())
def test_every_number_has_a_source(path):
    raw = tomllib.loads(path.read_text())
    tables = {k: v for k, v in raw.items() if isinstance(v, dict) and k != "peak_flops_dense"}
    tables.update({f"peak_flops_dense.{k}": v for k, v in raw.get("peak_flops_dense", {}).items()})
    assert tables
    for key, table in tables.items():
        assert isinstance(table.get("source"), str) and len(table["source"]) > 10, key
    # no bare numbers anywhere outside {value, unit, source} tables
    bare = [k for k, v in raw.items() if isinstance(v, (int, float)) and k != "schema_version"]
    assert not bare


def test_loaded_quantities_carry_sources():
    for name in hw.list_hardware():
        part = hw.load(name)
        for key, q in part.quantities.items():
            assert q.source, (name, key)
            assert q.default == q.source.startswith("default: ")


def test_required_parts_present():
    devices = set(hw.list_hardware("device"))
    assert {"A100-80GB-SXM", "H100-SXM", "H200", "B200", "L40S", "MI300X", "MI325X",
            "TPU-v5e", "TPU-v5p", "TPU-v6e", "Gaudi2", "Gaudi3", "Trainium2", "Xeon-8480+",
            "EPYC-9654", "Grace", "UPMEM-PIM"} <= devices
    assert {"HBM3-stack", "DDR5-socket", "CXL-CZ120", "NVMe-PCIe4", "NVMe-PCIe5",
            "Mooncake-RDMA-pool"} <= set(hw.list_hardware("memory_tier"))
    assert {"NVLink3", "NVLink4", "NVLink5", "PCIe4-x16", "PCIe5-x16", "PCIe6-x16",
            "CXL2-x16", "CXL3-x16", "IB-HDR-200", "IB-NDR-400", "RoCE-200GbE",
            "RoCE-400GbE", "Ethernet-100GbE"} <= set(hw.list_hardware("link"))


def test_device_link_references_resolve():
    for name in hw.list_hardware("device"):
        device = hw.load_device(name)
        for ref in (device.scale_up_link, device.host_link):
            if ref is not None:
                assert isinstance(hw.load_link(ref), Link), (name, ref)


def test_every_device_has_bf16_or_a_reason():
    # Grace and UPMEM publish no BF16 rate; everything else must have one for the roofline.
    for name in hw.list_hardware("device"):
        device = hw.load_device(name)
        if name not in ("Grace", "UPMEM-PIM"):
            assert "bf16" in device.peak_flops, name
        else:
            assert "bf16" not in device.notes.lower() or "left out" in device.notes


# --------------------------------------------------------------------------- published figures
# Oracle: vendor datasheets (dense rates). rel 1e-3 unless noted.

SPOT = [
    ("H100-SXM", "bf16", 989e12, 80e9, 3.35e12),
    ("A100-80GB-SXM", "bf16", 312e12, 80e9, 2.039e12),
    ("H200", "bf16", 989.5e12, 141e9, 4.8e12),
    ("B200", "fp4", 9e15, 180e9, 8e12),
    ("MI300X", "bf16", 1307.4e12, 192e9, 5.3e12),
    ("MI325X", "fp8", 2614.9e12, 256e9, 6e12),
    ("L40S", "bf16", 362.05e12, 48e9, 864e9),
    ("TPU-v5e", "bf16", 197e12, 16e9, 819e9),
    ("TPU-v5p", "bf16", 459e12, 95 * 2**30, 2765e9),
    ("TPU-v6e", "int8", 1836e12, 32e9, 1638e9),
    ("Gaudi3", "bf16", 1835e12, 128e9, 3.67e12),
    ("Trainium2", "fp8", 1299e12, 96 * 2**30, 2.9e12),
]


@pytest.mark.parametrize("name, precision, flops, mem, bw", SPOT, ids=[s[0] for s in SPOT])
def test_published_figures(name, precision, flops, mem, bw):
    d = hw.load_device(name)
    assert hw.peak_flops(d, precision) == pytest.approx(flops, rel=2e-3)
    assert d.memory_bytes == pytest.approx(mem, rel=1e-9)
    assert d.memory_bandwidth == pytest.approx(bw, rel=1e-9)


def test_h100_details():
    d = hw.load_device("H100-SXM")
    assert d.peak_flops["fp8"] == pytest.approx(2 * d.peak_flops["bf16"], rel=1e-3)
    assert d.scale_up_bandwidth == pytest.approx(450e9)  # 900 GB/s bidirectional, halved
    assert d.peak_power == 700
    assert d.sram_bytes == 50e6
    assert d.price_per_hour == pytest.approx(4.916)
    assert "2024-12" in d.quantities["price_per_hour"].note
    assert d.quantities["matmul_efficiency"].default  # no measurement: documented default
    assert d.matmul_efficiency == hw.DEFAULT_MATMUL_EFFICIENCY


def test_mi300x_measured_efficiencies():
    d = hw.load_device("MI300X")
    assert d.matmul_efficiency == pytest.approx(708 / 1307.4, rel=1e-3)  # AMD MAF blog
    assert d.memory_efficiency == pytest.approx(0.81)
    assert not d.quantities["matmul_efficiency"].default
    assert hw.achievable_flops(d, "bf16") == pytest.approx(708e12, rel=1e-3)
    assert hw.achievable_bandwidth(d) == pytest.approx(0.81 * 5.3e12)


def test_links_and_tiers():
    assert hw.load_link("NVLink4").bandwidth == pytest.approx(450e9)
    assert hw.load_link("NVLink5").bandwidth == pytest.approx(900e9)
    assert hw.load_link("PCIe5-x16").bandwidth == pytest.approx(64e9)
    assert hw.load_link("IB-NDR-400").bandwidth == pytest.approx(50e9)  # 400 Gb/s / 8
    assert hw.load_link("Ethernet-100GbE").latency == pytest.approx(50e-6)
    hbm = hw.load_memory_tier("HBM3")
    assert (hbm.bandwidth, hbm.capacity) == (819e9, 64e9)
    ssd = hw.load_memory_tier("NVMe-PCIe5")
    assert ssd.write_bandwidth == pytest.approx(6.6e9) and ssd.latency is None
    assert hw.load_memory_tier("Mooncake-RDMA-pool").capacity is None


def test_upmem_derived_figures():
    d = hw.load_device("UPMEM-PIM")
    assert d.category == "pim"
    assert d.memory_bytes == 2556 * 64 * 2**20
    assert d.memory_bandwidth == pytest.approx(2556 * 2 * 350e6)
    assert d.peak_flops["int32"] == pytest.approx(2556 * 350e6)
    assert d.quantities["memory_bandwidth"].uncertainty == pytest.approx(200e9)


# --------------------------------------------------------------------------- helpers


def test_ridge_point_and_transfer_time():
    d = hw.load_device("H100-SXM")
    assert hw.ridge_point(d, "bf16") == pytest.approx(989.4e12 / 3.35e12)
    assert hw.ridge_point(d, "bf16", achievable=True) == pytest.approx(989.4e12 * 0.7 / (3.35e12 * 0.8))
    eth = hw.load_link("Ethernet-100GbE")
    assert hw.transfer_time(eth, 12.5e9) == pytest.approx(1 + 50e-6)
    np.testing.assert_allclose(hw.transfer_time(eth, [0, 12.5e9]), [50e-6, 1 + 50e-6])
    with pytest.raises(ValidationError, match=r"tiers/NVMe-PCIe5.toml: NVMe-PCIe5 has no latency"):
        hw.transfer_time(hw.load("NVMe-PCIe5"), 1e6)
    assert hw.transfer_time(hw.load("NVMe-PCIe5"), 13e9, latency=1e-4) == pytest.approx(1 + 1e-4)


def test_peak_flops_missing_precision_lists_available():
    d = hw.load_device("TPU-v5e")
    with pytest.raises(ValidationError, match=r"hardware/TPU-v5e.toml: no peak_flops_dense.fp8 .*valid: one of bf16, int8"):
        hw.peak_flops(d, "fp8")


def test_power_model():
    d = dataclasses.replace(hw.load_device("H100-SXM"), idle_power=70.0)
    assert hw.power(d, 0.0) == 70.0
    assert hw.power(d, 1.0) == 700.0
    assert hw.power(d, 0.5) == pytest.approx(385.0)
    np.testing.assert_allclose(hw.power(d, np.array([0, 0.25, 1])), [70, 227.5, 700])
    raw = hw.load_device("Gaudi2")  # a TDP but no public idle reading
    assert hw.power(raw, 1.0, idle_power=60) == 600
    with pytest.raises(ValidationError, match=r"Gaudi2.toml: Gaudi2 has no idle_power"):
        hw.power(raw, 0.5)
    h200 = hw.load_device("H200")  # sourced bare idle, overridable
    assert hw.power(h200, 0.0) == h200.idle_power
    assert hw.power(h200, 0.0, idle_power=110) == 110
    with pytest.raises(ValidationError, match=r"utilisation 1.5 is out of range; valid: 0 <= utilisation <= 1"):
        hw.power(d, 1.5)
    with pytest.raises(ValidationError, match=r"has no peak_power"):
        hw.power(hw.load_device("TPU-v5e"), 0.5, idle_power=10)


def test_replace_rechecks_fields():
    d = hw.load_device("H100-SXM")
    bigger = dataclasses.replace(d, memory_bytes=2 * d.memory_bytes)
    assert bigger.memory_bytes == 160e9 and bigger != d
    with pytest.raises(ValidationError, match=r"Device 'H100-SXM': memory_bytes must be a positive"):
        dataclasses.replace(d, memory_bytes=-1)
    with pytest.raises(ValidationError, match=r"matmul_efficiency must be a fraction of peak; got 1.5"):
        dataclasses.replace(d, matmul_efficiency=1.5)
    with pytest.raises(ValidationError, match=r"peak_flops key 'bf17' is not a known precision"):
        dataclasses.replace(d, peak_flops={"bf17": 1e12})
    with pytest.raises(ValidationError, match=r"idle_power 800 W exceeds peak_power 700 W"):
        dataclasses.replace(d, idle_power=800)
    assert hash(d) == hash(hw.load_device("h100"))
    with pytest.raises(TypeError):
        d.peak_flops["bf16"] = 1.0  # read-only mapping


def test_module_doctest():
    failures, _ = doctest.testmod(hw)
    assert failures == 0


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("value, unit, expected", [
    (80, "GB", 80e9),
    (80, "GiB", 80 * 2**30),
    (1, "TB", 1e12),
    (1, "TiB", 2**40),
    (512, "MiB", 2**29),
    (2000, "kB", 2e6),
    (2048, "KiB", 2**21),
])
def test_capacity_units(tmp_path, value, unit, expected):
    path = _write(tmp_path, memory_capacity=f'{{value = {value}, unit = "{unit}", source = "test source"}}')
    assert hw.load(path).memory_bytes == expected


@pytest.mark.parametrize("value, unit, direction, expected", [
    (3.35, "TB/s", None, 3.35e12),
    (800, "GiB/s", None, 800 * 2**30),
    (400, "Gb/s", None, 50e9),
    (900, "GB/s", "bidirectional", 450e9),
    (450, "GB/s", "per_direction", 450e9),
    (1.6, "Tb/s", "bidirectional", 100e9),
])
def test_bandwidth_units(tmp_path, value, unit, direction, expected):
    if direction is None:
        path = _write(tmp_path, memory_bandwidth=f'{{value = {value}, unit = "{unit}", source = "test source"}}')
        assert hw.load(path).memory_bandwidth == pytest.approx(expected)
    else:
        path = _write(tmp_path, scale_up_bandwidth=f'{{value = {value}, unit = "{unit}", '
                      f'direction = "{direction}", source = "test source"}}')
        assert hw.load(path).scale_up_bandwidth == pytest.approx(expected)


def test_time_power_fraction_units(tmp_path):
    path = _write(tmp_path,
                  scale_up_latency='{value = 2, unit = "us", source = "test source"}',
                  idle_power='{value = 0.1, unit = "kW", source = "test source"}',
                  peak_power='{value = 700, unit = "W", source = "test source"}',
                  matmul_efficiency='{value = 75, unit = "%", source = "test source"}')
    d = hw.load(path)
    assert d.scale_up_latency == pytest.approx(2e-6)
    assert d.idle_power == 100.0
    assert d.matmul_efficiency == pytest.approx(0.75)
    assert d.quantities["scale_up_latency"].as_written == "2 us"


# --------------------------------------------------------------------------- validation errors

BASE = {
    "schema_version": "1",
    "kind": '"device"',
    "name": '"TestGPU"',
    "vendor": '"Acme"',
    "category": '"gpu"',
    "memory_capacity": '{value = 80, unit = "GB", source = "test source"}',
    "memory_bandwidth": '{value = 3, unit = "TB/s", source = "test source"}',
}
FLOPS = '[peak_flops_dense]\nbf16 = {value = 1000, unit = "TFLOP/s", source = "test source"}\n'


def _write(tmp_path: Path, flops: str = FLOPS, filename: str = "TestGPU.toml", **keys: str | None) -> Path:
    entries = {**BASE, **keys}
    body = "".join(f"{k} = {v}\n" for k, v in entries.items() if v is not None)
    path = tmp_path / filename
    path.write_text(body + flops)
    return path


ERRORS = [
    ("unit not a bandwidth", {"memory_bandwidth": '{value = 3.35, unit = "TB", source = "x datasheet"}'}, FLOPS,
     r"TestGPU.toml: memory_bandwidth.unit 'TB' is not a bandwidth unit \(it is a capacity unit\); valid: B/s, kB/s"),
    ("unknown unit", {"memory_capacity": '{value = 80, unit = "Gigabytes", source = "x datasheet"}'}, FLOPS,
     r"memory_capacity.unit 'Gigabytes' is not a capacity unit; valid: B, kB, MB, GB, TB, KiB"),
    ("float unit on int", {}, '[peak_flops_dense]\nint8 = {value = 1, unit = "TFLOP/s", source = "x datasheet"}\n',
     r"peak_flops_dense.int8.unit 'TFLOP/s' is not an integer-operation rate unit .*valid: OP/s, GOP/s, TOP/s, POP/s"),
    ("missing required", {"memory_bandwidth": None}, FLOPS,
     r"TestGPU.toml: missing required key 'memory_bandwidth' for a device"),
    ("missing flops", {}, "",
     r"missing required table \[peak_flops_dense\]"),
    ("missing source", {"memory_capacity": '{value = 80, unit = "GB"}'}, FLOPS,
     r"memory_capacity.source is missing; valid: source = "),
    ("empty source", {"memory_capacity": '{value = 80, unit = "GB", source = ""}'}, FLOPS,
     r"memory_capacity.source must name where the number comes from; got ''"),
    ("negative", {"memory_capacity": '{value = -80, unit = "GB", source = "x datasheet"}'}, FLOPS,
     r"memory_capacity.value must be positive and finite; got -80"),
    ("infinite", {"memory_capacity": '{value = inf, unit = "GB", source = "x datasheet"}'}, FLOPS,
     r"memory_capacity.value must be positive and finite; got inf"),
    ("not a number", {"memory_capacity": '{value = "80", unit = "GB", source = "x datasheet"}'}, FLOPS,
     r"memory_capacity.value must be a number; got '80'"),
    ("implausible", {"memory_bandwidth": '{value = 3.35, unit = "B/s", source = "x datasheet"}'}, FLOPS,
     r"memory_bandwidth.value 3.35 B/s \(= 3.35 B/s\) is outside the plausible range for a bandwidth; valid: 1e\+08 to 1e\+14 B/s"),
    ("implausible flops", {}, '[peak_flops_dense]\nbf16 = {value = 1000, unit = "PFLOP/s", source = "x datasheet"}\n',
     r"peak_flops_dense.bf16.value 1000 PFLOP/s .* outside the plausible range"),
    ("unknown top key", {"memory_bandwith": '{value = 3, unit = "TB/s", source = "x datasheet"}'}, FLOPS,
     r"unknown key 'memory_bandwith' for a device \(did you mean 'memory_bandwidth'\?\)"),
    ("sparse table", {"peak_flops": "{}"}, FLOPS,
     r"unknown key 'peak_flops' for a device .*list dense rates under \[peak_flops_dense\]"),
    ("unknown quantity key", {"memory_capacity": '{value = 80, unit = "GB", source = "x datasheet", sauce = "y"}'}, FLOPS,
     r"memory_capacity.sauce is not a known key"),
    ("unknown precision", {}, '[peak_flops_dense]\nbf17 = {value = 1, unit = "TFLOP/s", source = "x datasheet"}\n',
     r"peak_flops_dense.bf17 is not a known precision \(did you mean 'bf16'\?\); valid: fp64"),
    ("missing direction", {"scale_up_bandwidth": '{value = 900, unit = "GB/s", source = "x datasheet"}'}, FLOPS,
     r"scale_up_bandwidth.direction is missing; valid: direction = \"per_direction\" or \"bidirectional\""),
    ("bad direction", {"scale_up_bandwidth": '{value = 900, unit = "GB/s", direction = "both", source = "x datasheet"}'}, FLOPS,
     r"scale_up_bandwidth.direction 'both' is not known; valid: per_direction, bidirectional"),
    ("direction where none", {"memory_bandwidth": '{value = 3, unit = "TB/s", direction = "bidirectional", source = "x datasheet"}'}, FLOPS,
     r"memory_bandwidth.direction is not a known key"),
    ("price without date", {"price_per_hour": '{value = 4, unit = "USD/h", source = "x price page"}'}, FLOPS,
     r"price_per_hour.date is missing; valid: date = "),
    ("bad date", {"price_per_hour": '{value = 4, unit = "USD/h", date = "last year", source = "x price page"}'}, FLOPS,
     r"price_per_hour.date 'last year' is not a date"),
    ("efficiency above 1", {"matmul_efficiency": '{value = 1.2, unit = "1", source = "x benchmark"}'}, FLOPS,
     r"matmul_efficiency.value 1.2 1 .* outside the plausible range for a fraction; valid: 0.001 to 1"),
    ("idle above peak", {"idle_power": '{value = 800, unit = "W", source = "x datasheet"}',
                         "peak_power": '{value = 700, unit = "W", source = "x datasheet"}'}, FLOPS,
     r"idle_power 800 W exceeds peak_power 700 W"),
    ("bad kind", {"kind": '"gpu"'}, FLOPS,
     r"TestGPU.toml: kind 'gpu' is not a hardware kind; valid: device, memory_tier, link"),
    ("bad category", {"category": '"fpga"'}, FLOPS,
     r"category 'fpga' is not known; valid: gpu, tpu, accelerator, cpu, pim"),
    ("schema version", {"schema_version": "2"}, FLOPS,
     r"schema_version 2 is not supported; valid: schema_version = 1"),
    ("bad name", {"name": '"Test GPU"'}, FLOPS,
     r"name or alias 'Test GPU' has characters a catalog name cannot hold"),
    ("bad uncertainty", {"memory_capacity": '{value = 80, unit = "GB", uncertainty = -1, source = "x datasheet"}'}, FLOPS,
     r"memory_capacity.uncertainty must be a non-negative number in GB; got -1"),
    ("quantity not a table", {"memory_capacity": "80"}, FLOPS,
     r"memory_capacity must be a table"),
]


@pytest.mark.parametrize("label, keys, flops, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_validation_errors(tmp_path, label, keys, flops, message):
    path = _write(tmp_path, flops=flops, **keys)
    with pytest.raises(ValidationError, match=message):
        hw.load(path)


def test_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ValidationError, match=r"broken.toml: not valid TOML"):
        hw.load(path)


def test_link_and_tier_validation(tmp_path):
    link = tmp_path / "L.toml"
    link.write_text('schema_version = 1\nkind = "link"\nname = "L"\ntechnology = "t"\nscope = "s"\n'
                    'bandwidth = {value = 10, unit = "Gb/s", source = "test source"}\n')
    with pytest.raises(ValidationError, match=r"L.toml: bandwidth.direction is missing"):
        hw.load(link)
    tier = tmp_path / "T.toml"
    tier.write_text('schema_version = 1\nkind = "memory_tier"\nname = "T"\ntechnology = "t"\n'
                    'latency = {value = 1, unit = "us", source = "test source"}\n')
    with pytest.raises(ValidationError, match=r"missing required key 'scope'"):
        hw.load(tier)
    tier.write_text('schema_version = 1\nkind = "memory_tier"\nname = "T"\ntechnology = "t"\nscope = "s"\n'
                    'latency = {value = 1, unit = "us", source = "test source"}\n')
    with pytest.raises(ValidationError, match=r"missing required key 'bandwidth' for a memory_tier"):
        hw.load(tier)


def test_builtin_errors_name_the_catalog_file():
    # messages for built-in files say hardware/<file>
    d = hw.load_device("TPU-v6e")
    with pytest.raises(ValidationError, match=r"^hardware/TPU-v6e.toml: "):
        hw.peak_flops(d, "fp4")


# --------------------------------------------------------------------------- lookup


def test_lookup_is_case_insensitive_and_uses_aliases():
    assert hw.load("h100-sxm") is hw.load("H100")
    assert hw.load("trillium").name == "TPU-v6e"
    assert hw.load("  MI300X ").name == "MI300X"


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValidationError, match=r"unknown name 'H100-SMX' \(close matches: H100-SXM"):
        hw.load("H100-SMX")
    with pytest.raises(ValidationError, match=r"unknown name 'zzzz' \(no close match\); valid: one of \d+ parts"):
        hw.load("zzzz")


def test_wrong_kind():
    with pytest.raises(ValidationError, match=r"'NVLink4' is a link, not a device; valid: one of A100-80GB-SXM"):
        hw.load_device("NVLink4")
    with pytest.raises(ValidationError, match=r"is a device, not a memory_tier"):
        hw.load_memory_tier("H100-SXM")


def test_list_hardware():
    everything = hw.list_hardware()
    assert everything == sorted(everything, key=str.casefold)
    assert set(hw.list_hardware("device")) | set(hw.list_hardware("memory_tier")) \
        | set(hw.list_hardware("link")) == set(everything)
    assert len(everything) == len(FILES)
    with pytest.raises(ValidationError, match=r"kind 'gpu' is not a hardware kind; valid: None or one of device"):
        hw.list_hardware("gpu")


def test_load_by_path(tmp_path):
    path = _write(tmp_path)
    d = hw.load(path)
    assert d.name == "TestGPU" and d.path == path.resolve()
    assert hw.load(str(path)).name == "TestGPU"
    with pytest.raises(ValidationError, match=r"does not exist"):
        hw.load(tmp_path / "nope.toml")
    with pytest.raises(ValidationError, match=r"hardware name: got 42"):
        hw.load(42)


def test_user_directory_by_argument(tmp_path):
    _write(tmp_path)
    assert "TestGPU" in hw.list_hardware("device", search_path=tmp_path)
    assert "TestGPU" not in hw.list_hardware("device")
    assert hw.load("testgpu", search_path=[tmp_path]).vendor == "Acme"
    with pytest.raises(ValidationError, match=r"unknown name 'TestGPU'"):
        hw.load("TestGPU")
    with pytest.raises(ValidationError, match=r"search_path: .* is not a directory"):
        hw.load("TestGPU", search_path=tmp_path / "missing")


def test_user_directory_by_env_var(tmp_path, monkeypatch):
    sub = tmp_path / "devices"
    sub.mkdir()
    _write(sub)
    monkeypatch.setenv(hw.ENV_VAR, str(tmp_path))
    assert hw.load_device("TestGPU").vendor == "Acme"
    assert "TestGPU" in hw.list_hardware()
    monkeypatch.setenv(hw.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match=rf"{hw.ENV_VAR}: .* is not a directory"):
        hw.list_hardware()


def test_user_file_shadows_builtin(tmp_path):
    path = _write(tmp_path, filename="mine.toml")
    text = path.read_text().replace('name = "TestGPU"', 'name = "H100-SXM"')
    path.write_text(text)
    assert hw.load("H100-SXM", search_path=tmp_path).vendor == "Acme"
    assert hw.load("H100", search_path=tmp_path).vendor == "NVIDIA"  # alias still built-in


def test_duplicate_names_in_one_directory(tmp_path):
    _write(tmp_path, filename="a.toml")
    _write(tmp_path, filename="b.toml")
    with pytest.raises(ValidationError, match=r"b.toml: name 'TestGPU' is already used by .*a.toml"):
        hw.load("TestGPU", search_path=tmp_path)


def test_edited_file_is_reread(tmp_path):
    path = _write(tmp_path)
    assert hw.load(path).vendor == "Acme"
    path.write_text(path.read_text().replace('"Acme"', '"Acme Corporation"'))
    assert hw.load(path).vendor == "Acme Corporation"
