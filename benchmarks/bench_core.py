"""Speed of the queueing core: prints one line per case with the median of several runs.

Usage: python benchmarks/bench_core.py

Targets (issue 2): exact MVA for 2 classes x 50 clients x 10 stations under
50 ms; Schweitzer AMVA for 8 classes x 100 clients x 20 stations under 5 ms; an
open solve over 10^6 arrival rates under 1 s; and the event sampler's events
per second.
"""

from __future__ import annotations

import time

import numpy as np

import hermes_qn as hq
from hermes_qn.solvers.amva import schweitzer
from hermes_qn.solvers.mva import exact_mva
from hermes_qn.solvers.open import solve_open


def median_seconds(fn, repeats: int = 7) -> float:
    fn()  # warm caches and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def closed_network(classes: int, population: int, stations: int, seed: int = 0) -> hq.Network:
    rng = np.random.default_rng(seed)
    names = [f"s{m}" for m in range(stations)]
    return hq.Network(
        stations={n: hq.Queue() for n in names},
        classes={f"c{k}": hq.Closed(population, think_time=1.0) for k in range(classes)},
        demands={f"c{k}": {n: float(rng.uniform(0.01, 0.1)) for n in names} for k in range(classes)},
    )


def main() -> None:
    rows = []
    exact_arrays = closed_network(2, 50, 10).arrays()
    rows.append(("exact MVA, 2 classes x 50 clients, 10 stations (kernel)",
                 median_seconds(lambda: exact_mva(exact_arrays)), 0.050))
    amva_arrays = closed_network(8, 100, 20).arrays()
    rows.append(("Schweitzer AMVA, 8 classes x 100 clients, 20 stations (kernel)",
                 median_seconds(lambda: schweitzer(amva_arrays)), 0.005))
    rates = np.linspace(0.0, 1.2, 1_000_000)
    open_net = hq.Network(stations={"cpu": hq.Queue(), "pool": hq.Queue(servers=4), "lan": hq.Delay()},
                          classes={"jobs": hq.Open(rates)},
                          demands={"jobs": {"cpu": 0.5, "pool": 1.5, "lan": 0.1}})
    open_arrays = open_net.arrays()
    rows.append(("open solve over 10^6 arrival rates (kernel)",
                 median_seconds(lambda: solve_open(open_arrays), repeats=3), 1.0))
    rows.append(("open solve over 10^6 arrival rates (hq.solve, Dataset included)",
                 median_seconds(lambda: hq.solve(open_net), repeats=3), 1.0))
    small = closed_network(2, 50, 10)
    rows.append(("hq.solve exact, 2 x 50 clients, 10 stations (Dataset included)",
                 median_seconds(lambda: hq.solve(small, method="exact")), 0.050))
    width = max(len(r[0]) for r in rows)
    for name, seconds, target in rows:
        verdict = "ok" if seconds <= target else "SLOWER THAN TARGET"
        print(f"{name:<{width}}  {seconds * 1e3:10.3f} ms   target {target * 1e3:7.1f} ms  {verdict}")
    mm1 = hq.Network(stations={"cpu": hq.Queue(), "disk": hq.Queue(discipline="fcfs")},
                     classes={"jobs": hq.Open(0.8)}, demands={"jobs": {"cpu": 1.0, "disk": 0.5}})
    sim = hq.simulate(mm1, seed=1, replications=4, horizon=25_000.0, warmup=1_000.0)
    print(f"{'event sampler, 2-station open tandem':<{width}}  "
          f"{sim.attrs['events_per_second']:10.0f} events/s")


if __name__ == "__main__":
    main()
