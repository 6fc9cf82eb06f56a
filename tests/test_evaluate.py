"""hq.evaluate against limits with exact answers, textbook closed forms and the laws that must hold."""

import dataclasses
import math

import numpy as np
import pytest

import hermes_qn as hq
from hermes_qn.scenario import (Embed, Generate, KVFetch, Pause, Pool, RequestClass, Rerank,
                                Scenario, Search, SLO, Target, TierShare)
from hermes_qn.stage_times import StepModel, kv_fetch_time, kv_transfer_time, search_time
from hermes_qn.workload import TokenLengths

MODEL = "llama-3.1-8b"


def chat(batching="continuous", rate=1.0, prompt=TokenLengths.of(1000), output=200, devices=2,
         **pool):
    p = Pool("gpu", "H100-SXM", devices=devices, models=(MODEL,), batching=batching, **pool)
    c = RequestClass("chat", (Generate.on("gpu", MODEL),), prompt_tokens=prompt,
                     output_tokens=output, rate=rate, slo=SLO(ttft=1.0, tpot=0.1))
    return Scenario("chat", (p,), (c,))


def disaggregated(rate=1.0, output=TokenLengths.of(200), batch_cap=256, prefill_devices=1):
    pools = (Pool("pre", "H100-SXM", devices=prefill_devices, models=(MODEL,)),
             Pool("dec", "H100-SXM", devices=1, models=(MODEL,), batch_cap=batch_cap))
    gen = Generate((Target(MODEL, prefill_pool="pre", decode_pool="dec", link="IB-NDR-400"),))
    c = RequestClass("c", (gen,), prompt_tokens=1000, output_tokens=output, rate=rate)
    return Scenario("pd", pools, (c,))


def erlang_c_wait(lam, s, c):
    """Mean wait in M/M/c (textbook formula, written independently of the library)."""
    a = lam * s
    rho = a / c
    top = a ** c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)
    return p_wait * s / (c - a)


@pytest.mark.parametrize("batching", ["continuous", "chunked", "static"])
def test_low_load_is_pure_service_time(batching):
    sc = chat(batching, rate=1e-7)
    ds = hq.evaluate(sc)
    steps = StepModel(sc.pools[0])
    prefill = steps.prefill(1000.0)
    step = steps.decode(1, 1000 + 100)
    if batching == "chunked":  # a full chunk of 512 tokens, then a step with the other 488
        assert ds.ttft.item() == pytest.approx(steps.mixed(0, 0, 512, 500)
                                               + steps.mixed(0, 0, 488, 500), rel=0.01)
    else:
        # static: a 1e-7 chance of finding a batch running adds its residual
        assert ds.ttft.item() == pytest.approx(prefill, rel=1e-6 if batching != "static" else 1e-4)
    assert ds.tpot.item() == pytest.approx(step, rel=1e-6 if batching != "static" else 1e-2)
    assert ds.e2e.item() == pytest.approx(ds.ttft.item() + 199 * ds.tpot.item(), rel=1e-9)


def test_decode_with_batch_independent_step_time_is_erlang_c(monkeypatch):
    # With t(b) = t for every b, each running sequence gets one token per t: the decode
    # station is M/M/B for geometric-like outputs (means depend only on the mean here).
    t = 0.02
    monkeypatch.setattr(StepModel, "decode", lambda self, batch, context:
                        np.full(np.shape(np.asarray(batch, dtype=float)), t))
    for cap, lam in [(1, 0.2), (4, 0.8), (4, 0.95), (16, 3.5)]:
        sc = disaggregated(rate=lam, batch_cap=cap, prefill_devices=4)
        ds = hq.evaluate(sc)
        s = 199 * t
        expected = erlang_c_wait(lam, s, cap) + s
        assert ds.stage_time.sel(stage="generate.decode").item() == pytest.approx(expected,
                                                                                 rel=1e-9)


