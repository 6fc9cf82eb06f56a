"""Asymptotic and balanced-job bounds bracket exact MVA."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq


def single_class(populations, think, demands, stations=None):
    stations = stations or {f"s{i}": hq.Queue() for i in range(len(demands))}
    return hq.Network(stations=stations, classes={"u": hq.Closed(populations, think)},
                      demands={"u": dict(zip(stations, demands))})


def test_textbook_asymptotic_bounds():
    # Lazowska et al. 1984 style example: D = 0.5 + 0.3 + 0.2 = 1.0 s, D_max = 0.5 s, Z = 4 s.
    b = hq.bounds(single_class(np.array([1, 10, 100]), 4.0, [0.5, 0.3, 0.2]))
    np.testing.assert_allclose(b.throughput_upper.values[:, 0], [1 / 5, 2.0, 2.0])
    np.testing.assert_allclose(b.throughput_lower.values[:, 0], [1 / 5, 10 / 14, 100 / 104])
    np.testing.assert_allclose(b.response_time_lower.values[:, 0], [1.0, 1.0, 46.0])


@pytest.mark.parametrize("kind", ["asymptotic", "balanced"])
@settings(max_examples=40, deadline=None)
@given(demands=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5), think=st.floats(0.0, 10.0))
def test_bounds_bracket_exact_single_class(kind, demands, think):
    populations = np.arange(1, 41)
    net = single_class(populations, think, demands)
    exact = hq.solve(net, method="exact")
    b = hq.bounds(net, kind)
    x = exact.throughput.values[:, 0]
    r = exact.response_time.values[:, 0]
    assert (b.throughput_lower.values[:, 0] <= x * (1 + 1e-9)).all()
    assert (x <= b.throughput_upper.values[:, 0] * (1 + 1e-9)).all()
    assert (b.response_time_lower.values[:, 0] <= r * (1 + 1e-9)).all()
    assert (r <= b.response_time_upper.values[:, 0] * (1 + 1e-9)).all()


def test_balanced_is_tighter_than_asymptotic():
    net = single_class(np.arange(1, 30), 2.0, [0.3, 0.25, 0.2, 0.1])
    a, b = hq.bounds(net, "asymptotic"), hq.bounds(net, "balanced")
    assert (b.throughput_lower >= a.throughput_lower - 1e-12).all()
    assert (b.throughput_upper <= a.throughput_upper + 1e-12).all()


def test_asymptotic_bounds_with_multiserver_and_delay():
    stations = {"pool": hq.Queue(servers=4), "cpu": hq.Queue(), "lan": hq.Delay()}
    net = single_class(np.arange(1, 60), 1.0, [2.0, 0.3, 0.5], stations)
    exact = hq.solve(net, method="exact")
    b = hq.bounds(net)
    assert (b.throughput_lower <= exact.throughput * (1 + 1e-9)).all()
    assert (exact.throughput <= b.throughput_upper * (1 + 1e-9)).all()
    assert float(b.throughput_upper[-1, 0]) == pytest.approx(2.0)  # pool: 4 servers / 2 s
    with pytest.raises(hq.UnsupportedError, match="station 'pool' is multi-server"):
        hq.bounds(net, "balanced")


def test_multiclass_upper_bound_valid_and_shared_lower_bound_is_nan():
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue()},
                     classes={"u": hq.Closed(6, 1.0), "v": hq.Closed(4, 0.5)},
                     demands={"u": {"a": 0.2, "b": 0.1}, "v": {"a": 0.1, "b": 0.3}})
    exact = hq.solve(net, method="exact")
    b = hq.bounds(net)
    assert (exact.throughput <= b.throughput_upper).all()
    assert (exact.response_time >= b.response_time_lower).all()
    assert np.isnan(b.throughput_lower).all()


def test_open_class_and_unknown_kind_are_errors():
    net = hq.Network(stations={"a": hq.Queue()}, classes={"o": hq.Open(0.1)}, demands={"o": {"a": 1.0}})
    with pytest.raises(hq.UnsupportedError, match="class 'o' is open"):
        hq.bounds(net)
    with pytest.raises(hq.UnsupportedError, match="kind 'tight' is unknown"):
        hq.bounds(single_class(3, 1.0, [0.1]), "tight")


# ---------------------------------------------------------------------------------------------
# hermes_qn.solvers.bounds.bounds: per-class bounds valid for multi-class networks of any
# station kind, checked against exact MVA and against a plain recursion written here.

import dataclasses  # noqa: E402

from hermes_qn.solvers.bounds import bounds as class_bounds  # noqa: E402
from hermes_qn.solvers.mva import exact_mva  # noqa: E402


def _exact_single_class(demands, think, population, delays=0.0):
    """Textbook single-class MVA for single-server queues (plus delay demand), plainly."""
    q = np.zeros(len(demands))
    x = 0.0
    for n in range(1, population + 1):
        r = np.asarray(demands) * (1 + q)
        x = n / (think + delays + r.sum())
        q = x * r
    return x


def _assert_brackets(b, x, r):
    """lower <= exact <= upper, up to rounding (relative 1e-9)."""
    assert (b["throughput_lower"] <= x * (1 + 1e-9)).all()
    assert (x <= b["throughput_upper"] * (1 + 1e-9)).all()
    assert (b["response_time_lower"] <= r * (1 + 1e-9) + 1e-12).all()
    assert (r <= b["response_time_upper"] * (1 + 1e-9) + 1e-12).all()


@settings(max_examples=30, deadline=None)
@given(demands=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5), think=st.floats(0.0, 10.0),
       delay=st.floats(0.0, 2.0))
def test_single_class_bounds_bracket_a_plain_recursion(demands, think, delay):
    stations = {f"s{i}": hq.Queue() for i in range(len(demands))} | {"lan": hq.Delay()}
    populations = np.arange(1, 81)
    net = hq.Network(stations=stations, classes={"u": hq.Closed(populations, think)},
                     demands={"u": dict(zip(stations, [*demands, delay]))})
    b = class_bounds(net.arrays())
    x = np.array([_exact_single_class(demands, think, int(n), delay) for n in populations])
    _assert_brackets({k: v[:, 0] for k, v in b.items()}, x, populations / x - think)
    # One client: nothing to wait for, the bounds are the answer.
    np.testing.assert_allclose(b["throughput_lower"][0], b["throughput_upper"][0], rtol=1e-12)


def test_single_class_bounds_are_the_balanced_job_bounds():
    # Hand-computed (Lazowska et al. 1984, Table 5.3): D = 1.0, D_max = 0.5, D_avg = 1/3, Z = 4,
    # N = 10: X >= 10 / (5 + 9 * 0.5 / (1 + 0.4)) = 1.8919 (before the refinement, which can
    # only tighten it), X <= min(2, 10 / (5 + 9 / 3 / (1 + 4))) = 1.7857.
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(), "c": hq.Queue()},
                     classes={"u": hq.Closed(10, 4.0)}, demands={"u": {"a": 0.5, "b": 0.3, "c": 0.2}})
    b = class_bounds(net.arrays())
    assert float(b["throughput_upper"][0]) == pytest.approx(10 / (5 + 3 / 5), rel=1e-12)
    assert float(b["throughput_lower"][0]) >= 10 / (5 + 9 * 0.5 / 1.4) - 1e-12
    exact = _exact_single_class([0.5, 0.3, 0.2], 4.0, 10)
    assert float(b["throughput_lower"][0]) <= exact <= float(b["throughput_upper"][0])


@st.composite
def _closed_networks(draw):
    """Small closed networks with every station kind, rate tables that need not be monotone
    nor start at 1, FCFS with class-dependent demands, classes that skip stations."""
    stations = {}
    for m in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["ps", "fcfs", "delay", "servers", "table"]))
        stations[f"s{m}"] = {"ps": hq.Queue(), "fcfs": hq.Queue(discipline="fcfs"),
                             "delay": hq.Delay(),
                             "servers": hq.Queue(servers=draw(st.integers(2, 4))),
                             "table": hq.Queue(rate_multipliers=draw(st.lists(
                                 st.floats(0.2, 4.0), min_size=1, max_size=4)))}[kind]
    classes, demands = {}, {}
    for k in range(draw(st.integers(1, 3))):
        row = {s: draw(st.one_of(st.just(0.0), st.floats(0.01, 2.0))) for s in stations}
        think = draw(st.one_of(st.just(0.0), st.floats(0.01, 4.0)))
        if think == 0 and not any(row.values()):
            think = 1.0
        classes[f"c{k}"] = hq.Closed(draw(st.integers(1, 5)), think)
        demands[f"c{k}"] = row
    return hq.Network(stations=stations, classes=classes, demands=demands)


@settings(max_examples=150, deadline=None)
@given(_closed_networks())
def test_class_bounds_bracket_exact_mva(net):
    # 5000 random networks of this kind showed no violation before this test was written.
    arrays = net.arrays()
    exact = exact_mva(arrays)
    b = class_bounds(arrays)
    _assert_brackets(b, exact.throughput, exact.residence_time.sum(axis=0))
    assert np.isfinite(b["throughput_lower"]).all() and (b["throughput_lower"] > 0).all()


def test_class_bounds_bracket_the_fcfs_heuristic_of_the_approximate_solvers_too():
    # At an FCFS station with class-dependent demands the approximate solvers use
    # R_k = D_k + sum_j D_j A_j; the bounds cover that model as well (their exact recursion is
    # not available, so a fine Linearizer solution stands in, well inside the bounds).
    from hermes_qn.solvers.amva import linearizer
    net = hq.Network(stations={"disk": hq.Queue(discipline="fcfs"), "cpu": hq.Queue()},
                     classes={"a": hq.Closed(6, 1.0), "b": hq.Closed(3, 0.5)},
                     demands={"a": {"disk": 0.2, "cpu": 0.3}, "b": {"disk": 2.0, "cpu": 0.1}})
    sol = linearizer(net.arrays())
    b = class_bounds(net.arrays())
    _assert_brackets(b, sol.throughput, sol.residence_time.sum(axis=0))


def test_multiclass_lower_bound_beats_everyone_ahead_everywhere():
    # The brief's fallback bound puts every other client ahead at every queueing station:
    # R_k <= D_k + (N_tot - 1) sum_m D_mk. The bound here (the worst station only, less the
    # clients thinking) must be at least as good, and still below the exact throughput.
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(), "c": hq.Queue()},
                     classes={"u": hq.Closed(6, 1.0), "v": hq.Closed(4, 0.5)},
                     demands={"u": {"a": 0.2, "b": 0.1, "c": 0.05}, "v": {"a": 0.1, "b": 0.3}})
    arrays = net.arrays()
    b = class_bounds(arrays)
    d = arrays.demand.sum(axis=0)
    naive = arrays.population / (arrays.think_time + d + (arrays.population.sum() - 1) * d)
    assert (b["throughput_lower"] >= naive).all()
    assert (b["throughput_lower"] <= exact_mva(arrays).throughput).all()


def test_other_classes_can_speed_a_class_up():
    # Why the bounds do not assume "other classes only slow a class down": class 1 uses A only,
    # class 2 mostly B, class 3 both. More class-2 clients hold class 3 at B, and class 1's
    # throughput *rises* (exact MVA: 0.4959 with one class-2 client, 0.6491 with seven).
    def x1(n2):
        net = hq.Network(stations={"A": hq.Queue(), "B": hq.Queue()},
                         classes={"c1": hq.Closed(2, 1.0), "c2": hq.Closed(n2, 0.0),
                                  "c3": hq.Closed(3, 0.0)},
                         demands={"c1": {"A": 1.0}, "c2": {"A": 0.01, "B": 1.0},
                                  "c3": {"A": 1.0, "B": 1.0}})
        return float(exact_mva(net.arrays()).throughput[0])
    x = [x1(n) for n in range(1, 8)]
    assert (np.diff(x) > 0).all()
    assert x[0] == pytest.approx(0.49593496, rel=1e-6) and x[-1] == pytest.approx(0.64912537, rel=1e-6)


def test_load_dependent_capacity_bounds_throughput():
    # 4 servers at 2 s per request: at most 2 requests/s however many clients; the bound
    # meets it once the pool saturates, and brackets exact MVA all along the sweep.
    populations = np.arange(1, 121)
    net = hq.Network(stations={"pool": hq.Queue(servers=4), "cpu": hq.Queue(), "lan": hq.Delay()},
                     classes={"u": hq.Closed(populations, 1.0)},
                     demands={"u": {"pool": 2.0, "cpu": 0.3, "lan": 0.5}})
    arrays = net.arrays()
    b = class_bounds(arrays)
    exact = exact_mva(arrays)
    _assert_brackets(b, exact.throughput, exact.residence_time.sum(axis=-2))
    assert float(b["throughput_upper"][-1, 0]) == pytest.approx(2.0)
    # A rate table that peaks and falls back: the bound uses its maximum over reachable n.
    bumpy = hq.Network(stations={"gpu": hq.Queue(rate_multipliers=[1.0, 3.0, 1.5])},
                       classes={"u": hq.Closed(np.arange(1, 8), 0.5)}, demands={"u": {"gpu": 1.0}})
    b = class_bounds(bumpy.arrays())
    exact = exact_mva(bumpy.arrays())
    _assert_brackets(b, exact.throughput, exact.residence_time.sum(axis=-2))
    assert (b["throughput_upper"][1:, 0] <= 3.0 + 1e-12).all()


def test_class_bounds_are_vectorised_over_sweeps():
    import xarray as xr
    population = xr.DataArray(np.arange(1, 401), dims="clients")
    think = xr.DataArray(np.array([0.0, 2.0, 8.0]), dims="think")
    stations = {"gpu": hq.Queue(rate_multipliers=[1.0, 1.9, 2.7, 3.4]), "cpu": hq.Queue(),
                "lan": hq.Delay()}
    demands = {"u": {"gpu": 0.4, "cpu": 0.05, "lan": 0.1}, "v": {"gpu": 0.2, "cpu": 0.2}}
    net = hq.Network(stations=stations, classes={"u": hq.Closed(population, think),
                                                 "v": hq.Closed(5, 1.0)}, demands=demands)
    b = class_bounds(net.arrays())
    assert b["throughput_lower"].shape == (400, 3, 2)
    for i, j in [(0, 0), (57, 1), (399, 2)]:
        point = hq.Network(stations=stations, demands=demands,
                           classes={"u": hq.Closed(int(population[i]), float(think[j])),
                                    "v": hq.Closed(5, 1.0)})
        single = class_bounds(point.arrays())
        for name, value in b.items():
            np.testing.assert_allclose(value[i, j], single[name], rtol=1e-12)


def test_class_bounds_reject_open_classes_and_bad_populations():
    net = hq.Network(stations={"a": hq.Queue()}, classes={"o": hq.Open(0.1)}, demands={"o": {"a": 1.0}})
    with pytest.raises(hq.UnsupportedError, match="bounds: class 'o' is open"):
        class_bounds(net.arrays())
    closed = hq.Network(stations={"a": hq.Queue()}, classes={"u": hq.Closed(3, 1.0)},
                        demands={"u": {"a": 1.0}}).arrays()
    empty = dataclasses.replace(closed, population=np.array([0]))
    with pytest.raises(hq.ValidationError, match="class 'u' has population 0"):
        class_bounds(empty)
