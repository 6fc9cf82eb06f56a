"""Paper figures from result Datasets: latency-throughput, stage breakdown, SLO scale, heat maps, Pareto fronts.

Every function takes the :class:`xarray.Dataset` that :func:`hermes_qn.evaluate`
returns (a rate given as an array or a DataArray becomes a dimension), or a
sweep of it (:func:`hermes_qn.sweep`, one dimension per swept
field), and an optional ``ax``; it returns the Axes it drew on. Without
``ax`` it opens a figure in the house :func:`style` (single-column width,
8 pt text, Okabe-Ito colours, text kept as text in SVG and PDF). With ``ax``
it draws on it in the caller's rcParams.

Axis labels come from the variables' ``long_name`` and ``units`` attributes.
Values stay in SI until drawn; at the plot edge seconds under one second
become milliseconds, bytes become gigabytes (10^9 B) and fractions (units
``"1"``) become per cent, and the label says which.

Saturated points (``saturated`` true, or a non-finite value) are results,
not numbers to draw: lines are cut there, the capacity is marked instead,
heat-map cells are left grey, and Pareto clouds show them apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .errors import ValidationError
from .evaluate import evaluate
from .scenario import Scenario
from .sweep import DIRECTIONS, pareto_front

__all__ = [
    "COLORS",
    "RC",
    "goodput_vs_slo_scale",
    "latency_throughput",
    "pareto",
    "save",
    "slo_scale_sweep",
    "stage_breakdown",
    "style",
    "utilization_heatmap",
    "versus_sampler",
]

#: Okabe-Ito colours: distinguishable under the common colour-vision deficiencies.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: rcParams of the house style: 3.5 in (single column) wide, 8 pt text, vector-friendly fonts.
RC: dict[str, Any] = {
    "figure.figsize": (3.5, 2.5),
    "figure.dpi": 150,
    "figure.constrained_layout.use": True,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=COLORS) + cycler(marker=_MARKERS),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "errorbar.capsize": 2,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,   # TrueType in PDF/PS: editable text, no Type 3 bitmaps
    "ps.fonttype": 42,
    "svg.fonttype": "none",  # SVG text stays text
}

_METRICS = ("ttft", "tpot", "e2e")
# axis names where evaluate's long_name is a definition rather than a name
_SHORT = {"goodput": "goodput", "slo_attainment": "SLO attainment",
          "token_throughput": "output token throughput", "capacity": "capacity",
          "load_fraction": "load (rate / capacity)", "kv_memory": "KV cache in use per device",
          "batch_size": "mean running batch", "utilization": "utilisation"}
_SAVE_FORMATS = (".pdf", ".svg", ".eps", ".png")
_SAVE_KEYS = ("savefig.", "pdf.", "ps.", "svg.")  # rcParams read when a file is written

# --------------------------------------------------------------------------- style and output


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The house style as a context manager: ``with hq.plot.style(): ...``.

    Sets :data:`RC` for the block (single-column 3.5 x 2.5 in figures, 8 pt
    text, Okabe-Ito colour and marker cycle, TrueType fonts in PDF, text as
    text in SVG) and restores the caller's rcParams after it, except the
    interactive mode: a notebook backend that loads with the first figure
    (inside the block) switches it on, and it stays on so that later
    figures are shown.
    """
    with mpl.rc_context(RC):
        yield
        interactive = mpl.is_interactive()
    mpl.interactive(interactive)


def save(fig: Figure | Axes, path: str | Path, *, dpi: int = 300) -> Path:
    """Write a figure, the format chosen by the extension.

    Parameters
    ----------
    fig : Figure or Axes
        The figure, or an Axes of it (what the plot functions return).
    path : str or Path
        ``.pdf``, ``.svg`` or ``.eps`` (vector) or ``.png`` (raster at
        ``dpi``); the folder must exist. Written with the house style's
        file settings whatever the rcParams: TrueType fonts in PDF and EPS,
        text as text in SVG, a tight bounding box; no creation date in PDF
        and SVG.
    dpi : int
        Dots per inch of a PNG (and of any raster image inside a vector file).

    Returns
    -------
    Path
        The path written.
    """
    if isinstance(fig, Axes):
        fig = fig.figure
    if not isinstance(fig, Figure):
        raise ValidationError(f"save: fig got {type(fig).__name__}; valid: a matplotlib Figure "
                              "or Axes")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise ValidationError(f"save: path {str(path)!r} has extension {suffix or '(none)'!r}; "
                              f"valid: one of {list(_SAVE_FORMATS)} (vector: .pdf, .svg, .eps)")
    if not path.parent.is_dir():
        raise ValidationError(f"save: folder {str(path.parent)!r} does not exist; valid: an "
                              "existing folder")
    metadata = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(suffix)
    with mpl.rc_context({k: v for k, v in RC.items() if k.startswith(_SAVE_KEYS)}):
        fig.savefig(path, dpi=dpi, metadata=metadata)
    return path


