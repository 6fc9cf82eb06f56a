"""Tests of hermes_qn.rag: embedding, vector-search cost model, rerank."""

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_qn import hardware, rag, roofline
from hermes_qn.errors import ValidationError

CPU = hardware.load_device("EPYC-9654")
GPU = hardware.load_device("H100-SXM")


def test_doctests():
    failures, _ = doctest.testmod(rag)
    assert failures == 0


# ---------------------------------------------------------------- hand-computed counts


def test_flat_counts_by_hand():
    # N=1000, d=8, nq=2, k=1, fp32: 2000 distances, 2*2000*8 FLOPs,
    # bytes = 1000*8*4 (db) + 4*1000 (norms) + 2*8*4 (queries) + 2*1*12 (results)
    r = rag.search("flat", 1000, 8, device=CPU, batch=2, k=1)
    assert r.distances == 2000
    assert r.flops == 32000
    assert r.bytes == 32000 + 4000 + 64 + 24
    assert r.index_bytes == 36000


def test_flat_gpu_counts_distance_matrix():
    cpu = rag.search("flat", 1000, 8, device=CPU, batch=2, k=1)
    gpu = rag.search("flat", 1000, 8, device=GPU, batch=2, k=1)
    assert gpu.bytes - cpu.bytes == 2 * 4 * 2000  # fp32 matrix written and read


def test_ivf_flat_counts_by_hand():
    # N=1000, nlist=10, nprobe=2, d=4, nq=1, k=1: 10 coarse + 200 candidates
    r = rag.search("ivf_flat", 1000, 4, device=CPU, nlist=10, nprobe=2, k=1)
    assert r.distances == 210
    assert r.flops == 2 * 210 * 4
    assert r.bytes == 10 * 4 * 4 + 200 * 4 * 4 + 4 * 4 + 12


def test_ivf_pq_counts_by_hand():
    # N=1000, nlist=10, nprobe=2, d=8, m=2, 8 bits, LUT cost 1:
    # coarse 2*10*8 = 160; LUTs 2*8*256 + 2*2*256 = 5120; scan 200*2*1 = 400
    r = rag.search("ivf_pq", 1000, 8, device=CPU, nlist=10, nprobe=2, pq_m=2, k=1,
                   lut_op_cost=1.0)
    assert r.distances == 210
    assert r.flops == 160 + 5120 + 400
    assert r.bytes == 10 * 8 * 4 + 200 * 2 + 8 * 4 + 12


def test_hnsw_counts_by_hand():
    # M=4, ef=10, N=16: bottom 10*8 = 80 distances, upper 4*log(16)/log(4) = 8
    r = rag.search("hnsw", 16, 16, device=CPU, hnsw_m=4, ef_search=10, k=1)
    assert r.distances == pytest.approx(16.0)  # capped at N
    r = rag.search("hnsw", 4096, 16, device=CPU, hnsw_m=4, ef_search=10, k=1)
    assert r.distances == pytest.approx(80 + 4 * 6)
    assert r.flops == pytest.approx(2 * 104 * 16)


def test_cpu_time_is_roofline_max():
    r = rag.search("ivf_flat", 1e6, 128, device=CPU, nlist=1024, nprobe=8, batch=96)
    peak = CPU.peak_flops["fp32"] * CPU.matmul_efficiency
    assert r.compute_time == pytest.approx(r.flops / peak)
    assert r.memory_time == pytest.approx(r.bytes / (CPU.memory_bandwidth * CPU.memory_efficiency))
    assert r.time == pytest.approx(max(r.compute_time, r.memory_time))
    assert r.per_query == pytest.approx(r.time / 96)
    assert r.throughput == pytest.approx(96 / r.time)


