"""Mixed networks: open and closed classes together (product form).

The open classes take a fixed share of every station; the closed classes are
solved as a closed network in which each station is slowed by that share, and
the open classes' residence times then follow from the closed classes' queue
lengths (Lazowska et al. 1984, section 7.4; Bolch et al. 2006, section 8.3).

* Single-server queues: demands of closed classes are inflated to
  ``D / (1 - U_open)``; open residence ``D (1 + Q_closed) / (1 - U_open)``.
  Exact for product-form networks.
* Delays: untouched by the open classes; open residence ``D``. Exact.
* Load-dependent and multi-server stations: summing the open customers out of
  the product form gives the closed classes an effective rate multiplier
  ``a_eff(c) = h(c-1) / h(c)`` with ``h(c) = sum_j C(c+j, j) rho^j / A(c+j)``
  (``rho`` the open offered load, ``A(i) = a(1)...a(i)``); the closed part
  stays exact. The open classes' mean number there is
  ``sum_c p(c) E[j | c]`` over the closed classes' marginal ``p(c)`` at the
  station, exact when the closed solver returns marginals (exact MVA). With an
  approximate closed solver ``E[j | c]`` is taken at the closed mean queue
  length (interpolated between neighbouring integers), an approximation whose
  error is 4-6% on the cases of tests/test_solve.py.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
from scipy.special import betainc, gammaln

from ..network import DELAY, LOAD_DEPENDENT, QUEUE, NetworkArrays
from .base import Solution, station_utilization

ClosedSolver = Callable[[NetworkArrays], Solution]


def _log_h(c: np.ndarray, rho: float, multipliers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log h(c)`` and ``E[j | c]`` for open customers at a load-dependent station.

    Parameters
    ----------
    c : ndarray of int
        Numbers of closed customers present, >= 0.
    rho : float
        Open offered load in one-job speed units; below ``multipliers[-1]``.
    multipliers : ndarray, shape (L,)
        ``a(1..L)``, last value holding beyond.
    """
    L = len(multipliers)
    log_A = np.concatenate(([0.0], np.cumsum(np.log(multipliers))))  # A(0..L)
    a_last = multipliers[-1]
    y = rho / a_last
    c = np.asarray(c)
    if rho <= 0:  # no open customers: h(c) = 1 / A(c), with A(c) = A(L) a^(c-L) beyond the table
        log_a_c = np.where(c <= L, log_A[np.minimum(c, L)], log_A[L] + (c - L) * np.log(a_last))
        return -log_a_c, np.zeros(c.shape)
    log_h = np.empty(c.shape)
    mean_j = np.empty(c.shape)
    for idx, ci in np.ndenumerate(c):
        j_head = np.arange(max(L - ci, 0))  # j with c + j < L
        log_binom = gammaln(ci + j_head + 1) - gammaln(j_head + 1) - gammaln(ci + 1)
        log_head = log_binom + j_head * np.log(rho) - log_A[ci + j_head]
        j0 = len(j_head)
        # Tail j >= j0: C(c+j, j) rho^j / (A(L) a^(c+j-L)) = (a^(L-c)/A(L)) C(c+j, j) y^j.
        # sum_{j>=j0} C(c+j, j) y^j = I_y(j0, c+1) / (1-y)^(c+1)  (negative-binomial tail),
        # and its j-weighted sum is (c+1) y / (1-y)^(c+2) * I_y(j0-1, c+2) (j0 >= 1) or the full mean.
        base = (L - ci) * np.log(a_last) - log_A[L]
        tail_prob = betainc(j0, ci + 1, y) if j0 > 0 else 1.0
        log_tail = base + np.log(tail_prob) - (ci + 1) * np.log1p(-y) if tail_prob > 0 else -np.inf
        tail_jprob = betainc(j0 - 1, ci + 2, y) if j0 > 1 else 1.0
        tail_j = (ci + 1) * y / (1 - y) * tail_jprob  # ratio of j-weighted tail to full NB sum
        parts = np.append(log_head, log_tail)
        shift = parts.max()
        weights = np.exp(parts - shift)
        total = weights.sum()
        log_h[idx] = shift + np.log(total)
        if tail_prob > 0:
            # weights[-1] * (tail j-sum / tail sum); tail j-sum / tail sum = tail_j / tail_prob
            mean_tail = weights[-1] * tail_j / tail_prob
        else:
            mean_tail = 0.0
        mean_j[idx] = ((weights[:-1] * j_head).sum() + mean_tail) / total
    return log_h, mean_j


