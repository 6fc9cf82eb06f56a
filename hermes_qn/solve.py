"""``solve``: pick a solver for a network and return its answer as an xarray Dataset."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import ConvergenceError, ValidationError
from .network import LOAD_DEPENDENT, Network, NetworkArrays
from .solvers.amva import linearizer, schweitzer
from .solvers.base import VARIABLE_ATTRS, Solution
from .solvers.bounds import closed_bounds
from .solvers.mixed import solve_mixed
from .solvers.mva import exact_mva, state_space_size
from .solvers.open import solve_open

METHODS = ("auto", "exact", "amva", "linearizer")

#: ``method="auto"`` runs exact MVA while (sweep points) x (population vectors) x
#: 2**(load-dependent stations) stays at or under this many: each population
#: vector costs O(stations x classes), and the stable load-dependent recursion
#: solves one complement network per subset of load-dependent stations.
EXACT_WORK_LIMIT = 200_000
#: ``method="auto"`` prefers Linearizer (about K+1 times the work of Schweitzer's
#: AMVA, and several times more accurate) up to this many closed classes.
LINEARIZER_CLASS_LIMIT = 8



def solve(network: Network, method: str = "auto", *, tol: float = 1e-10,
          max_iter: int = 10_000) -> xr.Dataset:
    """Mean performance of every class at every station of a queueing network.

    Parameters
    ----------
    network : Network
        The network; array-valued parameters become sweep dimensions of the result.
    method : {"auto", "exact", "amva", "linearizer"}
        Solver for the closed classes. Open classes are always solved exactly
        in product form. ``"exact"``: exact MVA (cost grows with the product of
        the class populations). ``"amva"``: Schweitzer-Bard approximate MVA.
        ``"linearizer"``: Chandy-Neuse Linearizer. ``"auto"``: exact while
        affordable (:data:`EXACT_WORK_LIMIT`), else Linearizer for up to
        :data:`LINEARIZER_CLASS_LIMIT` classes, else AMVA. The choice is in
        the result's ``method`` attribute.
    tol : float
        Convergence tolerance of the iterative methods (largest relative
        change of a queue length between iterations).
    max_iter : int
        Iteration limit of the iterative methods.

    Returns
    -------
    xarray.Dataset
        Variables ``throughput`` (class) in requests/s, ``response_time``
        (class) in seconds excluding think time, ``residence_time``,
        ``queue_length`` and ``utilization`` (station, class), ``station_utilization``
        (station) the total utilisation, ``saturated`` and
        ``saturated_station`` (the most loaded station whose utilisation by
        open classes is >= 1, or ``""``); each over the sweep dimensions too.
        Attributes: ``method``, ``iterations``, ``residual``, ``converged``,
        ``product_form`` and ``notes`` (what is approximate and why).

    Raises
    ------
    ValidationError
        Unknown method or bad tolerance.
    ConvergenceError
        An iterative method did not reach ``tol`` within ``max_iter``.

    Notes
    -----
    A saturated point is an answer, not an error: its response times are
    ``inf`` and ``saturated_station`` names the station. Results are exact
    for product-form networks solved by ``"exact"``; FCFS stations whose
    classes have different demands are not product form, and AMVA/Linearizer
    are approximations (see ``validation/`` for measured errors).
    """
    if method not in METHODS:
        raise ValidationError(f"solve: method {method!r} is unknown; valid: {METHODS}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValidationError(f"solve: tol={tol!r}; valid: a positive finite number")
    if int(max_iter) < 1:
        raise ValidationError(f"solve: max_iter={max_iter!r}; valid: an integer >= 1")
    arrays = network.arrays()
    notes = _product_form_notes(arrays)
    if network.is_open:
        solution, open_load = solve_open(arrays)
    else:
        closed_solver, chosen = _closed_solver(arrays, method, tol, int(max_iter))
        if network.is_closed:
            solution = closed_solver(arrays)
            open_load = np.zeros(solution.utilization.shape[:-1])
        else:
            solution, open_load = solve_mixed(arrays, closed_solver)
            if (arrays.station_kind == LOAD_DEPENDENT).any() and chosen != "exact":
                notes.append("mixed network with load-dependent stations: open-class residence "
                             "there is approximate without exact MVA (see hermes_qn.solvers.mixed)")
        if chosen != "exact":
            notes.append(f"closed classes solved by {chosen}, an approximation")
        if not solution.converged:
            raise ConvergenceError(
                f"solve: {solution.method} did not converge in {solution.iterations} iterations "
                f"(residual {solution.residual:.3g} > tol {tol:.3g}); raise max_iter or use "
                f"method='exact'", iterations=solution.iterations, residual=solution.residual)
    return _to_dataset(arrays, solution, open_load, notes)


def bounds(network: Network, kind: str = "asymptotic") -> xr.Dataset:
    """Bounds on the throughput and response time of every class of a closed network.

    Parameters
    ----------
    network : Network
        All classes closed; array-valued parameters become dimensions.
    kind : {"asymptotic", "balanced"}
        Asymptotic bounds (any station) or balanced-job bounds (single-server
        queues and delays only, tighter). See :mod:`hermes_qn.solvers.bounds`.

    Returns
    -------
    xarray.Dataset
        ``throughput_lower``, ``throughput_upper`` (class) in requests/s and
        ``response_time_lower``, ``response_time_upper`` (class) in seconds,
        excluding think time. Lower throughput bounds of classes that share a
        station with another class are ``nan`` (none is cheap and valid).
    """
    arrays = network.arrays()
    values = closed_bounds(arrays, kind)
    dims = (*arrays.sweep_dims, "class")
    return xr.Dataset(
        {name: xr.Variable(dims, v, attrs={"units": "1/s" if name.startswith("throughput") else "s",
                                           "long_name": name.replace("_", " ")})
         for name, v in values.items()},
        coords={"class": list(arrays.classes), **arrays.sweep_coords},
        attrs={"kind": kind},
    )


def _closed_solver(arrays: NetworkArrays, method: str, tol: float, max_iter: int):
    """The closed-network kernel to use, and its short name."""
    if method == "auto":
        closed = ~arrays.is_open
        points = int(np.prod(arrays.sweep_shape, dtype=np.int64))
        n_load_dependent = int((arrays.station_kind == LOAD_DEPENDENT).sum())
        work = points * state_space_size(arrays.population[..., closed]) * 2**n_load_dependent
        if work <= EXACT_WORK_LIMIT:
            method = "exact"
        elif closed.sum() <= LINEARIZER_CLASS_LIMIT:
            method = "linearizer"
        else:
            method = "amva"
    if method == "exact":
        return exact_mva, method
    if method == "linearizer":
        return (lambda a: linearizer(a, tol=tol, max_iter=max_iter)), method
    return (lambda a: schweitzer(a, tol=tol, max_iter=max_iter)), method


def _product_form_notes(arrays: NetworkArrays) -> list[str]:
    """Say which FCFS stations break product form (class-dependent service times)."""
    notes = []
    for m in np.flatnonzero(arrays.fcfs):
        d = arrays.demand[..., m, :]
        used = d > 0
        spread = np.where(used, d, np.nan)
        with np.errstate(invalid="ignore"):
            differs = (np.nanmax(spread, axis=-1) - np.nanmin(spread, axis=-1)) > \
                1e-12 * np.nanmax(spread, axis=-1)
        if np.any(differs & (used.sum(axis=-1) > 1)):
            notes.append(f"station {arrays.stations[m]!r} is FCFS with class-dependent demands: "
                         f"not product form, its answer is an approximation")
    return notes


def _to_dataset(arrays: NetworkArrays, solution: Solution, open_load: np.ndarray,
                notes: list[str]) -> xr.Dataset:
    """Wrap a kernel's arrays; ``open_load`` (*S, M) is the open classes' utilisation,
    which alone can saturate a station."""
    sweep = arrays.sweep_dims
    per_class = (*sweep, "class")
    per_station = (*sweep, "station")
    per_pair = (*sweep, "station", "class")
    saturated_at = open_load >= 1.0
    saturated = saturated_at.any(axis=-1)
    names = np.array(arrays.stations, dtype=object)
    worst = np.argmax(np.where(saturated_at, open_load, -np.inf), axis=-1)
    saturated_station = np.where(saturated, names[worst], "").astype(str)
    response = solution.residence_time.sum(axis=-2)
    data = {
        "throughput": (per_class, solution.throughput),
        "response_time": (per_class, response),
        "residence_time": (per_pair, solution.residence_time),
        "queue_length": (per_pair, solution.queue_length),
        "utilization": (per_pair, solution.utilization),
        "station_utilization": (per_station, solution.utilization.sum(axis=-1)),
        "saturated": (sweep, saturated),
        "saturated_station": (sweep, saturated_station),
    }
    ds = xr.Dataset(
        {name: xr.Variable(dims, value, attrs={"units": VARIABLE_ATTRS[name][0],
                                               "long_name": VARIABLE_ATTRS[name][1]})
         for name, (dims, value) in data.items()},
        coords={"station": list(arrays.stations), "class": list(arrays.classes),
                **arrays.sweep_coords},
        attrs={"method": solution.method, "iterations": solution.iterations,
               "residual": solution.residual, "converged": int(solution.converged),
               "product_form": int(not any("product form" in n for n in notes)),
               "notes": "; ".join(notes)},
    )
    return ds
