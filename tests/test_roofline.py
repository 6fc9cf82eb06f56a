"""Tests for hermes_qn.roofline (step times per operator) and hermes_qn.memory (memory fit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_qn import hardware, models, roofline
from hermes_qn.errors import ValidationError
from hermes_qn.hardware import Device
from hermes_qn.memory import (kv_bytes_per_token_per_device, memory_fit, stage_layers,
                              weight_bytes_per_device, workspace_bytes)
from hermes_qn.models import Model
from hermes_qn.roofline import OPERATORS, decode_step, distinct_experts, mixed_step, prefill

# A device with round numbers and perfect efficiencies, for checks by hand:
# 1 PFLOP/s bf16, 2 PFLOP/s fp8, 1 TB/s memory, 100 GB/s per direction links, 1 us latency.
TOY = Device(name="toy", vendor="test", category="gpu",
             peak_flops={"bf16": 1e15, "fp8": 2e15}, memory_bytes=80e9,
             memory_bandwidth=1e12, scale_up_bandwidth=1e11, scale_up_latency=1e-6,
             matmul_efficiency=1.0, memory_efficiency=1.0)
NO_LINK = dataclasses.replace(TOY, name="nolink", scale_up_bandwidth=None, scale_up_latency=None)
H100 = hardware.load_device("H100-SXM")
A100 = hardware.load_device("A100-80GB-SXM")

# A small model whose FLOPs are easy to write down: 2 layers, hidden 8, 2 query heads,
# 1 KV head of width 4, gated FFN 16, vocabulary 10.
TINY = Model(name="tiny", architecture="decoder", layers=2, hidden_size=8, query_heads=2,
             kv_heads=1, head_dim=4, ffn_size=16, gated_ffn=True, vocab_size=10,
             tied_embeddings=False, max_context=4096)

DENSE = ["llama-2-7b", "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen3-32b", "mistral-7b"]
ALL_DECODERS = DENSE + ["mixtral-8x7b", "deepseek-v3", "llama-2-13b"]


def op(step, name, var="flops"):
    return float(step.breakdown[var].sel(operator=name))


# ----------------------------------------------------------------------- FLOPs by hand


def test_linear_layer_flops_are_2mnk():
    T, b, C = 7, 3, 5
    s = prefill(TINY, TOY, T, batch=b, context=C)
    N = b * T
    assert op(s, "qkv_proj") == 2 * N * 8 * (2 + 2 * 1) * 4 * 2      # m=N, k=h, n=(q+2kv)*hd
    assert op(s, "o_proj") == 2 * N * (2 * 4) * 8 * 2
    assert op(s, "ffn") == 2 * N * 8 * 16 * 3 * 2                    # gated: 3 matrices
    assert op(s, "lm_head") == 2 * b * 8 * 10                        # last token only
    assert op(s, "embedding") == 0
    pairs = b * (T * C + T * (T + 1) / 2)                            # causal chunk over context
    assert op(s, "attention") == 2 * pairs * 2 * (4 + 4) * 2          # QK^T and PV, 2 heads


def test_linear_layer_bytes_by_hand():
    s = prefill(TINY, TOY, 1, batch=1)
    # weights read once (bf16) + activations in and out (bf16)
    assert op(s, "ffn", "bytes") == 2 * (3 * 8 * 16 * 2 + 1 * (2 * 8 + 3 * 16) * 2)
    assert op(s, "o_proj", "bytes") == 2 * (8 * 8 * 2 + (8 + 8) * 2)


def test_operator_time_is_max_of_roofs():
    s = prefill(TINY, TOY, 100, batch=4)
    ds = s.breakdown
    for name in ("qkv_proj", "attention", "o_proj", "ffn", "lm_head"):
        f, b, t = (float(ds[v].sel(operator=name)) for v in ("flops", "bytes", "time"))
        assert t == pytest.approx(max(f / 1e15, b / 1e12), rel=1e-12)


def test_decode_attention_over_mean_context_is_exact():
    exact = decode_step(TINY, TOY, contexts=[10, 20, 30, 40])
    mean = decode_step(TINY, TOY, 4, 25)
    assert op(exact, "attention") == op(mean, "attention")
    assert exact.total == pytest.approx(mean.total, rel=1e-12)


@pytest.mark.parametrize("name", DENSE)
def test_prefill_flops_about_2_params_tokens(name):
    m = models.load(name)
    T = 128
    s = prefill(m, H100, T)
    b = m.param_breakdown()
    matmul_params = m.param_count() - b["embedding"] - b["head"]  # head runs on 1 token
    assert float(s.breakdown.flops.sum()) == pytest.approx(2 * matmul_params * T, rel=0.02)


def test_mixed_step_flops_add_and_weights_are_read_once():
    m = models.load("llama-3.1-8b")
    p = prefill(m, H100, 512, context=1024)
    d = decode_step(m, H100, 32, 2000)
    x = mixed_step(m, H100, prefill_tokens=512, prefill_context=1024, decode_batch=32,
                   decode_context=2000)
    assert float(x.breakdown.flops.sum()) == pytest.approx(
        float(p.breakdown.flops.sum() + d.breakdown.flops.sum()), rel=1e-12)
    assert float(x.breakdown.bytes.sum()) < float(p.breakdown.bytes.sum() + d.breakdown.bytes.sum())
    assert x.total < p.total + d.total


def test_mixed_step_reduces_to_prefill_and_decode():
    m = models.load("llama-3.1-8b")
    p = prefill(m, H100, 256, batch=2, context=100)
    x = mixed_step(m, H100, prefill_tokens=256, prefill_batch=2, prefill_context=100)
    assert x.total == pytest.approx(p.total, rel=1e-12)
    d = decode_step(m, H100, 16, 300)
    x = mixed_step(m, H100, prefill_tokens=0, decode_batch=16, decode_context=300)
    assert x.total == pytest.approx(d.total, rel=1e-12)


# ----------------------------------------------------------------------- regimes


@pytest.mark.parametrize("name", DENSE)
def test_decode_batch_1_is_memory_bound_on_weights(name):
    m = models.load(name)
    s = decode_step(m, H100, 1, 16)
    ds = s.breakdown
    for o in ("qkv_proj", "o_proj", "ffn", "lm_head"):
        assert ds.bound.sel(operator=o).item() == "memory"
    read = m.weight_bytes("bf16") - 2 * m.param_breakdown()["embedding"]  # table is gathered
    expected = read / (H100.memory_bandwidth * H100.memory_efficiency)
    assert s.total == pytest.approx(expected, rel=0.02)


def test_large_batch_decode_ffn_is_compute_bound():
    s = decode_step(models.load("llama-3.1-8b"), H100, 2048, 100)
    assert s.breakdown.bound.sel(operator="ffn").item() == "compute"


def test_long_prefill_is_compute_bound():
    s = prefill(models.load("llama-3.1-8b"), H100, 4096)
    ds = s.breakdown
    assert ds.bound.sel(operator="ffn").item() == "compute"
    assert ds.bound.sel(operator="attention").item() == "compute"


def test_sliding_window_caps_attention():
    m = models.load("mistral-7b")
    a = decode_step(m, H100, 8, 5000)
    b = decode_step(m, H100, 8, 20000)
    assert op(a, "attention") == op(b, "attention")
    assert op(a, "attention", "bytes") == op(b, "attention", "bytes")
    c = decode_step(m, H100, 8, 2000)
    assert op(c, "attention") < op(a, "attention")
    # chunk pairs: sum over the chunk of min(position + 1, window)
    T, C, w = 1000, 3500, 4096
    s = prefill(m, H100, T, context=C)
    pairs = sum(min(C + i, w) for i in range(1, T + 1))
    assert op(s, "attention") == pytest.approx(2 * pairs * 32 * 256 * 32, rel=1e-12)


def test_moe_distinct_experts():
    assert distinct_experts(8, 2, 0) == 0
    assert distinct_experts(8, 2, 1) == pytest.approx(2)
    assert distinct_experts(256, 8, 10_000) == pytest.approx(256)
    hits = distinct_experts(256, 8, np.arange(0, 200))
    assert np.all(np.diff(hits) > 0)
    # Monte Carlo check of the closed form: 64 tokens, top-8 of 256
    rng = np.random.default_rng(0)
    sims = [len({e for _ in range(64) for e in rng.choice(256, 8, replace=False)})
            for _ in range(400)]
    assert np.mean(sims) == pytest.approx(float(distinct_experts(256, 8, 64)), rel=0.01)


def test_moe_decode_batch_1_reads_active_experts_only():
    m = models.load("mixtral-8x7b")
    s = decode_step(m, H100, 1, 16)
    read = op(s, "moe", "bytes")
    expert = 3 * 4096 * 14336 * 2
    assert read == pytest.approx(32 * 2 * expert, rel=0.01)
    big = decode_step(m, H100, 256, 16)
    assert op(big, "moe", "bytes") == pytest.approx(32 * 8 * expert, rel=0.03)  # + activations


def test_mla_decode_kv_and_tp():
    m = models.load("deepseek-v3")
    B, C = 16, 4000
    s1 = decode_step(m, H100, B, C, tp=8, weight_precision="fp8")
    # latent read per layer and rank: B * (C+1) tokens * 576 values * 2 B, not split by tp
    lat_read = 61 * B * (C + 1) * 576 * 2
    assert op(s1, "attention", "bytes") > lat_read
    s16 = decode_step(m, H100, B, C, tp=16, weight_precision="fp8")
    assert op(s16, "attention", "bytes") > lat_read
    # absorbed form: per pair and layer 2*heads*(576 + 512) FLOPs
    pairs = B * (C + 1)
    assert op(s1, "attention") >= 61 * 2 * pairs * 16 * (576 + 512)


# ----------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(ALL_DECODERS + ["e5-base-v2"]),
       tokens=st.integers(1, 2000), extra=st.integers(0, 2000),
       batch=st.integers(1, 64), more=st.integers(0, 64), tp=st.sampled_from([1, 8]))
def test_prefill_time_monotone_in_tokens_and_batch(name, tokens, extra, batch, more, tp):
    m = models.load(name)
    tp = tp if roofline.valid_tp(m, tp) else 1
    tokens = min(tokens, m.max_context)
    t2 = min(tokens + extra, m.max_context)
    base = prefill(m, H100, tokens, batch=batch, tp=tp).total
    assert prefill(m, H100, t2, batch=batch, tp=tp).total >= base
    assert prefill(m, H100, tokens, batch=batch + more, tp=tp).total >= base


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(ALL_DECODERS), batch=st.integers(1, 512), more=st.integers(0, 512),
       context=st.integers(0, 30000), extra=st.integers(0, 30000), tp=st.sampled_from([1, 2, 8]))
def test_decode_time_monotone_in_batch_and_context(name, batch, more, context, extra, tp):
    m = models.load(name)
    tp = tp if roofline.valid_tp(m, tp) else 1
    c1 = min(context, m.max_context - 1)
    c2 = min(context + extra, m.max_context - 1)
    base = decode_step(m, H100, batch, c1, tp=tp).total
    assert decode_step(m, H100, batch + more, c1, tp=tp).total >= base
    assert decode_step(m, H100, batch, c2, tp=tp).total >= base


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(1, 4096), batch=st.integers(1, 32), context=st.integers(0, 8192))
def test_breakdown_sums_to_total(tokens, batch, context):
    m = models.load("mixtral-8x7b")
    s = prefill(m, H100, tokens, batch=batch, context=context, tp=2, pp=2, overhead=1e-3)
    assert float(s.breakdown.time.sum()) == pytest.approx(s.total, rel=1e-12)
    assert float(s.breakdown.total) == pytest.approx(s.total, rel=1e-12)


def test_vectorised_matches_scalar_and_names_dims():
    m = models.load("llama-3.1-8b")
    tokens = np.array([16, 256, 4096])
    batch = np.array([1, 4])[:, None]
    s = prefill(m, H100, tokens, batch=batch)
    assert s.total.shape == (2, 3)
    ds = s.breakdown
    assert ds.time.dims == ("operator", "batch", "tokens")
    np.testing.assert_allclose(ds.time.sum("operator").values, s.total, rtol=1e-12)
    for i, b in enumerate([1, 4]):
        for j, t in enumerate(tokens):
            assert s.total[i, j] == pytest.approx(prefill(m, H100, int(t), batch=b).total, rel=1e-12)
    assert list(ds.operator.values) == list(OPERATORS)
    assert ds.time.attrs["units"] == "s" and ds.flops.attrs["units"] == "FLOP"
    assert ds.bytes.attrs["units"] == "B"


def test_dataarray_inputs_keep_their_dims():
    m = models.load("llama-3.1-8b")
    batch = xr.DataArray([1, 8, 64], dims="batch", coords={"batch": [1, 8, 64]})
    ctx = xr.DataArray([128, 4096], dims="ctx", coords={"ctx": [128, 4096]})
    s = decode_step(m, H100, batch, ctx)
    assert isinstance(s.total, xr.DataArray)
    assert set(s.total.dims) == {"batch", "ctx"}
    assert float(s.total.sel(batch=8, ctx=4096)) == pytest.approx(decode_step(m, H100, 8, 4096).total)
    assert s.breakdown.time.sel(operator="attention", batch=64).dims == ("ctx",)


# ----------------------------------------------------------------------- parallelism


def test_tp_reduces_compute_and_adds_communication():
    m = models.load("llama-3.1-70b")
    one = prefill(m, H100, 2048, tp=1)
    eight = prefill(m, H100, 2048, tp=8)
    for o in ("qkv_proj", "o_proj", "ffn"):
        assert op(eight, o, "compute_time") == pytest.approx(op(one, o, "compute_time") / 8,
                                                             rel=0.15)
    assert op(one, "tp_comm", "time") == 0
    assert op(eight, "tp_comm", "time") > 0
    assert eight.breakdown.bound.sel(operator="tp_comm").item() == "communication"
    assert eight.total < one.total


def test_tp_all_reduce_by_hand():
    T, tp = 10, 2
    s = prefill(TINY, TOY, T, tp=tp)
    msg = T * 8 * 2                           # tokens * hidden * bf16
    n = 2 * 2 + 1                             # two per layer plus the embedding
    ring = n * 2 * (tp - 1) / tp * msg
    gather = (tp - 1) / tp * 1 * 10 * 4       # fp32 logits of one row
    t = (ring + gather) / 1e11 + n * 2 * (tp - 1) * 1e-6 + (tp - 1) * 1e-6
    assert op(s, "tp_comm", "bytes") == pytest.approx(ring + gather)
    assert op(s, "tp_comm", "time") == pytest.approx(t)


def test_pp_adds_sends_and_pipeline_interval():
    m = models.load("llama-3.1-70b")
    a = decode_step(m, H100, 64, 1000, tp=4)
    b = decode_step(m, H100, 64, 1000, tp=4, pp=2)
    assert op(b, "pp_comm", "time") > 0
    assert float(b.breakdown.flops.sum()) == pytest.approx(float(a.breakdown.flops.sum()))
    assert b.stage_interval < b.total
    assert a.stage_interval == a.total


def test_ep_replaces_moe_all_reduce_with_all_to_all():
    m = models.load("mixtral-8x7b")
    tp_only = prefill(m, H100, 1024, tp=8)
    ep = prefill(m, H100, 1024, tp=8, ep=8)
    assert op(ep, "ep_comm", "time") > 0 and op(tp_only, "ep_comm", "time") == 0
    assert op(ep, "tp_comm", "bytes") < op(tp_only, "tp_comm", "bytes")
    assert op(ep, "moe") == pytest.approx(op(tp_only, "moe"))


def test_overhead_is_added_once():
    m = models.load("llama-3.1-8b")
    assert decode_step(m, H100, 8, 100, overhead=2e-3).total == pytest.approx(
        decode_step(m, H100, 8, 100).total + 2e-3)


def test_efficiencies_are_parameters():
    m = models.load("llama-3.1-8b")
    a = decode_step(m, H100, 1, 100, memory_efficiency=0.5)
    b = decode_step(m, H100, 1, 100, memory_efficiency=1.0)
    assert a.total == pytest.approx(2 * b.total, rel=1e-9)
    c = prefill(m, H100, 8192, matmul_efficiency=0.35)
    d = prefill(m, H100, 8192, matmul_efficiency=0.7)
    assert c.total > 1.8 * d.total


def test_fp8_weights_halve_decode_time():
    m = models.load("llama-3.1-8b")
    a = decode_step(m, H100, 1, 0, weight_precision="bf16")
    b = decode_step(m, H100, 1, 0, weight_precision="fp8")
    assert b.total == pytest.approx(a.total / 2, rel=0.02)


def test_encoder_prefill_is_bidirectional():
    m = models.load("e5-base-v2")
    s = prefill(m, H100, 100, batch=2)
    assert op(s, "attention") == 12 * 2 * (2 * 100 * 100) * 12 * (64 + 64)
    assert op(s, "lm_head") == 2 * 2 * 768 * 768   # pooler, one row per sequence


# ----------------------------------------------------------------------- errors


def test_tp_must_split_heads():
    with pytest.raises(ValidationError, match=r"tp: got 3 for llama-3.1-8b \(32 query heads, 8 KV "
                                              r"heads\); valid: one of \[1, 2, 4, 8, 16, 32\]"):
        decode_step("llama-3.1-8b", H100, 1, 10, tp=3)


def test_ep_rules():
    with pytest.raises(ValidationError, match=r"ep: got 2 for llama-3.1-8b, which has no experts"):
        prefill("llama-3.1-8b", H100, 10, tp=2, ep=2)
    with pytest.raises(ValidationError, match=r"valid: 1 or ep == tp"):
        prefill("mixtral-8x7b", H100, 10, tp=4, ep=2)


def test_bad_counts():
    with pytest.raises(ValidationError, match=r"tokens: got 0.0; valid: finite numbers >= 1"):
        prefill("llama-3.1-8b", H100, np.array([5, 0]))
    with pytest.raises(ValidationError, match=r"context: got -1.0"):
        decode_step("llama-3.1-8b", H100, 4, -1)
    with pytest.raises(ValidationError, match=r"valid: at most max_context = 4096"):
        prefill("llama-2-7b", H100, 4000, context=100)


def test_encoder_rejects_decode_and_context():
    with pytest.raises(ValidationError, match=r"e5-base-v2 is an encoder; valid: a decoder"):
        decode_step("e5-base-v2", H100, 1, 10)
    with pytest.raises(ValidationError, match=r"encoder e5-base-v2; valid: 0"):
        prefill("e5-base-v2", H100, 10, context=5)


def test_missing_precision_on_device():
    with pytest.raises(ValidationError, match=r"device A100-80GB-SXM has no peak_flops for 'fp8'"):
        prefill("llama-3.1-8b", A100, 10, weight_precision="fp8")
    # weight-only fp8 on A100: compute in bf16
    prefill("llama-3.1-8b", A100, 10, weight_precision="fp8", compute_precision="bf16")


def test_tp_needs_a_link():
    with pytest.raises(ValidationError, match=r"device nolink has no scale_up_bandwidth"):
        prefill(TINY, NO_LINK, 10, tp=2)
    s = prefill(TINY, NO_LINK, 10, tp=2, link_bandwidth=5e10)
    assert op(s, "tp_comm", "time") > 0
    assert s.breakdown.attrs["link_latency_s"] == 0.0


def test_device_like_duck_type():
    class Fake:
        name = "fake"
        peak_flops = {"bf16": 1e15}
        memory_bytes = 80e9
        memory_bandwidth = 1e12
        scale_up_bandwidth = None
        scale_up_latency = None
        matmul_efficiency = 1.0
        memory_efficiency = 1.0

    assert isinstance(Fake(), roofline.DeviceLike)
    assert prefill(TINY, Fake(), 10).total == pytest.approx(prefill(TINY, TOY, 10).total)
    with pytest.raises(ValidationError, match=r"device: object has no 'peak_flops'"):
        prefill(TINY, object(), 10)


# ----------------------------------------------------------------------- memory


def test_weights_per_device():
    m = models.load("llama-3.1-70b")
    assert weight_bytes_per_device(m) == m.weight_bytes()
    two = weight_bytes_per_device(m, tp=2)
    assert two == pytest.approx(m.weight_bytes() / 2, rel=0.001)
    pp = weight_bytes_per_device(m, pp=4)
    assert m.weight_bytes() / 4 < pp < m.weight_bytes() / 4 * 1.05


def test_stage_split_like_vllm():
    # vLLM get_pp_indices: layers // pp each, the remainder to the stages before the last
    assert [len(r) for r in stage_layers(61, 4)] == [15, 15, 16, 15]
    assert [len(r) for r in stage_layers(80, 3)] == [27, 27, 26]
    assert [len(r) for r in stage_layers(80, 1)] == [80]


def test_kv_per_device():
    m = models.load("llama-3.1-70b")
    assert kv_bytes_per_token_per_device(m, tp=8) == m.kv_bytes_per_token() / 8
    assert kv_bytes_per_token_per_device(m, tp=16) == m.kv_bytes_per_token() / 8   # replicated
    dsv3 = models.load("deepseek-v3")
    assert kv_bytes_per_token_per_device(dsv3, tp=8) == dsv3.kv_bytes_per_token()  # latent whole


def test_memory_fit_llama_8b_on_h100():
    m = models.load("llama-3.1-8b")
    fit = memory_fit(m, H100, memory_utilization=0.9)
    assert fit.budget_bytes == pytest.approx(0.9 * 80e9)
    left = fit.budget_bytes - fit.weight_bytes - fit.workspace_bytes - fit.reserved_bytes
    assert fit.kv_cache_bytes == pytest.approx(left)
    per_block = fit.kv_bytes_per_token * 16
    assert fit.max_kv_tokens == int(left // per_block) * 16
    assert fit.max_batch(4096) == fit.kv_blocks // 256
    b = fit.max_batch(np.array([512, 2048, 8192]))
    assert np.all(np.diff(b) < 0)
    fp8 = memory_fit(m, H100, kv_precision="fp8")
    assert fp8.max_kv_tokens == pytest.approx(2 * fit.max_kv_tokens, rel=0.001)


def test_does_not_fit_says_by_how_much_and_suggests_tp():
    m = models.load("llama-3.1-70b")
    with pytest.raises(ValidationError, match=r"llama-3.1-70b does not fit on H100-SXM with tp=1, "
                                              r"pp=1, bf16 weights: .* short by 72\.\d GB; valid: "
                                              r"tp=4 \(weights 35\.3 GB per device\)"):
        memory_fit(m, H100)
    assert memory_fit(m, H100, tp=4).max_kv_tokens > 0
    with pytest.raises(ValidationError, match=r"short by .* GB; valid: tp=16"):
        memory_fit("deepseek-v3", H100, tp=8, weight_precision="fp8")


def test_workspace_grows_with_batched_tokens_and_shrinks_with_tp():
    m = models.load("llama-3.1-8b")
    assert workspace_bytes(m, max_batched_tokens=16384) > workspace_bytes(m)
    assert workspace_bytes(m, tp=4) < workspace_bytes(m)


def test_encoder_memory_fit():
    fit = memory_fit("e5-base-v2", H100)
    assert fit.max_kv_tokens == 0 and fit.kv_bytes_per_token == 0
    assert fit.max_batch(512) == 8192 // 512


def test_sliding_window_caps_kv_per_sequence():
    fit = memory_fit("mistral-7b", H100)
    assert fit.max_batch(32000) == fit.max_batch(4096)
