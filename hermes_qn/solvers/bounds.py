"""Asymptotic and balanced-job bounds on closed networks (vectorised over sweep axes).

For each closed class ``k`` with ``N_k`` clients, think time ``Z_k`` and
demands ``D_mk``:

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

Multi-class networks: the other classes can only slow class ``k`` down in a
product-form network whose stations never slow down as jobs arrive (rate
multipliers non-decreasing), so the class-alone upper bound on throughput and
lower bound on response time stay valid. No equally cheap lower bound on
throughput holds under processor sharing (the other classes may cycle many
times through a station while a long request of class ``k`` is served), so the
lower throughput bound and the upper response bound are ``nan`` for classes
that share a station with another class.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..network import DELAY, QUEUE, NetworkArrays


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
