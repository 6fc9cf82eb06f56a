"""hermes_qn.service and hermes_qn.fit: shipped fits, held-out error, monotonicity, errors.

The accuracy tests run on the shipped summary table (``hermes_qn/data/service_summary.csv``,
derived from the Splitwise and DistServe traces); only the tests that re-read the
raw traces skip when ``../shared/traces`` (or ``$HERMES_QN_TRACES``) is absent.
"""

import json

import numpy as np
import pandas as pd
import pytest

from hermes_qn import fit, service
from hermes_qn.errors import ValidationError

try:
    fit.traces_dir()
    has_traces = True
except FileNotFoundError:
    has_traces = False
requires_traces = pytest.mark.skipif(not has_traces, reason="needs the traces folder "
                                     "(../shared/traces or $HERMES_QN_TRACES) to re-read raw traces")

A100 = "A100-80GB-SXM"


@pytest.fixture(scope="module")
def summary():
    return fit.load_summary()


@pytest.fixture(scope="module")
def coef():
    return service.coefficients()


def _mape(pred, meas):
    return float(100 * np.mean(np.abs(np.asarray(pred) / np.asarray(meas) - 1)))


# --------------------------------------------------------------------------- shipped fit


def test_shipped_file_cites_sources_and_reports_holdouts(coef):
    assert {"splitwise", "distserve"} <= set(coef["sources"]) <= {"splitwise", "distserve", "vidur"}
    assert set(coef["calibrated"]) == {"prefill", "decode"}
    for p in coef["calibrated"].values():
        assert set(fit.CALIBRATED_PARAMS) <= set(p)
        assert 0 < p["matmul_efficiency"] <= 1 and 0 < p["memory_efficiency"] <= 1
    groups = {(r["phase"], r["held_out"]) for r in coef["holdout"]}
    assert ("decode", "model llama-2-70b") in groups and ("prefill", "llama-2-70b tp8") in groups
    assert len(coef["fitted_loo"]) == 2 * len(coef["fitted"])


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_calibrated_in_sample_mape_under_15(summary, coef, phase):
    d = summary[summary["phase"] == phase]
    assert _mape(fit._predict_df(coef["calibrated"][phase], d), d["time_s"]) < 15


# Held-out whole configurations (issue 3's target: MAPE < 15 % on a configuration the
# fit never saw). The shipped coefficient file records one refit per group
# (hermes_qn/data/service_coefficients.json "holdout"). Measured (2026-11), row-weighted
# over the TP-degree holdouts: prefill 12.6 %, decode 10.9 % (the target is met in
# aggregate). Per group, meeting it: decode Llama-2-70B TP4 3.1 %, TP8 15.0 % (at the
# bound, listed as a miss), whole model 11.0 %; OPT-13B TP2 3.1 %, TP4 6.5 %, whole model
# 13.9 %; OPT-66B TP2 9.1 %, TP3 3.0 %, TP4 4.7 %, whole model 12.8 %. Prefill: OPT-13B
# TP2 9.6 %, TP4 7.3 %; OPT-66B TP2-TP8 5.5-10.3 %, whole model 11.7 %. Missing it, with
# the reason (bounds in HELD_OUT_MISSES pin what is achieved, so a regression shows):
# - decode OPT-13B TP1 (22.9 %): the only TP 1 configuration; held out, nothing fixes
#   the launch floor without collectives, and the floor per layer differs between
#   OPT-13B and OPT-66B by ~30 % in the DistServe data;
# - decode OPT-66B TP8 (24.5 %): 31 ms at batch 1, 0.49 ms per layer, below the
#   OPT-13B floor at any TP; extrapolating from TP <= 4 over-predicts it;
# - decode Llama-2-70B TP2 (17.5 %) and TP8 (15.0 %): ends of Splitwise's TP range;
# - prefill Llama-2-70B TP2/4/8 (26 / 19 / 24 %) and the whole model (26 %): Splitwise's
#   batched prefills grow faster than linearly in the batch (16 x 512 tokens takes longer
#   than one 8192-token prompt at every TP), and single prompts at TP 8 grow faster than
#   linearly in the tokens (4096 -> 8192: 2.34x), more than the attention FLOPs explain;
#   neither reading the batch as one joined sequence nor a memory-bound attention-score
#   term helped held out (the score term fits to zero);
# - prefill OPT-13B TP1 (17.9 %, the only TP 1 configuration) and the whole of OPT-13B
#   (17.4 %): the smallest model's 32-token prompts read up to 80 % high (the fixed
#   per-step cost fitted on the larger models).
MEETS_TARGET = {
    "decode": ["llama-2-70b tp4", "model llama-2-70b", "opt-13b tp2", "opt-13b tp4",
               "model opt-13b", "opt-66b tp2", "opt-66b tp3", "opt-66b tp4", "model opt-66b"],
    "prefill": ["opt-13b tp2", "opt-13b tp4", "opt-66b tp2", "opt-66b tp3", "opt-66b tp4",
                "opt-66b tp8", "model opt-66b"],
}
HELD_OUT_MISSES = [
    ("decode", "opt-13b tp1", 25.0),
    ("decode", "opt-66b tp8", 27.0),
    ("decode", "llama-2-70b tp2", 20.0),
    ("decode", "llama-2-70b tp8", 17.0),
    ("prefill", "llama-2-70b tp2", 28.0),
    ("prefill", "llama-2-70b tp4", 21.0),
    ("prefill", "llama-2-70b tp8", 26.0),
    ("prefill", "model llama-2-70b", 28.0),
    ("prefill", "opt-13b tp1", 20.0),
    ("prefill", "model opt-13b", 20.0),
]


