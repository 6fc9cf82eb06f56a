"""Monte Carlo event sampler: simulate a network to check the closed forms.

:func:`simulate` runs independent replications of a discrete-event simulation
of one network point and returns an :class:`xarray.Dataset` with the same
variables and dimensions as the analytic solvers (``throughput``,
``response_time``, ``residence_time``, ``queue_length``, ``utilization``),
each beside a ``<name>_halfwidth`` confidence half-width.

The mechanics
-------------
- Route: a request visits the stations of its class once each, in the order
  the class's ``demands`` mapping lists them, skipping zero demands; its mean
  service time at a station is the demand there.
- Open classes arrive in Poisson streams. A closed class has ``population``
  clients; each thinks for an exponential time of mean ``think_time``
  (0: resubmits at once), submits, waits for its response, and thinks again.
- Processor sharing (``Queue()``, ``Queue(servers=c)``,
  ``Queue(rate_multipliers=a)``): with ``n`` jobs present the station works
  ``a(n)`` times as fast as with one (``a(n) = 1``, ``min(n, c)`` or the
  table) and every job gets an equal share ``a(n) / n``. Implemented with a
  per-station virtual clock that advances at rate ``a(n) / n``: a job that
  arrives when the clock reads ``v`` with work ``w`` leaves when it reads
  ``v + w``; jobs wait in a heap keyed by that virtual finish time, and the
  station's next completion is rescheduled whenever ``n`` changes (stale
  events are skipped by a version counter).
- FCFS with ``servers=c``: ``c`` parallel servers, one queue.
- FCFS with ``rate_multipliers``: one queue whose head-of-line job is served
  at speed ``a(n)`` with ``n`` present (the BCMP load-dependent FCFS
  station; with exponential service it is the product-form birth-death
  chain).
- Delay: every job is served on its own, at once.
- Events sit in one heap ordered by ``(time, sequence number)``, so ties go
  first-scheduled-first and a run is a pure function of its seed.
- Randomness: ``numpy.random.default_rng`` streams from
  :class:`numpy.random.SeedSequence`: the run's seed spawns one sequence per
  replication, which spawns one stream per (class, station) service draw and
  one per class for arrivals or think times; draws come in blocks.

Measurement
-----------
Each replication runs from time 0 to ``horizon`` and measures over the window
``[warmup, horizon]``:

- ``throughput``: responses completed in the window per second;
- ``response_time``: mean time from submission to response (think time
  excluded) of the responses completed in the window;
- ``residence_time``: mean time from arrival at the station to departure of
  the visits that departed in the window (each request visits once, so this
  is also the time per request, as in the closed forms);
- ``queue_length``: time average of the number present (waiting or in
  service), integrated exactly over the window;
- ``utilization``: time average of the speed the station gives the class,
  over its capacity (``servers``, last rate multiplier, or 1; a delay's
  utilisation is its mean number of busy servers, as in the closed forms).
  The speed is integrated exactly over the window: a job's attained service
  is read off the station's virtual clock (PS), service start and end
  (FCFS), or the head-of-line work clock (load-dependent FCFS).

The estimate is the mean over replications and the half-width is Student's
``t`` quantile times the standard error of the replication means.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import time as _time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import xarray as xr
from scipy import stats

from .distributions import Distribution, Exponential
from .errors import ValidationError
from .network import DELAY, Network
from .solvers.base import VARIABLE_ATTRS, station_utilization

__all__ = ["simulate", "VARIABLES"]

#: Completions the default window is sized for, over all classes.
TARGET_COMPLETIONS = 20_000
#: Share of the default horizon discarded as warm-up.
WARMUP_FRACTION = 0.1
#: Random draws per block.
_BLOCK = 2048

#: Variable name -> (dims, units, long_name), as in the analytic results of
#: :func:`hermes_qn.solve` (throughput in requests per second).
VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    name: (dims, *VARIABLE_ATTRS[name]) for name, dims in (
        ("throughput", ("class",)),
        ("response_time", ("class",)),
        ("residence_time", ("station", "class")),
        ("queue_length", ("station", "class")),
        ("utilization", ("station", "class")),
    )
}

# Station types inside the sampler.
_PS, _DELAY, _FCFS, _FCFS_LD = 0, 1, 2, 3
# Event kinds.
_EV_PS, _EV_DONE, _EV_FLD, _EV_ARRIVAL, _EV_THINK, _EV_WARM = 0, 1, 2, 3, 4, 5


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Plan:
    """Everything a replication needs, as plain Python data."""

    stations: tuple[str, ...]
    classes: tuple[str, ...]
    kind: tuple[int, ...]  # per station: _PS, _DELAY, _FCFS, _FCFS_LD
    servers: tuple[int, ...]  # per station: servers of an FCFS station (else 0)
    multipliers: tuple[tuple[float, ...], ...]  # per station: a(1..L) (empty for delays)
    capacity: tuple[float, ...]  # per station (1 for delays: utilisation = busy servers)
    routes: tuple[tuple[int, ...], ...]  # per class: station indices in order
    shapes: tuple[tuple[Distribution, ...], ...]  # per class: one per route step
    means: tuple[tuple[float, ...], ...]  # per class: mean service per route step
    is_open: tuple[bool, ...]
    arrival_rate: tuple[float, ...]
    population: tuple[int, ...]
    think_time: tuple[float, ...]
    demand: np.ndarray  # (M, K)


def _stream(draw, block: int):
    """Endless iterator over values drawn ``block`` at a time by ``draw(block)``."""
    while True:
        yield from draw(block).tolist()


def _rate_table(multipliers: tuple[float, ...], size: int) -> list[float]:
    """``[a(n) for n in range(size)]`` with ``a(0) = 0`` and ``a(n) = a(L)`` beyond the table."""
    last = multipliers[-1]
    return [0.0] + [multipliers[n - 1] if n <= len(multipliers) else last for n in range(1, size)]


# --------------------------------------------------------------------------- kernel


def _replicate(plan: _Plan, seed: np.random.SeedSequence, horizon: float, warmup: float,
               max_events: int | None) -> dict[str, Any]:
    """Run one replication; return its window estimates and event count."""
    M, K = len(plan.stations), len(plan.classes)
    n_streams = sum(len(r) for r in plan.routes) + K
    children = iter(seed.spawn(n_streams))
    svc = []
    for k in range(K):
        row = []
        for shape, mean in zip(plan.shapes[k], plan.means[k]):
            rng = np.random.default_rng(next(children))
            row.append(_stream(functools.partial(shape.sample, rng, mean), _BLOCK))
        svc.append(row)
    gaps = []  # per class: interarrival times (open) or think times (closed)
    for k in range(K):
        rng = np.random.default_rng(next(children))
        mean = (1.0 / plan.arrival_rate[k] if plan.is_open[k] and plan.arrival_rate[k] > 0
                else plan.think_time[k])
        gaps.append(_stream(functools.partial(Exponential().sample, rng, mean), _BLOCK)
                    if mean > 0 else None)

    kind = plan.kind
    routes = plan.routes
    rlen = [len(r) for r in routes]
    is_open = plan.is_open
    think = plan.think_time
    nonzero_think = [z > 0 for z in think]

    # Per (station, class), flattened j = m * K + k.
    nk = [0] * (M * K)  # number present
    q_area = [0.0] * (M * K)  # integral of nk over the window (completed at the end)
    busy = [0.0] * (M * K)  # attained service in the window, one-job-speed seconds
    res_sum = [0.0] * (M * K)
    res_cnt = [0] * (M * K)
    insvc = [0] * (M * K)  # FCFS: class-k jobs in service
    # Per class.
    done = [0] * K
    resp_sum = [0.0] * K
    # Per station.
    # a(n) by table lookup; n >= table_size (beyond every table) uses a(L).
    table_size = 1 + max([len(a) for a in plan.multipliers] + [256])
    atab = [_rate_table(a, table_size) if a else [] for a in plan.multipliers]
    alast = [a[-1] if a else 0.0 for a in plan.multipliers]
    clock = [0.0] * M  # PS: virtual clock; FCFS-LD: head-of-line work clock
    tlast = [0.0] * M
    version = [0] * M
    count = [0] * M  # PS: jobs present; FCFS: busy servers
    pheap: list[list] = [[] for _ in range(M)]  # PS: (virtual finish, seq, job)
    fq: list[deque] = [deque() for _ in range(M)]  # FCFS: waiting; FCFS-LD: present, head first
    headfin = [0.0] * M  # FCFS-LD: work clock reading at which the head finishes
    servers = plan.servers

    ev: list = []
    seq = itertools.count()
    push, pop = heapq.heappush, heapq.heappop

    def enter(job: list, t: float) -> None:
        """Job ``[k, step, t_submit, t_station]`` arrives at step ``job[1]`` of its route."""
        k = job[0]
        step = job[1]
        m = routes[k][step]
        job[3] = t
        j = m * K + k
        nk[j] += 1
        q_area[j] -= t
        typ = kind[m]
        if typ == _PS:
            n = count[m]
            v = clock[m]
            at = atab[m]
            if n:
                v += (t - tlast[m]) * (at[n] if n < table_size else alast[m]) / n
                clock[m] = v
            tlast[m] = t
            hp = pheap[m]
            push(hp, (v + next(svc[k][step]), next(seq), job))
            n += 1
            count[m] = n
            busy[j] -= v
            ver = version[m] + 1
            version[m] = ver
            push(ev, (t + (hp[0][0] - v) * n / (at[n] if n < table_size else alast[m]),
                      next(seq), _EV_PS, m, ver))
        elif typ == _DELAY:
            push(ev, (t + next(svc[k][step]), next(seq), _EV_DONE, m, job))
        elif typ == _FCFS:
            if count[m] < servers[m]:
                count[m] += 1
                insvc[j] += 1
                busy[j] -= t
                push(ev, (t + next(svc[k][step]), next(seq), _EV_DONE, m, job))
            else:
                fq[m].append(job)
        else:  # _FCFS_LD
            q = fq[m]
            n = len(q)
            at = atab[m]
            u = clock[m]
            if n:
                a_old = at[n] if n < table_size else alast[m]
                u += (t - tlast[m]) * a_old
                clock[m] = u
            tlast[m] = t
            q.append(job)
            a_new = at[n + 1] if n + 1 < table_size else alast[m]
            if n == 0:
                fin = u + next(svc[k][step])
                headfin[m] = fin
                busy[j] -= u
            elif a_new == a_old:
                return  # the head's speed is unchanged: its completion event stands
            else:
                fin = headfin[m]
            ver = version[m] + 1
            version[m] = ver
            push(ev, (t + (fin - u) / a_new, next(seq), _EV_FLD, m, ver))

    def finish(job: list, t: float) -> None:
        """Job completes its route at ``t``: count the response, start the client's next cycle."""
        k = job[0]
        done[k] += 1
        resp_sum[k] += t - job[2]
        if is_open[k]:
            return
        if nonzero_think[k]:
            push(ev, (t + next(gaps[k]), next(seq), _EV_THINK, k, None))
        else:
            job[1] = 0
            job[2] = t
            enter(job, t)

    def snapshot(t: float, start: bool) -> None:
        """Open (``start``) or close the window at ``t`` from the state present then."""
        sign = 1.0 if not start else -1.0
        for m in range(M):
            typ = kind[m]
            if typ == _PS:
                n = count[m]
                level = clock[m] + ((t - tlast[m]) * (atab[m][n] if n < table_size else alast[m]) / n
                                    if n else 0.0)
            elif typ == _FCFS_LD:
                n = len(fq[m])
                level = clock[m] + ((t - tlast[m]) * (atab[m][n] if n < table_size else alast[m])
                                    if n else 0.0)
            for k in range(K):
                j = m * K + k
                if start:
                    q_area[j] = 0.0
                    busy[j] = 0.0
                    res_sum[j] = 0.0
                    res_cnt[j] = 0
                q_area[j] += sign * t * nk[j]
                if typ == _PS:
                    busy[j] += sign * level * nk[j]
                elif typ == _FCFS:
                    busy[j] += sign * t * insvc[j]
            if typ == _FCFS_LD and fq[m]:
                busy[m * K + fq[m][0][0]] += sign * level
        if start:
            for k in range(K):
                done[k] = 0
                resp_sum[k] = 0.0

    # Initial events: first arrivals, clients thinking or submitting at time 0.
    for k in range(K):
        if is_open[k]:
            if gaps[k] is not None:
                push(ev, (next(gaps[k]), next(seq), _EV_ARRIVAL, k, None))
        else:
            for _ in range(plan.population[k]):
                if nonzero_think[k]:
                    push(ev, (next(gaps[k]), next(seq), _EV_THINK, k, None))
                else:
                    enter([k, 0, 0.0, 0.0], 0.0)
    push(ev, (warmup, -1, _EV_WARM, None, None))  # seq -1: before anything else at that time

    events = 0
    limit = max_events if max_events is not None else math.inf
    end = horizon
    while True:
        t, _, what, x, y = pop(ev)
        if t > horizon:
            break
        if what == _EV_PS:
            m = x
            if y != version[m]:
                continue
            hp = pheap[m]
            v, _, job = pop(hp)
            clock[m] = v  # the clock reads exactly v now
            tlast[m] = t
            n = count[m] - 1
            count[m] = n
            ver = version[m] + 1
            version[m] = ver
            if n:
                push(ev, (t + (hp[0][0] - v) * n / (atab[m][n] if n < table_size else alast[m]),
                          next(seq), _EV_PS, m, ver))
            k = job[0]
            j = m * K + k
            nk[j] -= 1
            q_area[j] += t
            busy[j] += v
            res_sum[j] += t - job[3]
            res_cnt[j] += 1
            step = job[1] + 1
            if step < rlen[k]:
                job[1] = step
                enter(job, t)
            else:
                finish(job, t)
        elif what == _EV_DONE:
            m = x
            job = y
            k = job[0]
            j = m * K + k
            nk[j] -= 1
            q_area[j] += t
            res_sum[j] += t - job[3]
            res_cnt[j] += 1
            if kind[m] == _FCFS:
                busy[j] += t
                insvc[j] -= 1
                q = fq[m]
                if q:
                    nxt = q.popleft()
                    j2 = m * K + nxt[0]
                    insvc[j2] += 1
                    busy[j2] -= t
                    push(ev, (t + next(svc[nxt[0]][nxt[1]]), next(seq), _EV_DONE, m, nxt))
                else:
                    count[m] -= 1
            step = job[1] + 1
            if step < rlen[k]:
                job[1] = step
                enter(job, t)
            else:
                finish(job, t)
        elif what == _EV_ARRIVAL:
            k = x
            push(ev, (t + next(gaps[k]), next(seq), _EV_ARRIVAL, k, None))
            job = [k, 0, t, t]
            if rlen[k]:
                enter(job, t)
            else:
                finish(job, t)
        elif what == _EV_THINK:
            k = x
            job = [k, 0, t, t]
            if rlen[k]:
                enter(job, t)
            else:
                finish(job, t)
        elif what == _EV_FLD:
            m = x
            if y != version[m]:
                continue
            u = headfin[m]
            clock[m] = u
            tlast[m] = t
            q = fq[m]
            job = q.popleft()
            k = job[0]
            j = m * K + k
            nk[j] -= 1
            q_area[j] += t
            busy[j] += u
            res_sum[j] += t - job[3]
            res_cnt[j] += 1
            ver = version[m] + 1
            version[m] = ver
            n = len(q)
            if n:
                head = q[0]
                fin = u + next(svc[head[0]][head[1]])
                headfin[m] = fin
                busy[m * K + head[0]] -= u
                push(ev, (t + (fin - u) / (atab[m][n] if n < table_size else alast[m]),
                          next(seq), _EV_FLD, m, ver))
            step = job[1] + 1
            if step < rlen[k]:
                job[1] = step
                enter(job, t)
            else:
                finish(job, t)
        else:  # _EV_WARM
            snapshot(t, start=True)
        events += 1
        if events >= limit:
            end = t
            break
    snapshot(end, start=False)

    window = end - warmup
    if window <= 0:
        nan = np.full((M, K), np.nan)
        return {"events": events, "end": end, "throughput": np.full(K, np.nan),
                "response_time": np.full(K, np.nan), "residence_time": nan,
                "queue_length": nan, "utilization": nan}
    demand = plan.demand
    visits = np.array(res_cnt, dtype=float).reshape(M, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        residence = np.array(res_sum).reshape(M, K) / visits
        response = np.array(resp_sum) / np.array(done, dtype=float)
    residence = np.where(demand > 0, residence, 0.0)
    queue = np.array(q_area).reshape(M, K) / window
    delay = np.array([kd == _DELAY for kd in kind])
    busy_arr = np.where(delay[:, None], queue, np.array(busy).reshape(M, K) / window)
    utilization = busy_arr / np.array(plan.capacity)[:, None]
    return {"events": events, "end": end, "throughput": np.array(done) / window,
            "response_time": response, "residence_time": residence,
            "queue_length": queue, "utilization": utilization}


# --------------------------------------------------------------------------- public API


def _plan(network: Network, service) -> _Plan:
    arrays = network.arrays()
    if arrays.sweep_dims:
        dims = ", ".join(arrays.sweep_dims)
        raise ValidationError(
            f"simulate takes one point; select one value for {dims} "
            f"(e.g. build the network with a scalar there, or loop over the values)")
    stations, classes = arrays.stations, arrays.classes
    shapes_by_key = _service_iv(service, network)
    kind, servers, multipliers, capacity = [], [], [], []
    for name in stations:
        st = network.stations[name]
        if st.discipline == "is":
            kind.append(_DELAY)
            servers.append(0)
            multipliers.append(())
            capacity.append(1.0)
            continue
        table = (tuple(st.rate_multipliers) if st.rate_multipliers is not None
                 else tuple(float(i) for i in range(1, st.servers + 1)))
        if st.discipline == "ps":
            kind.append(_PS)
        elif st.rate_multipliers is not None:
            kind.append(_FCFS_LD)
        else:
            kind.append(_FCFS)
        servers.append(st.servers)
        multipliers.append(table)
        capacity.append(float(st.capacity))
    demand = arrays.demand
    routes, shapes, means = [], [], []
    for k, cname in enumerate(classes):
        route = [stations.index(s) for s in network.demands[cname] if demand[stations.index(s), k] > 0]
        routes.append(tuple(route))
        shapes.append(tuple(shapes_by_key.get((cname, stations[m]),
                                              shapes_by_key.get(stations[m], Exponential()))
                            for m in route))
        means.append(tuple(float(demand[m, k]) for m in route))
        if not arrays.is_open[k] and not route and arrays.think_time[k] == 0:
            raise ValidationError(
                f"simulate: closed class {cname!r} has no positive demand and think_time 0, so its "
                f"clients would cycle infinitely fast; valid: a positive demand somewhere or a "
                f"positive think_time")
    # Stability of the open part: the load the open classes alone put on each queue.
    lam_open = np.where(arrays.is_open, arrays.arrival_rate, 0.0)
    load = station_utilization(lam_open, demand, arrays.capacity).sum(axis=-1)
    for m, name in enumerate(stations):
        if arrays.station_kind[m] != DELAY and load[m] >= 1.0:
            raise ValidationError(
                f"simulate: station {name!r} has load {load[m]:.4g} from the open classes (valid: "
                f"< 1); the network is unstable and a simulation would never settle. Lower the "
                f"arrival rates or the demands there, or add servers")
    return _Plan(
        stations=stations, classes=classes, kind=tuple(kind), servers=tuple(servers),
        multipliers=tuple(multipliers), capacity=tuple(capacity), routes=tuple(routes),
        shapes=tuple(shapes), means=tuple(means), is_open=tuple(bool(b) for b in arrays.is_open),
        arrival_rate=tuple(float(x) for x in arrays.arrival_rate),
        population=tuple(int(x) for x in arrays.population),
        think_time=tuple(float(x) for x in arrays.think_time), demand=demand.copy())


def _service_iv(service, network: Network) -> dict:
    if service is None:
        return {}
    if not isinstance(service, Mapping):
        raise ValidationError(f"simulate: service got {service!r}; valid: None (exponential "
                              f"everywhere) or a mapping of station name, or (class, station), to a "
                              f"distribution shape from hermes_qn.distributions")
    out = {}
    for key, shape in service.items():
        if isinstance(key, tuple):
            if len(key) != 2 or key[0] not in network.classes or key[1] not in network.stations:
                raise ValidationError(
                    f"simulate: service key {key!r} is not a (class, station) pair of this network; "
                    f"valid classes: {sorted(network.classes)}, stations: {sorted(network.stations)}")
        elif key not in network.stations:
            raise ValidationError(f"simulate: service key {key!r} is not a station of this network; "
                                  f"valid: {sorted(network.stations)} or (class, station) pairs")
        if not isinstance(shape, Distribution):
            raise ValidationError(
                f"simulate: service[{key!r}] got {shape!r}; valid: a distribution shape such as "
                f"hermes_qn.distributions.Exponential() or Deterministic()")
        out[key] = shape
    return out


def _default_window(plan: _Plan) -> float:
    """Seconds of measurement for about :data:`TARGET_COMPLETIONS` completions.

    Throughput guess: open classes at their arrival rate; each closed class at
    its asymptotic bound ``N / (Z + D)``, all closed classes scaled down
    together until no queue is asked for more than the capacity the open
    classes leave. This is optimistic near a closed network's knee, where the
    window then holds fewer completions.
    """
    demand = plan.demand
    x = np.array([plan.arrival_rate[k] if plan.is_open[k] else
                  plan.population[k] / (plan.think_time[k] + demand[:, k].sum())
                  for k in range(len(plan.classes))])
    closed = ~np.array(plan.is_open)
    queue = np.array([kd != _DELAY for kd in plan.kind])
    cap = np.array(plan.capacity)
    if closed.any() and queue.any():
        open_load = (demand[queue][:, ~closed] @ x[~closed]) / cap[queue]
        closed_load = (demand[queue][:, closed] @ x[closed]) / cap[queue]
        scale = np.max(closed_load / np.maximum(1.0 - open_load, 1e-12))
        if scale > 1.0:
            x[closed] /= scale
    total = x.sum()
    if not total > 0:
        raise ValidationError("simulate: no traffic (every arrival rate is 0), so no default "
                              "horizon; give horizon= in seconds")
    return TARGET_COMPLETIONS / total


def _simulate_iv(network, seed, horizon, warmup, replications, service, confidence, max_events):
    if not isinstance(network, Network):
        raise ValidationError(f"simulate: network got {type(network).__name__}; valid: a "
                              f"hermes_qn.Network")
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) \
            or replications < 2:
        raise ValidationError(f"simulate: replications got {replications!r}; valid: an integer >= 2 "
                              f"(the confidence interval needs at least two)")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0 < confidence < 1:
        raise ValidationError(f"simulate: confidence got {confidence!r}; valid: a number in (0, 1), "
                              f"e.g. 0.95")
    if max_events is not None and (isinstance(max_events, bool)
                                   or not isinstance(max_events, (int, np.integer)) or max_events < 1):
        raise ValidationError(f"simulate: max_events got {max_events!r}; valid: None or an integer "
                              f">= 1 (events per replication)")
    for name, value in (("horizon", horizon), ("warmup", warmup)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)) or not math.isfinite(value)
                or value < 0 or (name == "horizon" and value == 0)):
            valid = "a finite number > 0" if name == "horizon" else "a finite number >= 0"
            raise ValidationError(f"simulate: {name} got {value!r}; valid: None or {valid} (seconds)")
    try:
        seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    except (TypeError, ValueError):
        raise ValidationError(f"simulate: seed got {seed!r}; valid: None, an integer >= 0 or a "
                              f"numpy.random.SeedSequence") from None
    plan = _plan(network, service)
    if horizon is None:
        window = _default_window(plan)
        if warmup is None:
            horizon = window / (1.0 - WARMUP_FRACTION)
            warmup = WARMUP_FRACTION * horizon
        else:
            horizon = float(warmup) + window
    elif warmup is None:
        warmup = WARMUP_FRACTION * horizon
    if warmup >= horizon:
        raise ValidationError(f"simulate: warmup={warmup!r} is not below horizon={horizon!r}; valid: "
                              f"0 <= warmup < horizon (seconds)")
    return plan, seed_seq, float(horizon), float(warmup), int(replications), float(confidence), \
        max_events


