"""Closed form (``hermes_qn.evaluate``) against the LLM-level sampler (``hermes_qn.simulate``).

Usage: python validation/llm_agreement.py [--quick] [--jobs N]
(--quick: a small grid, printed, nothing written; default writes llm_agreement.md and
llm_agreement.svg beside this file)

The grid: every batching strategy (continuous, chunked, static, disaggregated prefill/decode)
with short and long prompts, every stage kind (RAG with embed/search/rerank, KV fetch from
memory tiers, reasoning with rounds and branches, routing between two pools), one and two
classes, at loads of 10% to 90% of evaluate's capacity (all classes' rates scaled together).
For each point the table gives evaluate / sampler - 1 for mean TTFT, TPOT, E2E, throughput
and p90/p99 of TTFT and E2E, with the sampler's 95% half-width relative to its estimate.

Targets (issue 5): within 10% on means up to 80% load, within 20% on p90.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


import hermes_qn as hq
from hermes_qn.scenario import (Embed, Generate, KVFetch, Pool, RequestClass, Rerank, Scenario,
                                Search, Target, TierShare)
from hermes_qn import workload
from hermes_qn.workload import TokenLengths

HERE = Path(__file__).resolve().parent
OUT_MD, OUT_SVG = HERE / "llm_agreement.md", HERE / "llm_agreement.svg"

MODEL = "llama-3.1-8b"
SHORT = TokenLengths.of(256, 0.5)   # prompt, short
LONG = TokenLengths.of(3000, 0.5)   # prompt, long
OUTPUT = TokenLengths.of(200, 1.0)
LOADS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9)
QUICK_LOADS = (0.3, 0.7)
REQUESTS, REPLICATIONS, SEED = 10000, 3, 2026
MEANS = ("ttft", "tpot", "e2e", "throughput")
TAILS = ("ttft_p90", "ttft_p99", "e2e_p90", "e2e_p99")
METRICS = MEANS + TAILS
MEAN_TARGET, P90_TARGET, MEAN_LOAD_LIMIT = 0.10, 0.20, 0.8


def _gpu(name="gpu", batching="continuous", devices=1, models=(MODEL,), **kw):
    return Pool(name, "H100-SXM", devices=devices, models=models, batching=batching, **kw)


def _chat(name, pipeline, prompt, rate=1.0, output=OUTPUT):
    return RequestClass(name, pipeline, prompt_tokens=prompt, output_tokens=output, rate=rate)


def colocated(batching, prompt):
    return Scenario(f"{batching}", (_gpu(batching=batching),),
                    (_chat("chat", (Generate.on("gpu", MODEL),), prompt),))


def azure_chat():
    """Prompt and output lengths of the Azure LLM inference trace (conversation), as shipped."""
    prompt, output = workload.dataset("azure-conv")
    return Scenario("azure-chat", (_gpu(),),
                    (_chat("chat", (Generate.on("gpu", MODEL),), prompt, output=output),))


def disaggregated(prompt):
    pools = (_gpu("pre"), _gpu("dec"))
    gen = Generate((Target(MODEL, prefill_pool="pre", decode_pool="dec", link="IB-NDR-400"),))
    return Scenario("disaggregated", pools, (_chat("chat", (gen,), prompt),))


def rag():
    pools = (Pool("xeon", "Xeon-8480+", devices=2, models=("e5-base-v2",)),
             _gpu(models=(MODEL, "bge-reranker-base")))
    pipe = (Embed("xeon", "e5-base-v2"),
            Search("xeon", index="ivf_pq", corpus=1e7, dim=768, k=20, retrieved_tokens=1000,
                   options={"nlist": 16384, "nprobe": 32, "pq_m": 96, "precision": "bf16"}),
            Rerank("gpu", "bge-reranker-base", documents=10, tokens_per_document=200),
            Generate.on("gpu", MODEL))
    return Scenario("rag", pools, (_chat("rag", pipe, TokenLengths.of(200, 0.5)),))


def kv_fetch():
    pipe = (KVFetch(reused_tokens=2048, tiers=(TierShare("DDR5-socket", 0.5, instances=2),
                                              TierShare("Mooncake-RDMA-pool", 0.3,
                                                        latency=20e-6))),
            Generate.on("gpu", MODEL))
    return Scenario("kv-fetch", (_gpu(),), (_chat("multi-turn", pipe, SHORT),))


def reasoning():
    gen = Generate.on("gpu", MODEL, thinking=2.0, rounds=2, round_delay=0.5, round_tokens=200,
                      branches=2)
    return Scenario("reasoning", (_gpu(batching="chunked"),),
                    (_chat("reason", (gen,), SHORT, output=TokenLengths.of(100, 1.0)),))


def routing():
    pools = (_gpu("a"), _gpu("b", models=("mistral-7b",)))
    gen = Generate((Target(MODEL, pool="a", probability=0.7),
                    Target("mistral-7b", pool="b", probability=0.3)))
    return Scenario("routing", pools, (_chat("chat", (gen,), SHORT),))


def two_classes():
    return Scenario("two-classes", (_gpu(),),
                    (_chat("short", (Generate.on("gpu", MODEL),), SHORT, rate=2.0),
                     _chat("long", (Generate.on("gpu", MODEL),), LONG, rate=0.5)))


# (case label, strategy (the figure's colour), scenario builder)
CASES = [
    ("continuous, short prompts", "continuous", lambda: colocated("continuous", SHORT)),
    ("continuous, long prompts", "continuous", lambda: colocated("continuous", LONG)),
    ("continuous, Azure conversation lengths", "continuous", azure_chat),
    ("chunked, short prompts", "chunked", lambda: colocated("chunked", SHORT)),
    ("chunked, long prompts", "chunked", lambda: colocated("chunked", LONG)),
    ("static, short prompts", "static", lambda: colocated("static", SHORT)),
    ("static, long prompts", "static", lambda: colocated("static", LONG)),
    ("disaggregated, short prompts", "disaggregated", lambda: disaggregated(SHORT)),
    ("disaggregated, long prompts", "disaggregated", lambda: disaggregated(LONG)),
    ("RAG embed/search/rerank (continuous)", "continuous", rag),
    ("KV fetch from tiers (continuous)", "continuous", kv_fetch),
    ("reasoning, 2 rounds x 2 branches (chunked)", "chunked", reasoning),
    ("routing 70/30 over two pools (continuous)", "continuous", routing),
    ("two classes, short + long (continuous)", "continuous", two_classes),
]
QUICK_CASES = (0, 2, 3, 5, 7, 9, 13)


def capacity_scale(sc: Scenario) -> float:
    """The factor on every open class's rate at which evaluate calls the scenario saturated."""
    if len(sc.classes) == 1:
        return float(hq.evaluate(sc).capacity.item()) / sc.classes[0].rate
    base = {c.name: c.rate for c in sc.classes}

    def saturated(f):
        return bool(hq.evaluate(sc, rates={k: v * f for k, v in base.items()}).saturated.item())

    lo, hi = 0.0, 1.0
    while not saturated(hi):
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if saturated(mid) else (mid, hi)
    return lo