def _holdout_rows(coef):
    return {(r["phase"], r["held_out"]): r for r in coef["holdout"]}


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_shipped_held_out_tp_degrees_under_15_in_aggregate(coef, phase):
    rows = [r for r in coef["holdout"] if r["phase"] == phase
            and not r["held_out"].startswith(("model ", "device "))]
    got = sum(r["n_test"] * r["held_out_mape_pct"] for r in rows) / sum(r["n_test"] for r in rows)
    assert got < 15


@pytest.mark.parametrize("phase, group", [(p, g) for p, gs in MEETS_TARGET.items() for g in gs])
def test_shipped_held_out_error_under_15(coef, phase, group):
    assert _holdout_rows(coef)[(phase, group)]["held_out_mape_pct"] < 15


@pytest.mark.parametrize("phase, group, bound", HELD_OUT_MISSES)
def test_shipped_held_out_misses_stay_pinned(coef, phase, group, bound):
    assert _holdout_rows(coef)[(phase, group)]["held_out_mape_pct"] < bound


def test_every_holdout_group_is_listed(coef):
    listed = {(p, g) for p, gs in MEETS_TARGET.items() for g in gs}
    listed |= {(p, g) for p, g, _ in HELD_OUT_MISSES}
    assert set(_holdout_rows(coef)) == listed


# Refits from the shipped summary (no traces needed) check that the recorded
# held-out errors are what the model gives, for groups of both phases and sources.
HELD_OUT_REFITS = [
    ("decode", "opt-66b tp2"),
    ("decode", "model llama-2-70b"),
    ("prefill", "opt-66b tp8"),
    ("prefill", "model opt-13b"),
]


@pytest.mark.parametrize("phase, group", HELD_OUT_REFITS)
def test_held_out_configuration_error(summary, coef, phase, group):
    d = summary[summary["phase"] == phase]
    mask = fit.holdout_groups(d)[group]
    p = fit.calibrate(d[~mask], phase, max_nfev=100)
    got = _mape(fit._predict_df(p, d[mask]), d[mask]["time_s"])
    assert got == pytest.approx(_holdout_rows(coef)[(phase, group)]["held_out_mape_pct"], abs=1.0)


def test_fitted_leave_one_out_under_15(summary):
    for (cfg, phase), g in summary.groupby(["config", "phase"]):
        train, loo = fit._loo(phase, g)
        assert loo < 15, (cfg, phase, loo)


def test_fitted_reproduces_summary(summary):
    for (cfg, phase), g in summary.groupby(["config", "phase"]):
        r = g.iloc[0]
        kw = dict(tp=int(r["tp"]), pp=int(r["pp"]), source="fitted")
        if phase == "prefill":
            t = service.prefill_time(r["model"], r["device"], prompt_tokens=g["tokens"].values,
                                     batch=g["batch"].values, **kw)
        else:
            t = service.decode_step_time(r["model"], r["device"], batch=g["batch"].values,
                                         context_tokens=g["context"].values, **kw)
        assert _mape(t, g["time_s"]) < 12, cfg


