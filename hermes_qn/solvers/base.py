"""What every solver kernel returns, and the small helpers they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError


#: Result variable name -> (units, long_name), shared by the solvers' and the sampler's Datasets.
VARIABLE_ATTRS: dict[str, tuple[str, str]] = {
    "throughput": ("1/s", "throughput"),
    "response_time": ("s", "response time (excluding think time)"),
    "residence_time": ("s", "residence time"),
    "queue_length": ("1", "mean number present"),
    "utilization": ("1", "utilization"),
    "station_utilization": ("1", "station utilization (all classes)"),
    "saturated": ("1", "saturated"),
    "saturated_station": ("", "saturated station"),
}


@dataclass
class Solution:
    """Per-point solver output as numpy arrays; :func:`hermes_qn.solve` wraps it in a Dataset.

    Shapes use ``S`` for the sweep shape, ``M`` stations, ``K`` classes.

    Attributes
    ----------
    throughput : ndarray, shape (*S, K)
        Requests completed per second.
    residence_time : ndarray, shape (*S, M, K)
        Seconds a request of the class spends at the station (all visits,
        queueing included). ``inf`` where the point is saturated.
    queue_length : ndarray, shape (*S, M, K)
        Mean number of requests of the class at the station (waiting or in service).
    utilization : ndarray, shape (*S, M, K)
        Share of the station's asymptotic capacity used by the class:
        ``throughput * demand / capacity`` (``capacity`` is 1 for a single
        server, ``c`` for ``c`` servers, the last rate multiplier for a
        load-dependent station). For a delay station it is
        ``throughput * demand``, the mean number of busy servers.
    method : str
        Which algorithm produced the numbers.
    iterations : int
        Iterations of the fixed-point loop (0 for direct methods).
    residual : float
        Largest relative change of the queue lengths in the last iteration
        (0 for direct methods).
    converged : bool
        Whether the residual fell under the tolerance.
    marginal : ndarray, shape (*S, M, N + 1), optional
        Exact solvers only: probability of ``n`` jobs at each load-dependent
        station (``N`` the largest total population; NaN rows for stations
        whose marginal was not needed).
    """

    throughput: np.ndarray
    residence_time: np.ndarray
    queue_length: np.ndarray
    utilization: np.ndarray
    method: str
    iterations: int = 0
    residual: float = 0.0
    converged: bool = True
    marginal: np.ndarray | None = None


def check_closed_classes(arrays, solver: str, open_hint: str) -> None:
    """Raise :class:`ValidationError` unless every class is closed, populated and able to cycle.

    Parameters
    ----------
    arrays : NetworkArrays
    solver : str
        Name quoted at the start of the message.
    open_hint : str
        What to use instead for a network with open classes.
    """
    for k, name in enumerate(arrays.classes):
        if arrays.is_open[k]:
            raise ValidationError(f"{solver}: class {name!r} is open; valid: a network whose "
                                  f"classes are all hq.Closed ({open_hint})")
        population = arrays.population[..., k]
        if np.any(population < 1):
            raise ValidationError(f"{solver}: class {name!r} has population "
                                  f"{int(population.min())}; valid: integers >= 1")
        cycle = arrays.think_time[..., k] + arrays.demand[..., k].sum(axis=-1)
        if np.any(cycle <= 0):
            raise ValidationError(f"{solver}: class {name!r} has zero demand at every station "
                                  f"and zero think time, so its throughput is infinite; valid: a "
                                  f"positive demand somewhere or a positive think time")


def station_utilization(throughput: np.ndarray, demand: np.ndarray,
                        capacity: np.ndarray) -> np.ndarray:
    """Utilisation law ``U[m, k] = X[k] * D[m, k] / capacity[m]`` (delays: ``X * D``).

    Parameters
    ----------
    throughput : ndarray, shape (*S, K)
        Requests per second.
    demand : ndarray, shape (*S, M, K)
        Seconds per request.
    capacity : ndarray, shape (M,)
        Asymptotic speed relative to one job; ``inf`` marks a delay station.
    """
    scale = np.where(np.isinf(capacity), 1.0, capacity)
    return throughput[..., None, :] * demand / scale[:, None]
