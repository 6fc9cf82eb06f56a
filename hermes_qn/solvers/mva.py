"""Exact Mean Value Analysis of closed multi-class product-form networks.

The recursion of Reiser and Lavenberg [1]_ runs over the population lattice
``0 <= n <= N``. Every population vector of total ``t`` depends only on
vectors of total ``t - 1``, so each level of the lattice is computed in one set
of numpy operations: the lattice is indexed by a mixed-radix code and each
point knows the position of its predecessors ``n - e_k`` in the level below.

Load-dependent stations (multi-server queues and explicit rate multipliers)
need the marginal probabilities ``p_m(j | n)`` of ``j`` jobs at station ``m``.
The textbook closure ``p_m(0 | n) = 1 - sum_{j >= 1} p_m(j | n)`` cancels
catastrophically once the station is rarely empty, and the recursion then
multiplies that error by ``D X / a(j) > 1`` at every step (``e^c`` for ``c``
busy servers). Here the empty-station probability comes instead from the
complement network (the network without station ``m``) [2]_,
``p_m(0 | n) = G_{-m}(n) / G(n)``, as a difference of logarithms, and the
marginals are propagated as logarithms. Nothing is subtracted anywhere, so
the result keeps full relative accuracy at any utilisation and population.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..network import DELAY, LOAD_DEPENDENT, QUEUE, NetworkArrays
from .base import Solution, check_closed_classes, station_utilization

__all__ = ["exact_mva", "state_space_size"]


def state_space_size(population: np.ndarray) -> int:
    """Number of population vectors exact MVA visits: ``prod_k (N_k + 1)``, worst sweep point.

    Parameters
    ----------
    population : array of int, shape (*S, K)
        Clients per closed class (the ``population`` of :class:`NetworkArrays`).

    Returns
    -------
    int
        The largest lattice size over the sweep points (a Python ``int``, so
        it does not overflow however many classes there are). The time of
        :func:`exact_mva` grows with this size times the number of stations,
        and by a further factor ``2**L`` with ``L`` genuinely load-dependent
        stations (see its Notes).

    Examples
    --------
    >>> state_space_size(np.array([[50, 50], [10, 200]]))
    2601
    """
    population = np.asarray(population)
    if population.ndim == 0 or population.shape[-1] == 0:
        raise ValidationError(f"state_space_size: population has shape {population.shape}; "
                              f"valid: an integer array of shape (*S, K) with K >= 1")
    rows = np.unique(population.reshape(-1, population.shape[-1]), axis=0)
    return max(math.prod(int(n) + 1 for n in row) for row in rows)


def exact_mva(arrays: NetworkArrays) -> Solution:
    """Solve a closed multi-class product-form network exactly by Mean Value Analysis.

    For population ``n`` (a vector over classes) and the arrival theorem,
    the residence time of class ``k`` at station ``m`` is

    - single-server queue: ``R_mk(n) = D_mk * (1 + Q_m(n - e_k))``;
    - delay: ``R_mk(n) = D_mk``;
    - load-dependent, rate multipliers ``a_m(j)``:
      ``R_mk(n) = D_mk * sum_{j=1}^{|n|} j / a_m(j) * p_m(j - 1 | n - e_k)``;

    then ``X_k(n) = n_k / (Z_k + sum_m R_mk(n))``, ``Q_mk(n) = X_k(n) R_mk(n)``
    and ``p_m(j | n) = sum_k D_mk X_k(n) p_m(j - 1 | n - e_k) / a_m(j)`` for
    ``j >= 1`` [1]_ [3]_ [4]_.

    Parameters
    ----------
    arrays : NetworkArrays
        A network whose classes are all closed, each with population >= 1.
        Demands ``D_mk`` in seconds, think times ``Z_k`` in seconds (a
        per-class delay outside the stations). Single-server FCFS stations
        get the same formula as PS; with class-dependent demands that is not
        product form and the answer is the usual MVA approximation.

    Returns
    -------
    Solution
        ``throughput`` (requests per second, shape ``(*S, K)``),
        ``residence_time`` (seconds per request at each station, think time
        excluded, shape ``(*S, M, K)``), ``queue_length`` (``X_k * R_mk``,
        requests), ``utilization`` (from
        :func:`~hermes_qn.solvers.base.station_utilization`),
        ``method="exact-mva"``.

    Raises
    ------
    ValidationError
        If a class is open, has a population below 1, or has zero demand at
        every station and zero think time (its clients would cycle
        infinitely fast).

    Notes
    -----
    *Load-dependent stations.* The empty-station probability is
    ``p_m(0 | n) = G_{-m}(n) / G(n)`` where ``G`` is the normalising
    constant of the network and ``G_{-m}`` that of its complement without
    station ``m`` [2]_. Both come out of MVA runs without normalising
    constants ever being formed: ``X_k(n) = G(n - e_k) / G(n)`` and
    ``G(0) = 1``, so ``log G(n) = log G(n - e_k) - log X_k(n)`` along any path.
    The complement network has its own load-dependent stations, so the
    complements of all ``2**L`` subsets of the ``L`` load-dependent stations
    are solved, smallest first. The marginals are carried as logarithms
    (combined over classes with log-sum-exp) so that an empty probability of
    ``1e-900`` (a thousand busy servers) neither underflows nor cuts the
    chain ``p(j | n) <- p(j - 1 | n - e_k)`` that leads from it to the likely
    states. Every step adds or multiplies positive numbers, so each result
    carries a relative error of a small multiple of the lattice depth times
    machine epsilon; the naive ``1 - sum`` closure, by contrast, loses all
    digits (and goes negative) at high utilisation.

    Load-dependent stations that are not genuinely so for the population at
    hand are solved by the cheaper formulas: constant multipliers
    ``a(j) = a(1)`` make a single-server queue of demand ``D / a(1)``, and
    ``a(j) = j a(1)`` for every ``j <= |N|`` (e.g. at least as many servers as
    clients) a delay of demand ``D / a(1)``.

    *Cost.* ``O(prod_k (N_k + 1) * (M + L |N|) * K)`` operations per
    sweep point and complement subset, in ``|N| + 1`` vectorised steps.
    Sweep points are solved one after another.

    References
    ----------
    .. [1] M. Reiser and S. S. Lavenberg, "Mean-value analysis of closed
       multichain queuing networks", J. ACM 27(2):313-322, 1980.
    .. [2] M. Reiser, "Mean-value analysis and convolution method for
       queue-dependent servers in closed queueing networks", Performance
       Evaluation 1(1):7-18, 1981.
    .. [3] E. D. Lazowska, J. Zahorjan, G. S. Graham and K. C. Sevcik,
       *Quantitative System Performance*, Prentice-Hall, 1984, ch. 6 (exact
       multi-class MVA) and ch. 8 (load-dependent centers).
    .. [4] G. Bolch, S. Greiner, H. de Meer and K. S. Trivedi, *Queueing
       Networks and Markov Chains*, 2nd ed., Wiley, 2006, section 8.2.

    Examples
    --------
    One client alternating between 1 s of thinking and 0.5 s at a CPU
    completes ``1 / (1 + 0.5)`` requests per second:

    >>> import hermes_qn as hq
    >>> net = hq.Network(stations={"cpu": hq.Queue()},
    ...                  classes={"users": hq.Closed(population=1, think_time=1.0)},
    ...                  demands={"users": {"cpu": 0.5}})
    >>> sol = exact_mva(net.arrays())
    >>> round(float(sol.throughput[0]), 12), float(sol.residence_time[0, 0])
    (0.666666666667, 0.5)
    """
    _exact_mva_iv(arrays)
    sweep_shape = arrays.sweep_shape
    M, K = arrays.demand.shape[-2:]
    throughput = np.empty((*sweep_shape, K))
    residence = np.empty((*sweep_shape, M, K))
    marginal = np.full((*sweep_shape, M, int(arrays.population.sum(axis=-1).max()) + 1), np.nan)
    lattices: dict[tuple[int, ...], _Lattice] = {}
    for point in np.ndindex(*sweep_shape):
        population = tuple(int(n) for n in arrays.population[point])
        if population not in lattices:
            lattices[population] = _Lattice(population)
        throughput[point], residence[point], ld_marginals = _solve_point(
            lattices[population], arrays.demand[point], arrays.think_time[point],
            arrays.station_kind, arrays.multipliers)
        for m, p in ld_marginals.items():
            marginal[point + (m,)] = 0.0
            marginal[point + (m, slice(0, len(p)))] = p
    return Solution(
        throughput=throughput,
        residence_time=residence,
        queue_length=throughput[..., None, :] * residence,
        utilization=station_utilization(throughput, arrays.demand, arrays.capacity),
        method="exact-mva",
        marginal=marginal,
    )


def _exact_mva_iv(arrays: NetworkArrays) -> None:
    """Check that every class is closed, populated and has somewhere to spend time."""
    check_closed_classes(arrays, "exact_mva", "solve open or mixed networks with hermes_qn.solve")


@dataclass(frozen=True)
class _Level:
    """The population vectors of one total ``t``, with links to the level below.

    ``points`` are mixed-radix codes; ``jobs`` (P_t, K) the vectors;
    ``has_job`` where ``n_k > 0``; ``pred_pos`` the position of ``n - e_k``
    within level ``t - 1`` (0 where ``n_k = 0``, masked by ``has_job``);
    ``path_class`` one class with ``n_k > 0`` and ``path_pred`` the code of
    ``n - e_{path_class}``, along which ``log G`` is accumulated.
    """

    points: np.ndarray
    jobs: np.ndarray
    has_job: np.ndarray
    pred_pos: np.ndarray
    path_class: np.ndarray
    path_pred: np.ndarray


class _Lattice:
    """The lattice ``0 <= n <= N`` in mixed radix, grouped by total population."""

    def __init__(self, population: tuple[int, ...]) -> None:
        radix = np.array(population) + 1
        K = len(population)
        self.size = int(np.prod(radix))
        self.total = int(sum(population))
        stride = np.ones(K, dtype=np.int64)
        stride[:-1] = np.cumprod(radix[::-1])[:-1][::-1]  # C order: last class varies fastest
        jobs = np.stack(np.unravel_index(np.arange(self.size), tuple(radix)), axis=-1)
        level = jobs.sum(axis=1)
        order = np.argsort(level, kind="stable")
        bounds = np.searchsorted(level[order], np.arange(self.total + 2))
        position = np.empty(self.size, dtype=np.int64)
        self.levels: list[_Level] = []
        for t in range(self.total + 1):
            points = order[bounds[t]:bounds[t + 1]]
            position[points] = np.arange(len(points))
            n = jobs[points]
            has_job = n > 0
            pred = points[:, None] - stride
            pred_pos = np.where(has_job, position[np.where(has_job, pred, 0)], 0)
            path_class = np.argmax(has_job, axis=1)
            self.levels.append(_Level(points=points, jobs=n.astype(float), has_job=has_job,
                                      pred_pos=pred_pos, path_class=path_class,
                                      path_pred=points - stride[path_class]))
        self.jobs = jobs


@dataclass(frozen=True)
class _PassResult:
    """One MVA run: ``log G`` over the lattice and, at ``n = N``, X, R and the
    marginals ``p_l(j | N)`` of the load-dependent stations, shape (L, T + 1)."""

    log_g: np.ndarray
    throughput: np.ndarray
    r_queue: np.ndarray
    r_ld: np.ndarray
    marginal: np.ndarray


def _solve_point(lattice: _Lattice, demand: np.ndarray, think: np.ndarray,
                 kind: np.ndarray, multipliers: tuple[np.ndarray, ...]
                 ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Exact MVA at one sweep point; returns throughput (K,), residence time (M, K) and,
    per load-dependent station index, its marginal ``p(j | N)`` for ``j = 0..N_total``."""
    M, K = demand.shape
    T = lattice.total
    j = np.arange(1, T + 1)
    queues, queue_demand = [], []
    fixed = think.astype(float)  # per-class time outside queueing stations: think + delays
    delays = []
    lds, ld_demand, ld_rates = [], [], []
    for m in range(M):
        d = demand[m]
        if not d.any():
            continue
        if kind[m] == DELAY:
            delays.append(m)
            fixed = fixed + d
            continue
        a = multipliers[m]
        rates = a[np.minimum(j, len(a)) - 1]  # a(1), ..., a(T)
        if kind[m] == QUEUE or np.all(rates == rates[0]):
            queues.append(m)
            queue_demand.append(d / rates[0])
        elif np.all(rates == j * rates[0]):
            delays.append(m)
            fixed = fixed + d / rates[0]
        else:
            assert kind[m] == LOAD_DEPENDENT
            lds.append(m)
            ld_demand.append(d)
            ld_rates.append(rates)
    queue_demand = np.array(queue_demand).reshape(len(queues), K)
    ld_demand = np.array(ld_demand).reshape(len(lds), K)
    ld_rates = np.array(ld_rates).reshape(len(lds), T)
    ld_weight = np.zeros((len(lds), T + 1))
    ld_weight[:, 1:] = j / ld_rates  # j / a(j), indexed by j
    ld_log_rate = np.zeros((len(lds), T + 1))
    ld_log_rate[:, 1:] = np.log(ld_rates)

    # Complement networks, smallest first: bit i of `subset` keeps load-dependent station i.
    base_time = fixed + queue_demand.sum(axis=0)
    log_g: dict[int, np.ndarray] = {}
    for subset in range(1 << len(lds)):
        members = [i for i in range(len(lds)) if subset >> i & 1]
        stranded = base_time + ld_demand[members].sum(axis=0) <= 0
        complement = np.array([log_g[subset & ~(1 << i)] for i in members]).reshape(
            len(members), lattice.size)
        result = _mva_pass(lattice, queue_demand, fixed, ld_demand[members], ld_weight[members],
                           ld_log_rate[members], complement, stranded)
        log_g[subset] = result.log_g

    residence = np.zeros((M, K))
    residence[queues] = result.r_queue
    residence[lds] = result.r_ld
    for m in delays:
        residence[m] = demand[m] if kind[m] == DELAY else demand[m] / multipliers[m][0]
    return result.throughput, residence, dict(zip(lds, result.marginal))