def test_prefill_pool_is_gated_batch_service(monkeypatch):
    # A prefill step takes t whatever its batch: a prompt that finds a step running waits its
    # residual t / 2 and is prefilled in the next step with all that arrived meanwhile. The
    # replica alternates idle periods (mean 1 / lam) with runs of steps, a run ending after a
    # step with no arrival (probability exp(-lam t)): P(busy) = a e^a / (a e^a + 1), a = lam t.
    t = 0.05
    monkeypatch.setattr(StepModel, "prefill", lambda self, tokens, context=0.0, batch=1:
                        np.full(np.broadcast(np.asarray(tokens), np.asarray(batch)).shape, t))
    for lam in (2.0, 10.0, 20.0):
        a = lam * t
        busy = a * math.exp(a) / (a * math.exp(a) + 1)
        ds = hq.evaluate(disaggregated(rate=lam))
        assert ds.ttft.item() == pytest.approx(busy * t / 2 + t, rel=1e-5)
        assert ds.utilization.sel(pool="pre").item() == pytest.approx(busy, rel=1e-6)


def test_prefill_batches_are_capped_by_the_token_budget():
    # 1000-token prompts, 8192 tokens a step: at most 8 per step, so the prefill pool
    # saturates where lam T(8) / 8 = 1 (two-token outputs: the decode pool is not the limit)
    sc = disaggregated(rate=1.0, output=TokenLengths.of(2))
    t8 = StepModel(sc.pools[0]).prefill(1000.0, 0.0, 8)
    ds = hq.evaluate(sc)
    assert ds.capacity.item() == pytest.approx(8 / t8, rel=1e-9)
    assert ds.capacity_station.item() == "pool 'pre' prefill"
    assert not bool(hq.evaluate(sc, rates={"c": 0.995 * 8 / t8}).saturated)
    assert bool(hq.evaluate(sc, rates={"c": 1.005 * 8 / t8}).saturated)


def test_fcfs_rag_pool_and_ps_tier_closed_forms():
    cpu = Pool("cpu", "Xeon-8480+", devices=1, models=("e5-base-v2",))
    gpu = Pool("gpu", "H100-SXM", devices=1, models=(MODEL,))
    search = Search("cpu", index="ivf_pq", corpus=1e7, dim=768, k=10, retrieved_tokens=500,
                    options={"nlist": 4096, "nprobe": 16, "pq_m": 96, "precision": "bf16"})
    fetch = KVFetch(2048, (TierShare("DDR5-socket", 0.6, instances=1),))
    c = RequestClass("r", (search, fetch, Generate.on("gpu", MODEL)), prompt_tokens=100,
                     output_tokens=50, rate=2.0)
    sc = Scenario("rag", (cpu, gpu), (c,))
    ds = hq.evaluate(sc)
    s = search_time(search, cpu)
    assert ds.stage_time.sel(stage="search").item() == pytest.approx(
        2.0 * s * s / (2 * (1 - 2.0 * s)) + s, rel=1e-9)            # M/D/1
    f, lat = kv_fetch_time(fetch.tiers[0], hq.load_model(MODEL), 2048, 1)
    rho = 2.0 * 0.6 * f
    assert ds.stage_time.sel(stage="kv_fetch.DDR5-socket").item() == pytest.approx(
        0.6 * f / (1 - rho), rel=1e-9)                                # M/G/1-PS
    assert ds.stage_time.sel(stage="kv_fetch.DDR5-socket.latency").item() == pytest.approx(
        0.6 * lat)


@pytest.mark.parametrize("name", ["chat-h100", "rag-cpu", "reasoning", "disaggregated",
                                  "remote-kv"])
def test_stage_breakdown_sums_to_e2e_and_laws_hold(name):
    sc = hq.load_scenario(name)
    ds = hq.evaluate(sc)
    np.testing.assert_allclose(ds.stage_time.sum("stage"), ds.e2e, rtol=1e-12)
    assert (ds.ttft <= ds.e2e).all()
    assert (ds.ttft_q.diff("quantile") >= 0).all() and (ds.e2e_q.diff("quantile") >= 0).all()
    assert ((ds.utilization >= 0) & (ds.utilization <= 1)).all()
    assert ((ds.load_fraction > 0) & (ds.load_fraction < 1)).all()
    assert (ds.goodput <= ds.throughput + 1e-12).all()
    # open classes: throughput is the arrival rate (flow balance) when stable
    for c in sc.classes:
        assert ds.throughput.sel({"class": c.name}).item() == pytest.approx(c.rate)


