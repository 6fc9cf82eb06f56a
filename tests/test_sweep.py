"""hq.sweep: dims and coords, agreement with pointwise evaluate, saturation and invalid
configurations kept and flagged, bad inputs, best / pareto_front against brute force,
NetCDF and Zarr round trips, and a dask cluster giving the local result."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_qn as hq
from hermes_qn.errors import ValidationError
from hermes_qn.sweep import _non_dominated

RATES = [5.0, 30.0, 2000.0]          # requests/s: light, the scenario's own, far past capacity
CAPS = [32, 256]


@pytest.fixture(scope="module")
def chat():
    return hq.load_scenario("chat-h100")


@pytest.fixture(scope="module")
def grid(chat):
    return hq.sweep(chat, rate=RATES, batch_cap=CAPS, strategy=["continuous", "chunked"])


# --------------------------------------------------------------------------- shape and values


def test_dims_coords_and_variables(grid, chat):
    assert dict(grid.sizes)["rate"] == 3 and dict(grid.sizes)["batch_cap"] == 2
    assert dict(grid.sizes)["strategy"] == 2
    assert grid["rate"].values.tolist() == RATES
    assert grid["batch_cap"].values.tolist() == CAPS
    assert grid["strategy"].values.tolist() == ["continuous", "chunked"]
    assert grid.attrs["swept"] == "rate,batch_cap,strategy"
    point = hq.evaluate(chat)
    assert set(point.data_vars) <= set(grid.data_vars)
    for name in point.data_vars:
        assert set(point[name].dims) | {"rate", "batch_cap", "strategy"} >= set(grid[name].dims)
    assert grid["ttft"].dims == ("class", "rate", "batch_cap", "strategy")
    for name in ("throughput_per_device", "tokens_per_dollar", "tokens_per_joule"):
        assert grid[name].dims == ("rate", "batch_cap", "strategy")


@pytest.mark.parametrize("strategy, rtol", [("continuous", 1e-5), ("chunked", 1e-5)])
def test_every_point_equals_a_pointwise_evaluate(grid, chat, strategy, rtol):
    # both settle a fixed point over all rates of a call at once (the prefill batch size,
    # the chunked mix): equal to tol
    for r, cap in itertools.product(RATES, CAPS):
        sc = chat.with_value("pools.h100.batch_cap", cap).with_value("pools.h100.batching",
                                                                     strategy)
        one = hq.evaluate(sc, rates={"chat": r})
        got = grid.sel(rate=r, batch_cap=cap, strategy=strategy)
        for name in one.data_vars:
            if one[name].dtype.kind == "f":
                np.testing.assert_allclose(got[name].values, one[name].values, rtol=rtol,
                                           err_msg=name)
            else:
                assert (got[name].values == one[name].values).all(), name


def test_derived_objectives(grid):
    tokens = grid.token_throughput.sum("class")
    np.testing.assert_allclose(grid.throughput_per_device, tokens / 8)
    np.testing.assert_allclose(grid.tokens_per_dollar, 1e6 / grid.cost_per_million_tokens)
    np.testing.assert_allclose(grid.tokens_per_joule, 1 / grid.energy_per_token)


def test_saturated_points_are_kept_inf_and_flagged(grid):
    far = grid.sel(rate=2000.0)
    assert bool(far.saturated.all())
    assert np.isinf(far.e2e).all() and (far.saturated_station != "").all()
    assert not bool(grid.sel(rate=5.0).saturated.any())


def test_total_rate_splits_in_the_scenarios_proportions():
    sc = hq.load_scenario("disaggregated")      # chat 3/s, code 1/s
    ds = hq.sweep(sc, rate=[0.4, 0.8])
    np.testing.assert_allclose(ds.throughput.sel({"class": "chat"}), [0.3, 0.6])
    np.testing.assert_allclose(ds.throughput.sel({"class": "code"}), [0.1, 0.2])
    per_class = hq.sweep(sc, rate={"chat": [0.5, 1.0], "code": [0.25]})
    assert dict(per_class.sizes)["chat_rate"] == 2 and dict(per_class.sizes)["code_rate"] == 1
    np.testing.assert_allclose(per_class.throughput.sel({"class": "code"}), 0.25)


def test_fields_keep_path_dims_and_rate_paths_vectorise(chat):
    ds = hq.sweep(chat, fields={"classes.chat.rate": [5.0, 10.0], "pools.h100.devices": [4, 8]})
    assert set(ds.ttft.dims) == {"class", "classes_chat_rate", "pools_h100_devices"}
    np.testing.assert_allclose(ds.devices, [4.0, 8.0])
    assert ds.ttft.sel(classes_chat_rate=10.0, pools_h100_devices=4) > \
        ds.ttft.sel(classes_chat_rate=10.0, pools_h100_devices=8)


def test_configurations_with_different_stages_share_the_union_of_stage_labels(chat):
    plain = chat.classes[0].pipeline
    paused = (hq.scenario.Pause(0.2),) + tuple(plain)
    ds = hq.sweep(chat, rate=[5.0, 10.0], fields={"classes.chat.pipeline": [plain, paused]})
    assert ds.stage.values.tolist() == ["generate.prefill", "generate.decode", "pause"]
    times = ds.stage_time.sel({"class": "chat", "stage": "pause"}).values
    assert np.isnan(times[:, 0]).all() and np.allclose(times[:, 1], 0.2)
    np.testing.assert_allclose(ds.e2e.diff("classes_chat_pipeline"), 0.2, rtol=1e-9)


def test_device_axis_and_a_model_that_does_not_fit(chat):
    ds = hq.sweep(chat, rate=[5.0], device=["H100-SXM", "TPU-v5e", "H200"])
    assert ds.device.values.tolist() == ["H100-SXM", "TPU-v5e", "H200"]
    errors = ds.config_error.values.tolist()
    assert errors[0] == errors[2] == "" and "does not fit" in errors[1]
    assert np.isnan(ds.ttft.sel(device="TPU-v5e")).all()
    assert not bool(ds.saturated.sel(device="TPU-v5e").any())
    one = hq.evaluate(chat.with_value("pools.h100.device", "H200"), rates={"chat": 5.0})
    np.testing.assert_allclose(ds.e2e.sel(device="H200", rate=5.0), one.e2e, rtol=1e-12)
    with pytest.raises(ValidationError, match="no combination of .*device.*does not fit"):
        hq.sweep(chat, device=["TPU-v5e"])


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_cap": [0]}, r"batch_cap: got 0; valid: integers >= 1"),
    ({"batch_cap": [1.5]}, r"batch_cap: got 1.5"),
    ({"tp": [True]}, r"tp: got True"),
    ({"chunk_tokens": [1]}, r"chunk_tokens: got 1; valid: integers >= 2"),
    ({"strategy": ["greedy"]}, r"strategy: got 'greedy'; valid: one of \['static'"),
    ({"device": ["H100-SXN"]}, r"sweep device: .*H100-SXN"),
    ({"device": [3]}, r"device: got 3; valid: hardware catalog names"),
    ({"rate": [-1.0]}, r"rate: got -1.0; valid: arrival rates"),
    ({"rate": [float("nan")]}, r"rate: got nan"),
    ({"rate": "10"}, r"rate: got '10'; valid: a sequence"),
    ({"rate": []}, r"rate: no values"),
    ({"rate": {"code": [1.0]}}, r"class 'code' is not an open class .*valid: one of \['chat'\]"),
    ({"batch_cap": [64, 64]}, r"batch_cap: value 64 is given twice"),
    ({"batch_cap": [64], "pool": "a100"}, r"sweep pool.*'a100'.*one of \['h100'\]"),
    ({"fields": {"pools.h100.batch_kap": [1]}}, r"batch_kap.*did you mean 'batch_cap'"),
    ({"rate": [1.0], "fields": {"classes.chat.rate": [2.0]}},
     r"class 'chat' already has rates from rate="),
    ({"rate": [1.0], "chunks": {"tp": 1}}, r"chunks: dim 'tp' is not swept; valid: one of"),
    ({"rate": [1.0], "chunks": {"rate": 0}}, r"chunks\['rate'\]: got 0"),
    ({"rate": [1.0], "client": object()}, r"client: got object; valid: a dask.distributed"),
    ({}, r"nothing to sweep"),
])
def test_bad_inputs_name_the_axis_the_value_and_what_is_valid(chat, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        hq.sweep(chat, **kwargs)


def test_an_ambiguous_pool_lists_the_pools():
    sc = hq.load_scenario("disaggregated")
    with pytest.raises(ValidationError, match=r"pools \['prefill-mi300x', 'decode-h100'\].*pool="):
        hq.sweep(sc, batch_cap=[64])
    ds = hq.sweep(sc, batch_cap=[64, 128], pool="decode-h100")
    assert ds.batch_cap.values.tolist() == [64, 128]
    assert (ds.max_batch.sel(pool="decode-h100") <= ds.batch_cap).all()


def test_progress_line_only_when_asked(chat, capsys):
    hq.sweep(chat, rate=[5.0], batch_cap=[32, 64])
    assert capsys.readouterr().err == ""         # stderr is not a terminal under pytest
    hq.sweep(chat, rate=[5.0], batch_cap=[32, 64], progress=True)
    assert "hermes-qn sweep: 2/2 points (100%)" in capsys.readouterr().err


# --------------------------------------------------------------------------- best and Pareto


def _feasible_points(ds):
    ok = ~ds.saturated & ds.slo_met.all("class") & (ds.config_error == "")
    dims = list(ds.throughput_per_device.dims)
    for index in itertools.product(*(range(ds.sizes[d]) for d in dims)):
        at = dict(zip(dims, index))
        if bool(ok.isel(at)):
            yield at


@pytest.mark.parametrize("objective", ["throughput_per_device", "tokens_per_joule",
                                       "cost_per_million_tokens"])
def test_best_matches_brute_force(grid, objective):
    sign = -1 if objective == "cost_per_million_tokens" else 1
    brute = max(_feasible_points(grid), key=lambda at: sign * float(grid[objective].isel(at)))
    top = hq.best(grid, objective)
    assert float(top[objective]) == float(grid[objective].isel(brute))
    assert top.attrs["objective"] == objective
    assert bool(top.slo_met.all()) and not bool(top.saturated)


def test_best_with_no_feasible_point_raises_and_slo_false_relaxes(chat):
    ds = hq.sweep(chat, rate=[2000.0, 3000.0])
    with pytest.raises(ValidationError, match=r"no point of the 2 points is feasible"):
        hq.best(ds)
    strict = hq.sweep(chat.with_value("classes.chat.slo.ttft", 1e-4), rate=[5.0, 10.0])
    with pytest.raises(ValidationError, match="or slo=False"):
        hq.best(strict)
    assert float(hq.best(strict, slo=False).rate) == 10.0
    with pytest.raises(ValidationError, match="no known direction for 'kv_memory'"):
        hq.best(strict.sel(pool="h100"), "kv_memory")
    with pytest.raises(ValidationError, match=r"has dims \['class'\] that are not swept"):
        hq.best(strict, "e2e")
    assert float(hq.best(strict.sel({"class": "chat"}), "e2e", slo=False).rate) == 5.0


def _dominated(p, q):
    """q dominates p (both maximised)."""
    return q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40))
def test_non_dominated_against_brute_force(points):
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    kept = set(_non_dominated(x, y).tolist())
    for i, p in enumerate(points):
        beaten = any(_dominated(p, q) for q in points)
        assert (i in kept) == (not beaten)


def test_pareto_front_of_a_sweep_against_brute_force(chat):
    ds = hq.sweep(chat, rate=[5.0, 15.0, 30.0, 45.0], batch_cap=[16, 64, 256]).sel(
        {"class": "chat"})
    front = hq.pareto_front(ds, "throughput_per_device", "e2e", maximize=(True, False),
                            slo=False)
    ok = [at for at in _all_points(ds) if not bool(ds.saturated.isel(at))]
    pts = {(float(ds.rate[at["rate"]]), int(ds.batch_cap[at["batch_cap"]])):
           (float(ds.throughput_per_device.isel(at)), -float(ds.e2e.isel(at)))
           for at in ok}
    expect = {k for k, p in pts.items() if not any(_dominated(p, q) for q in pts.values())}
    got = set(zip(front.rate.values.tolist(), front.batch_cap.values.tolist()))
    assert got == expect and len(got) >= 2
    assert np.all(np.diff(front.throughput_per_device.values) >= 0)
    empty = hq.pareto_front(hq.sweep(chat, rate=[2000.0]), "throughput_per_device",
                            "tokens_per_joule")
    assert empty.sizes["point"] == 0


def _all_points(ds):
    for i, j in itertools.product(range(ds.sizes["rate"]), range(ds.sizes["batch_cap"])):
        yield {"rate": i, "batch_cap": j}


# --------------------------------------------------------------------------- files and dask


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dims == b[name].dims, name
        assert a[name].dtype.kind == b[name].dtype.kind, name
        if a[name].dtype.kind == "f":
            np.testing.assert_array_equal(a[name].values, b[name].values)
        else:
            assert (a[name].values == b[name].values).all(), name


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_file_round_trip(grid, chat, tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    ds = hq.sweep(chat, rate=[5.0, 2000.0], device=["H100-SXM", "TPU-v5e"])
    ds.attrs.update(options={"damping": 0.5}, origin=None, checked=True)
    ds["ttft"].attrs["source"] = None
    path = tmp_path / f"sweep{suffix}"
    hq.save_sweep(ds, path)
    assert ds.attrs["checked"] is True and ds["ttft"].attrs["source"] is None  # input untouched
    back = hq.open_sweep(path)
    _same(ds, back)
    assert back["ttft"].attrs == {"units": "s", "long_name": "time to first token (mean)",
                                  "source": "None"}
    assert back.saturated.dtype == bool and back.device.values.tolist() == ["H100-SXM", "TPU-v5e"]
    assert "does not fit" in str(back.config_error.sel(device="TPU-v5e").values)
    assert back.attrs["options"] == "{'damping': 0.5}" and back.attrs["origin"] == "None"
    assert back.attrs["checked"] == 1 and back.attrs["swept"] == "rate,device"
    assert hq.best(back, "tokens_per_joule").device == hq.best(ds, "tokens_per_joule").device


def test_dask_cluster_gives_the_local_result(chat):
    distributed = pytest.importorskip("distributed")
    kwargs = {"rate": RATES, "batch_cap": CAPS, "strategy": ["continuous", "chunked"],
              "tp": [1, 16]}
    local = hq.sweep(chat, **kwargs)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        by_default = hq.sweep(chat, client=client, **kwargs)
        by_blocks = hq.sweep(chat, client=client, chunks={"rate": 2, "tp": 1}, **kwargs)
    for ds in (by_default, by_blocks):
        # the chunked fixed point settles per call, so block results agree to its tolerance
        xr.testing.assert_allclose(ds, local, rtol=1e-5)
        assert list(ds.ttft.dims) == list(local.ttft.dims)
        assert ds.attrs["swept"] == local.attrs["swept"]
        assert (ds.config_error.sel(tp=16) != "").all() and (ds.config_error.sel(tp=1) == "").all()
