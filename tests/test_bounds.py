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
