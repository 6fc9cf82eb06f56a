"""Retrieval-augmented generation stages: embedding, vector search, rerank.

Three service-time models, each usable alone (every one is a station of a RAG
pipeline, see ``DESIGN.md``):

- :func:`embed` -- an encoder (e.g. ``e5-base-v2``) runs one forward pass over
  the query or the documents: :func:`hermes_qn.roofline.prefill` of an encoder.
- :func:`search` -- a vector index (``"flat"``, ``"ivf_flat"``, ``"ivf_pq"``,
  ``"hnsw"``) answers a batch of queries on a CPU or GPU
  :class:`~hermes_qn.hardware.Device`: distance computations, FLOPs and bytes
  scanned from the index parameters, then a roofline
  ``time = max(flops / (peak * eff_c), bytes / (bandwidth * eff_m)) + overheads``.
- :func:`rerank` -- a cross-encoder (e.g. ``bge-reranker-base``) scores ``k``
  (query, document) pairs: a prefill of ``k`` sequences.

Vector-search cost model (one batch of ``nq`` queries, ``N`` vectors of
dimension ``d``, ``e`` bytes per stored component, ``k`` results)
----------------------------------------------------------------------------
flat
    ``nq * N`` distances, ``2 * nq * N * d`` FLOPs (the ``-2 x.y`` GEMM; norms
    are precomputed). Bytes: the database once per batch (``N*d*e`` plus ``4*N``
    for norms) plus queries and results. On a GPU the ``nq x N`` fp32 distance
    matrix is written by the GEMM and read back by a separate k-selection
    kernel (FAISS GPU tiles the GEMM, then runs ``l2SelectMin``/``warpSelect``).
ivf_flat
    Coarse quantizer: ``nq * nlist`` distances (``2*d`` FLOPs each) and the
    centroids read once per batch; on a GPU it is a flat search, so its
    ``nq x nlist`` fp32 distance matrix is written and read too. Scan: each
    query visits ``nprobe`` lists of ``imbalance * N / nlist`` vectors on
    average (``imbalance >= 1`` is the ratio of mean visited list length to
    ``N / nlist``; uneven k-means lists make it about 1.1-1.3 in FAISS's logs),
    ``2*d`` FLOPs and ``d*e`` bytes per candidate; on a GPU also 8 bytes per
    candidate for the fp32 distance buffer written by the scan and read back by
    the k-selection pass (FAISS GPU IVF selects in two passes; ivf_pq too).
    Lists are **not** assumed to be shared between the queries of a batch
    (FAISS CPU runs queries independently): bytes scanned grow with ``nq``.
ivf_pq
    Coarse quantizer as above. Look-up tables: ``2 * d * 2**bits`` FLOPs per
    query (distances of the query sub-vectors to every sub-centroid) plus
    ``m * 2**bits`` additions per probed list (residual correction). Scan: per
    candidate ``m`` table look-ups and additions, each look-up-add costing
    ``lut_op_cost`` FLOP-equivalents of the SIMD peak, and ``m * bits / 8`` code
    bytes read. Default ``lut_op_cost``: 32 on a CPU (two 256-bit FMA pipes give
    32 FP32 FLOP/cycle/core, a scalar gather-and-add about one per cycle), 4 on a
    GPU (128 FP32 FLOP/cycle/SM against 32 shared-memory look-ups/cycle/SM),
    and 1 for 4-bit codes (FAISS "fast scan": 32 look-ups per 256-bit shuffle).
    Look-up-table traffic on a GPU: FAISS GPU scans one (query, probed list)
    per thread block and first loads that pair's ``m x 2**bits`` table into
    shared memory from device memory -- the sum of a per-list table (term 2)
    and a per-query table (term 3) with precomputed tables, or a table written
    by a separate kernel and read back without them; either way two table
    transfers of ``m * 2**bits * lut_bytes`` bytes per (query, probe).
    ``lut_bytes`` is 4 (fp32) by default, 2 with FAISS's
    ``useFloat16LookupTables``. On a CPU the table is built per (query, list)
    in L1/L2 cache and adds no memory traffic.
hnsw
    Per query: ``ef_search`` node expansions on the bottom layer, each reading
    the ``2*M`` neighbour ids (4 B each) and computing the distance of the
    ``new_fraction`` not yet visited; plus ``M * log(N)/log(M)`` distances on the
    upper layers (one greedy hop per layer). Every distance reads a full vector
    (``d*e`` bytes rounded up to 64-byte cache lines) and costs ``2*d`` FLOPs.
    Default ``new_fraction = 1`` (an upper bound). HNSW search is also a chain
    of dependent random reads: every expansion reads a neighbour list whose
    address depends on the previous step, then the neighbours' vectors (issued
    together), so a query needs at least ``2 * (ef_search + log(N)/log(M))``
    memory round trips of ``memory_latency`` seconds one after another. With
    ``P`` queries in flight (``min(cores, nq)`` on a CPU, ``nq`` on a GPU) the
    batch takes at least ``(nq / P) * 2 * (ef + levels) * memory_latency``;
    that latency floor replaces the roofline when it is longer (``bound`` is
    then ``"latency"``). Default ``memory_latency``: 100 ns on a CPU (DRAM
    load-to-use latency of server CPUs, about 80-130 ns), 500 ns on a GPU
    (global-memory latency, about 400-600 ns); 0 switches the floor off.

All indexes also write ``k`` (distance, id) pairs (12 B) per query. Results
are returned per batch; ``per_query`` is the batch time over ``nq`` (the
latency of a query is the batch time).

Time. On a CPU the work of a batch overlaps (FAISS runs each query's coarse
search, table build and scan in one thread, many threads at once):
``time = max(compute_time, memory_time)``. On a GPU the kernels of a search
run one after another, so the time is the sum of each kernel's roofline:
GEMM (or coarse GEMM, which also writes its distance matrix), coarse
k-selection (reads it), list scan (with table loads, writes the candidate
distances), k-selection (reads them). ``compute_time`` and ``memory_time``
are the totals over the kernels in both cases.

CPU parallelism: FAISS parallelises IVF and HNSW search over queries, and flat
search too below 20 queries (above, a multi-threaded BLAS GEMM). So a CPU
uses ``min(cores, nq)`` cores (all ``cores`` for flat with ``nq >= 20``);
peak FLOP/s and bandwidth are scaled by ``active cores / device cores``
(linear in cores: pessimistic for bandwidth with few cores, since one core
draws more than its share of the socket bandwidth).
GPUs use the whole device.

Overheads: ``overhead_per_batch`` (s, default 0 on a CPU; 20e-6 on a GPU for
the ~4 kernel launches of a FAISS GPU search, about 5 us each) and
``overhead_per_query`` (s, default 0) are added to the roofline time.

Examples
--------
>>> from hermes_qn import hardware, rag
>>> cpu = hardware.load_device("EPYC-9654")
>>> r = rag.search("flat", corpus=1_000_000, dim=128, batch=1, device=cpu)
>>> int(r.distances), int(r.flops)                  # 1M distances, 2*N*d FLOPs
(1000000, 256000000)
>>> r.bound                                         # one query: a GEMV, memory-bound
'memory'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import hardware as _hw
from . import models as _models
from . import roofline as _roofline
from .errors import ValidationError
from .models import Model

__all__ = [
    "CPU_CORES",
    "INDEXES",
    "SearchCost",
    "embed",
    "hnsw_levels",
    "rerank",
    "search",
]

#: Index kinds :func:`search` models.
INDEXES = ("flat", "ivf_flat", "ivf_pq", "hnsw")

#: Cores of the CPU devices in the built-in catalog (from each file's description;
#: the catalog schema has no core-count field).
CPU_CORES = {"EPYC-9654": 96, "Xeon-8480+": 56, "Grace": 144}

_ID_BYTES = 8.0  # FAISS idx_t
_RESULT_BYTES = 12.0  # fp32 distance + int64 id per result
_CACHE_LINE = 64.0
_BLAS_THRESHOLD = 20  # FAISS distance_compute_blas_threshold
_LUT_TRANSFERS = 2.0  # GPU IVF-PQ: look-up tables moved per (query, probe), see module notes
_CPU_LATENCY = 100e-9  # s, DRAM load-to-use latency of a server CPU
_GPU_LATENCY = 500e-9  # s, global-memory latency of a GPU


# --------------------------------------------------------------------------- checks


def _array(name: str, value: Any, *, low: float, integer: bool = False,
           low_inclusive: bool = True) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: got {value!r}; valid: a number or array of numbers "
                              f"{'>=' if low_inclusive else '>'} {low:g}") from None
    bad = ~np.isfinite(a) | ((a < low) if low_inclusive else (a <= low))
    if integer:
        bad |= np.isfinite(a) & (a != np.round(a))
    if bad.any():
        kind = "integers" if integer else "finite numbers"
        raise ValidationError(f"{name}: got {float(a[bad].flat[0])!r}; valid: {kind} "
                              f"{'>=' if low_inclusive else '>'} {low:g}")
    return a


def _fraction(name: str, value: Any) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not (0 < float(value) <= 1):
        raise ValidationError(f"{name}: got {value!r}; valid: a fraction 0 < value <= 1")
    return float(value)


def _encoder_iv(func: str, model: Any) -> Model:
    model = _models.as_model(model, f"{func}: model")
    if model.architecture != "encoder":
        raise ValidationError(f"{func}: model {model.name!r} is a {model.architecture}; valid: an "
                              "encoder such as 'e5-base-v2' or 'bge-reranker-base'")
    return model


# --------------------------------------------------------------------------- encoder stages


def embed(model: Model | str, device: Any, tokens: Any, *, batch: Any = 1,
          **options: Any) -> _roofline.StepTime:
    """Time to embed ``batch`` texts of ``tokens`` tokens with an encoder, in seconds.

    One forward pass of the encoder: :func:`hermes_qn.roofline.prefill` with
    ``context=0``. Use it for the query (``batch`` queries) or for documents
    at indexing time.

    Parameters
    ----------
    model : Model or str
        An encoder, e.g. ``"e5-base-v2"``.
    device : Device or str
        Where it runs.
    tokens : float or array_like
        Tokens per text, 1 to the model's ``max_context``.
    batch : float or array_like
        Texts embedded together.
    **options
        Passed to :func:`~hermes_qn.roofline.prefill` (``weight_precision``,
        efficiencies, ``overhead``, ``tp``...).

    Returns
    -------
    StepTime
        ``.total`` in seconds for the whole batch.
    """
    model = _encoder_iv("embed", model)
    return _roofline.prefill(model, device, tokens, batch=batch, **options)


def rerank(model: Model | str, device: Any, documents: Any, tokens: Any, *,
           query_tokens: Any = 0, **options: Any) -> _roofline.StepTime:
    """Time for a cross-encoder to score ``documents`` (query, document) pairs, in seconds.

    Each pair is one sequence of ``query_tokens + tokens`` tokens (no
    truncation: a pair longer than ``max_context`` raises); the ``documents``
    pairs run as one batch: :func:`hermes_qn.roofline.prefill` with ``batch=documents``.

    Parameters
    ----------
    model : Model or str
        A cross-encoder, e.g. ``"bge-reranker-base"``.
    device : Device or str
        Where it runs.
    documents : float or array_like
        Candidates to rerank (the ``k`` of the vector search), >= 1.
    tokens : float or array_like
        Tokens per document, >= 1.
    query_tokens : float or array_like
        Tokens of the query, prepended to every document, >= 0.
    **options
        Passed to :func:`~hermes_qn.roofline.prefill`.
    """
    model = _encoder_iv("rerank", model)
    docs = _array("documents", documents, low=1)
    t = _array("tokens", tokens, low=1)
    q = _array("query_tokens", query_tokens, low=0)
    length = t + q
    if np.any(length > model.max_context):
        raise ValidationError(f"rerank: query_tokens + tokens = {float(length.max()):g} for "
                              f"{model.name}; valid: at most max_context = {model.max_context} "
                              "(truncate the documents)")
    length = float(length) if length.ndim == 0 else length
    docs = float(docs) if docs.ndim == 0 else docs
    return _roofline.prefill(model, device, length, batch=docs, **options)


# --------------------------------------------------------------------------- vector search


@dataclass(frozen=True)
class SearchCost:
    """Cost of one batch of vector-search queries (arrays broadcast over the inputs).

    Attributes
    ----------
    index : str
        Index kind, one of :data:`INDEXES`.
    distances : ndarray or float
        Distance computations for the batch (full-vector or PQ), count.
    flops : ndarray or float
        FLOPs (PQ look-ups counted as ``lut_op_cost`` FLOP-equivalents each).
    bytes : ndarray or float
        Bytes read from and written to device memory, B.
    compute_time, memory_time : ndarray or float
        ``flops / (peak * eff)`` and ``bytes / (bandwidth * eff)``, s.
    latency_time : ndarray or float
        HNSW's floor of dependent memory round trips, s (0 for other indexes).
    overhead : ndarray or float
        Fixed per-batch plus per-query overheads, s.
    time : ndarray or float
        The batch time, s: ``max(compute_time, memory_time)`` on a CPU, the
        sum of the kernels' rooflines on a GPU, at least ``latency_time``; plus
        ``overhead``.
    per_query : ndarray or float
        ``time / batch``: the inverse of throughput, s per query.
    throughput : ndarray or float
        Queries per second, ``batch / time``.
    index_bytes : ndarray or float
        Size of the index in memory (codes, ids, centroids, graph links), B.
    bound : str or ndarray of str
        ``"compute"`` or ``"memory"`` (the larger total), or ``"latency"``.
    """

    index: str
    distances: Any
    flops: Any
    bytes: Any
    compute_time: Any
    memory_time: Any
    latency_time: Any
    overhead: Any
    time: Any
    per_query: Any
    throughput: Any
    index_bytes: Any
    bound: Any


def _search_iv(index, device, precision, vector_bytes, cores):
    if index not in INDEXES:
        raise ValidationError(f"search: index {index!r} is not known; valid: one of "
                              f"{', '.join(INDEXES)}")
    if not isinstance(device, _hw.Device):
        if isinstance(device, str):
            device = _hw.load_device(device)
        else:
            raise ValidationError(f"search: device must be a hermes_qn.hardware.Device or a catalog "
                                  f"name; got {type(device).__name__}; valid: load_device(...)")
    if device.category not in ("cpu", "gpu"):
        raise ValidationError(f"search: device {device.name} is a {device.category}; valid: a cpu "
                              "or gpu Device (the cost model assumes SIMD cores or CUDA-like SMs)")
    if precision not in device.peak_flops:
        raise ValidationError(f"search: device {device.name} has no peak_flops for precision "
                              f"{precision!r}; valid: one of {', '.join(device.precisions)} (pass "
                              "precision=...)")
    vb = _array("vector_bytes", vector_bytes, low=0, low_inclusive=False)
    if vb.ndim:
        raise ValidationError("vector_bytes: got an array; valid: one number (4 for fp32, 2 for "
                              "fp16, 1 for int8 scalar quantisation)")
    total_cores = None
    if device.category == "cpu":
        total_cores = CPU_CORES.get(device.name)
        if cores is None:
            if total_cores is None:
                raise ValidationError(f"search: no core count is known for CPU {device.name}; "
                                      "valid: pass cores=<int> and device_cores=<int>")
            cores = total_cores
    elif cores is not None:
        raise ValidationError(f"cores: got {cores!r} for GPU {device.name}; valid: None (a GPU "
                              "search uses the whole device)")
    return device, float(vb), cores, total_cores


def search(index: str, corpus: Any, dim: Any, *, device: Any, batch: Any = 1, k: Any = 10,
           nlist: Any = None, nprobe: Any = None, pq_m: Any = None, pq_bits: Any = 8,
           hnsw_m: Any = 32, ef_search: Any = 64, new_fraction: float = 1.0,
           imbalance: Any = 1.0, vector_bytes: float = 4.0, precision: str = "fp32",
           cores: int | None = None, device_cores: int | None = None,
           lut_op_cost: Any = None, lut_bytes: Any = 4.0,
           memory_latency: float | None = None, matmul_efficiency: float | None = None,
           memory_efficiency: float | None = None, overhead_per_batch: float | None = None,
           overhead_per_query: float = 0.0) -> SearchCost:
    """Cost and time of a batch of vector-search queries (see the module notes for the model).

    Parameters
    ----------
    index : {"flat", "ivf_flat", "ivf_pq", "hnsw"}
        Index kind.
    corpus : float or array_like
        Vectors in the index, ``N`` >= 1.
    dim : float or array_like
        Dimension ``d`` >= 1.
    device : Device or str
        A ``cpu`` or ``gpu`` device.
    batch : float or array_like
        Queries searched together, ``nq`` >= 1.
    k : float or array_like
        Results per query.
    nlist, nprobe : float or array_like
        Inverted lists and lists visited per query (IVF indexes; required there),
        ``1 <= nprobe <= nlist``.
    pq_m, pq_bits : float or array_like
        Sub-quantizers (bytes of code = ``pq_m * pq_bits / 8``) and bits per
        sub-code (``ivf_pq``; ``pq_m`` required there and must divide ``dim``,
        as FAISS requires).
    hnsw_m, ef_search : float or array_like
        HNSW links per node on upper layers (``2*M`` on the bottom one) and
        search beam width (``hnsw``).
    new_fraction : float
        HNSW: share of a node's neighbours not yet visited (0, 1]; default 1.
    imbalance : float or array_like
        IVF: mean visited list length over ``N / nlist``, >= 1; default 1.
    vector_bytes : float
        Bytes per stored component for flat, ivf_flat and hnsw (4: fp32).
    precision : str
        Peak FLOP/s key of the device for distance arithmetic (``"fp32"``).
    cores : int, optional
        CPU cores given to the search (default: all of the device's).
    device_cores : int, optional
        Cores of the CPU, needed when it is not in :data:`CPU_CORES`.
    lut_op_cost : float or array_like, optional
        FLOP-equivalents of one PQ look-up-add (default 32 CPU, 4 GPU, 1 for 4-bit).
    lut_bytes : float or array_like
        Bytes per PQ look-up-table entry moved through GPU memory (``ivf_pq`` on
        a GPU), > 0; default 4 (fp32), 2 for FAISS ``useFloat16LookupTables``.
    memory_latency : float, optional
        HNSW: seconds per dependent memory round trip, >= 0; default 100e-9 on a
        CPU, 500e-9 on a GPU; 0 turns the latency floor off.
    matmul_efficiency, memory_efficiency : float, optional
        Fractions of peak FLOP/s and bandwidth; default the device's.
    overhead_per_batch, overhead_per_query : float, optional
        Seconds added per batch (default 0 on CPU, 20e-6 on GPU) and per query (0).

    Returns
    -------
    SearchCost
        Floats for scalar inputs, arrays for array inputs (numpy broadcasting).

    Raises
    ------
    ValidationError
        Unknown index, missing or out-of-range parameter (named, with what is valid),
        a device that is neither CPU nor GPU or lacks ``precision``.
    """
    device, e, cores, total_cores = _search_iv(index, device, precision, vector_bytes, cores)
    if device.category == "cpu":
        if device_cores is not None:
            total_cores = int(_array("device_cores", device_cores, low=1, integer=True))
        if total_cores is None:
            raise ValidationError(f"device_cores: no core count is known for CPU {device.name}; "
                                  "valid: pass device_cores=<int>")
        cores = int(_array("cores", cores, low=1, integer=True))
        if cores > total_cores:
            raise ValidationError(f"cores: got {cores} for {device.name} with {total_cores} cores; "
                                  f"valid: 1 to {total_cores}")
    N = _array("corpus", corpus, low=1)
    d = _array("dim", dim, low=1, integer=True)
    nq = _array("batch", batch, low=1)
    kk = _array("k", k, low=1, integer=True)
    me = device.matmul_efficiency if matmul_efficiency is None else _fraction(
        "matmul_efficiency", matmul_efficiency)
    be = device.memory_efficiency if memory_efficiency is None else _fraction(
        "memory_efficiency", memory_efficiency)
    gpu = device.category == "gpu"
    if overhead_per_batch is None:
        overhead_per_batch = 20e-6 if gpu else 0.0
    ob = _array("overhead_per_batch", overhead_per_batch, low=0)
    oq = _array("overhead_per_query", overhead_per_query, low=0)
    if memory_latency is None:
        memory_latency = _GPU_LATENCY if gpu else _CPU_LATENCY
    lat = _array("memory_latency", memory_latency, low=0)
    results = nq * kk * _RESULT_BYTES
    queries = nq * d * e
    chain = 0.0  # dependent memory round trips per query (hnsw only)

    # phases: (flops, bytes) of the kernels a GPU runs one after another
    if index in ("ivf_flat", "ivf_pq"):
        for name, val in (("nlist", nlist), ("nprobe", nprobe)):
            if val is None:
                raise ValidationError(f"search: {name} is required for index {index!r}; valid: an "
                                      "integer >= 1 (nprobe <= nlist)")
        L = _array("nlist", nlist, low=1, integer=True)
        P = _array("nprobe", nprobe, low=1, integer=True)
        if np.any(P > L):
            raise ValidationError(f"nprobe: got {float(np.max(P)):g} with nlist "
                                  f"{float(np.min(L)):g}; valid: 1 <= nprobe <= nlist")
        imb = _array("imbalance", imbalance, low=1)
        cand = np.minimum(imb * P * N / L, N)  # vectors visited per query
        coarse_d = nq * L
        # on a GPU the coarse quantizer is a flat search: its fp32 distance matrix is
        # written by the GEMM and read by the k-selection; so is the scan's candidate
        # buffer (IVFUtils pass 1 / pass 2 select)
        coarse_matrix = 4.0 * coarse_d if gpu else 0.0
        dist_buffer = 4.0 * nq * cand if gpu else 0.0
        coarse = (2.0 * coarse_d * d, L * d * 4.0 + queries + coarse_matrix)  # fp32 centroids
        coarse_select = (0.0, coarse_matrix)
        select = (0.0, dist_buffer + results)
    if index == "flat":
        dist = nq * N
        matrix = 4.0 * dist if gpu else 0.0
        phases = [(2.0 * dist * d, N * d * e + 4.0 * N + queries + matrix),
                  (0.0, matrix + results)]
        index_bytes = N * d * e + 4.0 * N
    elif index == "ivf_flat":
        dist = coarse_d + nq * cand
        scan = (2.0 * nq * cand * d, nq * cand * d * e + dist_buffer)
        phases = [coarse, coarse_select, scan, select]
        index_bytes = N * (d * e + _ID_BYTES) + L * d * 4.0
    elif index == "ivf_pq":
        if pq_m is None:
            raise ValidationError("search: pq_m is required for index 'ivf_pq'; valid: an integer "
                                  ">= 1 dividing dim (bytes per code = pq_m * pq_bits / 8)")
        m = _array("pq_m", pq_m, low=1, integer=True)
        bits = _array("pq_bits", pq_bits, low=1, integer=True)
        if np.any(bits > 16):
            raise ValidationError(f"pq_bits: got {float(np.max(bits)):g}; valid: 1 to 16")
        if np.any(np.mod(d, m) != 0):
            raise ValidationError(f"pq_m: got {pq_m!r} with dim {dim!r}; valid: pq_m dividing dim")
        if lut_op_cost is None:
            lut = np.where(bits == 4, 1.0, 4.0 if gpu else 32.0)
        else:
            lut = _array("lut_op_cost", lut_op_cost, low=0, low_inclusive=False)
        lb = _array("lut_bytes", lut_bytes, low=0, low_inclusive=False)
        ksub = 2.0 ** bits
        dist = coarse_d + nq * cand
        lut_flops = nq * (2.0 * d * ksub + P * m * ksub)
        table_traffic = _LUT_TRANSFERS * nq * P * m * ksub * lb if gpu else 0.0
        code = m * bits / 8.0
        scan = (lut_flops + nq * cand * m * lut, nq * cand * code + table_traffic + dist_buffer)
        phases = [coarse, coarse_select, scan, select]
        index_bytes = N * (code + _ID_BYTES) + L * d * 4.0 + d * ksub * 4.0
    else:  # hnsw
        M = _array("hnsw_m", hnsw_m, low=2, integer=True)
        ef = _array("ef_search", ef_search, low=1, integer=True)
        nf = _fraction("new_fraction", new_fraction)
        ef = np.maximum(ef, kk)  # FAISS searches with max(efSearch, k)
        levels = np.log(np.maximum(N, 2.0)) / np.log(M)
        upper = M * levels
        per_q = ef * 2.0 * M * nf + upper
        per_q = np.minimum(per_q, N)
        dist = nq * per_q
        vec = np.ceil(d * e / _CACHE_LINE) * _CACHE_LINE
        links = nq * (ef * 2.0 * M + upper) * 4.0
        phases = [(2.0 * dist * d, dist * vec + links + queries + results)]
        chain = 2.0 * (ef + levels)
        index_bytes = N * (d * e + 2.0 * M * 4.0 * (1.0 + 1.0 / (M - 1)))

    peak = device.peak_flops[precision] * me
    bw = device.memory_bandwidth * be
    if gpu:
        in_flight = nq
    else:
        if index == "flat":
            active = np.where(nq >= _BLAS_THRESHOLD, float(cores), np.minimum(cores, nq))
        else:
            active = np.minimum(float(cores), nq)
        share = active / total_cores
        peak, bw = peak * share, bw * share
        in_flight = active
        phases = [(sum(f for f, _ in phases), sum(b for _, b in phases))]  # all overlap
    flops = sum(f for f, _ in phases)
    nbytes = sum(b for _, b in phases)
    ct = flops / peak
    mt = nbytes / bw
    roof = sum(np.maximum(f / peak, b / bw) for f, b in phases)
    latency = nq / in_flight * chain * lat
    over = ob + oq * nq
    time = np.maximum(roof, latency) + over
    bound = np.where(latency > roof, "latency", np.where(ct >= mt, "compute", "memory"))

    def out(x):
        x = np.asarray(x)
        shape = np.broadcast_shapes(np.shape(time), np.shape(x))
        x = np.broadcast_to(x, shape)
        if x.ndim == 0:
            return str(x) if x.dtype.kind == "U" else float(x)
        return np.array(x)

    return SearchCost(index, out(dist), out(flops), out(nbytes), out(ct), out(mt),
                      out(latency), out(over), out(time), out(time / nq), out(nq / time),
                      out(index_bytes), out(bound))


def hnsw_levels(corpus: Any, hnsw_m: Any) -> Any:
    """Expected number of HNSW layers above the bottom one: ``log(N) / log(M)``."""
    N = _array("corpus", corpus, low=1)
    M = _array("hnsw_m", hnsw_m, low=2)
    out = np.log(np.maximum(N, 1.0)) / np.log(M)
    return float(out) if out.ndim == 0 else out

