"""Hardware catalog: devices, memory tiers and links, read from TOML with explicit units.

Every number in ``hardware/*.toml`` is written as an inline table that states its
value, its unit and its source, for example::

    memory_bandwidth = {value = 3.35, unit = "TB/s", source = "NVIDIA H100 datasheet"}

This module checks each file (required keys present, unknown keys rejected, units
known and of the right kind, values positive, finite and plausible), converts
every quantity to SI (FLOP/s, bytes, bytes/s, seconds, watts; decimal ``GB`` is
1e9 bytes, binary ``GiB`` is 2**30 bytes) and returns frozen dataclasses:

- :class:`Device` -- an accelerator, CPU or memory-centric part;
- :class:`MemoryTier` -- a place to keep KV cache or vector indexes (HBM, DDR,
  CXL, SSD, a remote store);
- :class:`Link` -- an interconnect (NVLink, PCIe, CXL, InfiniBand, Ethernet).

Parts are found by name (case-insensitive, aliases allowed) in, in this order,
the directories passed as ``search_path``, the directories listed in the
environment variable ``HERMES_QN_HARDWARE_PATH`` (``os.pathsep``-separated), and
the built-in catalog. A user adds a part by dropping a TOML file into one of
those directories, or loads a single file by path. ``hardware/README.md``
documents the file format.

Examples
--------
>>> from hermes_qn.hardware import load, peak_flops
>>> h100 = load("h100-sxm")
>>> h100.memory_bytes                      # bytes (80 GB, decimal)
80000000000.0
>>> round(peak_flops(h100, "bf16") / 1e12, 1)  # dense TFLOP/s
989.4
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence, Union

import numpy as np

from .catalog_paths import catalog_dir, load_cached, read_toml
from .errors import ValidationError

__all__ = [
    "DEFAULT_MATMUL_EFFICIENCY",
    "DEFAULT_MEMORY_EFFICIENCY",
    "ENV_VAR",
    "KINDS",
    "PRECISIONS",
    "Device",
    "Link",
    "MemoryTier",
    "Quantity",
    "achievable_bandwidth",
    "achievable_flops",
    "list_hardware",
    "load",
    "load_device",
    "load_link",
    "load_memory_tier",
    "peak_flops",
    "power",
    "ridge_point",
    "transfer_time",
]

#: Environment variable naming extra catalog directories (``os.pathsep``-separated).
ENV_VAR = "HERMES_QN_HARDWARE_PATH"

#: The only schema version this loader reads (``schema_version = 1`` in each file).
SCHEMA_VERSION = 1

#: Fraction of dense peak FLOP/s that a large matmul reaches, used when a device
#: file gives no measured ``matmul_efficiency``. A hermes-qn assumption, not a
#: catalog fact: AMD's published max-achievable-FLOPs measurements give 0.54
#: (MI300X) and 0.64 (MI325X) of peak BF16, and AMD estimates the gap between
#: achievable and peak FLOP/s on modern accelerators at 44-70 % (ROCm blogs,
#: "Understanding Peak, Max-Achievable & Delivered FLOPs", 2025).
DEFAULT_MATMUL_EFFICIENCY = 0.7

#: Fraction of peak memory bandwidth that a streaming kernel reaches, used when a
#: device file gives no measured ``memory_efficiency``. A hermes-qn assumption:
#: BabelStream-type measurements reach about 0.81 of peak on MI300X and up to
#: about 0.9 on recent NVIDIA parts (Ambati & Diep, "AMD MI300X GPU Performance
#: Analysis", arXiv 2025).
DEFAULT_MEMORY_EFFICIENCY = 0.8

KINDS = ("device", "memory_tier", "link")
CATEGORIES = ("gpu", "tpu", "accelerator", "cpu", "pim")
#: Precisions a device file may list under ``[peak_flops_dense]``.
PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int32", "int8", "int4")
INTEGER_PRECISIONS = frozenset({"int32", "int8", "int4"})
DIRECTIONS = ("per_direction", "bidirectional")

# --------------------------------------------------------------------------- units

_KB, _KIB = 1e3, 2.0**10
_UNITS: dict[str, dict[str, float]] = {
    "flop_rate": {"FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15},
    "op_rate": {"OP/s": 1.0, "GOP/s": 1e9, "TOP/s": 1e12, "POP/s": 1e15},
    "bytes": {
        "B": 1.0, "kB": _KB, "MB": _KB**2, "GB": _KB**3, "TB": _KB**4,
        "KiB": _KIB, "MiB": _KIB**2, "GiB": _KIB**3, "TiB": _KIB**4,
    },
    "bandwidth": {
        "B/s": 1.0, "kB/s": _KB, "MB/s": _KB**2, "GB/s": _KB**3, "TB/s": _KB**4,
        "KiB/s": _KIB, "MiB/s": _KIB**2, "GiB/s": _KIB**3, "TiB/s": _KIB**4,
        "Mb/s": 1e6 / 8, "Gb/s": 1e9 / 8, "Tb/s": 1e12 / 8,
    },
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
    "power": {"W": 1.0, "kW": 1e3},
    "price_rate": {"USD/h": 1.0},
    "fraction": {"1": 1.0, "%": 0.01},
}
_DIMENSION_LABEL = {
    "flop_rate": "floating-point rate",
    "op_rate": "integer-operation rate",
    "bytes": "capacity",
    "bandwidth": "bandwidth",
    "time": "time",
    "power": "power",
    "price_rate": "price",
    "fraction": "fraction",
}
_SI_UNIT = {
    "flop_rate": "FLOP/s", "op_rate": "OP/s", "bytes": "B", "bandwidth": "B/s",
    "time": "s", "power": "W", "price_rate": "USD/h", "fraction": "1",
}


@dataclass(frozen=True)
class _Spec:
    """How one quantity key is read: its dimension, bounds (SI) and extra keys."""

    dimension: str
    low: float
    high: float
    required: bool = False
    direction: bool = False  # needs direction = "per_direction" | "bidirectional"
    date: bool = False  # needs date = "YYYY-MM[-DD]"


_FLOPS_SPEC = _Spec("flop_rate", 1e9, 1e17)  # 1 GFLOP/s .. 100 PFLOP/s per part
_DEVICE_QUANTITIES = {
    "memory_capacity": _Spec("bytes", 1e6, 1e14, required=True),
    "memory_bandwidth": _Spec("bandwidth", 1e8, 1e14, required=True),
    "sram_capacity": _Spec("bytes", 1e3, 1e11),
    "scale_up_bandwidth": _Spec("bandwidth", 1e8, 1e14, direction=True),
    "scale_up_latency": _Spec("time", 1e-10, 1e-2),
    "idle_power": _Spec("power", 0.1, 1e5),
    "peak_power": _Spec("power", 0.1, 1e5),
    "price_per_hour": _Spec("price_rate", 1e-4, 1e4, date=True),
    "matmul_efficiency": _Spec("fraction", 1e-3, 1.0),
    "memory_efficiency": _Spec("fraction", 1e-3, 1.0),
}
_TIER_QUANTITIES = {
    "bandwidth": _Spec("bandwidth", 1e6, 1e14, required=True),
    "write_bandwidth": _Spec("bandwidth", 1e6, 1e14),
    "latency": _Spec("time", 1e-10, 1.0),
    "capacity": _Spec("bytes", 1e6, 1e18),
}
_LINK_QUANTITIES = {
    "bandwidth": _Spec("bandwidth", 1e6, 1e14, required=True, direction=True),
    "latency": _Spec("time", 1e-10, 1.0),
}
_QUANTITIES = {"device": _DEVICE_QUANTITIES, "memory_tier": _TIER_QUANTITIES, "link": _LINK_QUANTITIES}

# String (or list-of-string) keys per kind: key -> required?
_COMMON_TEXT = {"kind": True, "schema_version": True, "name": True, "aliases": False,
                "description": False, "notes": False}
_TEXT_KEYS = {
    "device": {**_COMMON_TEXT, "vendor": True, "category": True, "memory_type": False,
               "scale_up_link": False, "host_link": False},
    "memory_tier": {**_COMMON_TEXT, "technology": True, "scope": True},
    "link": {**_COMMON_TEXT, "technology": True, "scope": True},
}
_QUANTITY_KEYS = ("value", "unit", "source", "note", "uncertainty", "direction", "date")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Quantity:
    """One catalog number, in SI, with where it came from.

    Parameters
    ----------
    value : float
        The number in the SI unit ``unit`` (bandwidths per direction).
    unit : str
        SI unit of ``value``: ``"FLOP/s"``, ``"OP/s"``, ``"B"``, ``"B/s"``, ``"s"``,
        ``"W"``, ``"USD/h"`` or ``"1"``.
    source : str
        Datasheet, paper or page the number comes from (or ``"default: ..."``).
    as_written : str
        The value and unit as the file wrote them, e.g. ``"3.35 TB/s"``.
    uncertainty : float or None
        Absolute uncertainty in ``unit``, where the file gives one.
    note : str or None
        How the number was derived or what it assumes.
    default : bool
        True when the loader filled the value in (no catalog number).
    """

    value: float
    unit: str
    source: str
    as_written: str
    uncertainty: float | None = None
    note: str | None = None
    default: bool = False


def _freeze(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


def _positive(owner: str, name: str, value: Any, unit: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{owner}: {name} must be a positive finite number in {unit}; "
                              f"got {value!r}; valid: > 0")


def _fraction(owner: str, name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0 < value <= 1):
        raise ValidationError(f"{owner}: {name} must be a fraction of peak; got {value!r}; "
                              "valid: 0 < value <= 1")


@dataclass(frozen=True)
class Device:
    """An accelerator, CPU or memory-centric part, all numbers in SI units.

    Parameters
    ----------
    name : str
        Catalog name, e.g. ``"H100-SXM"``.
    vendor : str
        Maker, e.g. ``"NVIDIA"``.
    category : {"gpu", "tpu", "accelerator", "cpu", "pim"}
        Kind of part.
    peak_flops : mapping of str to float
        Dense (no structured sparsity) peak rate per precision, in FLOP/s
        (OP/s for ``int*`` precisions). Keys from :data:`PRECISIONS`.
    memory_bytes : float
        Main memory capacity (HBM, GDDR, DDR, LPDDR, MRAM), in bytes.
    memory_bandwidth : float
        Peak main-memory bandwidth, in bytes/s.
    sram_bytes : float or None
        Largest on-chip memory level (GPU L2 or last-level cache, CPU L3, TPU/ASIC
        SRAM), in bytes; None where no source gives it.
    scale_up_bandwidth : float or None
        Scale-up interconnect bandwidth of one device to its peers, bytes/s **per
        direction** (a bidirectional figure in the file is halved).
    scale_up_latency : float or None
        Scale-up link latency, in seconds.
    idle_power, peak_power : float or None
        Idle and peak (TDP/TBP) power, in watts.
    price_per_hour : float or None
        Public cloud list price of one device, in USD per hour (date in
        ``quantities["price_per_hour"].note``/source).
    matmul_efficiency : float
        Achievable fraction of peak FLOP/s for large matmuls (0-1];
        :data:`DEFAULT_MATMUL_EFFICIENCY` when no source gives one.
    memory_efficiency : float
        Achievable fraction of peak memory bandwidth (0-1];
        :data:`DEFAULT_MEMORY_EFFICIENCY` when no source gives one.
    memory_type : str or None
        E.g. ``"HBM3"``.
    scale_up_link, host_link : str or None
        Catalog names of the :class:`Link` used to reach peers / the host.
    aliases : tuple of str
        Other names the part is found by.
    quantities : mapping of str to Quantity
        Every number with its unit, source and uncertainty, keyed like the file
        (``"memory_bandwidth"``, ``"peak_flops.bf16"``, ...).
    description, notes : str
        Free text from the file.
    path : pathlib.Path or None
        File the device was read from.

    Vary a device with :func:`dataclasses.replace`; the fields are checked again.
    """

    name: str
    vendor: str
    category: str
    peak_flops: Mapping[str, float]
    memory_bytes: float
    memory_bandwidth: float
    sram_bytes: float | None = None
    scale_up_bandwidth: float | None = None
    scale_up_latency: float | None = None
    idle_power: float | None = None
    peak_power: float | None = None
    price_per_hour: float | None = None
    matmul_efficiency: float = DEFAULT_MATMUL_EFFICIENCY
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY
    memory_type: str | None = None
    scale_up_link: str | None = None
    host_link: str | None = None
    aliases: tuple[str, ...] = ()
    quantities: Mapping[str, Quantity] = field(default_factory=dict, compare=False, repr=False)
    description: str = field(default="", compare=False, repr=False)
    notes: str = field(default="", compare=False, repr=False)
    path: Path | None = field(default=None, compare=False, repr=False)

    kind = "device"

    def __post_init__(self) -> None:
        owner = f"Device {self.name!r}"
        if self.category not in CATEGORIES:
            raise ValidationError(f"{owner}: category {self.category!r} is not known; "
                                  f"valid: {', '.join(CATEGORIES)}")
        flops = dict(self.peak_flops)
        if not flops:
            raise ValidationError(f"{owner}: peak_flops is empty; valid: at least one of "
                                  f"{', '.join(PRECISIONS)}")
        for precision, rate in flops.items():
            if precision not in PRECISIONS:
                raise ValidationError(f"{owner}: peak_flops key {precision!r} is not a known "
                                      f"precision; valid: {', '.join(PRECISIONS)}")
            _positive(owner, f"peak_flops[{precision!r}]", rate, "FLOP/s", optional=False)
        _positive(owner, "memory_bytes", self.memory_bytes, "bytes", optional=False)
        _positive(owner, "memory_bandwidth", self.memory_bandwidth, "bytes/s", optional=False)
        _positive(owner, "sram_bytes", self.sram_bytes, "bytes")
        _positive(owner, "scale_up_bandwidth", self.scale_up_bandwidth, "bytes/s")
        _positive(owner, "scale_up_latency", self.scale_up_latency, "s")
        _positive(owner, "idle_power", self.idle_power, "W")
        _positive(owner, "peak_power", self.peak_power, "W")
        _positive(owner, "price_per_hour", self.price_per_hour, "USD/h")
        _fraction(owner, "matmul_efficiency", self.matmul_efficiency)
        _fraction(owner, "memory_efficiency", self.memory_efficiency)
        if self.idle_power is not None and self.peak_power is not None \
                and self.idle_power > self.peak_power:
            raise ValidationError(f"{owner}: idle_power {self.idle_power:g} W exceeds peak_power "
                                  f"{self.peak_power:g} W; valid: idle_power <= peak_power")
        object.__setattr__(self, "peak_flops", _freeze(flops))
        object.__setattr__(self, "quantities", _freeze(self.quantities))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, tuple(sorted(self.peak_flops.items())),
                     self.memory_bytes, self.memory_bandwidth))

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions with a peak rate, in :data:`PRECISIONS` order."""
        return tuple(p for p in PRECISIONS if p in self.peak_flops)


