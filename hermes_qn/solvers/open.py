"""Open networks: each station solved on its own with Poisson arrivals (product form).

Vectorised over the sweep axes: every operation acts on whole arrays of shape
``(*S, M, K)``, so a sweep of a million arrival rates costs a handful of numpy
calls, not a million Python iterations.
"""

from __future__ import annotations

import numpy as np

from ..network import DELAY, LOAD_DEPENDENT, QUEUE, NetworkArrays
from .base import Solution, station_utilization


def load_dependent_moments(rho: np.ndarray, multipliers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean number present at an open load-dependent station, and that mean over ``rho``.

    The station is the birth-death chain of product form: with total offered
    load ``rho`` (arrival rate x demand, in units of the speed with one job
    present) the probability of ``n`` jobs is proportional to
    ``rho**n / (a(1) * ... * a(n))``. The rate multipliers ``a`` hold their
    last value beyond the table, so the tail is a geometric series summed in
    closed form. Work is done in logarithms, so thousands of servers neither
    overflow nor underflow.

    Parameters
    ----------
    rho : ndarray, shape (*S,)
        Offered load, >= 0; must be below ``multipliers[-1]`` (stable).
    multipliers : ndarray, shape (L,)
        ``a(1), ..., a(L)``; ``a(n) = a(L)`` for ``n > L``.

    Returns
    -------
    mean_jobs : ndarray, shape (*S,)
        Mean number present.
    mean_over_rho : ndarray, shape (*S,)
        ``mean_jobs / rho``, with its limit ``1 / a(1)`` at ``rho = 0``; a
        class with demand ``D`` spends ``D * mean_over_rho`` seconds there.
    """
    rho = np.asarray(rho, dtype=float)
    L = len(multipliers)
    n = np.arange(L + 1)
    log_a = np.concatenate(([0.0], np.cumsum(np.log(multipliers))))  # log(a(1)...a(n)), n = 0..L
    safe_rho = np.where(rho > 0, rho, 0.5 * multipliers[-1])  # stand-in below capacity where rho = 0
    log_terms = n * np.log(safe_rho)[..., None] - log_a  # (*S, L+1): log of rho^n / A_n
    x = safe_rho / multipliers[-1]  # tail ratio
    one_minus_x = 1.0 - x
    # Tail n >= L: sum T_L x^(n-L) = T_L / (1-x); sum n T_L x^(n-L) = T_L (L/(1-x) + x/(1-x)^2).
    log_tail = log_terms[..., L] - np.log(one_minus_x)
    tail_mean_factor = L + x / one_minus_x
    shift = np.maximum(log_terms[..., :L].max(axis=-1), log_tail)
    head = np.exp(log_terms[..., :L] - shift[..., None])
    tail = np.exp(log_tail - shift)
    total = head.sum(axis=-1) + tail
    mean_jobs = ((head * n[:L]).sum(axis=-1) + tail * tail_mean_factor) / total
    mean_over_rho = np.where(rho > 0, mean_jobs / safe_rho, 1.0 / multipliers[0])
    return np.where(rho > 0, mean_jobs, 0.0), mean_over_rho


def solve_open(arrays: NetworkArrays) -> tuple[Solution, np.ndarray]:
    """Solve an open network station by station.

    Single-server PS stations are M/M/1-PS; single-server FCFS stations use the
    Pollaczek-Khinchine mean for exponential service with class-dependent means
    (``W = sum_k lambda_k D_k^2 / (1 - rho)``; it equals the product-form
    answer when all classes have the same demand, and is exact for a station
    fed by Poisson streams); delays give ``R = D``; multi-server and
    load-dependent stations use the product-form birth-death chain
    (:func:`load_dependent_moments`), which for ``servers=c`` is M/M/c.

    Parameters
    ----------
    arrays : NetworkArrays
        An all-open network.

    Returns
    -------
    solution : Solution
        Saturated points have ``inf`` residence time and queue length.
    load : ndarray, shape (*S, M)
        Total utilisation of each station; ``>= 1`` means saturated.
    """
    lam = arrays.arrival_rate  # (*S, K)
    demand = arrays.demand  # (*S, M, K)
    utilization = station_utilization(lam, demand, arrays.capacity)
    offered = (lam[..., None, :] * demand).sum(axis=-1)  # (*S, M), in one-job speed units
    load = np.where(arrays.station_kind == DELAY, 0.0, utilization.sum(axis=-1))
    stable = load < 1.0
    residence = np.empty_like(demand)
    for m, kind in enumerate(arrays.station_kind):
        d = demand[..., m, :]
        ok = stable[..., m]
        if kind == DELAY:
            residence[..., m, :] = d
        elif kind == QUEUE and arrays.fcfs[m]:
            second_moment = (lam * d * d).sum(axis=-1)  # sum lambda_k D_k^2 (exponential: E S^2 = 2 D^2)
            wait = second_moment / np.where(ok, 1.0 - load[..., m], 1.0)
            residence[..., m, :] = d + wait[..., None]
        elif kind == QUEUE:
            residence[..., m, :] = d / np.where(ok, 1.0 - load[..., m], 1.0)[..., None]
        else:
            assert kind == LOAD_DEPENDENT
            rho = np.where(ok, offered[..., m], 0.0)
            _, per_demand = load_dependent_moments(rho, arrays.multipliers[m])
            residence[..., m, :] = d * per_demand[..., None]
    residence = np.where(demand > 0, residence, 0.0)
    residence = np.where(stable[..., None], residence, np.where(demand > 0, np.inf, 0.0))
    queue = lam[..., None, :] * residence
    queue = np.where(lam[..., None, :] > 0, queue, 0.0)
    solution = Solution(throughput=lam.copy(), residence_time=residence, queue_length=queue,
                        utilization=utilization, method="open-product-form")
    return solution, load
