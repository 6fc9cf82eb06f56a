"""Schweitzer AMVA and Linearizer against exact MVA; vectorised sweeps; laws at the fixed point."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq
from hermes_qn.solvers.amva import linearizer, schweitzer
from hermes_qn.solvers.base import station_utilization
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


# ---------------------------------------------------------------------------------------------
# Independent references written plainly here, the measured error distribution, the choice of
# load-dependent approximation, FCFS, sweeps over several axes, and convergence reporting.

def _schweitzer_single_class_reference(demands, think, population):
    """Schweitzer's fixed point for one class of single-server queues, by bisection on X.

    For one class the equations ``R_m = D_m (1 + (N - 1) / N Q_m)``, ``Q_m = X R_m`` give
    ``Q_m = X D_m / (1 - X D_m (N - 1) / N)``, and ``X (Z + sum_m Q_m / X) = N`` is one
    increasing equation in ``X`` on ``0 < X < N / ((N - 1) max D_m)``.
    """
    demands = np.asarray(demands, dtype=float)
    n = float(population)

    def excess(x):
        q = x * demands / (1.0 - x * demands * (n - 1) / n)
        return x * think + q.sum() - n

    lo, hi = 0.0, n / (demands.sum() + think)  # X <= N / (D + Z)
    if population > 1:
        hi = min(hi, n / ((n - 1) * demands.max()) * (1 - 1e-15))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _exact_single_class_reference(demands, think, population):
    """Exact single-class MVA for single-server queues, the textbook recursion, plainly."""
    q = np.zeros(len(demands))
    x = 0.0
    for n in range(1, population + 1):
        r = np.asarray(demands) * (1 + q)
        x = n / (think + r.sum())
        q = x * r
    return x


@settings(max_examples=40, deadline=None)
@given(demands=st.lists(st.floats(0.01, 2.0), min_size=1, max_size=5),
       think=st.floats(0.0, 10.0), population=st.integers(1, 3000))
def test_schweitzer_solves_its_equations_single_class(demands, think, population):
    # The kernel (Newton in X plus substitution) against the same equations solved by
    # bisection: only rounding separates them.
    net = hq.Network(stations={f"s{i}": hq.Queue() for i in range(len(demands))},
                     classes={"u": hq.Closed(population, think)},
                     demands={"u": {f"s{i}": d for i, d in enumerate(demands)}})
    sol = schweitzer(net.arrays())
    assert sol.converged
    reference = _schweitzer_single_class_reference(demands, think, population)
    np.testing.assert_allclose(sol.throughput[0], reference, rtol=1e-8)


def test_schweitzer_error_against_plain_exact_recursion_shrinks_with_population():
    # Known property: Schweitzer's single-class error is largest at small N and vanishes as
    # the bottleneck saturates; against a recursion written here, independent of mva.py.
    demands, think = [0.4, 0.3, 0.2], 2.0
    errors = []
    for n in (2, 5, 20, 200):
        net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(), "c": hq.Queue()},
                         classes={"u": hq.Closed(n, think)},
                         demands={"u": dict(zip("abc", demands))})
        x = float(schweitzer(net.arrays()).throughput[0])
        errors.append(abs(x / _exact_single_class_reference(demands, think, n) - 1))
    assert errors[0] < 0.05 and errors[-1] < 1e-3
    assert errors[-1] < errors[0]


def _error_network(rng, *, load_dependent, max_population):
    """1-3 classes, 2-4 stations (a delay now and then), classes that skip stations; with
    load_dependent, one or two stations of 2-4 servers or an increasing rate table."""
    n_stations = int(rng.integers(2, 5))
    n_ld = (1 if n_stations < 3 else int(rng.integers(1, 3))) if load_dependent else 0
    stations = {}
    for m in range(n_stations):
        if m < n_ld:
            stations[f"s{m}"] = (hq.Queue(servers=int(rng.integers(2, 5))) if rng.random() < 0.5 else
                                 hq.Queue(rate_multipliers=np.sort(rng.uniform(1, 4, rng.integers(2, 5)))))
        else:
            stations[f"s{m}"] = hq.Delay() if rng.random() < 0.2 else hq.Queue()
    classes, demands = {}, {}
    for k in range(int(rng.integers(1, 4))):
        row = {s: (float(rng.uniform(0.05, 1.0)) * (2.5 if stations[s].load_dependent else 1.0)
                   if rng.random() < 0.8 else 0.0) for s in stations}
        if not any(row.values()):
            row["s0"] = 0.5
        think = float(rng.uniform(0, 3)) if rng.random() < 0.7 else 0.0
        classes[f"c{k}"] = hq.Closed(int(rng.integers(1, max_population + 1)), think)
        demands[f"c{k}"] = row
    return hq.Network(stations=stations, classes=classes, demands=demands)


# Measured on exactly these seeded networks (60 of each kind, 1-8 clients per class, the hard
# regime), largest relative throughput error against exact MVA:
#                              median   95th pct   worst
#   Schweitzer, single-server  4.0 %     9.0 %     18.9 %
#   Linearizer, single-server  0.18 %    0.76 %     1.15 %
#   Schweitzer, load-dependent 2.8 %    10.3 %     15.0 %
#   Linearizer, load-dependent 0.46 %    5.8 %     10.8 %
# (300 networks of each kind, quoted in the docstrings, give the same picture.) The limits are
# these values rounded up by about a fifth, so a change that makes an approximation worse fails.
ERROR_LIMITS = {  # (load_dependent, solver): (median, 95th percentile, worst)
    (False, "schweitzer"): (0.05, 0.11, 0.23),
    (False, "linearizer"): (0.0022, 0.0095, 0.014),
    (True, "schweitzer"): (0.035, 0.125, 0.18),
    (True, "linearizer"): (0.006, 0.07, 0.13),
}


@pytest.mark.parametrize("load_dependent", [False, True])
def test_error_distribution(load_dependent):
    rng = np.random.default_rng(2024 + load_dependent)
    errors = {"schweitzer": [], "linearizer": []}
    for _ in range(60):
        arrays = _error_network(rng, load_dependent=load_dependent, max_population=8).arrays()
        exact = exact_mva(arrays).throughput
        for solver in (schweitzer, linearizer):
            sol = solver(arrays)
            assert sol.converged
            errors[solver.__name__].append(np.abs(sol.throughput / exact - 1).max())
    for name, values in errors.items():
        median, p95, worst = ERROR_LIMITS[(load_dependent, name)]
        values = np.array(values)
        assert np.median(values) <= median, (name, np.median(values))
        assert np.quantile(values, 0.95) <= p95, (name, np.quantile(values, 0.95))
        assert values.max() <= worst, (name, values.max())


def _seidmann(net):
    """The same network with every c-server queue replaced by Seidmann's queue of demand D / c
    followed by a delay of (c - 1) D / c."""
    stations, demands = {}, {c: {} for c in net.classes}
    for name, station in net.stations.items():
        servers = getattr(station, "servers", 1)
        if servers > 1:
            stations[name], stations[name + "_delay"] = hq.Queue(), hq.Delay()
        else:
            stations[name] = station
        for c in net.classes:
            d = net.demands[c].get(name, 0.0)
            if servers > 1:
                demands[c][name], demands[c][name + "_delay"] = d / servers, d * (servers - 1) / servers
            else:
                demands[c][name] = d
    return hq.Network(stations=stations, classes=net.classes, demands=demands)


def test_load_dependent_approximation_beats_seidmann():
    # The choice documented in schweitzer(): on multi-server networks the marginal-distribution
    # approximation was measured (150 networks) at median 1.5 % / worst 6.8 % against
    # Seidmann's 2.7 % / 12.8 %; here 40 of them, asserting the ordering and our worst case.
    rng = np.random.default_rng(5)
    ours, theirs = [], []
    for _ in range(40):
        n_stations = int(rng.integers(2, 4))
        stations = {f"s{m}": hq.Queue(servers=int(rng.integers(2, 9))) if m == 0 else hq.Queue()
                    for m in range(n_stations)}
        classes = {f"c{k}": hq.Closed(int(rng.integers(1, 25)), float(rng.uniform(0, 3)))
                   for k in range(int(rng.integers(1, 3)))}
        demands = {c: {s: float(rng.uniform(0.05, 1)) * stations[s].servers for s in stations}
                   for c in classes}
        net = hq.Network(stations=stations, classes=classes, demands=demands)
        exact = exact_mva(net.arrays()).throughput
        ours.append(np.abs(schweitzer(net.arrays()).throughput / exact - 1).max())
        theirs.append(np.abs(schweitzer(_seidmann(net).arrays()).throughput / exact - 1).max())
    assert np.median(ours) < np.median(theirs)
    assert max(ours) < max(theirs)
    assert max(ours) < 0.08


def test_decode_like_station_error_shrinks_with_population():
    # A batching station (step time 20 ms + 0.4 ms per request, batch cap 64) behind a
    # prefill queue: the regime the library is for. Measured: 1.6 % at 200 clients,
    # 3e-5 at 2000 (beyond the knee the bottleneck is saturated and the approximation exact).
    step = lambda b: 0.02 + 0.0004 * b  # noqa: E731
    table = [b * step(1) / step(b) for b in range(1, 65)]
    errors = []
    for n in (200, 2000):
        net = hq.Network(stations={"prefill": hq.Queue(), "decode": hq.Queue(rate_multipliers=table),
                                   "net": hq.Delay()},
                         classes={"u": hq.Closed(n, 2.0)},
                         demands={"u": {"prefill": 0.01, "decode": 0.5, "net": 0.05}})
        arrays = net.arrays()
        x = exact_mva(arrays).throughput
        for solver in (schweitzer, linearizer):
            errors.append(float(np.abs(solver(arrays).throughput / x - 1).max()))
    assert max(errors[:2]) < 0.02
    assert max(errors[2:]) < 1e-4


def test_fcfs_with_class_dependent_demands_tends_to_the_open_pollaczek_khinchine_mean():
    # With many clients thinking long, arrivals at the FCFS station are nearly Poisson and the
    # FCFS formula R_k = D_k + sum_j D_j A_j must approach the open M/M/1-FCFS (P-K) mean that
    # solve_open uses: W = sum_j lambda_j D_j^2 / (1 - rho).
    lam, d = np.array([0.2, 0.15]), np.array([1.0, 2.0])
    n = 4000
    net = hq.Network(stations={"disk": hq.Queue(discipline="fcfs")},
                     classes={"a": hq.Closed(n, n / lam[0]), "b": hq.Closed(n, n / lam[1])},
                     demands={"a": {"disk": d[0]}, "b": {"disk": d[1]}})
    rho = (lam * d).sum()
    wait = (lam * d * d).sum() / (1 - rho)
    for solver in (schweitzer, linearizer):
        sol = solver(net.arrays())
        np.testing.assert_allclose(sol.residence_time[0], d + wait, rtol=2e-3)
    # Equal demands: FCFS is product form and gets the PS answer.
    same = hq.Network(stations={"disk": hq.Queue(discipline="fcfs"), "cpu": hq.Queue()},
                      classes={"a": hq.Closed(5, 1.0), "b": hq.Closed(3, 0.5)},
                      demands={"a": {"disk": 0.5, "cpu": 0.2}, "b": {"disk": 0.5, "cpu": 0.4}})
    ps = hq.Network(stations={"disk": hq.Queue(), "cpu": hq.Queue()}, classes=same.classes,
                    demands=same.demands)
    for solver in (schweitzer, linearizer):
        np.testing.assert_allclose(solver(same.arrays()).throughput, solver(ps.arrays()).throughput,
                                   rtol=1e-9)


def test_two_swept_axes_with_load_dependent_station_match_pointwise():
    import xarray as xr
    population = xr.DataArray(np.array([1, 4, 30, 300]), dims="clients")
    think = xr.DataArray(np.array([0.0, 1.5, 6.0]), dims="think")
    stations = {"gpu": hq.Queue(rate_multipliers=[1.0, 1.8, 2.4, 2.8]), "cpu": hq.Queue(),
                "pool": hq.Queue(servers=3)}
    demands = {"u": {"gpu": 0.3, "cpu": 0.05, "pool": 0.2}, "v": {"gpu": 0.1, "pool": 0.4}}
    net = hq.Network(stations=stations, classes={"u": hq.Closed(population, think),
                                                 "v": hq.Closed(5, 1.0)}, demands=demands)
    for solver in (schweitzer, linearizer):
        swept = solver(net.arrays())
        assert swept.converged and swept.throughput.shape == (4, 3, 2)
        for i, j in [(0, 0), (1, 2), (2, 1), (3, 0), (3, 2)]:
            point = hq.Network(stations=stations, demands=demands,
                               classes={"u": hq.Closed(int(population[i]), float(think[j])),
                                        "v": hq.Closed(5, 1.0)})
            single = solver(point.arrays())
            np.testing.assert_allclose(swept.throughput[i, j], single.throughput, rtol=1e-8)
            np.testing.assert_allclose(swept.residence_time[i, j], single.residence_time, rtol=1e-7)


def test_benchmark_network_converges_in_few_iterations():
    # 8 classes x 100 clients, 20 stations (the size quoted in the report: about 1.5 ms for
    # Schweitzer, 11 ms for Linearizer on the development machine).
    rng = np.random.default_rng(0)
    d = rng.uniform(0.01, 0.1, (20, 8))
    net = hq.Network(stations={f"s{m}": hq.Queue() for m in range(20)},
                     classes={f"c{k}": hq.Closed(100, 1.0) for k in range(8)},
                     demands={f"c{k}": {f"s{m}": d[m, k] for m in range(20)} for k in range(8)})
    arrays = net.arrays()
    sol = schweitzer(arrays)
    assert sol.converged and sol.iterations <= 30
    lin = linearizer(arrays)
    assert lin.converged
    # Both satisfy Little's law around the cycle.
    np.testing.assert_allclose(sol.throughput * (sol.residence_time.sum(axis=0) + 1.0), 100, rtol=1e-8)


def test_iteration_limit_is_reported_not_raised():
    net = hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(servers=2)},
                     classes={"c": hq.Closed(30, 0.1), "d": hq.Closed(20, 0.0)},
                     demands={"c": {"a": 0.3, "b": 0.1}, "d": {"a": 0.1, "b": 0.4}})
    for solver in (schweitzer, linearizer):
        zero = solver(net.arrays(), max_iter=0)
        assert not zero.converged and zero.iterations == 0 and zero.residual == np.inf
        few = solver(net.arrays(), max_iter=1)
        assert not few.converged and few.iterations == 1 and few.residual > 0
    with pytest.raises(hq.ValidationError, match="max_iter=-1"):
        schweitzer(net.arrays(), max_iter=-1)
    with pytest.raises(hq.ValidationError, match="tol=0"):
        linearizer(net.arrays(), tol=0)


@st.composite
def _closed_networks(draw):
    """Random closed networks of every station kind (FCFS included) for the law checks."""
    kinds = draw(st.lists(st.sampled_from(["ps", "fcfs", "delay", "servers", "table"]),
                          min_size=1, max_size=4))
    stations = {}
    for m, kind in enumerate(kinds):
        stations[f"s{m}"] = {"ps": hq.Queue(), "fcfs": hq.Queue(discipline="fcfs"),
                             "delay": hq.Delay(),
                             "servers": hq.Queue(servers=draw(st.integers(2, 6))),
                             "table": hq.Queue(rate_multipliers=sorted(draw(st.lists(
                                 st.floats(0.5, 5.0), min_size=1, max_size=4))))}[kind]
    classes, demands = {}, {}
    for k in range(draw(st.integers(1, 3))):
        row = {s: draw(st.one_of(st.just(0.0), st.floats(0.01, 2.0))) for s in stations}
        think = draw(st.one_of(st.just(0.0), st.floats(0.01, 5.0)))
        if think == 0 and not any(row.values()):
            think = 1.0
        classes[f"c{k}"] = hq.Closed(draw(st.integers(1, 200)), think)
        demands[f"c{k}"] = row
    return hq.Network(stations=stations, classes=classes, demands=demands)


@settings(max_examples=40, deadline=None)
@given(_closed_networks())
def test_laws_on_random_networks(net):
    arrays = net.arrays()
    for solver in (schweitzer, linearizer):
        sol = solver(arrays)
        assert sol.converged, (solver.__name__, sol.iterations, sol.residual)
        # Little's law around the cycle, N_k = X_k (R_k + Z_k), and at each station.
        cycle = sol.residence_time.sum(axis=0) + arrays.think_time
        np.testing.assert_allclose(sol.throughput * cycle, arrays.population, rtol=1e-7)
        np.testing.assert_allclose(sol.queue_length, sol.throughput * sol.residence_time, rtol=1e-12)
        # Utilisation law, and no more work than the station's top speed allows.
        np.testing.assert_allclose(sol.utilization, station_utilization(
            sol.throughput, arrays.demand, arrays.capacity), rtol=1e-12)
        # The approximations may overshoot a saturated station a little (hypothesis found
        # Linearizer at 1.00067 where exact MVA is at 1), hence 3e-3. Not checked when an FCFS
        # station has class-dependent demands (not product form): there the MVA heuristic
        # itself, exact recursion included, can exceed 1 (1.057 for one client of each of two
        # classes, 1 s and 0.5 s), and so can the stations it feeds (Linearizer 1.005).
        heuristic = any(arrays.fcfs[m] and np.unique(arrays.demand[m][arrays.demand[m] > 0]).size > 1
                        for m in range(len(arrays.stations)))
        for m, a in enumerate(arrays.multipliers):
            if len(a) and not heuristic:
                work = (sol.throughput * arrays.demand[m]).sum()
                assert work <= a.max() * (1 + 3e-3)
        # A request is never served faster than alone at its fastest speed.
        fastest = np.array([max(1.0, (a / np.arange(1, len(a) + 1)).max()) if len(a) else 1.0
                            for a in arrays.multipliers])
        assert (sol.residence_time >= arrays.demand / fastest[:, None] * (1 - 1e-9)).all()


def test_schweitzer_converges_on_multiserver_network_found_by_hypothesis():
    # Once oscillated (residual 0.0055 after 10^4 iterations): s0 carries 0.99997 of its two
    # servers' capacity, and Newton stepped past the top of its marginal (all 151 clients
    # there), where the residence times are clamped flat. The fixed point, reached here by
    # plain substitution under-relaxed by 0.01 (4024 iterations, tol 1e-12): X = (0.0955502,
    # 0.7855791, 1.0336250); exact MVA gives (0.0956, 0.857, 1.0336).
    net = hq.Network(
        stations={"s0": hq.Queue(servers=2), "s1": hq.Queue(), "s2": hq.Queue(),
                  "s3": hq.Queue(servers=3)},
        classes={"c0": hq.Closed(15, 0.0), "c1": hq.Closed(4, 1.375), "c2": hq.Closed(136, 0.0)},
        demands={"c0": {"s0": 2.0, "s1": 0.99999, "s2": 1.25}, "c1": {"s2": 1.0},
                 "c2": {"s0": 1.75}})
    sol = schweitzer(net.arrays())
    assert sol.converged and sol.iterations <= 50
    np.testing.assert_allclose(sol.throughput, [0.09555021, 0.78557915, 1.03362502], rtol=1e-7)


def test_schweitzer_converges_with_a_station_at_its_top_beside_a_nearly_saturated_one():
    # s1 holds its only class, 17 clients without think time, all the time (at the top of its
    # marginal) while s0 runs at 0.9993 of its 4 servers: a Newton step limit that counted
    # every station's top (a first version of the fix above) froze here, s1 having no room.
    # Reference: plain substitution under-relaxed by 0.01 (2490 iterations); exact MVA gives
    # (2.3475, 1.5587, 2.5039).
    net = hq.Network(
        stations={"s0": hq.Queue(servers=4), "s1": hq.Queue(servers=2), "s2": hq.Queue(servers=3),
                  "s3": hq.Queue(servers=5)},
        classes={"c0": hq.Closed(114, 2.233792719183683), "c1": hq.Closed(150, 0.0),
                 "c2": hq.Closed(17, 0.0)},
        demands={"c0": {"s0": 0.625, "s2": 1.2064648844552444, "s3": 1.375},
                 "c1": {"s0": 1.625, "s3": 1.0}, "c2": {"s1": 0.7987523561913925}})
    sol = schweitzer(net.arrays())
    assert sol.converged and sol.iterations <= 50
    np.testing.assert_allclose(sol.throughput, [2.32170947, 1.56695165, 2.50390498], rtol=1e-7)


@st.composite
def _multiserver_networks(draw):
    """Closed networks of multi-server, single-server and delay stations, at least one
    multi-server; classes without think time and with demands on a 1/8 grid included (the
    kind of network on which Schweitzer once cycled)."""
    kinds = draw(st.lists(st.sampled_from(["servers", "ps", "delay"]), min_size=1, max_size=4))
    kinds[0] = "servers"
    stations = {}
    for m, kind in enumerate(kinds):
        stations[f"s{m}"] = (hq.Queue(servers=draw(st.integers(2, 8))) if kind == "servers" else
                             hq.Queue() if kind == "ps" else hq.Delay())
    demand = st.one_of(st.just(0.0), st.floats(0.01, 2.0), st.integers(1, 16).map(lambda i: i / 8))
    classes, demands = {}, {}
    for k in range(draw(st.integers(1, 3))):
        row = {s: draw(demand) for s in stations}
        if not any(row.values()):
            row["s0"] = 1.0
        think = draw(st.one_of(st.just(0.0), st.floats(0.01, 5.0)))
        classes[f"c{k}"] = hq.Closed(draw(st.integers(1, 200)), think)
        demands[f"c{k}"] = row
    return hq.Network(stations=stations, classes=classes, demands=demands)


@settings(max_examples=60, deadline=None)
@given(_multiserver_networks())
def test_schweitzer_converges_on_random_multiserver_networks(net):
    arrays = net.arrays()
    sol = schweitzer(arrays)
    assert sol.converged, (sol.iterations, sol.residual)
    assert sol.iterations <= 100
    # At the fixed point, N_k = X_k (R_k + Z_k).
    cycle = sol.residence_time.sum(axis=0) + arrays.think_time
    np.testing.assert_allclose(sol.throughput * cycle, arrays.population, rtol=1e-7)


def test_linearizer_converges_where_newton_left_the_clamped_arrival_queues():
    # Two of 400 seeded random networks (an FCFS station with class-dependent demands beside
    # a load-dependent one) on which Linearizer did not converge (residual 0.98 and 0.99 after
    # 10^4 iterations): Newton solved the corrected core equations without the clamp of the
    # arrival queues to [0, N_j - [j = k]], landed on negative residence times, and the
    # substitution started there cycled. Exact MVA gives X = (0.6583, 0.5117) on the first
    # (Linearizer 0.91 % off, Schweitzer 1.0 %) and (0.5429, 0.4878, 0.2233) on the second
    # (Linearizer 5.2 %, Schweitzer 6.6 %; not recomputed here, 14 s).
    first = hq.Network(
        stations={"s0": hq.Queue(discipline="fcfs"),
                  "s1": hq.Queue(rate_multipliers=(2.226861033336186, 2.2794733324735823,
                                                   4.952953129678864)),
                  "s2": hq.Queue()},
        classes={"c0": hq.Closed(192, 0.0), "c1": hq.Closed(122, 4.061178143251248)},
        demands={"c0": {"s0": 0.5, "s1": 0.25, "s2": 1.1304885048299484},
                 "c1": {"s0": 1.3111593740795675, "s1": 0.6586728423511272, "s2": 0.5}})
    second = hq.Network(
        stations={"s0": hq.Queue(discipline="fcfs"),
                  "s1": hq.Queue(rate_multipliers=(0.5399682593159232, 1.5789461833135556))},
        classes={"c0": hq.Closed(156, 2.4539018244529927), "c1": hq.Closed(180, 2.2554167437421686),
                 "c2": hq.Closed(59, 1.4652945309675973)},
        demands={"c0": {"s0": 1.3435064261724352, "s1": 1.0006940369830326},
                 "c1": {"s0": 0.15157573551360912, "s1": 1.6624881697106022},
                 "c2": {"s0": 0.875, "s1": 1.0064291133733052}})
    for net in (first, second):
        arrays = net.arrays()
        sol = linearizer(arrays)
        assert sol.converged, (sol.iterations, sol.residual)
        cycle = sol.residence_time.sum(axis=0) + arrays.think_time
        np.testing.assert_allclose(sol.throughput * cycle, arrays.population, rtol=1e-7)
    exact = exact_mva(first.arrays()).throughput
    assert np.abs(linearizer(first.arrays()).throughput / exact - 1).max() < 0.01


@pytest.mark.xfail(strict=True, reason="known limitation (found in a stress run, 2026-11-21, "
                   "about 1 in 1000 random networks): Linearizer does not converge with a "
                   "class-dependent FCFS station beside a nearly saturated 5-server station (both "
                   "at ~0.995 utilisation). Its core equations at N - e_c0 have two solutions there "
                   "(a 1-client class's corrected arrival queues clamped to 0 on one: X_c1 = 0.168 "
                   "against 0.084), so the map F -> F' is multi-valued and its iteration jumps "
                   "between the branches (a limit cycle even under-relaxed by 0.05; scipy root "
                   "finders stop at a residual of 0.03). Schweitzer converges. Remove the mark "
                   "when it converges")
def test_linearizer_converges_beside_a_nearly_saturated_multiserver_station():
    net = hq.Network(stations={"s0": hq.Queue(servers=5), "s1": hq.Queue(discipline="fcfs")},
                     classes={"c0": hq.Closed(8, 3.95253685230685),
                              "c1": hq.Closed(1, 3.963684055730641),
                              "c2": hq.Closed(184, 1.2562444537700008)},
                     demands={"c0": {"s0": 0.875, "s1": 1.0}, "c1": {"s1": 2.0},
                              "c2": {"s0": 2.0, "s1": 0.332633588842714}})
    assert schweitzer(net.arrays()).converged
    sol = linearizer(net.arrays())
    assert sol.converged
    # Exact MVA (FCFS treated as PS, see exact_mva): X = (0.1372, 0.0240, 2.440).
    np.testing.assert_allclose(sol.throughput, exact_mva(net.arrays()).throughput, rtol=0.05)
