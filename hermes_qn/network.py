"""Queueing networks as data: stations, request classes and service demands.

This module knows nothing about LLMs. A :class:`Network` holds stations
(:class:`Queue`, :class:`Delay`), classes (:class:`Open`, :class:`Closed`) and
the service demand of each class at each station, validates all of it, and turns
it into plain numpy arrays (:meth:`Network.arrays`) for the solvers and the
event sampler.

Any numeric parameter (arrival rate, population, think time, demand) may be an
array: a 1-D numpy array gets a dimension of its own, named after the
parameter (``"jobs_arrival_rate"``, ``"users_population"``,
``"users_think_time"``, ``"jobs_gpu_demand"``); an :class:`xarray.DataArray`
keeps its own dimension names, so two parameters that share a dimension name
vary together. Every solver result then carries these dimensions besides
``station`` and ``class``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Union

import numpy as np
import xarray as xr

from .errors import ValidationError

ArrayLike = Union[float, int, np.ndarray, xr.DataArray]

DISCIPLINES = ("ps", "fcfs")
RESERVED_DIMS = ("station", "class")

# Station kinds in NetworkArrays.station_kind.
QUEUE = 0  # single server, rate independent of the number present
DELAY = 1  # infinite server
LOAD_DEPENDENT = 2  # multi-server or explicit rate multipliers


def _check_values(field_name: str, value: ArrayLike, *, low: float, low_inclusive: bool,
                  integer: bool = False, valid: str) -> None:
    """Raise :class:`ValidationError` unless every element of ``value`` is finite and above ``low``."""
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value)
    if arr.dtype.kind not in "biuf":
        raise ValidationError(f"{field_name}: expected a number or an array of numbers, "
                              f"got {value!r}; valid: {valid}")
    arr = arr.astype(float)
    bad = ~np.isfinite(arr) | ((arr < low) if low_inclusive else (arr <= low))
    if integer:
        bad |= np.isfinite(arr) & (arr != np.round(arr))
    if bad.any():
        first = float(arr[bad].flat[0]) if arr.ndim else float(arr)
        raise ValidationError(f"{field_name}: got {first!r}; valid: {valid}")


@dataclass(frozen=True)
class Queue:
    """A queueing station: jobs wait for and share a finite service capacity.

    Parameters
    ----------
    servers : int
        Number of identical servers (``c`` of M/M/c). With ``servers > 1`` the
        station works ``min(n, servers)`` times as fast with ``n`` jobs present.
    discipline : {"ps", "fcfs"}
        Processor sharing (default) or first come, first served. Both give the
        same product-form means when every class has the same service time at
        the station; an FCFS station with class-dependent service times is not
        product form and the solvers' answer there is an approximation (the
        result says so in its ``product_form`` attribute).
    rate_multipliers : sequence of float, optional
        Load dependence: ``rate_multipliers[n-1]`` is how many times faster
        than with one job the station works when ``n`` jobs are present; the
        last value holds for all larger ``n``. Mutually exclusive with
        ``servers > 1`` (``servers=c`` is ``rate_multipliers=[1, 2, ..., c]``).
    """

    servers: int = 1
    discipline: str = "ps"
    rate_multipliers: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.servers, bool) or not isinstance(self.servers, (int, np.integer)) \
                or self.servers < 1:
            raise ValidationError(f"Queue.servers: got {self.servers!r}; valid: an integer >= 1")
        if self.discipline not in DISCIPLINES:
            raise ValidationError(f"Queue.discipline: got {self.discipline!r}; "
                                  f"valid: one of {DISCIPLINES}")
        if self.rate_multipliers is not None:
            multipliers = tuple(float(a) for a in np.atleast_1d(np.asarray(self.rate_multipliers)))
            if not multipliers:
                raise ValidationError("Queue.rate_multipliers: got an empty sequence; "
                                      "valid: one or more positive finite numbers")
            _check_values("Queue.rate_multipliers", np.array(multipliers), low=0.0,
                          low_inclusive=False, valid="positive finite numbers")
            if self.servers != 1:
                raise ValidationError(
                    f"Queue: got servers={self.servers} and rate_multipliers; valid: one of the two "
                    f"(servers=c is rate_multipliers=[1, 2, ..., c])")
            object.__setattr__(self, "rate_multipliers", multipliers)

    @property
    def load_dependent(self) -> bool:
        """True when the service rate depends on the number of jobs present."""
        return self.servers > 1 or self.rate_multipliers is not None

    @property
    def capacity(self) -> float:
        """Asymptotic speed: how many times faster than one job the station works when crowded."""
        if self.rate_multipliers is not None:
            return self.rate_multipliers[-1]
        return float(self.servers)

    def rate_multiplier(self, n: np.ndarray | int) -> np.ndarray:
        """Speed with ``n >= 1`` jobs present, relative to the speed with one job."""
        n = np.asarray(n)
        if self.rate_multipliers is not None:
            table = np.asarray(self.rate_multipliers)
            return table[np.clip(n, 1, len(table)) - 1]
        return np.minimum(n, self.servers).astype(float)


@dataclass(frozen=True)
class Delay:
    """An infinite-server station: every job is served at once, nobody waits."""

    discipline: str = field(default="is", init=False)

    @property
    def load_dependent(self) -> bool:
        return False

    @property
    def capacity(self) -> float:
        return math.inf

    def rate_multiplier(self, n: np.ndarray | int) -> np.ndarray:
        """Speed with ``n`` jobs present relative to one job: ``n`` (each has its own server)."""
        return np.asarray(n, dtype=float)


@dataclass(frozen=True)
class Open:
    """An open class: requests arrive in a Poisson stream and leave when done.

    Parameters
    ----------
    arrival_rate : float or array
        Arrival rate in requests per second, >= 0.
    """

    arrival_rate: ArrayLike

    def __post_init__(self) -> None:
        _check_values("Open.arrival_rate", self.arrival_rate, low=0.0, low_inclusive=True,
                      valid="finite numbers >= 0 (requests per second)")


@dataclass(frozen=True)
class Closed:
    """A closed class: a fixed population of clients that submit, wait, think, resubmit.

    Parameters
    ----------
    population : int or array of int
        Number of clients, >= 1.
    think_time : float or array
        Mean time in seconds a client spends between receiving a response
        and submitting its next request, >= 0.
    """

    population: ArrayLike
    think_time: ArrayLike = 0.0

    def __post_init__(self) -> None:
        _check_values("Closed.population", self.population, low=1.0, low_inclusive=True,
                      integer=True, valid="integers >= 1 (a class of zero clients has no traffic; "
                                          "drop the class instead)")
        _check_values("Closed.think_time", self.think_time, low=0.0, low_inclusive=True,
                      valid="finite numbers >= 0 (seconds)")


Station = Union[Queue, Delay]
TrafficClass = Union[Open, Closed]


@dataclass(frozen=True, eq=False)
class NetworkArrays:
    """A network's parameters as numpy arrays, broadcast over its sweep dimensions.

    Shapes use ``S`` for the sweep shape (``()`` when nothing is swept), ``M``
    for stations and ``K`` for classes.

    Attributes
    ----------
    stations, classes : tuple of str
        Names, in the order of the M and K axes.
    station_kind : ndarray of int, shape (M,)
        :data:`QUEUE`, :data:`DELAY` or :data:`LOAD_DEPENDENT`.
    fcfs : ndarray of bool, shape (M,)
        True for FCFS queues.
    capacity : ndarray, shape (M,)
        Asymptotic speed of each station relative to one job (``inf`` for delays).
    demand : ndarray, shape (*S, M, K)
        Service demand in seconds per request.
    arrival_rate : ndarray, shape (*S, K)
        Requests per second; 0 for closed classes.
    population : ndarray of int, shape (*S, K)
        Clients; 0 for open classes.
    think_time : ndarray, shape (*S, K)
        Seconds; 0 for open classes.
    is_open : ndarray of bool, shape (K,)
    sweep_dims : tuple of str
        Names of the sweep axes, in order.
    sweep_coords : dict of str to ndarray
        Coordinate values of each sweep axis.
    multipliers : tuple of ndarray
        Per station, the rate multipliers ``a(1), ..., a(L)`` with ``a(n) = a(L)``
        beyond: ``[1.]`` for a single-server queue, ``[1, ..., c]`` for ``c``
        servers, the given table for a load-dependent queue, and an empty array
        for a delay (whose ``a(n) = n`` has no last value).
    """

    stations: tuple[str, ...]
    classes: tuple[str, ...]
    station_kind: np.ndarray
    fcfs: np.ndarray
    capacity: np.ndarray
    demand: np.ndarray
    arrival_rate: np.ndarray
    population: np.ndarray
    think_time: np.ndarray
    is_open: np.ndarray
    sweep_dims: tuple[str, ...]
    sweep_coords: dict[str, np.ndarray]
    multipliers: tuple[np.ndarray, ...]

    @property
    def sweep_shape(self) -> tuple[int, ...]:
        return self.arrival_rate.shape[:-1]

    def rate_multipliers(self, n_max: int) -> np.ndarray:
        """Table ``a[m, n]`` of each station's speed with ``n`` jobs present, for ``0 <= n <= n_max``.

        Column 0 (no jobs) is 1 by convention so it can be divided by safely.
        """
        n = np.arange(n_max + 1)
        table = np.ones((len(self.stations), n_max + 1))
        for m, kind in enumerate(self.station_kind):
            if kind == DELAY:
                table[m, 1:] = n[1:]
            else:
                a = self.multipliers[m]
                table[m, 1:] = a[np.minimum(n[1:], len(a)) - 1]
        return table


def _as_dataarray(value: ArrayLike, default_dim: str) -> xr.DataArray:
    if isinstance(value, xr.DataArray):
        clash = set(value.dims) & set(RESERVED_DIMS)
        if clash:
            raise ValidationError(f"{default_dim}: dimension name(s) {sorted(clash)} are reserved "
                                  f"for results; valid: any other name")
        return value.astype(float)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return xr.DataArray(arr)
    if arr.ndim == 1:
        return xr.DataArray(arr, dims=[default_dim], coords={default_dim: np.asarray(value)})
    raise ValidationError(f"{default_dim}: got an array of shape {arr.shape}; valid: a scalar, a 1-D "
                          f"array, or an xarray.DataArray with named dimensions")


def _broadcast_sweeps(raw: list[tuple[ArrayLike, str]]
                      ) -> tuple[tuple[str, ...], dict[str, np.ndarray], list[np.ndarray]]:
    """Broadcast parameters (value, default dimension name) over their sweep dimensions."""
    named = [_as_dataarray(value, dim) for value, dim in raw]
    try:
        aligned = xr.align(*named, join="exact")
    except ValueError as exc:
        raise ValidationError(f"Network: two parameters share a sweep dimension name but not its "
                              f"coordinates ({exc}); valid: equal coordinates, or distinct "
                              f"dimension names") from None
    broadcast = xr.broadcast(*aligned)
    dims = tuple(broadcast[0].dims)
    coords = {d: np.asarray(broadcast[0][d].values) if d in broadcast[0].coords
              else np.arange(broadcast[0].sizes[d]) for d in dims}
    return dims, coords, [b.transpose(*dims).values for b in broadcast]


@dataclass(frozen=True, eq=False)
class Network:
    """A multi-class queueing network described by service demands.

    Parameters
    ----------
    stations : mapping of str to Queue or Delay
    classes : mapping of str to Open or Closed
    demands : mapping of class name to mapping of station name to seconds
        Total service demand (visits x mean service time per visit) a request
        of the class places on the station, in seconds. A station missing from
        a class's mapping gets demand 0. Every class must appear.

    Notes
    -----
    Product-form (BCMP) results depend on demands only. The event sampler,
    which needs a route, sends each request once through the stations of its
    class in the order its ``demands`` mapping lists them, with a mean service
    time equal to the demand.

    Examples
    --------
    >>> import hermes_qn as hq
    >>> net = hq.Network(stations={"cpu": hq.Queue()}, classes={"jobs": hq.Open(0.5)},
    ...                  demands={"jobs": {"cpu": 1.0}})
    >>> float(hq.solve(net).response_time.sel({"class": "jobs"}))  # M/M/1: 1 / (1 - 0.5)
    2.0
    """

    stations: Mapping[str, Station]
    classes: Mapping[str, TrafficClass]
    demands: Mapping[str, Mapping[str, ArrayLike]]

    def __post_init__(self) -> None:
        for name, mapping, kinds, what in (
            ("stations", self.stations, (Queue, Delay), "hq.Queue or hq.Delay"),
            ("classes", self.classes, (Open, Closed), "hq.Open or hq.Closed"),
        ):
            if not isinstance(mapping, Mapping) or not mapping:
                raise ValidationError(f"Network.{name}: got {mapping!r}; valid: a non-empty mapping "
                                      f"of names to {what}")
            for key, value in mapping.items():
                if not isinstance(key, str) or not key:
                    raise ValidationError(f"Network.{name}: got name {key!r}; valid: a non-empty string")
                if not isinstance(value, kinds):
                    raise ValidationError(f"Network.{name}[{key!r}]: got {value!r}; valid: {what}")
        if not isinstance(self.demands, Mapping):
            raise ValidationError(f"Network.demands: got {self.demands!r}; valid: a mapping of class "
                                  f"name to a mapping of station name to seconds")
        unknown = [c for c in self.demands if c not in self.classes]
        if unknown:
            raise ValidationError(f"Network.demands: unknown class {unknown[0]!r}; valid: "
                                  f"{sorted(self.classes)}")
        for cls in self.classes:
            if cls not in self.demands:
                raise ValidationError(f"Network.demands: class {cls!r} has no demands; give "
                                      f"demands[{cls!r}] = {{station: seconds}}")
            row = self.demands[cls]
            if not isinstance(row, Mapping):
                raise ValidationError(f"Network.demands[{cls!r}]: got {row!r}; valid: a mapping "
                                      f"of station name to seconds")
            for st, value in row.items():
                if st not in self.stations:
                    raise ValidationError(f"Network.demands[{cls!r}]: unknown station {st!r}; "
                                          f"valid: {sorted(self.stations)}")
                _check_values(f"Network.demands[{cls!r}][{st!r}]", value, low=0.0,
                              low_inclusive=True, valid="finite numbers >= 0 (seconds)")
            if isinstance(self.classes[cls], Open) and not row:
                raise ValidationError(f"Network.demands[{cls!r}]: an open class needs at least one "
                                      f"station; valid: {{station: seconds}} with stations from "
                                      f"{sorted(self.stations)}")
        object.__setattr__(self, "stations", MappingProxyType(dict(self.stations)))
        object.__setattr__(self, "classes", MappingProxyType(dict(self.classes)))
        object.__setattr__(self, "demands", MappingProxyType(
            {c: MappingProxyType(dict(self.demands[c])) for c in self.classes}))

    @property
    def is_open(self) -> bool:
        return all(isinstance(c, Open) for c in self.classes.values())

    @property
    def is_closed(self) -> bool:
        return all(isinstance(c, Closed) for c in self.classes.values())

    def arrays(self) -> NetworkArrays:
        """Validate the sweep axes and return the parameters as broadcast numpy arrays."""
        station_names = tuple(self.stations)
        class_names = tuple(self.classes)
        raw: list[tuple[ArrayLike, str]] = []
        for c, spec in self.classes.items():
            if isinstance(spec, Open):
                raw += [(spec.arrival_rate, f"{c}_arrival_rate"), (0.0, ""), (0.0, "")]
            else:
                raw += [(0.0, ""), (spec.population, f"{c}_population"),
                        (spec.think_time, f"{c}_think_time")]
        for c in class_names:
            for s in station_names:
                raw.append((self.demands[c].get(s, 0.0), f"{c}_{s}_demand"))
        if all(not isinstance(v, xr.DataArray) and np.ndim(v) == 0 for v, _ in raw):
            dims, coords = (), {}
            values = [np.asarray(v, dtype=float) for v, _ in raw]  # fast path: nothing swept
        else:
            dims, coords, values = _broadcast_sweeps(raw)
        K, M = len(class_names), len(station_names)
        per_class = np.stack(values[: 3 * K], axis=-1).reshape(*values[0].shape, K, 3)
        demand = np.stack(values[3 * K:], axis=-1).reshape(*values[0].shape, K, M)
        stations = tuple(self.stations.values())
        kind = np.array([DELAY if isinstance(s, Delay) else
                         LOAD_DEPENDENT if s.load_dependent else QUEUE for s in stations])
        return NetworkArrays(
            stations=station_names,
            classes=class_names,
            station_kind=kind,
            fcfs=np.array([s.discipline == "fcfs" for s in stations]),
            capacity=np.array([s.capacity for s in stations]),
            demand=np.swapaxes(demand, -1, -2).copy(),
            arrival_rate=per_class[..., 0].copy(),
            population=np.rint(per_class[..., 1]).astype(np.int64),
            think_time=per_class[..., 2].copy(),
            is_open=np.array([isinstance(c, Open) for c in self.classes.values()]),
            sweep_dims=dims,
            sweep_coords=coords,
            multipliers=tuple(_multiplier_table(s) for s in stations),
        )


def _multiplier_table(station: Station) -> np.ndarray:
    if isinstance(station, Delay):
        return np.empty(0)
    if station.rate_multipliers is not None:
        return np.asarray(station.rate_multipliers, dtype=float)
    return np.arange(1, station.servers + 1, dtype=float)
