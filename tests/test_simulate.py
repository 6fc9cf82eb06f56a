"""The event sampler against exact answers, its bookkeeping, and its argument checks.

Tolerance: a Monte Carlo estimate passes when it lies within 3 half-widths of
its 95% confidence interval (Student t over 10 independent replications) of
the exact value. One half-width would fail about 1 comparison in 20 by
chance and these tests make dozens; 3 half-widths is about 6.8 standard
errors. So that "within 3 half-widths" cannot pass vacuously, every test also
requires the half-width itself to be small (a few percent of the value).
Seeds are fixed, so a run is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq
from hermes_qn.distributions import (Deterministic, Empirical, Erlang, Exponential, Gamma,
                                     HyperExponential, Lognormal)
from hermes_qn.simulate import simulate
from hermes_qn.solvers.open import solve_open

SIM_VARS = ("throughput", "response_time", "residence_time", "queue_length", "utilization")


def assert_agrees(ds: xr.Dataset, name: str, expected, *, width: float = 0.05) -> None:
    """Estimate within 3 half-widths of ``expected``, half-width under ``width`` of it."""
    est = ds[name].values
    half = ds[f"{name}_halfwidth"].values
    expected = np.broadcast_to(np.asarray(expected, dtype=float), est.shape)
    off = np.abs(est - expected)
    assert np.all(off <= 3 * half + 1e-12), (
        f"{name}: simulated {est} +- {half}, exact {expected} (off by {off / np.maximum(half, 1e-300)} "
        f"half-widths)")
    assert np.all(half <= width * np.abs(expected) + 1e-12), (
        f"{name}: half-width {half} too wide for a test against {expected}")


def single(station, rate: float, demand: float = 1.0) -> hq.Network:
    return hq.Network(stations={"q": station}, classes={"jobs": hq.Open(rate)},
                      demands={"jobs": {"q": demand}})


# --------------------------------------------------------------------------- oracles


def erlang_c(c: int, offered: float) -> float:
    """Probability of waiting in M/M/c with offered load ``offered = lambda * D`` (Erlang C)."""
    rho = offered / c
    head = sum(offered ** n / math.factorial(n) for n in range(c))
    tail = offered ** c / math.factorial(c) / (1 - rho)
    return tail / (head + tail)


def birth_death(up, down, n_max: int) -> np.ndarray:
    """Stationary law of a birth-death chain on 0..n_max (rates up(n): n -> n+1, down(n): n -> n-1)."""
    log_p = np.zeros(n_max + 1)
    for n in range(1, n_max + 1):
        log_p[n] = log_p[n - 1] + math.log(up(n - 1)) - math.log(down(n))
    p = np.exp(log_p - log_p.max())
    return p / p.sum()


# --------------------------------------------------------------------------- single stations


@pytest.mark.slow
@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_mm1(discipline):
    lam, d = 0.7, 1.0
    rho = lam * d
    ds = simulate(single(hq.Queue(discipline=discipline), lam, d), seed=11)
    assert_agrees(ds, "throughput", lam, width=0.01)
    assert_agrees(ds, "response_time", d / (1 - rho))
    assert_agrees(ds, "residence_time", d / (1 - rho))
    assert_agrees(ds, "queue_length", rho / (1 - rho))
    assert_agrees(ds, "utilization", rho, width=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_mmc(discipline):
    """M/M/c: c parallel FCFS servers, or PS at speed min(n, c); both are the same birth-death chain."""
    c, lam, d = 3, 2.4, 1.0
    wait = erlang_c(c, lam * d) / (c / d - lam)
    ds = simulate(single(hq.Queue(servers=c, discipline=discipline), lam, d), seed=12)
    assert_agrees(ds, "response_time", d + wait)
    assert_agrees(ds, "queue_length", lam * (d + wait))
    assert_agrees(ds, "utilization", lam * d / c, width=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("shape, lam", [(Deterministic(), 0.7), (Erlang(3), 0.7),
                                         (HyperExponential(4.0), 0.5)])
def test_mg1_fcfs_pollaczek_khinchine(shape, lam):
    """FCFS single server: W = lambda E[S^2] / (2 (1 - rho)), E[S^2] = D^2 (1 + scv)."""
    d = 1.0
    rho = lam * d
    r = d + lam * shape.second_moment(d) / (2 * (1 - rho))
    ds = simulate(single(hq.Queue(discipline="fcfs"), lam, d), seed=13, service={"q": shape})
    assert_agrees(ds, "response_time", r)
    assert_agrees(ds, "queue_length", lam * r)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [Deterministic(), Lognormal(3.0)])
def test_mg1_ps_insensitive(shape):
    """M/G/1-PS: R = D / (1 - rho) whatever the service distribution."""
    lam, d = 0.3, 2.0
    ds = simulate(single(hq.Queue(), lam, d), seed=14, service={"q": shape})
    assert_agrees(ds, "response_time", d / (1 - lam * d))


@pytest.mark.slow
def test_delay_station_mginf():
    """M/G/inf: no waiting; mean number present = mean busy servers = lambda D."""
    lam, d = 3.0, 2.0
    ds = simulate(single(hq.Delay(), lam, d), seed=15, service={"q": Gamma(0.3)})
    assert_agrees(ds, "response_time", d, width=0.01)
    assert_agrees(ds, "queue_length", lam * d, width=0.02)
    assert_agrees(ds, "utilization", lam * d, width=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_load_dependent_station_birth_death(discipline):
    """Open LD station: with n present it completes jobs at rate a(n) / D (PS shared, FCFS head)."""
    a, lam, d = (1.0, 1.6, 2.0), 1.5, 1.0
    rate = lambda n: a[min(n, len(a)) - 1] / d  # noqa: E731
    p = birth_death(lambda n: lam, rate, 400)  # tail ratio 0.75: 0.75**400 is nothing
    q = (np.arange(p.size) * p).sum()
    busy = sum(p[n] * a[min(n, len(a)) - 1] for n in range(1, p.size))
    ds = simulate(single(hq.Queue(rate_multipliers=a, discipline=discipline), lam, d), seed=16)
    assert_agrees(ds, "queue_length", q)
    assert_agrees(ds, "response_time", q / lam)
    assert_agrees(ds, "utilization", busy / a[-1], width=0.01)
    assert busy / a[-1] == pytest.approx(lam * d / a[-1])  # the oracle's own utilisation law


# --------------------------------------------------------------------------- networks


@pytest.mark.slow
def test_two_class_open_network_matches_solve_open():
    """Product form: FCFS with equal demands, class-dependent PS, a delay, a 2-server PS; two routes."""
    net = hq.Network(
        stations={"fcfs": hq.Queue(discipline="fcfs"), "ps": hq.Queue(), "think": hq.Delay(),
                  "pool": hq.Queue(servers=2)},
        classes={"chat": hq.Open(0.5), "batch": hq.Open(0.3)},
        demands={"chat": {"fcfs": 0.6, "ps": 0.4, "think": 1.0, "pool": 0.0},
                 "batch": {"ps": 1.2, "pool": 2.5, "fcfs": 0.6}})
    solution, load = solve_open(net.arrays())
    assert (load < 1).all()
    ds = simulate(net, seed=17)
    assert_agrees(ds, "throughput", solution.throughput, width=0.02)
    assert_agrees(ds, "residence_time", solution.residence_time, width=0.06)
    assert_agrees(ds, "queue_length", solution.queue_length, width=0.06)
    assert_agrees(ds, "utilization", solution.utilization, width=0.03)
    assert_agrees(ds, "response_time", solution.residence_time.sum(axis=0), width=0.05)
    assert ds.residence_time.sel(station="pool", **{"class": "chat"}).item() == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_closed_machine_repairman(discipline):
    """N clients think Z (exponential) and queue at one server of demand D: finite birth-death chain."""
    n_clients, z, d = 5, 4.0, 1.0
    p = birth_death(lambda n: (n_clients - n) / z, lambda n: 1 / d, n_clients)
    x = (1 - p[0]) / d
    q = (np.arange(n_clients + 1) * p).sum()
    net = hq.Network(stations={"server": hq.Queue(discipline=discipline)},
                     classes={"clients": hq.Closed(n_clients, think_time=z)},
                     demands={"clients": {"server": d}})
    ds = simulate(net, seed=18)
    assert_agrees(ds, "throughput", x, width=0.01)
    assert_agrees(ds, "utilization", 1 - p[0], width=0.01)
    assert_agrees(ds, "queue_length", q)
    assert_agrees(ds, "response_time", q / x)  # Little's law on the chain
    assert_agrees(ds, "response_time", n_clients / x - z)  # response time law


@pytest.mark.slow
def test_closed_zero_think_load_dependent():
    """Z = 0: clients resubmit at once; N jobs cycle between a PS LD station and a single server."""
    n_jobs, a = 4, (1.0, 1.5)
    d1, d2 = 1.0, 0.5
    # State: n jobs at the LD station, N - n at the single server; up: server completes.
    p = birth_death(lambda n: 1 / d2, lambda n: a[min(n, len(a)) - 1] / d1, n_jobs)
    x = (1 - p[n_jobs]) / d2
    q1 = (np.arange(n_jobs + 1) * p).sum()
    net = hq.Network(stations={"ld": hq.Queue(rate_multipliers=a), "one": hq.Queue()},
                     classes={"jobs": hq.Closed(n_jobs)}, demands={"jobs": {"ld": d1, "one": d2}})
    ds = simulate(net, seed=19)
    assert_agrees(ds, "throughput", x, width=0.01)
    assert_agrees(ds, "queue_length", [[q1], [n_jobs - q1]])
    assert_agrees(ds, "response_time", n_jobs / x, width=0.01)


@pytest.mark.slow
def test_two_class_closed_network_matches_exact_mva():
    """Two closed classes over a PS queue, a 2-server PS pool, a delay and an LD station."""
    mva = pytest.importorskip("hermes_qn.solvers.mva", reason="exact MVA not available")
    net = hq.Network(
        stations={"gpu": hq.Queue(), "pool": hq.Queue(servers=2), "link": hq.Delay(),
                  "ld": hq.Queue(rate_multipliers=(1.0, 1.7))},
        classes={"chat": hq.Closed(4, think_time=2.0), "batch": hq.Closed(3)},
        demands={"chat": {"gpu": 0.5, "link": 0.3, "pool": 0.8},
                 "batch": {"pool": 1.5, "gpu": 0.9, "ld": 0.6}})
    solution = mva.exact_mva(net.arrays())
    ds = simulate(net, seed=21)
    assert_agrees(ds, "throughput", solution.throughput, width=0.01)
    assert_agrees(ds, "residence_time", solution.residence_time, width=0.03)
    assert_agrees(ds, "queue_length", solution.queue_length, width=0.03)
    assert_agrees(ds, "utilization", solution.utilization, width=0.02)
    assert_agrees(ds, "response_time", solution.residence_time.sum(axis=0), width=0.02)


# --------------------------------------------------------------------------- run mechanics


def small() -> hq.Network:
    return hq.Network(stations={"a": hq.Queue(), "b": hq.Queue(discipline="fcfs", servers=2)},
                      classes={"o": hq.Open(0.4), "c": hq.Closed(3, think_time=2.0)},
                      demands={"o": {"a": 0.5, "b": 1.0}, "c": {"b": 0.7, "a": 0.3}})


def test_same_seed_same_result():
    one = simulate(small(), seed=5, horizon=500.0, replications=3)
    two = simulate(small(), seed=5, horizon=500.0, replications=3)
    for name in one.data_vars:
        np.testing.assert_array_equal(one[name].values, two[name].values)
    for key in ("events", "seed", "horizon", "warmup", "replications"):
        assert one.attrs[key] == two.attrs[key]


def test_different_seeds_differ():
    one = simulate(small(), seed=5, horizon=500.0, replications=3)
    two = simulate(small(), seed=6, horizon=500.0, replications=3)
    assert not np.array_equal(one.queue_length.values, two.queue_length.values)


def test_result_layout_and_attrs():
    ds = simulate(small(), seed=1, horizon=300.0, warmup=50.0, replications=2)
    for name in SIM_VARS:
        for var in (name, f"{name}_halfwidth"):
            assert var in ds
            assert ds[var].attrs["units"] and ds[var].attrs["long_name"]
    assert ds.throughput.dims == ("class",)
    assert ds.queue_length.dims == ("station", "class")
    assert list(ds.station.values) == ["a", "b"] and list(ds["class"].values) == ["o", "c"]
    assert ds.attrs["horizon"] == 300.0 and ds.attrs["warmup"] == 50.0
    assert ds.attrs["replications"] == 2 and ds.attrs["seed"] == 1
    assert ds.attrs["events"] > 0 and ds.attrs["events_per_second"] > 0


def test_seed_none_is_recorded_and_replayable():
    ds = simulate(small(), horizon=200.0, replications=2)
    again = simulate(small(), seed=ds.attrs["seed"], horizon=200.0, replications=2)
    np.testing.assert_array_equal(ds.queue_length.values, again.queue_length.values)


def test_default_horizon_targets_20k_completions():
    lam = 4.0
    ds = simulate(single(hq.Queue(), lam, 0.1), seed=2, replications=2)
    window = ds.attrs["horizon"] - ds.attrs["warmup"]
    assert ds.attrs["warmup"] == pytest.approx(0.1 * ds.attrs["horizon"])
    assert window * lam == pytest.approx(20_000)


def test_max_events_cuts_short_with_a_warning():
    with pytest.warns(RuntimeWarning, match="max_events=1000 stopped replication"):
        ds = simulate(single(hq.Queue(), 0.5), seed=3, horizon=1e6, warmup=10.0,
                      replications=2, max_events=1000)
    assert ds.attrs["events"] == 2000
    assert np.isfinite(ds.response_time.values).all()


def test_class_station_service_overrides_station_service():
    """On a delay, deterministic service gives every visit exactly its demand."""
    net = hq.Network(stations={"q": hq.Delay()}, classes={"a": hq.Open(1.0), "b": hq.Open(1.0)},
                     demands={"a": {"q": 2.0}, "b": {"q": 2.0}})
    ds = simulate(net, seed=8, horizon=300.0, replications=2,
                  service={"q": Gamma(2.0), ("a", "q"): Deterministic()})
    a, b = {"class": "a"}, {"class": "b"}
    assert ds.residence_time.sel(a).item() == pytest.approx(2.0, rel=1e-9)
    assert ds.residence_time_halfwidth.sel(a).item() == pytest.approx(0.0, abs=1e-9)
    assert ds.residence_time_halfwidth.sel(b).item() > 0


def test_class_without_completions_is_nan():
    net = hq.Network(stations={"q": hq.Queue()}, classes={"on": hq.Open(0.5), "off": hq.Open(0.0)},
                     demands={"on": {"q": 1.0}, "off": {"q": 1.0}})
    ds = simulate(net, seed=4, horizon=200.0, replications=2)
    off = {"class": "off"}
    assert ds.throughput.sel(off).item() == 0.0
    assert math.isnan(ds.response_time.sel(off).item())
    assert ds.queue_length.sel(off).item() == 0.0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, match", [
    (dict(replications=1), r"replications got 1; valid: an integer >= 2"),
    (dict(replications=2.5), r"replications got 2.5"),
    (dict(confidence=1.0), r"confidence got 1.0; valid: a number in \(0, 1\)"),
    (dict(horizon=0.0), r"horizon got 0.0; valid: None or a finite number > 0"),
    (dict(horizon=math.inf), r"horizon got inf"),
    (dict(warmup=-1.0), r"warmup got -1.0; valid: None or a finite number >= 0"),
    (dict(horizon=10.0, warmup=10.0), r"warmup=10.0 is not below horizon=10.0"),
    (dict(max_events=0), r"max_events got 0; valid: None or an integer >= 1"),
    (dict(seed=-3), r"seed got -3; valid: None, an integer >= 0"),
    (dict(service={"gpu": Exponential()}), r"service key 'gpu' is not a station"),
    (dict(service={("nobody", "q"): Exponential()}),
     r"service key \('nobody', 'q'\) is not a \(class, station\)"),
    (dict(service={"q": "exponential"}), r"service\['q'\] got 'exponential'; valid: a distribution shape"),
    (dict(service=[Exponential()]), r"service got .*; valid: None"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(hq.ValidationError, match=match):
        simulate(single(hq.Queue(), 0.5), **kwargs)


def test_rejects_non_network():
    with pytest.raises(hq.ValidationError, match="network got dict; valid: a hermes_qn.Network"):
        simulate({"q": 1})


def test_rejects_sweep():
    net = single(hq.Queue(), np.array([0.2, 0.4]))
    with pytest.raises(hq.ValidationError,
                       match="simulate takes one point; select one value for jobs_arrival_rate"):
        simulate(net)


@pytest.mark.parametrize("station, rate, load", [(hq.Queue(), 1.0, "1"),
                                                 (hq.Queue(servers=2), 2.5, "1.25")])
def test_rejects_unstable_open_network(station, rate, load):
    with pytest.raises(hq.ValidationError, match=rf"station 'q' has load {load} from the open "
                                                 rf"classes \(valid: < 1\); the network is unstable"):
        simulate(single(station, rate))


def test_rejects_closed_class_that_cycles_infinitely_fast():
    net = hq.Network(stations={"q": hq.Queue()}, classes={"c": hq.Closed(2)},
                     demands={"c": {"q": 0.0}})
    with pytest.raises(hq.ValidationError, match="closed class 'c' has no positive demand"):
        simulate(net)


# --------------------------------------------------------------------------- distributions

SHAPE_CASES = st.one_of(
    st.just(Exponential()),
    st.just(Deterministic()),
    st.integers(1, 20).map(Erlang),
    st.floats(0.05, 5.0).map(Gamma),
    st.floats(0.05, 2.0).map(Lognormal),
    st.floats(1.05, 10.0).map(HyperExponential),
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(shape=SHAPE_CASES, mean=st.floats(1e-3, 1e3))
def test_shape_sample_mean_and_scv(shape, mean):
    x = shape.sample(np.random.default_rng(7), mean, 400_000)
    assert x.shape == (400_000,) and (x >= 0).all()
    assert x.mean() == pytest.approx(mean, rel=0.03)
    assert x.var() / x.mean() ** 2 == pytest.approx(shape.scv, rel=0.1, abs=0.01)


def test_shape_scv_values():
    assert Exponential().scv == 1.0 and Deterministic().scv == 0.0
    assert Erlang(4).scv == 0.25 and Gamma(2).scv == 2.0 and Lognormal(0.5).scv == 0.5
    assert HyperExponential(3.0).scv == 3.0
    p1, p2 = HyperExponential(3.0).probabilities
    assert p1 + p2 == pytest.approx(1.0) and p1 > p2
    assert Gamma(2.0).second_moment(3.0) == pytest.approx(27.0)
    assert Erlang(2).variance(2.0) == pytest.approx(2.0)


def test_empirical_rescales_to_the_mean():
    values = [1.0, 2.0, 3.0, 10.0]
    shape = Empirical(values)
    arr = np.array(values)
    assert shape.scv == pytest.approx(arr.var() / arr.mean() ** 2)
    x = shape.sample(np.random.default_rng(0), 8.0, 200_000)
    assert set(np.round(np.unique(x), 9)) <= set(np.round(arr * 8.0 / arr.mean(), 9))
    assert x.mean() == pytest.approx(8.0, rel=0.02)
    assert "4 values" in repr(shape)


def test_shape_sample_broadcasts_mean_and_passes_seed():
    x = Gamma(0.5).sample(3, np.array([1.0, 10.0]), (100_000, 2))
    np.testing.assert_allclose(x.mean(axis=0), [1.0, 10.0], rtol=0.02)
    np.testing.assert_array_equal(Gamma(0.5).sample(3, 1.0, 5), Gamma(0.5).sample(3, 1.0, 5))
    assert Exponential().sample(0, np.array([1.0, 2.0])).shape == (2,)
    assert (Exponential().sample(0, 0.0, 4) == 0).all()


@pytest.mark.parametrize("make, match", [
    (lambda: Erlang(0), r"Erlang.k: got 0; valid: an integer >= 1"),
    (lambda: Erlang(2.5), r"Erlang.k: got 2.5"),
    (lambda: Gamma(0.0), r"Gamma.scv: got 0.0; valid: a finite number > 0 \(use Deterministic"),
    (lambda: Gamma(math.nan), r"Gamma.scv: got nan"),
    (lambda: Lognormal(-1), r"Lognormal.scv: got -1; valid: a finite number > 0"),
    (lambda: HyperExponential(1.0), r"HyperExponential.scv: got 1.0; valid: a finite number > 1"),
    (lambda: HyperExponential("big"), r"HyperExponential.scv: got 'big'"),
    (lambda: Empirical([]), r"Empirical.values: got \[\]; valid: a non-empty sequence"),
    (lambda: Empirical([1.0, -2.0]), r"Empirical.values: got -2.0"),
    (lambda: Empirical([0.0, 0.0]), r"Empirical.values: got \[0.0, 0.0\]; valid: .* positive mean"),
    (lambda: Empirical("abc"), r"Empirical.values: got 'abc'"),
    (lambda: Exponential().sample(0, -1.0, 3), r"sample: mean got -1.0; valid: finite numbers >= 0"),
])
def test_shape_validation(make, match):
    with pytest.raises(hq.ValidationError, match=match):
        make()


def test_shapes_are_frozen_values():
    assert Gamma(2) == Gamma(2.0) and hash(Erlang(3)) == hash(Erlang(3))
    assert Empirical([1, 2]) == Empirical((1.0, 2.0))
    with pytest.raises(AttributeError):
        Erlang(3).k = 4
