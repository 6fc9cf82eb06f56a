"""Validation of the network data model: every bad input names the field, the value and what is valid."""

import math

import numpy as np
import pytest
import xarray as xr

import hermes_qn as hq


def simple(**overrides):
    spec = dict(stations={"cpu": hq.Queue()}, classes={"jobs": hq.Open(0.5)},
                demands={"jobs": {"cpu": 1.0}})
    spec.update(overrides)
    return hq.Network(**spec)


@pytest.mark.parametrize("make, match", [
    (lambda: hq.Open(-1.0), r"Open.arrival_rate: got -1.0; valid: finite numbers >= 0"),
    (lambda: hq.Open(math.nan), r"Open.arrival_rate: got nan"),
    (lambda: hq.Open(np.array([0.1, -0.2])), r"Open.arrival_rate: got -0.2"),
    (lambda: hq.Open("fast"), r"Open.arrival_rate: expected a number"),
    (lambda: hq.Closed(0, think_time=5.0), r"Closed.population: got 0.0; valid: integers >= 1"),
    (lambda: hq.Closed(2.5), r"Closed.population: got 2.5"),
    (lambda: hq.Closed(3, think_time=-1), r"Closed.think_time: got -1.0"),
    (lambda: hq.Queue(servers=0), r"Queue.servers: got 0; valid: an integer >= 1"),
    (lambda: hq.Queue(servers=2.0), r"Queue.servers: got 2.0"),
    (lambda: hq.Queue(discipline="lifo"), r"Queue.discipline: got 'lifo'; valid: one of \('ps', 'fcfs'\)"),
    (lambda: hq.Queue(rate_multipliers=[1.0, 0.0]), r"Queue.rate_multipliers: got 0.0; valid: positive"),
    (lambda: hq.Queue(rate_multipliers=[]), r"Queue.rate_multipliers: got an empty sequence"),
    (lambda: hq.Queue(servers=2, rate_multipliers=[1, 2]), r"servers=2 and rate_multipliers"),
])
def test_constructors_reject_bad_values(make, match):
    with pytest.raises(hq.ValidationError, match=match):
        make()


@pytest.mark.parametrize("overrides, match", [
    (dict(stations={}), r"Network.stations: got \{\}; valid: a non-empty mapping"),
    (dict(classes={}), r"Network.classes: got \{\}"),
    (dict(stations={"cpu": "fast"}), r"Network.stations\['cpu'\]: got 'fast'; valid: hq.Queue or hq.Delay"),
    (dict(demands={"jobs": {"gpu": 1.0}}), r"unknown station 'gpu'; valid: \['cpu'\]"),
    (dict(demands={"jobs": {"cpu": 1.0}, "other": {}}), r"unknown class 'other'; valid: \['jobs'\]"),
    (dict(demands={}), r"class 'jobs' has no demands"),
    (dict(demands={"jobs": {"cpu": -0.1}}), r"Network.demands\['jobs'\]\['cpu'\]: got -0.1"),
    (dict(demands={"jobs": {"cpu": math.inf}}), r"Network.demands\['jobs'\]\['cpu'\]: got inf"),
    (dict(demands={"jobs": {}}), r"an open class needs at least one station"),
])
def test_network_rejects_bad_structure(overrides, match):
    with pytest.raises(hq.ValidationError, match=match):
        simple(**overrides)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        hq.Open(-1)


def test_network_is_immutable():
    net = simple()
    with pytest.raises(TypeError):
        net.stations["disk"] = hq.Queue()  # type: ignore[index]


def test_arrays_broadcast_named_and_unnamed_sweeps():
    scale = xr.DataArray([1.0, 2.0], dims="scale", coords={"scale": [1.0, 2.0]})
    net = hq.Network(
        stations={"cpu": hq.Queue(), "gpu": hq.Queue(servers=2)},
        classes={"jobs": hq.Open(np.array([0.1, 0.2, 0.3])), "users": hq.Closed(4, 1.0)},
        demands={"jobs": {"cpu": 0.5 * scale}, "users": {"gpu": 0.25 * scale}},
    )
    a = net.arrays()
    assert a.sweep_dims == ("jobs_arrival_rate", "scale")
    assert a.demand.shape == (3, 2, 2, 2)
    np.testing.assert_allclose(a.demand[1, 1, :, 0], [1.0, 0.0])
    np.testing.assert_allclose(a.demand[0, 0, :, 1], [0.0, 0.25])
    np.testing.assert_allclose(a.arrival_rate[:, 0, 0], [0.1, 0.2, 0.3])
    assert a.population.dtype.kind == "i" and (a.population[..., 1] == 4).all()
    np.testing.assert_allclose(a.sweep_coords["scale"], [1.0, 2.0])
    np.testing.assert_allclose(a.rate_multipliers(3), [[1, 1, 1, 1], [1, 1, 2, 2]])


def test_shared_dimension_with_different_coordinates_is_an_error():
    a = xr.DataArray([1.0, 2.0], dims="x", coords={"x": [0, 1]})
    b = xr.DataArray([1.0, 2.0], dims="x", coords={"x": [5, 6]})
    net = simple(classes={"jobs": hq.Open(a)}, demands={"jobs": {"cpu": b}})
    with pytest.raises(hq.ValidationError, match="share a sweep dimension name"):
        net.arrays()


def test_reserved_dimension_names_are_rejected():
    bad = xr.DataArray([0.1, 0.2], dims="class")
    with pytest.raises(hq.ValidationError, match="reserved"):
        simple(classes={"jobs": hq.Open(bad)}).arrays()


def test_two_dimensional_numpy_parameter_is_rejected():
    with pytest.raises(hq.ValidationError, match=r"shape \(2, 2\)"):
        simple(classes={"jobs": hq.Open(np.ones((2, 2)) * 0.1)}).arrays()
