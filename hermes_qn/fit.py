"""Fit step-time models to measured traces; write the coefficients that ship with hermes-qn.

Two kinds of fit, both on *step times* (one prefill of a batch of prompts, or
one decode iteration of a batch), both judged on rows they did not see:

1. **Calibrated roofline** (``source="calibrated"`` in :mod:`hermes_qn.service`).
   One parameter set per phase (prefill, decode), shared by every model, device
   and parallel layout::

       gpu  = roofline(matmul_efficiency, memory_efficiency)        # no communication
       comm = roofline_tp_comm(link_efficiency * link_bandwidth, link_latency)
              + allreduce * n_allreduce
       host = overhead_layer * layers + per_item * batch
       t    = overhead_step + comm + (gpu**k + host**k) ** (1/k)    # k = overlap_power

   where ``roofline`` is :func:`hermes_qn.roofline.prefill` or
   :func:`~hermes_qn.roofline.decode_step` with the fitted efficiencies,
   ``roofline_tp_comm`` is its ``tp_comm`` operator (ring all-reduces of the
   hidden state, ``2 (tp-1)`` link latencies each) at the fitted fraction
   ``link_efficiency`` of the catalog's link bandwidth, ``n_allreduce = 2 layers
   + 1`` when ``tp > 1`` (a fixed cost per collective, whatever the ring size:
   NCCL's launch and synchronisation), and ``batch`` is the number of
   sequences in the step. ``host`` is the engine's CPU work (kernel launches
   per layer, per-sequence scheduling, input preparation and sampling), which
   overlaps the GPU's: ``k = 1`` adds the two, ``k -> inf``
   takes the larger (decode fits k ~ 9: at small batch the step is a ~0.3 ms
   per-layer launch floor plus ~8 ms per step, which is why small-batch decode
   is 1.5-3x the pure roofline; prefill fits k = 1). Communication is added
   outside the overlap: a collective synchronises the ranks, so neither the
   host's launches nor other GPU work hide it. The two communication terms are
   what the held-out TP degrees need: the traces show all-reduces running at a
   fraction of the NVLink bandwidth (prefill fits ~21 %, ~64 GB/s, in line with
   the DistServe per-token slopes) and ~0.1 ms of fixed cost per collective;
   with the catalog bandwidth the missing comm time went into ``per_item``,
   which then also charged TP 1. The host's variable work is per *sequence* in
   both phases (prefill fits ~2.5 ms per prompt: scheduling, input preparation,
   sampling of its first token). A per-*token* host term in prefill (as fitted
   until 2026-11) is no engine cost the GPU does not already pay per token: the
   fit used it to move model-size-dependent compute into a model-independent
   constant (31 us per token), so the held-out smallest model read up to 93 %
   high (whole OPT-13B held out: 43 % -> 17 % without it; row-weighted TP-degree
   holdouts 14.2 % -> 12.6 %). The nine parameters are fitted by bounded least
   squares on ``log(t)`` (three starts; the overlap makes the objective
   non-convex). Unprofiled hardware gets this model through its catalog peaks
   and bandwidths. Caveat: both traced engines (Splitwise's, DistServe-era
   vLLM) launch kernels without CUDA graphs; an engine that captures graphs has
   a much lower host floor, so the calibrated model over-predicts its
   small-batch decode (a user CSV refit fixes that). Held-out error: leave one
   *whole configuration group* out (a TP degree of one model, or a whole model),
   refit, predict the held-out rows.

2. **Per-configuration regression** (``source="fitted"``). For each profiled
   (model, device, tp, phase), a linear model in the roofline's work counts
   (see :func:`_features`) by non-negative least squares with relative weights.
   Held-out error: leave one measured point out.

Traces read (never copied into the package; see ``traces_dir``):

- SplitwiseSim ``splitwise-sim/data/perf_model.csv`` (Patel et al., "Splitwise",
  ISCA 2024; MIT): measured ``prompt_time`` and ``token_time`` (ms) of
  Llama-2-70B on DGX-A100 at TP 2, 4, 8 (repeats reduced to their median; one
  inconsistent prefill row dropped, see ``_drop_inconsistent``).
  Its batched prefills (``batch`` x 512 tokens) take longer than one prompt of
  ``batch * 512`` tokens (16 x 512 at TP 2/4/8: 3.24/2.89/2.08 s against
  2.99/2.28/1.55 s for 8192 tokens), and SplitwiseSim interpolates its table on
  ``prompt * batch``; reading those rows as one joined sequence (causal
  attention over ``batch * 512`` tokens) was tried and left out: held-out
  TP-degree error 12.64 -> 12.60 %, but Llama-2-70B TP 2 26.2 -> 28.6 % and
  the whole of OPT-66B 11.7 -> 13.8 %. A memory-bound attention-score term (``heads/tp
  x tokens x (tokens + context)`` elements per layer and sequence, at a fitted
  number of bytes each) fits to zero bytes, so it is not in the model either.
  BLOOM-176B rows are skipped (no catalog model; ALiBi is not in the model schema).
- DistServe ``distserve/simdistserve/estimators/profile_data/profiler-a100-80g.vllm.json``
  (Zhong et al., "DistServe", OSDI 2024; Apache-2.0): vLLM step-time formulas
  fitted by the DistServe authors to their A100-80GB profiles of OPT-13B (TP 1,
  2, 4) and OPT-66B (TP 2, 3, 4, 8). Those are fits, not raw measurements: we
  evaluate them on a grid inside the profiled range (prompts 32..2048 tokens,
  decode batch 1..64, context 64..1536) and treat the values as measurements,
  leaving out grid points whose KV cache exceeds the capacity DistServe lists
  in ``max_num_tokens.csv`` (such a step never runs; OPT-66B at TP 2 holds
  11,600 tokens, and its formula extrapolated to 64 x 1024 tokens gave KV reads
  six times slower than at the other TP degrees).
- Vidur ``vidur/data/profiling/compute/{a100,h100}/meta-llama/*/mlp.csv``
  (Agrawal et al., "Vidur", MLSys 2024; MIT): per-layer GEMM kernel times of
  Llama-2-7B (A100, H100) and Llama-3-8B (A100), TP 1-8, 1..32768 tokens.
  These carry no engine overhead, so they calibrate only the GPU side
  (:func:`calibrate_kernels`: matmul and memory efficiency plus a per-kernel
  launch cost, per device) and give the one *whole-GPU* holdout we have
  (fit on A100, predict H100, and back). Reported in the coefficient file under
  ``kernels``; not (yet) folded into the calibrated step model.
- A user CSV (:func:`load_csv`) in the schema ``model, device, tp, pp, phase,
  tokens, batch, context, time_ms`` (``phase`` is ``prefill`` or ``decode``;
  ``tokens`` is prompt tokens per sequence for prefill and is ignored for decode;
  ``context`` is cached tokens per sequence; ``pp`` may be left out (1)).

Regenerate the shipped files with::

    python -m hermes_qn.fit --traces ../shared/traces

which writes ``hermes_qn/data/service_coefficients.json`` (parameters, sources,
train and held-out MAPE per group) and ``hermes_qn/data/service_summary.csv``
(the reduced measurement table the tests check the shipped fit against) and
``hermes_qn/data/service_kernel_summary.csv`` (Vidur GEMM times at powers of two).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from . import roofline
from .errors import ValidationError
from .hardware import load_device
from .models import Model
from .models import load as load_model

__all__ = [
    "CALIBRATED_PARAMS",
    "DATA_DIR",
    "ENV_VAR",
    "TRACE_MODELS",
    "calibrate",
    "calibrate_kernels",
    "fit_kernels",
    "load_vidur",
    "predict_kernels",
    "fit_config",
    "holdout_report",
    "load_summary",
    "load_csv",
    "load_distserve",
    "load_splitwise",
    "load_traces",
    "main",
    "predict_calibrated",
    "predict_config",
    "summarize",
    "traces_dir",
    "validation_table",
]

#: Environment variable naming the traces folder.
ENV_VAR = "HERMES_QN_TRACES"
#: Where the shipped coefficients live.
DATA_DIR = Path(__file__).resolve().parent / "data"
COEFFICIENTS_FILE = "service_coefficients.json"
SUMMARY_FILE = "service_summary.csv"

#: Parameters of the calibrated roofline, in fit units, with bounds.
CALIBRATED_PARAMS = ("matmul_efficiency", "memory_efficiency", "link_efficiency",
                     "link_latency_us", "allreduce_us", "overhead_step_ms", "overhead_layer_us",
                     "per_item_us", "overlap_power")
_LOWER = np.array([0.05, 0.05, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
_UPPER = np.array([1.0, 1.0, 1.0, 200.0, 500.0, 100.0, 2000.0, 5000.0, 30.0])
_X0 = np.array([0.6, 0.7, 0.3, 10.0, 20.0, 5.0, 300.0, 10.0, 4.0])

COLUMNS = ("source", "model", "device", "tp", "pp", "phase", "tokens", "batch", "context", "time_s")


def _opt(name: str, hf: str, layers: int, hidden: int, heads: int, ffn: int) -> Model:
    return Model(name=name, architecture="decoder", layers=layers, hidden_size=hidden,
                 query_heads=heads, kv_heads=heads, head_dim=hidden // heads, ffn_size=ffn,
                 gated_ffn=False, vocab_size=50272, tied_embeddings=True, max_context=2048,
                 activation="relu", norm="layernorm", position_embedding="learned",
                 learned_positions=2050, qkv_bias=True, linear_bias=True,
                 display_name=name.upper(), hf_repo=hf,
                 sources={"all": f"Hugging Face {hf} config.json: num_hidden_layers={layers}, "
                          f"hidden_size={hidden}, num_attention_heads={heads}, ffn_dim={ffn}, "
                          "vocab_size=50272, max_position_embeddings=2048 (+2 offset), "
                          "activation_function=relu, enable_bias=true"})


#: Models that appear in the traces but not in the catalog (``models/``); the
#: catalog should gain them (see the report), until then they live here.
TRACE_MODELS: dict[str, Model] = {
    "opt-13b": _opt("opt-13b", "facebook/opt-13b", 40, 5120, 40, 20480),
    "opt-66b": _opt("opt-66b", "facebook/opt-66b", 64, 9216, 72, 36864),
}


def get_model(name: str | Model) -> Model:
    """A catalog model, or one of :data:`TRACE_MODELS`."""
    if isinstance(name, Model):
        return name
    if name in TRACE_MODELS:
        return TRACE_MODELS[name]
    return load_model(name)


# --------------------------------------------------------------------------- loading


def traces_dir(path: str | os.PathLike | None = None) -> Path:
    """The traces folder: ``path``, else ``$HERMES_QN_TRACES``, else ``../shared/traces``.

    ``../shared/traces`` is tried relative to the current directory and to the
    repository root (the folder holding ``hermes_qn/``).

    Raises
    ------
    FileNotFoundError
        None of them is a folder; the message lists what was tried.
    """
    tried = []
    if path is not None:
        tried.append(Path(path))
    elif os.environ.get(ENV_VAR):
        tried.append(Path(os.environ[ENV_VAR]))
    else:
        tried += [Path.cwd() / ".." / "shared" / "traces",
                  Path(__file__).resolve().parent.parent.parent / "shared" / "traces"]
    for p in tried:
        if p.is_dir():
            return p.resolve()
    raise FileNotFoundError(f"traces folder: none of {[str(p) for p in tried]} exists; valid: pass "
                            f"--traces PATH or set {ENV_VAR}")


_SPLITWISE_MODELS = {"llama2-70b": "llama-2-70b"}
_SPLITWISE_DEVICES = {"a100-80gb": "A100-80GB-SXM", "h100-80gb": "H100-SXM"}


def load_splitwise(traces: str | os.PathLike | None = None) -> pd.DataFrame:
    """SplitwiseSim ``perf_model.csv`` as step-time rows (median of repeats), seconds.

    Prefill: ``tokens = prompt_size``, ``batch = batch_size``, ``context = 0``.
    Decode: ``token_time`` is the mean iteration over the generation, so
    ``context = prompt_size + token_size / 2`` (mean cached tokens per sequence).
    """
    f = traces_dir(traces) / "splitwise-sim" / "data" / "perf_model.csv"
    raw = pd.read_csv(f)
    raw = raw[raw["model"].isin(_SPLITWISE_MODELS) & raw["hardware"].isin(_SPLITWISE_DEVICES)]
    g = raw.groupby(["model", "hardware", "tensor_parallel", "prompt_size", "batch_size",
                     "token_size"], as_index=False)[["prompt_time", "token_time"]].median()
    base = pd.DataFrame({"source": "splitwise", "model": g["model"].map(_SPLITWISE_MODELS),
                         "device": g["hardware"].map(_SPLITWISE_DEVICES),
                         "tp": g["tensor_parallel"].astype(int), "pp": 1,
                         "batch": g["batch_size"].astype(float)})
    pre = base.assign(phase="prefill", tokens=g["prompt_size"].astype(float), context=0.0,
                      time_s=g["prompt_time"] / 1e3)
    # prefill does not depend on the output length: keep one row per (prompt, batch)
    pre = pre.groupby(["source", "model", "device", "tp", "pp", "phase", "tokens", "batch",
                       "context"], as_index=False)["time_s"].median()
    dec = base.assign(phase="decode", tokens=1.0,
                      context=(g["prompt_size"] + g["token_size"] / 2).astype(float),
                      time_s=g["token_time"] / 1e3)
    pre = _drop_inconsistent(pre)
    return pd.concat([pre, dec], ignore_index=True)[list(COLUMNS)]


def _drop_inconsistent(pre: pd.DataFrame) -> pd.DataFrame:
    """Drop prefill rows faster than half the next-smaller batch of the same sweep.

    One Splitwise row fails this: Llama-2-70B TP2, batch 64 x 512 tokens, 0.79 s
    against 6.6 s at batch 32 (8x faster for twice the work; most likely the
    batch did not fit in memory at TP2 and was cut short).
    """
    keep = pd.Series(True, index=pre.index)
    for _, g in pre.groupby(["model", "device", "tp", "tokens"]):
        g = g.sort_values("batch")
        t = g["time_s"].values
        bad = np.r_[False, t[1:] < 0.5 * t[:-1]]
        keep[g.index[bad]] = False
    return pre[keep]


def load_distserve(traces: str | os.PathLike | None = None, engine: str = "vllm") -> pd.DataFrame:
    """DistServe's fitted A100 step-time formulas evaluated on a grid inside their range, seconds."""
    f = (traces_dir(traces) / "distserve" / "simdistserve" / "estimators" / "profile_data"
         / f"profiler-a100-80g.{engine}.json")
    data = json.loads(f.read_text())
    cap = _distserve_kv_capacity(f.parent / "max_num_tokens.csv")
    rows = []
    for hf, per_tp in data.items():
        name = hf.split("/")[-1]
        if name not in TRACE_MODELS:
            continue
        for tp, c in per_tp.items():
            kv_max = cap.get((hf, int(tp)), np.inf)
            a, b, q = c["prefill"]
            for batch in (1, 2, 4):
                for tokens in (32, 64, 128, 256, 512, 1024, 2048):
                    if batch * tokens > min(2048, kv_max):
                        continue
                    s = batch * tokens
                    ms = a + b * s + q * batch * tokens**2
                    rows.append(("distserve", name, "A100-80GB-SXM", int(tp), 1, "prefill",
                                 float(tokens), float(batch), 0.0, ms / 1e3))
            thr = c["decoding_large_small_bs_threshold"]
            for batch in (1, 2, 4, 8, 16, 32, 64):
                for ctx in (64, 256, 512, 1024, 1536):
                    if batch * (ctx + 1) > kv_max:   # the KV cache would not fit: never run
                        continue
                    a, b, q = c["decoding_smallbs"] if batch < thr else c["decoding_largebs"]
                    ms = a + b * batch * ctx + q * batch
                    rows.append(("distserve", name, "A100-80GB-SXM", int(tp), 1, "decode",
                                 1.0, float(batch), float(ctx), ms / 1e3))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _distserve_kv_capacity(path: Path) -> dict[tuple[str, int], float]:
    """KV-cache tokens that fit per (Hugging Face model, tp) at pp = 1 (DistServe's table)."""
    if not path.is_file():
        return {}
    t = pd.read_csv(path)
    t = t[t["pp"] == 1]
    return {(m, int(tp)): float(n) for m, tp, n in zip(t["model"], t["tp"], t["max_num_tokens"])}