@contextlib.contextmanager
def _canvas(ax: Axes | None) -> Iterator[Axes]:
    """Yield ``ax``, or a new Axes drawn in the house style."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise ValidationError(f"ax got {type(ax).__name__}; valid: a matplotlib Axes or None")
        yield ax
        return
    with style():
        _, new = plt.subplots()
        yield new


# --------------------------------------------------------------------------- selection helpers


def _var(ds: xr.Dataset, name: str, where: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset):
        raise ValidationError(f"{where}: got {type(ds).__name__}; valid: an xarray.Dataset from "
                              "hermes_qn.evaluate, a sweep of it or hermes_qn.simulate")
    if name not in ds.data_vars:
        raise ValidationError(f"{where}: no variable {name!r} in the Dataset; valid: one of "
                              f"{sorted(map(str, ds.data_vars))}")
    return ds[name]


def _pick(da: xr.DataArray, where: str, keep: Sequence[str] = (), **chosen: Any) -> xr.DataArray:
    """Select one ``class`` / ``pool`` / ``quantile`` (argument ``cls`` / ``pool`` / ``quantile``).

    A dimension of size one is dropped without asking; one listed in ``keep``
    stays (it is the hue); one of several values must be chosen.
    """
    for arg, dim in (("cls", "class"), ("pool", "pool"), ("quantile", "quantile")):
        value = chosen.get(arg)
        if dim not in da.dims or dim in keep:
            continue
        values = da[dim].values.tolist()
        if value is None:
            if len(values) == 1:
                da = da.isel({dim: 0})
                continue
            raise ValidationError(f"{where}: {da.name} has {len(values)} values of {dim!r}; "
                                  f"valid: {arg}= one of {values}")
        if dim == "quantile":
            hit = [i for i, v in enumerate(values) if np.isclose(v, value)]
        else:
            hit = [i for i, v in enumerate(values) if v == value]
        if not hit:
            raise ValidationError(f"{where}: {arg} got {value!r}; valid: one of {values}")
        da = da.isel({dim: hit[0]})
    return da


def _only_dims(da: xr.DataArray, dims: Sequence[str], where: str, hint: str) -> None:
    """``da`` must have exactly ``dims`` (names what is extra or missing)."""
    extra = [d for d in da.dims if d not in dims]
    missing = [d for d in dims if d not in da.dims]
    if extra or missing:
        raise ValidationError(
            f"{where}: {da.name} has dims {list(map(str, da.dims))}; "
            + (f"not among them: {missing}; " if missing else "")
            + (f"left over: {extra} (values: "
               + "; ".join(f"{d}={da[d].values.tolist() if d in da.coords else da.sizes[d]}"
                           for d in extra) + "); " if extra else "")
            + f"valid: {hint}")


def _saturated(ds: xr.Dataset, like: xr.DataArray) -> xr.DataArray:
    """True where ``like`` is not a steady-state number: ``saturated`` or non-finite."""
    bad = ~np.isfinite(like)
    if "saturated" in ds.data_vars:
        sat = ds["saturated"].fillna(True).astype(bool)
        sat = sat.any([d for d in sat.dims if d not in like.dims])
        bad = bad | sat
    return bad.transpose(*like.dims)


def _fmt(value: Any) -> str:
    """A coordinate value as legend or tick text."""
    if isinstance(value, (float, np.floating)):
        return f"{int(value)}" if float(value).is_integer() else f"{value:.3g}"
    return str(value)


# --------------------------------------------------------------------------- labels and units


def _display(units: str | None, values: np.ndarray) -> tuple[float, str | None]:
    """Factor and unit to draw SI ``values`` with: s -> ms under 1 s, B -> GB, 1 -> %."""
    if units == "s":
        finite = np.abs(values[np.isfinite(values)])
        return (1e3, "ms") if finite.size and finite.max() < 1.0 else (1.0, "s")
    if units == "B":
        return 1e-9, "GB"
    if units == "1":
        return 100.0, "%"
    return 1.0, units


def _describe(ds: xr.Dataset, name: str, quantile: float | None = None) -> str:
    """The long name of a variable (of its mean for ``<metric>_q``), with the quantile.

    A few long names are definitions too long for an axis; :data:`_SHORT` names those.
    """
    base = name[:-2] if name.endswith("_q") and quantile is not None else name
    text = _SHORT.get(base) or (ds[base].attrs.get("long_name", base.replace("_", " "))
                                if base in ds else base.replace("_", " "))
    if quantile is not None:
        text = text.replace(" (mean)", "") + f" (p{100 * quantile:g})"
    return text


def _label(text: str, unit: str | None) -> str:
    return f"{text} [{unit}]" if unit else text


def _is_rate(dim: str) -> bool:
    return dim == "rate" or dim.endswith("_rate")


def _dim_label(ds: xr.Dataset, dim: str) -> str:
    """Axis or legend title of a swept dimension: its coordinate's attrs, else by its name."""
    attrs = ds[dim].attrs if dim in ds.coords else {}
    if "long_name" in attrs or "units" in attrs:
        return _label(attrs.get("long_name", dim.replace("_", " ")), attrs.get("units"))
    if _is_rate(dim):
        who = dim[:-len("_rate")].removeprefix("classes_") if dim != "rate" else ""
        return _label(f"arrival rate{', ' + who if who else ''}", "requests/s")
    if dim == "batch_cap" or dim.endswith("_batch_cap"):
        return _label("batch cap", "sequences")
    return dim.replace("_", " ")


