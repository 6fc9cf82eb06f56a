"""Speed of the LLM-level event sampler (hermes_qn.llm_sampler): requests/s and events/s.

Usage: python benchmarks/bench_sampler.py [--requests N]

Target: 10^5 requests of a chat scenario (Llama-3.1-8B on one 8x H100 pool,
8 replicas, continuous batching, about 60% of the closed form's capacity) in
under 30 s on one core. Also times chunked and static batching, the built-in
disaggregated scenario and a RAG pipeline, at 2x10^4 requests each.
"""

from __future__ import annotations

import argparse
import time

from hermes_qn.llm_sampler import simulate_scenario
from hermes_qn.scenario import Generate, Pool, RequestClass, Scenario, TokenLengths

MODEL = "llama-3.1-8b"


def chat(rate: float, batching: str = "continuous") -> Scenario:
    pool = Pool("gpu", "H100-SXM", devices=8, models=(MODEL,), batch_cap=256, batching=batching)
    c = RequestClass("chat", (Generate.on("gpu", MODEL),), prompt_tokens=TokenLengths.of(1000, 0.5),
                     output_tokens=TokenLengths.of(200, 1.0), rate=rate)
    return Scenario("chat", (pool,), (c,))


def capacity(sc: Scenario) -> float | None:
    try:
        from hermes_qn.evaluate import evaluate
    except ImportError:
        return None
    return float(evaluate(sc).capacity.values[0])


def run(label: str, sc: Scenario, requests: int) -> None:
    start = time.perf_counter()
    ds = simulate_scenario(sc, requests=requests, replications=1, seed=0, progress=False)
    seconds = time.perf_counter() - start
    events = ds.attrs["events"]
    print(f"{label:<34} {requests:>7} requests {seconds:7.2f} s  {requests / seconds:9.0f} "
          f"requests/s  {events / seconds:10.0f} events/s  (e2e {float(ds.e2e.values[0]):.2f} s, "
          f"utilization {float(ds.utilization.values[0]):.2f}, "
          f"batch {float(ds.batch_size.values[0]):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    cap = capacity(chat(20.0)) or 66.0
    rate = 0.6 * cap
    print(f"chat: closed-form capacity {cap:.1f} requests/s; running at 60% = {rate:.1f}/s")
    run("chat continuous (60% load)", chat(rate), args.requests)
    small = max(2, args.requests // 5)
    run("chat chunked (60% load)", chat(rate, "chunked"), small)
    run("chat static (20 req/s)", chat(20.0, "static"), small)
    try:
        from hermes_qn.scenario import load_scenario
        for name in ("disaggregated", "rag-cpu", "reasoning", "remote-kv"):
            run(f"built-in {name}", load_scenario(name), small)
    except Exception as e:  # built-ins missing or not simulable here
        print(f"built-in scenarios skipped: {e}")


if __name__ == "__main__":
    main()