def test_gpu_time_is_sum_of_kernels_by_hand():
    # flat, N=1e6, d=128, nq=1000, k=1 on the H100: GEMM kernel (FLOPs; database, norms,
    # queries and the fp32 distance matrix written) then k-selection (matrix read, results)
    peak = GPU.peak_flops["fp32"] * GPU.matmul_efficiency
    bw = GPU.memory_bandwidth * GPU.memory_efficiency
    r = rag.search("flat", 1e6, 128, device=GPU, batch=1000, k=1)
    gemm = max(2 * 1e9 * 128 / peak, (1e6 * 128 * 4 + 4e6 + 1000 * 128 * 4 + 4e9) / bw)
    select = (4e9 + 1000 * 12) / bw
    assert r.time == pytest.approx(gemm + select + 20e-6)
    assert r.time > max(r.compute_time, r.memory_time) + 20e-6


def test_ivf_pq_gpu_bytes_by_hand():
    # N=1000, nlist=10, nprobe=2, d=8, m=2, 8 bits, nq=1, k=1, fp16 tables on a GPU:
    # centroids 10*8*4 + query 8*4 + coarse matrix written and read 2*4*10
    # + codes 200*2 + tables 2 transfers * 2 probes * 2*256 entries * 2 B
    # + candidate distances written and read 2*4*200 + results 12
    r = rag.search("ivf_pq", 1000, 8, device=GPU, nlist=10, nprobe=2, pq_m=2, k=1,
                   lut_bytes=2)
    assert r.bytes == 320 + 32 + 80 + 400 + 2 * 2 * 512 * 2 + 1600 + 12
    cpu = rag.search("ivf_pq", 1000, 8, device=CPU, nlist=10, nprobe=2, pq_m=2, k=1,
                     lut_bytes=2)
    assert cpu.bytes == 320 + 32 + 400 + 12  # tables stay in cache on a CPU


def test_lut_bytes_grow_gpu_time_only():
    kw = dict(nlist=4096, nprobe=64, pq_m=64, batch=1000)
    a = rag.search("ivf_pq", 1e7, 128, device=GPU, lut_bytes=2, **kw)
    b = rag.search("ivf_pq", 1e7, 128, device=GPU, **kw)  # fp32 default
    assert b.bytes - a.bytes == pytest.approx(2 * 1000 * 64 * 64 * 256 * 2)
    assert b.time > a.time
    c = rag.search("ivf_pq", 1e7, 128, device=CPU, lut_bytes=2, **kw)
    assert c.time == rag.search("ivf_pq", 1e7, 128, device=CPU, **kw).time


def test_hnsw_latency_floor_by_hand():
    # M=16, ef=64, N=16**5: 5 upper levels; 2*(64+5) round trips per query
    r = rag.search("hnsw", 16.0 ** 5, 128, device=GPU, hnsw_m=16, ef_search=64, k=1)
    assert r.latency_time == pytest.approx(2 * 69 * 500e-9)
    assert r.bound == "latency"
    assert r.time == pytest.approx(r.latency_time + 20e-6)
    off = rag.search("hnsw", 16.0 ** 5, 128, device=GPU, hnsw_m=16, ef_search=64, k=1,
                     memory_latency=0)
    assert off.latency_time == 0 and off.bound == "memory" and off.time < r.time
    # a CPU runs min(cores, nq) queries at once: 200 queries on 96 cores
    c = rag.search("hnsw", 16.0 ** 5, 128, device=CPU, hnsw_m=16, ef_search=64, k=1,
                   batch=200)
    assert c.latency_time == pytest.approx(200 / 96 * 2 * 69 * 100e-9)
    # other indexes have no floor
    assert rag.search("flat", 1e6, 128, device=GPU).latency_time == 0


@settings(max_examples=30, deadline=None)
@given(lat=st.floats(0, 1e-5), f=st.floats(1.01, 10), batch=st.integers(1, 5000),
       gpu=st.booleans())
def test_hnsw_time_grows_with_latency(lat, f, batch, gpu):
    dev = GPU if gpu else CPU
    a = rag.search("hnsw", 1e7, 96, device=dev, batch=batch, memory_latency=lat)
    b = rag.search("hnsw", 1e7, 96, device=dev, batch=batch, memory_latency=lat * f + 1e-9)
    assert b.time >= a.time
    assert b.latency_time > a.latency_time


