"""Open product-form solver against textbook formulas written out independently here."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq
from hermes_qn.solvers.open import load_dependent_moments, solve_open


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a = lambda * S (Erlang C, factorial form)."""
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_response(lam: float, service: float, c: int) -> float:
    """Textbook M/M/c mean response time: S + C(c, a) S / (c (1 - rho))."""
    a = lam * service
    return service + erlang_c(c, a) * service / (c * (1 - a / c))


def solve_point(stations, lam, demands):
    net = hq.Network(stations=stations, classes={"jobs": hq.Open(lam)}, demands={"jobs": demands})
    return hq.solve(net)


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_mm1(lam, discipline):
    res = solve_point({"q": hq.Queue(discipline=discipline)}, lam, {"q": 2.0 / 2})
    assert float(res.response_time[0]) == pytest.approx(1.0 / (1.0 - lam), rel=1e-12)
    assert float(res.queue_length[0, 0]) == pytest.approx(lam / (1 - lam), rel=1e-12, abs=1e-15)
    assert float(res.utilization[0, 0]) == pytest.approx(lam, rel=1e-12)


@pytest.mark.parametrize("c", [1, 2, 3, 8, 20])
@pytest.mark.parametrize("rho", [0.05, 0.5, 0.8, 0.97])
def test_mmc_against_erlang_c(c, rho):
    service = 0.3
    lam = rho * c / service
    res = solve_point({"pool": hq.Queue(servers=c)}, lam, {"pool": service})
    assert float(res.response_time[0]) == pytest.approx(mmc_response(lam, service, c), rel=1e-10)
    assert float(res.utilization[0, 0]) == pytest.approx(rho, rel=1e-12)


def test_mmc_with_thousands_of_servers_does_not_overflow():
    c, service, rho = 5000, 1.0, 0.99
    res = solve_point({"pool": hq.Queue(servers=c)}, rho * c / service, {"pool": service})
    r = float(res.response_time[0])
    assert np.isfinite(r) and 1.0 <= r < 1.01


def birth_death_mean(rho: float, multipliers: list[float], n_max: int = 4000) -> float:
    """Mean of p(n) ~ rho^n / prod a(i), summed term by term (a holds its last value)."""
    a = lambda i: multipliers[min(i, len(multipliers)) - 1]  # noqa: E731
    p, total, mean = 1.0, 1.0, 0.0
    for n in range(1, n_max):
        p *= rho / a(n)
        total += p
        mean += n * p
    return mean / total


@pytest.mark.parametrize("multipliers", [[1.0, 1.8, 2.4], [0.5, 2.0], [1.0, 1.2, 1.3, 1.35, 1.37], [3.0]])
@pytest.mark.parametrize("fraction", [0.1, 0.6, 0.9])
def test_load_dependent_station_against_birth_death_sum(multipliers, fraction):
    rho = fraction * multipliers[-1]
    mean, per_rho = load_dependent_moments(np.array(rho), np.array(multipliers))
    expected = birth_death_mean(rho, multipliers)
    assert float(mean) == pytest.approx(expected, rel=1e-9)
    assert float(per_rho) == pytest.approx(expected / rho, rel=1e-9)


def test_load_dependent_limit_at_zero_load():
    _, per_rho = load_dependent_moments(np.array([0.0]), np.array([2.0, 3.0]))
    assert per_rho[0] == pytest.approx(0.5)


def test_delay_station_has_no_waiting():
    res = solve_point({"lan": hq.Delay()}, 1e6, {"lan": 0.25})
    assert float(res.response_time[0]) == 0.25
    assert float(res.queue_length[0, 0]) == pytest.approx(0.25e6)
    assert not bool(res.saturated)


def test_fcfs_class_dependent_uses_pollaczek_khinchine():
    net = hq.Network(stations={"disk": hq.Queue(discipline="fcfs")},
                     classes={"a": hq.Open(0.2), "b": hq.Open(0.3)},
                     demands={"a": {"disk": 1.0}, "b": {"disk": 2.0}})
    res = hq.solve(net)
    rho = 0.2 * 1.0 + 0.3 * 2.0
    wait = (0.2 * 2 * 1.0**2 + 0.3 * 2 * 2.0**2) / 2 / (1 - rho)  # M/G/1: lambda E[S^2] / (2 (1 - rho))
    np.testing.assert_allclose(res.response_time.values, [1.0 + wait, 2.0 + wait], rtol=1e-12)
    assert res.attrs["product_form"] == 0 and "'disk' is FCFS" in res.attrs["notes"]