def _metric(ds: xr.Dataset, metric: str, quantile: float | None, where: str
            ) -> tuple[xr.DataArray, str]:
    """The mean or quantile variable of a latency metric and its description."""
    if metric not in _METRICS:
        raise ValidationError(f"{where}: metric got {metric!r}; valid: one of {list(_METRICS)}")
    name = metric if quantile is None else f"{metric}_q"
    da = _var(ds, name, where)
    if quantile is not None and "quantile" not in da.dims:
        raise ValidationError(f"{where}: {name} has no 'quantile' dim; valid: quantile=None")
    return da, _describe(ds, name, quantile)


def _lines_over(da: xr.DataArray, hue: str | None) -> Iterator[tuple[Any, xr.DataArray]]:
    """(hue value or None, the slice) for each line."""
    if hue is None:
        yield None, da
        return
    for i in range(da.sizes[hue]):
        yield da[hue].values[i], da.isel({hue: i})


def _check_hue(ds: xr.Dataset, hue: str | None, where: str) -> None:
    if hue is not None and hue not in ds.dims:
        raise ValidationError(f"{where}: hue got {hue!r}; valid: None or a dim of the Dataset, "
                              f"one of {sorted(map(str, ds.dims))}")


def _class_hue(da: xr.DataArray, cls: Any, hue: str | None) -> str | None:
    """One line per class when several classes are present and nothing else asks for colour."""
    if hue is None and cls is None and "class" in da.dims and da.sizes["class"] > 1:
        return "class"
    return hue


# --------------------------------------------------------------------------- latency vs throughput


def latency_throughput(ds: xr.Dataset, metric: str = "ttft", *, x: str = "throughput",
                       hue: str | None = None, cls: Any = None, quantile: float | None = None,
                       yscale: str = "linear", ax: Axes | None = None) -> Axes:
    """Latency against throughput (or arrival rate), one line per configuration.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`hermes_qn.evaluate` with vectorised rates, or a sweep:
        after choosing ``hue``, ``cls`` and ``quantile`` one dimension must be
        left, the one the line runs along (usually the rate).
    metric : {"ttft", "tpot", "e2e"}
        The latency (seconds in the Dataset, ms on the axis when under 1 s).
    x : str
        A variable in requests/s or tokens/s per class (``"throughput"``,
        ``"goodput"``, ``"token_throughput"``), or the swept dimension to
        use its coordinate (e.g. ``"rate"``; it must have coordinate values).
    hue : str, optional
        Dimension with one line per value (e.g. ``"batch_cap"``, ``"device"``).
        Default: ``"class"`` when there are several classes and ``cls`` is None.
    cls : str, optional
        The class to draw when there are several.
    quantile : float, optional
        Draw the quantile (one of the Dataset's, e.g. 0.9) instead of the mean.
    yscale : {"linear", "log"}
        ``"log"`` keeps the low-load latencies readable beside the blow-up
        near capacity; a linear axis starts at 0.
    ax : Axes, optional

    Returns
    -------
    Axes
        One line per hue value (label: the value); a saturated point is NaN
        in its line (the line stops), and where ``x`` is in requests/s a
        dotted vertical line (``gid="capacity"``) marks that line's capacity.
    """
    where = "latency_throughput"
    if yscale not in ("linear", "log"):
        raise ValidationError(f"{where}: yscale got {yscale!r}; valid: 'linear' or 'log'")
    y, text = _metric(ds, metric, quantile, where)
    _check_hue(ds, hue, where)
    hue = _class_hue(y, cls, hue)
    keep = (hue,) if hue else ()
    y = _pick(y, where, keep, cls=cls, quantile=quantile)
    along, xs, xtext, xunits = _x_axis(ds, x, y, hue, cls, where)
    _only_dims(y, [along] + ([hue] if hue else []), where,
               "one dim to draw along (the rate); pass hue= for another or select one value "
               "first (ds.sel(...))")
    bad = _saturated(ds, y)
    xs = xs.broadcast_like(y)
    factor, unit = _display(y.attrs.get("units"), np.asarray(y.where(~bad)))
    capacity = _pick(ds["capacity"], where, keep, cls=cls) if "capacity" in ds else None
    with _canvas(ax) as ax:
        marked = False
        for i, (value, line) in enumerate(_lines_over(y, hue)):
            sel = {hue: i} if hue else {}
            xv = np.asarray(xs.isel(sel).transpose(along), dtype=float)
            yv = np.asarray(line.transpose(along), dtype=float) * factor
            cut = np.asarray(bad.isel(sel).transpose(along))
            order = np.argsort(xv, kind="stable")
            drawn, = ax.plot(xv[order], np.where(cut, np.nan, yv)[order],
                             label=_fmt(value) if hue else text)
            if cut.any() and capacity is not None and xunits == "requests/s":
                cap = np.asarray(capacity.isel(sel).broadcast_like(line).transpose(along))
                ax.axvline(float(np.nanmin(cap[cut])), color=drawn.get_color(), ls=":",
                           lw=0.8, gid="capacity", label="_capacity")
                marked = True
        ax.set_xlabel(xtext)
        ax.set_ylabel(_label(text, unit))
        ax.set_yscale(yscale)
        if yscale == "linear":
            ax.set_ylim(bottom=0)
        handles, labels = ax.get_legend_handles_labels()
        if marked:
            handles.append(Line2D([], [], color="0.4", ls=":", lw=0.8))
            labels.append("capacity")
        if hue or marked:
            ax.legend(handles, labels, title=_dim_label(ds, hue) if hue else None)
    return ax