@dataclass(frozen=True)
class MemoryTier:
    """A memory or storage tier for KV cache and indexes, numbers in SI units.

    Parameters
    ----------
    name : str
        Catalog name, e.g. ``"NVMe-PCIe5"``.
    technology : str
        E.g. ``"HBM3"``, ``"DDR5-4800"``, ``"CXL 2.0 Type 3"``.
    scope : str
        What one entry describes, e.g. ``"per HBM3 stack"`` or ``"per drive"``.
    bandwidth : float
        Peak (read) bandwidth, in bytes/s.
    write_bandwidth : float or None
        Peak write bandwidth, in bytes/s, where it differs and a source gives it.
    latency : float or None
        Access latency, in seconds; None where no source gives it.
    capacity : float or None
        Capacity, in bytes; None where it is deployment-defined.
    """

    name: str
    technology: str
    scope: str
    bandwidth: float
    write_bandwidth: float | None = None
    latency: float | None = None
    capacity: float | None = None
    aliases: tuple[str, ...] = ()
    quantities: Mapping[str, Quantity] = field(default_factory=dict, compare=False, repr=False)
    description: str = field(default="", compare=False, repr=False)
    notes: str = field(default="", compare=False, repr=False)
    path: Path | None = field(default=None, compare=False, repr=False)

    kind = "memory_tier"

    def __post_init__(self) -> None:
        owner = f"MemoryTier {self.name!r}"
        _positive(owner, "bandwidth", self.bandwidth, "bytes/s", optional=False)
        _positive(owner, "write_bandwidth", self.write_bandwidth, "bytes/s")
        _positive(owner, "latency", self.latency, "s")
        _positive(owner, "capacity", self.capacity, "bytes")
        object.__setattr__(self, "quantities", _freeze(self.quantities))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.bandwidth, self.latency, self.capacity))


