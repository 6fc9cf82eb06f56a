"""Closed form against the LLM-level sampler, per batching strategy: a change that breaks
agreement fails here. Tolerances are the measured gaps (issue 5's tables) plus sampling noise."""

import pytest

import hermes_qn as hq
from hermes_qn.scenario import Generate, Pool, RequestClass, Scenario, Target
from hermes_qn.workload import TokenLengths

MODEL = "llama-3.1-8b"
PROMPT, OUTPUT = TokenLengths.of(1000, 0.5), TokenLengths.of(200, 1.0)


def colocated(batching):
    pool = Pool("gpu", "H100-SXM", devices=2, models=(MODEL,), batching=batching)
    c = RequestClass("chat", (Generate.on("gpu", MODEL),), prompt_tokens=PROMPT,
                     output_tokens=OUTPUT, rate=1.0)
    return Scenario(batching, (pool,), (c,))


def disaggregated():
    pools = (Pool("pre", "H100-SXM", devices=1, models=(MODEL,)),
             Pool("dec", "H100-SXM", devices=1, models=(MODEL,)))
    gen = Generate((Target(MODEL, prefill_pool="pre", decode_pool="dec", link="IB-NDR-400"),))
    c = RequestClass("chat", (gen,), prompt_tokens=PROMPT, output_tokens=OUTPUT, rate=1.0)
    return Scenario("disaggregated", pools, (c,))


# (scenario, load as a fraction of capacity, relative tolerance on mean TTFT, TPOT, E2E)
CASES = [
    (colocated("continuous"), 0.3, 0.10), (colocated("continuous"), 0.6, 0.10),
    (colocated("chunked"), 0.3, 0.15), (colocated("chunked"), 0.6, 0.15),
    (disaggregated(), 0.3, 0.10), (disaggregated(), 0.6, 0.10),
    (colocated("static"), 0.15, 0.20),
]


@pytest.mark.slow
@pytest.mark.parametrize("scenario, load, tol", CASES,
                         ids=[f"{c[0].name}-{c[1]}" for c in CASES])
def test_means_agree_with_the_sampler(scenario, load, tol):
    cap = hq.evaluate(scenario).capacity.item()
    sc = scenario.with_value("classes.chat.rate", load * cap)
    ev = hq.evaluate(sc)
    sim = hq.simulate(sc, requests=4000, replications=3, seed=7)
    for var in ("ttft", "tpot", "e2e"):
        closed, sampled = ev[var].item(), sim[var].item()
        noise = 3 * sim[f"{var}_halfwidth"].item()
        assert abs(closed - sampled) <= tol * sampled + noise, (var, closed, sampled)
    assert ev.throughput.item() == pytest.approx(sim.throughput.item(),
                                                 abs=3 * sim.throughput_halfwidth.item() + 1e-9)