def at_load(sc: Scenario, load: float, scale: float) -> Scenario:
    for c in sc.classes:
        sc = sc.with_value(f"classes.{c.name}.rate", c.rate * scale * load)
    return sc


def _values(ds, name: str):
    """Per-class values of one metric (and its half-width when ds is the sampler's)."""
    if "_p" in name:
        var, q = name.split("_p")
        q = {"90": 0.9, "99": 0.99, "50": 0.5}[q]
        v = ds[f"{var}_q"].sel(quantile=q)
        hw = ds.get(f"{var}_q_halfwidth")
        hw = hw.sel(quantile=q) if hw is not None else None
    else:
        v, hw = ds[name], ds.get(f"{name}_halfwidth")
    return v, hw


def run_point(args):
    i, load, requests, replications = args
    label, strategy, build = CASES[i]
    base = build()
    scale = capacity_scale(base)
    sc = at_load(base, load, scale)
    ev = hq.evaluate(sc)
    t0 = time.perf_counter()
    sim = hq.simulate(sc, requests=requests, replications=replications, seed=SEED)
    wall = time.perf_counter() - t0
    rows = []
    for c in sc.classes:
        row = {"case": label, "strategy": strategy, "class": c.name, "load": load,
               "rate": c.rate, "wall": wall, "sampler_saturated": int(sim.attrs["saturated"]),
               "evaluate_saturated": bool(ev.saturated.item()),
               "ev_util": {p: float(ev.utilization.sel(pool=p)) for p in ev.pool.values},
               "sim_util": {p: float(sim.utilization.sel(pool=p)) for p in sim.pool.values}}
        for m in METRICS:
            e, _ = _values(ev, m)
            s, hw = _values(sim, m)
            e, s = float(e.sel({"class": c.name})), float(s.sel({"class": c.name}))
            h = float(hw.sel({"class": c.name})) if hw is not None else math.nan
            row[m] = e / s - 1 if s > 0 and math.isfinite(e) else math.nan
            row[m + "_hw"] = h / s if s > 0 else math.nan
            row[m + "_ev"], row[m + "_sim"] = e, s
        rows.append(row)
    return rows