@pytest.mark.parametrize("batching", ["continuous", "chunked", "static"])
def test_latency_grows_with_load_and_saturation_is_named(batching):
    sc = chat(batching)
    rates = np.linspace(0.1, 1.0, 10) * hq.evaluate(sc, rates={"chat": 0.5}).capacity.item()
    ds = hq.evaluate(sc, rates={"chat": rates[:-1]})
    for var in ("ttft", "e2e"):
        assert (ds[var].diff("chat_rate") > 0).all(), var
    assert not ds.saturated.any()
    over = hq.evaluate(sc, rates={"chat": 5 * rates[-1]})
    assert bool(over.saturated)
    assert "pool 'gpu'" in over.saturated_station.item()
    assert over.e2e.item() == math.inf and over.ttft.item() == math.inf


@pytest.mark.parametrize("batching", ["continuous", "chunked", "static"])
def test_capacity_is_the_stability_boundary(batching):
    sc = chat(batching, rate=1.0)
    cap = hq.evaluate(sc).capacity.item()
    assert not bool(hq.evaluate(sc, rates={"chat": 0.995 * cap}).saturated)
    assert bool(hq.evaluate(sc, rates={"chat": 1.005 * cap}).saturated)


def test_vectorised_rates_equal_pointwise():
    sc = chat("chunked", prompt=TokenLengths.of(800, 1.0), output=TokenLengths.of(150, 1.0))
    rates = [0.5, 2.0, 6.0]
    swept = hq.evaluate(sc, rates={"chat": rates})
    for r in rates:
        one = hq.evaluate(sc, rates={"chat": r})
        for var in ("ttft", "tpot", "e2e"):
            assert swept[var].sel(chat_rate=r).item() == pytest.approx(one[var].item(), rel=1e-5)
    assert swept.attrs["iterations"] > 0 and swept.attrs["residual"] < 1e-6


def test_routing_splits_traffic_and_mixes_latency():
    pools = (Pool("a", "H100-SXM", devices=1, models=(MODEL,)),
             Pool("b", "A100-80GB-SXM", devices=1, models=(MODEL,)))
    gen = Generate((Target(MODEL, pool="a", probability=0.25), Target(MODEL, pool="b",
                                                                       probability=0.75)))
    c = RequestClass("c", (gen,), prompt_tokens=500, output_tokens=100, rate=2.0)
    mixed = hq.evaluate(Scenario("r", pools, (c,)))
    only = {}
    for name, rate in (("a", 0.5), ("b", 1.5)):
        cc = RequestClass("c", (Generate.on(name, MODEL),), prompt_tokens=500, output_tokens=100,
                          rate=rate)
        only[name] = hq.evaluate(Scenario("r", pools, (cc,))).e2e.item()
    assert mixed.e2e.item() == pytest.approx(0.25 * only["a"] + 0.75 * only["b"], rel=1e-9)


def test_closed_class_satisfies_the_response_time_law():
    p = Pool("gpu", "H100-SXM", devices=1, models=(MODEL,))
    c = RequestClass("c", (Generate.on("gpu", MODEL),), prompt_tokens=500, output_tokens=100,
                     clients=20, think_time=5.0)
    ds = hq.evaluate(Scenario("closed", (p,), (c,)))
    x = ds.throughput.item()
    assert x == pytest.approx(20 / (5.0 + ds.e2e.item()), rel=1e-5)
    assert x < ds.capacity.item()