def test_cpu_uses_min_cores_batch():
    one = rag.search("ivf_flat", 1e6, 128, device=CPU, nlist=1024, nprobe=8, batch=1)
    many = rag.search("ivf_flat", 1e6, 128, device=CPU, nlist=1024, nprobe=8, batch=96)
    # 96 queries run on 96 cores in about the time of one (the centroids are read once
    # per batch, so a little less)
    assert 0.5 * one.time < many.time <= one.time
    half = rag.search("ivf_flat", 1e6, 128, device=CPU, nlist=1024, nprobe=8, batch=96, cores=48)
    assert half.time == pytest.approx(2 * many.time)


def test_vectorised_broadcast():
    r = rag.search("ivf_pq", np.array([1e5, 1e6])[:, None], 96, device=CPU, nlist=4096,
                   nprobe=np.array([1, 8, 64]), pq_m=16, batch=1000)
    assert r.time.shape == (2, 3)
    assert r.bound.shape == (2, 3)
    one = rag.search("ivf_pq", 1e6, 96, device=CPU, nlist=4096, nprobe=8, pq_m=16, batch=1000)
    assert r.time[1, 1] == pytest.approx(one.time)


def test_single_query_flat_is_memory_bound_big_batch_compute_bound():
    assert rag.search("flat", 1e6, 128, device=GPU).bound == "memory"
    assert rag.search("flat", 1e6, 128, device=GPU, batch=10000).bound == "compute"


# ---------------------------------------------------------------- monotonicity

_KW = {"flat": {}, "ivf_flat": {"nlist": 1024, "nprobe": 16},
       "ivf_pq": {"nlist": 1024, "nprobe": 16, "pq_m": 16}, "hnsw": {}}


@settings(max_examples=40, deadline=None)
@given(index=st.sampled_from(rag.INDEXES), n=st.floats(2e4, 1e9), f=st.floats(1.01, 100),
       batch=st.integers(1, 5000), gpu=st.booleans())
def test_time_grows_with_corpus(index, n, f, batch, gpu):
    dev = GPU if gpu else CPU
    a = rag.search(index, n, 128, device=dev, batch=batch, **_KW[index])
    b = rag.search(index, n * f, 128, device=dev, batch=batch, **_KW[index])
    assert b.time >= a.time
    assert b.bytes > a.bytes


@settings(max_examples=40, deadline=None)
@given(index=st.sampled_from(["ivf_flat", "ivf_pq"]), p=st.integers(1, 511),
       batch=st.integers(1, 5000), gpu=st.booleans())
def test_time_grows_with_nprobe(index, p, batch, gpu):
    dev = GPU if gpu else CPU
    kw = dict(_KW[index], nlist=512)
    a = rag.search(index, 1e7, 96, device=dev, batch=batch, **dict(kw, nprobe=p))
    b = rag.search(index, 1e7, 96, device=dev, batch=batch, **dict(kw, nprobe=p + 1))
    assert b.time > a.time


@settings(max_examples=30, deadline=None)
@given(ef=st.integers(1, 1000))
def test_hnsw_time_grows_with_ef(ef):
    a = rag.search("hnsw", 1e7, 96, device=CPU, ef_search=ef, k=1)
    b = rag.search("hnsw", 1e7, 96, device=CPU, ef_search=ef + 1, k=1)
    assert b.time > a.time


def test_pq_compresses_bytes():
    flat = rag.search("ivf_flat", 1e8, 128, device=CPU, nlist=4096, nprobe=64)
    pq = rag.search("ivf_pq", 1e8, 128, device=CPU, nlist=4096, nprobe=64, pq_m=16)
    assert pq.bytes < flat.bytes / 10
    assert pq.index_bytes < flat.index_bytes / 10


# ---------------------------------------------------------------- encoder stages


def test_embed_is_encoder_prefill():
    t = rag.embed("e5-base-v2", GPU, 128, batch=32).total
    assert t == pytest.approx(roofline.prefill("e5-base-v2", GPU, 128, batch=32).total)
    assert rag.embed("e5-base-v2", GPU, 256, batch=32).total > t


