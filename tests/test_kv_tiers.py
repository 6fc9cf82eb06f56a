"""Tests of hermes_qn.kv_tiers: KV bytes, fetch vs recompute, crossover."""

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_qn import hardware, kv_tiers, models, roofline
from hermes_qn.errors import ValidationError

H100 = hardware.load_device("H100-SXM")
NVME = hardware.load_memory_tier("NVMe-PCIe5")
L8 = models.load("llama-3.1-8b")


def test_doctests():
    failures, _ = doctest.testmod(kv_tiers)
    assert failures == 0


def test_kv_bytes_by_hand():
    # llama-3.1-8b: 32 layers * 2 * 8 KV heads * 128 * 2 B = 131,072 B per token
    assert kv_tiers.kv_bytes(L8, 1) == 131072.0
    assert kv_tiers.kv_bytes(L8, 100, kv_precision="fp8") == 100 * 65536.0
    # tp=2: 4 heads per rank; tp=8: 1 head; tp=16 would replicate (not valid for 32 q heads? it is)
    assert kv_tiers.kv_bytes(L8, 1, tp=2) == 65536.0
    assert kv_tiers.kv_bytes(L8, 1, tp=8) == 16384.0
    assert kv_tiers.kv_bytes(L8, 1, tp=16) == 16384.0  # one head per rank, replicated
    np.testing.assert_allclose(kv_tiers.kv_bytes(L8, [0, 10]), [0, 1310720.0])


def test_kv_bytes_mla_not_split():
    ds = models.load("deepseek-v3")
    assert kv_tiers.kv_bytes(ds, 1, tp=8) == ds.kv_bytes_per_token("bf16")


def test_fetch_time_by_hand():
    t = kv_tiers.fetch_time(L8, NVME, 1000, latency=100e-6)
    assert t == pytest.approx(100e-6 + 131072e3 / 13e9)
    assert kv_tiers.fetch_time(L8, NVME, 0, latency=100e-6) == 0.0


def test_recompute_is_prefill():
    assert kv_tiers.recompute_time(L8, H100, 2048) == pytest.approx(
        roofline.prefill(L8, H100, 2048).total)
    np.testing.assert_allclose(kv_tiers.recompute_time(L8, H100, [0, 2048]),
                               [0.0, roofline.prefill(L8, H100, 2048).total])


def test_expected_fetch_time():
    dram = hardware.load_memory_tier("DDR5-socket")
    n = 4096
    f1 = kv_tiers.fetch_time(L8, dram, n, latency=1e-6)
    f2 = kv_tiers.fetch_time(L8, NVME, n, latency=1e-4)
    rc = kv_tiers.recompute_time(L8, H100, n)
    e = kv_tiers.expected_fetch_time(L8, [dram, NVME], [0.5, 0.3], n, device=H100,
                                     latencies=[1e-6, 1e-4])
    assert e == pytest.approx(0.5 * f1 + 0.3 * f2 + 0.2 * rc)
    e = kv_tiers.expected_fetch_time(L8, [dram, NVME], [0.5, 0.5], [n, 2 * n],
                                     latencies=[1e-6, 1e-4])
    assert e.shape == (2,)


@settings(max_examples=30, deadline=None)
@given(n=st.floats(1, 60000), f=st.floats(1.001, 2.0))
def test_times_grow_with_reused_tokens(n, f):
    m = min(n * f, 128000)
    assert kv_tiers.fetch_time(L8, NVME, m, latency=1e-4) >= kv_tiers.fetch_time(
        L8, NVME, n, latency=1e-4)
    assert kv_tiers.recompute_time(L8, H100, m) >= kv_tiers.recompute_time(L8, H100, n)