def _x_axis(ds: xr.Dataset, x: str, y: xr.DataArray, hue: str | None, cls: Any, where: str
            ) -> tuple[str, xr.DataArray, str, str | None]:
    """(the dim the line runs along, x values, x label, x units) for ``x`` a variable or a dim."""
    if x in ds.dims:
        if x not in ds.coords:
            raise ValidationError(f"{where}: x={x!r} has no coordinate values; valid: give it "
                                  f"coords (xr.DataArray(values, dims={x!r}, coords={{{x!r}: "
                                  "values}})) or x='throughput'")
        coord = ds[x]
        units = coord.attrs.get("units") or ("requests/s" if _is_rate(x) else None)
        return x, coord, _dim_label(ds, x), units
    if x not in ds.data_vars:
        raise ValidationError(f"{where}: x got {x!r}; valid: a variable such as 'throughput', "
                              f"'goodput', 'token_throughput', or a dim with coordinates, one of "
                              f"{sorted(str(d) for d in ds.dims if d in ds.coords)}")
    xs = _pick(ds[x], where, (hue,) if hue else (), cls=cls)
    rest = sorted((d for d in y.dims if d != hue), key=lambda d: not _is_rate(d))
    along = rest[0] if rest else "(none)"  # a rate dim when there is one
    units = xs.attrs.get("units")
    return along, xs, _label(_describe(ds, x), units), units


# --------------------------------------------------------------------------- stage breakdown


def stage_breakdown(ds: xr.Dataset, *, by: str = "class", cls: Any = None,
                    ax: Axes | None = None) -> Axes:
    """Stacked bars of the mean time per stage (``stage_time``), one bar per ``by`` value.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`hermes_qn.evaluate` or a sweep; ``stage_time`` has dims
        ``class``, ``stage`` and the swept ones.
    by : str
        The dimension with one bar per value: ``"class"`` (default) or a swept
        dimension (then ``cls`` picks the class when there are several).
    cls : str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
        One bar container per stage that takes time somewhere (label: the
        stage), stacked in pipeline order; a bar whose total is not finite
        (saturated) is not drawn and reads "saturated".
    """
    where = "stage_breakdown"
    da = _var(ds, "stage_time", where)
    if by not in da.dims or by == "stage":
        raise ValidationError(f"{where}: by got {by!r}; valid: one of "
                              f"{[str(d) for d in da.dims if d != 'stage']}")
    da = _pick(da, where, (by,), cls=cls)
    _only_dims(da, [by, "stage"], where, "select one value of each other dim first "
               "(ds.sel(...)) or pass it as by=")
    da = da.transpose(by, "stage")
    values = np.asarray(da, dtype=float)
    total = values.sum(axis=1)
    ok = ~np.asarray(_saturated(ds, da.sum("stage")))
    factor, unit = _display(da.attrs.get("units", "s"), total[ok])
    names = [str(s) for s in da["stage"].values]
    ticks = [_fmt(v) for v in da[by].values]
    pos = np.arange(len(ticks))
    with _canvas(ax) as ax:
        bottom = np.zeros(len(ticks))
        for j, stage in enumerate(names):
            heights = np.where(ok, np.nan_to_num(values[:, j]), 0.0) * factor
            if not np.any(heights > 0):
                continue
            ax.bar(pos[ok], heights[ok], bottom=bottom[ok], width=0.6, label=stage,
                   color=COLORS[j % len(COLORS)], edgecolor="white", linewidth=0.4)
            bottom += heights
        for i in np.flatnonzero(~ok):
            ax.text(pos[i], 0, "saturated", rotation=90, ha="center", va="bottom",
                    fontsize="small", color="0.4")
        ax.set_xticks(pos, ticks, rotation=0 if len(ticks) <= 4 else 45)
        ax.set_xlabel(_dim_label(ds, by))
        ax.set_ylabel(_label("mean time per stage", unit))
        ax.grid(axis="x", visible=False)
        ax.legend(title="stage")
    return ax


# --------------------------------------------------------------------------- SLO scale