def test_rerank_is_prefill_of_pairs():
    t = rag.rerank("bge-reranker-base", GPU, 20, 200, query_tokens=30).total
    assert t == pytest.approx(roofline.prefill("bge-reranker-base", GPU, 230, batch=20).total)
    assert rag.rerank("bge-reranker-base", GPU, 40, 200, query_tokens=30).total > t


# ---------------------------------------------------------------- errors


def test_unknown_index():
    with pytest.raises(ValidationError, match=r"index 'ivf'.*valid: one of flat, ivf_flat"):
        rag.search("ivf", 1e6, 128, device=CPU)


def test_missing_ivf_params():
    with pytest.raises(ValidationError, match=r"nlist is required for index 'ivf_flat'"):
        rag.search("ivf_flat", 1e6, 128, device=CPU)
    with pytest.raises(ValidationError, match=r"pq_m is required"):
        rag.search("ivf_pq", 1e6, 128, device=CPU, nlist=10, nprobe=1)


def test_bad_values():
    with pytest.raises(ValidationError, match=r"nprobe: got 20.*valid: 1 <= nprobe <= nlist"):
        rag.search("ivf_flat", 1e6, 128, device=CPU, nlist=10, nprobe=20)
    with pytest.raises(ValidationError, match=r"corpus: got -1.0; valid: finite numbers >= 1"):
        rag.search("flat", -1, 128, device=CPU)
    with pytest.raises(ValidationError, match=r"pq_m: .*valid: pq_m dividing dim"):
        rag.search("ivf_pq", 1e6, 100, device=CPU, nlist=10, nprobe=1, pq_m=16)
    with pytest.raises(ValidationError, match=r"cores: got 200 for EPYC-9654 with 96 cores"):
        rag.search("flat", 1e6, 128, device=CPU, cores=200)
    with pytest.raises(ValidationError, match=r"cores: .*valid: None"):
        rag.search("flat", 1e6, 128, device=GPU, cores=4)


def test_new_parameter_errors():
    with pytest.raises(ValidationError, match=r"lut_bytes: got 0.0; valid: finite numbers > 0"):
        rag.search("ivf_pq", 1e6, 128, device=GPU, nlist=10, nprobe=1, pq_m=16, lut_bytes=0)
    with pytest.raises(ValidationError,
                       match=r"memory_latency: got -1.0; valid: finite numbers >= 0"):
        rag.search("hnsw", 1e6, 128, device=CPU, memory_latency=-1)


def test_device_errors():
    xeon = hardware.load_device("Xeon-8480+")
    with pytest.raises(ValidationError, match=r"no peak_flops for precision 'fp32'; valid: one of "
                                              r"bf16, int8"):
        rag.search("flat", 1e6, 128, device=xeon)
    assert rag.search("flat", 1e6, 128, device=xeon, precision="bf16", vector_bytes=2).time > 0
    with pytest.raises(ValidationError, match=r"is a tpu; valid: a cpu or gpu"):
        rag.search("flat", 1e6, 128, device=hardware.load_device("TPU-v5e"))


def test_encoder_required():
    with pytest.raises(ValidationError, match=r"'llama-2-7b' is a decoder; valid: an encoder"):
        rag.embed("llama-2-7b", GPU, 10)
    with pytest.raises(ValidationError, match=r"query_tokens \+ tokens = 600.*max_context = 512"):
        rag.rerank("bge-reranker-base", GPU, 10, 500, query_tokens=100)


def test_validation_script_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "validation" / "vector_search.py"
    spec = importlib.util.spec_from_file_location("vector_search_validation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.table()
    assert "| SIFT1M Flat, k=1 | Titan X | k=1 | 0.715 |" in text
    assert "| HNSW f32 x256, M=16, ef=64 | Graviton 3, 64 thr. |" in text
    assert text == mod.OUT.read_text(), "validation/vector_search.md is stale: rerun the script"
