"""hq.solve: method dispatch, mixed networks against brute-force product form, Dataset shape."""

import itertools
import math

import numpy as np
import pytest

import hermes_qn as hq
from hermes_qn.examples import worked_example


def brute_force_mixed(population, think, closed_demand, open_rate, open_demand, multipliers,
                      truncation=400):
    """Product form of one closed and one open class over load-dependent stations, by enumeration.

    P(n, j) ~ prod_m C(n_m + j_m, n_m) Dc_m^n_m (lam Do_m)^j_m / A_m(n_m + j_m)  x  Z^nz / nz!
    with open counts truncated at ``truncation`` per station (the tail is negligible for the
    loads used). Returns (closed throughput, closed queue lengths, open mean numbers).
    """
    M = len(closed_demand)
    log_a = [np.concatenate(([0.0], np.cumsum(np.log(
        [a[min(i, len(a)) - 1] for i in range(1, population + truncation + 2)])))) for a in multipliers]
    j = np.arange(truncation + 1)
    total = 0.0
    closed_q = np.zeros(M)
    open_q = np.zeros(M)
    thinking = 0.0
    for counts in itertools.product(range(population + 1), repeat=M):
        nz = population - sum(counts)
        if nz < 0:
            continue
        weight = think**nz / math.factorial(nz) if think > 0 else float(nz == 0)
        per_station_sum, per_station_mean = [], []
        for m, n in enumerate(counts):
            log_terms = (np.log([math.comb(n + int(k), n) for k in j]) + n * np.log(closed_demand[m])
                         + j * np.log(open_rate * open_demand[m]) - log_a[m][n + j])
            terms = np.exp(log_terms)
            per_station_sum.append(terms.sum())
            per_station_mean.append((terms * j).sum() / terms.sum())
        w = weight * np.prod(per_station_sum)
        total += w
        closed_q += w * np.array(counts)
        open_q += w * np.array(per_station_mean)
        thinking += w * nz
    return thinking / total / think, closed_q / total, open_q / total


@pytest.mark.parametrize("multipliers, open_rate", [
    ([[1.0], [1.0]], 0.5),                 # single-server queues: the exact textbook case
    ([[1.0, 2.0, 3.0], [1.0]], 1.2),       # 3 servers
    ([[1.0, 1.8, 2.4], [1.0, 2.0]], 0.9),  # rate multipliers
])
def test_mixed_against_brute_force(multipliers, open_rate):
    population, think = 4, 1.5
    closed_demand, open_demand = [0.6, 0.3], [1.0, 0.4]
    stations = {}
    for m, a in enumerate(multipliers):
        stations[f"s{m}"] = hq.Queue() if a == [1.0] else hq.Queue(rate_multipliers=a)
    net = hq.Network(stations=stations,
                     classes={"c": hq.Closed(population, think), "o": hq.Open(open_rate)},
                     demands={"c": dict(zip(stations, closed_demand)), "o": dict(zip(stations, open_demand))})
    res = hq.solve(net, method="exact")
    x, closed_q, open_q = brute_force_mixed(population, think, closed_demand, open_rate, open_demand,
                                            multipliers)
    # The closed part is exact product form.
    assert float(res.throughput.sel({"class": "c"})) == pytest.approx(x, rel=1e-8)
    np.testing.assert_allclose(res.queue_length.sel({"class": "c"}).values, closed_q, rtol=1e-8)
    # Open classes: exact too, given exact MVA's marginals at the load-dependent stations.
    np.testing.assert_allclose(res.queue_length.sel({"class": "o"}).values, open_q, rtol=1e-8)
    # An approximate closed solver falls back to E[j | c] at the closed mean: 7% is the bound
    # on these cases (measured worst 5.8%).
    approx = hq.solve(net, method="amva")
    np.testing.assert_allclose(approx.queue_length.sel({"class": "o"}).values, open_q, rtol=0.07)


def test_mixed_saturated_open_class_is_named_and_closed_class_blocked():
    net = hq.Network(stations={"cpu": hq.Queue(), "disk": hq.Queue()},
                     classes={"c": hq.Closed(3, 1.0), "o": hq.Open(np.array([0.5, 2.5]))},
                     demands={"c": {"cpu": 0.1, "disk": 0.2}, "o": {"disk": 0.5}})
    res = hq.solve(net)
    assert list(res.saturated.values) == [False, True]
    assert str(res.saturated_station.values[1]) == "disk"
    assert np.isinf(res.response_time.values[1]).all()
    assert res.throughput.values[1, 0] == 0.0
    assert np.isfinite(res.response_time.values[0]).all()


def test_auto_picks_exact_for_small_and_records_it():
    res = hq.solve(worked_example())
    assert res.attrs["method"] == "mixed+exact-mva"
    assert res.attrs["notes"] == ""  # exact MVA makes the mixed load-dependent answer exact


def test_unknown_method_and_bad_tolerance():
    with pytest.raises(hq.ValidationError, match=r"method 'fast' is unknown; valid: \('auto'"):
        hq.solve(worked_example(), method="fast")
    with pytest.raises(hq.ValidationError, match=r"tol=-1"):
        hq.solve(worked_example(), tol=-1)


def test_dataset_variables_dims_and_units():
    res = hq.solve(worked_example())
    assert res.throughput.dims == ("class",)
    assert res.residence_time.dims == ("station", "class")
    assert res.station_utilization.dims == ("station",)
    assert res.response_time.attrs["units"] == "s"
    assert res.throughput.attrs["units"] == "1/s"
    np.testing.assert_allclose(res.response_time.values, res.residence_time.sum("station").values)
    res.to_dataframe()  # the xarray round trip users expect works
