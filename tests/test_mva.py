"""Exact multi-class MVA against brute force, birth-death chains, convolution and the laws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

import hermes_qn as hq
from hermes_qn.solvers.base import station_utilization
from hermes_qn.solvers.mva import exact_mva, state_space_size

from oracles import (birth_death_single_class, brute_force_closed,
                     brute_force_throughputs_by_place, log_convolution_single_class)

RTOL = 1e-9


def _ld_table(network: hq.Network, station: str, total: int) -> np.ndarray:
    """``a(1..total)`` of a station, the last value held beyond its table."""
    return network.arrays().rate_multipliers(total)[list(network.stations).index(station), 1:]


# Small networks covering every station kind, think times (zero included), classes that skip
# stations, two load-dependent stations at once, and a class that only visits a load-dependent
# station with no think time (its complement network strands it).
SMALL_NETWORKS = {
    "two-class queues+delay": hq.Network(
        stations={"cpu": hq.Queue(), "disk": hq.Queue(), "lan": hq.Delay()},
        classes={"a": hq.Closed(4, think_time=2.0), "b": hq.Closed(3, think_time=0.5)},
        demands={"a": {"cpu": 0.4, "disk": 0.9, "lan": 0.3}, "b": {"cpu": 1.2, "disk": 0.2}},
    ),
    "two-class multi-server": hq.Network(
        stations={"pool": hq.Queue(servers=3), "cpu": hq.Queue()},
        classes={"a": hq.Closed(5, think_time=1.0), "b": hq.Closed(4, think_time=0.0)},
        demands={"a": {"pool": 2.5, "cpu": 0.3}, "b": {"pool": 1.5, "cpu": 0.6}},
    ),
    "three-class all kinds": hq.Network(
        stations={"q": hq.Queue(), "d": hq.Delay(), "c": hq.Queue(servers=3),
                  "ld": hq.Queue(rate_multipliers=[1.0, 1.5, 1.8, 2.0])},
        classes={"x": hq.Closed(4, 1.0), "y": hq.Closed(3, 0.5), "z": hq.Closed(2, 0.0)},
        demands={"x": {"q": 0.3, "d": 0.2, "c": 0.9, "ld": 0.4},
                 "y": {"q": 0.5, "c": 0.3, "ld": 0.7},
                 "z": {"q": 0.1, "d": 1.0, "ld": 0.2}},
    ),
    "stranded in complement": hq.Network(
        stations={"gpu": hq.Queue(rate_multipliers=[1.0, 1.7, 2.2]), "pool": hq.Queue(servers=2),
                  "cpu": hq.Queue()},
        classes={"only_gpu": hq.Closed(3, 0.0), "mixed": hq.Closed(3, 0.8),
                 "only_pool": hq.Closed(2, 0.0)},
        demands={"only_gpu": {"gpu": 0.5}, "mixed": {"gpu": 0.3, "pool": 0.6, "cpu": 0.2},
                 "only_pool": {"pool": 0.9}},
    ),
    "reducible load dependence": hq.Network(
        # servers >= clients is a delay; constant multipliers are a faster single server.
        stations={"wide": hq.Queue(servers=20), "fast": hq.Queue(rate_multipliers=[2.0]),
                  "slow": hq.Queue(discipline="fcfs")},
        classes={"a": hq.Closed(3, 0.5), "b": hq.Closed(2, 1.5)},
        demands={"a": {"wide": 1.0, "fast": 0.8, "slow": 0.5}, "b": {"wide": 0.4, "fast": 1.1,
                                                                    "slow": 0.5}},
    ),
}


@pytest.mark.parametrize("name", SMALL_NETWORKS)
def test_matches_brute_force(name):
    arrays = SMALL_NETWORKS[name].arrays()
    sol = exact_mva(arrays)
    x, q = brute_force_closed(arrays)
    np.testing.assert_allclose(sol.throughput, x, rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length, q, rtol=RTOL, atol=1e-14)
    uses = arrays.demand > 0
    np.testing.assert_allclose(sol.residence_time[uses], (q / x)[uses], rtol=RTOL)
    assert not sol.residence_time[~uses].any()
    np.testing.assert_allclose(sol.utilization,
                               station_utilization(x, arrays.demand, arrays.capacity), rtol=RTOL)
    assert sol.method == "exact-mva" and sol.converged and sol.iterations == 0


@pytest.mark.parametrize("name", SMALL_NETWORKS)
def test_oracle_throughput_is_the_same_everywhere(name):
    # The brute force reads X_k off every place class k spends time: they must agree.
    for estimates in brute_force_throughputs_by_place(SMALL_NETWORKS[name].arrays()):
        np.testing.assert_allclose(estimates, estimates[0], rtol=1e-12)


# Closed M/M/1 with a think stage, N = 2, Z = D = 1 s. Worked by hand from the chain on the
# number at the queue: pi(n) proportional to (1, 2, 2), so X = (1 - pi(0)) / D = 0.8 /s,
# Q = 0.4 + 2 * 0.4 = 1.2 jobs, R = Q / X = 1.5 s.
def test_hand_worked_repairman():
    net = hq.Network(stations={"repair": hq.Queue()}, classes={"m": hq.Closed(2, 1.0)},
                     demands={"m": {"repair": 1.0}})
    sol = exact_mva(net.arrays())
    np.testing.assert_allclose(sol.throughput, [0.8], rtol=1e-14)
    np.testing.assert_allclose(sol.queue_length, [[1.2]], rtol=1e-14)
    np.testing.assert_allclose(sol.residence_time, [[1.5]], rtol=1e-14)


@pytest.mark.parametrize("station,population,think,demand", [
    (hq.Queue(), 10, 4.0, 0.5),                                  # machine repairman, M/M/1//N
    (hq.Queue(discipline="fcfs"), 25, 1.0, 0.2),
    (hq.Queue(servers=3), 12, 2.0, 0.9),                         # M/M/3//N
    (hq.Queue(servers=8), 40, 0.5, 0.3),
    (hq.Queue(rate_multipliers=[1.0, 1.9, 2.6, 3.0]), 30, 3.0, 0.4),
])
def test_single_class_against_birth_death_chain(station, population, think, demand):
    net = hq.Network(stations={"s": station}, classes={"c": hq.Closed(population, think)},
                     demands={"c": {"s": demand}})
    x, q = birth_death_single_class(_ld_table(net, "s", population), think, demand, population)
    sol = exact_mva(net.arrays())
    np.testing.assert_allclose(sol.throughput, [x], rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length, [[q]], rtol=RTOL)


def _naive_ld_throughput(think, q_demand, ld_demand, rates, population):
    """MVA-LD with the textbook closure p(0|n) = 1 - sum_j p(j|n): what the solver must NOT do."""
    p = np.zeros(population + 1)
    p[0] = 1.0
    q = 0.0
    for t in range(1, population + 1):
        r = q_demand * (1 + q) + ld_demand * (np.arange(1, t + 1) / rates[:t]) @ p[:t]
        x = t / (think + r)
        q = x * q_demand * (1 + q)
        new = np.zeros_like(p)
        new[1:t + 1] = ld_demand * x * p[:t] / rates[:t]
        new[0] = 1.0 - new[1:].sum()
        p = new
    return x


def _convolution_reference(population, think, q_demand, ld_demand, rates, delay=0.0):
    """X and per-station queue lengths (think, queue, load-dependent) by log convolution."""
    n = np.arange(population + 1)
    log_rates = np.concatenate(([0.0], np.cumsum(np.log(rates[:population]))))
    factors = [n * np.log(think + delay) - gammaln(n + 1), n * np.log(q_demand),
               n * np.log(ld_demand) - log_rates]
    log_g, without = log_convolution_single_class(factors)
    x = np.exp(log_g[population - 1] - log_g[population])
    q = [np.exp(f + w[::-1] - log_g[population]) @ n for f, w in zip(factors, without)]
    return x, q


def test_load_dependent_stable_at_high_utilisation():
    # 300 clients, 64 servers that saturate (X -> 64 / 0.25 = 256 /s), the station is
    # almost never empty: p(0) ~ 1e-100. The naive closure loses every digit here.
    population, servers, think, q_demand, ld_demand = 300, 64, 0.2, 0.002, 0.25
    net = hq.Network(stations={"q": hq.Queue(), "gpu": hq.Queue(servers=servers)},
                     classes={"u": hq.Closed(population, think)},
                     demands={"u": {"q": q_demand, "gpu": ld_demand}})
    rates = _ld_table(net, "gpu", population)
    x, q = _convolution_reference(population, think, q_demand, ld_demand, rates)
    sol = exact_mva(net.arrays())
    np.testing.assert_allclose(sol.throughput, [x], rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length[:, 0], q[1:], rtol=RTOL)
    assert sol.utilization[1, 0] == pytest.approx(1.0, abs=1e-9)
    naive = _naive_ld_throughput(think, q_demand, ld_demand, rates, population)
    assert not abs(naive / x - 1) < 0.1  # unstable: garbage or negative


def test_thousands_of_clients_and_servers():
    # 3000 clients, 1000 servers saturated: p(0) ~ e^-1000 underflows any linear scheme.
    population, servers, think, q_demand, ld_demand, delay = 3000, 1000, 1.0, 4e-4, 0.8, 0.3
    net = hq.Network(stations={"q": hq.Queue(), "gpu": hq.Queue(servers=servers), "lan": hq.Delay()},
                     classes={"u": hq.Closed(population, think)},
                     demands={"u": {"q": q_demand, "gpu": ld_demand, "lan": delay}})
    rates = _ld_table(net, "gpu", population)
    x, q = _convolution_reference(population, think, q_demand, ld_demand, rates, delay=delay)
    sol = exact_mva(net.arrays())
    np.testing.assert_allclose(sol.throughput, [x], rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length[:2, 0], q[1:], rtol=RTOL)


def test_single_class_large_population_single_server():
    population = 5000
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(), "lan": hq.Delay()},
                     classes={"u": hq.Closed(population, 2.0)},
                     demands={"u": {"a": 0.01, "b": 0.002, "lan": 0.5}})
    sol = exact_mva(net.arrays())
    assert np.isfinite(sol.residence_time).all()
    np.testing.assert_allclose(sol.throughput, [100.0], rtol=1e-12)  # bottleneck 1 / 0.01
    np.testing.assert_allclose(sol.queue_length.sum() + sol.throughput[0] * 2.0, population,
                               rtol=1e-12)


def test_sweeps_match_point_by_point():
    think = xr.DataArray([0.0, 1.0, 4.0], dims="think")
    population = xr.DataArray([1, 3], dims="users")
    net = hq.Network(
        stations={"cpu": hq.Queue(), "pool": hq.Queue(servers=2), "lan": hq.Delay()},
        classes={"a": hq.Closed(population, think), "b": hq.Closed(2, 0.5)},
        demands={"a": {"cpu": np.array([0.2, 0.6]), "pool": 1.0, "lan": 0.1},
                 "b": {"cpu": 0.4, "pool": 0.3}},
    )
    arrays = net.arrays()
    assert sorted(arrays.sweep_shape) == [2, 2, 3]
    sol = exact_mva(arrays)
    x, q = brute_force_closed(arrays)
    np.testing.assert_allclose(sol.throughput, x, rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length, q, rtol=RTOL, atol=1e-14)


def test_fcfs_gets_the_mva_formula():
    def net(discipline):
        return hq.Network(stations={"s": hq.Queue(discipline=discipline)},
                          classes={"a": hq.Closed(3, 1.0), "b": hq.Closed(2, 0.0)},
                          demands={"a": {"s": 0.2}, "b": {"s": 1.0}})
    ps, fcfs = exact_mva(net("ps").arrays()), exact_mva(net("fcfs").arrays())
    np.testing.assert_array_equal(ps.residence_time, fcfs.residence_time)


def test_open_class_is_rejected_by_name():
    net = hq.Network(stations={"s": hq.Queue()},
                     classes={"users": hq.Closed(2), "jobs": hq.Open(0.1)},
                     demands={"users": {"s": 1.0}, "jobs": {"s": 1.0}})
    with pytest.raises(hq.ValidationError, match="class 'jobs' is open"):
        exact_mva(net.arrays())


def test_class_with_nowhere_to_go_is_rejected():
    net = hq.Network(stations={"s": hq.Queue()},
                     classes={"a": hq.Closed(2, 1.0), "ghost": hq.Closed(1, 0.0)},
                     demands={"a": {"s": 1.0}, "ghost": {}})
    with pytest.raises(hq.ValidationError, match="class 'ghost' has zero demand"):
        exact_mva(net.arrays())


def test_empty_class_is_rejected():
    net = hq.Network(stations={"s": hq.Queue()}, classes={"a": hq.Closed(2, 1.0)},
                     demands={"a": {"s": 1.0}})
    arrays = dataclasses.replace(net.arrays(), population=np.array([0]))
    with pytest.raises(hq.ValidationError, match="class 'a' has population 0"):
        exact_mva(arrays)


def test_state_space_size():
    assert state_space_size(np.array([50, 50])) == 2601
    assert state_space_size(np.array([[50, 50], [10, 300], [3, 3]])) == 3311
    assert state_space_size(np.full(40, 1000)) == 1001 ** 40  # no int64 overflow
    with pytest.raises(hq.ValidationError, match="population has shape"):
        state_space_size(np.array(5))


def test_against_line_solver():
    pfqn = pytest.importorskip("line_solver.api.pfqn", reason="line-solver is not installed")
    net = SMALL_NETWORKS["three-class all kinds"]
    arrays = net.arrays()
    total = int(arrays.population.sum())
    mu = arrays.rate_multipliers(total)[:, 1:]  # LINE: rate with n present, n = 1..total
    x, q = pfqn.pfqn_mvald(arrays.demand, arrays.population.astype(float), arrays.think_time, mu)[:2]
    sol = exact_mva(arrays)
    np.testing.assert_allclose(sol.throughput, np.ravel(x), rtol=RTOL)
    np.testing.assert_allclose(sol.queue_length, q, rtol=RTOL)


# Property tests: random small networks.

@st.composite
def closed_networks(draw, max_classes=3, max_population=4, monotone_rates=False):
    n_classes = draw(st.integers(1, max_classes))
    n_stations = draw(st.integers(1, 4))
    stations = {}
    for m in range(n_stations):
        kind = draw(st.sampled_from(["queue", "delay", "servers", "table"]))
        if kind == "queue":
            stations[f"s{m}"] = hq.Queue()
        elif kind == "delay":
            stations[f"s{m}"] = hq.Delay()
        elif kind == "servers":
            stations[f"s{m}"] = hq.Queue(servers=draw(st.integers(2, 4)))
        else:
            table = draw(st.lists(st.floats(0.2, 4.0), min_size=1, max_size=4))
            if monotone_rates:
                table = sorted(table)
            stations[f"s{m}"] = hq.Queue(rate_multipliers=table)
    demand = st.one_of(st.just(0.0), st.floats(0.01, 3.0))
    classes, demands = {}, {}
    for k in range(n_classes):
        row = {s: draw(demand) for s in stations}
        think = draw(st.one_of(st.just(0.0), st.floats(0.01, 5.0)))
        if think == 0 and not any(row.values()):
            think = 1.0
        classes[f"c{k}"] = hq.Closed(draw(st.integers(1, max_population)), think)
        demands[f"c{k}"] = row
    return hq.Network(stations=stations, classes=classes, demands=demands)


@settings(max_examples=60, deadline=None)
@given(closed_networks())
def test_property_matches_brute_force_and_laws(net):
    arrays = net.arrays()
    sol = exact_mva(arrays)
    x, q = brute_force_closed(arrays)
    np.testing.assert_allclose(sol.throughput, x, rtol=1e-8)
    np.testing.assert_allclose(sol.queue_length, q, rtol=1e-8, atol=1e-12)
    # Little's law at each station and around the whole cycle: N_k = X_k (R_k + Z_k).
    np.testing.assert_allclose(sol.queue_length, sol.throughput[None, :] * sol.residence_time,
                               rtol=1e-12)
    cycle = sol.residence_time.sum(axis=0) + arrays.think_time
    np.testing.assert_allclose(sol.throughput * cycle, arrays.population, rtol=1e-10)
    # Utilisation law, and no station beyond its capacity where that is its top speed.
    scale = np.where(np.isinf(arrays.capacity), 1.0, arrays.capacity)
    np.testing.assert_allclose(sol.utilization, sol.throughput * arrays.demand / scale[:, None],
                               rtol=1e-12)
    top_speed = [m for m, a in enumerate(arrays.multipliers) if len(a) and a[-1] == a.max()]
    assert (sol.utilization[top_speed].sum(axis=-1) <= 1 + 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(closed_networks(max_classes=1, max_population=12, monotone_rates=True))
def test_property_single_class_throughput_grows_with_population(net):
    # Holds for stations that never slow down as jobs arrive (non-decreasing a(n)).
    arrays = net.arrays()
    population = int(arrays.population[0])
    sweep = np.arange(1, population + 1)
    swept = dataclasses.replace(
        arrays,
        demand=np.broadcast_to(arrays.demand, (population, *arrays.demand.shape)),
        arrival_rate=np.zeros((population, 1)),
        population=sweep[:, None],
        think_time=np.broadcast_to(arrays.think_time, (population, 1)),
        sweep_dims=("n",), sweep_coords={"n": sweep},
    )
    x = exact_mva(swept).throughput[:, 0]
    assert (np.diff(x) >= -1e-12 * x[1:]).all()
