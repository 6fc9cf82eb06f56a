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


def format_evaluation(result: xr.Dataset) -> str:
    """Per-class, per-stage and per-pool tables of a single-point :func:`hermes_qn.evaluate` result."""
    if result.saturated.ndim:
        raise ValueError(f"format_evaluation: the result has sweep dimensions "
                         f"{list(result.saturated.dims)}; select one point first (.isel or .sel)")
    r = result
    classes = [str(c) for c in r["class"].values]
    q = list(r["quantile"].values)
    i90 = q.index(0.9) if 0.9 in q else len(q) - 1
    header = ["class", "rate [1/s]", "load", "ttft [s]", "ttft p90", "tpot [s]", "tpot p90",
              "e2e [s]", "e2e p90", "tokens/s", "goodput [1/s]", "SLO met"]
    rows = []
    for c in classes:
        x = r.sel({"class": c})
        rows.append([c, _fmt(float(x.throughput)), _fmt(float(x.load_fraction)),
                     _fmt(float(x.ttft)), _fmt(float(x.ttft_q[i90])), _fmt(float(x.tpot)),
                     _fmt(float(x.tpot_q[i90])), _fmt(float(x.e2e)), _fmt(float(x.e2e_q[i90])),
                     _fmt(float(x.token_throughput)), _fmt(float(x.goodput)),
                     "yes" if bool(x.slo_met) else "no"])
    parts = [f"scenario: {r.attrs.get('scenario', '')}", _table(header, rows), ""]
    stages = [str(s) for s in r["stage"].values]
    rows = [[s] + [_fmt(float(r.stage_time.sel({"class": c, "stage": s}))) for c in classes]
            for s in stages]
    rows.append(["total (e2e)"] + [_fmt(float(r.e2e.sel({"class": c}))) for c in classes])
    parts += [_table(["stage time [s]"] + classes, rows), ""]
    header = ["pool", "utilization", "batch", "max batch", "KV in use [GB/device]", "power [W]"]
    rows = [[str(p), _fmt(float(r.utilization.sel(pool=p))), _fmt(float(r.batch_size.sel(pool=p))),
             _fmt(float(r.max_batch.sel(pool=p))),
             _fmt(float(r.kv_memory.sel(pool=p)) / 1e9), _fmt(float(r.power.sel(pool=p)))]
            for p in r["pool"].values]
    parts += [_table(header, rows), ""]
    parts.append(f"energy per output token: {_fmt(float(r.energy_per_token))} J;  cost per "
                 f"million output tokens: {_fmt(float(r.cost_per_million_tokens))} USD")
    capacity = ", ".join(f"{c} {_fmt(float(r.capacity.sel({'class': c})))}/s "
                         f"({r.capacity_station.sel({'class': c}).item()})" for c in classes)
    parts.append(f"capacity (largest stable rate, bottleneck): {capacity}")
    if bool(r.saturated):
        parts.append(f"SATURATED: {r.saturated_station.item()}")
    if r.attrs.get("notes"):
        parts.append(f"notes: {r.attrs['notes']}")
    return "\n".join(parts)
