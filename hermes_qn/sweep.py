"""Parameter sweeps of a scenario: one xarray Dataset with a dimension per swept field.

Arrival rates of open classes are vectorised through :func:`hermes_qn.evaluate`
(one call for all rates); every other field (batch cap, device, TP degree,
batching strategy, ...) is categorical here and loops, one evaluate per value.
Saturated points are ``inf`` and flagged by ``saturated``, never dropped.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .errors import ValidationError
from .evaluate import evaluate
from .scenario import Scenario

__all__ = ["sweep_fields"]


def _dim(path: str) -> str:
    return path.replace(".", "_")


def sweep_fields(scenario: Scenario, fields: Mapping[str, Sequence[Any]], **options: Any
                 ) -> xr.Dataset:
    """Evaluate ``scenario`` over the Cartesian product of field values.

    Parameters
    ----------
    scenario : Scenario
    fields : mapping of path to values
        Paths as in :meth:`Scenario.with_value` (``"classes.chat.rate"``,
        ``"pools.gpu.batch_cap"``); each becomes a dimension named with dots
        replaced by underscores.
    **options
        Passed to :func:`hermes_qn.evaluate`.
    """
    if not fields:
        raise ValidationError("sweep: no fields to sweep; valid: at least one path=values")
    rates: dict[str, xr.DataArray] = {}
    others: dict[str, list[Any]] = {}
    for path, values in fields.items():
        values = list(values)
        if not values:
            raise ValidationError(f"sweep {path}: no values; valid: one or more")
        parts = path.split(".")
        if len(parts) == 3 and parts[0] == "classes" and parts[2] == "rate":
            cls = scenario.request_class(parts[1]) if not parts[1].isdigit() \
                else scenario.classes[int(parts[1])]
            rates[cls.name] = xr.DataArray(np.asarray(values, dtype=float), dims=_dim(path),
                                           coords={_dim(path): np.asarray(values, dtype=float)})
        else:
            scenario.with_value(path, values[0])  # fail early on a bad path or value
            others[path] = values
    if not others:
        return evaluate(scenario, rates=rates, **options)
    results = []
    for combo in itertools.product(*others.values()):
        sc = scenario
        for path, value in zip(others, combo):
            sc = sc.with_value(path, value)
        results.append(evaluate(sc, rates=rates, **options))
    names = [_dim(p) for p in others]
    nested: list = results
    for size in reversed([len(v) for v in others.values()][1:]):
        nested = [nested[i:i + size] for i in range(0, len(nested), size)]
    combined = xr.combine_nested(nested, concat_dim=names, combine_attrs="drop_conflicts", compat="no_conflicts",
                                 coords="different", join="outer", fill_value=np.nan)
    for name, values in zip(names, others.values()):
        combined = combined.assign_coords({name: [str(v) if not isinstance(v, (int, float))
                                                  else v for v in values]})
    return combined