def load_csv(path: str | os.PathLike, source: str = "user") -> pd.DataFrame:
    """A user trace: columns ``model, device, tp, [pp,] phase, tokens, batch, context, time_ms``.

    Raises
    ------
    ValidationError
        A missing column, an unknown phase, or a non-positive time.
    """
    df = pd.read_csv(path)
    need = {"model", "device", "tp", "phase", "tokens", "batch", "context", "time_ms"}
    if not need <= set(df.columns):
        raise ValidationError(f"{path}: missing columns {sorted(need - set(df.columns))}; valid: "
                              f"{sorted(need | {'pp'})}")
    bad = ~df["phase"].isin(["prefill", "decode"])
    if bad.any():
        raise ValidationError(f"{path}: phase {df['phase'][bad].iloc[0]!r}; valid: 'prefill' or "
                              "'decode'")
    if (df["time_ms"] <= 0).any():
        raise ValidationError(f"{path}: time_ms must be > 0")
    out = df.assign(source=source, pp=df["pp"] if "pp" in df else 1, time_s=df["time_ms"] / 1e3)
    return out[list(COLUMNS)].astype({"tp": int, "pp": int, "tokens": float, "batch": float,
                                      "context": float})


def load_traces(traces: str | os.PathLike | None = None,
                extra: Iterable[str | os.PathLike] = ()) -> pd.DataFrame:
    """All trace rows: Splitwise, DistServe (vLLM) and any user CSVs, with a ``group`` column."""
    df = pd.concat([load_splitwise(traces), load_distserve(traces)]
                   + [load_csv(p) for p in extra], ignore_index=True)
    df["config"] = df["model"] + "/" + df["device"] + "/tp" + df["tp"].astype(str) + "/pp" \
        + df["pp"].astype(str)
    return df


