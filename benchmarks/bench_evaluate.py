"""Speed of hq.evaluate: prints the median time per call for each case.

Usage: python benchmarks/bench_evaluate.py

Targets (issue 4): the default scenario (chat-h100) under 5 ms; a 5-class,
8-pool scenario under 50 ms. Also a vectorised sweep of 10^4 arrival rates of
the default scenario (issue 6 aims at 1 s for 10^4 points of rate x batch cap).
"""

from __future__ import annotations

import numpy as np

import hermes_qn as hq
from bench_core import median_seconds  # the script's folder is on sys.path
from hermes_qn.examples import multi_pool_scenario


def main() -> None:
    default = hq.load_scenario("chat-h100")
    large = multi_pool_scenario()
    rates = np.linspace(1.0, 60.0, 10_000)
    cases = [
        ("evaluate chat-h100 (default), target 5 ms", lambda: hq.evaluate(default), 5e-3),
        ("evaluate 5 classes x 8 pools, target 50 ms", lambda: hq.evaluate(large), 50e-3),
        ("evaluate chat-h100 over 10^4 rates (one call)",
         lambda: hq.evaluate(default, rates={"chat": rates}), None),
    ]
    for label, fn, target in cases:
        t = median_seconds(fn, repeats=5 if target is None else 9)
        verdict = "" if target is None else ("  ok" if t <= target else "  OVER TARGET")
        print(f"{label:55s} {t * 1e3:9.2f} ms{verdict}")


if __name__ == "__main__":
    main()