def test_multiclass_ps_product_form():
    net = hq.Network(stations={"cpu": hq.Queue()}, classes={"a": hq.Open(0.2), "b": hq.Open(0.3)},
                     demands={"a": {"cpu": 1.0}, "b": {"cpu": 2.0}})
    res = hq.solve(net)
    np.testing.assert_allclose(res.response_time.values, [1.0 / 0.2, 2.0 / 0.2], rtol=1e-12)
    assert res.attrs["product_form"] == 1


def test_vectorised_sweep_marks_only_saturated_points():
    lam = np.linspace(0.1, 1.5, 15)
    net = hq.Network(stations={"cpu": hq.Queue(), "pool": hq.Queue(servers=2)},
                     classes={"jobs": hq.Open(lam)}, demands={"jobs": {"cpu": 1.0, "pool": 1.2}})
    res = hq.solve(net)
    assert res.response_time.dims == ("jobs_arrival_rate", "class")
    stable = lam < 1.0
    assert (res.saturated.values == ~stable).all()
    assert np.isfinite(res.response_time.values[stable]).all()
    assert np.isinf(res.response_time.values[~stable]).all()
    assert set(res.saturated_station.values[~stable]) == {"cpu"}
    assert set(res.saturated_station.values[stable]) == {""}
    np.testing.assert_allclose(res.station_utilization.sel(station="cpu").values, lam)
    for i, rate in enumerate(lam[stable]):
        single = solve_point({"cpu": hq.Queue(), "pool": hq.Queue(servers=2)}, rate,
                             {"cpu": 1.0, "pool": 1.2})
        np.testing.assert_allclose(res.response_time.values[i], single.response_time.values, rtol=1e-12)


def test_saturated_multiserver_named_with_its_load():
    res = solve_point({"cpu": hq.Queue(), "pool": hq.Queue(servers=2)}, 0.5, {"cpu": 0.1, "pool": 4.4})
    assert bool(res.saturated) and str(res.saturated_station.values) == "pool"
    assert float(res.station_utilization.sel(station="pool")) == pytest.approx(1.1)
    assert float(res.residence_time.sel(station="cpu")[0]) == pytest.approx(0.1 / 0.95)


@settings(max_examples=60, deadline=None)
@given(lam=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=2),
       demands=st.lists(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2), min_size=3, max_size=3))
def test_open_laws(lam, demands):
    """Little's law per station and class, utilisation law, and R >= D wherever stable."""
    stations = {"q": hq.Queue(), "c": hq.Queue(servers=3), "d": hq.Delay()}
    net = hq.Network(stations=stations, classes={"a": hq.Open(lam[0]), "b": hq.Open(lam[1])},
                     demands={k: {s: demands[i][j] for i, s in enumerate(stations)}
                              for j, k in enumerate(["a", "b"])})
    res = hq.solve(net)
    d = net.arrays().demand
    lam_arr = np.array(lam)
    np.testing.assert_allclose(res.utilization.values[0], lam_arr * d[0] / 1.0)
    np.testing.assert_allclose(res.utilization.values[1], lam_arr * d[1] / 3.0)
    if bool(res.saturated):
        assert float(res.station_utilization.sel(station=str(res.saturated_station.values))) >= 1.0
        return
    r = res.residence_time.values
    np.testing.assert_allclose(res.queue_length.values, lam_arr * r, rtol=1e-12)
    assert (r >= d * (1 - 1e-12)).all()


def test_solve_open_directly_returns_load():
    net = hq.Network(stations={"cpu": hq.Queue(), "lan": hq.Delay()}, classes={"j": hq.Open(0.5)},
                     demands={"j": {"cpu": 1.0, "lan": 3.0}})
    solution, load = solve_open(net.arrays())
    np.testing.assert_allclose(load, [0.5, 0.0])
    assert solution.method == "open-product-form"
