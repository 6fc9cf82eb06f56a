"""Plain-text tables of solver results, for the terminal."""

from __future__ import annotations

import numpy as np
import xarray as xr


def _fmt(value: float) -> str:
    if np.isinf(value):
        return "inf"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def format_result(result: xr.Dataset) -> str:
    """Per-class and per-station tables of a single-point :func:`hermes_qn.solve` result."""
    if result.saturated.ndim:
        raise ValueError(f"format_result: the result has sweep dimensions "
                         f"{list(result.saturated.dims)}; select one point first (.isel or .sel)")
    classes = [str(c) for c in result["class"].values]
    stations = [str(s) for s in result["station"].values]
    out = []
    out.append(_table(["class", "throughput [1/s]", "response time [s]"],
                      [[c, _fmt(float(result.throughput.sel({"class": c}))),
                        _fmt(float(result.response_time.sel({"class": c})))] for c in classes]))
    rows = []
    for s in stations:
        row = [s, _fmt(float(result.station_utilization.sel(station=s)))]
        for c in classes:
            point = {"station": s, "class": c}
            row += [_fmt(float(result.residence_time.sel(point))),
                    _fmt(float(result.queue_length.sel(point)))]
        rows.append(row)
    header = ["station", "utilization"]
    for c in classes:
        header += [f"R[{c}] [s]", f"Q[{c}]"]
    out.append(_table(header, rows))
    footer = f"method: {result.attrs['method']}"
    if result.attrs.get("iterations"):
        footer += f" ({result.attrs['iterations']} iterations, residual {result.attrs['residual']:.2g})"
    if bool(result.saturated):
        footer += f"\nSATURATED: station {str(result.saturated_station.values)!r}"
    if result.attrs.get("notes"):
        footer += f"\nnotes: {result.attrs['notes']}"
    out.append(footer)
    return "\n\n".join(out)