@dataclass(frozen=True)
class Link:
    """An interconnect, numbers in SI units.

    Parameters
    ----------
    name : str
        Catalog name, e.g. ``"NVLink4"``.
    technology : str
        E.g. ``"NVLink 4"``, ``"PCIe 5.0 x16"``.
    scope : str
        What the bandwidth covers, e.g. ``"per GPU, all 18 links"`` or ``"per port"``.
    bandwidth : float
        Bandwidth **per direction**, in bytes/s (a bidirectional figure in the file
        is halved; bit rates are divided by 8).
    latency : float or None
        One-way latency, in seconds; None where no source gives it.
    """

    name: str
    technology: str
    scope: str
    bandwidth: float
    latency: float | None = None
    aliases: tuple[str, ...] = ()
    quantities: Mapping[str, Quantity] = field(default_factory=dict, compare=False, repr=False)
    description: str = field(default="", compare=False, repr=False)
    notes: str = field(default="", compare=False, repr=False)
    path: Path | None = field(default=None, compare=False, repr=False)

    kind = "link"

    def __post_init__(self) -> None:
        owner = f"Link {self.name!r}"
        _positive(owner, "bandwidth", self.bandwidth, "bytes/s", optional=False)
        _positive(owner, "latency", self.latency, "s")
        object.__setattr__(self, "quantities", _freeze(self.quantities))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.bandwidth, self.latency))