def run_grid(cases, loads, requests, replications, jobs):
    tasks = [(i, load, requests, replications) for i in cases for load in loads]
    rows = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for r in pool.map(run_point, tasks):
                rows += r
                _progress(r)
    else:
        for t in tasks:
            r = run_point(t)
            rows += r
            _progress(r)
    return rows


def _progress(rows):
    r = rows[0]
    print(f"  {r['case']:<44} load {r['load']:.1f}: " + "  ".join(
        f"{m} {x[m]:+.1%}" for x in rows for m in ("ttft", "tpot", "e2e")) +
        f"  ({r['wall']:.1f} s)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- report


def _pct(x, hw=None):
    if not math.isfinite(x):
        return "n/a"
    s = f"{x:+.1%}"
    if hw is not None and math.isfinite(hw):
        s += f" ±{hw:.1%}"
    return s


def _miss_mean(r, m):
    return r["load"] <= MEAN_LOAD_LIMIT and math.isfinite(r[m]) and abs(r[m]) > MEAN_TARGET


def _miss_p90(r, m):
    return math.isfinite(r[m]) and abs(r[m]) > P90_TARGET


def _noise(r, m, target):
    """A miss that the sampler's half-width could explain."""
    hw = r[m + "_hw"]
    return math.isfinite(hw) and abs(r[m]) - target <= hw


REASONS = {}  # filled by write_report: case -> explanation of its misses


def table(rows) -> list[str]:
    head = "| case | class | load | " + " | ".join(METRICS) + " | notes |"
    lines = [head, "|" + "---|" * (len(METRICS) + 4)]
    for r in rows:
        cells = []
        for m in METRICS:
            c = _pct(r[m], r[m + "_hw"])
            if (m in MEANS and _miss_mean(r, m)) or (m.endswith("p90") and _miss_p90(r, m)):
                c = f"**{c}**" + (" †" if _noise(r, m, MEAN_TARGET if m in MEANS
                                                 else P90_TARGET) else "")
            cells.append(c)
        note = []
        if r["sampler_saturated"]:
            note.append("sampler saturated")
        if r["evaluate_saturated"]:
            note.append("evaluate saturated")
        lines.append(f"| {r['case']} | {r['class']} | {r['load']:.1f} | " + " | ".join(cells)
                     + f" | {', '.join(note)} |")
    return lines


def summary(rows) -> list[str]:
    out = []
    strategies = []
    for r in rows:
        if r["case"] not in strategies:
            strategies.append(r["case"])
    out.append("Counts: points x metrics within the target (means: TTFT, TPOT, E2E, "
               "throughput at loads <= 0.8, target 10%; p90: TTFT and E2E at every load, "
               "target 20%). Worst: the largest |evaluate / sampler - 1| and where.")
    out.append("")
    out.append("| case | means met (load <= 0.8) | worst mean (metric, load) "
               "| p90 met | worst p90 (metric, load) | worst mean at 0.9 |")
    out.append("|---|---|---|---|---|---|")
    for case in strategies:
        rs = [r for r in rows if r["case"] == case]
        mean_pts = [(abs(r[m]), r[m], m, r["load"], r["class"]) for r in rs for m in MEANS
                    if r["load"] <= MEAN_LOAD_LIMIT and math.isfinite(r[m])]
        p90_pts = [(abs(r[m]), r[m], m, r["load"], r["class"]) for r in rs
                   for m in ("ttft_p90", "e2e_p90") if math.isfinite(r[m])]
        hi_pts = [(abs(r[m]), r[m], m, r["load"], r["class"]) for r in rs for m in MEANS
                  if r["load"] > MEAN_LOAD_LIMIT and math.isfinite(r[m])]
        n_mean = sum(1 for r in rs for m in MEANS if r["load"] <= MEAN_LOAD_LIMIT
                     and math.isfinite(r[m]))
        miss_mean = sum(1 for r in rs for m in MEANS if _miss_mean(r, m))
        n_p90 = len(p90_pts)
        miss_p90 = sum(1 for r in rs for m in ("ttft_p90", "e2e_p90") if _miss_p90(r, m))

        def worst(pts):
            if not pts:
                return "n/a"
            _, v, m, load, k = max(pts)
            cls = f", {k}" if len({r['class'] for r in rs}) > 1 else ""
            return f"{v:+.1%} ({m}, {load:.1f}{cls})"

        out.append(f"| {case} | {n_mean - miss_mean}/{n_mean} | {worst(mean_pts)} | "
                   f"{n_p90 - miss_p90}/{n_p90} | {worst(p90_pts)} | {worst(hi_pts)} |")
    return out


def figure(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"continuous": "tab:blue", "chunked": "tab:orange", "static": "tab:green",
               "disaggregated": "tab:red"}
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    fig, axes = plt.subplots(2, 4, figsize=(17, 8), sharex=True)
    titles = {"ttft": "mean TTFT", "tpot": "mean TPOT", "e2e": "mean E2E",
              "throughput": "throughput", "ttft_p90": "p90 TTFT", "ttft_p99": "p99 TTFT",
              "e2e_p90": "p90 E2E", "e2e_p99": "p99 E2E"}
    seen: dict[str, int] = {}
    keys = []
    for r in rows:
        k = (r["case"], r["class"])
        if k not in keys:
            keys.append(k)
    for ax, m in zip(axes.flat, METRICS):
        count: dict[str, int] = {}
        for case, cls in keys:
            rs = sorted((r for r in rows if r["case"] == case and r["class"] == cls),
                        key=lambda r: r["load"])
            strat = rs[0]["strategy"]
            j = count.get(strat, 0)
            count[strat] = j + 1
            label = case + (f" [{cls}]" if len({r['class'] for r in rows if r['case'] == case})
                            > 1 else "")
            ax.plot([r["load"] for r in rs], [100 * r[m] for r in rs], marker="o", ms=3,
                    color=colours[strat], linestyle=styles[j % len(styles)], label=label)
            seen[label] = 1
        target = MEAN_TARGET if m in MEANS else P90_TARGET
        ax.axhspan(-100 * target, 100 * target, color="0.9", zorder=0)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(titles[m])
        ax.set_ylabel("evaluate / sampler - 1 (%)")
        ax.set_ylim(-80, 80)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("load (fraction of evaluate's capacity)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("hermes-qn closed form vs LLM-level sampler (shaded: target band; "
                 "±10% on means, ±20% on tails; y clipped at ±80%)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


def write_report(rows, requests, replications, wall) -> str:
    lines = [
        "# Closed form vs LLM-level sampler",
        "",
        "Generated by `python validation/llm_agreement.py` (do not edit by hand). Each cell is "
        "`evaluate / sampler - 1` with the sampler's 95% half-width relative to its estimate "
        f"(sampler: {requests} requests x {replications} replications per point, 10% warm-up, "
        f"seed {SEED}; all classes' rates scaled together to the stated fraction of evaluate's "
        f"capacity). Bold: a miss of the targets (means: 10% at loads <= 0.8; p90: 20%); "
        f"† marks a miss smaller than the sampler's half-width ({replications} replications: wide t "
        f"intervals near capacity). Figure: `llm_agreement.svg`. Full run: {wall / 60:.1f} min.",
        "",
        "Hardware: H100-SXM, one replica per pool, Llama-3.1-8B (Mistral-7B on the second "
        "routed pool); prompts 256 (short) or 3000 (long) tokens, SCV 0.5; outputs 200 tokens, "
        "SCV 1; one case takes both lengths from the Azure conversation trace (shipped "
        "quantiles, heavy-tailed). Cases: `" + "`, `".join(c[0] for c in CASES) + "`.",
        "",
        "## Summary",
        "",
    ]
    lines += summary(rows)
    lines += ["", "### Where and why the targets are missed", ""]
    lines += EXPLANATIONS
    lines += ["", "## All points", ""]
    lines += table(rows)
    lines.append("")
    return "\n".join(lines)


#: Reasons for the misses, from the mechanics of evaluate and the sampler (see the module
#: docstrings of hermes_qn.evaluate and hermes_qn.llm_sampler); written after reading the table.
EXPLANATIONS: list[str] = [
    "- **continuous batching** (short, long and Azure conversation lengths, RAG, KV fetch, "
    "routing): means within 10% up to 0.8 load since evaluate prefills the prompts waiting "
    "at a step boundary in one step, as the engine does (`_PrefillBatches`): with a fixed "
    "per-step cost (about 14 ms on Llama-3.1-8B, H100), serving them one by one overstated "
    "TTFT by up to +90% (disaggregated, 0.8) and +39% (continuous short prompts, 0.8). "
    "Continuous long prompts: per-request mean TPOT -7% to -10% at 0.7-0.8 (the sampler's "
    "TPOT is a mean over requests of decode time / (tokens - 1), and a 3000-token prefill "
    "in the few gaps of a short request weighs heavily; evaluate adds the batches queued "
    "behind a request's own prefill to its first gap, the rest is not modelled). "
    "E2E p99 on the Azure lengths +15% to +24%: E2E percentiles come from a gamma, which "
    "does not reproduce the trace's heavy-tailed outputs.",
    "- **two classes**, short class: mean TTFT +11% to +12% at 0.7-0.8 (†) and the long "
    "class -12% at 0.8 (†): one batch size and one wait serve both classes, and a batch "
    "is timed at its mean length; p90 TTFT of the short class +25% and +35% at 0.1-0.3, "
    "where the long class's 3000-token prefills are its rare, long waits (the exponential "
    "conditional wait has the right mean but not the sampler's shape).",
    "- **static batching**, TTFT -12% to -17% at 0.7-0.8 (†): gated batches whose size "
    "solves b = max(1, lambda T(b)); queues longer than one batch near capacity are not "
    "modelled.",
    "- **chunked prefill**, TTFT -13% (short) and -22% (long) at 0.8, p90 TTFT of long "
    "prompts -22% and -32% at 0.7-0.8 (†): the queue of prompts near capacity; "
    "**reasoning** (chunked), TPOT -11% to -13% and E2E p90 -22% to -24% at 0.7-0.8. "
    "These paths are unchanged by the batched prefill; on the previous step-time "
    "calibration they met the targets (up to 0.8: chunked long TTFT -14%).",
    "- **disaggregated**: means within 10% up to 0.8 (gated prefill batches, with the "
    "prompts left over from full steps near capacity) but for long prompts' TTFT +23% at "
    "0.7 (†, half-width ±15%; +2% at 0.8), p90 TTFT +35% there (†) and at 0.9 (†).",
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid, print only")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--requests", type=int, default=None)
    a = ap.parse_args(argv)
    started = time.perf_counter()
    if a.quick:
        requests, reps = a.requests or 1500, 2
        rows = run_grid(QUICK_CASES, QUICK_LOADS, requests, reps, a.jobs)
        print("\n".join(summary(rows)))
        print()
        print("\n".join(table(rows)))
        return 0
    requests, reps = a.requests or REQUESTS, REPLICATIONS
    rows = run_grid(range(len(CASES)), LOADS, requests, reps, a.jobs)
    wall = time.perf_counter() - started
    OUT_MD.write_text(write_report(rows, requests, reps, wall))
    figure(rows, OUT_SVG)
    print(f"wrote {OUT_MD} and {OUT_SVG} in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
