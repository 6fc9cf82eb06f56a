"""Speed of hq.sweep over arrival rate x batch cap of the default scenario (chat-h100).

Usage: python benchmarks/bench_sweep.py [--profile]

Targets (issue 6): 10^4 points (100 rates x 100 batch caps) under 1 s; 10^6
points (1000 rates x 1000 batch caps, measured, not extrapolated) under a
minute. Wall-clock seconds, and CPU seconds of this process (steadier on a
shared machine). Rates are vectorised through hq.evaluate, batch caps loop (one
evaluate call of 100 or 1000 rates per batch cap). ``--profile`` prints where
the time of the 10^4 sweep goes (cProfile, top 15 by cumulative time).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import numpy as np

import hermes_qn as hq


def wall_and_cpu(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def grid(n: int) -> dict:
    return {"rate": np.linspace(1.0, 60.0, n), "batch_cap": list(range(8, 8 * n + 1, 8))}


def main() -> None:
    scenario = hq.load_scenario("chat-h100")
    small = grid(100)
    t, cpu = wall_and_cpu(lambda: hq.sweep(scenario, progress=False, **small), repeats=5)
    print(f"{'sweep chat-h100, 10^4 points (100 rates x 100 caps), target 1 s':66s} "
          f"{t:7.2f} s{'  ok' if t <= 1.0 else '  OVER TARGET'}  (CPU {cpu:.2f} s)")
    start, cpu = time.perf_counter(), time.process_time()
    ds = hq.sweep(scenario, progress=False, **grid(1000))
    t, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{'sweep chat-h100, 10^6 points (1000 rates x 1000 caps), target 60 s':66s} "
          f"{t:7.2f} s{'  ok' if t <= 60.0 else '  OVER TARGET'}  (CPU {cpu:.1f} s; "
          f"{int(ds.saturated.sum())} saturated points kept)")
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.runcall(hq.sweep, scenario, progress=False, **small)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