def slo_scale_sweep(scenario: Scenario, scales: Sequence[float], *,
                    rates: dict[str, Any] | None = None, **options: Any) -> xr.Dataset:
    """Evaluate ``scenario`` with every SLO target (TTFT, TPOT, E2E) multiplied by each scale.

    :func:`hermes_qn.evaluate` is run once per scale on a copy whose classes'
    ``slo`` targets are scaled (``Scenario.with_value``; the percentile is
    kept), so ``goodput`` and ``slo_attainment`` come from the same gamma
    fits of the latency distributions that evaluate uses. Latencies do not
    depend on the scale.

    Parameters
    ----------
    scenario : Scenario
        At least one class must have an SLO.
    scales : sequence of float
        Positive factors; 1 is the scenario's own targets.
    rates : mapping, optional
        Passed to :func:`hermes_qn.evaluate` (vectorised rates add their dims).
    **options
        Passed to :func:`hermes_qn.evaluate`.

    Returns
    -------
    xarray.Dataset
        evaluate's Dataset with a leading dim ``slo_scale``.
    """
    where = "slo_scale_sweep"
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"{where}: scenario got {type(scenario).__name__}; valid: a "
                              "hermes_qn Scenario")
    values = np.asarray(scales, dtype=float).ravel()
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValidationError(f"{where}: scales got {list(values)}; valid: one or more finite "
                              "factors > 0")
    with_slo = [k for k, c in enumerate(scenario.classes) if c.slo is not None]
    if not with_slo:
        raise ValidationError(f"{where}: no class of scenario {scenario.name!r} has an slo; "
                              "valid: a scenario with slo = {ttft = ..., tpot = ..., ...}")
    results = []
    for s in values:
        sc = scenario
        for k in with_slo:
            slo = scenario.classes[k].slo
            scaled = {n: getattr(slo, n) * s for n in _METRICS if getattr(slo, n) is not None}
            sc = sc.with_value(f"classes.{k}.slo", dataclasses.replace(slo, **scaled))
        results.append(evaluate(sc, rates=rates, **options))
    dim = xr.DataArray(values, dims="slo_scale", name="slo_scale",
                       attrs={"long_name": "SLO scale (every target × scale)"})
    out = xr.concat(results, dim=dim, combine_attrs="drop_conflicts")
    out["slo_scale"].attrs.update(dim.attrs)
    return out


def goodput_vs_slo_scale(data: xr.Dataset | Scenario, scales: Sequence[float] | None = None, *,
                         rates: dict[str, Any] | None = None, metric: str = "goodput",
                         hue: str | None = None, cls: Any = None, ax: Axes | None = None) -> Axes:
    """Goodput (or SLO attainment) as every SLO target is multiplied by a scale factor.

    Parameters
    ----------
    data : Scenario or xarray.Dataset
        A scenario (then ``scales`` and ``rates`` go to :func:`slo_scale_sweep`)
        or its result, a Dataset with dim ``slo_scale``.
    scales : sequence of float, optional
        Required with a scenario.
    rates : mapping, optional
        With a scenario: arrival rates for :func:`hermes_qn.evaluate`.
    metric : {"goodput", "slo_attainment"}
        Requests/s meeting every SLO, or the fraction of requests that do (%).
    hue : str, optional
        Dimension with one line per value (e.g. the rate). Default: ``"class"``
        when there are several classes and ``cls`` is None.
    cls : str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
        One line per hue value and a grey vertical line (``gid="reference"``)
        at scale 1, the scenario's own targets.
    """
    where = "goodput_vs_slo_scale"
    if isinstance(data, Scenario):
        if scales is None:
            raise ValidationError(f"{where}: scales is required with a Scenario; valid: a "
                                  "sequence of factors > 0, e.g. [0.5, 1, 2]")
        data = slo_scale_sweep(data, scales, rates=rates)
    elif scales is not None or rates is not None:
        raise ValidationError(f"{where}: scales and rates apply to a Scenario; valid: a Dataset "
                              "from slo_scale_sweep alone, or a Scenario with scales")
    if metric not in ("goodput", "slo_attainment"):
        raise ValidationError(f"{where}: metric got {metric!r}; valid: 'goodput' or "
                              "'slo_attainment'")
    y = _var(data, metric, where)
    if "slo_scale" not in y.dims:
        raise ValidationError(f"{where}: {metric} has no 'slo_scale' dim (dims "
                              f"{list(map(str, y.dims))}); valid: a Dataset from slo_scale_sweep")
    _check_hue(data, hue, where)
    hue = _class_hue(y, cls, hue)
    y = _pick(y, where, (hue,) if hue else (), cls=cls)
    _only_dims(y, ["slo_scale"] + ([hue] if hue else []), where,
               "pass hue= for one of them or select one value first (ds.sel(...))")
    factor, unit = _display(y.attrs.get("units"), np.asarray(y))
    xs = np.asarray(data["slo_scale"], dtype=float)
    with _canvas(ax) as ax:
        for value, line in _lines_over(y, hue):
            ax.plot(xs, np.asarray(line.transpose("slo_scale"), dtype=float) * factor,
                    label=_fmt(value) if hue else metric)
        ax.axvline(1.0, color="0.5", lw=0.6, ls="--", gid="reference", label="_targets as given")
        ax.set_xlabel(_dim_label(data, "slo_scale"))
        ax.set_ylabel(_label(_describe(data, metric), unit))
        ax.set_ylim(bottom=0)
        if hue:
            ax.legend(title=_dim_label(data, hue))
    return ax


