"""Approximate Mean Value Analysis of closed multi-class networks.

Two fixed-point methods that replace exact MVA's recursion over the population
lattice (whose cost grows with the product of the class populations) by an
iteration at the full population only:

* :func:`schweitzer`, the Schweitzer-Bard approximation [1]_ [2]_: an arriving
  class-``k`` customer sees the time-average queue of the full population
  with one ``k``-th of its own class removed.
* :func:`linearizer`, Chandy and Neuse's Linearizer [3]_: the same core
  iteration, corrected by the measured deviation of the ``K`` one-customer-less
  populations from that proportional estimate.

Both are vectorised over the sweep axes: every operation acts on whole arrays
of shape ``(*S, M, K)``, and the loop runs until every sweep point has
converged. Load-dependent stations (multi-server, rate tables) are handled by
an approximate marginal distribution of the number present; see
:func:`schweitzer`, Notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..network import DELAY, LOAD_DEPENDENT, QUEUE, NetworkArrays
from .base import Solution, check_closed_classes, station_utilization

__all__ = ["linearizer", "schweitzer"]

#: Under-relaxation of the fixed-point step when load-dependent stations are present
#: (undamped, their marginal distributions can settle into a period-2 oscillation).
LD_DAMPING = 0.5
#: Rounds of (Newton in X, then new removal rates) at load-dependent stations before
#: the substitution takes over.
LD_RATE_ROUNDS = 50


def schweitzer(arrays: NetworkArrays, *, tol: float = 1e-10, max_iter: int = 10_000) -> Solution:
    """Schweitzer-Bard approximate MVA of a closed multi-class network.

    With ``Q_mk`` the mean number of class-``k`` requests at station ``m``,
    an arriving class-``k`` request is assumed to see ``Q_m - Q_mk / N_k``
    requests there (the full population's queue, less one ``N_k``-th of its
    own class) [1]_ [2]_, which closes the MVA equations at population ``N``:

    - single-server PS queue: ``R_mk = D_mk * (1 + Q_m - Q_mk / N_k)``;
    - single-server FCFS queue: ``R_mk = D_mk + sum_j D_mj * A_mkj`` with
      ``A_mkj = Q_mj * (N_j - [j = k]) / N_j`` (each request ahead brings
      its own demand; equal to the PS formula when the demands are equal,
      and the usual heuristic otherwise);
    - delay: ``R_mk = D_mk``;
    - load-dependent: ``R_mk = D_mk * E[(J + 1) / a_m(J + 1)]`` over an
      approximate distribution of the number ``J`` an arrival finds (Notes);

    then ``X_k = N_k / (Z_k + sum_m R_mk)`` and ``Q_mk = X_k * R_mk``, iterated
    from ``Q_mk = N_k / (stations class k visits)``.

    Parameters
    ----------
    arrays : NetworkArrays
        A network whose classes are all closed. Demands ``D_mk`` in seconds,
        populations ``N_k`` (clients), think times ``Z_k`` in seconds (a
        per-class delay outside the stations).
    tol : float
        Stop when, at every sweep point, the largest relative change of a
        queue length over one iteration is below ``tol``.
    max_iter : int
        Iteration limit (>= 0). Reaching it is not an error here: the result
        says ``converged=False`` and :func:`hermes_qn.solve` raises
        :class:`~hermes_qn.errors.ConvergenceError`.

    Returns
    -------
    Solution
        ``throughput`` (requests/s, ``(*S, K)``), ``residence_time`` (seconds
        per request at each station, think time excluded, ``(*S, M, K)``),
        ``queue_length`` (``X_k * R_mk``, requests), ``utilization`` (from
        :func:`~hermes_qn.solvers.base.station_utilization`),
        ``method="schweitzer-amva"``, and ``iterations``, ``residual`` (the
        largest relative queue-length change of the last iteration, over all
        sweep points) and ``converged``.

    Raises
    ------
    ValidationError
        If a class is open, has a population below 1, or has zero demand
        everywhere and zero think time; or ``tol``/``max_iter`` is invalid.

    Notes
    -----
    *Accuracy.* Largest relative throughput error over the classes, against
    :func:`~hermes_qn.solvers.mva.exact_mva`, on seeded random networks of
    1-3 classes and 2-4 stations (``tests/test_amva.py``, ``_error_network``;
    300 networks per row, 100 for 1-30 clients):

    ======================================  ========  ========  =======
    networks (clients per class)             median    95th %    worst
    ======================================  ========  ========  =======
    single-server and delay (1-8)              3.4 %     7.7 %    19 %
    single-server and delay (1-30)             1.1 %     5.4 %     9 %
    with load-dependent stations (1-8)         3.3 %     8.6 %    21 %
    with load-dependent stations (1-30)        1.4 %     7.9 %    12 %
    ======================================  ========  ========  =======

    Small populations are the hard case; the error falls roughly like
    ``1/N`` and vanishes once a bottleneck saturates. A batching station
    (20 ms + 0.4 ms per request, cap 64) behind a prefill queue: 1.6 % at
    200 clients, 3e-5 at 2000.

    *Load-dependent stations.* The station's marginal distribution ``p(j)``
    of the number present, ``j = 0..T`` (``T`` the clients of the classes
    that visit it), obeys the exact MVA recursion
    ``p(j) a(j) = sum_k X_k D_mk p_k(j - 1)`` [4]_, where ``p_k`` is what a
    class-``k`` arrival finds, exactly the marginal of the population
    ``N - e_k``. In the spirit of Schweitzer's assumption, ``p_k`` is taken
    to be ``p`` with one class-``k`` customer removed: in state ``j`` he was
    at this station with probability ``pi_k(j) = min(1, j Q_mk / (Q_m N_k))``
    (class ``k``'s share of those present, over its population; 1 when all
    ``T`` are there), so ``p_k(j) = p(j) (1 - pi_k(j)) + p(j + 1) pi_k(j + 1)``
    keeps Schweitzer's mean ``Q_m - Q_mk / N_k``. Given the throughputs and
    the ``pi_k``, the recursion
    ``p(j) (a(j) - sum_k X_k D_mk pi_k(j)) = p(j - 1) sum_k X_k D_mk (1 - pi_k(j - 1))``
    gives ``p`` directly, in logarithms (no ``1 - sum`` cancellation, no
    overflow with thousands of servers or clients), and
    ``R_mk = D_mk * sum_j p_k(j) (j + 1) / a(j + 1)``. For a single server
    this is the formula above. Cost: ``O(K T)`` per load-dependent station,
    sweep point and evaluation. Measured on networks with one 2-8 server
    station (150 networks, 1-24 clients per class), median / worst
    throughput error: this method 1.5 % / 6.8 %; Seidmann's transformation
    (a queue of demand ``D / c`` plus a delay of ``(c - 1) D / c``) [5]_
    2.7 % / 12.8 % (``test_load_dependent_approximation_beats_seidmann``).
    In an early comparison the product-form birth-death chain at the current
    throughput, truncated at ``N - 1`` customers, was also less accurate
    (median 3.6 % against 3.0 %, worst 19 % against 12 %). Stations whose
    rates are constant up to the population are solved as a single-server
    queue of demand ``D / a(1)``, and those with ``a(j) = j a(1)`` for every
    reachable ``j`` (e.g. at least as many servers as clients) as a delay of
    demand ``D / a(1)``, as :func:`~hermes_qn.solvers.mva.exact_mva` does.
    FCFS load-dependent stations are treated as PS (same means in product form).

    *Solution method.* Given the throughputs ``X``, each single-server
    station's equations are linear in its queue lengths and solve in closed
    form, and the load-dependent marginals follow from the recursion, so the
    fixed point reduces to ``K`` equations ``X_k (Z_k + R_k(X)) = N_k``:
    Newton's method with a feasibility-keeping backtracking line search
    (alternating with updates of the ``pi_k`` when load-dependent stations
    are present; its steps stop short of a load-dependent station's top,
    ``sum_k X_k D_mk = a(T)``, unless the station is already there: past it
    the marginal is clamped to a point mass at ``T``, the residence times
    stop depending on ``X``, and Newton stalled there, leaving a nearly
    saturated station to a substitution that cycled, as on the network of
    ``test_schweitzer_converges_on_multiserver_network_found_by_hypothesis``),
    then successive substitution, Anderson-accelerated [6]_,
    until the largest relative change of a queue length over one step of
    the original iteration (and of a throughput, with load-dependent
    stations) is below ``tol`` at every point. Points are dropped from the
    computation as they converge. Typically 5-20 iterations; 8 classes of
    100 clients over 20 stations take about 1.5 ms.

    References
    ----------
    .. [1] P. Schweitzer, "Approximate analysis of multiclass closed networks
       of queues", Proc. Int. Conf. Stochastic Control and Optimization,
       Amsterdam, 1979, pp. 25-29.
    .. [2] Y. Bard, "Some extensions to multiclass queueing network analysis",
       in Performance of Computer Systems, North-Holland, 1979, pp. 51-62;
       E. D. Lazowska, J. Zahorjan, G. S. Graham and K. C. Sevcik,
       *Quantitative System Performance*, Prentice-Hall, 1984, sec. 7.4.3.
    .. [3] K. M. Chandy and D. Neuse, "Linearizer: a heuristic algorithm for
       queueing network models of computing systems", Comm. ACM
       25(2):126-134, 1982.
    .. [4] M. Reiser and S. S. Lavenberg, "Mean-value analysis of closed
       multichain queuing networks", J. ACM 27(2):313-322, 1980.
    .. [5] A. Seidmann, P. J. Schweitzer and S. Shalev-Oren, "Computerized
       closed queueing network models of flexible manufacturing systems",
       Large Scale Systems 12:91-107, 1987.
    .. [6] H. F. Walker and P. Ni, "Anderson acceleration for fixed-point
       iterations", SIAM J. Numer. Anal. 49(4):1715-1735, 2011.

    Examples
    --------
    One client alternating between 1 s of thinking and 0.5 s at a CPU
    completes ``1 / (1 + 0.5)`` requests per second (with one client the
    approximation is exact):

    >>> import hermes_qn as hq
    >>> net = hq.Network(stations={"cpu": hq.Queue()},
    ...                  classes={"users": hq.Closed(population=1, think_time=1.0)},
    ...                  demands={"users": {"cpu": 0.5}})
    >>> sol = schweitzer(net.arrays())
    >>> round(float(sol.throughput[0]), 12), sol.converged
    (0.666666666667, True)
    """
    model = _Model.build(arrays, tol, max_iter, "schweitzer")
    M, K = model.demand.shape[-2:]
    demand = model.demand.reshape(-1, M, K)
    population = arrays.population.astype(float).reshape(-1, K)
    think = model.think.reshape(-1, K)
    state = _initial_state(demand, population, think)
    state, iterations, residual = _core(model, demand, population, think, state, None, tol,
                                        max_iter)
    shape = model.sweep_shape
    state = _State(queue=state.queue.reshape(*shape, M, K),
                   residence=state.residence.reshape(*shape, M, K),
                   throughput=state.throughput.reshape(*shape, K))
    return _solution(model, arrays, state, "schweitzer-amva", iterations,
                     float(residual.max(initial=0.0)), tol)


def linearizer(arrays: NetworkArrays, *, tol: float = 1e-10, max_iter: int = 10_000) -> Solution:
    """Chandy-Neuse Linearizer approximate MVA of a closed multi-class network.

    Linearizer [3]_ refines Schweitzer's estimate of what an arriving
    class-``k`` request sees, ``Q_mj(N - e_k) ~ (N_j - [j = k]) Q_mj(N) / N_j``,
    by a correction ``F_mkj`` assumed to be the same at ``N`` and at the
    ``K`` populations ``N - e_k``:

    ``Q_mj(N - e_k) = (N_j - [j = k]) * (Q_mj(N) / N_j + F_mkj)``,
    ``F_mkj = Q_mj(N - e_k) / (N_j - [j = k]) - Q_mj(N) / N_j``.

    Each outer iteration runs the core (the Schweitzer iteration with the
    correction, see :func:`schweitzer`) to convergence at ``N`` and at every
    ``N - e_k`` with the current ``F`` -- ``K + 1`` core solves, done here as
    one batched solve -- then recomputes ``F`` from their queue lengths. The
    published algorithm stops after three outer iterations; this one
    continues until ``F`` is a fixed point to ``tol`` (the same fixed point,
    reached more precisely).

    Parameters
    ----------
    arrays : NetworkArrays
        A network whose classes are all closed (see :func:`schweitzer`).
    tol : float
        Tolerance of the core iterations and of the outer iteration (largest
        relative change of a queue length, over all sweep points).
    max_iter : int
        Limit on the core iterations summed over all outer iterations (>= 0).

    Returns
    -------
    Solution
        As :func:`schweitzer`, with ``method="linearizer"``; ``iterations``
        counts core iterations (each over all ``K + 1`` populations) and
        ``residual`` is the larger of the last core and outer changes.

    Raises
    ------
    ValidationError
        As :func:`schweitzer`.

    Notes
    -----
    *Accuracy* (largest relative throughput error, same networks as in
    :func:`schweitzer`): single-server and delay stations, 1-8 clients per
    class: median 0.14 %, 95th percentile 0.55 %, worst 1.1 %; 1-30 clients:
    0.05 % / 0.5 % / 2.3 %. With load-dependent stations, 1-8 clients:
    0.65 % / 7.1 % / 21 %; 1-30 clients: 0.4 % / 5.3 % / 13 %. At
    load-dependent stations the correction is not applied to the
    distribution an arrival finds (the removal probabilities ``pi_k`` of
    :func:`schweitzer` use Schweitzer's ``Q_mk / N_k``): with it, the outer
    iteration stalled near saturation (thousands of iterations, or none
    converging, on a batching station at 300-400 clients), so Linearizer's
    gain there comes only through the other stations and its error at a
    dominant load-dependent station is Schweitzer's.

    *Convergence.* The core solves use the Newton method of
    :func:`schweitzer`; the update of ``F`` is Anderson-accelerated per sweep
    point (under-relaxed by :data:`LD_DAMPING` with load-dependent stations,
    whose undamped iteration can cycle with period 2). The outer residual is
    the change the new ``F`` makes to the arrival queues
    ``(N_j - [j = k]) F_mkj``, relative to ``Q_mj(N)``; converged points drop
    out. The corrected arrival queues are kept within ``[0, N_j - [j = k]]``:
    far from the fixed point (and with FCFS stations whose classes have
    different demands) the correction can otherwise drive them negative.
    Newton solves the core equations without that clamp, so where its root
    puts an arrival queue outside the range the substitution starts from the
    previous outer iteration's state instead (from the root it cycled: 2 of
    400 random networks with FCFS and load-dependent stations did not
    converge). Known failure, about 1 in 1000 random networks of up to 200
    clients per class: two nearly saturated stations, one FCFS with
    class-dependent demands. The corrections are then large, the clamped
    core equations at some ``N - e_k`` have two solutions, and the outer
    iteration jumps between them (``converged=False``; see
    ``test_linearizer_converges_beside_a_nearly_saturated_multiserver_station``).

    *Cost.* About ``K + 1`` times Schweitzer's per core iteration (and
    ``O(M K^2)`` per population for the corrected arrival queues), times a
    few outer iterations.

    References
    ----------
    See :func:`schweitzer`.
    """
    model = _Model.build(arrays, tol, max_iter, "linearizer")
    M, K = model.demand.shape[-2:]
    P = K + 1
    eye = np.eye(K)
    full = arrays.population.astype(float).reshape(-1, K)  # (B, K)
    B = len(full)
    # Populations N - e_1, ..., N - e_K, N of every point: (B, P, K).
    population = np.concatenate([full[:, None, :] - eye, full[:, None, :]], axis=1)
    demand = np.broadcast_to(model.demand.reshape(B, 1, M, K), (B, P, M, K))
    think = np.broadcast_to(model.think.reshape(B, 1, K), (B, P, K))
    start = _initial_state(demand.reshape(B * P, M, K), population.reshape(B * P, K),
                           think.reshape(B * P, K))
    queue = start.queue.reshape(B, P, M, K)
    residence = start.residence.reshape(B, P, M, K)
    throughput = start.throughput.reshape(B, P, K)
    correction = np.zeros((B, M, K, K))
    fewer = np.clip(full[:, None, :] - eye, 0.0, None)  # (B, K, K): N_j - [j = k], index [k, j]
    residual = np.full(B, np.inf)
    active = np.ones(B, dtype=bool)
    iterations = 0
    # The update of F is Anderson-accelerated too; with load-dependent stations its
    # plain iteration can cycle with period 2, so it is also under-relaxed.
    outer_mixer = _Anderson(LD_DAMPING if len(model.ld) else 1.0)
    while active.any() and iterations < max_iter:
        rows = np.flatnonzero(active)
        b = len(rows)
        state = _State(queue=queue[rows].reshape(b * P, M, K),
                       residence=residence[rows].reshape(b * P, M, K),
                       throughput=throughput[rows].reshape(b * P, K))
        corr = np.broadcast_to(correction[rows][:, None], (b, P, M, K, K)).reshape(b * P, M, K, K)
        state, used, inner = _core(model, demand[rows].reshape(b * P, M, K),
                                   population[rows].reshape(b * P, K),
                                   think[rows].reshape(b * P, K), state, corr, tol,
                                   max_iter - iterations)
        iterations += used
        q = state.queue.reshape(b, P, M, K)
        queue[rows], residence[rows] = q, state.residence.reshape(b, P, M, K)
        throughput[rows] = state.throughput.reshape(b, P, K)
        few = fewer[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            # F[m, k, j] = Q_mj(N - e_k) / (N_j - [j = k]) - Q_mj(N) / N_j
            reduced = np.swapaxes(q[:, :K], 1, 2)  # (b, M, K(k), K(j))
            per_reduced = np.where(few[:, None] > 0,
                                   reduced / np.where(few > 0, few, 1.0)[:, None], 0.0)
            per_full = q[:, K] / np.where(full[rows] > 0, full[rows], 1.0)[:, None, :]
        new_correction = np.where(few[:, None] > 0, per_reduced - per_full[:, :, None, :], 0.0)
        # Outer residual: how much the new F moves the arrival queues (N_j - [j = k]) F_mkj,
        # relative to the queue length Q_mj(N) they correct.
        shift = (few[:, None] * np.abs(new_correction - correction[rows])).reshape(b, -1)
        base = np.broadcast_to(q[:, K, :, None, :], (b, M, K, K)).reshape(b, -1)
        outer = _point_change(base + shift, base)
        residual[rows] = np.maximum(inner.reshape(b, P).max(axis=1), outer)
        active = residual >= tol
        correction[rows] = outer_mixer.step(correction[rows].reshape(b, -1),
                                            new_correction.reshape(b, -1),
                                            rows if b < B else None).reshape(b, M, K, K)
    shape = model.sweep_shape
    final = _State(queue=queue[:, K].reshape(*shape, M, K),
                   residence=residence[:, K].reshape(*shape, M, K),
                   throughput=throughput[:, K].reshape(*shape, K))
    return _solution(model, arrays, final, "linearizer", iterations,
                     float(residual.max(initial=0.0)), tol)


# ----------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Model:
    """The network's static parts, with reducible load-dependent stations reduced.

    ``demand`` (*S, M, K) is in seconds at one-job speed, except that a
    load-dependent station solved as a queue or delay has ``D / a(1)``.
    ``kind`` (M,) uses QUEUE / DELAY / LOAD_DEPENDENT after that reduction.
    ``ld`` indexes the remaining load-dependent stations; ``ld_log_rate``
    (L, T + 2) is ``log a(n)`` and ``ld_weight`` (L, T + 2) is ``n / a(n)``
    for ``n = 0..T + 1`` (column 0: 0), ``T`` the largest total population.
    """

    demand: np.ndarray
    think: np.ndarray
    kind: np.ndarray
    fcfs: np.ndarray
    ld: np.ndarray
    ld_log_rate: np.ndarray
    ld_weight: np.ndarray
    sweep_shape: tuple[int, ...]

    @classmethod
    def build(cls, arrays: NetworkArrays, tol: float, max_iter: int, name: str) -> "_Model":
        _amva_iv(arrays, tol, max_iter, name)
        total = int(arrays.population.sum(axis=-1).max())
        table = arrays.rate_multipliers(total + 1)  # (M, total + 2), a(n) for n = 0..total+1
        demand = arrays.demand.astype(float).copy()
        kind = np.asarray(arrays.station_kind).copy()
        n = np.arange(total + 2)
        for m in np.flatnonzero(kind == LOAD_DEPENDENT):
            rates = table[m, 1:total + 1]  # a(1..total): what up to `total` clients can meet
            if np.all(rates == rates[0]):
                kind[m] = QUEUE
                demand[..., m, :] /= rates[0]
            elif np.all(rates == n[1:total + 1] * rates[0]):
                kind[m] = DELAY
                demand[..., m, :] /= rates[0]
        ld = np.flatnonzero(kind == LOAD_DEPENDENT)
        rates = table[ld]
        weight = np.zeros_like(rates)
        weight[:, 1:] = n[1:] / rates[:, 1:]
        log_rate = np.log(rates)  # column 0 is log 1 = 0 and unused
        return cls(demand=demand, think=arrays.think_time.astype(float), kind=kind,
                   fcfs=np.asarray(arrays.fcfs, dtype=bool) & (kind == QUEUE), ld=ld,
                   ld_log_rate=log_rate, ld_weight=weight, sweep_shape=arrays.sweep_shape)


@dataclass
class _State:
    """The iterate: queue lengths (..., M, K), residence times (..., M, K), throughputs (..., K)."""

    queue: np.ndarray
    residence: np.ndarray
    throughput: np.ndarray


def _amva_iv(arrays: NetworkArrays, tol: float, max_iter: int, name: str) -> None:
    """Check the network and the options; messages name the class and what is valid."""
    if not (isinstance(tol, (int, float, np.floating, np.integer)) and np.isfinite(tol) and tol > 0):
        raise ValidationError(f"{name}: tol={tol!r}; valid: a positive finite number")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValidationError(f"{name}: max_iter={max_iter!r}; valid: an integer >= 0")
    check_closed_classes(arrays, name, "open and mixed networks go through hermes_qn.solve")


def _initial_state(demand: np.ndarray, population: np.ndarray, think: np.ndarray) -> _State:
    """Each class spread evenly over the stations it visits; throughputs at the
    no-queueing bound, scaled so that no station is loaded beyond one half."""
    visits = demand > 0
    count = visits.sum(axis=-2)  # (..., K)
    queue = np.where(visits, (population / np.maximum(count, 1))[..., None, :], 0.0)
    light = population / (think + demand.sum(axis=-2))
    load = (light[..., None, :] * demand).sum(axis=-1).max(axis=-1)
    throughput = light * np.minimum(1.0, 0.5 / np.maximum(load, 1e-300))[..., None]
    return _State(queue=queue, residence=np.zeros_like(queue), throughput=throughput)


def _support(ld_demand: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Most customers that can be at each load-dependent station: clients of the classes
    that visit it. ``ld_demand`` (..., L, K), ``population`` (..., K) -> (..., L) int."""
    return np.rint(((ld_demand > 0) * population[..., None, :]).sum(axis=-1)).astype(np.int64)


