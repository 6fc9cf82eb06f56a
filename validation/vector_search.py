"""Vector-search cost model (hermes_qn.rag.search) against published FAISS timings.

Run from the repository root::

    python validation/vector_search.py          # writes validation/vector_search.md

Every published number below is copied from a public FAISS page, cited next to
it. The hardware of those runs (Maxwell Titan X, P100, 2 x Xeon Gold 6138) is
not in the hermes-qn catalog, so the devices are built here from their
datasheets (cited too). Predictions use the library defaults (efficiencies
0.7 of peak FLOP/s and 0.8 of peak bandwidth, imbalance 1, GPU overhead 20 us
per batch, PQ look-up costs 4 on GPU and 1 for 4-bit fast-scan) -- nothing is
fitted to these numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hermes_qn import rag
from hermes_qn.hardware import Device

OUT = Path(__file__).with_suffix(".md")

# ---------------------------------------------------------------- devices (datasheets)

TITAN_X = Device(
    name="TitanX-Maxwell", vendor="NVIDIA", category="gpu",
    # 3072 CUDA cores x 2 FLOP x 1.075 GHz boost; 384-bit GDDR5 at 7 Gb/s
    peak_flops={"fp32": 3072 * 2 * 1.075e9}, memory_bytes=12e9, memory_bandwidth=336.5e9)
P100 = Device(
    name="P100-SXM2", vendor="NVIDIA", category="gpu",
    # NVIDIA Tesla P100 datasheet: 10.6 TFLOP/s fp32 (SXM2; 9.3 for PCIe), 732 GB/s HBM2
    peak_flops={"fp32": 10.6e12}, memory_bytes=16e9, memory_bandwidth=732e9)
XEON_6138_X2 = Device(
    name="2x-Xeon-Gold-6138", vendor="Intel", category="cpu",
    # Intel ARK: 20 cores, 2.0 GHz base, 2 AVX-512 FMA units (64 fp32 FLOP/cycle/core),
    # 6 channels DDR4-2666 per socket (6 x 2666e6 x 8 B = 128 GB/s); two sockets
    peak_flops={"fp32": 2 * 20 * 64 * 2.0e9}, memory_bytes=768e9,
    memory_bandwidth=2 * 6 * 2666e6 * 8)

SRC_README = ("FAISS benchs/README.md, 'GPU experiments' (facebookresearch/faiss), runs on "
              "1 Maxwell Titan X, 10,000 queries per batch")
SRC_KMEANS = ("FAISS wiki 'Low level benchmarks' (2017): k-means of 1M x 256-d points to 20,000 "
              "centroids, 25 iterations")
SRC_IVFLOG = ("FAISS wiki 'bench_all_ivf_logs deep1M' (2021), OPQ16_64,IVF1024,PQ16x4fsr, "
              "10,000 queries; machine per the same benchmark series' log header (gist mdouze): "
              "Xeon Gold 6138 @ 2.0 GHz, 80 logical CPUs, searchthreads=32")


def cases():
    """(label, hardware, published seconds, SearchCost, source, note)."""
    rows = []
    # 1. exact search on SIFT1M (1M x 128, 10k queries), 1 Titan X
    for k, pub in ((1, 0.715), (16, 0.742), (256, 0.799)):
        r = rag.search("flat", 1e6, 128, device=TITAN_X, batch=1e4, k=k)
        rows.append((f"SIFT1M Flat, k={k}", "Titan X", pub, r, SRC_README, "batch time"))
    # 2. IVF16384,Flat on SIFT1M
    for p, pub in ((1, 0.025), (16, 0.049), (128, 0.174), (512, 0.527)):
        r = rag.search("ivf_flat", 1e6, 128, device=TITAN_X, batch=1e4, nlist=16384, nprobe=p)
        rows.append((f"SIFT1M IVF16384,Flat nprobe={p}", "Titan X", pub, r, SRC_README,
                     "batch time"))
    # 3. IVF4096,PQ64 on SIFT1M (64 B codes)
    for p, pub in ((1, 0.043), (16, 0.088), (128, 0.395), (512, 1.348)):
        r = rag.search("ivf_pq", 1e6, 128, device=TITAN_X, batch=1e4, nlist=4096, nprobe=p,
                       pq_m=64)
        rows.append((f"SIFT1M IVF4096,PQ64 nprobe={p}", "Titan X", pub, r, SRC_README,
                     "batch time"))
    # 4. SIFT1B, OPQ8_32,IVF262144,PQ8 on one Titan X (OPQ rotates to d=32; 8 B codes)
    for p, pub in ((1, 0.161), (16, 0.196), (256, 1.160)):
        r = rag.search("ivf_pq", 1e9, 32, device=TITAN_X, batch=1e4, nlist=262144, nprobe=p,
                       pq_m=8, k=10)
        rows.append((f"SIFT1B OPQ8_32,IVF262144,PQ8 nprobe={p}", "Titan X", pub, r, SRC_README,
                     "batch time; OPQ rotation not modelled"))
    # 5. k-means = 25 flat searches of 1M queries against 20k centroids (d=256, k=1)
    for dev, hw, pub in ((TITAN_X, "Titan X", 111.0), (P100, "P100 (fp32)", 55.0)):
        r = rag.search("flat", 20000, 256, device=dev, batch=1e6, k=1)
        r25 = rag.SearchCost(**{**r.__dict__, "time": 25 * r.time})
        rows.append(("k-means 1M x 256-d, 20k centroids, 25 it.", hw, pub, r25, SRC_KMEANS,
                     "25 x batch time; centroid update and CPU side not modelled"))
    # 6. CPU IVF-PQ fast-scan on Deep1M (OPQ to d=64, 16 x 4-bit codes)
    for p, pub in ((2, 0.00073), (4, 0.00097), (8, 0.00138), (16, 0.00215), (512, 0.11454)):
        r = rag.search("ivf_pq", 1e6, 64, device=XEON_6138_X2, batch=1e4, nlist=1024,
                       nprobe=p, pq_m=16, pq_bits=4, cores=32, device_cores=40, k=100)
        r1 = rag.SearchCost(**{**r.__dict__, "time": r.per_query * 1e3})
        rows.append((f"Deep1M OPQ16_64,IVF1024,PQ16x4fsr nprobe={p}", "2x Xeon Gold 6138, 32 thr.",
                     pub, r1, SRC_IVFLOG, "ms per query (batch time / 10,000)"))
    return rows


# published distance counts (nb distances over 10,000 queries) for the Deep1M runs
DISTANCES = ((1, 12091320), (2, 23618520), (4, 46092750), (8, 89113658), (16, 170819148),
             (512, 4505205896))


def table() -> str:
    lines = [
        "# Vector-search cost model vs published FAISS timings",
        "",
        "Generated by `validation/vector_search.py` (do not edit by hand). Model: "
        "`hermes_qn.rag.search` with library defaults (no fitting): efficiencies 0.7 of peak "
        "FLOP/s and 0.8 of peak bandwidth, IVF imbalance 1, GPU overhead 20 us per batch, PQ "
        "look-up cost 4 FLOP-equivalents on a GPU and 1 for 4-bit fast-scan. Hardware built "
        "from datasheets (see the script): Maxwell Titan X 6.6 TFLOP/s fp32, 336.5 GB/s; "
        "P100-SXM2 10.6 TFLOP/s, 732 GB/s; 2 x Xeon Gold 6138 5.1 TFLOP/s fp32 (AVX-512 at "
        "base clock), 256 GB/s.",
        "",
        "Error = predicted / published - 1.",
        "",
        "| case | hardware | published | predicted | error | bound | unit |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    errs = {}
    sources = {}
    for label, hw, pub, r, src, note in cases():
        pred = float(r.time)
        err = pred / pub - 1
        errs.setdefault(label.split(" nprobe")[0].split(", k=")[0], []).append(err)
        sources.setdefault(src, None)
        unit = "ms/query" if "ms per query" in note else "s"
        lines.append(f"| {label} | {hw} | {pub:.4g} | {pred:.4g} | {err:+.0%} | {r.bound} | "
                     f"{unit} |")
    lines += ["", "## Distance counts (Deep1M, IVF1024, 10,000 queries)", "",
              "Model: `nprobe * N / nlist` candidates per query (imbalance 1); published: the "
              "`nb distances` column of the FAISS log.", "",
              "| nprobe | published | predicted | error |", "|---:|---:|---:|---:|"]
    for p, pub in DISTANCES:
        r = rag.search("ivf_pq", 1e6, 64, device=XEON_6138_X2, batch=1e4, nlist=1024, nprobe=p,
                       pq_m=16, pq_bits=4, cores=32, device_cores=40)
        pred = float(r.distances) - 1e4 * 1024  # scanned codes only (the log counts those)
        lines.append(f"| {p} | {pub:,} | {pred:,.0f} | {pred / pub - 1:+.0%} |")
    lines += ["", "## Summary by group (error range)", ""]
    for g, e in errs.items():
        e = np.array(e)
        lines.append(f"- {g}: {e.min():+.0%} to {e.max():+.0%} (median |error| "
                     f"{np.median(np.abs(e)):.0%})")
    allerr = np.concatenate([np.array(e) for e in errs.values()])
    lines += [
        f"- all {allerr.size} points: median |error| {np.median(np.abs(allerr)):.0%}, "
        f"worst {allerr[np.argmax(np.abs(allerr))]:+.0%}",
        "",
        "## Reading the table, honestly",
        "",
        "- Flat (exact) search and k-means are GEMMs, compute-bound: predicted 23-31 % too "
        "fast for SIFT1M exact search and 37-50 % too fast for k-means (small 20k-centroid "
        "GEMM tiles on Maxwell, plus centroid updates and host work the model leaves out). "
        "A 0.5 matmul efficiency instead of the default 0.7 would match; not fitted here.",
        "- IVF-Flat on GPU is memory-bound at large nprobe, and there the bandwidth roof "
        "(including the 8 B/candidate distance buffer of FAISS's two-pass k-selection) is "
        "within 15 %. At small nprobe (1-16) the model is 60 % too fast: fixed per-batch GPU "
        "costs (query upload, coarse k-selection, list bookkeeping, several kernel launches) "
        "are far above the 20 us default overhead.",
        "- IVF-PQ on GPU is predicted 2x (SIFT1B, nprobe=256) to 17x (SIFT1M PQ64, nprobe=1) "
        "too fast. The roofline sees a code stream of m bytes per candidate, but FAISS's GPU "
        "IVFPQ also builds a per-(query, list) look-up table of m x 256 entries, loads it into "
        "shared memory, and scans short lists (about 244 codes for IVF4096) with poor "
        "occupancy; none of that is in the model. This is the weakest part: do not use the "
        "IVF-PQ GPU numbers for more than order-of-magnitude placement without calibrating "
        "`lut_op_cost` / `overhead_per_query` to a measurement.",
        "- CPU 4-bit fast-scan IVF-PQ (32 threads): predicted 2.8x to 7x too fast. The model "
        "is memory-bound on 8-byte codes; the real kernel is bound by the SIMD shuffles, the "
        "k=100 result heaps, the OPQ rotation and per-list setup, which are not modelled.",
        "- Distance counts: the `nprobe * N / nlist` rule is within -19 % to +11 % of FAISS's "
        "counts; at small nprobe the shortfall is list imbalance (k-means lists are uneven and "
        "queries fall in the larger ones; pass `imbalance=`, about 1.1-1.25 here); at "
        "nprobe=512 of 1024 the probed lists are the smaller half on average.",
        "- HNSW: no published FAISS HNSW timing with stated hardware and thread count was "
        "found, so the HNSW model is not validated here (and is a bandwidth lower bound: HNSW "
        "is latency-bound).",
        "",
        "## Sources",
        "",
    ]
    lines += [f"- {s}" for s in sources]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(table())
    print(OUT.read_text())