Hardware = Union[Device, MemoryTier, Link]
PathLike = Union[str, os.PathLike]

# --------------------------------------------------------------------------- parsing


def _where(path: Path) -> str:
    """The file as error messages name it: ``hardware/<rel>`` for the built-in catalog."""
    try:
        return "hardware/" + path.resolve().relative_to(catalog_dir("hardware").resolve()).as_posix()
    except ValueError:
        return str(path)


def _suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _human(x: float) -> str:
    return f"{x:g}"


def _text(where: str, raw: dict, key: str, required: bool) -> str | None:
    if key not in raw:
        if required:
            raise ValidationError(f"{where}: missing required key {key!r}; valid: {key} = \"...\"")
        return None
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: {key} must be a non-empty string; got {value!r}; "
                              "valid: a quoted TOML string")
    return value


def _quantity(where: str, key: str, raw: Any, spec: _Spec) -> Quantity:
    """Check one ``{value, unit, source, ...}`` table and convert it to SI."""
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: {key} must be a table {{value = ..., unit = \"...\", "
                              f"source = \"...\"}}; got {raw!r}; valid: an inline table with "
                              "value, unit and source")
    allowed = {"value", "unit", "source", "note", "uncertainty"}
    if spec.direction:
        allowed.add("direction")
    if spec.date:
        allowed.add("date")
    for k in raw:
        if k not in allowed:
            raise ValidationError(f"{where}: {key}.{k} is not a known key{_suggest(k, sorted(allowed))}; "
                                  f"valid: {', '.join(k2 for k2 in _QUANTITY_KEYS if k2 in allowed)}")
    for k in ("value", "unit", "source") + (("direction",) if spec.direction else ()) \
            + (("date",) if spec.date else ()):
        if k not in raw:
            hint = {"direction": 'direction = "per_direction" or "bidirectional"',
                    "date": 'date = "YYYY-MM" or "YYYY-MM-DD" (when the price was listed)',
                    "source": 'source = "<datasheet title or URL>"'}.get(k, f"{k} = ...")
            raise ValidationError(f"{where}: {key}.{k} is missing; valid: {hint}")

    dimension = spec.dimension
    unit = raw["unit"]
    units = _UNITS[dimension]
    if dimension == "flop_rate" and key.rsplit(".", 1)[-1] in INTEGER_PRECISIONS:
        dimension, units = "op_rate", _UNITS["op_rate"]
    if not isinstance(unit, str) or unit not in units:
        other = next((d for d, table in _UNITS.items() if isinstance(unit, str) and unit in table), None)
        extra = f" (it is a {_DIMENSION_LABEL[other]} unit)" if other else ""
        label = _DIMENSION_LABEL[dimension]
        article = "an" if label[0] in "aeiou" else "a"
        raise ValidationError(f"{where}: {key}.unit {unit!r} is not {article} {label} "
                              f"unit{extra}; valid: {', '.join(units)}")

    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{where}: {key}.value must be a number; got {value!r}; "
                              "valid: a positive finite number")
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{where}: {key}.value must be positive and finite; got {value!r}; "
                              "valid: a positive finite number")

    source = raw["source"]
    if not isinstance(source, str) or len(source.strip()) < 5:
        raise ValidationError(f"{where}: {key}.source must name where the number comes from; "
                              f"got {source!r}; valid: a URL or document title")

    factor = units[unit]
    si = float(value) * factor
    if spec.direction:
        direction = raw["direction"]
        if direction not in DIRECTIONS:
            raise ValidationError(f"{where}: {key}.direction {direction!r} is not known; "
                                  f"valid: {', '.join(DIRECTIONS)}")
        if direction == "bidirectional":
            si /= 2.0  # symmetric links: half each way
    if spec.date:
        date = raw["date"]
        if not isinstance(date, str) or not _DATE_RE.match(date):
            raise ValidationError(f"{where}: {key}.date {date!r} is not a date; "
                                  "valid: \"YYYY-MM\" or \"YYYY-MM-DD\"")

    si_unit = _SI_UNIT[dimension]
    if not (spec.low <= si <= spec.high):
        raise ValidationError(
            f"{where}: {key}.value {value!r} {unit} (= {si:g} {si_unit}) is outside the plausible "
            f"range for a {_DIMENSION_LABEL[dimension]}; valid: {_human(spec.low)} to "
            f"{_human(spec.high)} {si_unit}")

    uncertainty = raw.get("uncertainty")
    if uncertainty is not None:
        if isinstance(uncertainty, bool) or not isinstance(uncertainty, (int, float)) \
                or not math.isfinite(uncertainty) or uncertainty < 0:
            raise ValidationError(f"{where}: {key}.uncertainty must be a non-negative number in "
                                  f"{unit}; got {uncertainty!r}; valid: >= 0, same unit as value")
        uncertainty = float(uncertainty) * factor
        if spec.direction and raw["direction"] == "bidirectional":
            uncertainty /= 2.0

    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise ValidationError(f"{where}: {key}.note must be a string; got {note!r}; "
                              "valid: a quoted TOML string")
    written = f"{value:g} {unit}" + (f" {raw['direction']}" if spec.direction else "")
    if spec.date:
        note = f"listed {raw['date']}" + (f"; {note}" if note else "")
    return Quantity(value=si, unit=si_unit, source=source.strip(), as_written=written,
                    uncertainty=uncertainty, note=note)


