"""Questions asked of evaluate: how sensitive is a metric to an input, and how much load meets the SLOs.

- :func:`sensitivity` -- elasticities ``d ln(metric) / d ln(input)`` by central
  finite differences of :func:`hermes_qn.evaluate` over scenario fields.
- :func:`slo_capacity` -- the largest arrival rate of each open class whose SLO
  percentiles are still within target (others fixed), by bisection on the
  closed form (each step one vectorised evaluate).

Near saturation latency is hypersensitive to capacity; the elasticity of TTFT
to a service-time input grows like ``1 / (1 - load)``, which is why results carry
``load_fraction``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from .errors import ValidationError
from .evaluate import evaluate
from .scenario import Scenario

__all__ = ["sensitivity", "slo_capacity"]


def sensitivity(scenario: Scenario, inputs: Sequence[str],
                metrics: Sequence[str] = ("ttft", "tpot", "e2e"), *, rel_step: float = 1e-3
                ) -> xr.Dataset:
    """Elasticities of per-class metrics to numeric scenario fields.

    Parameters
    ----------
    scenario : Scenario
    inputs : sequence of str
        Field paths as in :meth:`Scenario.with_value`, e.g. ``"classes.chat.rate"``,
        ``"pools.gpu.memory_utilization"``. Integer fields are stepped by at
        least 1 (a one-sided difference where needed).
    metrics : sequence of str
        Per-class variables of :func:`evaluate`.
    rel_step : float
        Relative step of the central difference.

    Returns
    -------
    xarray.Dataset
        One variable per metric with dims ``(input, class)``: the relative change
        of the metric per relative change of the input (dimensionless); inf
        where the step crosses saturation.
    """
    base = evaluate(scenario)
    out = {m: np.zeros((len(inputs), base.sizes["class"])) for m in metrics}
    for i, path in enumerate(inputs):
        value = scenario.value(path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"sensitivity input {path!r}: value {value!r} is not a number; "
                                  "valid: a numeric field such as classes.<name>.rate")
        x, integer = float(value), isinstance(value, int)
        h = max(abs(x) * rel_step, 1.0 if integer else 1e-12)
        lo_x = x - h if (x - h > 0 or x == 0) else x
        up = evaluate(scenario.with_value(path, int(x + h) if integer else x + h))
        lo = evaluate(scenario.with_value(path, int(lo_x) if integer else lo_x))
        for m in metrics:
            d = (up[m].values - lo[m].values) / ((x + h) - lo_x)
            out[m][i] = d * x / base[m].values
    return xr.Dataset({m: (("input", "class"), v, {"units": "1",
                                                    "long_name": f"elasticity of {m}"})
                       for m, v in out.items()},
                      coords={"input": list(inputs), "class": base["class"].values})


def slo_capacity(scenario: Scenario, *, iterations: int = 40) -> xr.DataArray:
    """Largest arrival rate (requests/s) of each open class that still meets its SLOs.

    Other classes keep their rates. A class with no SLO gets its stability
    capacity; a class whose SLO is missed even at a vanishing rate gets 0.
    """
    base = evaluate(scenario)
    out = []
    for c in scenario.classes:
        if not c.is_open:
            out.append(np.nan)
            continue
        cap = float(base.capacity.sel({"class": c.name}))
        lo, hi = 0.0, cap
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            ok = bool(evaluate(scenario, rates={c.name: mid}).slo_met.sel({"class": c.name}))
            lo, hi = (mid, hi) if ok else (lo, mid)
        out.append(lo)
    return xr.DataArray(np.asarray(out), dims="class", coords={"class": base["class"].values},
                        name="slo_capacity", attrs={"units": "requests/s"})