def test_every_stage_kind_in_one_pipeline():
    cpu = Pool("cpu", "Xeon-8480+", devices=2, models=("e5-base-v2",))
    gpu = Pool("gpu", "H100-SXM", devices=2, models=(MODEL, "bge-reranker-base"))
    small = Pool("small", "L40S", devices=1, models=("qwen2.5-7b",))
    stages = (Generate.on("small", "qwen2.5-7b", output_tokens=30),
              Embed("cpu", "e5-base-v2"),
              Search("cpu", "hnsw", corpus=1e6, dim=768, retrieved_tokens=800,
                     options={"precision": "bf16"}),
              Rerank("gpu", "bge-reranker-base", documents=10),
              KVFetch(1024, (TierShare("CXL-CZ120", 0.5),)),
              Generate.on("gpu", MODEL, main=True, thinking=1.0, rounds=2, round_delay=0.5,
                          round_tokens=100, branches=2),
              Pause(0.05, "guard"))
    c = RequestClass("c", stages, prompt_tokens=TokenLengths.of(200, 0.5),
                     output_tokens=TokenLengths.of(100, 1.0), rate=0.5)
    ds = hq.evaluate(Scenario("all", (cpu, gpu, small), (c,)))
    assert np.isfinite(ds.e2e.item()) and not bool(ds.saturated)
    labels = list(ds.stage.values)
    for part in ("generate0", "embed", "search", "rerank", "kv_fetch.CXL-CZ120", "guard"):
        assert any(lab.startswith(part) for lab in labels), part
    # TTFT covers everything up to the main generate's first prefill, nothing after it
    before = [s for s in labels if not s.startswith(("generate5", "guard"))]
    first = ds.stage_time.sel(stage=before).sum().item() + ds.stage_time.sel(
        stage="generate5.round1.prefill").item()
    assert ds.ttft.item() == pytest.approx(first, rel=1e-9)


def test_energy_uses_idle_power_when_given_and_peak_otherwise():
    sc = chat(rate=2.0)
    # a device without idle_power: power at peak, with a note
    bare = dataclasses.replace(sc.pools[0].device, idle_power=None)
    hot = hq.evaluate(dataclasses.replace(sc, pools=(dataclasses.replace(sc.pools[0], device=bare),)))
    assert "upper bound" in hot.attrs["notes"]
    assert hot.power.item() == pytest.approx(2 * 700.0)
    # the catalog's idle_power (H100-SXM: 70 W bare idle) when the pool gives none
    cat = hq.evaluate(sc)
    idle = sc.pools[0].device.idle_power
    assert "upper bound" not in cat.attrs["notes"]
    assert cat.power.item() == pytest.approx(2 * (idle + (700 - idle) * cat.utilization.item()))
    cool = hq.evaluate(sc.with_value("pools.gpu.idle_power", 100.0))
    u = cool.utilization.item()
    assert cool.power.item() == pytest.approx(2 * (100 + 600 * u))
    tokens = cool.token_throughput.sum().item()
    assert cool.energy_per_token.item() == pytest.approx(cool.power.item() / tokens)
    price = sc.pools[0].device.price_per_hour
    assert cool.cost_per_million_tokens.item() == pytest.approx(2 * price / 3600 / tokens * 1e6)


def test_bad_arguments():
    sc = chat()
    with pytest.raises(hq.ValidationError, match="unknown class 'x'"):
        hq.evaluate(sc, rates={"x": 1.0})
    with pytest.raises(hq.ValidationError, match="rates"):
        hq.evaluate(sc, rates={"chat": -1.0})
    with pytest.raises(hq.ValidationError, match="damping"):
        hq.evaluate(sc, damping=0)


def test_a_link_shared_by_kv_transfer_and_kv_fetch_contends():
    def scenario(fetch_share):
        pools = (Pool("pre", "H100-SXM", devices=2, models=(MODEL,)),
                 Pool("dec", "H100-SXM", devices=2, models=(MODEL,)))
        gen = Generate((Target(MODEL, prefill_pool="pre", decode_pool="dec",
                               link="IB-NDR-400"),))
        fetch = KVFetch(8192, (TierShare("IB-NDR-400", fetch_share, instances=2,
                                         latency=5e-6),))
        c = RequestClass("c", (fetch, gen), prompt_tokens=1000, output_tokens=50, rate=4.0)
        return Scenario("shared", pools, (c,))
    alone = hq.evaluate(scenario(0.0))
    shared = hq.evaluate(scenario(0.9))
    t_alone = alone.stage_time.sel(stage="generate.kv_transfer").item()
    t_shared = shared.stage_time.sel(stage="generate.kv_transfer").item()
    assert t_shared > t_alone
    # one PS station with two copies: both flows see 1 / (1 - total utilisation)
    sc = scenario(0.9)
    model = hq.load_model(MODEL)
    s_transfer, _ = kv_transfer_time(hq.hardware.load_link("IB-NDR-400"),
                         model, 1000.0 + 8192, 1)  # the whole context moves
    s_fetch, _ = kv_fetch_time(sc.classes[0].pipeline[0].tiers[0], model, 8192, 1)
    rho = (4.0 * s_transfer + 4.0 * 0.9 * s_fetch) / 2
    assert t_shared == pytest.approx(s_transfer / (1 - rho), rel=1e-9)


