"""hermes_qn.compare: the per-request CSV schema, Vidur's request metrics, and the comparison
with the closed form (on the sampler's own records, where the answer is known).

The Vidur tests read ``vidur-runs`` under ``$HERMES_QN_TRACES`` (set by scripts/test.py) or
``../shared/traces``, and skip when neither is there.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hermes_qn as hq
from hermes_qn import compare as cmp
from hermes_qn.errors import ValidationError
from hermes_qn.scenario import Generate, Pool, RequestClass, Scenario
from hermes_qn.workload import TokenLengths


def _traces() -> Path | None:
    env = os.environ.get("HERMES_QN_TRACES")
    here = Path(__file__).resolve().parent
    for p in ([Path(env)] if env else []) + [here.parent.parent / "shared" / "traces",
                                            Path("../shared/traces")]:
        if (p / "vidur-runs").is_dir():
            return p / "vidur-runs"
    return None


VIDUR = _traces()
requires_vidur = pytest.mark.skipif(VIDUR is None, reason="needs the Vidur runs "
                                    "($HERMES_QN_TRACES/vidur-runs or ../shared/traces/vidur-runs)")

MODEL = "llama-3.1-8b"


def chat(rate=1.0, batching="continuous"):
    pool = Pool("gpu", "H100-SXM", devices=1, models=(MODEL,), batching=batching)
    c = RequestClass("chat", (Generate.on("gpu", MODEL),), prompt_tokens=TokenLengths.of(500, 0.5),
                     output_tokens=TokenLengths.of(100, 1.0), rate=rate)
    return Scenario("chat", (pool,), (c,))


# --------------------------------------------------------------------------- CSV schema


def synthetic():
    # 5 requests, one every 2 s; TTFT 0.1..0.5 s; 11 output tokens at 0.02 s each after the first
    arrival = np.arange(5) * 2.0
    ttft = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    first = arrival + ttft
    completion = first + 10 * 0.02
    return pd.DataFrame({"arrival": arrival, "first_token": first, "completion": completion,
                         "prompt_tokens": [100, 200, 300, 400, 500],
                         "output_tokens": [11] * 5})


def test_csv_round_trip_known_metrics(tmp_path):
    path = tmp_path / "requests.csv"
    synthetic().to_csv(path, index=False)
    df = cmp.read_requests(path)
    assert list(df.columns[:5]) == list(cmp.COLUMNS)
    pd.testing.assert_frame_equal(df[list(cmp.COLUMNS)], synthetic(), check_dtype=False)
    m = cmp.request_metrics(df)
    assert m["ttft"] == pytest.approx(0.3)
    assert m["ttft_p50"] == pytest.approx(0.3)
    assert m["tpot"] == pytest.approx(0.02)
    assert m["e2e"] == pytest.approx(0.5)
    assert m["throughput"] == pytest.approx(5 / (8.0 + 0.5 + 0.2))  # first arrival -> last done
    assert m["arrival_rate"] == pytest.approx(0.5)
    assert m["prompt_tokens"] == 300 and m["output_tokens"] == 11


def test_tpot_ignores_single_token_requests():
    df = synthetic()
    df.loc[0, "output_tokens"] = 1
    df.loc[0, "completion"] = df.loc[0, "first_token"]
    assert cmp.request_metrics(df)["tpot"] == pytest.approx(0.02)


def test_bad_csv_says_what_is_wrong(tmp_path):
    path = tmp_path / "bad.csv"
    synthetic().drop(columns="first_token").to_csv(path, index=False)
    with pytest.raises(ValidationError, match="first_token"):
        cmp.read_requests(path)
    df = synthetic()
    df.loc[2, "completion"] = df.loc[2, "arrival"] - 1
    df.to_csv(path, index=False)
    with pytest.raises(ValidationError, match="row 2"):
        cmp.read_requests(path)
    with pytest.raises(ValidationError, match="not a file"):
        cmp.read_requests(tmp_path / "missing.csv")


def test_compare_columns_and_verdicts():
    sc = chat()
    out = cmp.compare(synthetic(), sc)
    assert {"metric", "detailed", "closed_form", "relative_difference", "load_fraction",
            "verdict"} <= set(out.columns)
    row = out.set_index("metric").loc["ttft"]
    assert row.relative_difference == pytest.approx(row.closed_form / row.detailed - 1)
    # evaluated at the records' rate (0.5/s), not the scenario's 1/s
    assert out.attrs["arrival_rate"]["chat"] == pytest.approx(0.5)
    ev = hq.evaluate(sc, rates={"chat": 0.5})
    assert row.closed_form == pytest.approx(ev.ttft.item())
    assert row.load_fraction == pytest.approx(0.5 / ev.capacity.item())
    assert all(isinstance(v, str) and v for v in out.verdict)


def test_compare_needs_class_column_for_several_classes():
    sc = chat()
    two = Scenario("two", sc.pools, (sc.classes[0], RequestClass(
        "other", sc.classes[0].pipeline, prompt_tokens=100, output_tokens=10, rate=0.5)))
    with pytest.raises(ValidationError, match="class"):
        cmp.compare(synthetic(), two)
    df = synthetic().assign(**{"class": "nope"})
    with pytest.raises(ValidationError, match="nope"):
        cmp.compare(df, two)


# --------------------------------------------------------------------------- Vidur


@requires_vidur
@pytest.mark.parametrize("run", ["a30_vllm", "a30_sarathi"])
def test_read_vidur_matches_its_summary(run):
    import json
    df = cmp.read_vidur(VIDUR / run)
    summary = json.loads((VIDUR / run / "summary.json").read_text())
    m = cmp.request_metrics(df)
    assert len(df) == summary["requests"]
    assert m["ttft"] == pytest.approx(summary["TTFT_s"]["mean"])
    assert m["e2e"] == pytest.approx(summary["E2E_s"]["mean"])
    assert m["e2e_p99"] == pytest.approx(summary["E2E_s"]["p99"])
    assert m["throughput"] == pytest.approx(summary["throughput_req_s"], rel=1e-3)
    assert m["prompt_tokens"] == pytest.approx(1222, abs=1)
    assert m["output_tokens"] == pytest.approx(226, abs=1)
    assert m["arrival_rate"] == pytest.approx(2.0, rel=0.15)  # Poisson QPS 2, 300 requests
    # Vidur's TPOT divides by the decode tokens; ours by decode tokens - 1
    assert m["tpot"] > summary["TPOT_ms(decode time/decode tokens)"]["mean"] / 1000
    assert "config" in df.attrs


@requires_vidur
def test_vidur_scenario_names_missing_hardware_and_takes_stand_ins():
    with pytest.raises(ValidationError, match="a30.*device="):
        cmp.vidur_scenario(VIDUR / "a30_vllm")
    with pytest.raises(ValidationError, match="Qwen.*model="):
        cmp.vidur_scenario(VIDUR / "a30_vllm", device="A100-80GB-SXM")
    sc = cmp.vidur_scenario(VIDUR / "a30_sarathi", device="A100-80GB-SXM", model="qwen2.5-7b")
    pool = sc.pools[0]
    assert pool.batching == "chunked" and pool.chunk_tokens == 512 and pool.batch_cap == 128
    assert pool.tp == 1 and pool.pp == 1 and pool.devices == 1
    assert pool.memory_utilization == pytest.approx(0.9)
    assert sc.classes[0].rate == 2.0
    assert isinstance(sc.classes[0].prompt_tokens.shape, hq.Empirical)
    assert "a30" in sc.description
    vllm = cmp.vidur_scenario(VIDUR / "a30_vllm", device="A100-80GB-SXM", model="qwen2.5-7b")
    assert vllm.pools[0].batching == "continuous"
    assert vllm.pools[0].max_batched_tokens == 4096


@requires_vidur
def test_compare_vidur_records_the_stand_ins():
    out = cmp.compare_vidur(VIDUR / "a30_vllm", device="A100-80GB-SXM", model="qwen2.5-7b")
    assert "a30" in out.attrs["device_override"]
    assert "Qwen" in out.attrs["model_override"]
    assert set(out.metric) >= {"ttft", "tpot", "e2e", "ttft_p90", "e2e_p99", "throughput"}
    assert np.isfinite(out.relative_difference).all()
    assert 0 < out.load_fraction.iloc[0] < 1


# --------------------------------------------------------------------------- the sampler


@pytest.mark.slow
@pytest.mark.parametrize("batching, load", [("continuous", 0.3), ("continuous", 0.6),
                                            ("chunked", 0.3)])
def test_compare_on_sampler_records_agrees(batching, load):
    base = chat(batching=batching)
    cap = hq.evaluate(base).capacity.item()
    sc = base.with_value("classes.chat.rate", load * cap)
    ds, df = hq.simulate(sc, requests=3000, replications=3, seed=11, records=True)
    out = cmp.compare(df, sc).set_index("metric")
    m = cmp.request_metrics(df)
    # the records give the sampler's own estimates
    for v in ("ttft", "e2e"):
        assert m[v] == pytest.approx(ds[v].item(), rel=0.02)
    assert out.attrs["load_fraction"]["chat"] == pytest.approx(load, rel=0.1)
    # and the closed form agrees with them as it agrees with the sampler (tests/test_agreement.py)
    tol = 0.10 if batching == "continuous" else 0.15
    for v in ("ttft", "tpot", "e2e"):
        noise = 3 * ds[f"{v}_halfwidth"].item() / ds[v].item()
        assert abs(out.loc[v, "relative_difference"]) <= tol + noise, (v, out.loc[v].verdict)
    assert out.loc["throughput", "within"], out.loc["throughput"].verdict  # 5% + the drain
    assert out.loc["prompt_tokens", "relative_difference"] == pytest.approx(0, abs=0.03)
