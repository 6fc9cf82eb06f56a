"""Check a detailed simulator (or a measured run) against the closed form.

A detailed, event-driven simulator (Vidur, HERMES, a real engine's logs) writes
one row per request. :func:`compare` computes the serving metrics from those
rows and sets them beside :func:`hermes_qn.evaluate` of a matching
:class:`~hermes_qn.scenario.Scenario` *at the arrival rate measured in the
records*, so a difference is one of mechanics (or of a bug), not of load.

The per-request CSV schema (:func:`read_requests`)
--------------------------------------------------
One row per completed request; a header row names the columns. Required:

``arrival``
    Time the request arrived, seconds (any origin; only differences are used).
``first_token``
    Time its first output token was produced, seconds (same clock).
``completion``
    Time its last output token was produced (the request left), seconds.
``prompt_tokens``
    Prompt (prefill) tokens, a count >= 0.
``output_tokens``
    Output (decode) tokens including the first, a count >= 1.

Optional: ``class`` (the request class name, for scenarios with several
classes; without it every row belongs to the scenario's single class) and
``replication`` (independent runs pooled in one file; the rates and the
throughput are then computed per run and pooled). Other columns are kept and
ignored. Rows must satisfy ``arrival <= first_token <= completion``.

Metrics (:func:`request_metrics`)
---------------------------------
``ttft`` = first_token - arrival; ``tpot`` = (completion - first_token) /
(output_tokens - 1), over requests with at least 2 output tokens; ``e2e`` =
completion - arrival (all in seconds; mean and the p50/p90/p99 percentiles);
``throughput`` = completed requests / span, where the span runs from the first
arrival to the last completion (Vidur's "makespan"; a finite run that drains
its backlog reads below the arrival rate, by about the share of the span after
the last arrival, which the verdict adds to the throughput tolerance);
``prompt_tokens`` and ``output_tokens`` are means. The arrival rate is
(requests - 1) / (last arrival - first arrival).

Vidur (:func:`read_vidur`, :func:`vidur_scenario`)
---------------------------------------------------
Vidur's ``request_metrics.csv`` has no absolute times: the arrival is the
cumulative sum of ``request_inter_arrival_delay`` (empty for the first
request, taken as 0), ``first_token = arrival + prefill_e2e_time`` and
``completion = arrival + request_e2e_time``; the tokens are
``request_num_prefill_tokens`` and ``request_num_decode_tokens``. Vidur's own
``decode_time_execution_plus_preemption_normalized`` divides by the decode
tokens, not by decode tokens - 1, so its TPOT reads a little lower than ours.
:func:`vidur_scenario` maps the run's ``config.json`` onto a scenario: device,
model, TP/PP, replicas, ``memory_margin_fraction``, the replica scheduler
(``vllm``/``orca``/``lightllm`` -> ``"continuous"`` with Vidur's
``max_tokens_in_batch``, ``sarathi`` -> ``"chunked"`` with its
``chunk_size``, ``faster_transformer`` -> ``"static"``), ``batch_size_cap``,
the Poisson QPS, and token lengths resampled from the records
(:class:`~hermes_qn.distributions.Empirical`). A device or model missing from
the catalogs is a :class:`~hermes_qn.errors.ValidationError` unless the
caller names a stand-in (``device=``, ``model=``); the stand-ins are recorded
in the scenario's description and in the comparison's attrs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .distributions import Empirical
from .errors import ValidationError
from .scenario import Generate, Pool, RequestClass, Scenario
from .workload import TokenLengths

__all__ = ["COLUMNS", "TOLERANCES", "compare", "compare_vidur", "read_requests", "read_vidur",
           "request_metrics", "vidur_scenario"]

#: Required columns of the per-request CSV schema, in order.
COLUMNS = ("arrival", "first_token", "completion", "prompt_tokens", "output_tokens")

#: Default relative tolerances of the verdicts, per metric family (the closed form's stated
#: targets: 10% on means, 20% on p50/p90, 30% on p99, 5% on throughput).
TOLERANCES = {"mean": 0.10, "p50": 0.20, "p90": 0.20, "p99": 0.30, "throughput": 0.05,
              "tokens": 0.02}

#: Largest load fraction at which the closed form's targets are stated.
VALIDATED_LOAD = 0.8

_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}

#: Vidur device names -> hardware catalog names (only the ones the catalog has).
VIDUR_DEVICES = {"a100": "A100-80GB-SXM", "a100_80g": "A100-80GB-SXM", "h100": "H100-SXM",
                 "h100_80g": "H100-SXM", "h200": "H200", "l40s": "L40S", "b200": "B200",
                 "mi300x": "MI300X"}

#: Vidur replica schedulers -> pool batching.
VIDUR_SCHEDULERS = {"vllm": "continuous", "orca": "continuous", "lightllm": "continuous",
                    "sarathi": "chunked", "faster_transformer": "static"}


# --------------------------------------------------------------------------- reading


def _check_records(df: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValidationError(f"{where}: missing columns {missing}; valid: a header with "
                              f"{list(COLUMNS)} (see hermes_qn.compare)")
    if len(df) == 0:
        raise ValidationError(f"{where}: no rows; valid: one row per completed request")
    out = df.copy()
    for c in COLUMNS:
        try:
            out[c] = pd.to_numeric(out[c], errors="raise").astype(float)
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: column {c!r} is not numeric; valid: numbers "
                                  "(seconds or token counts)") from None
        bad = ~np.isfinite(out[c].to_numpy())
        if bad.any():
            raise ValidationError(f"{where}: column {c!r} row {int(np.argmax(bad))} is "
                                  f"{out[c].iloc[int(np.argmax(bad))]!r}; valid: a finite number")
    a, f, e = (out[c].to_numpy() for c in ("arrival", "first_token", "completion"))
    order = (f >= a - 1e-9) & (e >= f - 1e-9)
    if not order.all():
        i = int(np.argmin(order))
        raise ValidationError(f"{where}: row {i} has arrival {a[i]!r}, first_token {f[i]!r}, "
                              f"completion {e[i]!r}; valid: arrival <= first_token <= completion")
    if (out["prompt_tokens"] < 0).any() or (out["output_tokens"] < 1).any():
        raise ValidationError(f"{where}: token counts out of range; valid: prompt_tokens >= 0, "
                              "output_tokens >= 1")
    for c in ("prompt_tokens", "output_tokens"):
        out[c] = out[c].round().astype(np.int64)
    return out


def read_requests(path: str | Path) -> pd.DataFrame:
    """Read per-request output in the schema of the module docstring into a DataFrame.

    Returns the columns of :data:`COLUMNS` (times as float seconds, tokens as
    integers), plus any other columns of the file (``class``, ``replication``).
    Raises :class:`~hermes_qn.errors.ValidationError` naming a missing column or
    a bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"read_requests: {str(path)!r} is not a file; valid: a CSV with "
                              f"columns {list(COLUMNS)}")
    df = pd.read_csv(path)
    out = _check_records(df, f"read_requests({path.name})")
    out.attrs["source"] = str(path)
    return out