@pytest.mark.parametrize("bandwidth", [2e9, 3e9, 4e9])
def test_crossover_times_equal(bandwidth):
    x = kv_tiers.crossover(L8, H100, bandwidth=bandwidth, latency=1e-4)
    assert x.status == "crossover"
    f = kv_tiers.fetch_time(L8, None, x.tokens, bandwidth=bandwidth, latency=1e-4)
    r = kv_tiers.recompute_time(L8, H100, x.tokens)
    assert f == pytest.approx(r, rel=1e-8)
    assert x.time == pytest.approx(f, rel=1e-8)
    # above it fetching wins, just below recompute does
    assert kv_tiers.fetch_time(L8, None, x.tokens * 1.05, bandwidth=bandwidth, latency=1e-4) < \
        kv_tiers.recompute_time(L8, H100, x.tokens * 1.05)
    assert kv_tiers.fetch_time(L8, None, x.tokens * 0.95, bandwidth=bandwidth, latency=1e-4) > \
        kv_tiers.recompute_time(L8, H100, x.tokens * 0.95)


def test_crossover_falls_with_bandwidth():
    a = kv_tiers.crossover(L8, H100, bandwidth=2e9, latency=1e-4).tokens
    b = kv_tiers.crossover(L8, H100, bandwidth=4e9, latency=1e-4).tokens
    assert b < a


def test_crossover_tokens_vectorised():
    bws = np.array([2e9, 3e9, 400e9])
    t = kv_tiers.crossover_tokens(L8, H100, bandwidth=bws[:, None], latency=[1e-4, 1e-3])
    assert t.shape == (3, 2)
    assert t[0, 0] == pytest.approx(kv_tiers.crossover(L8, H100, bandwidth=2e9, latency=1e-4).tokens)
    assert t[2, 0] == 1.0
    assert np.all(np.diff(t[:, 0]) < 0)  # faster tier, shorter crossover


def test_crossover_edge_cases():
    x = kv_tiers.crossover(L8, H100, bandwidth=400e9, latency=1e-6)
    assert x.status == "fetch_always" and x.tokens == 1.0
    x = kv_tiers.crossover(L8, H100, bandwidth=1e8, latency=1e-3)
    assert x.status == "recompute_always" and x.tokens == float("inf")


def test_errors():
    with pytest.raises(ValidationError, match=r"NVMe-PCIe5 has no latency.*valid: pass latency="):
        kv_tiers.fetch_time(L8, NVME, 100)
    with pytest.raises(ValidationError, match=r"reused_tokens: got -1.0; valid: finite numbers >= 0"):
        kv_tiers.kv_bytes(L8, -1)
    with pytest.raises(ValidationError, match=r"tp: got 3 for llama-3.1-8b.*valid: one of"):
        kv_tiers.kv_bytes(L8, 1, tp=3)
    with pytest.raises(ValidationError, match=r"'e5-base-v2' is an encoder.*valid: a decoder"):
        kv_tiers.kv_bytes("e5-base-v2", 1)
    with pytest.raises(ValidationError, match=r"hit_rates: .*valid: each in \[0, 1\], summing to at "
                                              r"most 1"):
        kv_tiers.expected_fetch_time(L8, [NVME, NVME], [0.7, 0.7], 10, latencies=[0, 0])
    with pytest.raises(ValidationError, match=r"device: hit_rates sum to 0.5 < 1.*valid: pass device="):
        kv_tiers.expected_fetch_time(L8, [NVME], [0.5], 10, latencies=[0])
    with pytest.raises(ValidationError, match=r"max_tokens: got 1e\+06 .*valid: 1 to max_context"):
        kv_tiers.crossover(L8, H100, NVME, latency=0, max_tokens=1e6)


def test_fetch_time_moves_the_whole_tp_group_like_the_scenario_stages():
    # every rank's shard crosses the one tier: the same bytes as evaluate's KV fetch stage
    from hermes_qn.scenario import TierShare
    from hermes_qn.stage_times import kv_fetch_time
    tier = hardware.load("DDR5-socket")
    for tp in (1, 2, 4):
        secs, _ = kv_fetch_time(TierShare("DDR5-socket", 1.0), L8, 4096, tp)
        assert kv_tiers.fetch_time(L8, tier, 4096, tp=tp, latency=0.0) == pytest.approx(secs)
    assert kv_tiers.fetch_time(L8, tier, 4096, tp=4, latency=0.0) == pytest.approx(
        4 * kv_tiers.kv_bytes(L8, 4096, tp=4) / tier.bandwidth)
