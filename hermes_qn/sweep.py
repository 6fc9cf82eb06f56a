"""Parameter sweeps of a scenario, the best configuration under SLOs, and Pareto fronts.

:func:`sweep` evaluates a scenario over the Cartesian product of swept values
and returns one :class:`xarray.Dataset` with a dimension per swept axis and
every variable :func:`hermes_qn.evaluate` returns, plus the derived
objectives ``throughput_per_device``, ``tokens_per_dollar`` and
``tokens_per_joule``.

What is vectorised
------------------
Arrival rates (``rate=`` and ``fields={"classes.<c>.rate": ...}``) go through
:func:`hermes_qn.evaluate` as arrays: every rate point of one configuration
is solved in one call. Every other axis (batch cap, device, TP degree,
batching strategy, chunk size, any other field) changes the scenario and
loops in Python: one evaluate per combination of those values, never one per
point. A sweep of ``R`` rates by ``C`` configurations costs ``C`` evaluate
calls of ``R`` points each (``benchmarks/bench_sweep.py`` gives the seconds).

Saturated points are results: their latencies are ``inf`` and ``saturated``
is True, and they stay in the Dataset. A combination of values that does not
make a valid scenario (the model does not fit the device's memory at that TP
degree, ``tp`` does not divide the pool's devices) is not a point of the
system: its metrics are NaN and ``config_error`` holds the reason.

With a :class:`dask.distributed.Client` (``client=``; ``pip install
'hermes-qn[dask]'``) the same sweep is cut into blocks along the swept
dimensions and each block runs as one task on the cluster. Where a fixed point
is solved (chunked or static batching, closed classes) it settles per evaluate
call, so blocks that split the rates agree with the local sweep to its ``tol``.

:func:`best` picks the best feasible point for an objective, :func:`pareto_front`
the non-dominated points of two; :func:`save_sweep` / :func:`open_sweep` write
and read NetCDF or Zarr.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from .errors import HermesError, ValidationError
from .evaluate import evaluate
from .hardware import Device, load_device
from .scenario import BATCHING, Scenario

__all__ = ["best", "open_sweep", "pareto_front", "save_sweep", "sweep"]

#: Shorthand axes of :func:`sweep`: the Pool field each one sets.
POOL_AXES = {"batch_cap": "batch_cap", "device": "device", "strategy": "batching", "tp": "tp",
             "chunk_tokens": "chunk_tokens"}

#: Objectives whose direction is known: True to maximise, False to minimise.
DIRECTIONS = {
    "throughput_per_device": True, "tokens_per_dollar": True, "tokens_per_joule": True,
    "throughput": True, "token_throughput": True, "goodput": True, "slo_attainment": True,
    "capacity": True,
    "ttft": False, "tpot": False, "e2e": False, "energy_per_token": False,
    "cost_per_million_tokens": False, "load_fraction": False, "devices": False,
}

_NOT_SWEPT = {"class", "stage", "pool", "quantile"}  # evaluate's own dims
_PROGRESS_POINTS = 100_000  # progress shown by default from this many points (on a terminal)
_LOWER = {"batch_cap": 1, "tp": 1, "chunk_tokens": 2}
_UNITS = {"batch_cap": "sequences", "tp": "devices per replica", "chunk_tokens": "tokens"}


# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Axis:
    """One categorical axis: a dimension, the scenario field it sets and its values."""

    dim: str
    path: str
    values: tuple
    labels: tuple


def _unique(where: str, labels: Sequence[Any]) -> None:
    seen = set()
    for v in labels:
        if v in seen:
            raise ValidationError(f"sweep {where}: value {v!r} is given twice; valid: distinct "
                                  "values (each becomes a coordinate)")
        seen.add(v)


def _values(where: str, values: Any) -> list:
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise ValidationError(f"sweep {where}: got {values!r}; valid: a sequence of values "
                              "(one per point of the axis)")
    values = list(np.asarray(values).tolist() if isinstance(values, np.ndarray) else values)
    if not values:
        raise ValidationError(f"sweep {where}: no values; valid: one or more")
    return values


def _rate_values(where: str, values: Any) -> np.ndarray:
    values = _values(where, values)
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"sweep {where}: got {values!r}; valid: arrival rates, "
                              "finite numbers >= 0 (requests/s)") from None
    bad = next((x for x in values if not (isinstance(x, (int, float, np.number))
                                          and not isinstance(x, bool)
                                          and math.isfinite(x) and x >= 0)), None)
    if v.ndim != 1 or bad is not None:
        raise ValidationError(f"sweep {where}: got {bad if bad is not None else values!r}; "
                              "valid: arrival rates, finite numbers >= 0 (requests/s)")
    _unique(where, v.tolist())
    return v


def _open_classes(scenario: Scenario) -> list[str]:
    return [c.name for c in scenario.classes if c.is_open]


def _rate_axes(scenario: Scenario, rate: Any) -> tuple[dict[str, xr.DataArray], list[str]]:
    """Rate DataArrays per open class, and the rate dims they span."""
    if rate is None:
        return {}, []
    opened = _open_classes(scenario)
    if not opened:
        raise ValidationError(f"sweep rate: scenario {scenario.name!r} has no open class "
                              "(every class has clients); valid: rate=None")
    if isinstance(rate, Mapping):
        out = {}
        for name, values in rate.items():
            if name not in opened:
                raise ValidationError(f"sweep rate: class {name!r} is not an open class of "
                                      f"{scenario.name!r}; valid: one of {opened}")
            v = _rate_values(f"rate[{name!r}]", values)
            dim = f"{name}_rate"
            out[name] = xr.DataArray(v, dims=dim, coords={dim: v})
        return out, [f"{n}_rate" for n in out]
    total = _rate_values("rate", rate)
    base = np.array([scenario.request_class(n).rate for n in opened], dtype=float)
    shares = base / base.sum() if base.sum() > 0 else np.full(len(opened), 1.0 / len(opened))
    return ({n: xr.DataArray(total * s, dims="rate", coords={"rate": total})
             for n, s in zip(opened, shares)}, ["rate"])


def _default_pool(scenario: Scenario, axis: str) -> str:
    if len(scenario.pools) == 1:
        return scenario.pools[0].name
    llm = [p.name for p in scenario.pools if p.decoder is not None]
    if len(llm) == 1:
        return llm[0]
    raise ValidationError(f"sweep {axis}: scenario {scenario.name!r} has pools "
                          f"{[p.name for p in scenario.pools]} and {len(llm)} of them run a "
                          "decoder LLM; valid: name the pool the axis applies to, pool=<name>")


def _pool_value(axis: str, value: Any) -> tuple[Any, Any]:
    """(value to set, coordinate label), checked for the axis's type."""
    if axis == "device":
        if isinstance(value, Device):
            return value, value.name
        if not isinstance(value, str):
            raise ValidationError(f"sweep device: got {value!r}; valid: hardware catalog names "
                                  "(hermes_qn.list_hardware('device')) or Device objects")
        try:
            dev = load_device(value)
        except ValidationError as e:
            raise ValidationError(f"sweep device: {e}") from None
        return dev, value
    if axis == "strategy":
        if value not in BATCHING:
            raise ValidationError(f"sweep strategy: got {value!r}; valid: one of {list(BATCHING)}")
        return value, value
    low = _LOWER[axis]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValidationError(f"sweep {axis}: got {value!r}; valid: integers >= {low} "
                              f"({_UNITS[axis]})")
    return int(value), int(value)