def solve_mixed(arrays: NetworkArrays, closed_solver: ClosedSolver) -> tuple[Solution, np.ndarray]:
    """Solve a mixed network with ``closed_solver`` for its closed part.

    Parameters
    ----------
    arrays : NetworkArrays
        A network with at least one open and one closed class.
    closed_solver : callable
        ``NetworkArrays -> Solution`` for all-closed networks (exact MVA, AMVA, ...).

    Returns
    -------
    solution : Solution
        Saturated points (open load >= 1 at some station) have ``inf``
        residence times for every class using the saturated station and zero
        throughput for closed classes that need it.
    load : ndarray, shape (*S, M)
        Utilisation of each station by the open classes (closed classes
        cannot saturate a station).
    """
    is_open = arrays.is_open
    lam = arrays.arrival_rate
    demand = arrays.demand
    open_util = station_utilization(lam * is_open, demand, arrays.capacity)
    open_load = np.where(arrays.station_kind == DELAY, 0.0, open_util.sum(axis=-1))  # (*S, M)
    stable = (open_load < 1.0).all(axis=-1)  # (*S,)
    closed_idx = np.flatnonzero(~is_open)
    open_idx = np.flatnonzero(is_open)
    ld = np.flatnonzero(arrays.station_kind == LOAD_DEPENDENT)
    queue = arrays.station_kind == QUEUE
    # Closed part: inflate single-server demands; evaluate at stable points only.
    safe_load = np.where(stable[..., None], open_load, 0.0)
    inflation = np.where(queue, 1.0 / (1.0 - safe_load), 1.0)  # (*S, M)
    closed_demand = demand[..., closed_idx] * inflation[..., None]
    closed_arrays = dataclasses.replace(
        arrays,
        classes=tuple(arrays.classes[k] for k in closed_idx),
        demand=closed_demand,
        arrival_rate=lam[..., closed_idx] * 0.0,
        population=arrays.population[..., closed_idx],
        think_time=arrays.think_time[..., closed_idx],
        is_open=np.zeros(len(closed_idx), dtype=bool),
    )
    shape = arrays.sweep_shape
    M, K = demand.shape[-2:]
    residence = np.zeros((*shape, M, K))
    throughput = lam.copy()
    mean_j_at = np.zeros((*shape, M))
    if len(ld) == 0:
        closed = closed_solver(closed_arrays)
    else:
        closed = _closed_with_effective_multipliers(closed_arrays, closed_solver, safe_load, ld)
    throughput[..., closed_idx] = closed.throughput
    residence[..., closed_idx] = closed.residence_time
    closed_queue = closed.queue_length.sum(axis=-1)  # (*S, M)
    # Open classes.
    d_open = demand[..., open_idx]
    for m in range(M):
        if arrays.station_kind[m] == DELAY:
            residence[..., m, open_idx] = d_open[..., m, :]
        elif arrays.station_kind[m] == QUEUE:
            factor = (1.0 + closed_queue[..., m]) / (1.0 - safe_load[..., m])
            residence[..., m, open_idx] = d_open[..., m, :] * factor[..., None]
        else:
            rho = (lam[..., open_idx] * d_open[..., m, :]).sum(axis=-1)
            for point in np.ndindex(shape):
                if not stable[point] or rho[point] == 0:
                    continue
                mean_j_at[point + (m,)] = _open_mean(
                    None if closed.marginal is None else closed.marginal[point + (m,)],
                    closed_queue[point + (m,)], float(rho[point]), arrays.multipliers[m])
            per_load = np.where(rho > 0, mean_j_at[..., m] / np.where(rho > 0, rho, 1.0),
                                1.0 / arrays.multipliers[m][0])
            residence[..., m, open_idx] = d_open[..., m, :] * per_load[..., None]
    residence = np.where(demand > 0, residence, 0.0)
    uses = demand > 0
    residence = np.where(stable[..., None, None], residence, np.where(uses, np.inf, 0.0))
    throughput = np.where(stable[..., None], throughput,
                          np.where(is_open, lam, np.where(uses.any(axis=-2), 0.0, throughput)))
    with np.errstate(invalid="ignore"):  # 0 * inf for closed classes blocked by saturation
        queue_length = np.where(uses, throughput[..., None, :] * residence, 0.0)
    queue_length[..., closed_idx] = np.where(stable[..., None, None],
                                             closed.queue_length, queue_length[..., closed_idx])
    utilization = station_utilization(throughput, demand, arrays.capacity)
    solution = Solution(throughput=throughput, residence_time=residence, queue_length=queue_length,
                        utilization=utilization, method=f"mixed+{closed.method}",
                        iterations=closed.iterations, residual=closed.residual,
                        converged=closed.converged)
    return solution, open_load