def simulate(network: Network, *, seed=None, horizon: float | None = None,
             warmup: float | None = None, replications: int = 10,
             service: Mapping | None = None, confidence: float = 0.95,
             max_events: int | None = None, **scenario_options) -> xr.Dataset:
    """Simulate one network point with independent replications.

    Given a :class:`~hermes_qn.scenario.Scenario` instead of a network, runs
    the LLM-level sampler :func:`hermes_qn.llm_sampler.simulate_scenario`
    (``seed``, ``replications`` and ``**scenario_options`` such as
    ``requests``, ``warmup`` (a fraction there), ``records`` are passed on).

    Parameters
    ----------
    network : Network or Scenario
        A network without sweep dimensions. Any mix of open and closed
        classes, PS, FCFS and delay stations.
    seed : None, int or numpy.random.SeedSequence
        Seeds a :class:`numpy.random.SeedSequence` whose children drive the
        replications. ``None`` takes fresh entropy; the ``seed`` attribute of
        the result records it so the run can be repeated.
    horizon : float, optional
        Simulated seconds per replication, warm-up included. Default: long
        enough that the window after warm-up holds about 20,000 completions
        (over all classes) at the throughput guessed from the arrival rates
        and, for closed classes, the asymptotic bounds.
    warmup : float, optional
        Seconds discarded at the start of each replication. Default: a tenth
        of the horizon (when only ``warmup`` is given, the horizon is the
        warm-up plus the default window).
    replications : int
        Independent replications, >= 2.
    service : mapping, optional
        Service-time shapes: station name, or ``(class, station)`` pair, to a
        :class:`~hermes_qn.distributions.Distribution`; the mean is always the
        demand. A pair overrides its station; the default is
        :class:`~hermes_qn.distributions.Exponential`.
    confidence : float
        Level of the Student-t confidence intervals, in (0, 1).
    max_events : int, optional
        Stop a replication after this many events even before its horizon;
        its window then ends at the last event (a warning says so).

    Returns
    -------
    xarray.Dataset
        Dims ``station`` and ``class``. ``throughput`` (requests/s, units
        ``1/s``), ``response_time`` (s, think time excluded),
        ``residence_time`` (s per request), ``queue_length`` (mean number
        present), ``utilization`` (share of
        capacity; a delay's mean busy servers), each the mean over
        replications, and ``<name>_halfwidth`` its confidence half-width in
        the same unit. A quantity never observed (a class with no
        completions in the window) is NaN. Attributes: ``replications``,
        ``horizon``, ``warmup``, ``confidence``, ``events`` (all
        replications), ``events_per_second`` (wall clock), ``seed``.

    Raises
    ------
    ValidationError
        A bad argument, a network with sweep dimensions, an open class load
        of 1 or more at some station (unstable), or a closed class that
        would cycle infinitely fast.

    Warns
    -----
    RuntimeWarning
        When ``max_events`` cut a replication short.

    Notes
    -----
    With exponential service the means of a product-form network match the
    closed forms within the half-widths; FCFS stations with non-exponential
    or class-dependent service times are where the sampler and the
    product-form answer part. The kernel is pure Python and runs several
    hundred thousand events per second.

    Examples
    --------
    >>> import hermes_qn as hq
    >>> from hermes_qn.simulate import simulate
    >>> net = hq.Network(stations={"cpu": hq.Queue()}, classes={"jobs": hq.Open(0.5)},
    ...                  demands={"jobs": {"cpu": 1.0}})
    >>> ds = simulate(net, seed=1)
    >>> abs(float(ds.response_time.sel({"class": "jobs"})) - 2.0) < 0.1  # M/M/1: 1 / (1 - 0.5)
    True
    """
    from .scenario import Scenario
    if isinstance(network, Scenario):
        from .llm_sampler import simulate_scenario
        if warmup is not None:
            scenario_options["warmup"] = warmup
        return simulate_scenario(network, seed=0 if seed is None else seed,
                                 replications=replications if replications != 10 else 5,
                                 **scenario_options)
    if scenario_options:
        raise ValidationError(f"simulate: unexpected argument(s) {sorted(scenario_options)} for a "
                              "Network; valid: seed, horizon, warmup, replications, service, "
                              "confidence, max_events")
    plan, seed_seq, horizon, warmup, replications, confidence, max_events = _simulate_iv(
        network, seed, horizon, warmup, replications, service, confidence, max_events)
    results = []
    started = _time.perf_counter()
    for child in seed_seq.spawn(replications):
        results.append(_replicate(plan, child, horizon, warmup, max_events))
    elapsed = _time.perf_counter() - started
    events = sum(r["events"] for r in results)
    short = [i for i, r in enumerate(results) if r["end"] < horizon]
    if short:
        warnings.warn(f"simulate: max_events={max_events} stopped replication(s) {short} before the "
                      f"horizon {horizon:g} s (earliest at {min(results[i]['end'] for i in short):g} "
                      f"s); their windows are shorter", RuntimeWarning, stacklevel=2)
    quantile = stats.t.ppf(0.5 + confidence / 2.0, replications - 1)
    coords = {"station": list(plan.stations), "class": list(plan.classes)}
    data, halves = {}, {}
    for name, (dims, units, long_name) in VARIABLES.items():
        values = np.stack([r[name] for r in results])
        mean = values.mean(axis=0)
        half = quantile * values.std(axis=0, ddof=1) / math.sqrt(replications)
        data[name] = xr.Variable(dims, mean, {"units": units, "long_name": long_name})
        halves[f"{name}_halfwidth"] = xr.Variable(
            dims, half, {"units": units,
                         "long_name": f"{long_name}, {confidence:.0%} confidence half-width"})
    data.update(halves)
    entropy = seed_seq.entropy
    return xr.Dataset(data, coords=coords, attrs={
        "method": "monte-carlo",
        "replications": replications,
        "horizon": horizon,
        "warmup": warmup,
        "confidence": confidence,
        "events": int(events),
        "events_per_second": events / elapsed if elapsed > 0 else math.inf,
        "seed": entropy if isinstance(entropy, int) else str(entropy),
    })