def _parse(path: Path) -> Hardware:
    where = _where(path)
    raw = read_toml(path, where, "hardware/README.md")

    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValidationError(f"{where}: kind {kind!r} is not a hardware kind; "
                              f"valid: {', '.join(KINDS)}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ValidationError(f"{where}: schema_version {version!r} is not supported; "
                              f"valid: schema_version = {SCHEMA_VERSION}")

    text_keys = _TEXT_KEYS[kind]
    quantity_specs = _QUANTITIES[kind]
    allowed = set(text_keys) | set(quantity_specs) | ({"peak_flops_dense"} if kind == "device" else set())
    for key in raw:
        if key not in allowed:
            hint = ""
            if key in ("peak_flops", "peak_flops_sparse"):
                hint = " (list dense rates under [peak_flops_dense]; halve sparse datasheet figures)"
            raise ValidationError(f"{where}: unknown key {key!r} for a {kind}{_suggest(key, sorted(allowed))}"
                                  f"{hint}; valid: {', '.join(sorted(allowed))}")

    text = {k: _text(where, raw, k, req) for k, req in text_keys.items()
            if k not in ("kind", "schema_version", "aliases")}
    name = text["name"]
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValidationError(f"{where}: aliases must be a list of strings; got {aliases!r}; "
                              "valid: aliases = [\"H100\", ...]")
    for n in [name, *aliases]:
        if not _NAME_RE.match(n):
            raise ValidationError(f"{where}: name or alias {n!r} has characters a catalog name "
                                  "cannot hold; valid: letters, digits and . _ + - , starting "
                                  "with a letter or digit")

    quantities: dict[str, Quantity] = {}
    for key, spec in quantity_specs.items():
        if key in raw:
            quantities[key] = _quantity(where, key, raw[key], spec)
        elif spec.required:
            raise ValidationError(f"{where}: missing required key {key!r} for a {kind}; valid: "
                                  f"{key} = {{value = ..., unit = \"...\", source = \"...\"}}")

    si = {k: q.value for k, q in quantities.items()}
    common = dict(name=name, aliases=tuple(aliases), quantities=quantities,
                  description=text.get("description") or "", notes=text.get("notes") or "",
                  path=path)
    if kind == "memory_tier":
        return MemoryTier(technology=text["technology"], scope=text["scope"],
                          bandwidth=si["bandwidth"], write_bandwidth=si.get("write_bandwidth"),
                          latency=si.get("latency"), capacity=si.get("capacity"), **common)
    if kind == "link":
        return Link(technology=text["technology"], scope=text["scope"], bandwidth=si["bandwidth"],
                    latency=si.get("latency"), **common)

    # device
    category = text["category"]
    if category not in CATEGORIES:
        raise ValidationError(f"{where}: category {category!r} is not known; "
                              f"valid: {', '.join(CATEGORIES)}")
    table = raw.get("peak_flops_dense")
    if not isinstance(table, dict) or not table:
        raise ValidationError(f"{where}: missing required table [peak_flops_dense]; valid: "
                              f"[peak_flops_dense] with one or more of {', '.join(PRECISIONS)}")
    flops = {}
    for precision, entry in table.items():
        if precision not in PRECISIONS:
            raise ValidationError(f"{where}: peak_flops_dense.{precision} is not a known precision"
                                  f"{_suggest(precision, PRECISIONS)}; valid: {', '.join(PRECISIONS)}")
        q = _quantity(where, f"peak_flops_dense.{precision}", entry, _FLOPS_SPEC)
        quantities[f"peak_flops.{precision}"] = q
        flops[precision] = q.value
    for key, default in (("matmul_efficiency", DEFAULT_MATMUL_EFFICIENCY),
                         ("memory_efficiency", DEFAULT_MEMORY_EFFICIENCY)):
        if key not in quantities:
            const = "DEFAULT_" + key.upper()
            quantities[key] = Quantity(value=default, unit="1", as_written=f"{default:g}",
                                       source=f"default: hermes_qn.hardware.{const}",
                                       note="no published measurement in the catalog file",
                                       default=True)
    if "idle_power" in si and "peak_power" in si and si["idle_power"] > si["peak_power"]:
        raise ValidationError(f"{where}: idle_power {si['idle_power']:g} W exceeds peak_power "
                              f"{si['peak_power']:g} W; valid: idle_power <= peak_power")
    try:
        return Device(
            vendor=text["vendor"], category=category, peak_flops=flops,
            memory_bytes=si["memory_capacity"], memory_bandwidth=si["memory_bandwidth"],
            sram_bytes=si.get("sram_capacity"), scale_up_bandwidth=si.get("scale_up_bandwidth"),
            scale_up_latency=si.get("scale_up_latency"), idle_power=si.get("idle_power"),
            peak_power=si.get("peak_power"), price_per_hour=si.get("price_per_hour"),
            matmul_efficiency=quantities["matmul_efficiency"].value,
            memory_efficiency=quantities["memory_efficiency"].value,
            memory_type=text.get("memory_type"), scale_up_link=text.get("scale_up_link"),
            host_link=text.get("host_link"), **common)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def _load_file(path: Path) -> Hardware:
    return load_cached(path, _parse, "hardware", "a path to a readable .toml file")