def _vidur_files(run_dir: str | Path) -> tuple[Path, Path]:
    run = Path(run_dir)
    metrics, config = run / "request_metrics.csv", run / "config.json"
    if not metrics.is_file():
        raise ValidationError(f"read_vidur: no request_metrics.csv in {str(run)!r}; valid: a "
                              "Vidur output folder (request_metrics.csv and config.json)")
    return metrics, config


def read_vidur(run_dir: str | Path) -> pd.DataFrame:
    """Read a Vidur run's ``request_metrics.csv`` into the schema of :func:`read_requests`.

    The mapping is in the module docstring. The Vidur columns ``Request Id``
    (as ``request_id``) and ``request_num_restarts`` (as ``restarts``) are
    kept; ``attrs`` hold ``source`` and, when present, the parsed
    ``config.json`` (``attrs["config"]``).
    """
    metrics, config = _vidur_files(run_dir)
    raw = pd.read_csv(metrics)
    need = ["request_inter_arrival_delay", "prefill_e2e_time", "request_e2e_time",
            "request_num_prefill_tokens", "request_num_decode_tokens"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ValidationError(f"read_vidur: {metrics} lacks columns {missing}; valid: Vidur's "
                              "request metrics (store_request_metrics = true)")
    if "Request Id" in raw.columns:
        raw = raw.sort_values("Request Id", kind="stable").reset_index(drop=True)
    arrival = raw["request_inter_arrival_delay"].fillna(0.0).astype(float).cumsum().to_numpy()
    df = pd.DataFrame({
        "arrival": arrival,
        "first_token": arrival + raw["prefill_e2e_time"].astype(float).to_numpy(),
        "completion": arrival + raw["request_e2e_time"].astype(float).to_numpy(),
        "prompt_tokens": raw["request_num_prefill_tokens"].to_numpy(),
        "output_tokens": raw["request_num_decode_tokens"].to_numpy(),
    })
    if "Request Id" in raw.columns:
        df["request_id"] = raw["Request Id"].to_numpy()
    if "request_num_restarts" in raw.columns:
        df["restarts"] = raw["request_num_restarts"].to_numpy()
    out = _check_records(df, f"read_vidur({metrics.parent.name})")
    out.attrs["source"] = str(metrics)
    if config.is_file():
        out.attrs["config"] = json.loads(config.read_text())
    return out


# --------------------------------------------------------------------------- metrics


def _groups(df: pd.DataFrame):
    if "replication" in df.columns:
        return [g for _, g in df.groupby("replication", sort=True)]
    return [df]


def request_metrics(records: pd.DataFrame) -> dict[str, float]:
    """The metrics of the module docstring from per-request records, as a dict.

    Keys: ``ttft``, ``tpot``, ``e2e`` and ``<metric>_p50`` / ``_p90`` /
    ``_p99`` (seconds), ``throughput`` and ``arrival_rate`` (requests/s),
    ``prompt_tokens``, ``output_tokens`` (means), ``requests``, and
    ``drain_fraction``: the share of the span after the last arrival (the
    finite run's drain, by which ``throughput`` reads below the arrival rate).
    """
    df = _check_records(records, "request_metrics")
    ttft = (df.first_token - df.arrival).to_numpy()
    e2e = (df.completion - df.arrival).to_numpy()
    multi = df.output_tokens.to_numpy() >= 2
    tpot = ((df.completion - df.first_token).to_numpy()[multi]
            / (df.output_tokens.to_numpy()[multi] - 1))
    out: dict[str, float] = {}
    for name, v in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        out[name] = float(np.mean(v)) if v.size else math.nan
        for label, q in _QUANTILES.items():
            out[f"{name}_{label}"] = float(np.quantile(v, q)) if v.size else math.nan
    done = span = arrivals = window = drain = 0.0
    for g in _groups(df):
        done += len(g)
        span += float(g.completion.max() - g.arrival.min())
        arrivals += len(g) - 1
        window += float(g.arrival.max() - g.arrival.min())
        drain += float(g.completion.max() - g.arrival.max())
    out["throughput"] = done / span if span > 0 else math.nan
    out["drain_fraction"] = drain / span if span > 0 else math.nan
    out["arrival_rate"] = arrivals / window if window > 0 else math.nan
    out["prompt_tokens"] = float(df.prompt_tokens.mean())
    out["output_tokens"] = float(df.output_tokens.mean())
    out["requests"] = float(len(df))
    return out


# --------------------------------------------------------------------------- comparing

_UNITS = {"ttft": "s", "tpot": "s", "e2e": "s", "throughput": "requests/s",
          "prompt_tokens": "tokens", "output_tokens": "tokens"}


def _family(metric: str) -> str:
    if metric in ("prompt_tokens", "output_tokens"):
        return "tokens"
    if metric == "throughput":
        return "throughput"
    return metric.split("_")[-1] if "_p" in metric else "mean"


def _verdict(rel: float, tol: float, load: float, saturated: bool) -> str:
    if not math.isfinite(rel):
        return "not comparable (a value is missing)"
    where = "above" if rel > 0 else "below"
    if abs(rel) <= tol:
        text = f"agrees: closed form {abs(rel):.1%} {where} (target {tol:.0%})"
    else:
        text = f"DISAGREES: closed form {abs(rel):.1%} {where} (target {tol:.0%})"
    if saturated:
        text += "; the closed form calls this load saturated"
    elif load > VALIDATED_LOAD:
        text += f"; load {load:.2f} of capacity is beyond the validated range (<= {VALIDATED_LOAD})"
    return text


def compare(records: pd.DataFrame, scenario: Scenario, *, tolerances: Mapping[str, float]
            | None = None, rate: float | None = None, notes: Mapping[str, Any] | None = None
            ) -> pd.DataFrame:
    """Compare per-request records with :func:`hermes_qn.evaluate` of ``scenario``.

    Parameters
    ----------
    records : pandas.DataFrame
        In the schema of :func:`read_requests` (from it, :func:`read_vidur`, or
        ``hermes_qn.simulate(scenario, records=True)[1]``). With a ``class``
        column the rows are matched to the scenario's classes by name; without
        it the scenario must have one open class.
    scenario : Scenario
        The scenario the records should follow. Its open classes' rates are
        replaced by the rates measured in the records (or ``rate`` for a
        single class), so both sides see the same load.
    tolerances : mapping, optional
        Overrides of :data:`TOLERANCES` (keys ``mean``, ``p50``, ``p90``,
        ``p99``, ``throughput``, ``tokens``).
    rate : float, optional
        The arrival rate to evaluate at (requests/s) instead of the measured
        one (single-class records only).
    notes : mapping, optional
        Extra attributes for the result (:func:`compare_vidur` records its
        device and model stand-ins here).

    Returns
    -------
    pandas.DataFrame
        One row per (class, metric): ``class``, ``metric`` (``ttft``,
        ``ttft_p50`` ... ``e2e_p99``, ``tpot`` ..., ``throughput``,
        ``prompt_tokens``, ``output_tokens``), ``unit``, ``detailed``,
        ``closed_form``, ``relative_difference`` (closed_form / detailed - 1),
        ``tolerance``, ``within`` (bool), ``load_fraction`` (measured rate /
        evaluate's capacity) and ``verdict`` (a short text). ``attrs``:
        ``arrival_rate``, ``capacity`` and ``load_fraction`` per class, the
        records' ``requests`` and ``source``, evaluate's notes, and ``notes``.
    """
    from .evaluate import evaluate

    if not isinstance(scenario, Scenario):
        raise ValidationError(f"compare: scenario got {type(scenario).__name__}; valid: a "
                              "hermes_qn.scenario.Scenario")
    if not isinstance(records, pd.DataFrame):
        raise ValidationError(f"compare: records got {type(records).__name__}; valid: a pandas "
                              "DataFrame (read_requests, read_vidur or simulate(records=True))")
    tol = dict(TOLERANCES)
    if tolerances:
        unknown = set(tolerances) - set(TOLERANCES)
        if unknown:
            raise ValidationError(f"compare: tolerances {sorted(unknown)}; valid keys: "
                                  f"{sorted(TOLERANCES)}")
        tol.update(tolerances)
    names = [c.name for c in scenario.classes]
    if "class" in records.columns:
        present = [n for n in pd.unique(records["class"])]
        unknown = [n for n in present if n not in names]
        if unknown:
            raise ValidationError(f"compare: records have classes {unknown} not in scenario "
                                  f"{scenario.name!r}; valid: {names}")
        parts = {n: records[records["class"] == n] for n in names if n in present}
    else:
        if len(names) != 1:
            raise ValidationError(f"compare: records have no 'class' column but scenario "
                                  f"{scenario.name!r} has classes {names}; valid: a 'class' "
                                  "column naming each row's class")
        parts = {names[0]: records}
    if rate is not None and len(parts) != 1:
        raise ValidationError("compare: rate= is for single-class records; valid: leave it out")
    measured = {n: request_metrics(g) for n, g in parts.items()}
    rates: dict[str, float] = {}
    for c in scenario.classes:
        if c.rate is None:
            continue  # a closed class keeps its population
        if c.name in measured:
            r = float(rate) if rate is not None else measured[c.name]["arrival_rate"]
            if not (math.isfinite(r) and r > 0):
                raise ValidationError(f"compare: class {c.name!r}: arrival rate {r!r} from the "
                                      "records; valid: at least 2 requests with distinct arrivals")
            rates[c.name] = r
        else:
            rates[c.name] = float(c.rate)
    ev = evaluate(scenario, rates=rates or None)
    saturated = bool(ev.saturated.item())
    rows = []
    attrs: dict[str, Any] = {"arrival_rate": {}, "capacity": {}, "load_fraction": {}}
    for name, m in measured.items():
        e = ev.sel({"class": name})
        cls = scenario.classes[names.index(name)]
        cap = float(e.capacity)
        r = rates.get(name, float(e.throughput))
        load = r / cap if cap > 0 else math.inf
        attrs["arrival_rate"][name] = r
        attrs["capacity"][name] = cap
        attrs["load_fraction"][name] = load
        closed = {"ttft": float(e.ttft), "tpot": float(e.tpot), "e2e": float(e.e2e),
                  "throughput": float(e.throughput), "prompt_tokens": cls.prompt_tokens.mean,
                  "output_tokens": cls.output_tokens.mean}
        for v in ("ttft", "tpot", "e2e"):
            for label, q in _QUANTILES.items():
                closed[f"{v}_{label}"] = float(e[f"{v}_q"].sel(quantile=q))
        order = ["ttft", "ttft_p50", "ttft_p90", "ttft_p99", "tpot", "tpot_p50", "tpot_p90",
                 "tpot_p99", "e2e", "e2e_p50", "e2e_p90", "e2e_p99", "throughput",
                 "prompt_tokens", "output_tokens"]
        for metric in order:
            d, c = m[metric], closed[metric]
            rel = c / d - 1 if d and math.isfinite(d) and math.isfinite(c) else math.nan
            t = tol[_family(metric)]
            if metric == "throughput" and math.isfinite(m["drain_fraction"]):
                t += m["drain_fraction"]  # a finite run's drain is not the closed form's error
            rows.append({"class": name, "metric": metric,
                         "unit": _UNITS[metric.split("_p")[0]] if "_p" in metric
                         else _UNITS[metric],
                         "detailed": d, "closed_form": c, "relative_difference": rel,
                         "tolerance": t, "within": bool(math.isfinite(rel) and abs(rel) <= t),
                         "load_fraction": load,
                         "verdict": _verdict(rel, t, load, saturated)})
    out = pd.DataFrame(rows)
    attrs.update(scenario=scenario.name, saturated=saturated,
                 requests=int(sum(m["requests"] for m in measured.values())),
                 source=str(records.attrs.get("source", "")),
                 evaluate_notes=str(ev.attrs.get("notes", "")))
    if notes:
        attrs.update(dict(notes))
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------- Vidur configs


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", name.split("/")[-1].lower())


def _catalog_model(vidur_name: str) -> str | None:
    from .models import list_models
    key = _norm(vidur_name)
    for m in list_models():
        if _norm(m) == key:
            return m
    return None


def _stand_in(kind: str, given: str, found: str | None, catalog: list[str], vidur_name: str,
              overrides: dict[str, str], descr: list[str]) -> str:
    """Check a caller's catalog ``given`` for Vidur's ``vidur_name`` and record a stand-in."""
    if given not in catalog:
        raise ValidationError(f"vidur_scenario: {kind}={given!r}; valid: one of {catalog}")
    if found != given:
        overrides[kind] = f"{given} (stand-in for Vidur's {vidur_name!r})"
        descr.append(f"{kind} override: {given} stands in for Vidur's {vidur_name!r}")
    return given


def vidur_scenario(run_dir: str | Path, records: pd.DataFrame | None = None, *,
                   device: str | None = None, model: str | None = None,
                   source: str = "auto", name: str | None = None) -> Scenario:
    """A :class:`~hermes_qn.scenario.Scenario` matching a Vidur run's ``config.json``.

    Parameters
    ----------
    run_dir : path
        A Vidur output folder with ``config.json`` (and ``request_metrics.csv``
        unless ``records`` is given).
    records : DataFrame, optional
        The run's records (default: :func:`read_vidur` of ``run_dir``); the
        prompt and output token lengths are resampled from them.
    device, model : str, optional
        Catalog names standing in for a device or model the catalogs lack
        (Vidur's ``a30``, ``Qwen/Qwen-2-7B``...). The stand-in is written into
        the scenario's description. Without one, a missing device or model is a
        :class:`~hermes_qn.errors.ValidationError` that says so.
    source : str
        The pool's service-time model (``"auto"``, ``"roofline"``, ...).

    The mapping is in the module docstring. The arrival rate is the config's
    Poisson ``qps`` (else the rate measured in the records).
    """
    from .hardware import list_hardware
    from .models import list_models

    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise ValidationError(f"vidur_scenario: no config.json in {str(run)!r}; valid: a Vidur "
                              "output folder")
    cfg = json.loads(cfg_path.read_text())
    try:
        cluster = cfg["cluster_config"]
        replica = cluster["replica_config"]
        sched = cluster["replica_scheduler_config"]
    except (KeyError, TypeError):
        raise ValidationError(f"vidur_scenario: {cfg_path} lacks cluster_config.replica_config "
                              "or replica_scheduler_config; valid: Vidur's resolved config") \
            from None
    if records is None:
        records = read_vidur(run)
    descr = [f"Vidur run {run.name}"]
    overrides: dict[str, str] = {}

    vdev = str(replica.get("device", ""))
    devices = list_hardware("device")
    cat_dev = VIDUR_DEVICES.get(vdev.lower()) or next(
        (d for d in devices if d.lower() == vdev.lower()), None)
    if device is not None:
        cat_dev = _stand_in("device", device, cat_dev, devices, vdev, overrides, descr)
    elif cat_dev is None:
        raise ValidationError(f"vidur_scenario: {cfg_path.name}: device {vdev!r} is not in the "
                              f"hardware catalog (hermes_qn.list_hardware('device') = {devices}); "
                              "valid: pass device=<catalog name> as a stand-in (recorded in the "
                              "result), or add the device to the catalog")
    vmodel = str(replica.get("model_name", ""))
    models = list_models()
    cat_model = _catalog_model(vmodel)
    if model is not None:
        cat_model = _stand_in("model", model, cat_model, models, vmodel, overrides, descr)
    elif cat_model is None:
        raise ValidationError(f"vidur_scenario: {cfg_path.name}: model {vmodel!r} is not in the "
                              f"model catalog (hermes_qn.list_models() = {models}); valid: pass "
                              "model=<catalog name> as a stand-in (recorded in the result)")
    sname = str(sched.get("name", ""))
    if sname not in VIDUR_SCHEDULERS:
        raise ValidationError(f"vidur_scenario: replica scheduler {sname!r}; valid: one of "
                              f"{sorted(VIDUR_SCHEDULERS)}")
    batching = VIDUR_SCHEDULERS[sname]
    tp = int(replica.get("tensor_parallel_size", 1) or 1)
    pp = int(replica.get("num_pipeline_stages", 1) or 1)
    replicas = int(cluster.get("num_replicas", 1) or 1)
    opts: dict[str, Any] = dict(devices=replicas * tp * pp, tp=tp, pp=pp, models=(cat_model,),
                                batching=batching, source=source)
    if sched.get("batch_size_cap"):
        opts["batch_cap"] = int(sched["batch_size_cap"])
    if batching == "chunked" and sched.get("chunk_size"):
        opts["chunk_tokens"] = int(sched["chunk_size"])
    if batching == "continuous" and sched.get("max_tokens_in_batch"):
        opts["max_batched_tokens"] = int(sched["max_tokens_in_batch"])
    margin = replica.get("memory_margin_fraction")
    if margin is not None and 0 <= float(margin) < 1:
        opts["memory_utilization"] = 1.0 - float(margin)
    pool = Pool("vidur", cat_dev, **opts)

    recs = _check_records(records, "vidur_scenario(records)")
    src = f"Vidur run {run.name} request_metrics.csv"
    prompt = recs.prompt_tokens.to_numpy(dtype=float)
    output = recs.output_tokens.to_numpy(dtype=float)
    prompt_t = TokenLengths(float(prompt.mean()), Empirical(tuple(prompt)), src)
    output_t = TokenLengths(float(output.mean()), Empirical(tuple(output)), src)
    rate = None
    try:
        igen = cfg["request_generator_config"]["interval_generator_config"]
        if igen.get("name") == "poisson" and igen.get("qps"):
            rate = float(igen["qps"])
    except (KeyError, TypeError):
        pass
    if rate is None:
        rate = request_metrics(recs)["arrival_rate"]
    cls = RequestClass("vidur", (Generate.on("vidur", cat_model),), prompt_tokens=prompt_t,
                       output_tokens=output_t, rate=rate)
    sc = Scenario(name or f"vidur-{run.name}", (pool,), (cls,), description="; ".join(descr))
    return sc


def compare_vidur(run_dir: str | Path, *, device: str | None = None, model: str | None = None,
                  source: str = "auto", tolerances: Mapping[str, float] | None = None
                  ) -> pd.DataFrame:
    """:func:`compare` of a Vidur run with the scenario :func:`vidur_scenario` builds for it.

    ``attrs`` add ``device_override`` / ``model_override`` (empty when the
    catalogs had Vidur's own device and model) and ``vidur_run``.
    """
    records = read_vidur(run_dir)
    sc = vidur_scenario(run_dir, records, device=device, model=model, source=source)
    notes = {"vidur_run": str(run_dir), "device_override": "", "model_override": ""}
    for part in sc.description.split("; "):
        if part.startswith("device override: "):
            notes["device_override"] = part[len("device override: "):]
        if part.startswith("model override: "):
            notes["model_override"] = part[len("model override: "):]
    return compare(records, sc, tolerances=tolerances, notes=notes)