def test_pause_is_named_by_its_label():
    from hermes_qn.scenario import Pause
    sc = Scenario("p", (Pool("gpu", "H100-SXM", models=(MODEL,)),),
                  (RequestClass("c", (Pause(0.01, label="pcie"), Pause(0.02),
                                      Generate.on("gpu", MODEL)), 100, 100, rate=1.0),))
    ds = hq.evaluate(sc)
    assert ds.stage_time.sel(stage="pcie").item() == pytest.approx(0.01)
    assert ds.stage_time.sel(stage="pause").item() == pytest.approx(0.02)


def test_chunked_fixed_point_settles_across_loads():
    # a reasoning class on a chunked pool once cycled at 1e-5 under damped iteration
    from hermes_qn import workload
    prompt, output = workload.dataset("azure-conv")
    sc = Scenario("x", (Pool("h200", "H200", devices=8, tp=2, models=("qwen3-32b",),
                             batching="chunked", chunk_tokens=1024, batch_cap=128),),
                  (RequestClass("req", (Generate.on("h200", "qwen3-32b", thinking=2.0, rounds=2,
                                                    round_delay=1.0, round_tokens=300),),
                                prompt_tokens=prompt, output_tokens=output, rate=1.0),))
    cap = hq.evaluate(sc).capacity.item()
    ds = hq.evaluate(sc, rates={"req": np.linspace(0.05, 0.95, 19) * cap})
    assert np.isfinite(ds.ttft).all() and bool((np.diff(ds.e2e.values.ravel()) > 0).all())


def test_wait_mixture_quantiles_match_monte_carlo():
    # S from three values, W = 0 or exponential, per-component waits
    from hermes_qn.station_formulas import compress_points, wait_mixture_cdf, wait_mixture_quantile
    rng = np.random.default_rng(3)
    values, weights = np.array([[0.1, 0.2, 0.5]]), np.array([0.5, 0.3, 0.2])
    wait, p = np.array([[0.1, 0.3, 0.6]]), np.array([[0.5, 0.6, 0.9]])
    n = 400_000
    i = rng.choice(3, size=n, p=weights)
    x = values[0][i] + np.where(rng.random(n) < p[0][i], rng.exponential((wait / p)[0][i]), 0.0)
    q = np.array([0.5, 0.9, 0.99])
    assert wait_mixture_quantile(q, values, weights, wait, p)[0] == pytest.approx(
        np.quantile(x, q), rel=0.01)
    assert wait_mixture_cdf(np.array([[0.3, 1.0]]), values, weights, wait, p)[0] == pytest.approx(
        [(x <= 0.3).mean(), (x <= 1.0).mean()], abs=0.003)
    # compressing 1000 equally likely values keeps the tail quantiles
    v = np.sort(rng.gamma(2.0, 1.0, 1000))
    cv, cw = compress_points(v[None, :], np.full(1000, 1e-3))
    assert cw.sum() == pytest.approx(1.0)
    assert cv[0, -1] == pytest.approx(np.quantile(v, 0.9975), rel=0.05)


def test_ttft_percentiles_of_a_routing_mixture_come_from_both_targets():
    # 70/30 over two pools with different models: the p50 sits in the faster target's hump
    pools = (Pool("a", "H100-SXM", models=(MODEL,)), Pool("b", "L40S", models=(MODEL,)))
    gen = Generate((Target(MODEL, pool="a", probability=0.7),
                    Target(MODEL, pool="b", probability=0.3)))
    sc = Scenario("r", pools, (RequestClass("c", (gen,), prompt_tokens=2000, output_tokens=50,
                                            rate=1e-6),))
    ds = hq.evaluate(sc)
    fast = StepModel(pools[0]).prefill(2000.0)
    slow = StepModel(pools[1]).prefill(2000.0)
    q = ds.ttft_q.sel({"class": "c"})
    assert q.sel(quantile=0.5).item() == pytest.approx(fast, rel=0.03)
    assert q.sel(quantile=0.9).item() == pytest.approx(slow, rel=0.03)