def _field_label(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float, np.number)):
        return value.item() if isinstance(value, np.number) else value
    return getattr(value, "name", None) or str(value)


def _axes(scenario: Scenario, shorthand: Mapping[str, Any], fields: Mapping[str, Any] | None,
          pool: str | None) -> tuple[list[_Axis], dict[str, tuple[str, np.ndarray]]]:
    """Categorical axes, and the rate paths of ``fields`` as {class: (dim, rates)}."""
    axes: list[_Axis] = []
    given = {k: v for k, v in shorthand.items() if v is not None}
    if pool is not None:
        scenario._pool_at("sweep pool", pool)
    elif given:
        pool = _default_pool(scenario, next(iter(given)))
    for axis, values in given.items():
        pairs = [_pool_value(axis, v) for v in _values(axis, values)]
        labels = tuple(p[1] for p in pairs)
        _unique(axis, labels)
        axes.append(_Axis(axis, f"pools.{pool}.{POOL_AXES[axis]}", tuple(p[0] for p in pairs),
                          labels))
    rate_fields: dict[str, tuple[str, np.ndarray]] = {}
    for path, values in (fields or {}).items():
        parts = str(path).split(".")
        if len(parts) == 3 and parts[0] == "classes" and parts[2] == "rate":
            cls = scenario.classes[int(parts[1])] if parts[1].isdigit() \
                else scenario.request_class(parts[1])
            if not cls.is_open:
                raise ValidationError(f"sweep {path}: class {cls.name!r} is closed; valid: "
                                      f"rates of open classes {_open_classes(scenario)}")
            rate_fields[cls.name] = (path.replace(".", "_"), _rate_values(path, values))
            continue
        values = _values(path, values)
        scenario.with_value(path, values[0])  # a bad path fails here, before any evaluation
        labels = tuple(_field_label(v) for v in values)
        _unique(path, labels)
        axes.append(_Axis(path.replace(".", "_"), path, tuple(values), labels))
    return axes, rate_fields


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class _Task:
    """One block of a sweep: categorical value blocks by the rate slices, run as one unit."""

    scenario: Scenario
    axes: tuple[_Axis, ...]
    rates: Mapping[str, xr.DataArray]
    options: Mapping[str, Any]

    @property
    def configurations(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    @property
    def rate_points(self) -> int:
        """Points of one evaluate call: the product of the rate dims' lengths."""
        sizes = {d: n for da in self.rates.values() for d, n in da.sizes.items()}
        return math.prod(sizes.values())


def _build(scenario: Scenario, axes: Sequence[_Axis], combo: Sequence[Any]
           ) -> tuple[Scenario | None, str]:
    sc = scenario
    try:
        for axis, value in zip(axes, combo):
            sc = sc.with_value(axis.path, value)
    except ValidationError as e:
        return None, str(e)
    return sc, ""


def _blank(var: xr.Variable) -> np.ndarray:
    kind = var.dtype.kind
    fill = np.nan if kind in "fc" else (False if kind == "b" else ("" if kind in "USO" else 0))
    return np.full(var.shape, fill, dtype=var.dtype)


def _same_labels(a: xr.Dataset, b: xr.Dataset) -> bool:
    return all(np.array_equal(a.indexes[d], b.indexes[d]) for d in a.indexes if d in b.indexes) \
        and set(a.indexes) == set(b.indexes)


def _run_task(task: _Task, tick: Callable[[int], None] | None = None) -> xr.Dataset:
    """Evaluate every configuration of a block; one Dataset with the block's categorical dims."""
    combos = list(itertools.product(*(a.values for a in task.axes)))
    results: list[xr.Dataset | None] = []
    errors, devices = [], []
    for combo in combos:
        sc, err = _build(task.scenario, task.axes, combo)
        results.append(None if sc is None else evaluate(sc, rates=task.rates, **task.options))
        errors.append(err)
        devices.append(np.nan if sc is None else float(sum(p.devices for p in sc.pools)))
        if tick is not None:
            tick(task.rate_points)
    template = next((r for r in results if r is not None), None)
    if template is None:  # no configuration of the block is valid: shape from the base scenario
        template = evaluate(task.scenario, rates=task.rates, **task.options)
    if any(r is not None and not _same_labels(r, template) for r in results):
        results = _aligned(results)
        template = next(r for r in results if r is not None)
    shape = tuple(len(a.values) for a in task.axes)
    dims = tuple(a.dim for a in task.axes)
    data = {}
    for name, var in template.data_vars.items():
        arr = np.stack([r.variables[name].values if r is not None else _blank(var)
                        for r in results])
        data[name] = (dims + var.dims, arr.reshape(shape + var.shape), var.attrs)
    data["config_error"] = (dims, np.array(errors, dtype=str).reshape(shape),
                            {"long_name": "why the configuration is not a valid scenario "
                                          "('' where it is)"})
    data["devices"] = (dims, np.array(devices).reshape(shape),
                       {"units": "devices", "long_name": "devices in all pools"})
    coords = {d: v for d, v in template.coords.items() if d not in data}
    coords.update({a.dim: list(a.labels) for a in task.axes})
    valid = [r for r in results if r is not None]
    attrs = dict(template.attrs)
    if valid:
        attrs["iterations"] = int(max(r.attrs["iterations"] for r in valid))
        attrs["residual"] = float(max(r.attrs["residual"] for r in valid))
        attrs["notes"] = "; ".join(dict.fromkeys(n for r in valid for n in
                                                 r.attrs["notes"].split("; ") if n))
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _aligned(results: list[xr.Dataset | None]) -> list[xr.Dataset | None]:
    """Results re-indexed onto the union of their stage/class/pool labels (NaN where absent)."""
    valid = [r for r in results if r is not None]
    union = {}
    for dim in ("class", "stage", "pool", "quantile"):
        labels = [v for r in valid if dim in r.indexes for v in r.indexes[dim]]
        union[dim] = list(dict.fromkeys(labels))
    return [None if r is None else r.reindex({d: v for d, v in union.items() if d in r.indexes})
            for r in results]


def _blocks(size: int, chunk: int | None) -> list[slice]:
    step = size if chunk is None else chunk
    return [slice(i, min(i + step, size)) for i in range(0, size, step)]


def _tasks(scenario: Scenario, axes: list[_Axis], rates: Mapping[str, xr.DataArray],
           rate_dims: list[str], chunks: Mapping[str, int], options: Mapping[str, Any]
           ) -> tuple[list[_Task], list[str], tuple[int, ...]]:
    """Tasks on a grid over the swept dims (categorical first, then rate dims)."""
    sizes = {a.dim: len(a.values) for a in axes}
    for dim in rate_dims:
        sizes[dim] = next(da.sizes[dim] for da in rates.values() if dim in da.dims)
    grid_dims = list(sizes)
    per_dim = [_blocks(sizes[d], chunks.get(d)) for d in grid_dims]
    tasks = []
    for block in itertools.product(*per_dim):
        pick = dict(zip(grid_dims, block))
        task_axes = tuple(_Axis(a.dim, a.path, a.values[pick[a.dim]], a.labels[pick[a.dim]])
                          for a in axes)
        task_rates = {c: da.isel({d: pick[d] for d in da.dims}) for c, da in rates.items()}
        tasks.append(_Task(scenario, task_axes, task_rates, dict(options)))
    return tasks, grid_dims, tuple(len(b) for b in per_dim)


def _combine(blocks: list[xr.Dataset], grid_dims: list[str], grid: tuple[int, ...]
             ) -> xr.Dataset:
    if len(blocks) == 1:
        return blocks[0]
    nested: list = blocks
    for size in reversed(grid[1:]):
        nested = [nested[i:i + size] for i in range(0, len(nested), size)]
    attrs = dict(blocks[0].attrs)
    attrs["iterations"] = int(max(b.attrs.get("iterations", 0) for b in blocks))
    attrs["residual"] = float(max(b.attrs.get("residual", 0.0) for b in blocks))
    attrs["notes"] = "; ".join(dict.fromkeys(n for b in blocks
                                             for n in b.attrs.get("notes", "").split("; ") if n))
    out = xr.combine_nested(nested, concat_dim=grid_dims, combine_attrs="override",
                            data_vars="minimal", coords="minimal", compat="override",
                            join="outer")
    out.attrs = attrs
    return out


# --------------------------------------------------------------------------- progress


class _Progress:
    """A progress line on stderr: points done of the total, elapsed seconds."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.start = time.perf_counter()
        self.last = -1.0

    def tick(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < 0.2 and self.done < self.total:
            return
        self.last = now
        sys.stderr.write(f"\rhermes-qn sweep: {self.done}/{self.total} points "
                         f"({100 * self.done // max(self.total, 1)}%), {now - self.start:.1f} s")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------- dask


def _distributed():
    try:
        import distributed
    except ImportError:
        raise HermesError("sweep client=: dask.distributed is not installed; install the extra "
                          "with pip install 'hermes-qn[dask]'") from None
    return distributed


def _client_iv(client: Any) -> None:
    if not isinstance(client, _distributed().Client):
        raise ValidationError(f"sweep client: got {type(client).__name__}; valid: a "
                              "dask.distributed.Client (e.g. Client(LocalCluster())) or None")


def _run_dask(client: Any, tasks: list[_Task], progress: _Progress | None) -> list[xr.Dataset]:
    distributed = _distributed()
    futures = client.map(_run_task, tasks, pure=False)
    if progress is not None:
        for future in distributed.as_completed(futures):
            task = tasks[futures.index(future)]
            progress.tick(task.configurations * task.rate_points)
    return client.gather(futures)


def _default_chunks(client: Any, sizes: Mapping[str, int]) -> dict[str, int]:
    """Cut the longest swept dim into about two blocks per worker."""
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    dim = max(sizes, key=sizes.get)
    return {dim: max(1, math.ceil(sizes[dim] / (2 * workers)))}


# --------------------------------------------------------------------------- sweep


def _chunks_iv(chunks: Any, sizes: Mapping[str, int]) -> dict[str, int]:
    if chunks is None:
        return {}
    if not isinstance(chunks, Mapping):
        raise ValidationError(f"sweep chunks: got {chunks!r}; valid: a mapping of swept dim to "
                              f"block length, dims {list(sizes)}")
    for dim, n in chunks.items():
        if dim not in sizes:
            raise ValidationError(f"sweep chunks: dim {dim!r} is not swept; valid: one of "
                                  f"{list(sizes)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValidationError(f"sweep chunks[{dim!r}]: got {n!r}; valid: an integer >= 1")
    return {d: int(n) for d, n in chunks.items()}


def _derived(ds: xr.Dataset) -> xr.Dataset:
    """Objectives of a configuration: output tokens/s per device, tokens per USD and per J."""
    tokens = ds["token_throughput"].sum("class", min_count=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ds["throughput_per_device"] = (tokens / ds["devices"]).assign_attrs(
            units="tokens/s/device", long_name="output tokens per second per device")
        ds["tokens_per_dollar"] = (1e6 / ds["cost_per_million_tokens"]).assign_attrs(
            units="tokens/USD", long_name="output tokens per US dollar")
        ds["tokens_per_joule"] = (1.0 / ds["energy_per_token"]).assign_attrs(
            units="tokens/J", long_name="output tokens per joule")
    return ds


def sweep(scenario: Scenario, *,
          rate: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
          batch_cap: Sequence[int] | None = None, device: Sequence[str | Device] | None = None,
          strategy: Sequence[str] | None = None, tp: Sequence[int] | None = None,
          chunk_tokens: Sequence[int] | None = None,
          fields: Mapping[str, Sequence[Any]] | None = None, pool: str | None = None,
          progress: bool | None = None, chunks: Mapping[str, int] | None = None,
          client: Any = None, **evaluate_options: Any) -> xr.Dataset:
    """Evaluate ``scenario`` over the Cartesian product of swept values.

    Parameters
    ----------
    scenario : Scenario
    rate : sequence of float, or mapping of class name to sequence of float, optional
        Arrival rates (requests/s), vectorised. A sequence is the *total* rate
        of the open classes, split in the proportions of the scenario's rates
        (evenly if those are all zero); dim ``rate``. A mapping gives open
        classes their own axes, dims ``<class>_rate``; other classes keep
        their rates.
    batch_cap, device, strategy, tp, chunk_tokens : sequence, optional
        Values of the pool's ``batch_cap`` (sequences), ``device`` (catalog
        name or Device; coordinate: its name), ``batching`` (one of
        ``"static"``, ``"continuous"``, ``"chunked"``), ``tp`` (devices per
        replica) and ``chunk_tokens`` (tokens). Each becomes a dim of that
        name. They loop: one evaluate per combination.
    fields : mapping of path to sequence, optional
        Any other fields, addressed as in :meth:`Scenario.with_value`
        (``"pools.gpu.devices"``, ``"classes.chat.slo.ttft"``); dims are the
        paths with dots replaced by underscores. ``classes.<c>.rate`` is
        vectorised like ``rate``; every other path loops.
    pool : str, optional
        The pool the shorthand axes apply to. Default: the only pool, else the
        only pool running a decoder LLM; otherwise a ValidationError lists the
        pools.
    progress : bool, optional
        A progress line on stderr; default: only when stderr is a terminal
        and the sweep has at least 10^5 points.
    chunks : mapping of dim to int, optional
        Block length along swept dims; each block is one task (one unit of
        progress, one dask task). Default: one block locally; with ``client``
        the longest swept dim cut into two blocks per worker.
    client : dask.distributed.Client, optional
        Run the blocks on this cluster (``pip install 'hermes-qn[dask]'``);
        the result is the same Dataset as without it.
    **evaluate_options
        Passed to :func:`hermes_qn.evaluate` (``damping``, ``tol``, ``max_iter``).

    Returns
    -------
    xarray.Dataset
        Every variable of :func:`hermes_qn.evaluate` with the swept dims
        added, plus ``devices`` (devices of all pools),
        ``throughput_per_device`` (output tokens/s per device),
        ``tokens_per_dollar`` (``1e6 / cost_per_million_tokens``),
        ``tokens_per_joule`` (``1 / energy_per_token``) and ``config_error``
        (str, ``""`` for valid configurations). Saturated points are ``inf``
        with ``saturated`` True; combinations that make no valid scenario
        (the model does not fit, ``tp`` does not divide ``devices``) are NaN
        with the reason in ``config_error``. attrs ``swept`` lists the swept
        dims (comma-separated); ``iterations``/``residual`` are the largest
        over configurations, ``notes`` the union.

    Raises
    ------
    ValidationError
        A bad axis value (the message names the axis, the value and what is
        valid), an unknown path, class or pool, repeated values, or no
        combination that makes a valid scenario (the first reason).
    HermesError
        ``client`` given but dask.distributed is not installed.

    Notes
    -----
    Rates are vectorised; every other axis costs one evaluate call per
    combination. A ConvergenceError of any configuration stops the sweep.

    Examples
    --------
    >>> import hermes_qn as hq
    >>> ds = hq.sweep(hq.load_scenario("chat-h100"), rate=[10, 20], batch_cap=[64, 256])
    >>> dict(ds.sizes)["rate"], dict(ds.sizes)["batch_cap"]
    (2, 2)
    """
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"sweep: got {type(scenario).__name__}; valid: a Scenario "
                              "(hermes_qn.load_scenario(...))")
    shorthand = {"batch_cap": batch_cap, "device": device, "strategy": strategy, "tp": tp,
                 "chunk_tokens": chunk_tokens}
    rates, rate_dims = _rate_axes(scenario, rate)
    axes, rate_fields = _axes(scenario, shorthand, fields, pool)
    for name, (dim, v) in rate_fields.items():
        if name in rates:
            raise ValidationError(f"sweep fields: class {name!r} already has rates from rate=; "
                                  "valid: one axis per class rate")
        rates[name] = xr.DataArray(v, dims=dim, coords={dim: v})
        rate_dims.append(dim)
    if not axes and not rates:
        raise ValidationError("sweep: nothing to sweep; valid: at least one of rate, batch_cap, "
                              "device, strategy, tp, chunk_tokens or fields")
    sizes = {a.dim: len(a.values) for a in axes}
    sizes.update({d: next(da.sizes[d] for da in rates.values() if d in da.dims)
                  for d in rate_dims})
    chunks = _chunks_iv(chunks, sizes)
    if client is not None:
        _client_iv(client)
        chunks = chunks or _default_chunks(client, sizes)
    _check_some_valid(scenario, axes)
    tasks, grid_dims, grid = _tasks(scenario, axes, rates, rate_dims, chunks, evaluate_options)
    points = math.prod(sizes.values())
    show = progress if progress is not None else (sys.stderr.isatty()
                                                  and points >= _PROGRESS_POINTS)
    bar = _Progress(points) if show else None
    try:
        if client is not None:
            blocks = _run_dask(client, tasks, bar)
        else:
            blocks = [_run_task(t, None if bar is None else bar.tick) for t in tasks]
    finally:
        if bar is not None:
            bar.close()
    ds = _combine(blocks, grid_dims, grid)
    swept = rate_dims + [a.dim for a in axes]
    ds = ds.transpose(*[d for d in ("class", "stage", "pool") if d in ds.dims], *swept, ...)
    ds.attrs["swept"] = ",".join(swept)
    return _derived(ds)


def _check_some_valid(scenario: Scenario, axes: list[_Axis]) -> None:
    """Raise the first reason when no combination of values makes a valid scenario."""
    first = ""
    for combo in itertools.product(*(a.values for a in axes)):
        sc, err = _build(scenario, axes, combo)
        if sc is not None:
            return
        first = first or err
    if axes:
        raise ValidationError(f"sweep: no combination of {[a.dim for a in axes]} makes a valid "
                              f"scenario; the first: {first}")


# --------------------------------------------------------------------------- optimisation


def _objective(ds: xr.Dataset, objective: str | xr.DataArray, maximize: bool | None,
               where: str) -> tuple[xr.DataArray, bool]:
    if isinstance(objective, xr.DataArray):
        da, name = objective, objective.name or "objective"
    elif isinstance(objective, str) and objective in ds.data_vars:
        da, name = ds[objective], objective
    else:
        names = [n for n in ds.data_vars if not set(ds[n].dims) & _NOT_SWEPT
                 and ds[n].dtype.kind in "fiu"]
        raise ValidationError(f"{where}: objective {objective!r} is not a variable of the sweep; "
                              f"valid: a DataArray or one of {names}")
    extra = [d for d in da.dims if d in _NOT_SWEPT]
    if extra:
        raise ValidationError(f"{where}: objective {name!r} has dims {extra} that are not "
                              "swept; valid: a variable over the swept dims only (select first, "
                              f"e.g. ds.sel({{{extra[0]!r}: ...}}), or reduce)")
    if maximize is None:
        if name not in DIRECTIONS:
            raise ValidationError(f"{where}: no known direction for {name!r}; valid: pass "
                                  "maximize=True or False")
        maximize = DIRECTIONS[name]
    return da.rename(name), bool(maximize)


def _feasible(ds: xr.Dataset, slo: bool) -> xr.DataArray:
    ok = ~ds["saturated"]
    if "config_error" in ds:
        ok = ok & (ds["config_error"] == "")
    if slo:
        met = ds["slo_met"]
        ok = ok & (met.all("class") if "class" in met.dims else met)
    return ok


def best(ds: xr.Dataset, objective: str | xr.DataArray = "throughput_per_device", *,
         slo: bool = True, maximize: bool | None = None) -> xr.Dataset:
    """The point of a sweep with the best objective among those meeting the SLOs.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`sweep` (or :func:`hermes_qn.evaluate` over rates).
    objective : str or xarray.DataArray
        A variable over the swept dims only: ``"throughput_per_device"``
        (output tokens/s per device), ``"tokens_per_dollar"``,
        ``"tokens_per_joule"``, ... For per-class or per-pool metrics select
        one first (``ds.sel({"class": "chat"})``) or pass a DataArray.
    slo : bool
        Only points where every class meets its SLOs (``slo_met``). Saturated
        points and invalid configurations never count.
    maximize : bool, optional
        Direction; default known for the derived objectives and evaluate's
        metrics (see :data:`DIRECTIONS`), required otherwise.

    Returns
    -------
    xarray.Dataset
        ``ds`` at the best point: the swept coordinates are scalars giving
        the configuration, every metric its value there. attrs
        ``objective``, ``objective_value`` and ``feasible_points`` are added.
        Ties go to the first point in the Dataset's order.

    Raises
    ------
    ValidationError
        Unknown objective or no known direction; or no point is feasible
        (none meets the SLOs unsaturated): the message says how many points
        there were and suggests ``slo=False`` or a wider sweep.
    """
    da, maximize = _objective(ds, objective, maximize, "best")
    ok = _feasible(ds, slo).broadcast_like(da) & np.isfinite(da)
    values = np.where(ok.transpose(*da.dims).values, da.values, np.nan)
    if not np.any(ok.values):
        raise ValidationError(f"best: no point of the {da.size} points is feasible (unsaturated"
                              f"{', every SLO met' if slo else ''}, finite {da.name}); valid: "
                              "a sweep with lower rates or more capacity"
                              + (", or slo=False" if slo else ""))
    index = np.nanargmax(values) if maximize else np.nanargmin(values)
    point = dict(zip(da.dims, np.unravel_index(index, values.shape)))
    out = ds.isel(point)
    out.attrs.update(objective=str(da.name), objective_value=float(values.flat[index]),
                     feasible_points=int(ok.values.sum()))
    return out


def _non_dominated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points no other point dominates, both objectives maximised."""
    if x.size == 0:
        return np.zeros(0, dtype=int)
    order = np.lexsort((-y, -x))  # x descending, ties by y descending
    xs, ys = x[order], y[order]
    running = np.maximum.accumulate(ys)
    prev = np.concatenate([[-np.inf], running[:-1]])
    setter = np.maximum.accumulate(np.where(ys > prev, np.arange(ys.size), 0))
    prev_setter = np.concatenate([[0], setter[:-1]])
    dominated = (prev > ys) | ((prev == ys) & (xs[prev_setter] > xs))
    return order[~dominated]


