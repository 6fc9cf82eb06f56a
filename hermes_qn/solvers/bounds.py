"""Bounds on the throughput and response time of closed networks (vectorised over sweep axes).

Two entry points:

* :func:`bounds` -- per-class bounds for multi-class networks with any station
  kind, derived from the exact MVA equations, every one valid for every class
  (with the balanced job bounds folded in for single-class networks). See its
  Notes for the argument.
* :func:`closed_bounds` -- the textbook single-class formulas applied class by
  class, as described below (what :func:`hermes_qn.bounds` returns).

For each closed class ``k`` with ``N_k`` clients, think time ``Z_k`` and
demands ``D_mk``, :func:`closed_bounds` gives:

* Asymptotic bounds (Lazowska et al. 1984, section 5.2), any station kind.
  With ``D = sum_m D_mk`` (the time alone in the network), ``D_max =
  max_m D_mk / c_m`` (``c_m`` the station's asymptotic speed) and
  ``D_q = sum over non-delay stations``::

      N / (N D_q + D_delay + Z)  <=  X  <=  min(N / (D + Z), 1 / D_max)

  The lower bound puts every other client ahead of the tagged one at every
  queueing station.
* Balanced-job bounds (Zahorjan et al. 1982; Lazowska et al. section 5.3),
  single-server queues only (delays fold into ``Z``). With ``D_avg = D_q / M_q``::

      N / (D + Z + (N-1) D_max / (1 + Z / (N D)))  <=  X
      X  <=  min(1 / D_max, N / (D + Z + (N-1) D_avg / (1 + Z / D)))

Response-time bounds follow from ``R = N / X - Z``.

Multi-class networks in :func:`closed_bounds`: the upper bound on throughput
and lower bound on response time are those of the class alone. (Careful with
the argument "other classes can only slow class ``k`` down": as a statement
about adding clients of another class it is false -- adding class-2 clients
can raise class 1's throughput, see
``tests/test_bounds.py::test_other_classes_can_speed_a_class_up`` -- though no
network in a random search of 3000 beat its classes' class-alone throughput.
:func:`bounds` does not rely on it.) The lower throughput bound and the upper
response bound are ``nan`` for classes that share a station with another
class; :func:`bounds` has finite ones.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..network import DELAY, LOAD_DEPENDENT, QUEUE, NetworkArrays
from .base import check_closed_classes

__all__ = ["bounds", "closed_bounds"]


def closed_bounds(arrays: NetworkArrays, kind: str = "asymptotic") -> dict[str, np.ndarray]:
    """Bounds on each closed class's throughput (requests/s) and response time (s).

    Parameters
    ----------
    arrays : NetworkArrays
        A closed network (every class ``hq.Closed``).
    kind : {"asymptotic", "balanced"}
        Which bounds; see the module docstring.

    Returns
    -------
    dict of str to ndarray, each of shape (*S, K)
        ``throughput_lower``, ``throughput_upper``, ``response_time_lower``,
        ``response_time_upper``.

    Raises
    ------
    UnsupportedError
        ``kind="balanced"`` on a network with multi-server or load-dependent
        stations, or a class that is open.
    """
    if kind not in ("asymptotic", "balanced"):
        raise UnsupportedError(f"bounds: kind {kind!r} is unknown; valid: 'asymptotic', 'balanced'")
    if arrays.is_open.any():
        name = arrays.classes[int(np.flatnonzero(arrays.is_open)[0])]
        raise UnsupportedError(f"bounds: class {name!r} is open; valid: closed classes only "
                               f"(an open class's bound is its arrival rate)")
    delay = arrays.station_kind == DELAY
    demand = arrays.demand  # (*S, M, K)
    n = arrays.population.astype(float)
    z = arrays.think_time + (demand * delay[:, None]).sum(axis=-2)  # delays fold into think time
    queueing = np.where(delay[:, None], 0.0, demand)
    d_total = queueing.sum(axis=-2)
    scale = np.where(delay, np.inf, arrays.capacity)
    d_max = (queueing / scale[:, None]).max(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "asymptotic":
            upper = np.minimum(n / (d_total + z), 1.0 / d_max)
            lower = n / (n * d_total + z)
        else:
            load_dependent = [arrays.stations[m] for m in np.flatnonzero(arrays.station_kind != QUEUE)
                              if not delay[m]]
            if load_dependent:
                raise UnsupportedError(f"bounds: balanced-job bounds need single-server queues; "
                                       f"station {load_dependent[0]!r} is multi-server or "
                                       f"load-dependent; valid: kind='asymptotic'")
            visited = (queueing > 0).sum(axis=-2)
            d_avg = d_total / np.maximum(visited, 1)
            upper = np.minimum(1.0 / d_max,
                               n / (d_total + z + (n - 1) * d_avg / (1 + z / d_total)))
            lower = n / (d_total + z + (n - 1) * d_max / (1 + z / (n * d_total)))
    shares = ((queueing > 0).sum(axis=-1, keepdims=True) > 1) & (queueing > 0)  # (*S, M, K)
    alone = ~shares.any(axis=-2)
    lower = np.where(alone, lower, np.nan)
    return {
        "throughput_lower": lower,
        "throughput_upper": upper,
        "response_time_lower": n / upper - arrays.think_time,
        "response_time_upper": n / lower - arrays.think_time,
    }


#: Rounds of the think-time refinement of the pessimistic bound (each one valid, each tighter).
REFINEMENT_ROUNDS = 8


def bounds(arrays: NetworkArrays) -> dict[str, np.ndarray]:
    """Lower and upper bounds on each class's throughput and response time.

    Parameters
    ----------
    arrays : NetworkArrays
        A network whose classes are all closed: demands ``D_mk`` in seconds,
        populations ``N_k`` (clients), think times ``Z_k`` in seconds.

    Returns
    -------
    dict of str to ndarray, each of shape ``(*S, K)``
        ``throughput_lower`` and ``throughput_upper`` in requests per
        second; ``response_time_lower`` and ``response_time_upper`` in
        seconds (think time excluded). For every sweep point and class,
        ``lower <= exact <= upper`` for the product-form model that
        :func:`~hermes_qn.solvers.mva.exact_mva` solves.

    Raises
    ------
    UnsupportedError
        If a class is open (the bounds are for closed networks; open and
        mixed networks go through :func:`hermes_qn.solve`).
    ValidationError
        If a class has a population below 1, or zero demand everywhere and
        zero think time.

    Notes
    -----
    Notation: ``g_m(n) = n / a_m(n)``, the time per unit of demand at station
    ``m`` with ``n`` present (``n`` for a single server, 1 for a delay,
    ``max(1, n / c)`` for ``c`` servers). Exact MVA [3]_ gives, with ``J_mj``
    the number of class-``j`` requests at ``m`` seen by an arriving class-``k``
    request (the time average of the population ``N - e_k``) and ``J_m`` their
    total, ``R_mk = D_mk E[g_m(J_m + 1)]``. At a single-server FCFS station
    whose classes have different demands (not product form) exact MVA keeps
    that formula while the approximate solvers use the heuristic
    ``R_mk = D_mk + sum_j D_mj E[J_mj]``; the bounds hold for both. ``N_tot``
    is the total population.

    *Pessimistic bound (every class).* Over ``1 <= n <= N_tot``,
    ``g_m(n) <= g_m(1) + beta_m (n - 1)`` with ``beta_m`` the largest chord
    slope (1 for a single server, 0 for a delay, ``1 / c`` for ``c``
    servers), so ``R_k <= sum_m D_mk g_m(1) + sum_j E[sum_m w_mkj J_mj]``
    with ``w_mkj = D_mk beta_m`` (``max(D_mk, D_mj)`` at an FCFS single
    server that class ``k`` visits). At most
    ``N_j - [j = k]`` class-``j`` requests are at the stations, so
    ``R_k <= R_k^max = sum_m D_mk g_m(1) + sum_j (N_j - [j = k]) f_j max_m w_mkj``
    (the max over the stations class ``j`` visits): every other request ahead
    of you at the worst station, each adding its worst-case cost. ``f_j`` is
    at most the fraction of class ``j`` not thinking or at a delay: ``f_j = 1``
    first, then ``f_j = 1 - Z'_j X_j^lo / (N_j - [j = k])`` with ``Z'_j`` the
    think time plus delay demand and ``X_j^lo = (N_j - [j = k]) / (Z_j + R_j^max)``
    the previous round's bound (valid at ``N - e_k`` because ``R^max`` grows
    with the populations); each round stays valid and is tighter
    (:data:`REFINEMENT_ROUNDS`). Then ``X_k >= N_k / (Z_k + R_k^max)``.

    *Optimistic bound (every class).* ``R_mk >= D_mk min_n g_m(n)``; with a
    lower chord slope ``gamma_m >= 0`` (1 for a single server, 0 for a delay
    or ``c`` servers; ``min(D_mk, D_mj)`` replaces ``D_mk gamma_m`` at FCFS),
    the other requests add at least
    ``(min_m v_mkj) (N_j - [j = k]) D^min_j / (Z_j + D^min_j)`` (``v_mkj`` the
    lower analogue of ``w``, the min over the stations class ``j`` visits, and
    the fraction from ``X_j <= N_j / (Z_j + D^min_j)``). And by the
    utilisation law, at every station ``sum_j X_j D_mj <= max_{n <= N_tot} a_m(n)``
    (the table's maximum over reachable ``n``, so a rate table that is not
    monotone cannot break it; for a monotone one it is at most the
    asymptotic capacity), hence
    ``X_k <= (max a_m - sum_{j != k} X_j^lo D_mj) / D_mk``. The throughput
    upper bound is the smallest of these.

    *Why not "the class alone".* It is tempting to bound a class by its
    single-class bound with its own ``N_k``, arguing that other classes can
    only slow it down. As a monotonicity argument that is false: in a network
    with stations A and B, class 1 at A only, class 2 mostly at B and class 3
    at both, adding class-2 clients traps class 3 at B and *raises* class 1's
    throughput (``tests/test_bounds.py::test_other_classes_can_speed_a_class_up``).
    Whether the class alone is always at least as fast (no counterexample
    turned up in 3000 random single-server networks) is not proved here, so
    no bound below relies on it.

    *Single class* without load-dependent stations: the balanced job bounds
    of Zahorjan et al. [2]_ (Lazowska et al. [1]_, Table 5.3), with delay
    demand merged into the think time ``Z'`` (exact for product form), ``D``,
    ``D_max`` and ``D_avg = D / M`` over the ``M`` queueing stations in use:
    ``N / (D + Z' + (N - 1) D_max / (1 + Z' / (N D))) <= X(N) <=
    min(1 / D_max, N / (D + Z' + (N - 1) D_avg / (1 + Z' / D)))``,
    combined with the bounds above (the tighter of each kind is returned).

    Response times follow from ``R_k = N_k / X_k - Z_k`` (and
    ``R_k >= sum_m D_mk min_n g_m(n)``).

    References
    ----------
    .. [1] E. D. Lazowska, J. Zahorjan, G. S. Graham and K. C. Sevcik,
       *Quantitative System Performance*, Prentice-Hall, 1984, ch. 5.
    .. [2] J. Zahorjan, K. C. Sevcik, D. L. Eager and B. Galler, "Balanced job
       bound analysis of queueing networks", Comm. ACM 25(2):134-141, 1982.
    .. [3] M. Reiser and S. S. Lavenberg, "Mean-value analysis of closed
       multichain queuing networks", J. ACM 27(2):313-322, 1980.

    Examples
    --------
    One client, 1 s of thinking, 0.5 s at a CPU: the bounds meet at the
    exact ``1 / 1.5`` requests per second.

    >>> import hermes_qn as hq
    >>> net = hq.Network(stations={"cpu": hq.Queue()},
    ...                  classes={"users": hq.Closed(population=1, think_time=1.0)},
    ...                  demands={"users": {"cpu": 0.5}})
    >>> b = bounds(net.arrays())
    >>> round(float(b["throughput_lower"][0]), 12), round(float(b["throughput_upper"][0]), 12)
    (0.666666666667, 0.666666666667)
    """
    _bounds_iv(arrays)
    demand = arrays.demand.astype(float)  # (*S, M, K)
    population = arrays.population.astype(float)  # (*S, K)
    think = arrays.think_time.astype(float)
    M, K = demand.shape[-2:]
    total = population.sum(axis=-1)  # (*S,)
    tables = _station_tables(arrays, np.rint(total).astype(np.int64))
    g_one, g_min, slope_up, slope_low, base_low, top_rate = tables  # each (*S, M)
    uses = demand > 0
    fcfs = (np.asarray(arrays.fcfs, dtype=bool) & (arrays.station_kind == QUEUE))[:, None, None]
    is_delay = arrays.station_kind == DELAY
    others = population[..., None, :] - np.eye(K)  # (*S, K(k), K(j)): N_j - [j = k]

    # Worst and best cost per request of class j ahead of a class-k arrival, over the
    # stations j visits: w[k, j] = max_m w_mkj, v[k, j] = min_m v_mkj. At an FCFS single
    # server both MVA forms are covered: D_mk (the PS formula exact MVA uses) and D_mj (the
    # FCFS heuristic of the approximate solvers), for a class that visits it.
    d_k = demand[..., :, :, None]  # (*S, M, K(k), 1)
    d_j = demand[..., :, None, :]  # (*S, M, 1, K(j))
    w = np.where(fcfs, np.where(d_k > 0, np.maximum(d_k, d_j), 0.0),
                 (demand * slope_up[..., None])[..., :, :, None])
    v = np.where(fcfs, np.minimum(d_k, d_j), (demand * slope_low[..., None])[..., :, :, None])
    visits = uses[..., :, None, :]  # (*S, M, 1, K(j))
    worst = np.where(visits, w, 0.0).max(axis=-3)  # (*S, K(k), K(j))
    best = np.where(visits, v, np.inf).min(axis=-3)
    best = np.where(np.isfinite(best), best, 0.0)

    # Pessimistic: R^max, refined by the share of each class that is thinking or at a delay.
    base_up = (demand * g_one[..., None]).sum(axis=-2)  # (*S, K)
    outside = think + np.where(is_delay[:, None], demand, 0.0).sum(axis=-2)  # Z'_k
    share = np.ones_like(population)
    r_max = base_up + (others * share[..., None, :] * worst).sum(axis=-1)
    for _ in range(REFINEMENT_ROUNDS):
        share = np.clip(1.0 - outside / (think + r_max), 0.0, 1.0)
        r_max = np.minimum(r_max, base_up + (others * share[..., None, :] * worst).sum(axis=-1))
    x_low = population / (think + r_max)

    # Optimistic: R^min and the utilisation law.
    d_min = (demand * g_min[..., None]).sum(axis=-2)  # (*S, K)
    base_min = (demand * base_low[..., None]).sum(axis=-2)
    present = np.clip(d_min / np.where(think + d_min > 0, think + d_min, 1.0), 0.0, 1.0)
    r_min = np.maximum(d_min, base_min + (np.clip(others, 0.0, None) * present[..., None, :]
                                          * best).sum(axis=-1))
    x_up = population / (think + r_min)
    busy = (x_low[..., None, :] * demand).sum(axis=-1)  # (*S, M): sum_j X_j^lo D_mj
    for k in range(K):
        spare = top_rate - (busy - x_low[..., None, k] * demand[..., k])  # capacity left for k
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cap = np.where(uses[..., k] & ~is_delay, np.maximum(spare, 0.0) / demand[..., k], np.inf)
        x_up[..., k] = np.minimum(x_up[..., k], cap.min(axis=-1))

    if K == 1 and not (arrays.station_kind == LOAD_DEPENDENT).any():
        bjb_low, bjb_up = _balanced_job_bounds(demand[..., 0], population[..., 0], think[..., 0],
                                               is_delay)
        x_low[..., 0] = np.maximum(x_low[..., 0], bjb_low)
        x_up[..., 0] = np.minimum(x_up[..., 0], bjb_up)

    x_low = np.minimum(x_low, x_up)  # equal where both are exact; guards rounding
    with np.errstate(divide="ignore"):
        r_low = np.maximum(d_min, population / x_up - think)
    r_up = population / x_low - think
    return {"throughput_lower": x_low, "throughput_upper": x_up,
            "response_time_lower": r_low, "response_time_upper": np.maximum(r_up, r_low)}


def _bounds_iv(arrays: NetworkArrays) -> None:
    """Check that the network is closed and every class can be bounded."""
    if arrays.is_open.any():
        name = arrays.classes[int(np.flatnonzero(arrays.is_open)[0])]
        raise UnsupportedError(f"bounds: class {name!r} is open; valid: closed classes only "
                               f"(solve open and mixed networks with hermes_qn.solve)")
    check_closed_classes(arrays, "bounds", "")


def _station_tables(arrays: NetworkArrays, total: np.ndarray):
    """Per point and station, the constants of the chord bounds on ``g(n) = n / a(n)``
    over ``1 <= n <= N_tot`` (``total``, shape (*S,)).

    Returns ``g(1)``, ``min g``, the upper chord slope
    ``max_{n >= 2} (g(n) - g(1)) / (n - 1)`` (>= 0), the lower chord slope and
    its base (``g(1)`` and ``min (g(n) - g(1)) / (n - 1)`` where that is >= 0,
    else ``min g`` and 0), and ``max a(n)``; each (*S, M).
    """
    n_max = int(total.max(initial=1))
    n = np.arange(n_max + 1)
    rates = arrays.rate_multipliers(n_max)  # (M, n_max + 1), column 0 unused
    g = np.empty_like(rates)
    g[:, 0] = np.nan
    g[:, 1:] = n[1:] / rates[:, 1:]
    chord = np.full_like(rates, np.nan)
    chord[:, 2:] = (g[:, 2:] - g[:, 1:2]) / (n[2:] - 1)
    # Running extremes over n = 1..N, indexed by N.
    run_g_min = np.fmin.accumulate(np.where(n >= 1, g, np.inf), axis=1)
    run_chord_max = np.fmax.accumulate(np.where(n >= 2, chord, -np.inf), axis=1)
    run_chord_min = np.fmin.accumulate(np.where(n >= 2, chord, np.inf), axis=1)
    run_rate_max = np.fmax.accumulate(np.where(n >= 1, rates, -np.inf), axis=1)
    idx = np.clip(total, 1, n_max)  # (*S,)

    def pick(table):  # the column N_tot of each point: (*S, M)
        return np.moveaxis(table[:, idx], 0, -1)
    g_one = np.broadcast_to(g[:, 1], (*total.shape, len(rates)))
    g_min = pick(run_g_min)
    slope_up = np.maximum(np.nan_to_num(pick(run_chord_max), neginf=0.0), 0.0)
    lower = np.nan_to_num(pick(run_chord_min), posinf=0.0)  # N_tot = 1: no chord, slope 0
    slope_low = np.where(lower >= 0, lower, 0.0)
    base_low = np.where(lower >= 0, g_one, g_min)
    top_rate = pick(run_rate_max)
    return g_one, g_min, slope_up, slope_low, base_low, top_rate


def _balanced_job_bounds(demand: np.ndarray, population: np.ndarray, think: np.ndarray,
                         is_delay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-class balanced job bounds on throughput; ``demand`` (*S, M), the rest (*S,)."""
    queueing = np.where(is_delay, 0.0, demand)
    outside = think + np.where(is_delay, demand, 0.0).sum(axis=-1)  # Z': think + delays
    d = queueing.sum(axis=-1)
    d_max = queueing.max(axis=-1)
    stations = (queueing > 0).sum(axis=-1)
    d_avg = d / np.maximum(stations, 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        low = population / (d + outside + (population - 1) * d_max / (1 + outside / (population * d)))
        up = population / (d + outside + (population - 1) * d_avg / (1 + outside / d))
        up = np.minimum(up, 1.0 / d_max)
        exact = population / np.where(outside > 0, outside, 1.0)
    only_delays = d <= 0  # X = N / Z' exactly
    return np.where(only_delays, exact, low), np.where(only_delays, exact, up)