# --------------------------------------------------------------------------- heat map


def _cell_ticks(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Positions and labels of the cells' ticks: every value up to 10 cells, else about 8."""
    step = 1 if values.size <= 10 else int(np.ceil(values.size / 8))
    pos = np.arange(0, values.size, step)
    return pos, [_fmt(values[i]) for i in pos]


def utilization_heatmap(ds: xr.Dataset, x: str, y: str, *, pool: str | None = None,
                        var: str = "utilization", cls: Any = None, annotate: bool | None = None,
                        cmap: str = "viridis", ax: Axes | None = None) -> Axes:
    """A pool's utilisation (or another variable) over two swept dimensions.

    Parameters
    ----------
    ds : xarray.Dataset
        A sweep with dims ``x`` and ``y`` (and ``pool``).
    x, y : str
        The two dimensions; one cell per pair of values, in the Dataset's
        order (numbers and names alike), ticks labelled with the values.
    pool : str, optional
        The pool, when there are several.
    var : str
        Variable to draw (``"utilization"``, ``"kv_fraction"``, ``"batch_size"``,
        ``"power"``, or a per-class one such as ``"ttft"`` with ``cls``).
    cls : str, optional
    annotate : bool, optional
        Write each cell's value in it; default when the grid has at most 64 cells.
    cmap : str
    ax : Axes, optional

    Returns
    -------
    Axes
        A QuadMesh (``ax.collections[0]``) whose saturated cells are masked
        (drawn grey, marked "sat." when annotated), and a colour bar.
    """
    where = "utilization_heatmap"
    da = _var(ds, var, where)
    for arg, dim in (("x", x), ("y", y)):
        if dim not in da.dims:
            raise ValidationError(f"{where}: {arg} got {dim!r}; valid: a dim of {var}, one of "
                                  f"{[str(d) for d in da.dims if d not in ('pool', 'class')]}")
    if x == y:
        raise ValidationError(f"{where}: x and y are both {x!r}; valid: two different dims")
    da = _pick(da, where, cls=cls, pool=pool)
    _only_dims(da, [y, x], where, "select one value of each other dim first (ds.sel(...))")
    da = da.transpose(y, x)
    bad = np.asarray(_saturated(ds, da).transpose(y, x))
    values = np.where(bad, np.nan, np.asarray(da, dtype=float))
    factor, unit = _display(da.attrs.get("units"), values)
    values = values * factor
    xs = np.asarray(da[x].values) if x in da.coords else np.arange(da.sizes[x])
    ys = np.asarray(da[y].values) if y in da.coords else np.arange(da.sizes[y])
    colormap = mpl.colormaps[cmap].with_extremes(bad="0.85")
    limits = {"vmin": 0.0, "vmax": 100.0} if da.attrs.get("units") == "1" else {}
    title = _describe(ds, var)
    if "pool" in ds[var].dims:
        title += f" of pool {da['pool'].item()}"
    with _canvas(ax) as ax:
        mesh = ax.pcolormesh(np.arange(xs.size + 1) - 0.5, np.arange(ys.size + 1) - 0.5,
                             np.ma.masked_invalid(values), cmap=colormap, **limits)
        ax.figure.colorbar(mesh, ax=ax, label=_label(title, unit))
        if annotate or (annotate is None and values.size <= 64):
            _annotate(ax, mesh, values, bad)
        pos, labels = _cell_ticks(xs)
        ax.set_xticks(pos, labels, rotation=0 if len(labels) <= 5 else 45)
        ax.set_yticks(*_cell_ticks(ys))
        ax.set_xlabel(_dim_label(ds, x))
        ax.set_ylabel(_dim_label(ds, y))
        ax.grid(False)
    return ax


def _annotate(ax: Axes, mesh, values: np.ndarray, bad: np.ndarray) -> None:
    """Write each cell's value (or "sat.") in a colour readable on the cell."""
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            xc, yc = j, i
            if bad[i, j]:
                ax.text(xc, yc, "sat.", ha="center", va="center", fontsize=6, color="0.3")
                continue
            r, g, b, _ = mesh.cmap(mesh.norm(values[i, j]))
            light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
            ax.text(xc, yc, f"{values[i, j]:.3g}", ha="center", va="center", fontsize=6,
                    color="black" if light else "white")


# --------------------------------------------------------------------------- Pareto


def _feasible_points(ds: xr.Dataset, slo: bool) -> xr.DataArray:
    """The points :func:`hermes_qn.pareto_front` counts: unsaturated, valid, SLOs met if asked."""
    ok = ~ds["saturated"].fillna(True).astype(bool) if "saturated" in ds else xr.DataArray(True)
    if "config_error" in ds:
        ok = ok & (ds["config_error"] == "")
    if slo and "slo_met" in ds:
        met = ds["slo_met"]
        ok = ok & (met.all("class") if "class" in met.dims else met)
    return ok


def _direction(da: xr.DataArray, given: bool | None, where: str) -> bool:
    if given is not None:
        return bool(given)
    name = str(da.name).removesuffix("_q")
    if name not in DIRECTIONS:
        raise ValidationError(f"{where}: no known direction for {da.name!r}; valid: maximize=("
                              "True|False, True|False) for (x, y)")
    return DIRECTIONS[name]


def pareto(ds: xr.Dataset, x: str = "throughput", y: str = "ttft", *,
           maximize: tuple[bool | None, bool | None] = (None, None), slo: bool = True,
           hue: str | None = None, cls: Any = None, pool: str | None = None,
           quantile: float | None = None, ax: Axes | None = None) -> Axes:
    """Every configuration of a sweep as a point, and the Pareto front of the feasible ones.

    The front is :func:`hermes_qn.pareto_front` of the two objectives (after
    ``cls``/``pool``/``quantile`` select one class, pool or quantile).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`hermes_qn.sweep` (or :func:`hermes_qn.evaluate` over
        rates); every swept dimension is a configuration axis, each point one
        combination.
    x, y : str
        Variables (``"throughput"``, ``"ttft"``, ``"throughput_per_device"``,
        ``"tokens_per_joule"``, ``"cost_per_million_tokens"``, ...);
        ``"<metric>_q"`` needs ``quantile``.
    maximize : pair of bool or None
        Whether larger is better, per axis; None takes the known direction
        (:data:`hermes_qn.sweep.DIRECTIONS`: throughputs up, latencies, cost
        and energy per token down).
    slo : bool
        Feasible means meeting every SLO too; saturated points and invalid
        configurations are never feasible.
    hue : str, optional
        A swept dim whose values colour the feasible points.
    cls, pool, quantile : optional
        Select one class, pool or quantile for variables that have them.
    ax : Axes, optional

    Returns
    -------
    Axes
        Infeasible points with finite values in grey (label "infeasible"),
        feasible points (one collection per hue value), the front as a line
        through its points sorted along ``x`` (``gid="front"``).
    """
    where = "pareto"
    xa = _pick(_var(ds, x, where), where, cls=cls, pool=pool, quantile=quantile)
    ya = _pick(_var(ds, y, where), where, cls=cls, pool=pool, quantile=quantile)
    if not (isinstance(maximize, (tuple, list)) and len(maximize) == 2):
        raise ValidationError(f"{where}: maximize got {maximize!r}; valid: a pair of True, "
                              "False or None")
    maximize = (_direction(xa, maximize[0], where), _direction(ya, maximize[1], where))
    _check_hue(ds, hue, where)
    xa, ya = xr.broadcast(xa, ya)
    dims = list(xa.dims)
    if not dims:
        raise ValidationError(f"{where}: {x} and {y} have no swept dims; valid: a sweep "
                              "(hermes_qn.sweep or evaluate over rates)")
    if hue is not None and hue not in dims:
        raise ValidationError(f"{where}: hue got {hue!r}; valid: one of the swept dims {dims}")
    front = pareto_front(ds, xa, ya, maximize=maximize, slo=slo)
    at = {d: front[d] for d in dims}
    fx, fy = np.asarray(xa.sel(at), dtype=float), np.asarray(ya.sel(at), dtype=float)
    ok = _feasible_points(ds, slo).broadcast_like(xa).transpose(*dims)
    ok = np.asarray(ok & np.isfinite(xa) & np.isfinite(ya)).ravel()
    xf = np.asarray(xa.transpose(*dims), dtype=float).ravel()
    yf = np.asarray(ya.transpose(*dims), dtype=float).ravel()
    scale_x, ux = _display(xa.attrs.get("units"), xf[ok])
    scale_y, uy = _display(ya.attrs.get("units"), yf[ok])
    with _canvas(ax) as ax:
        shown = ~ok & np.isfinite(xf) & np.isfinite(yf)
        if shown.any():
            ax.scatter(xf[shown] * scale_x, yf[shown] * scale_y, s=6, marker="x", color="0.7",
                       linewidths=0.6, label="infeasible")
        groups = [(None, ok)] if hue is None else [
            (v, ok & np.asarray((xa[hue] == v).broadcast_like(xa).transpose(*dims)).ravel())
            for v in xa[hue].values]
        for i, (value, sel) in enumerate(groups):
            ax.scatter(xf[sel] * scale_x, yf[sel] * scale_y, s=10, color=COLORS[i % len(COLORS)],
                       label=_fmt(value) if hue else "feasible", zorder=2)
        ax.plot(fx * scale_x, fy * scale_y, color="black", lw=0.9, marker="o", mfc="none", ms=5,
                gid="front", label="Pareto front", zorder=3)
        ax.set_xlabel(_label(_describe(ds, x, quantile if x.endswith("_q") else None), ux))
        ax.set_ylabel(_label(_describe(ds, y, quantile if y.endswith("_q") else None), uy))
        ax.legend(title=_dim_label(ds, hue) if hue else None)
    return ax


# --------------------------------------------------------------------------- closed form vs sampler


def versus_sampler(closed: xr.Dataset, sampled: xr.Dataset, metric: str = "ttft", *,
                   x: str | None = None, cls: Any = None, quantile: float | None = None,
                   ax: Axes | None = None) -> Axes:
    """Closed form as lines, the sampler as points with its confidence half-widths as error bars.

    Parameters
    ----------
    closed : xarray.Dataset
        :func:`hermes_qn.evaluate` over a rate dimension with coordinates.
    sampled : xarray.Dataset
        :func:`hermes_qn.simulate` runs of the scenario concatenated along the
        same dimension (``xr.concat(runs, dim=xr.DataArray(rates, dims="rate"))``),
        with ``<metric>`` and ``<metric>_halfwidth`` (95% Student t over
        replications in the LLM-level sampler).
    metric : {"ttft", "tpot", "e2e"}
    x : str, optional
        The shared dimension; default: the one dimension of the closed form's
        metric besides ``class`` (and ``quantile``).
    cls : str, optional
        One class; default: every class, one colour each.
    quantile : float, optional
        Compare that quantile (``<metric>_q``) instead of the mean.
    ax : Axes, optional

    Returns
    -------
    Axes
        Per class a closed-form line (saturated points cut, label "<class>,
        closed form"; a dotted line, ``gid="capacity"``, at its capacity when
        some point is saturated) and an error-bar container (label "<class>,
        sampler (95% CI)").
    """
    where = "versus_sampler"
    ya, text = _metric(closed, metric, quantile, where)
    yb, _ = _metric(sampled, metric, quantile, where)
    half = _var(sampled, f"{yb.name}_halfwidth", where)
    if x is None:
        rest = [d for d in ya.dims if d not in ("class", "quantile")]
        if len(rest) != 1:
            raise ValidationError(f"{where}: cannot tell the shared dim from {ya.name} dims "
                                  f"{list(map(str, ya.dims))}; valid: x= one of {rest}")
        x = rest[0]
    for name, ds in (("closed", closed), ("sampled", sampled)):
        if x not in ds.dims or x not in ds.coords:
            raise ValidationError(f"{where}: {name} has no dim {x!r} with coordinates (dims "
                                  f"{sorted(map(str, ds.dims))}); valid: both Datasets over the "
                                  f"same coordinate, e.g. xr.DataArray(rates, dims={x!r}, "
                                  f"coords={{{x!r}: rates}})")
    classes = [cls] if cls is not None else ([None] if "class" not in ya.dims
                                              else ya["class"].values.tolist())
    bad = _saturated(closed, ya)
    capacity = closed.get("capacity")
    factor, unit = _display(ya.attrs.get("units", "s"),
                            np.concatenate([np.asarray(ya.where(~bad)).ravel(),
                                            np.asarray(yb).ravel()]))
    with _canvas(ax) as ax:
        for i, c in enumerate(classes):
            a = _pick(ya, where, cls=c, quantile=quantile)
            cut = np.asarray(_pick(bad, where, cls=c, quantile=quantile).transpose(x))
            b = _pick(yb, where, cls=c, quantile=quantile)
            h = _pick(half, where, cls=c, quantile=quantile)
            _only_dims(a, [x], where, "select one value of each other dim first (ds.sel(...))")
            _only_dims(b, [x], where, "select one value of each other dim first (ds.sel(...))")
            color = COLORS[i % len(COLORS)]
            tag = f"{c}, " if c is not None and len(classes) > 1 else ""
            ax.plot(np.asarray(closed[x], dtype=float),
                    np.where(cut, np.nan, np.asarray(a.transpose(x), dtype=float)) * factor,
                    color=color, marker="none", label=f"{tag}closed form")
            if cut.any() and capacity is not None:
                cap = np.asarray(_pick(capacity, where, cls=c).broadcast_like(a).transpose(x))
                ax.axvline(float(np.nanmin(cap[cut])), color=color, ls=":", lw=0.8,
                           gid="capacity", label=f"{tag}capacity (closed form)")
            ax.errorbar(np.asarray(sampled[x], dtype=float),
                        np.asarray(b.transpose(x), dtype=float) * factor,
                        yerr=np.asarray(h.broadcast_like(b).transpose(x), dtype=float) * factor,
                        color=color, marker="o", ls="none", ms=3.5, label=f"{tag}sampler (95% CI)")
        ax.set_xlabel(_dim_label(closed, x))
        ax.set_ylabel(_label(text, unit))
        ax.set_ylim(bottom=0)
        ax.legend()
    return ax