def pareto_front(ds: xr.Dataset, x: str | xr.DataArray = "throughput_per_device",
                 y: str | xr.DataArray = "tokens_per_joule", *,
                 maximize: tuple[bool | None, bool | None] = (None, None),
                 slo: bool = True) -> xr.Dataset:
    """The points of a sweep that no other feasible point beats in both objectives.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`sweep`.
    x, y : str or xarray.DataArray
        Two objectives over the swept dims (as for :func:`best`).
    maximize : pair of bool or None
        Direction of each; None takes the known direction (:data:`DIRECTIONS`).
    slo : bool
        Only points meeting every SLO; saturated points and invalid
        configurations never count.

    Returns
    -------
    xarray.Dataset
        ``ds`` at the non-dominated points along a new dim ``point``, sorted
        by ``x`` ascending; the swept coordinates become coordinates along
        ``point``. Empty (``point`` of length 0) when no point is feasible.
        Points equal in both objectives are all kept.
    """
    if not (isinstance(maximize, (tuple, list)) and len(maximize) == 2):
        raise ValidationError(f"pareto_front maximize: got {maximize!r}; valid: a pair, e.g. "
                              "(True, False)")
    xa, mx = _objective(ds, x, maximize[0], "pareto_front")
    ya, my = _objective(ds, y, maximize[1], "pareto_front")
    xa, ya = xr.broadcast(xa, ya)
    dims = list(xa.dims)
    ya = ya.transpose(*dims)
    ok = (_feasible(ds, slo).broadcast_like(xa).transpose(*dims).values
          & np.isfinite(xa.values) & np.isfinite(ya.values)).ravel()
    flat = np.flatnonzero(ok)
    xv, yv = xa.values.ravel()[flat], ya.values.ravel()[flat]
    keep = flat[_non_dominated(xv if mx else -xv, yv if my else -yv)]
    keep = keep[np.argsort(xa.values.ravel()[keep], kind="stable")]
    stacked = ds.stack(point=dims) if dims else ds.expand_dims("point")
    out = stacked.isel(point=keep)
    if dims:
        out = out.reset_index("point")
    out.attrs.update(x=str(xa.name), y=str(ya.name))
    return out