def _point_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Per point (first axis), the largest ``|new - old| / new`` where ``new > 0``."""
    change = np.abs(new - old)
    ratio = np.divide(change, new, out=np.zeros_like(change), where=new > 0)
    return ratio.reshape(len(ratio), -1).max(axis=1, initial=0.0)


def _relative_change(new: np.ndarray, old: np.ndarray) -> float:
    """Largest ``|new - old| / new`` over the entries where ``new > 0``."""
    if new.size == 0:
        return 0.0
    change = np.abs(new - old)
    ratio = np.divide(change, new, out=np.zeros_like(change), where=new > 0)
    return float(ratio.max())


def _core(model: _Model, demand: np.ndarray, population: np.ndarray, think: np.ndarray,
          state: _State, correction: np.ndarray | None, tol: float,
          max_iter: int) -> tuple[_State, int, np.ndarray]:
    """Solve the (corrected) Schweitzer equations at every point of a flat batch.

    Shapes: ``demand`` (B, M, K); ``population`` and ``think`` (B, K);
    ``correction`` (B, M, K, K), ``[m, k, j]`` the Linearizer term for class
    ``j`` as seen by a class-``k`` arrival, or None (Schweitzer). Newton's
    method in the throughputs (:func:`_newton`) does the work; then
    successive substitution, Anderson-accelerated (:class:`_Anderson`), runs
    on the points not yet converged until the largest relative change of a
    queue length (and, with load-dependent stations, of a throughput) is below
    ``tol``. Returns the state, the iterations run and each point's residual.
    """
    B, M, K = demand.shape
    kind = model.kind
    is_queue = (kind == QUEUE)[:, None]
    is_delay = (kind == DELAY)[:, None]
    fcfs = np.flatnonzero(model.fcfs)
    damping = LD_DAMPING if len(model.ld) else 1.0
    safe_population = np.where(population > 0, population, 1.0)
    fewer = None
    if correction is None:
        offset_ps = np.zeros_like(demand)
        offset_fcfs = np.zeros_like(demand)
    else:
        fewer = np.clip(population[:, None, :] - np.eye(K), 0.0, None)  # (B, K(k), K(j))
        offset_ps = (fewer[:, None, :, :] * correction).sum(axis=-1)  # sum_j (N_j - d_jk) F_mkj
        offset_fcfs = (fewer[:, None, :, :] * correction * demand[:, :, None, :]).sum(axis=-1)
    ld_ctx = _LdContext.build(model, demand, population) if len(model.ld) else None
    iterations = 0
    # Newton updates the throughputs in place; Linearizer may need the start back (below).
    start = None if correction is None else _State(
        queue=state.queue.copy(), residence=state.residence.copy(),
        throughput=state.throughput.copy())
    if ld_ctx is None:
        if max_iter > 1:
            state, iterations = _newton(model, demand, population, think, state, offset_ps,
                                        offset_fcfs, tol, max_iter - 1)
    else:
        # Newton in X with the load-dependent stations' removal rates held fixed, then the
        # rates from the new queue lengths, until they settle.
        for _ in range(LD_RATE_ROUNDS):
            if iterations >= max_iter - 1:
                break
            ld_queue = state.queue[:, model.ld, :]
            # Expected drop of the station's population when one class-k customer leaves:
            # Q_mk / N_k, Schweitzer's estimate, for Linearizer too (its correction here made
            # the outer iteration stall near saturation).
            removed = ld_queue / safe_population[:, None, :]
            rate = ld_ctx.removal_rate(ld_queue, removed)
            before = state.queue
            state, used = _newton(model, demand, population, think, state, offset_ps, offset_fcfs,
                                  tol, max_iter - 1 - iterations, ld_ctx, rate)
            iterations += used
            if _relative_change(state.queue, before) < tol:
                break
    if start is not None:
        state = _unless_clamped(state, start, population, fewer, correction)
    queue, throughput, residence = state.queue.copy(), state.throughput.copy(), state.residence.copy()
    residual = np.full(B, np.inf)
    active = np.ones(B, dtype=bool)
    accelerator = _QueueAnderson((M, K), population, damping)
    while iterations < max_iter and active.any():
        rows = None if active.all() else np.flatnonzero(active)

        def sub(a):
            return a if rows is None else a[rows]
        q, x, d = sub(queue), sub(throughput), sub(demand)
        share = q / sub(safe_population)[:, None, :]  # Q_mk / N_k
        if correction is None:
            seen = q.sum(axis=-1, keepdims=True) - share  # (b, M, K): total an arrival finds
            if len(fcfs):
                d_f = d[:, fcfs, :]
                seen_work = (d_f * q[:, fcfs, :]).sum(axis=-1, keepdims=True) \
                    - d_f * share[:, fcfs, :]
        else:
            few = sub(fewer)[:, None, :, :]
            # Corrected arrival queues, kept between 0 and N_j - [j = k]: far from the fixed
            # point the correction can otherwise make them negative (and Newton's solution of
            # the unclamped equations is then refined here).
            per_class = np.clip(few * (share[:, :, None, :] + sub(correction)), 0.0, few)
            seen = per_class.sum(axis=-1)  # (b, M, K)
            if len(fcfs):
                seen_work = (per_class[:, fcfs, :, :] * d[:, fcfs, None, :]).sum(axis=-1)
        res = np.where(is_queue, d * (1.0 + seen), np.where(is_delay, d, 0.0))
        if len(fcfs):
            d_f = d[:, fcfs, :]
            res[:, fcfs, :] = np.where(d_f > 0, d_f + seen_work, 0.0)
        if ld_ctx is not None:
            ld_queue = q[:, model.ld, :]
            removed = ld_queue / sub(safe_population)[:, None, :]  # as above
            rate = ld_ctx.removal_rate(ld_queue, removed)
            res[:, model.ld, :] = ld_ctx.residence(x, rate, rows)[0]
        cycle = sub(think) + res.sum(axis=-2)
        # A class emptied for Linearizer (N_k - 1 = 0) may have no time anywhere: X = 0.
        new_x = np.where(cycle > 0, sub(population) / np.where(cycle > 0, cycle, 1.0), 0.0)
        new_q = new_x[:, None, :] * res
        change = _point_change(new_q, q)
        if ld_ctx is not None:  # the marginals were built from the iterate's throughputs
            change = np.maximum(change, _point_change(new_x, x))
        iterations += 1
        done = change < tol
        stepped_q, stepped_x = accelerator.step(q, x, new_q, new_x, rows)
        where = np.arange(B) if rows is None else rows
        queue[where] = np.where(done[:, None, None], new_q, stepped_q)
        throughput[where] = np.where(done[:, None], new_x, stepped_x)
        residence[where] = res
        residual[where] = change
        active[where] = ~done
    return _State(queue=queue, residence=residence, throughput=throughput), iterations, residual


def _unless_clamped(solved: _State, start: _State, population: np.ndarray, fewer: np.ndarray,
                    correction: np.ndarray) -> _State:
    """Newton's iterate where it keeps the corrected arrival queues in range, else ``start``.

    Newton solves the corrected equations without the clamp of the arrival queues
    ``(N_j - [j = k]) (Q_mj / N_j + F_mkj)`` to ``[0, N_j - [j = k]]`` that the
    substitution applies. Where its iterate puts one outside, it is the root of other
    equations (with negative residence times, e.g. at an FCFS station whose classes
    have different demands), and the substitution started there can cycle (it did, on
    the networks of ``test_linearizer_converges_where_newton_left_the_clamped_arrival_queues``);
    those points start from ``start`` (the previous outer iteration's state) instead.
    Shapes: (B, M, K) and (B, K) states, ``population`` (B, K), ``fewer`` (B, K, K),
    ``correction`` (B, M, K, K).
    """
    share = solved.queue / np.where(population > 0, population, 1.0)[:, None, :]
    few = fewer[:, None, :, :]
    seen = few * (share[:, :, None, :] + correction)  # (B, M, K(k), K(j))
    slack = 1e-9 * np.maximum(few, 1.0)
    outside = ((seen < -slack) | (seen > few + slack)).reshape(len(seen), -1).any(axis=1)
    if not outside.any():
        return solved
    return _State(queue=np.where(outside[:, None, None], start.queue, solved.queue),
                  residence=np.where(outside[:, None, None], start.residence, solved.residence),
                  throughput=np.where(outside[:, None], start.throughput, solved.throughput))


def _newton(model: _Model, demand: np.ndarray, population: np.ndarray, think: np.ndarray,
            state: _State, offset_ps: np.ndarray, offset_fcfs: np.ndarray, tol: float,
            max_iter: int, ld_ctx: "_LdContext | None" = None,
            ld_rate: np.ndarray | None = None) -> tuple[_State, int]:
    """Solve the core equations by Newton's method in the throughputs ``X``.

    With ``X`` fixed, each single-server station's (corrected) Schweitzer
    equations are linear in its queue lengths and solve in closed form. With
    ``u_mk = X_k D_mk / N_k``, ``c_mk = X_k D_mk / (1 + u_mk)``,
    ``C_m = sum_k c_mk`` and an offset ``o_mk`` (PS: ``1 + phi_mk``, FCFS:
    ``D_mk + psi_mk``; ``phi``, ``psi`` the Linearizer terms, 0 for
    Schweitzer), ``V_m = sum_k c_mk o_mk / (1 - C_m)`` (PS: the queue
    length ``Q_m``; FCFS: the work ``sum_j D_mj Q_mj``) and
    ``R_mk = b_mk (o_mk + V_m) / (1 + u_mk)`` with ``b = D`` (PS) or 1
    (FCFS). Load-dependent stations, given their removal rates ``ld_rate``
    (held fixed here; the caller updates them), are a function of ``X`` too
    (:meth:`_LdContext.residence`). What remains is ``K`` equations
    ``X_k (Z_k + sum_m R_mk) = N_k``, solved by Newton (analytic Jacobian for
    the single-server stations, forward differences for the load-dependent
    ones) with a step that keeps the iterate feasible (``C_m < 1``, positive
    birth-death denominators) and decreases ``max_k |X_k (Z_k + R_k) / N_k - 1|``.
    Only points not yet converged are computed. Arrays are flat: (B, M, K),
    (B, K). Returns the state at the last iterate (queue lengths ``X R``) and
    the iterations used; the caller checks the fixed point by substitution.
    """
    is_ps = (model.kind == QUEUE) & ~model.fcfs
    is_queue = (is_ps | model.fcfs)[:, None]
    delay = np.where((model.kind == DELAY)[:, None], demand, 0.0)
    queue_demand = np.where(is_queue, demand, 0.0)
    coefficient = np.where(is_ps[:, None], demand, (demand > 0) * 1.0) * is_queue
    offset = np.where(is_ps[:, None], 1.0 + offset_ps, demand + offset_fcfs)
    safe_population = np.where(population > 0, population, 1.0)
    per_job = queue_demand / safe_population[:, None, :]  # D_mk / N_k
    ld = model.ld
    K = demand.shape[-1]
    eye = np.eye(K)
    goal = 1e-3 * tol

    def evaluate(rows, x):
        """Residence times (b, M, K) at throughputs x (b, K) of points ``rows`` (None: all),
        the parts the Jacobian needs, whether x is feasible (b,), and the merit (b,)."""
        def sub(a):
            return a if rows is None else a[rows]
        grow = 1.0 + x[:, None, :] * sub(per_job)  # 1 + u_mk
        c = x[:, None, :] * sub(queue_demand) / grow
        free = 1.0 - c.sum(axis=-1)  # 1 - C_m
        ok = (x >= 0).all(axis=-1) & (free > 0).all(axis=-1) & np.isfinite(x).all(axis=-1)
        safe_free = np.where(free > 0, free, 1.0)
        o = sub(offset)
        v = (c * o).sum(axis=-1) / safe_free
        residence = sub(coefficient) * (o + v[:, :, None]) / grow + sub(delay)
        if ld_ctx is not None:
            ld_res, ld_ok = ld_ctx.residence(x, sub(ld_rate), rows)
            residence[:, ld, :] = ld_res
            ok &= ld_ok
        sp = sub(safe_population)
        merit = np.abs((x * (sub(think) + residence.sum(axis=-2)) - sub(population)) / sp).max(axis=-1)
        return residence, (grow, safe_free, v), ok, np.where(ok, merit, np.inf)

    all_rows = np.arange(len(population))
    x = state.throughput
    residence, parts, ok, merit = evaluate(None, x)
    if not ok.all():
        fresh = all_rows[~ok]
        x = x.copy()
        x[fresh] = _light_throughput(model, demand[fresh], population[fresh], think[fresh])
        r2, p2, ok2, m2 = evaluate(fresh, x[fresh])
        residence[fresh], merit[fresh] = r2, m2
        for whole, part in zip(parts, p2):
            whole[fresh] = part
    grow, free, v = parts
    active = merit >= goal
    history = [merit.copy()]
    iterations = 0
    while iterations < max_iter and active.any():
        iterations += 1
        everyone = active.all()
        rows = all_rows[active]

        def sub(a):
            return a if everyone else a[rows]
        xa, ga, fa, va, ra = sub(x), sub(grow), sub(free), sub(v), sub(residence)
        qd, cf, pj = sub(queue_demand), sub(coefficient), sub(per_job)
        cycle = sub(think) + ra.sum(axis=-2)
        error = xa * cycle - sub(population)
        slope = qd / ga**2  # dC_m / dX_j
        dv = (sub(offset) + va[:, :, None]) * slope / fa[:, :, None]  # dV_m / dX_j, (b, M, J)
        shrink = np.where(is_queue, ra, 0.0) * pj / ga  # -(d/dX_k of R_mk), single servers
        d_res = np.einsum("bmk,bmj->bkj", cf / ga, dv)  # sum_m dR_mk / dX_j
        jac = eye * (cycle - xa * shrink.sum(axis=-2))[:, :, None] + xa[:, :, None] * d_res
        if ld_ctx is not None:
            base = ra[:, ld, :].sum(axis=-2)  # (b, K)
            for j in range(K):
                h = 1e-7 * np.maximum(xa[:, j], 1e-12)
                bumped = xa.copy()
                bumped[:, j] += h
                column = (ld_ctx.residence(bumped, sub(ld_rate), None if everyone else rows)[0]
                          .sum(axis=-2) - base) / h[:, None]
                jac[:, :, j] += xa * column
        try:
            step = np.linalg.solve(jac, -error[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break
        # Backtracking line search, on the points still looking for a step; the first trial
        # goes at most 99.5 % of the way to a load-dependent station's feasibility boundary
        # (linear in X), so that a solution on it (a saturated station) is approached fast.
        pending = np.arange(len(rows))
        length = np.ones(len(rows))
        if ld_ctx is not None:
            limit = ld_ctx.step_limit(xa, step, sub(ld_rate), None if everyone else rows)
            length = np.minimum(length, 0.995 * limit)
        for _ in range(40):
            whole = len(pending) == len(population)
            trial = xa[pending] + length[pending, None] * step[pending]
            t_res, t_parts, t_ok, t_merit = evaluate(None if whole else rows[pending], trial)
            good = t_ok & (t_merit <= (1.0 - 1e-4 * length[pending]) * merit[rows[pending]])
            accepted = rows[pending[good]]
            x[accepted] = trial[good]
            residence[accepted] = t_res[good]
            merit[accepted] = t_merit[good]
            for whole, part in zip((grow, free, v), t_parts):
                whole[accepted] = part[good]
            pending = pending[~good]
            if not len(pending):
                break
            length[pending] *= 0.5
        stuck = rows[pending]  # no acceptable step: leave them to the substitution
        history.append(merit.copy())
        if len(history) > 4:  # less than 10 % progress in 4 iterations: no root nearby
            stuck = np.union1d(stuck, all_rows[merit > 0.9 * history.pop(0)])
        active = merit >= goal
        active[stuck] = False
    return _State(queue=x[:, None, :] * residence, residence=residence, throughput=x), iterations


def _light_throughput(model: _Model, demand: np.ndarray, population: np.ndarray,
                      think: np.ndarray) -> np.ndarray:
    """A feasible start: the no-queueing throughput bound, scaled so that no station is
    loaded beyond half of its slowest speed (1 for a single server)."""
    light = population / (think + demand.sum(axis=-2))
    slowest = np.ones(demand.shape[-2])
    if len(model.ld):
        slowest[model.ld] = np.exp(model.ld_log_rate[:, 1:].min(axis=-1))
    slowest[model.kind == DELAY] = np.inf
    load = ((light[..., None, :] * demand).sum(axis=-1) / slowest).max(axis=-1)
    return light * np.minimum(1.0, 0.5 / np.maximum(load, 1e-300))[..., None]


ANDERSON_DEPTH = 5


class _Anderson:
    """Anderson acceleration (type II, with mixing) of a fixed-point map, per sweep point.

    Each point keeps its last few iterates and residuals (flattened to
    (B, n)) and solves its own small least-squares problem, all points at
    once [6]_. ``step(x, g, rows)`` takes the iterate of the points ``rows``
    (all if None; the first call must cover all) and the map's value there,
    and returns their next iterate; where ``accept`` rejects the accelerated
    point (or it is not finite) the plain step ``x + mixing (g - x)`` is
    taken. Points that drop out of ``rows`` are taken to have converged.

    .. [6] H. F. Walker and P. Ni, "Anderson acceleration for fixed-point
       iterations", SIAM J. Numer. Anal. 49(4):1715-1735, 2011.
    """

    def __init__(self, mixing: float, accept=None) -> None:
        self.mixing = mixing
        self.accept = accept
        self.xs: list[np.ndarray] = []
        self.fs: list[np.ndarray] = []

    def step(self, x: np.ndarray, g: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        f = g - x
        if rows is None:
            full_x, full_f = x, f
        else:
            full_x, full_f = self.xs[-1].copy(), self.fs[-1].copy()
            full_x[rows], full_f[rows] = x, f
        self.xs.append(full_x)
        self.fs.append(full_f)
        if len(self.xs) > ANDERSON_DEPTH + 1:
            self.xs.pop(0)
            self.fs.pop(0)
        plain = x + self.mixing * f
        if len(self.xs) < 2:
            return plain

        def sub(a):
            return a if rows is None else a[rows]
        dx = np.stack([sub(b) - sub(a) for a, b in zip(self.xs[:-1], self.xs[1:])], axis=-1)
        df = np.stack([sub(b) - sub(a) for a, b in zip(self.fs[:-1], self.fs[1:])], axis=-1)
        gram = np.einsum("bni,bnj->bij", df, df)
        rhs = np.einsum("bni,bn->bi", df, f)
        scale = np.trace(gram, axis1=-2, axis2=-1)[:, None, None]
        gram = gram + (1e-12 * scale + 1e-300) * np.eye(gram.shape[-1])
        try:
            gamma = np.linalg.solve(gram, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            return plain
        accelerated = plain - np.einsum("bni,bi->bn", dx + self.mixing * df, gamma)
        ok = np.isfinite(accelerated).all(axis=-1)
        if self.accept is not None:
            ok &= self.accept(accelerated, rows)
        return np.where(ok[:, None], accelerated, plain)


class _QueueAnderson:
    """:class:`_Anderson` over queue lengths (b, M, K) and throughputs (b, K); an accelerated
    point must keep them non-negative and no class beyond its population at the stations."""

    def __init__(self, station_class: tuple[int, int], population: np.ndarray, mixing: float) -> None:
        self.shape = station_class
        self.size = station_class[0] * station_class[1]
        self.population = population
        self.mixer = _Anderson(mixing, self._accept)

    def _accept(self, x: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        population = self.population if rows is None else self.population[rows]
        queue = x[:, :self.size].reshape(len(x), *self.shape)
        return (x >= 0).all(axis=-1) & \
            (queue.sum(axis=-2) <= population * (1 + 1e-9)).all(axis=-1)

    def step(self, queue, throughput, new_queue, new_throughput, rows=None):
        def pack(q, x):
            return np.concatenate([q.reshape(len(q), self.size), x], axis=-1)
        out = self.mixer.step(pack(queue, throughput), pack(new_queue, new_throughput), rows)
        return out[:, :self.size].reshape(len(out), *self.shape), out[:, self.size:]


@dataclass(frozen=True)
class _LdContext:
    """Per-solve constants of the load-dependent stations (see :func:`schweitzer`, Notes).

    Flat batch: ``demand`` (B, L, K) seconds, ``support`` (B, L) the most
    customers each station can hold, ``rates`` (L, T) ``a(1..T)``.
    """

    model: _Model
    demand: np.ndarray
    support: np.ndarray
    rates: np.ndarray

    @classmethod
    def build(cls, model: _Model, demand: np.ndarray, population: np.ndarray) -> "_LdContext":
        ld_demand = demand[:, model.ld, :]
        return cls(model=model, demand=ld_demand, support=_support(ld_demand, population),
                   rates=np.exp(model.ld_log_rate[:, 1:-1]))

    @staticmethod
    def removal_rate(ld_queue: np.ndarray, removed: np.ndarray) -> np.ndarray:
        """Probability per customer present that he is the one a class-``k`` departure from
        the network takes away: ``removed / Q_m`` (B, L, K); ``ld_queue`` (B, L, K) the
        queue lengths, ``removed`` the expected drop of the station's population."""
        total = ld_queue.sum(axis=-1, keepdims=True)
        # One customer leaving the network takes at most one from this station (a
        # Linearizer estimate that says otherwise is an extrapolation).
        return np.divide(np.clip(removed, 0.0, 1.0), total, out=np.zeros_like(removed),
                         where=total > 0)

    def _moves(self, rate: np.ndarray, rows: np.ndarray | None):
        """``pi_k(j)`` (b, L, K, J), the support (b, L, 1), ``j`` and the demands (b, L, K)."""
        demand = self.demand if rows is None else self.demand[rows]
        support = (self.support if rows is None else self.support[rows])[..., None]  # (b, L, 1)
        j = np.arange(int(support.max(initial=0)) + 1)  # j = 0..T over these points
        move = np.minimum(1.0, j * rate[..., None])  # (b, L, K, J)
        return np.where(j >= support[..., None], 1.0, move), support, j, demand

    def step_limit(self, throughput: np.ndarray, step: np.ndarray, rate: np.ndarray,
                   rows: np.ndarray | None = None) -> np.ndarray:
        """Largest ``t`` (b,) with ``a(j) - sum_k (X_k + t s_k) D_mk pi_k(j) >= 0`` for every
        ``1 <= j <= T`` of every load-dependent station (``inf`` if the step never leaves).

        The top, ``j = T``, counts only while the station is below it (headroom above
        ``1e-9 a(T)``): beyond it the marginal is clamped to a point mass at ``T`` (see
        :meth:`residence`) and the residence times no longer depend on ``X``, so a step
        across it can leave Newton stalled off a root just below it (a nearly saturated
        station). A station already at its top (e.g. a class alone there without think
        time) must not block the step.
        """
        move, support, j, demand = self._moves(rate, rows)
        base = np.einsum("blk,blkj->blj", throughput[:, None, :] * demand, move)[..., 1:]
        slope = np.einsum("blk,blkj->blj", step[:, None, :] * demand, move)[..., 1:]
        rates = self.rates[:, :len(j) - 1]
        headroom = rates - base
        below_top = (j[1:] == support) & (headroom > 1e-9 * rates)
        inside = ((j[1:] < support) | below_top) & (slope > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(inside, np.maximum(headroom, 0.0) / slope, np.inf)
        return t.min(axis=(-1, -2), initial=np.inf)

    def residence(self, throughput: np.ndarray, rate: np.ndarray,
                  rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Residence times (b, L, K) at the load-dependent stations, and whether every
        birth-death denominator was positive (b,) (else the iterate is infeasible).

        ``throughput`` (b, K) and ``rate`` (b, L, K) (from :meth:`removal_rate`) belong
        to the points ``rows`` of the batch (all of them if None).
        """
        move, support, j, demand = self._moves(rate, rows)
        J = len(j)
        flow = throughput[:, None, :] * demand  # X_k D_mk, (b, L, K)
        # p(j) (a(j) - sum_k X_k D_mk move_k(j)) = p(j-1) sum_k X_k D_mk (1 - move_k(j-1))
        move_flow = np.einsum("blk,blkj->blj", flow, move)
        stay_flow = np.einsum("blk,blkj->blj", flow, 1.0 - move)
        rates = self.rates[:, :J - 1]  # a(1..J-1)
        room = rates - move_flow[..., 1:]
        # Below the top of the support a non-positive denominator has no meaning: the iterate
        # is infeasible. At the top it is the saturation limit (all T customers present, as
        # in a closed loop without think time): p becomes a point mass at T, continuously.
        feasible = ((room > 0) | (j[1:] >= support)).all(axis=(-1, -2))
        room = np.maximum(room, 1e-12 * rates)
        with np.errstate(divide="ignore", invalid="ignore"):  # trial steps may be infeasible
            log_step = np.log(stay_flow[..., :-1] / room)
        log_p = np.zeros((*log_step.shape[:-1], J))
        np.cumsum(log_step, axis=-1, out=log_p[..., 1:])
        log_p = np.where(j <= support, log_p, -np.inf)
        p = np.exp(log_p - log_p.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)  # (b, L, J)
        # What a class-k arrival finds: p_k(i) = p(i) (1 - move(i)) + p(i + 1) move(i + 1),
        # weighted by (i + 1) / a(i + 1), i = 0..J-2.
        weight = self.model.ld_weight[:, 1:J]  # (L, J - 1)
        found = (np.einsum("blj,blkj->blk", p[..., :-1] * weight, 1.0 - move[..., :-1])
                 + np.einsum("blj,blkj->blk", p[..., 1:] * weight, move[..., 1:]))
        return demand * found, feasible


def _solution(model: _Model, arrays: NetworkArrays, state: _State, method: str,
              iterations: int, residual: float, tol: float) -> Solution:
    residence = np.where(arrays.demand > 0, state.residence, 0.0)
    throughput = state.throughput
    return Solution(
        throughput=throughput,
        residence_time=residence,
        queue_length=throughput[..., None, :] * residence,
        utilization=station_utilization(throughput, arrays.demand, arrays.capacity),
        method=method,
        iterations=int(iterations),
        residual=float(residual),
        converged=bool(residual < tol),
    )