# --------------------------------------------------------------------------- lookup


def _search_roots(search_path: PathLike | Sequence[PathLike] | None) -> list[Path]:
    """Directories to search, first match wins: ``search_path``, the env var, built-ins."""
    roots: list[Path] = []
    if search_path is not None:
        items = [search_path] if isinstance(search_path, (str, os.PathLike)) else list(search_path)
        for item in items:
            p = Path(item)
            if not p.is_dir():
                raise ValidationError(f"search_path: {str(p)!r} is not a directory; valid: "
                                      "existing directories holding hardware .toml files")
            roots.append(p)
    env = os.environ.get(ENV_VAR, "")
    for item in env.split(os.pathsep):
        if item.strip():
            p = Path(item.strip())
            if not p.is_dir():
                raise ValidationError(f"{ENV_VAR}: {str(p)!r} is not a directory; valid: "
                                      f"existing directories separated by {os.pathsep!r}")
            roots.append(p)
    roots.append(catalog_dir("hardware"))
    return roots


def _index(roots: Sequence[Path]) -> dict[str, Hardware]:
    """Map case-folded names and aliases to parts; earlier roots shadow later ones."""
    index: dict[str, Hardware] = {}
    for root in roots:
        local: dict[str, Hardware] = {}
        for path in sorted(root.rglob("*.toml")):
            part = _load_file(path)
            for n in (part.name, *part.aliases):
                key = n.casefold()
                if key in local and local[key].path != part.path:
                    raise ValidationError(
                        f"{_where(path)}: name {n!r} is already used by {_where(local[key].path)}; "
                        "valid: one file per name or alias within a directory")
                local[key] = part
        for key, part in local.items():
            index.setdefault(key, part)
    return index