def test_calibrated_fixes_small_batch_roofline_gap(summary):
    d = summary[(summary["phase"] == "decode") & (summary["batch"] == 1)]
    for _, r in d.groupby("config").head(1).iterrows():
        args = (r["model"], r["device"], int(r["tp"]), 1)
        roof = service.decode_step_time(*args, batch=1, context_tokens=r["context"],
                                        source="roofline")
        cal = service.decode_step_time(*args, batch=1, context_tokens=r["context"],
                                       source="calibrated")
        assert roof < 0.8 * r["time_s"]              # the pure roofline under-predicts
        assert abs(cal / r["time_s"] - 1) < 0.3      # the calibrated one does not


@pytest.fixture(scope="module")
def kernels():
    return pd.read_csv(fit.DATA_DIR / fit.KERNEL_SUMMARY_FILE)


@pytest.mark.parametrize("held_out, bound", [("A100-80GB-SXM", 10.0), ("H100-SXM", 20.0)])
def test_kernel_efficiencies_transfer_to_an_unseen_gpu(kernels, held_out, bound):
    # Vidur GEMM times, whole GPU held out. On this power-of-two summary (small token
    # counts weigh more) measured 2026-11: A100 from H100 under 10 %, H100 from A100
    # 15.7 %; on the full Vidur tables 6.9 % and 9.5 % (coefficient file, next test).
    train, test = kernels[kernels["device"] != held_out], kernels[kernels["device"] == held_out]
    p = fit.calibrate_kernels(train)
    assert _mape(fit.predict_kernels(p, test), test["gemm_time_s"]) < bound


def test_kernel_holdouts_recorded(coef):
    rows = {r["held_out"]: r for r in coef["kernels"]["holdout"]}
    assert {"device H100-SXM", "device A100-80GB-SXM", "model llama-2-7b"} <= set(rows)
    assert all(r["held_out_mape_pct"] < 15 for r in rows.values())


# --------------------------------------------------------------------------- API


def test_auto_picks_fitted_where_covered_and_calibrated_elsewhere():
    kw = dict(batch=[1, 4], context_tokens=512)
    auto = service.decode_step_time("llama-2-70b", A100, tp=4, **kw)
    np.testing.assert_allclose(auto, service.decode_step_time("llama-2-70b", A100, tp=4,
                                                              source="fitted", **kw))
    auto = service.decode_step_time("llama-3.1-8b", "H100-SXM", **kw)
    np.testing.assert_allclose(auto, service.decode_step_time("llama-3.1-8b", "H100-SXM",
                                                              source="calibrated", **kw))
    assert "llama-2-70b/A100-80GB-SXM/tp4/pp1" in service.covered_configurations()


def test_broadcasting_and_scalars():
    t = service.prefill_time("llama-3.1-8b", "H100-SXM", prompt_tokens=[[128], [512], [2048]],
                             batch=[1, 2, 4, 8])
    assert t.shape == (3, 4)
    assert isinstance(service.decode_step_time("llama-3.1-8b", "H100-SXM", batch=1,
                                               context_tokens=0), float)


def test_model_and_device_objects_accepted():
    from hermes_qn import hardware, models

    a = service.decode_step_time(models.load("llama-2-7b"), hardware.load_device("H100-SXM"),
                                 batch=8, context_tokens=100)
    b = service.decode_step_time("llama-2-7b", "H100-SXM", batch=8, context_tokens=100)
    assert a == b


CASES = [("llama-2-70b", A100, 4), ("opt-66b", A100, 2), ("llama-3.1-8b", "H100-SXM", 1),
         ("mixtral-8x7b", "H100-SXM", 2), ("qwen2.5-7b", "MI300X", 1)]


@pytest.mark.parametrize("source", service.SOURCES)
@pytest.mark.parametrize("model, device, tp", CASES)
def test_monotone_in_tokens_batch_and_context(model, device, tp, source):
    if source == "fitted" and not any(c.startswith(f"{model}/{device}/tp{tp}/")
                                      for c in service.covered_configurations()):
        pytest.skip("no trace covers this configuration")
    tokens = np.array([1, 16, 128, 512, 1024, 1500])
    batch = np.array([1, 2, 8, 32, 64, 256])
    ctx = np.array([0, 64, 256, 1000, 1500])
    kw = dict(tp=tp, source=source)
    for t in (service.prefill_time(model, device, prompt_tokens=tokens, batch=4, **kw),
              service.prefill_time(model, device, prompt_tokens=256, batch=batch, **kw),
              service.prefill_time(model, device, prompt_tokens=64, context_tokens=ctx, **kw),
              service.decode_step_time(model, device, batch=batch, context_tokens=300, **kw),
              service.decode_step_time(model, device, batch=8, context_tokens=ctx, **kw)):
        assert np.all(t > 0) and np.all(np.diff(t) >= 0), t


