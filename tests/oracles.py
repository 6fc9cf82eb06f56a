"""Independent reference solutions for the solver tests.

Nothing here imports a solver: each oracle recomputes its answer from first
principles, slowly, so that it can be trusted on small networks.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import gammaln

from hermes_qn.network import DELAY, NetworkArrays


def brute_force_closed(arrays: NetworkArrays) -> tuple[np.ndarray, np.ndarray]:
    """Throughputs and mean queue lengths of a closed product-form network, by enumeration.

    Every state (the number of jobs of each class at each station and
    thinking) gets its product-form weight (BCMP; Bolch et al. 2006, sec.
    7.3): a processor-sharing or load-dependent station holding ``n_k`` jobs
    of class ``k`` (``n = sum_k n_k``) contributes
    ``n! / prod_k n_k! * prod_k D_k**n_k / prod_{i=1}^{n} a(i)``, a delay
    ``prod_k D_k**n_k / n_k!``, and thinking clients ``Z_k**z_k / z_k!``.
    The weights are normalised; queue lengths are the mean counts and the
    throughput of class ``k`` is read off one place where it spends time, as
    the mean completion rate there per request: ``E[z_k] / Z_k`` for
    thinking, ``E[n_k] / D_k`` at a delay and
    ``E[a(n) n_k / n] / D_k`` at a queue. (Not the ratio of normalising
    constants that MVA itself rests on.)

    Parameters
    ----------
    arrays : NetworkArrays
        A small closed network: ``prod_k C(N_k + M, M)`` states are
        enumerated per sweep point.

    Returns
    -------
    throughput : ndarray, shape (*S, K)
        Requests per second.
    queue_length : ndarray, shape (*S, M, K)
        Mean number of requests at each station.
    """
    sweep_shape = arrays.sweep_shape
    M, K = arrays.demand.shape[-2:]
    throughput = np.empty((*sweep_shape, K))
    queue_length = np.empty((*sweep_shape, M, K))
    for point in np.ndindex(*sweep_shape):
        throughput[point], queue_length[point] = _brute_force_point(
            arrays, arrays.demand[point], arrays.think_time[point], arrays.population[point])
    return throughput, queue_length


def brute_force_throughputs_by_place(arrays: NetworkArrays) -> list[np.ndarray]:
    """For a network without sweep axes: class throughputs read off every place with time.

    Returns one array per class of the throughput estimated at each station
    with positive demand and (when ``Z_k > 0``) at the think stage; in a
    correct product-form solution they all agree (a check of the oracle).
    """
    _, per_place = _enumerate(arrays, arrays.demand, arrays.think_time, arrays.population)
    return per_place


def _brute_force_point(arrays, demand, think, population):
    queue_length, per_place = _enumerate(arrays, demand, think, population)
    return np.array([estimates[0] for estimates in per_place]), queue_length


def _compositions(n: int, places: int) -> np.ndarray:
    """All ways to put ``n`` identical jobs into ``places`` places, shape (C, places)."""
    rows = []
    for bars in itertools.combinations(range(n + places - 1), places - 1):
        edges = (-1, *bars, n + places - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(places)])
    return np.array(rows, dtype=np.int64)


def _enumerate(arrays, demand, think, population):
    M, K = demand.shape
    rates = arrays.rate_multipliers(int(np.sum(population)))  # (M, total + 1), a(0) = 1
    per_class = [_compositions(int(population[k]), M + 1) for k in range(K)]  # last place: thinking
    grids = np.meshgrid(*[np.arange(len(c)) for c in per_class], indexing="ij")
    state = np.stack([per_class[k][grids[k].ravel()] for k in range(K)], axis=1)  # (S, K, M+1)
    at_station = state[:, :, :M]  # (S, K, M)
    thinking = state[:, :, M]  # (S, K)

    # Places a class cannot be (zero demand or zero think time) rule a state out.
    possible = np.ones(len(state), dtype=bool)
    for k in range(K):
        possible &= ~((at_station[:, k, :] > 0) & (demand[:, k] == 0)).any(axis=1)
        if think[k] == 0:
            possible &= thinking[:, k] == 0
    state, at_station, thinking = state[possible], at_station[possible], thinking[possible]

    log_d = np.log(np.where(demand.T > 0, demand.T, 1.0))  # (K, M); zero-demand states are gone
    log_z = np.log(np.where(think > 0, think, 1.0))
    log_w = np.zeros(len(state))
    for k in range(K):
        log_w += np.where(at_station[:, k, :] > 0, at_station[:, k, :] * log_d[k], 0.0).sum(axis=1)
        log_w += np.where(thinking[:, k] > 0, thinking[:, k] * log_z[k], 0.0) - gammaln(thinking[:, k] + 1)
    total = at_station.sum(axis=1)  # (S, M) jobs at each station
    log_rate_products = np.concatenate(
        [np.zeros((M, 1)), np.cumsum(np.log(rates[:, 1:]), axis=1)], axis=1)  # log prod_{i<=n} a(i)
    for m in range(M):
        if arrays.station_kind[m] == DELAY:
            log_w -= gammaln(at_station[:, :, m] + 1).sum(axis=1)
        else:
            log_w += gammaln(total[:, m] + 1) - gammaln(at_station[:, :, m] + 1).sum(axis=1)
            log_w -= log_rate_products[m, total[:, m]]
    prob = np.exp(log_w - log_w.max())
    prob /= prob.sum()

    queue_length = np.einsum("s,skm->mk", prob, at_station)
    per_place = []
    for k in range(K):
        estimates = []
        for m in range(M):
            if demand[m, k] == 0:
                continue
            if arrays.station_kind[m] == DELAY:
                busy = at_station[:, k, m]
            else:
                n = total[:, m]
                busy = np.where(n > 0, rates[m, n] * at_station[:, k, m] / np.maximum(n, 1), 0.0)
            estimates.append(float(prob @ busy) / demand[m, k])
        if think[k] > 0:
            estimates.append(float(prob @ thinking[:, k]) / think[k])
        per_place.append(np.array(estimates))
    return queue_length, per_place


def birth_death_single_class(rates: np.ndarray, think_time: float, demand: float,
                             population: int) -> tuple[float, float]:
    """Machine-repairman chain: throughput and mean number at the station, from the chain itself.

    ``population`` clients think for an exponential time of mean
    ``think_time`` seconds, then queue at one station whose service rate with
    ``n`` present is ``rates[n-1] / demand`` (``rates`` holds ``a(1..population)``).
    The stationary distribution of the number at the station solves the
    detailed balance ``pi(n) * a(n) / D = pi(n-1) * (N - n + 1) / Z`` of the
    finite birth-death chain (Kleinrock 1975, sec. 3.8), computed in logs.
    """
    n = np.arange(1, population + 1)
    log_ratio = np.log((population - n + 1) / think_time) - np.log(np.asarray(rates)[:population] / demand)
    log_pi = np.concatenate(([0.0], np.cumsum(log_ratio)))
    pi = np.exp(log_pi - log_pi.max())
    pi /= pi.sum()
    jobs = np.arange(population + 1)
    thinking = population - jobs
    return float(pi @ thinking) / think_time, float(pi @ jobs)


def log_convolution_single_class(station_log_factors: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Normalising constants of a single-class network by convolution in logarithms.

    Parameters
    ----------
    station_log_factors : list of ndarray, shape (N + 1,)
        ``log f_m(j)`` for ``j = 0..N`` for each station (think stage included):
        ``j log D - sum_{i<=j} log a(i)`` (``a(i) = i`` for a delay).

    Returns
    -------
    log_g : ndarray, shape (N + 1,)
        ``log G(n)`` of the whole network, ``n = 0..N``.
    log_g_without : list of ndarray, shape (N + 1,)
        ``log G`` of the network without each station, for its marginal
        probabilities ``p_m(j | N) = f_m(j) G_{-m}(N - j) / G(N)``.
    """
    def convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(len(a))
        for n in range(len(a)):
            terms = a[: n + 1] + b[n::-1]
            top = terms.max()
            out[n] = top + math.log(np.exp(terms - top).sum())
        return out

    count = len(station_log_factors)
    identity = np.full_like(station_log_factors[0], -np.inf)
    identity[0] = 0.0
    prefix = [identity]
    for f in station_log_factors:
        prefix.append(convolve(prefix[-1], f))
    suffix = [identity]
    for f in reversed(station_log_factors):
        suffix.append(convolve(suffix[-1], f))
    suffix.reverse()
    without = [convolve(prefix[m], suffix[m + 1]) for m in range(count)]
    return prefix[-1], without