def _open_mean(marginal: np.ndarray | None, closed_mean: float, rho: float,
               multipliers: np.ndarray) -> float:
    """Mean number of open customers at a load-dependent station (see the module docstring).

    ``marginal`` is the closed classes' distribution of the number present
    (NaN when the closed solver did not provide it); ``closed_mean`` their mean.
    """
    if marginal is not None and not np.isnan(marginal).any():
        _, mean_j = _log_h(np.arange(len(marginal)), rho, multipliers)
        return float(marginal @ mean_j)
    lo = int(np.floor(closed_mean))
    _, mean_j = _log_h(np.array([lo, lo + 1]), rho, multipliers)
    return float(mean_j[0] + (closed_mean - lo) * (mean_j[1] - mean_j[0]))


def _closed_with_effective_multipliers(closed_arrays: NetworkArrays, closed_solver: ClosedSolver,
                                       open_load_per_capacity: np.ndarray,
                                       ld: np.ndarray) -> Solution:
    """Solve the closed part point by point, with each load-dependent station's multipliers
    replaced by the effective ones the open load leaves (see the module docstring)."""
    shape = closed_arrays.sweep_shape
    n_total = int(closed_arrays.population.sum(axis=-1).max())
    results = []
    for point in np.ndindex(shape):
        multipliers = list(closed_arrays.multipliers)
        capacity = closed_arrays.capacity.copy()
        for m in ld:
            a = closed_arrays.multipliers[m]
            rho = float(open_load_per_capacity[point + (m,)] * a[-1])
            log_h, _ = _log_h(np.arange(n_total + 1), rho, a)
            a_eff = np.exp(log_h[:-1] - log_h[1:])  # a_eff(c) = h(c-1)/h(c), c = 1..n_total
            multipliers[m] = a_eff
            capacity[m] = a_eff[-1]
        point_arrays = dataclasses.replace(
            closed_arrays,
            demand=closed_arrays.demand[point][None],
            arrival_rate=closed_arrays.arrival_rate[point][None],
            population=closed_arrays.population[point][None],
            think_time=closed_arrays.think_time[point][None],
            sweep_dims=("point",), sweep_coords={"point": np.arange(1)},
            multipliers=tuple(multipliers), capacity=capacity,
        )
        results.append(closed_solver(point_arrays))
    first = results[0]

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(r, name)[0] for r in results]).reshape(*shape, *getattr(first, name).shape[1:])

    # Utilisation is recomputed by the caller against the true capacities.
    return Solution(throughput=stack("throughput"), residence_time=stack("residence_time"),
                    queue_length=stack("queue_length"), utilization=stack("utilization"),
                    method=first.method, iterations=max(r.iterations for r in results),
                    residual=max(r.residual for r in results),
                    converged=all(r.converged for r in results),
                    marginal=None if first.marginal is None else stack("marginal"))