def _as_path(name_or_path: Any) -> Path | None:
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    if isinstance(name_or_path, str) and (name_or_path.endswith(".toml") or "/" in name_or_path
                                          or os.sep in name_or_path):
        return Path(name_or_path)
    return None


def load(name_or_path: PathLike, *, search_path: PathLike | Sequence[PathLike] | None = None
         ) -> Hardware:
    """Load a device, memory tier or link by catalog name or from a TOML file.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A catalog name or alias (case-insensitive, e.g. ``"h100-sxm"``), or the
        path of a TOML file (anything ending in ``.toml`` or holding a path
        separator is read as a path).
    search_path : path or sequence of paths, optional
        Directories searched before ``$HERMES_QN_HARDWARE_PATH`` and the built-in
        catalog; a file there shadows a built-in part of the same name.

    Returns
    -------
    Device or MemoryTier or Link
        All numbers in SI units (see the class docstrings).

    Raises
    ------
    ValidationError
        The name is unknown (the message lists close matches), or a file is
        malformed (the message names the file, key, value and what is valid).
    """
    path = _as_path(name_or_path)
    if path is not None:
        return _load_file(path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValidationError(f"hardware name: got {name_or_path!r}; valid: a catalog name such "
                              "as 'H100-SXM' or a path to a .toml file")
    roots = _search_roots(search_path)
    index = _index(roots)
    key = name_or_path.strip().casefold()
    if key in index:
        return index[key]
    names = {part.name for part in index.values()}
    spelled = {k: part.name for k, part in index.items()}
    close = difflib.get_close_matches(key, list(spelled), n=5, cutoff=0.5)
    close_names = list(dict.fromkeys(spelled[c] for c in close))
    hint = f"close matches: {', '.join(close_names)}" if close_names else "no close match"
    raise ValidationError(
        f"hardware: unknown name {name_or_path!r} ({hint}); valid: one of {len(names)} parts "
        f"listed by hermes_qn.hardware.list_hardware(), found in "
        f"{', '.join(str(r) for r in roots)}")


def _load_kind(kind: str, cls: type, name_or_path: PathLike, search_path) -> Any:
    part = load(name_or_path, search_path=search_path)
    if not isinstance(part, cls):
        raise ValidationError(f"{_where(part.path) if part.path else part.name}: {part.name!r} is a "
                              f"{part.kind}, not a {kind}; valid: one of "
                              f"{', '.join(list_hardware(kind, search_path=search_path))}")
    return part


def load_device(name_or_path: PathLike, *, search_path=None) -> Device:
    """Like :func:`load`, but the part must be a :class:`Device`."""
    return _load_kind("device", Device, name_or_path, search_path)


def load_memory_tier(name_or_path: PathLike, *, search_path=None) -> MemoryTier:
    """Like :func:`load`, but the part must be a :class:`MemoryTier`."""
    return _load_kind("memory_tier", MemoryTier, name_or_path, search_path)


def load_link(name_or_path: PathLike, *, search_path=None) -> Link:
    """Like :func:`load`, but the part must be a :class:`Link`."""
    return _load_kind("link", Link, name_or_path, search_path)


def list_hardware(kind: str | None = None, *,
                  search_path: PathLike | Sequence[PathLike] | None = None) -> list[str]:
    """Names of the parts in the catalog (built-in plus user directories), sorted.

    Parameters
    ----------
    kind : {"device", "memory_tier", "link"}, optional
        Only parts of this kind; all kinds when omitted.
    search_path : path or sequence of paths, optional
        Extra directories, as for :func:`load`.
    """
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"list_hardware: kind {kind!r} is not a hardware kind; "
                              f"valid: None or one of {', '.join(KINDS)}")
    parts = _index(_search_roots(search_path)).values()
    return sorted({p.name for p in parts if kind is None or p.kind == kind}, key=str.casefold)


# --------------------------------------------------------------------------- helpers


def _device_iv(func: str, device: Any) -> Device:
    if not isinstance(device, Device):
        raise ValidationError(f"{func}: device must be a hermes_qn.hardware.Device; got "
                              f"{type(device).__name__}; valid: the result of load_device(...)")
    return device