def _mva_pass(lattice: _Lattice, queue_demand: np.ndarray, fixed: np.ndarray,
              ld_demand: np.ndarray, ld_weight: np.ndarray, ld_log_rate: np.ndarray,
              complement_log_g: np.ndarray, stranded: np.ndarray) -> _PassResult:
    """Run the MVA recursion level by level over the whole lattice.

    Parameters
    ----------
    lattice : _Lattice
    queue_demand : ndarray, shape (Mq, K)
        Seconds, single-server stations.
    fixed : ndarray, shape (K,)
        Seconds per cycle spent without queueing: think time plus delays.
    ld_demand : ndarray, shape (L, K)
        Seconds, load-dependent stations.
    ld_weight, ld_log_rate : ndarray, shape (L, T + 1)
        ``j / a(j)`` and ``log a(j)``, indexed by ``j`` (column 0 unused).
    complement_log_g : ndarray, shape (L, P)
        ``log G`` of the network without each load-dependent station.
    stranded : ndarray of bool, shape (K,)
        Classes with nowhere to go in this (complement) network: ``G(n) = 0``
        wherever ``n_k > 0``. Never set for the network itself.
    """
    K = len(fixed)
    L = len(ld_demand)
    queue_demand_t = queue_demand.T  # (K, Mq)
    log_g = np.zeros(lattice.size)
    queue_prev = np.zeros((1, queue_demand.shape[0]))  # Q_m at level t - 1, (P_t, Mq)
    log_p_prev = [np.zeros((1, 1)) for _ in range(L)]  # log p_l(j | n) at level t - 1, (P_t, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ld_demand = np.log(ld_demand)
        for t in range(1, lattice.total + 1):
            level = lattice.levels[t]
            pred = level.pred_pos
            r_queue = queue_demand_t * (1.0 + queue_prev[pred])  # (P_t, K, Mq)
            cycle = fixed + r_queue.sum(axis=-1)
            log_p_pred = [p[pred] for p in log_p_prev]  # (P_t, K, t) each
            r_ld = np.empty((L, len(pred), K))
            for i in range(L):
                r_ld[i] = ld_demand[i] * (np.exp(log_p_pred[i]) @ ld_weight[i, 1:t + 1])
                cycle = cycle + r_ld[i]
            ok = level.has_job & (cycle > 0)
            x = np.where(ok, level.jobs / np.where(ok, cycle, 1.0), 0.0)
            queue_prev = np.einsum("pk,pkm->pm", x, r_queue)
            rows = np.arange(len(pred))
            log_g[level.points] = log_g[level.path_pred] - np.log(x[rows, level.path_class])
            log_x = np.log(x)
            for i in range(L):
                log_p = np.empty((len(pred), t + 1))
                log_p[:, 0] = complement_log_g[i, level.points] - log_g[level.points]
                log_p[:, 1:] = _log_sum_over_classes(
                    (log_ld_demand[i] + log_x)[:, :, None] + log_p_pred[i]) - ld_log_rate[i, 1:t + 1]
                log_p_prev[i] = log_p
    if stranded.any():
        log_g[(lattice.jobs[:, stranded] > 0).any(axis=1)] = -np.inf
    marginal = np.exp(np.array([p[0] for p in log_p_prev]).reshape(L, lattice.total + 1))
    return _PassResult(log_g=log_g, throughput=x[0], r_queue=r_queue[0].T, r_ld=r_ld[:, 0],
                       marginal=marginal)


def _log_sum_over_classes(terms: np.ndarray) -> np.ndarray:
    """``log(sum_k exp(terms[:, k, :]))``, exact for ``-inf`` entries, without overflow."""
    if terms.shape[1] == 1:
        return terms[:, 0]
    top = terms.max(axis=1)
    shift = np.where(np.isfinite(top), top, 0.0)
    return shift + np.log(np.exp(terms - shift[:, None]).sum(axis=1))
