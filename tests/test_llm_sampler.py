"""The LLM-level event sampler (hermes_qn.llm_sampler): mechanics, laws, limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hermes_qn import llm_sampler
from hermes_qn.errors import ValidationError
from hermes_qn.llm_sampler import simulate_scenario
from hermes_qn.scenario import (Embed, Generate, KVFetch, Pause, Pool, RequestClass, Rerank,
                                Scenario, Search, Target, TierShare, TokenLengths)
from hermes_qn.stage_times import StepModel

MODEL = "llama-3.1-8b"
CLASS_VARS = ("ttft", "tpot", "e2e", "ttft_q", "tpot_q", "e2e_q", "throughput",
              "token_throughput")


def chat(rate=20.0, *, devices=8, batching="continuous", batch_cap=256, prompt=(1000, 0.5),
         output=(200, 1.0), **pool_kw):
    pool = Pool("gpu", "H100-SXM", devices=devices, models=(MODEL,), batch_cap=batch_cap,
                batching=batching, **pool_kw)
    c = RequestClass("chat", (Generate.on("gpu", MODEL),),
                     prompt_tokens=TokenLengths.of(*prompt), output_tokens=TokenLengths.of(*output),
                     rate=rate)
    return Scenario("chat", (pool,), (c,))


def finite(ds):
    for v in CLASS_VARS:
        assert np.all(np.isfinite(ds[v].values)), v
    assert np.all(np.isfinite(ds.utilization.values))
    assert ds.attrs["saturated"] == 0


def test_dataset_layout_and_reproducible():
    sc = chat(30.0)
    a = simulate_scenario(sc, requests=1500, replications=3, seed=7)
    b = simulate_scenario(sc, requests=1500, replications=3, seed=7)
    c = simulate_scenario(sc, requests=1500, replications=3, seed=8)
    assert list(a["quantile"].values) == [0.5, 0.9, 0.99]
    assert a.ttft_q.dims == ("class", "quantile")
    assert a.utilization.dims == ("pool",) and a.batch_size.dims == ("pool",)
    for v in CLASS_VARS:
        assert f"{v}_halfwidth" in a
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert a.e2e.values[0] != c.e2e.values[0]
    assert a.attrs["method"] == "sampler" and a.attrs["seed"] == 7
    assert a.attrs["requests"] == 1500 and a.attrs["replications"] == 3
    assert "recompute" in a.attrs["preemption"] and a.attrs["notes"]
    finite(a)
    assert np.all(a.ttft_halfwidth.values > 0)
    # completions in the window: needs a warm-up long enough for 30 s requests
    w = simulate_scenario(sc, requests=4000, replications=3, seed=7, warmup=0.3)
    assert w.throughput.values[0] == pytest.approx(30.0, rel=0.06)
    assert w.token_throughput.values[0] == pytest.approx(30.0 * 200, rel=0.06)
    assert np.all(np.diff(a.e2e_q.values[0]) >= 0)
    # one replication: no half-width
    one = simulate_scenario(sc, requests=500, replications=1, seed=1)
    assert np.isnan(one.e2e_halfwidth.values[0])


def test_bad_arguments():
    sc = chat()
    for kw in ({"requests": 1}, {"replications": 0}, {"warmup": 1.0}, {"seed": -1}):
        with pytest.raises(ValidationError):
            simulate_scenario(sc, **kw)
    with pytest.raises(ValidationError):
        simulate_scenario("chat")


def test_records_and_littles_law():
    sc = chat(40.0)
    ds, df = simulate_scenario(sc, requests=6000, replications=1, seed=3, warmup=0.0,
                               records=True)
    for col in ("class", "arrival", "first_token", "completion", "prompt_tokens",
                "output_tokens", "ttft", "tpot", "e2e", "stage0_generate"):
        assert col in df.columns
    assert len(df) == 6000
    assert np.all(df.first_token >= df.arrival) and np.all(df.completion >= df.first_token)
    np.testing.assert_allclose(df.e2e, df.completion - df.arrival)
    np.testing.assert_allclose(df.stage0_generate, df.e2e)
    # Little, over a window inside the arrivals (every request present then is a record):
    # time-average number in system = arrival rate x mean E2E of the window's arrivals
    t0, t1 = np.quantile(df.arrival, [0.2, 0.8])
    inside = np.clip(np.minimum(df.completion, t1) - np.maximum(df.arrival, t0), 0, None)
    number = inside.sum() / (t1 - t0)
    arrived = df[(df.arrival >= t0) & (df.arrival <= t1)]
    lam = len(arrived) / (t1 - t0)
    assert number == pytest.approx(lam * arrived.e2e.mean(), rel=0.04)
    # the dataset's means are those of the records
    assert ds.e2e.values[0] == pytest.approx(df.e2e.mean())
    assert ds.ttft.values[0] == pytest.approx(df.ttft.mean())
    assert ds.throughput.values[0] == pytest.approx(40.0, rel=0.06)


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_low_load_matches_step_model(batching):
    sc = chat(0.02, devices=2, prompt=(1000, 0.0), output=(100, 0.0), batching=batching)
    ds = simulate_scenario(sc, requests=300, replications=2, seed=2)
    sm = StepModel(sc.pools[0])
    prefill = float(sm.prefill(1000, 0.0))
    # decode contexts 1000..1098; decode time is linear in context
    decode = float(np.mean(sm.decode(1, 1000.0 + np.arange(99))))
    assert ds.ttft_q.sel(quantile=0.5).values[0] == pytest.approx(prefill, rel=0.02)
    assert ds.tpot_q.sel(quantile=0.5).values[0] == pytest.approx(decode, rel=0.02)
    assert ds.e2e_q.sel(quantile=0.5).values[0] == pytest.approx(prefill + 99 * decode, rel=0.02)


def test_low_load_chunked_prefill_in_chunks():
    sc = chat(0.02, devices=2, prompt=(1000, 0.0), output=(100, 0.0), batching="chunked",
              chunk_tokens=512)
    ds = simulate_scenario(sc, requests=300, replications=2, seed=2)
    sm = StepModel(sc.pools[0])
    two_chunks = float(sm.mixed(0, 0.0, 512, 0.0) + sm.mixed(0, 0.0, 488, 512.0))
    assert ds.ttft_q.sel(quantile=0.5).values[0] == pytest.approx(two_chunks, rel=0.02)


class _LinearStep:
    """Decode step = TAU x batch (a processor-sharing server of 1/TAU tokens/s); prefill ~ 0."""

    TAU = 1e-4

    def __init__(self, pool):
        self.pool = pool

    def prefill(self, tokens, context=0.0, batch=1):
        return np.full(np.broadcast(np.asarray(tokens), np.asarray(context)).shape, 1e-9)

    def decode(self, batch, context):
        b = np.asarray(batch, dtype=float)
        return self.TAU * np.broadcast_to(b, np.broadcast(b, np.asarray(context)).shape)


class _FlatStep(_LinearStep):
    """Decode step = TAU whatever the batch: every sequence runs at full speed (M/G/inf)."""

    def decode(self, batch, context):
        return np.full(np.broadcast(np.asarray(batch), np.asarray(context)).shape, self.TAU)


def _mean_decode_tokens(lengths: TokenLengths) -> float:
    x = lengths.sample(np.random.default_rng(0), 2_000_000)
    return float(x.mean()) - 1.0


def test_batch_proportional_step_is_processor_sharing(monkeypatch):
    monkeypatch.setattr(llm_sampler, "StepModel", _LinearStep)
    out = TokenLengths.of(50, 1.0)
    service = _LinearStep.TAU * _mean_decode_tokens(out)
    rho = 0.6
    sc = chat(rho / service, devices=1, prompt=(100, 0.0), output=(50, 1.0), batch_cap=512)
    ds = simulate_scenario(sc, requests=20000, replications=4, seed=5)
    closed = service / (1 - rho)  # M/G/1-PS
    e2e, hw = ds.e2e.values[0], ds.e2e_halfwidth.values[0]
    assert abs(e2e - closed) <= max(2 * hw, 0.03 * closed), (e2e, hw, closed)
    assert ds.utilization.values[0] == pytest.approx(rho, rel=0.03)
    # mean number decoding = rho / (1 - rho)
    assert ds.batch_size.values[0] == pytest.approx(rho / (1 - rho), rel=0.06)


def test_batch_independent_step_is_infinite_server(monkeypatch):
    monkeypatch.setattr(llm_sampler, "StepModel", _FlatStep)
    out = TokenLengths.of(50, 1.0)
    service = _FlatStep.TAU * _mean_decode_tokens(out)
    rate = 400.0
    sc = chat(rate, devices=1, prompt=(100, 0.0), output=(50, 1.0), batch_cap=512)
    ds = simulate_scenario(sc, requests=8000, replications=3, seed=5)
    # M/G/inf: no queueing; a request waits at most one step to join the batch
    e2e = ds.e2e.values[0]
    assert 0.995 * service <= e2e <= 1.005 * service + _FlatStep.TAU
    assert ds.batch_size.values[0] == pytest.approx(rate * service, rel=0.05)


@pytest.mark.parametrize("batching", ["continuous", "chunked", "static"])
def test_every_stage_kind_and_strategy(batching):
    cpu = Pool("cpu", "Xeon-8480+", devices=2, models=("e5-base-v2",))
    gpu = Pool("gpu", "H100-SXM", devices=4, models=(MODEL, "bge-reranker-base"),
               batching=batching, batch_cap=64, chunk_tokens=512)
    pipeline = (
        Embed("cpu", "e5-base-v2"),
        Search("cpu", index="ivf_pq", corpus=1e7, dim=768, k=10, retrieved_tokens=500,
               options={"precision": "bf16", "nlist": 4096, "nprobe": 32, "pq_m": 96}),
        Rerank("gpu", "bge-reranker-base", documents=10, tokens_per_document=200),
        KVFetch(1000, tiers=(TierShare("DDR5-socket", 0.5, instances=4),
                             TierShare("Mooncake-RDMA-pool", 0.3, latency=20e-6))),
        Pause(0.05),
        Generate.on("gpu", MODEL, thinking=1.0, rounds=2, round_delay=0.2, round_tokens=100,
                    branches=2),
    )
    c = RequestClass("rag", pipeline, prompt_tokens=TokenLengths.of(300, 0.5),
                     output_tokens=TokenLengths.of(60, 1.0), rate=2.0)
    ds, df = simulate_scenario(Scenario("all", (cpu, gpu), (c,)), requests=600,
                               replications=2, seed=11, records=True)
    finite(ds)
    stages = [col for col in df.columns if col.startswith("stage")]
    assert stages == ["stage0_embed", "stage1_search", "stage2_rerank", "stage3_kv_fetch",
                      "stage4_pause", "stage5_generate"]
    np.testing.assert_allclose(df[stages].sum(axis=1), df.e2e, rtol=1e-9)
    np.testing.assert_allclose(df.stage4_pause, 0.05, rtol=1e-6)
    assert np.all(df.stage5_generate > 0.2)  # the pause between the two rounds
    # answer tokens only in token_throughput: about rate x 60
    assert ds.token_throughput.values[0] == pytest.approx(2.0 * 60, rel=0.25)
    assert np.all((ds.utilization.values > 0) & (ds.utilization.values <= 1.1))
    assert np.isnan(ds.batch_size.values[0]) and ds.batch_size.values[1] > 0


def test_preemption_with_small_kv_cache():
    # about 14k tokens of KV: ~9 sequences of 1k prompt + 500 output
    small = chat(0.7, devices=1, prompt=(1000, 0.2), output=(500, 0.5), batch_cap=128,
                 memory_utilization=0.25)
    kv = small.pools[0].memory.max_kv_tokens
    assert kv < 20_000
    ds = simulate_scenario(small, requests=1500, replications=1, seed=4)
    finite(ds)
    assert ds.attrs["preemptions"] > 0
    assert ds.batch_size.values[0] < kv / 1000
    roomy = simulate_scenario(small.with_value("pools.gpu.memory_utilization", 0.3),
                              requests=1500, replications=1, seed=4)
    assert roomy.attrs["preemptions"] == 0
    assert roomy.e2e.values[0] < ds.e2e.values[0]


def test_disaggregated_and_routed():
    pre = Pool("pre", "H100-SXM", devices=2, models=(MODEL,))
    dec = Pool("dec", "H100-SXM", devices=2, models=(MODEL,), batch_cap=128)
    a = Pool("a", "H100-SXM", devices=1, models=(MODEL,))
    b = Pool("b", "H100-SXM", devices=1, models=(MODEL,), batching="chunked")
    split = RequestClass("split", (Generate((Target(MODEL, prefill_pool="pre", decode_pool="dec",
                                                    link="IB-NDR-400"),), branches=2),),
                         prompt_tokens=TokenLengths.of(1500, 0.5),
                         output_tokens=TokenLengths.of(150, 1.0), rate=6.0)
    routed = RequestClass("routed", (Generate((Target(MODEL, pool="a", probability=0.2),
                                               Target(MODEL, pool="b", probability=0.8))),),
                          prompt_tokens=TokenLengths.of(500, 0.5),
                          output_tokens=TokenLengths.of(100, 1.0), rate=4.0)
    sc = Scenario("mix", (pre, dec, a, b), (split, routed))
    ds = simulate_scenario(sc, requests=3000, replications=2, seed=9)
    finite(ds)
    util = dict(zip(ds.pool.values, ds.utilization.values))
    batch = dict(zip(ds.pool.values, ds.batch_size.values))
    assert np.isnan(batch["pre"]) and batch["dec"] > 0  # no decoding on the prefill pool
    assert util["b"] > util["a"] and batch["b"] > 2 * batch["a"]
    # disaggregated TTFT is at least one prefill; TPOT near a decode step
    sm = StepModel(pre)
    assert ds.ttft.sel({"class": "split"}).item() > 0.5 * float(sm.prefill(1500, 0.0))
    assert ds.throughput.sel({"class": "split"}).item() == pytest.approx(6.0, rel=0.1)


def test_closed_class_response_time_law():
    pool = Pool("gpu", "H100-SXM", devices=2, models=(MODEL,))
    c = RequestClass("users", (Generate.on("gpu", MODEL),), prompt_tokens=TokenLengths.of(800, 0.5),
                     output_tokens=TokenLengths.of(100, 1.0), clients=30, think_time=2.0)
    ds = simulate_scenario(Scenario("closed", (pool,), (c,)), requests=3000, replications=2,
                           seed=1)
    finite(ds)
    x, r = ds.throughput.values[0], ds.e2e.values[0]
    assert x == pytest.approx(30 / (2.0 + r), rel=0.05)


def test_saturation_is_flagged():
    ds = simulate_scenario(chat(150.0, devices=1), requests=1000, replications=1, seed=0)
    assert ds.attrs["saturated"] == 1 and "SATURATED" in ds.attrs["notes"]
    assert ds.throughput.values[0] < 0.5 * 150


def test_no_progress_output_by_default(capsys):
    simulate_scenario(chat(), requests=200, replications=1)
    assert capsys.readouterr().err == ""
    simulate_scenario(chat(), requests=2000, replications=1, progress=True)
    assert "2000/2000" in capsys.readouterr().err


def test_stage_times_goodput_and_slo_attainment_from_the_records():
    from hermes_qn.scenario import SLO, Pause
    pool = Pool("gpu", "H100-SXM", devices=1, models=(MODEL,))
    slo = SLO(ttft=0.5, e2e=3.0)
    c = RequestClass("chat", (Pause(0.05, label="tool"), Generate.on("gpu", MODEL)),
                     prompt_tokens=TokenLengths.of(300, 0.5),
                     output_tokens=TokenLengths.of(60, 1.0), rate=2.0, slo=slo)
    ds, rec = simulate_scenario(Scenario("s", (pool,), (c,)), requests=1500, replications=2,
                                seed=5, records=True)
    assert list(ds.stage.values) == ["tool", "generate"]
    assert ds.stage_time.sel(stage="tool").item() == pytest.approx(0.05)
    # the stages add up to the end-to-end latency
    assert ds.stage_time.sum("stage").item() == pytest.approx(ds.e2e.item(), rel=1e-9)
    met = ((rec.ttft <= 0.5) & (rec.e2e <= 3.0)).groupby(rec.replication).mean().mean()
    assert ds.slo_attainment.item() == pytest.approx(met, rel=1e-9)
    assert ds.goodput.item() == pytest.approx(ds.throughput.item() * met, rel=0.02)
