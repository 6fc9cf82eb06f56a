"""Schweitzer AMVA and Linearizer against exact MVA; vectorised sweeps; laws at the fixed point."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq
from hermes_qn.solvers.amva import linearizer, schweitzer
from hermes_qn.solvers.mva import exact_mva


def random_network(rng, *, load_dependent):
    n_stations = int(rng.integers(3, 6))
    stations = {}
    for m in range(n_stations):
        if load_dependent and m == 0:
            stations[f"s{m}"] = hq.Queue(servers=int(rng.integers(2, 5)))
        elif load_dependent and m == 1:
            stations[f"s{m}"] = hq.Queue(rate_multipliers=np.cumsum(rng.uniform(0.3, 1.0, 4)))
        else:
            stations[f"s{m}"] = hq.Queue()
    classes, demands = {}, {}
    for k in range(int(rng.integers(2, 4))):
        classes[f"c{k}"] = hq.Closed(int(rng.integers(2, 16)), float(rng.uniform(0, 5)))
        demands[f"c{k}"] = {s: float(rng.uniform(0.01, 1.0)) for s in stations}
    return hq.Network(stations=stations, classes=classes, demands=demands)


# Tolerances: the worst relative response-time error measured on 60 seeded networks of each
# kind (validation/core_agreement.md), rounded up: Schweitzer 9.9% / 13.8%, Linearizer
# 1.6% / 7.7% (single-server only / with multi-server and load-dependent stations).
@pytest.mark.parametrize("load_dependent, tol_amva, tol_lin", [(False, 0.11, 0.02), (True, 0.15, 0.08)])
def test_error_against_exact_within_measured_bounds(load_dependent, tol_amva, tol_lin):
    rng = np.random.default_rng(11)
    for _ in range(12):
        arrays = random_network(rng, load_dependent=load_dependent).arrays()
        exact = exact_mva(arrays)
        for solver, tol in ((schweitzer, tol_amva), (linearizer, tol_lin)):
            approx = solver(arrays)
            assert approx.converged
            r_exact = exact.residence_time.sum(axis=-2)
            r_approx = approx.residence_time.sum(axis=-2)
            np.testing.assert_allclose(r_approx, r_exact, rtol=tol)
            np.testing.assert_allclose(approx.throughput, exact.throughput, rtol=tol)


def test_linearizer_is_closer_than_schweitzer_on_average():
    rng = np.random.default_rng(5)
    err = {"schweitzer": [], "linearizer": []}
    for _ in range(10):
        arrays = random_network(rng, load_dependent=False).arrays()
        x = exact_mva(arrays).throughput
        err["schweitzer"].append(np.abs(schweitzer(arrays).throughput / x - 1).mean())
        err["linearizer"].append(np.abs(linearizer(arrays).throughput / x - 1).mean())
    assert np.mean(err["linearizer"]) < 0.2 * np.mean(err["schweitzer"])


def test_single_class_single_customer_is_exact():
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue()},
                     classes={"c": hq.Closed(1, 2.0)}, demands={"c": {"a": 0.5, "b": 0.25}})
    for solver in (schweitzer, linearizer):
        sol = solver(net.arrays())
        assert float(sol.throughput[0]) == pytest.approx(1 / 2.75, rel=1e-9)


def test_population_sweep_is_vectorised_and_matches_pointwise():
    populations = np.arange(1, 201)
    net = hq.Network(stations={"cpu": hq.Queue(), "pool": hq.Queue(servers=3), "lan": hq.Delay()},
                     classes={"u": hq.Closed(populations, 1.0), "v": hq.Closed(7, 0.5)},
                     demands={"u": {"cpu": 0.02, "pool": 0.05, "lan": 0.1}, "v": {"cpu": 0.01}})
    for solver in (schweitzer, linearizer):
        swept = solver(net.arrays())
        assert swept.throughput.shape == (200, 2)
        for i in (0, 57, 199):
            point = hq.Network(stations=net.stations, demands=net.demands,
                               classes={"u": hq.Closed(int(populations[i]), 1.0), "v": hq.Closed(7, 0.5)})
            np.testing.assert_allclose(swept.throughput[i], solver(point.arrays()).throughput, rtol=1e-7)


def test_thousands_of_clients_do_not_overflow():
    net = hq.Network(stations={"cpu": hq.Queue(), "pool": hq.Queue(servers=8)},
                     classes={"u": hq.Closed(5000, 1.0)}, demands={"u": {"cpu": 0.001, "pool": 0.01}})
    for solver in (schweitzer, linearizer):
        sol = solver(net.arrays())
        assert np.isfinite(sol.residence_time).all()
        assert float(sol.throughput[0]) == pytest.approx(800.0, rel=1e-3)  # pool bottleneck 8 / 0.01


def test_solve_raises_when_iteration_limit_is_hit():
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue()},
                     classes={"c": hq.Closed(30, 0.1), "d": hq.Closed(20, 0.0)},
                     demands={"c": {"a": 0.3, "b": 0.1}, "d": {"a": 0.1, "b": 0.4}})
    with pytest.raises(hq.ConvergenceError, match=r"did not converge in \d+ iterations") as exc:
        hq.solve(net, method="amva", max_iter=2)
    assert exc.value.iterations <= 2 and exc.value.residual > 0


def test_open_class_is_rejected_by_the_kernel():
    net = hq.Network(stations={"a": hq.Queue()}, classes={"o": hq.Open(0.1)}, demands={"o": {"a": 1.0}})
    with pytest.raises(hq.ValidationError, match="class 'o' is open"):
        schweitzer(net.arrays())


@settings(max_examples=40, deadline=None)
@given(pop=st.lists(st.integers(1, 40), min_size=2, max_size=2),
       think=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=2),
       demands=st.lists(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=2), min_size=3, max_size=3))
def test_laws_at_the_fixed_point(pop, think, demands):
    """N_k = X_k (R_k + Z_k), Q = X R, U = X D / c <= 1 and R_mk >= D_mk."""
    stations = {"q": hq.Queue(), "c": hq.Queue(servers=2), "d": hq.Delay()}
    net = hq.Network(stations=stations,
                     classes={"a": hq.Closed(pop[0], think[0]), "b": hq.Closed(pop[1], think[1])},
                     demands={k: {s: demands[i][j] for i, s in enumerate(stations)}
                              for j, k in enumerate(["a", "b"])})
    arrays = net.arrays()
    for solver in (schweitzer, linearizer):
        sol = solver(arrays)
        response = sol.residence_time.sum(axis=0)
        np.testing.assert_allclose(sol.throughput * (response + np.array(think)), pop, rtol=1e-6)
        np.testing.assert_allclose(sol.queue_length, sol.throughput * sol.residence_time, rtol=1e-9)
        # Approximations may overshoot a saturated bottleneck slightly (Linearizer 1.0001 where
        # exact MVA gives 0.99996, found by hypothesis), hence 1e-3 rather than rounding error.
        assert (sol.utilization[:2].sum(axis=-1) <= 1 + 1e-3).all()
        assert (sol.residence_time >= arrays.demand * (1 - 1e-9)).all()


@settings(max_examples=25, deadline=None)
@given(demands=st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3), think=st.floats(0.0, 5.0))
def test_single_class_throughput_non_decreasing_in_population(demands, think):
    stations = {"a": hq.Queue(), "b": hq.Queue(servers=2), "c": hq.Queue()}
    net = hq.Network(stations=stations, classes={"u": hq.Closed(np.arange(1, 60), think)},
                     demands={"u": dict(zip(stations, demands))})
    for solver in (schweitzer, linearizer):
        x = solver(net.arrays()).throughput[:, 0]
        assert (np.diff(x) >= -1e-9 * x[1:]).all()