def peak_flops(device: Device, precision: str) -> float:
    """Dense peak rate of ``device`` at ``precision``, in FLOP/s (OP/s for ``int*``).

    Raises
    ------
    ValidationError
        The device has no rate for ``precision`` (the message lists those it has).
    """
    device = _device_iv("peak_flops", device)
    if precision not in device.peak_flops:
        where = _where(device.path) if device.path else f"Device {device.name!r}"
        raise ValidationError(f"{where}: no peak_flops_dense.{precision} for {device.name}; "
                              f"valid: one of {', '.join(device.precisions)}")
    return device.peak_flops[precision]


def achievable_flops(device: Device, precision: str) -> float:
    """``peak_flops(device, precision) * device.matmul_efficiency``, in FLOP/s."""
    return peak_flops(device, precision) * _device_iv("achievable_flops", device).matmul_efficiency


def achievable_bandwidth(device: Device) -> float:
    """``device.memory_bandwidth * device.memory_efficiency``, in bytes/s."""
    device = _device_iv("achievable_bandwidth", device)
    return device.memory_bandwidth * device.memory_efficiency


def ridge_point(device: Device, precision: str, *, achievable: bool = False) -> float:
    """Roofline ridge point: FLOP/s over bytes/s, in FLOP per byte.

    With ``achievable=True`` both roofs are scaled by the device's efficiencies.
    Kernels with arithmetic intensity below this are memory-bound.
    """
    if achievable:
        return achievable_flops(device, precision) / achievable_bandwidth(device)
    return peak_flops(device, precision) / _device_iv("ridge_point", device).memory_bandwidth


def power(device: Device, utilisation: Any, *, idle_power: float | None = None) -> Any:
    """Linear power model: ``idle + (peak - idle) * utilisation``, in watts.

    Parameters
    ----------
    device : Device
        Supplies ``peak_power`` and ``idle_power`` (W).
    utilisation : float or array_like
        Busy fraction, 0 to 1 (dimensionless); arrays give arrays.
    idle_power : float, optional
        Idle power in W, overriding (or standing in for a missing)
        ``device.idle_power``.

    Returns
    -------
    float or numpy.ndarray
        Power in W, same shape as ``utilisation``.

    Raises
    ------
    ValidationError
        Utilisation outside [0, 1]; the device has no peak power; no idle power
        is known (pass ``idle_power=``).
    """
    device = _device_iv("power", device)
    where = _where(device.path) if device.path else f"Device {device.name!r}"
    u = np.asarray(utilisation, dtype=float)
    if u.size and (not np.all(np.isfinite(u)) or u.min() < 0 or u.max() > 1):
        bad = float(u[~np.isfinite(u) | (u < 0) | (u > 1)].flat[0])
        raise ValidationError(f"power: utilisation {bad!r} is out of range; valid: 0 <= "
                              "utilisation <= 1")
    if device.peak_power is None:
        raise ValidationError(f"{where}: {device.name} has no peak_power; valid: add peak_power "
                              "to the file or use dataclasses.replace(device, peak_power=...)")
    idle = device.idle_power if idle_power is None else idle_power
    if idle is None:
        raise ValidationError(f"{where}: {device.name} has no idle_power (no published figure); "
                              "valid: pass power(..., idle_power=<W>) or add idle_power to the file")
    _positive("power", "idle_power", idle, "W", optional=False)
    if idle > device.peak_power:
        raise ValidationError(f"power: idle_power {idle:g} W exceeds {device.name} peak_power "
                              f"{device.peak_power:g} W; valid: idle_power <= peak_power")
    out = idle + (device.peak_power - idle) * u
    return float(out) if out.ndim == 0 else out


def transfer_time(medium: Link | MemoryTier, nbytes: Any, *, latency: float | None = None) -> Any:
    """Unloaded time to move ``nbytes`` bytes: ``latency + nbytes / bandwidth``, in seconds.

    Uses the link's per-direction bandwidth or the tier's (read) bandwidth.
    ``latency`` (s) overrides, or stands in for a missing, ``medium.latency``.
    """
    if not isinstance(medium, (Link, MemoryTier)):
        raise ValidationError(f"transfer_time: medium must be a Link or MemoryTier; got "
                              f"{type(medium).__name__}; valid: load_link(...) or load_memory_tier(...)")
    n = np.asarray(nbytes, dtype=float)
    if n.size and (not np.all(np.isfinite(n)) or n.min() < 0):
        raise ValidationError(f"transfer_time: nbytes must be finite and >= 0; got {nbytes!r}; "
                              "valid: bytes >= 0")
    lat = medium.latency if latency is None else latency
    if lat is None:
        where = _where(medium.path) if medium.path else medium.name
        raise ValidationError(f"{where}: {medium.name} has no latency (no published figure); "
                              "valid: pass transfer_time(..., latency=<s>)")
    if isinstance(lat, bool) or not isinstance(lat, (int, float)) or not math.isfinite(lat) or lat < 0:
        raise ValidationError(f"transfer_time: latency {lat!r} is invalid; valid: seconds >= 0")
    out = lat + n / medium.bandwidth
    return float(out) if out.ndim == 0 else out