# --------------------------------------------------------------------------- files


def _attr(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    return str(value)


def save_sweep(ds: xr.Dataset, path: str) -> None:
    """Write a sweep (or any result Dataset) to NetCDF, or to Zarr when ``path`` ends in ``.zarr``.

    Attributes that the formats cannot hold (None, dicts, lists) are written
    as their ``str``; booleans as 0/1. For Zarr, fixed-width strings are
    written as variable-length strings (the format's stable string type;
    needs ``pip install 'hermes-qn[zarr]'``). :func:`open_sweep` reads both.
    """
    out = ds.copy()
    out.attrs = {k: _attr(v) for k, v in ds.attrs.items()}
    for var in out.variables.values():
        var.attrs = {k: _attr(v) for k, v in var.attrs.items()}
    path = str(path)
    if path.rstrip("/").endswith(".zarr"):
        if importlib.util.find_spec("zarr") is None:
            raise HermesError("save_sweep: writing Zarr needs zarr; install the extra with pip "
                              "install 'hermes-qn[zarr]'")
        for name in list(out.variables):
            if out[name].dtype.kind == "U":
                out[name] = out[name].astype(object)
        out.to_zarr(path, mode="w", consolidated=False)
    else:
        out.to_netcdf(path)


def open_sweep(path: str) -> xr.Dataset:
    """Read a Dataset written by :func:`save_sweep` into memory (strings as ``str`` arrays)."""
    path = str(path)
    if path.rstrip("/").endswith(".zarr"):
        ds = xr.open_zarr(path, consolidated=False).load()
    else:
        with xr.open_dataset(path) as f:
            ds = f.load()
    strings = {name: xr.Variable(var.dims, np.array(var.values.tolist(), dtype=str), var.attrs)
               for name, var in ds.variables.items()
               if var.dtype.kind in "OT"}  # object, or numpy's variable-width StringDType
    coords = {n: v for n, v in strings.items() if n in ds.coords}
    return ds.assign_coords(coords).assign({n: v for n, v in strings.items() if n not in coords})