# --------------------------------------------------------------------------- errors


def test_unknown_source():
    with pytest.raises(ValidationError, match=r"source: got 'measured'; valid: one of 'auto', "
                       r"'roofline', 'calibrated', 'fitted'"):
        service.decode_step_time("llama-2-7b", "H100-SXM", batch=1, context_tokens=0,
                                 source="measured")


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt_tokens=-5), r"prompt_tokens: got -5.0; valid: finite numbers >= 1"),
    (dict(prompt_tokens=[10, 0]), r"prompt_tokens: got 0.0; valid: finite numbers >= 1"),
    (dict(prompt_tokens=10, batch=0), r"batch: got 0.0; valid: finite numbers >= 1"),
    (dict(prompt_tokens=10, context_tokens=-1), r"context_tokens: got -1.0; valid: .* >= 0"),
    (dict(prompt_tokens=np.nan), r"prompt_tokens: got nan"),
    (dict(), r"prompt_tokens: missing; valid"),
    (dict(prompt_tokens=10, tp=0), r"tp: got 0; valid: an integer >= 1"),
    (dict(prompt_tokens=[1, 2], batch=[1, 2, 3]), r"inputs do not broadcast"),
])
def test_prefill_bad_arguments(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        service.prefill_time("llama-2-7b", "H100-SXM", **kwargs)


def test_decode_bad_arguments():
    with pytest.raises(ValidationError, match=r"context_tokens: got -3.0"):
        service.decode_step_time("llama-2-7b", "H100-SXM", batch=1, context_tokens=-3)
    with pytest.raises(ValidationError, match=r"context_tokens: missing"):
        service.decode_step_time("llama-2-7b", "H100-SXM", batch=1)


def test_fitted_uncovered_configuration_names_the_valid_ones():
    with pytest.raises(ValidationError, match=r"'fitted' has no decode fit for "
                       r"llama-2-7b/H100-SXM/tp1/pp1; valid: .*llama-2-70b/A100-80GB-SXM/tp2/pp1"):
        service.decode_step_time("llama-2-7b", "H100-SXM", batch=1, context_tokens=0,
                                 source="fitted")


def test_unknown_model():
    with pytest.raises(ValidationError, match="model"):
        service.decode_step_time("no-such-model", "H100-SXM", batch=1, context_tokens=0)


# --------------------------------------------------------------------------- fit inputs


def test_user_csv_schema(tmp_path):
    p = tmp_path / "mine.csv"
    pd.DataFrame({"model": ["llama-2-7b"] * 3, "device": ["H100-SXM"] * 3, "tp": 1,
                  "phase": ["decode"] * 3, "tokens": 1, "batch": [1, 8, 32],
                  "context": 512, "time_ms": [9.0, 10.0, 14.0]}).to_csv(p, index=False)
    df = fit.load_csv(p)
    assert list(df.columns) == list(fit.COLUMNS) and (df["pp"] == 1).all()
    assert df["time_s"].tolist() == [0.009, 0.010, 0.014]
    coef = fit.fit_config("decode", df)
    assert all(v >= 0 for v in coef.values())
    pd.DataFrame({"model": ["x"], "time_ms": [1.0]}).to_csv(p, index=False)
    with pytest.raises(ValidationError, match=r"missing columns \['batch', 'context'"):
        fit.load_csv(p)


def test_traces_dir_env_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(fit.ENV_VAR, str(tmp_path))
    assert fit.traces_dir() == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="HERMES_QN_TRACES"):
        fit.traces_dir(tmp_path / "absent")


@requires_traces
def test_shipped_summary_is_what_the_traces_give(summary):
    df = fit.load_traces()
    assert len(df) == len(summary)
    np.testing.assert_allclose(df["time_s"].values, summary["time_s"].values, rtol=1e-5)
    assert (df["config"].values == summary["config"].values).all()


@requires_traces
def test_refit_from_traces_matches_shipped(coef):
    df = fit.load_traces()
    for phase in ("prefill", "decode"):
        p = fit.calibrate(df, phase)
        d = df[df["phase"] == phase]
        assert _mape(fit._predict_df(p, d), d["time_s"]) == pytest.approx(
            coef["calibrated"][phase]["train_mape_pct"], abs=0.5)


def test_doctests():
    import doctest

    from hermes_qn import fit as fit_module

    for mod in (service, fit_module):
        failures, _ = doctest.testmod(mod)
        assert failures == 0, mod.__name__
