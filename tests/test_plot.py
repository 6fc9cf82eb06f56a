"""Figures: what each function draws (read back from the Axes), saturation, labels, errors, files.

The Datasets come from hermes_qn.evaluate on the default scenario (chat-h100) at
rates set as fractions of its capacity: the last two are past it (saturated points).
Sweeps over a pool field are built here with evaluate and xr.concat, so the
tests do not depend on the sweep module.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

import hermes_qn as hq
from hermes_qn import plot
from hermes_qn.errors import ValidationError

matplotlib.use("Agg")

_CAPACITY = float(hq.evaluate(hq.load_scenario("chat-h100"), rates={"chat": 1.0})["capacity"]
                  .squeeze())
RATES = np.round(_CAPACITY * np.array([0.08, 0.33, 0.67, 0.9, 1.08, 1.33]))  # last two saturate
CAPS = [16, 64, 256]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scenario():
    return hq.load_scenario("chat-h100")


def _rates(values):
    values = np.asarray(values, dtype=float)
    return {"chat": xr.DataArray(values, dims="rate", coords={"rate": values})}


@pytest.fixture(scope="module")
def curve(scenario):
    return hq.evaluate(scenario, rates=_rates(RATES))


@pytest.fixture(scope="module")
def caps_sweep(scenario):
    runs = [hq.evaluate(scenario.with_value("pools.h100.batch_cap", c), rates=_rates(RATES))
            for c in CAPS]
    return xr.concat(runs, dim=xr.DataArray(CAPS, dims="batch_cap", name="batch_cap"),
                     combine_attrs="drop_conflicts")


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_gid() is None]


def _per_second(label):
    """Factor from seconds to the unit the axis label names."""
    return {"[ms]": 1e3, "[s]": 1.0}[label[label.rindex("["):]]


# --------------------------------------------------------------------------- import and style


def test_matplotlib_loads_only_when_plot_is_used():
    code = ("import sys, hermes_qn as hq; assert 'matplotlib' not in sys.modules; "
            "m = hq.plot; assert 'matplotlib' in sys.modules; print(m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hermes_qn.plot"
    assert "plot" in hq.__all__


def test_style_sets_and_restores_rcparams():
    before = dict(matplotlib.rcParams)
    with plot.style():
        assert tuple(matplotlib.rcParams["figure.figsize"]) == (3.5, 2.5)
        assert matplotlib.rcParams["font.size"] == 8
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        assert matplotlib.rcParams["svg.fonttype"] == "none"
        colors = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        assert colors[:3] == list(plot.COLORS[:3])
    assert matplotlib.rcParams["font.size"] == before["font.size"]
    assert list(matplotlib.rcParams["figure.figsize"]) == list(before["figure.figsize"])


def test_style_keeps_interactive_mode_switched_on_inside():
    # a notebook backend loading with the first figure switches interactive mode on
    was = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        with plot.style():
            matplotlib.interactive(True)
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(was)


def test_new_figures_are_single_column(curve):
    ax = plot.latency_throughput(curve)
    assert ax.figure.get_size_inches()[0] == pytest.approx(3.5)


# --------------------------------------------------------------------------- latency vs throughput


def test_latency_throughput_one_line_cut_at_saturation(curve):
    ax = plot.latency_throughput(curve, "ttft")
    (line,) = _data_lines(ax)
    y = line.get_ydata()
    sat = curve["saturated"].values
    assert sat.tolist() == [False, False, False, False, True, True]
    assert np.all(np.isnan(y[sat])) and np.all(np.isfinite(y[~sat]))
    np.testing.assert_allclose(y[~sat], curve["ttft"].sel({"class": "chat"}).values[~sat] * 1e3)
    assert ax.get_ylabel() == "time to first token (mean) [ms]"
    assert ax.get_xlabel() == "throughput [requests/s]"
    (cap,) = [ln for ln in ax.get_lines() if ln.get_gid() == "capacity"]
    assert cap.get_xdata()[0] == pytest.approx(float(curve["capacity"].isel(rate=0).item()))
    assert "capacity" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_latency_throughput_no_saturation_no_capacity_mark(scenario):
    ds = hq.evaluate(scenario, rates=_rates([5.0, 10.0, 20.0]))
    ax = plot.latency_throughput(ds, "e2e")
    assert [ln.get_gid() for ln in ax.get_lines()] == [None]
    assert ax.get_ylabel().endswith("[s]")  # E2E is several seconds: drawn in s


def test_latency_throughput_hue_lines_and_quantile(caps_sweep):
    ax = plot.latency_throughput(caps_sweep, "tpot", x="rate", hue="batch_cap", quantile=0.9)
    lines = _data_lines(ax)
    assert [ln.get_label() for ln in lines] == ["16", "64", "256"]
    for c, ln in zip(CAPS, lines):
        want = caps_sweep["tpot_q"].sel({"batch_cap": c, "class": "chat", "quantile": 0.9})
        bad = caps_sweep["saturated"].sel(batch_cap=c).values
        np.testing.assert_allclose(ln.get_xdata(), RATES)
        np.testing.assert_allclose(ln.get_ydata()[~bad], want.values[~bad] * 1e3)
        assert np.all(np.isnan(ln.get_ydata()[bad]))
    # a smaller batch cap saturates earlier: more points cut
    cut = [int(np.isnan(ln.get_ydata()).sum()) for ln in lines]
    assert cut[0] > cut[1] >= cut[2] >= 2
    assert ax.get_ylabel() == "time per output token (p90) [ms]"
    assert ax.get_xlabel() == "arrival rate [requests/s]"
    assert ax.get_legend().get_title().get_text() == "batch cap [sequences]"
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "capacity"]) == 3
    ax = plot.latency_throughput(caps_sweep, "ttft", x="rate", hue="batch_cap", yscale="log")
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0


def test_latency_throughput_bad_inputs(curve, caps_sweep, scenario):
    with pytest.raises(ValidationError, match=r"metric got 'latency'.*'ttft', 'tpot', 'e2e'"):
        plot.latency_throughput(curve, "latency")
    with pytest.raises(ValidationError, match=r"no variable 'ttft'.*valid: one of"):
        plot.latency_throughput(curve.drop_vars("ttft"), "ttft")
    with pytest.raises(ValidationError, match=r"left over: \['batch_cap'\].*hue="):
        plot.latency_throughput(caps_sweep, "ttft")
    with pytest.raises(ValidationError, match=r"hue got 'device'.*one of"):
        plot.latency_throughput(caps_sweep, "ttft", hue="device")
    with pytest.raises(ValidationError, match=r"quantile got 0\.75; valid: one of \[0\.5, 0\.9"):
        plot.latency_throughput(curve, "ttft", quantile=0.75)
    bare = hq.evaluate(scenario, rates={"chat": xr.DataArray(RATES, dims="rate")})
    with pytest.raises(ValidationError, match=r"x='rate' has no coordinate values"):
        plot.latency_throughput(bare, x="rate")
    assert len(_data_lines(plot.latency_throughput(bare))) == 1  # x='throughput' needs no coords
    with pytest.raises(ValidationError, match=r"yscale got 'symlog'; valid: 'linear' or 'log'"):
        plot.latency_throughput(curve, yscale="symlog")
    with pytest.raises(ValidationError, match=r"x got 'speed'"):
        plot.latency_throughput(curve, x="speed")
    with pytest.raises(ValidationError, match=r"no dimension to draw|not among them"):
        plot.latency_throughput(hq.evaluate(scenario))
    with pytest.raises(ValidationError, match=r"got DataArray; valid: an xarray.Dataset"):
        plot.latency_throughput(curve["ttft"])


def test_several_classes_one_line_each():
    ds = hq.evaluate(hq.load_scenario("disaggregated"))
    rates = {c: xr.DataArray(np.array([0.5, 1.0]) * float(ds["capacity"].sel({"class": c})) / 2,
                             dims="rate") for c in ["chat", "code"]}
    sc = hq.load_scenario("disaggregated")
    curve = hq.evaluate(sc, rates=rates)
    ax = plot.latency_throughput(curve, "ttft")
    assert [ln.get_label() for ln in _data_lines(ax)] == ["chat", "code"]
    ax = plot.latency_throughput(curve, "ttft", cls="code")
    (one,) = _data_lines(ax)
    np.testing.assert_allclose(one.get_ydata(), curve["ttft"].sel({"class": "code"}).values
                               * _per_second(ax.get_ylabel()))
    with pytest.raises(ValidationError, match=r"cls got 'nope'; valid: one of \['chat', 'code'\]"):
        plot.latency_throughput(curve, "ttft", cls="nope")


# --------------------------------------------------------------------------- stage breakdown


def test_stage_breakdown_stacks_stages_and_skips_saturated(curve):
    ax = plot.stage_breakdown(curve, by="rate")
    assert [c.get_label() for c in ax.containers] == ["generate.prefill", "generate.decode"]
    ok = ~curve["saturated"].values
    for c in ax.containers:
        assert len(c.patches) == ok.sum()
    tops = np.array([p.get_y() + p.get_height() for p in ax.containers[-1].patches])
    np.testing.assert_allclose(tops, curve["e2e"].sel({"class": "chat"}).values[ok], rtol=1e-9)
    assert [t.get_text() for t in ax.texts] == ["saturated"] * int((~ok).sum())
    assert ax.get_ylabel() == "mean time per stage [s]"
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{r:g}" for r in RATES]


def test_stage_breakdown_per_class_and_errors(curve):
    ds = hq.evaluate(hq.load_scenario("rag-cpu"))
    ax = plot.stage_breakdown(ds)
    assert [c.get_label() for c in ax.containers] == ["embed", "search", "rerank",
                                                     "generate.prefill", "generate.decode"]
    assert all(len(c.patches) == 1 for c in ax.containers)
    with pytest.raises(ValidationError, match=r"by got 'device'; valid: one of \['class', 'rate'\]"):
        plot.stage_breakdown(curve, by="device")
    with pytest.raises(ValidationError, match=r"left over: \['rate'\]"):
        plot.stage_breakdown(curve)


# --------------------------------------------------------------------------- SLO scale


def test_slo_scale_sweep_matches_evaluate(scenario):
    ds = plot.slo_scale_sweep(scenario, [0.5, 1.0, 2.0], rates=_rates([10.0, 40.0]))
    assert ds["goodput"].dims == ("slo_scale", "class", "rate")
    xr.testing.assert_allclose(ds["goodput"].sel(slo_scale=1.0, drop=True),
                               hq.evaluate(scenario, rates=_rates([10.0, 40.0]))["goodput"])
    # latencies do not move with the targets; goodput only grows as targets loosen
    np.testing.assert_allclose(ds["ttft"].sel(slo_scale=0.5), ds["ttft"].sel(slo_scale=2.0))
    assert np.all(ds["goodput"].diff("slo_scale") >= 0)
    assert float(ds["goodput"].sel(slo_scale=0.5, rate=40.0).item()) \
        < float(ds["goodput"].sel(slo_scale=2.0, rate=40.0).item())


def test_goodput_vs_slo_scale_lines(scenario):
    scales = [0.5, 0.75, 1.0, 1.5, 2.0]
    ax = plot.goodput_vs_slo_scale(scenario, scales, rates=_rates([10.0, 30.0, 50.0]), hue="rate")
    lines = _data_lines(ax)
    assert [ln.get_label() for ln in lines] == ["10", "30", "50"]
    np.testing.assert_allclose(lines[0].get_xdata(), scales)
    assert [ln.get_gid() for ln in ax.get_lines()].count("reference") == 1
    assert ax.get_ylabel() == "goodput [requests/s]"
    ax = plot.goodput_vs_slo_scale(plot.slo_scale_sweep(scenario, scales), metric="slo_attainment")
    (line,) = _data_lines(ax)
    assert ax.get_ylabel() == "SLO attainment [%]"
    assert np.all((line.get_ydata() >= 0) & (line.get_ydata() <= 100))


def test_goodput_vs_slo_scale_errors(scenario, curve):
    with pytest.raises(ValidationError, match=r"scales got .*valid: one or more finite"):
        plot.slo_scale_sweep(scenario, [1.0, -1.0])
    no_slo = scenario.with_value("classes.chat.slo", None)
    with pytest.raises(ValidationError, match=r"no class of scenario 'chat-h100' has an slo"):
        plot.slo_scale_sweep(no_slo, [1.0])
    with pytest.raises(ValidationError, match=r"scales is required"):
        plot.goodput_vs_slo_scale(scenario)
    with pytest.raises(ValidationError, match=r"no 'slo_scale' dim"):
        plot.goodput_vs_slo_scale(curve)
    with pytest.raises(ValidationError, match=r"metric got 'ttft'"):
        plot.goodput_vs_slo_scale(scenario, [1.0], metric="ttft")


# --------------------------------------------------------------------------- heat map


def test_utilization_heatmap_masks_saturated_cells(caps_sweep):
    ax = plot.utilization_heatmap(caps_sweep, x="rate", y="batch_cap")
    mesh = ax.collections[0]
    values = np.ma.asarray(mesh.get_array()).reshape(len(CAPS), len(RATES))
    sat = caps_sweep["saturated"].transpose("batch_cap", "rate").values
    assert np.array_equal(np.ma.getmaskarray(values), sat)
    want = caps_sweep["utilization"].sel(pool="h100").transpose("batch_cap", "rate").values * 100
    np.testing.assert_allclose(values[~sat], want[~sat])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["16", "64", "256"]
    assert ax.get_xlabel() == "arrival rate [requests/s]"
    assert ax.get_ylabel() == "batch cap [sequences]"
    colorbar = ax.figure.axes[-1]
    assert colorbar.get_ylabel() == "utilisation of pool h100 [%]"
    assert sum(t.get_text() == "sat." for t in ax.texts) == sat.sum()


def test_utilization_heatmap_errors(caps_sweep):
    with pytest.raises(ValidationError, match=r"x got 'device'; valid: a dim of utilization, one "
                                              r"of \['batch_cap', 'rate'\]"):
        plot.utilization_heatmap(caps_sweep, x="device", y="batch_cap")
    with pytest.raises(ValidationError, match=r"both 'rate'"):
        plot.utilization_heatmap(caps_sweep, x="rate", y="rate")
    with pytest.raises(ValidationError, match=r"pool got 'gpu'; valid: one of \['h100'\]"):
        plot.utilization_heatmap(caps_sweep, x="rate", y="batch_cap", pool="gpu")


# --------------------------------------------------------------------------- Pareto


def test_pareto_front_is_non_dominated(caps_sweep):
    ax = plot.pareto(caps_sweep, "throughput", "ttft", hue="batch_cap", slo=False)
    (front,) = [ln for ln in ax.get_lines() if ln.get_gid() == "front"]
    fx, fy = front.get_xdata(), front.get_ydata() / _per_second(ax.get_ylabel())
    ok = ~caps_sweep["saturated"].values.ravel()
    xs = caps_sweep["throughput"].sel({"class": "chat"}).values.ravel()[ok]
    ys = caps_sweep["ttft"].sel({"class": "chat"}).values.ravel()[ok]
    assert len(fx) >= 2
    for x0, y0 in zip(fx, fy):  # no feasible point beats a front point on both axes
        assert not np.any((xs >= x0) & (ys <= y0) & ((xs > x0) | (ys < y0)))
    for x0, y0 in zip(xs, ys):  # every feasible point is dominated by or on the front
        assert np.any((fx >= x0 - 1e-12) & (fy <= y0 + 1e-12))
    assert np.all(np.diff(fx) >= 0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # saturated points have infinite latency: not drawn, not even as infeasible
    assert labels == ["16", "64", "256", "Pareto front"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == ok.sum()
    assert ax.get_xlabel() == "throughput [requests/s]"
    assert ax.get_ylabel().startswith("time to first token (mean) [")


def test_pareto_slo_and_errors(caps_sweep):
    ax = plot.pareto(caps_sweep, "throughput", "ttft")
    met = (caps_sweep["slo_met"].sel({"class": "chat"}) & ~caps_sweep["saturated"]).values
    feasible = next(c for c in ax.collections if c.get_label() == "feasible")
    assert 0 < len(feasible.get_offsets()) == met.sum() < met.size
    infeasible = next(c for c in ax.collections if c.get_label() == "infeasible")
    finite = np.isfinite(caps_sweep["ttft"].sel({"class": "chat"}).values)
    assert len(infeasible.get_offsets()) == (finite & ~met).sum() > 0
    with pytest.raises(ValidationError, match=r"no known direction for 'batch_size'"):
        plot.pareto(caps_sweep, "throughput", "batch_size", pool="h100")
    ax = plot.pareto(caps_sweep, "throughput", "batch_size", pool="h100", maximize=(True, False))
    assert ax.get_ylabel() == "mean running batch [sequences]"
    with pytest.raises(ValidationError, match=r"maximize got 'up'"):
        plot.pareto(caps_sweep, "throughput", "ttft", maximize="up")
    with pytest.raises(ValidationError, match=r"no variable 'latency'"):
        plot.pareto(caps_sweep, "throughput", "latency")
    with pytest.raises(ValidationError, match=r"hue got 'pool'; valid: one of the swept dims"):
        plot.pareto(caps_sweep, "throughput", "ttft", hue="pool", pool="h100")


# --------------------------------------------------------------------------- versus sampler


def _fake_sampler(curve, rates, scale=1.05):
    """A sampler-shaped Dataset (mean and half-width per class and rate)."""
    ttft = curve["ttft"].sel(rate=rates) * scale
    return xr.Dataset({"ttft": ttft, "ttft_halfwidth": ttft * 0.1})


def test_versus_sampler_line_and_error_bars(curve):
    sampled = _fake_sampler(curve, RATES[:3])
    ax = plot.versus_sampler(curve, sampled, "ttft")
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "closed form"]
    assert line.get_label() == "closed form"
    assert np.all(np.isnan(line.get_ydata()[curve["saturated"].values]))
    (bars,) = ax.containers
    assert bars.get_label() == "sampler (95% CI)"
    points = bars.lines[0]
    np.testing.assert_allclose(points.get_xdata(), RATES[:3])
    np.testing.assert_allclose(points.get_ydata(), sampled["ttft"].values.ravel() * 1e3)
    segments = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments],
                               2 * sampled["ttft_halfwidth"].values.ravel() * 1e3)
    assert ax.get_ylabel() == "time to first token (mean) [ms]"
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "capacity"]) == 1


def test_versus_sampler_real_run(scenario):
    rates = np.array([10.0, 30.0])
    runs = [hq.simulate(scenario.with_value("classes.chat.rate", float(r)), requests=600,
                        replications=2, seed=3) for r in rates]
    sampled = xr.concat(runs, dim=xr.DataArray(rates, dims="rate", name="rate"))
    curve = hq.evaluate(scenario, rates=_rates(rates))
    ax = plot.versus_sampler(curve, sampled, "tpot")
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(),
                               sampled["tpot"].values.ravel() * 1e3)


def test_versus_sampler_errors(curve, scenario):
    sampled = _fake_sampler(curve, RATES[:2])
    with pytest.raises(ValidationError, match=r"no variable 'ttft_halfwidth'"):
        plot.versus_sampler(curve, sampled.drop_vars("ttft_halfwidth"))
    with pytest.raises(ValidationError, match=r"sampled has no dim 'rate' with coordinates"):
        plot.versus_sampler(curve, sampled.isel(rate=0))
    bare = hq.evaluate(scenario, rates={"chat": xr.DataArray(RATES, dims="rate")})
    with pytest.raises(ValidationError, match=r"closed has no dim 'rate' with coordinates"):
        plot.versus_sampler(bare, sampled)


# --------------------------------------------------------------------------- save


def test_save_writes_vector_files(curve, tmp_path):
    ax = plot.latency_throughput(curve)
    svg = plot.save(ax, tmp_path / "fig.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "time to first token" in svg.read_text()  # text kept as text
    assert "<dc:date>" not in svg.read_text()  # no creation date in the file
    pdf = plot.save(ax, tmp_path / "fig.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"%%EOF" in data[-32:]
    assert b"/Type3" not in data  # TrueType fonts (pdf.fonttype 42), not Type 3


def test_save_errors(curve, tmp_path):
    ax = plot.latency_throughput(curve)
    with pytest.raises(ValidationError, match=r"extension '\.jpg'; valid: one of"):
        plot.save(ax, tmp_path / "fig.jpg")
    with pytest.raises(ValidationError, match=r"folder .* does not exist"):
        plot.save(ax, tmp_path / "missing" / "fig.pdf")
    with pytest.raises(ValidationError, match=r"fig got str"):
        plot.save("figure", tmp_path / "fig.pdf")


# --------------------------------------------------------------------------- hq.sweep results


def test_figures_from_hq_sweep(scenario):
    ds = hq.sweep(scenario, rate=RATES, batch_cap=CAPS, device=["H100-SXM", "A100-80GB-SXM"])
    ax = plot.latency_throughput(ds.sel(device="A100-80GB-SXM"), "ttft", x="rate", hue="batch_cap")
    assert [ln.get_label() for ln in _data_lines(ax)] == ["16", "64", "256"]
    ax = plot.utilization_heatmap(ds.sel(batch_cap=256), x="rate", y="device")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["H100-SXM", "A100-80GB-SXM"]
    ax = plot.pareto(ds, "throughput_per_device", "tokens_per_joule", hue="device")
    front = hq.pareto_front(ds, "throughput_per_device", "tokens_per_joule")
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "front"]
    np.testing.assert_allclose(line.get_xdata(), front["throughput_per_device"].values)
    np.testing.assert_allclose(line.get_ydata(), front["tokens_per_joule"].values)