# --------------------------------------------------------------------------- models


def _roof(model: Model, device: Any, tp: int, pp: int, phase: str, tokens, batch, context,
          *, matmul_efficiency: float, memory_efficiency: float, link_latency: float,
          link_efficiency: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Roofline seconds of the step split into (GPU work, tensor-parallel communication)."""
    link = getattr(device, "scale_up_bandwidth", None)
    kw = dict(tp=tp, pp=pp, matmul_efficiency=matmul_efficiency,
              memory_efficiency=memory_efficiency, link_latency=link_latency,
              link_bandwidth=None if link is None else link * link_efficiency)
    if phase == "prefill":
        st = roofline.prefill(model, device, tokens, batch=batch, context=context, **kw)
    else:
        st = roofline.decode_step(model, device, batch, context, **kw)
    # the per-operator times without building the xarray breakdown (hot in the fit loop)
    comm = np.broadcast_to(np.asarray(st._parts[4]["tp_comm"], dtype=float), np.shape(st.total))
    return np.asarray(st.total) - comm, comm


def predict_calibrated(params: dict[str, float], model: Model, device: Any, tp: int, pp: int,
                       phase: str, tokens, batch, context, *, fixed: bool = True) -> np.ndarray:
    """Calibrated roofline step time (seconds); ``fixed=False`` leaves out the fixed terms.

    A coefficient file written before ``link_efficiency`` existed reads as
    ``link_efficiency = 1`` (the catalog's link bandwidth).
    """
    gpu, comm = _roof(model, device, tp, pp, phase, tokens, batch, context,
                      matmul_efficiency=params["matmul_efficiency"],
                      memory_efficiency=params["memory_efficiency"],
                      link_latency=params["link_latency_us"] * 1e-6,
                      link_efficiency=params.get("link_efficiency", 1.0))
    if not fixed:
        return gpu + comm
    allreduces = (2 * model.layers + 1) if tp > 1 else 0
    comm = comm + params["allreduce_us"] * 1e-6 * allreduces
    host = (params["overhead_layer_us"] * 1e-6 * model.layers
            + params["per_item_us"] * 1e-6 * np.asarray(batch, float))
    k = params["overlap_power"]
    big = np.maximum(gpu, host)
    both = big * ((gpu / big) ** k + (host / big) ** k) ** (1 / k)
    return params["overhead_step_ms"] * 1e-3 + comm + both


def _roomy(model: Model, df: pd.DataFrame) -> Model:
    need = int((df["context"] + df["tokens"]).max()) + 1
    if need <= model.max_context:
        return model
    extra = {"learned_positions": need} if model.position_embedding == "learned" else {}
    return replace(model, max_context=need, **extra)


def _groups(df: pd.DataFrame):
    for (cfg, phase), g in df.groupby(["config", "phase"], sort=True):
        r = g.iloc[0]
        yield cfg, phase, _roomy(get_model(r["model"]), g), load_device(r["device"]), \
            int(r["tp"]), int(r["pp"]), g


def _vector(x) -> dict[str, float]:
    return dict(zip(CALIBRATED_PARAMS, map(float, x)))


def _predict_df(params: dict[str, float], df: pd.DataFrame) -> pd.Series:
    out = pd.Series(np.nan, index=df.index)
    for _, phase, m, d, tp, pp, g in _groups(df):
        out[g.index] = predict_calibrated(params, m, d, tp, pp, phase, g["tokens"].values,
                                          g["batch"].values, g["context"].values)
    return out


def calibrate(df: pd.DataFrame, phase: str, *, max_nfev: int = 200) -> dict[str, float]:
    """Least-squares calibration of :data:`CALIBRATED_PARAMS` on ``log`` step time, one phase."""
    df = df[df["phase"] == phase]
    if df.empty:
        raise ValidationError(f"calibrate: no {phase!r} rows; valid: a table with phase == {phase!r}")
    groups = list(_groups(df))
    # weight each configuration equally, whatever its number of rows
    weights = np.concatenate([np.full(len(g), 1 / np.sqrt(len(g))) for *_, g in groups])
    meas = np.log(np.concatenate([g["time_s"].values for *_, g in groups]))

    def resid(x):
        p = _vector(x)
        pred = np.concatenate([predict_calibrated(p, m, d, tp, pp, ph, g["tokens"].values,
                                                  g["batch"].values, g["context"].values)
                               for _, ph, m, d, tp, pp, g in groups])
        return weights * (np.log(pred) - meas)

    # several starts (additive, soft-max and hard-max overlap of GPU and host work):
    # the overlap makes the objective non-convex
    best = None
    for k, layer_us in ((1.0, 50.0), (4.0, 300.0), (20.0, 500.0)):
        x0 = _X0.copy()
        x0[CALIBRATED_PARAMS.index("overlap_power")] = k
        x0[CALIBRATED_PARAMS.index("overhead_layer_us")] = layer_us
        sol = least_squares(resid, x0, bounds=(_LOWER, _UPPER), x_scale=_UPPER - _LOWER,
                            max_nfev=max_nfev)
        if best is None or sol.cost < best.cost:
            best = sol
    return _vector(best.x)


def _features(phase: str, tokens, batch, context) -> np.ndarray:
    """Regressors of the per-configuration fit (each a roofline quantity of the step).

    Prefill: ``1, batch, batch * tokens`` (linear layers), ``batch * pairs``
    (attention, ``pairs = tokens * context + tokens * (tokens + 1) / 2``).
    Decode: ``1`` (weights read once), ``batch``, ``batch * (context + 1)`` (KV read).
    """
    T, b, C = (np.asarray(x, float) for x in (tokens, batch, context))
    T, b, C = np.broadcast_arrays(T, b, C)
    one = np.ones_like(b)
    if phase == "prefill":
        return np.stack([one, b, b * T, b * (T * C + T * (T + 1) / 2)], axis=-1)
    return np.stack([one, b, b * (C + 1)], axis=-1)


FITTED_TERMS = {"prefill": ("fixed_s", "per_sequence_s", "per_token_s", "per_attended_pair_s"),
                "decode": ("fixed_s", "per_sequence_s", "per_cached_token_s")}


def fit_config(phase: str, g: pd.DataFrame) -> dict[str, float]:
    """Per-configuration linear regression on :func:`_features` (NNLS, relative weights).

    Non-negative coefficients keep the time non-decreasing in tokens, batch and context.
    """
    t = g["time_s"].values
    A = _features(phase, g["tokens"].values, g["batch"].values, g["context"].values) / t[:, None]
    coef, _ = nnls(A, np.ones_like(t))
    return dict(zip(FITTED_TERMS[phase], map(float, coef)))


def predict_config(coef: dict[str, float], phase: str, tokens, batch, context) -> np.ndarray:
    """Step time (s) of the per-configuration regression."""
    X = _features(phase, tokens, batch, context)
    return X @ np.array([coef[k] for k in FITTED_TERMS[phase]])


def _mape(pred, meas) -> float:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    return float(100 * np.mean(np.abs(pred / meas - 1)))


def holdout_groups(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Whole-configuration holdouts: each TP degree of a model with several, and each model."""
    out = {}
    for model, g in df.groupby("model"):
        for tp in sorted(g["tp"].unique()) if g["tp"].nunique() > 1 else []:
            out[f"{model} tp{tp}"] = (df["model"] == model) & (df["tp"] == tp)
        out[f"model {model}"] = df["model"] == model
    for dev in df["device"].unique() if df["device"].nunique() > 1 else []:
        out[f"device {dev}"] = df["device"] == dev
    return out


def holdout_report(df: pd.DataFrame, phase: str, *, max_nfev: int = 100) -> list[dict[str, Any]]:
    """Refit without each holdout group; train and held-out MAPE (%) per group."""
    d = df[df["phase"] == phase]
    rows = []
    for name, mask in holdout_groups(d).items():
        train, test = d[~mask], d[mask]
        if train.empty or test.empty:
            continue
        p = calibrate(train, phase, max_nfev=max_nfev)
        rows.append({"phase": phase, "held_out": name, "n_test": int(len(test)),
                     "train_mape_pct": round(_mape(_predict_df(p, train), train["time_s"]), 2),
                     "held_out_mape_pct": round(_mape(_predict_df(p, test), test["time_s"]), 2),
                     "held_out_max_ape_pct": round(float(100 * np.max(np.abs(
                         _predict_df(p, test) / test["time_s"] - 1))), 2)})
    return rows


def _loo(phase, g) -> tuple[float, float]:
    coef = fit_config(phase, g)
    train = _mape(predict_config(coef, phase, g["tokens"].values, g["batch"].values,
                                 g["context"].values), g["time_s"])
    errs = []
    for i in range(len(g)):
        tr, te = g.drop(g.index[i]), g.iloc[[i]]
        c = fit_config(phase, tr)
        errs.append(_mape(predict_config(c, phase, te["tokens"].values, te["batch"].values,
                                         te["context"].values), te["time_s"]))
    return train, float(np.mean(errs))


def fit_all(df: pd.DataFrame, *, holdouts: bool = True) -> dict[str, Any]:
    """Everything that ships: calibrated parameters, per-config fits, held-out errors."""
    out: dict[str, Any] = {
        "description": "hermes-qn service-time coefficients; regenerate with "
                       "`python -m hermes_qn.fit --traces ../shared/traces`",
        "sources": {
            "splitwise": "SplitwiseSim data/perf_model.csv (github.com/Mutinifni/splitwise-sim, "
                         "MIT): measured Llama-2-70B prefill and decode step times on DGX-A100, "
                         "TP 2/4/8, median of 5 repeats",
            "distserve": "DistServe simdistserve/estimators/profile_data/profiler-a100-80g.vllm.json "
                         "(github.com/LLMServe/DistServe, Apache-2.0): vLLM step-time formulas "
                         "fitted to A100-80GB profiles of OPT-13B (TP 1/2/4) and OPT-66B "
                         "(TP 2/3/4/8), evaluated on a grid inside the profiled range",
        },
        "model_form": {
            "calibrated": "t = overhead_step + comm + (gpu**k + host**k)**(1/k); gpu = roofline("
                          "matmul_efficiency, memory_efficiency) without communication; comm = "
                          "roofline tensor-parallel all-reduces over link_efficiency * link "
                          "bandwidth with link_latency + allreduce * (2 layers + 1 if tp > 1); "
                          "host = overhead_layer * layers + per_item * batch (sequences in "
                          "the step); k = overlap_power",
            "fitted": "prefill: t = fixed + per_sequence*batch + per_token*batch*tokens + "
                      "per_attended_pair*batch*(tokens*context + tokens*(tokens+1)/2); decode: "
                      "t = fixed + per_sequence*batch + per_cached_token*batch*(context+1); "
                      "non-negative least squares on relative error",
        },
        "calibrated": {}, "fitted": {}, "holdout": [], "fitted_loo": [],
    }
    for phase in ("prefill", "decode"):
        p = calibrate(df, phase)
        d = df[df["phase"] == phase]
        out["calibrated"][phase] = {k: round(v, 6) for k, v in p.items()} | {
            "train_mape_pct": round(_mape(_predict_df(p, d), d["time_s"]), 2)}
        if holdouts:
            out["holdout"] += holdout_report(df, phase)
        for cfg, ph, m, dev, tp, pp, g in _groups(d):
            coef = fit_config(ph, g)
            train, loo = _loo(ph, g)
            lo = {"tokens": float(g["tokens"].min()), "batch": float(g["batch"].min()),
                  "context": float(g["context"].min())}
            hi = {"tokens": float(g["tokens"].max()), "batch": float(g["batch"].max()),
                  "context": float(g["context"].max())}
            out["fitted"].setdefault(cfg, {})[ph] = {k: float(f"{v:.6g}") for k, v in coef.items()} \
                | {"range_min": lo, "range_max": hi, "source": g["source"].iloc[0]}
            out["fitted_loo"].append({"config": cfg, "phase": ph, "n": int(len(g)),
                                      "train_mape_pct": round(train, 2),
                                      "loo_mape_pct": round(loo, 2)})
    return out


# --------------------------------------------------------------------------- Vidur kernels

#: Vidur model folders and the catalog model with the same layer shapes
#: (Meta-Llama-3-8B and Llama-3.1-8B share every dimension that a layer's GEMMs see).
_VIDUR_MODELS = {"meta-llama/Llama-2-7b-hf": "llama-2-7b", "meta-llama/Meta-Llama-3-8B": "llama-3.1-8b"}
_VIDUR_DEVICES = {"a100": "A100-80GB-SXM", "h100": "H100-SXM"}
_VIDUR_GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
_KERNEL_OPS = ("qkv_proj", "o_proj", "ffn")
KERNEL_PARAMS = ("matmul_efficiency", "memory_efficiency", "launch_us")
KERNEL_SUMMARY_FILE = "service_kernel_summary.csv"


def load_vidur(traces: str | os.PathLike | None = None) -> pd.DataFrame:
    """Vidur ``mlp.csv`` profiles: the four GEMMs of one layer on one GPU (median), seconds.

    Columns ``model, device, tp, tokens, gemm_time_s`` (QKV, output, gate+up and
    down projections summed, per layer, per tensor-parallel rank), reduced to
    the median over duplicate rows. Measured with PyTorch by the Vidur authors
    (Agrawal et al., "Vidur", MLSys 2024; github.com/microsoft/vidur, MIT).
    """
    root = traces_dir(traces) / "vidur" / "data" / "profiling" / "compute"
    parts = []
    for gpu, device in _VIDUR_DEVICES.items():
        for folder, model in _VIDUR_MODELS.items():
            f = root / gpu / folder / "mlp.csv"
            if not f.is_file():
                continue
            raw = pd.read_csv(f)
            t = sum(raw[f"time_stats.{k}.median"] for k in _VIDUR_GEMMS) / 1e3
            d = pd.DataFrame({"model": model, "device": device,
                              "tp": raw["num_tensor_parallel_workers"].astype(int),
                              "tokens": raw["num_tokens"].astype(float), "gemm_time_s": t})
            parts.append(d.groupby(["model", "device", "tp", "tokens"], as_index=False).median())
    if not parts:
        raise FileNotFoundError(f"no Vidur mlp.csv under {root}")
    return pd.concat(parts, ignore_index=True)


def _kernel_terms(df: pd.DataFrame) -> list[tuple[pd.Index, np.ndarray, np.ndarray, float]]:
    """Per group: roofline compute and memory seconds per GEMM operator (efficiency 1), per layer."""
    out = []
    for (model, device, tp), g in df.groupby(["model", "device", "tp"]):
        m = get_model(model)
        b = roofline.prefill(m, device, g["tokens"].values, tp=int(tp), matmul_efficiency=1.0,
                             memory_efficiency=1.0).breakdown.sel(operator=list(_KERNEL_OPS))
        ct = b["compute_time"].transpose(..., "operator").values / m.layers
        mt = b["memory_time"].transpose(..., "operator").values / m.layers
        out.append((g.index, ct, mt, float(len(_VIDUR_GEMMS))))
    return out


def _kernel_predict(p: dict[str, float], terms) -> dict[Any, np.ndarray]:
    res = {}
    for idx, ct, mt, kernels in terms:
        t = np.maximum(ct / p["matmul_efficiency"], mt / p["memory_efficiency"]).sum(axis=-1)
        res[idx[0]] = (idx, t + kernels * p["launch_us"] * 1e-6)
    return res


def calibrate_kernels(df: pd.DataFrame) -> dict[str, float]:
    """Matmul and memory efficiency and per-kernel launch cost fitted to Vidur GEMM times."""
    terms = _kernel_terms(df)
    meas = np.log(np.concatenate([df.loc[idx, "gemm_time_s"].values for idx, *_ in terms]))

    def resid(x):
        p = dict(zip(KERNEL_PARAMS, x))
        pr = _kernel_predict(p, terms)
        return np.log(np.concatenate([pr[idx[0]][1] for idx, *_ in terms])) - meas

    sol = least_squares(resid, [0.6, 0.7, 5.0], bounds=([0.05, 0.05, 0.0], [1.0, 1.0, 100.0]),
                        x_scale=[1.0, 1.0, 100.0])
    return {k: round(float(v), 6) for k, v in zip(KERNEL_PARAMS, sol.x)}


def predict_kernels(p: dict[str, float], df: pd.DataFrame) -> pd.Series:
    """Predicted per-layer GEMM time (s) of each row of a :func:`load_vidur` table."""
    out = pd.Series(np.nan, index=df.index)
    for idx, t in _kernel_predict(p, _kernel_terms(df)).values():
        out[idx] = t
    return out


def fit_kernels(df: pd.DataFrame) -> dict[str, Any]:
    """Per-device kernel calibration and held-out errors (a whole GPU; a whole model)."""
    res: dict[str, Any] = {"by_device": {}, "holdout": []}
    for dev, g in df.groupby("device"):
        p = calibrate_kernels(g)
        res["by_device"][dev] = p | {"train_mape_pct": round(_mape(predict_kernels(p, g),
                                                                   g["gemm_time_s"]), 2)}
    groups = {f"device {d}": df["device"] == d for d in df["device"].unique()}
    groups |= {f"model {m}": df["model"] == m for m in df["model"].unique()}
    for name, mask in groups.items():
        if mask.all() or not mask.any():
            continue
        p = calibrate_kernels(df[~mask])
        test = df[mask]
        res["holdout"].append({"held_out": name, "n_test": int(mask.sum()),
                               "train_mape_pct": round(_mape(predict_kernels(p, df[~mask]),
                                                             df[~mask]["gemm_time_s"]), 2),
                               "held_out_mape_pct": round(_mape(predict_kernels(p, test),
                                                                test["gemm_time_s"]), 2)})
    return res


def load_summary(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The shipped reduced measurement table (``hermes_qn/data/service_summary.csv``)."""
    df = pd.read_csv(path or DATA_DIR / SUMMARY_FILE)
    df["config"] = df["model"] + "/" + df["device"] + "/tp" + df["tp"].astype(str) + "/pp" \
        + df["pp"].astype(str)
    return df


def validation_table(df: pd.DataFrame, source: str, *, held_out: bool = False) -> pd.DataFrame:
    """Predicted vs measured step time per row, with the error in percent.

    ``source`` is ``"roofline"``, ``"calibrated"`` or ``"fitted"`` (shipped
    coefficients). With ``held_out=True`` (calibrated only) a column
    ``held_out_s`` adds the prediction of a calibration refitted without the
    row's whole configuration (its model and TP degree).
    """
    from . import service  # late: service imports this module

    out = df.drop(columns=["config"]).copy()
    pred = pd.Series(np.nan, index=df.index)
    for cfg, phase, m, d, tp, pp, g in _groups(df):
        kw = dict(tp=tp, pp=pp, source=source)
        if phase == "prefill":
            pred[g.index] = service.prefill_time(m, d, prompt_tokens=g["tokens"].values,
                                                 batch=g["batch"].values,
                                                 context_tokens=g["context"].values, **kw)
        else:
            pred[g.index] = service.decode_step_time(m, d, batch=g["batch"].values,
                                                     context_tokens=g["context"].values, **kw)
    out["predicted_s"] = pred.map(lambda v: float(f"{v:.6g}"))
    out["error_pct"] = (100 * (pred / df["time_s"] - 1)).round(2)
    if held_out:
        ho = pd.Series(np.nan, index=df.index)
        for (cfg, phase), g in df.groupby(["config", "phase"]):
            train = df[(df["phase"] == phase) & (df["config"] != cfg)]
            p = calibrate(train, phase, max_nfev=100)
            ho[g.index] = _predict_df(p, g)
        out["held_out_s"] = ho.map(lambda v: float(f"{v:.6g}"))
        out["held_out_error_pct"] = (100 * (ho / df["time_s"] - 1)).round(2)
    return out


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """MAPE (%) per configuration and phase of a :func:`validation_table`."""
    t = table.assign(config=table["model"] + "/" + table["device"] + "/tp" + table["tp"].astype(str))
    cols = {"n": ("error_pct", "size"),
            "mape_pct": ("error_pct", lambda e: round(float(np.mean(np.abs(e))), 2)),
            "max_ape_pct": ("error_pct", lambda e: round(float(np.max(np.abs(e))), 2))}
    if "held_out_error_pct" in t:
        cols["held_out_mape_pct"] = ("held_out_error_pct",
                                     lambda e: round(float(np.mean(np.abs(e))), 2))
    return t.groupby(["source", "config", "phase"]).agg(**cols).reset_index()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hermes_qn.fit", description=__doc__.split("\n")[0])
    ap.add_argument("--traces", default=None, help=f"traces folder (default ${ENV_VAR} or "
                    "../shared/traces)")
    ap.add_argument("--csv", action="append", default=[], help="extra user CSV (schema in the "
                    "module docstring); repeatable")
    ap.add_argument("--out", default=str(DATA_DIR), help="output folder (default the package's)")
    ap.add_argument("--no-holdouts", action="store_true", help="skip the held-out refits")
    a = ap.parse_args(argv)
    df = load_traces(a.traces, a.csv)
    res = fit_all(df, holdouts=not a.no_holdouts)
    try:
        vidur = load_vidur(a.traces)
    except FileNotFoundError:
        vidur = None
    if vidur is not None:
        res["sources"]["vidur"] = ("Vidur data/profiling/compute/{a100,h100}/meta-llama/*/mlp.csv "
                                   "(github.com/microsoft/vidur, MIT): per-layer GEMM kernel times "
                                   "(median) of Llama-2-7B (A100, H100) and Llama-3-8B (A100), TP "
                                   "1-8; fits GPU efficiencies only (no engine overheads)")
        res["kernels"] = fit_kernels(vidur)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / COEFFICIENTS_FILE).write_text(json.dumps(res, indent=1) + "\n")
    summary = df[["source", "model", "device", "tp", "pp", "phase", "tokens", "batch", "context",
                  "time_s"]].copy()
    summary["time_s"] = summary["time_s"].map(lambda v: float(f"{v:.6g}"))
    summary.to_csv(out / SUMMARY_FILE, index=False)
    if vidur is not None:
        grid = 2.0 ** np.arange(0, 16)
        k = vidur[vidur["tokens"].isin(grid)].copy()
        k["gemm_time_s"] = k["gemm_time_s"].map(lambda v: float(f"{v:.6g}"))
        k.to_csv(out / KERNEL_SUMMARY_FILE, index=False)
        for r in res["kernels"]["holdout"]:
            print("kernels", r)
    for ph, p in res["calibrated"].items():
        print(ph, p)
    for r in res["holdout"]:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
