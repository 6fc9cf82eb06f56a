"""Evaluate a scenario in closed form: TTFT, TPOT, end-to-end latency, throughput, energy, cost.

:func:`evaluate` maps a :class:`~hermes_qn.scenario.Scenario` onto a queueing
network and solves it (``../shared/DESIGN.md``). Each hardware pool is split
into replicas, and the requests that visit a pool are spread evenly over them.

Stations and their closed forms
-------------------------------
Decode under batching (continuous or chunked, colocated or on a decode pool)
    A load-dependent processor-sharing station: with ``n`` sequences present,
    ``m = min(n, B)`` run and one step of ``t(m)`` seconds gives each one
    token, so the speed relative to one sequence is ``m t(1) / t(m)``. ``B``
    is the smaller of the pool's ``batch_cap`` and what its KV cache holds at
    the mean resident context (prompt, reused context, half the output). The
    birth-death chain gives the mean batch ``E[min(N, B)]`` and the mean
    number waiting for a slot ``E[(N - B)+]``; by Little's law every decoded
    token takes ``tau = E[min(N, B)] / (tokens per second)`` (the TPOT) and
    the wait for a slot is ``E[(N - B)+] / (sequences per second)``.
Prefill, colocated with decode (``continuous``)
    Prefill steps take priority over decode steps (vLLM's scheduler), and one
    prefill step takes every prompt waiting at a step boundary, the first
    always, the next while at most ``batch_cap`` prompts and
    ``max_batched_tokens`` prompt tokens (``ncap``: the mean count that fits,
    from the prompt-length distribution). A step of ``n`` prompts takes
    ``T(n) = StepModel.prefill(mean prompt, 0, n)`` (scaled so that ``T(1)`` is
    the mean one-prompt time); the batch is the Poisson count of arrivals during
    the step before, given at least one (decode steps go on until one brings a
    prompt), at the mean length of a prefill or decode step: ``n`` solves
    ``n = x / (1 - exp(-x))``, ``x = lambda t_prev(n)``, a fixed point with the
    decode station, found on ``[1, ncap]`` by regula falsi
    (``_PrefillBatches``). The prefill load is ``lambda T(n) / n`` (not
    ``lambda T(1)``): decode steps are stretched by ``1 / (1 - rho_prefill)``. A
    prompt waits the residual ``E[T^2] / (2 E[T])`` of the step in progress (a
    prefill batch, or a decode step when decoding) and, having waited, is
    prefilled in a batch of itself and that step's arrivals, timed at the
    batch's mean length; one that finds the replica idle is prefilled alone.
    Encoder passes stay high-priority work taken one by one (non-preemptive
    priority M/G/1). A prompt queued right after its own encoder step on the
    same replica does not wait for a step again. Capacity: where decode at a
    full batch plus the prefill load (batches of the arrivals during full decode
    steps) reach 1: the rate follows from the batch, and the batch is a root on
    ``[1, ncap]`` (``_batched_capacity``). TPOT is the mean over requests of
    decode time / (tokens - 1), as engines' benchmarks report it: the prompts
    that arrived during a request's own prefill are prefilled right after its
    first token, ``q / (1 - q)`` batches (``q`` = P(an arrival during a prefill
    step)), and that time in the first gap weighs ``E[1 / (n - 1)]`` rather than
    ``1 / E[n - 1]``.
Chunked prefill (``chunked``)
    Each step carries the running decodes plus up to ``C - b`` prompt tokens
    (``C`` = ``chunk_tokens``). A prompt waits for the step in progress (its
    residual, found with the replica's busy probability), queues FCFS for a
    token stream of ``(C - b) / t_full`` tokens per second (M/G/1,
    Pollaczek-Khinchine, the stream backlogged), then takes
    ``ceil(P / (C - b))`` steps, full chunks and a last partly filled one, at
    whose end it has its first token. Decode steps carry ``x`` prompt tokens
    a fraction ``p`` of the time: ``x`` grows from a prompt's own share of its
    steps at low load to a full chunk as the stream fills, and flow balance
    (prompt tokens/s = ``p x`` / mean step) fixes ``p`` (``_ChunkMix``). ``b``,
    ``x``, ``p`` and the step times depend on each other: ``b`` solves
    ``b = E[min(N, B)](b)``, found by regula falsi on ``[0, B]``.
Static batching (``static``)
    Gated bulk service: a batch of ``b`` takes ``T(b) = prefill(b prompts) +
    E[max of b outputs] t(b)``; a request finding the replica busy waits the
    residual ``E[T^2] / (2 E[T])`` of the running batch and leaves with the next,
    whose size solves ``b = max(1, lambda T(b))`` (capped at ``B``; a fixed
    point). Finished sequences leave and slots are not refilled: a request of
    ``d`` tokens decodes through the first ``d``, fullest steps of its batch
    (``bbar P(d' >= j)`` running at step ``j``), so its decode time is the sum
    of those steps and its TPOT their mean (``_Draining``). Queues longer than
    one batch (near capacity) are not modelled.
Disaggregated prefill and decode
    Prefill replicas serve prompts in gated batches (``_solve_prefill_only``):
    a prompt that finds a step in progress waits its residual and is prefilled
    with everything that arrived meanwhile (up to ``ncap``, as above); the mean
    batch solves ``n = x + exp(-x)``, ``x = lambda T(n)`` (an idle replica
    starts the next prompt alone), plus the prompts left over from full steps,
    the Lindley walk ``Q' = (Q + A - ncap)+`` (``A`` Poisson, mean ``x``)
    summed by Spitzer's identity (tabulated once per ``ncap`` over ``x / ncap``,
    running to the heavy-traffic limit where the series is too long); those
    leftovers wait ``E[Q] / lambda`` more
    (Little). Busy ``lambda T(n) / n``; saturated at ``lambda T(ncap) / ncap
    >= 1``, the capacity term. The KV cache crosses a
    processor-sharing link station (one per prefill replica, each TP rank on
    its own link) plus the link latency; decode replicas are batch stations.
    The first token comes from the prefill: TTFT excludes the transfer, which
    counts in TPOT.
RAG pools (embed, search, rerank on a pool without a decoder)
    M/G/c FCFS queues, one server per device (Allen-Cunneen, exact for c = 1).
    Encoder work on a pool that also runs a decoder is high-priority work on
    its replicas (the engine runs a queued pass before any LLM step): it waits
    for the step in progress and the passes queued before it (non-preemptive
    priority M/G/1; on a chunked pool not behind the prompt stream) and
    stretches the LLM's steps.
KV tiers and links
    One processor-sharing station per tier or link name for the bandwidth
    time, plus its latency: KV fetches and KV transfers over the same medium
    share it (a PCIe or network link used by both contends). Copies: the
    ``instances`` a fetch declares, else one per sending prefill replica.

Contention
----------
Stations on one physical resource: prefill and decode colocated on a
replica (priority stretch, or the chunked fixed point), encoder work on an
LLM pool (priority), and fetches and transfers on one medium (one shared PS
station). Couplings are settled by iterations (the result's attrs give
``iterations`` and ``residual``; a loop that does not settle raises
:class:`~hermes_qn.errors.ConvergenceError`): the batch size and mixed-step
fraction of chunked prefill and the prefill batch of continuous batching and
of prefill-only pools (regula falsi), the batch size of static batching and
the throughput of closed classes (damped fixed points). Not modelled: memory
bandwidth shared between a CPU pool's vector search and a KV tier in the
same host's DRAM.

Percentiles
-----------
TTFT: a mixture (``_ttft_mixtures``). The first prefill of the main Generate
stage takes its seconds at each prompt length of the token distribution (cut
into 16 quantile bins, finer in the tail), on each routed target with its
probability, plus one wait that is zero with probability ``1 - p`` and
exponential otherwise; the wait's mean sums the waits of every queue before
the first token and ``p`` is the probability of waiting at any of them (for a
prompt: of finding any step, prefill or decode, in progress); the other
stages before the first token add their mean service. Quantiles invert its
CDF. TPOT and E2E: a gamma fitted to each metric's mean and variance, with
the same 0-or-exponential waits, service times varying with the token counts
and stages independent; TPOT varies with the batch occupancy and with the
prefills that interrupt a request's decode. SLO attainment and ``slo_met`` use
the same distributions. Approximations; their error against the sampler is
in ``validation/``.

Measured error
--------------
``validation/llm_agreement.md`` (``python validation/llm_agreement.py``) gives
evaluate / sampler - 1 per batching strategy, stage kind and load (10% to 90%
of capacity). On the shipped step-time calibration, means of TTFT, TPOT, E2E
and throughput are within 10% at loads up to 80% in 285 of 300 point-metrics:
continuous batching (short, long and Azure conversation lengths: within 10%,
short prompts within 5.1%), disaggregation (but for long prompts' TTFT +23% at
70% load, within the sampler's half-width), RAG (encoders on CPU and on the LLM
pool), KV fetches and routing. Misses: two classes (short beside long
prompts), TTFT of the short class +11% to +12% at 70-80% load and of the long
class -12% at 80% (a batch is timed at its mean length, and one batch size
and one wait serve both classes); static batching, TTFT -12% to
-17% at 70-80% (queues longer than one batch); chunked prefill, TTFT -13% (short)
and -22% (long) at 80%; reasoning (chunked), TPOT -11% to -13% at 70-80%
(most of these within the sampler's half-width). p90 TTFT: within 20% in 163
of 180 points; misses at 90% load (10 points, most within the sampler's
half-width), chunked long prompts at 70-80% (-22%, -32%), reasoning's E2E p90
at 70-80% (-22%, -24%), and the short class beside long prompts at 10-30%
load (+25%, +35%: the long prompts' prefills are its rare long waits, taken
as exponential). E2E p99 of heavy-tailed trace outputs reads 15-24% high (a
gamma for E2E).

Limits
------
Closed classes are solved by the fixed point ``X = N / (Z + E2E(X))`` over the
open formulas, which ignores that a closed population bounds the queues (it
overestimates waiting for small populations). Expert parallelism is not
modelled (the service-time layer takes TP and PP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import xarray as xr
from scipy import special, stats

from . import energy as _energy
from .distributions import Deterministic, Empirical
from .errors import ConvergenceError, ValidationError
from .scenario import Embed, Generate, KVFetch, Pause, Pool, RequestClass, Rerank, Scenario, \
    Search
from .stage_times import StepModel, embed_time, kv_fetch_time, kv_transfer_time, rerank_time, \
    search_time
from .station_formulas import (batch_station, compress_points, expected_max, gamma_cdf,
                               gamma_quantile, mgc_wait, wait_mixture_cdf, wait_mixture_quantile)
from .workload import TokenLengths

__all__ = ["QUANTILES", "evaluate"]

#: Quantiles reported for TTFT, TPOT and E2E.
QUANTILES = (0.5, 0.9, 0.99)

_POINTS = 512  # discretisation of parametric token distributions (tails matter for E[max])


# --------------------------------------------------------------------------- token points


def _points(tokens: TokenLengths) -> np.ndarray:
    """Equally likely token counts standing for the distribution (for moments of times)."""
    shape = tokens.shape
    if tokens.mean == 0 or isinstance(shape, Deterministic) or shape.scv == 0:
        return np.array([tokens.mean])
    if isinstance(shape, Empirical):
        v = np.sort(np.asarray(shape._array)) * tokens.mean
        if v.size > 256:  # 256 equally spaced order statistics, rescaled to the exact mean
            v = np.interp((np.arange(256) + 0.5) / 256 * v.size - 0.5, np.arange(v.size), v)
            v *= tokens.mean / v.mean()
        return v
    u = (np.arange(_POINTS) + 0.5) / _POINTS
    k = 1.0 / shape.scv
    v = stats.gamma.ppf(u, k, scale=tokens.mean / k)
    return v * tokens.mean / v.mean()


def _moments(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float((values ** 2).mean())


# --------------------------------------------------------------------------- the plan


@dataclass(eq=False)
class _Work:
    """One class's use of a station, per request of the class.

    ``visits`` per request; ``mean`` and ``second`` moments of the per-visit
    service time (s, s^2); for LLM work also token counts.
    """

    cls: int
    visits: float
    mean: float = 0.0
    second: float = 0.0
    tokens: float = 0.0          # prompt tokens to prefill (prefill work) or tokens to decode
    tokens_second: float = 0.0
    context: float = 0.0         # mean context while decoding / of the prompt
    branches: int = 1
    max_factor: float = 1.0      # E[max over branches of tokens] / E[tokens]
    first_round: bool = True     # prefill of the first round (TTFT) or a later one
    after_encoder: float = 0.0   # P(the prompt lands on the replica that just ran its encoder)
    points: np.ndarray | None = None  # token counts: decode (equally likely) or prompt
    point_weights: np.ndarray | None = None  # probabilities of prompt ``points``
    gap_weight: float = 0.0      # main decode: E[1/(n-1)] - 1/E[n-1], of TPOT per request
    time_points: np.ndarray | None = None    # prefill seconds of each prompt point


@dataclass
class _LLMPool:
    pool: Pool
    steps: StepModel
    prefill: list[_Work] = field(default_factory=list)
    decode: list[_Work] = field(default_factory=list)
    encoder: list[_Work] = field(default_factory=list)

    @property
    def role(self) -> str:
        if self.prefill and self.decode:
            return "colocated"
        return "prefill" if self.prefill else "decode"


@dataclass
class _Medium:
    """A tier or link: one processor-sharing station for every stage that moves bytes over it.

    KV fetches from a tier and KV transfers over a link of the same catalog
    name share it (and so contend). Copies: the largest ``instances`` a
    fetch declares, else one per replica of the pools sending KV over it.
    """

    works: list[_Work] = field(default_factory=list)
    declared: int | None = None
    senders: dict[str, int] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return self.declared if self.declared else max(1, sum(self.senders.values()))


@dataclass
class _Segment:
    """A piece of a class's end-to-end time: ``kind`` says how to price it."""

    label: str
    kind: str          # "fcfs", "priority", "tier", "delay", "prefill", "decode", "transfer"
    key: Any
    work: _Work | None = None
    seconds: float = 0.0
    probability: float = 1.0
    before_first_token: bool = False
    main: bool = False


class _Plan:
    """Everything of a scenario that does not depend on the arrival rates."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.llm: dict[str, _LLMPool] = {}
        self.fcfs: dict[str, list[_Work]] = {}
        self.media: dict[str, _Medium] = {}
        self.segments: list[list[_Segment]] = []
        self.answer_tokens = np.zeros(len(scenario.classes))
        self.decoded_tokens = np.zeros(len(scenario.classes))
        self.notes: list[str] = []
        for k, c in enumerate(scenario.classes):
            self.segments.append(self._class(k, c))
        self.step_tables = {name: _StepTable(lp) for name, lp in self.llm.items()}

    # -- helpers
    def _llm(self, name: str) -> _LLMPool:
        if name not in self.llm:
            pool = self.scenario.pool(name)
            self.llm[name] = _LLMPool(pool, StepModel(pool))
        return self.llm[name]

    def _encoder_station(self, k: int, pool: Pool, label: str, times: np.ndarray,
                         before: bool) -> _Segment:
        mean, second = _moments(np.atleast_1d(np.asarray(times, dtype=float)))
        work = _Work(k, 1.0, mean, second)
        if pool.decoder is not None:
            self._llm(pool.name).encoder.append(work)
            return _Segment(label, "priority", pool.name, work, before_first_token=before)
        self.fcfs.setdefault(pool.name, []).append(work)
        return _Segment(label, "fcfs", pool.name, work, before_first_token=before)

    def _class(self, k: int, c: RequestClass) -> list[_Segment]:
        sc = self.scenario
        segs: list[_Segment] = []
        retrieved = 0.0
        fetch: KVFetch | None = None
        main = c.main_index
        labels = [s.label if isinstance(s, Pause) else s.kind for s in c.pipeline]
        for i, stage in enumerate(c.pipeline):
            name = stage.label if isinstance(stage, Pause) else stage.kind
            label = name if labels.count(name) == 1 else f"{name}{i}"
            before = i < main
            if isinstance(stage, Embed):
                pool = sc.pool(stage.pool)
                tokens = stage.tokens or c.prompt_tokens
                segs.append(self._encoder_station(k, pool, label,
                                                  embed_time(stage, pool, _points(tokens)),
                                                  before))
            elif isinstance(stage, Search):
                pool = sc.pool(stage.pool)
                segs.append(self._encoder_station(k, pool, label,
                                                  np.array([search_time(stage, pool)]), before))
                retrieved += stage.retrieved_tokens
            elif isinstance(stage, Rerank):
                pool = sc.pool(stage.pool)
                segs.append(self._encoder_station(
                    k, pool, label, rerank_time(stage, pool, _points(c.prompt_tokens)), before))
            elif isinstance(stage, KVFetch):
                fetch = stage
                for j, share in enumerate(stage.tiers):
                    if share.hit_rate == 0 or stage.reused_tokens == 0:
                        continue
                    model, tp = self._next_generation(c, i)
                    secs, lat = kv_fetch_time(share, model, stage.reused_tokens, tp)
                    work = _Work(k, share.hit_rate, float(secs), float(secs) ** 2)
                    medium = self.media.setdefault(share.tier.name, _Medium())
                    medium.declared = max(medium.declared or 0, share.instances)
                    medium.works.append(work)
                    segs.append(_Segment(f"{label}.{share.tier.name}", "tier", share.tier.name,
                                         work, probability=share.hit_rate,
                                         before_first_token=before))
                    segs.append(_Segment(f"{label}.{share.tier.name}.latency", "delay", None,
                                         seconds=lat, probability=share.hit_rate,
                                         before_first_token=before))
            elif isinstance(stage, Generate):
                encoder_pool = segs[-1].key if segs and segs[-1].kind == "priority" else None
                segs.extend(self._generate(k, c, stage, label, retrieved, fetch, i == main,
                                           before, encoder_pool))
                fetch = None  # the reused context belongs to the first generation after it
            elif isinstance(stage, Pause):
                segs.append(_Segment(label, "delay", None, seconds=stage.seconds,
                                     before_first_token=before))
        return segs

    def _next_generation(self, c: RequestClass, i: int):
        """Model and TP degree of the first target of the first Generate at or after stage ``i``."""
        target = next(s for s in c.pipeline[i:] if isinstance(s, Generate)).targets[0]
        return target.model, self.scenario.pool(target.prefill_on).tp

    def _generate(self, k: int, c: RequestClass, stage: Generate, label: str, retrieved: float,
                  fetch: KVFetch | None, main: bool, before: bool,
                  encoder_pool: str | None = None) -> list[_Segment]:
        prompt = stage.prompt_tokens or c.prompt_tokens
        output = stage.output_tokens or c.output_tokens
        reused = fetch.reused_tokens if fetch else 0.0
        hit = 1.0 - fetch.miss_rate if fetch else 0.0
        rounds = stage.rounds
        total_decoded = output.mean * (1.0 + stage.thinking)
        per_round = total_decoded / rounds
        out_points = _points(output) * (1.0 + stage.thinking) / rounds
        decode_tokens = np.maximum(out_points - 1.0, 0.0)
        gap_weight = 0.0
        if main:
            # TPOT counts the tokens of the longest branch (the one the round waits for)
            pts = _points(output)
            self.answer_tokens[k] = output.mean
            self.decoded_tokens[k] = total_decoded * (
                expected_max(pts, stage.branches) / pts.mean() if stage.branches > 1 else 1.0)
            # TPOT is a mean over requests of (decode time / gaps): time that lands in the
            # first gap of every request weighs E[1/(n-1)] (n >= 2) instead of 1/E[n-1]
            n = pts * (1.0 + stage.thinking)
            gaps = self.decoded_tokens[k] - 1.0
            if (n >= 2).any() and gaps > 0:
                gap_weight = max(float(np.mean(1.0 / (n[n >= 2] - 1.0))) - 1.0 / gaps, 0.0)
        segs: list[_Segment] = []
        p_points = _points(prompt) + retrieved
        for t in stage.targets:
            pre = self._llm(t.prefill_on)
            dec = self._llm(t.decode_on)
            for r in range(rounds):
                first = r == 0
                if first:
                    # a hit prefills the prompt on the reused context; a miss recomputes it
                    hit_t = pre.steps.prefill(p_points, reused)
                    miss_t = pre.steps.prefill(p_points + reused)
                    times = np.concatenate([np.atleast_1d(hit_t), np.atleast_1d(miss_t)])
                    weights = np.concatenate([np.full(len(p_points), hit / len(p_points)),
                                              np.full(len(p_points), (1 - hit) / len(p_points))])
                    new = np.concatenate([p_points, p_points + reused])
                    ctx0 = reused * hit
                else:
                    ctx0 = p_points.mean() + reused + r * per_round + (r - 1) * stage.round_tokens
                    times = np.atleast_1d(pre.steps.prefill(max(stage.round_tokens, 1.0), ctx0))
                    new = np.array([max(stage.round_tokens, 1.0)])
                    weights = np.array([1.0])
                pw = _Work(k, t.probability, float((weights * times).sum()),
                           float((weights * times ** 2).sum()), float((weights * new).sum()),
                           float((weights * new ** 2).sum()), float(ctx0), first_round=first,
                           points=new, point_weights=weights, time_points=times,
                           after_encoder=(1.0 / pre.pool.replicas
                                          if first and encoder_pool == t.prefill_on else 0.0))
                pre.prefill.append(pw)
                lab = f"{label}.round{r + 1}" if rounds > 1 else label
                segs.append(_Segment(f"{lab}.prefill", "prefill", t.prefill_on, pw,
                                     probability=t.probability,
                                     before_first_token=before or (main and first), main=main))
                context_end = (p_points.mean() + reused + r * (per_round + stage.round_tokens))
                if t.disaggregated:
                    secs, lat = kv_transfer_time(t.link, pre.pool.decoder, context_end,
                                                 pre.pool.tp, pre.pool.kv_precision)
                    tw = _Work(k, t.probability, float(secs), float(secs) ** 2)
                    medium = self.media.setdefault(t.link.name, _Medium())
                    medium.senders[t.prefill_on] = pre.pool.replicas
                    medium.works.append(tw)
                    segs.append(_Segment(f"{lab}.kv_transfer", "transfer", t.link.name, tw,
                                         probability=t.probability, before_first_token=before,
                                         main=main))
                    if lat:
                        segs.append(_Segment(f"{lab}.kv_transfer.latency", "delay", None,
                                             seconds=lat, probability=t.probability,
                                             before_first_token=before, main=main))
                    if not t.link.latency:
                        self.notes.append(f"link {t.link.name} has no catalog latency; KV "
                                          "transfer counts bandwidth time only")
                mean_tokens = float(decode_tokens.mean())
                dw = _Work(k, t.probability * stage.branches, 0.0, 0.0, mean_tokens,
                           float((decode_tokens ** 2).mean()),
                           float(context_end + per_round / 2.0), stage.branches,
                           (expected_max(decode_tokens, stage.branches) / mean_tokens
                            if mean_tokens > 0 else 1.0), points=decode_tokens,
                           gap_weight=gap_weight)
                dec.decode.append(dw)
                segs.append(_Segment(f"{lab}.decode", "decode", t.decode_on, dw,
                                     probability=t.probability, before_first_token=before,
                                     main=main))
                if r < rounds - 1 and stage.round_delay > 0:
                    segs.append(_Segment(f"{lab}.delay", "delay", None,
                                         seconds=stage.round_delay, probability=t.probability,
                                         before_first_token=before, main=main))
        return segs


# --------------------------------------------------------------------------- station results


@dataclass
class _Result:
    """Per-visit sojourn (s) and its variance for every _Work, keyed by id(work)."""

    time: dict[int, np.ndarray] = field(default_factory=dict)
    var: dict[int, np.ndarray] = field(default_factory=dict)
    tpot_var: dict[int, np.ndarray] = field(default_factory=dict)
    # per-request mean TPOT minus decode time / tokens (s): time that lands unevenly on a
    # request's gaps (prefills in the first gap; the fullest steps of a draining batch)
    tpot_extra: dict[int, np.ndarray] = field(default_factory=dict)
    # prefill work: (service seconds per prompt point, their weights)
    prefill_parts: dict[int, tuple] = field(default_factory=dict)
    # work that queues: (mean wait, P(wait)), for the TTFT percentiles
    waits: dict[int, tuple] = field(default_factory=dict)
    unstable: dict[str, np.ndarray] = field(default_factory=dict)
    pool_util: dict[str, np.ndarray] = field(default_factory=dict)
    pool_batch: dict[str, np.ndarray] = field(default_factory=dict)
    pool_cap: dict[str, np.ndarray] = field(default_factory=dict)
    pool_context: dict[str, np.ndarray] = field(default_factory=dict)
    # per station: (name, coefficient per unit rate of each class (K,)) for capacity
    capacity_terms: list[tuple[str, np.ndarray]] = field(default_factory=list)
    iterations: int = 0
    residual: float = 0.0


def _wait_var(wait: np.ndarray, p_wait: np.ndarray) -> np.ndarray:
    """Variance of a wait that is 0 w.p. 1 - p and exponential with mean wait / p otherwise."""
    p = np.clip(p_wait, 1e-9, 1.0)
    return np.maximum(2.0 * wait * wait / p - wait * wait, 0.0)


def _rate(lam: np.ndarray, works: list[_Work], per: float, what: str = "visits") -> np.ndarray:
    """Sum over works of lambda_class x visits x (mean | tokens | 1), divided by ``per``."""
    out = 0.0
    for w in works:
        out = out + lam[w.cls] * w.visits * (1.0 if what == "visits" else getattr(w, what))
    return np.asarray(out, dtype=float) / per


def _context(lam: np.ndarray, works: list[_Work]) -> np.ndarray:
    """Token-weighted mean context of decode works (falls back to visit weights at zero load)."""
    num = sum(lam[w.cls] * w.visits * w.tokens * w.context for w in works)
    den = sum(lam[w.cls] * w.visits * w.tokens for w in works)
    plain = (sum(w.visits * max(w.tokens, 1.0) * w.context for w in works)
             / sum(w.visits * max(w.tokens, 1.0) for w in works))
    return np.where(np.asarray(den) > 0, num / np.where(np.asarray(den) > 0, den, 1.0), plain)


#: Step-time tables shared by every evaluate call (sweeps rebuild none): per pool identity.
_TABLES: dict[tuple, dict] = {}


class _StepTable:
    """Decode (and mixed) step times at b = 1..L for each distinct context, cached.

    The cache outlives the call: it is keyed by what the step times depend on
    (device, decoder, TP, PP, service source, chunk size and chunk context, and
    the StepModel methods themselves).
    """

    def __init__(self, lp: _LLMPool) -> None:
        self.lp = lp
        # a prompt's chunks attend on average to half the prompt before them
        self.chunk_context = float(sum(w.tokens for w in lp.prefill)
                                   / max(len(lp.prefill), 1) / 2.0)
        pool = lp.pool
        steps = type(lp.steps)  # its methods too: a test (or user) may swap them
        key = (repr(pool.device), repr(pool.decoder), pool.tp, pool.pp, pool.source,
               pool.chunk_tokens, round(self.chunk_context, 6), steps.decode, steps.mixed,
               steps.prefill)
        if key not in _TABLES and len(_TABLES) >= 64:
            _TABLES.clear()
        self.cache: dict[tuple, np.ndarray] = _TABLES.setdefault(key, {})

    def table(self, context: float, kind: str, length: int, fill: float = 1.0) -> np.ndarray:
        """Step times at b = 1..length: ``decode``, or ``mixed`` with ``fill`` of the chunk."""
        key = (int(round(context / 16.0)), kind, fill)
        got = self.cache.get(key)
        if got is None or len(got) < length:
            b = np.arange(1, length + 1, dtype=float)
            ctx = key[0] * 16.0
            if kind == "decode":
                got = np.asarray(self.lp.steps.decode(b, ctx), dtype=float)
            else:
                chunk = self.lp.pool.chunk_tokens
                got = np.asarray(self.lp.steps.mixed(b, ctx, np.maximum(fill * (chunk - b), 1.0),
                                                     self.chunk_context), dtype=float)
            self.cache[key] = got
        return got[:length]


class _PrefillBatches:
    """Prompts of a replica prefilled in batches: whatever waits at a step boundary.

    The engine (continuous batching, or a prefill-only pool) puts the waiting
    prompts into one prefill step in FCFS order, the first always, the next
    while at most ``batch_cap`` prompts and ``max_batched_tokens`` prompt tokens
    (``ncap``: the mean count that fits, from the prompt-length distribution).
    A step of ``n`` prompts takes ``T(n) = StepModel.prefill(mean prompt, 0, n)``
    scaled so that ``T(1)`` is the mean one-prompt time (reused context and the
    spread of lengths kept). A batch is what arrived during the step before, a
    Poisson count ``N`` with mean ``x``: ``max(1, N)`` on a prefill-only pool
    (an idle replica starts the next prompt alone), ``N`` given ``N >= 1`` beside
    decodes (decode steps go on until one brings a prompt). ``E[T^2]`` adds
    ``n`` times the variance of one prompt's time (a batch is timed at its mean
    length) and the variance of the batch size times the squared slope of ``T``.
    """

    def __init__(self, lp: _LLMPool, lam: np.ndarray, R: int, zero: np.ndarray) -> None:
        works = lp.prefill
        self.rate = lam_p = zero + _rate(lam, works, R)
        total = sum(w.visits for w in works)
        pos = lam_p > 0

        def mean_of(what: str) -> np.ndarray:
            plain = sum(w.visits * getattr(w, what) for w in works) / total
            return np.where(pos, _rate(lam, works, R, what) / np.where(pos, lam_p, 1.0), plain)

        self.s1, s2, m = mean_of("mean"), mean_of("second"), mean_of("tokens")
        self.var1 = np.maximum(s2 - self.s1 ** 2, 0.0)
        pool = lp.pool
        share = np.array([max(float(np.mean(lam[w.cls])), 1e-300) * w.visits for w in works])
        self.ncap = zero + _fitting_prompts(works, share / share.sum(), pool.max_batched_tokens,
                                            pool.batch_cap)
        L = max(int(np.ceil(np.max(self.ncap))), 2)
        lengths = np.unique(m)
        cache = _StepTable(lp).cache
        key = ("prefill", L, float(lengths[0]))
        if lengths.size == 1 and key in cache:   # one mean prompt: the calls of a sweep share it
            base = np.broadcast_to(cache[key], np.shape(m) + (L,))
        else:
            base = np.asarray(lp.steps.prefill(m[..., None], 0.0,
                                               np.arange(1, L + 1, dtype=float)), dtype=float)
            if lengths.size == 1:
                cache[key] = base.reshape(-1, L)[0]
        self.table = base * (self.s1 / base[..., 0])[..., None]

    def time(self, n: np.ndarray) -> np.ndarray:
        """Mean step time (s) of a batch of ``n`` prompts (real ``n``, interpolated)."""
        return _interp(self.table, np.minimum(n, self.ncap))

    def size(self, x: np.ndarray, alone_after_idle: bool) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the batch after a step with ``x`` expected arrivals."""
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        if alone_after_idle:   # max(1, N)
            e = np.exp(-x)
            n, n2 = x + e, x + x * x + e
        else:                  # N given N >= 1
            p = np.where(x > 1e-9, -np.expm1(-np.maximum(x, 1e-9)), 1.0)
            n = np.where(x > 1e-9, x / p, 1.0 + x / 2.0)
            n2 = np.where(x > 1e-9, (x + x * x) / p, 1.0 + 1.5 * x)
        capped = n > self.ncap
        n = np.where(capped, self.ncap, n)
        return n, np.where(capped, 0.0, np.maximum(n2 - n * n, 0.0))

    def second(self, n: np.ndarray, var_n: np.ndarray) -> np.ndarray:
        """Second moment (s^2) of the step time of a batch of mean ``n``, variance ``var_n``."""
        slope = self.time(n + 1.0) - self.time(n)
        return self.time(n) ** 2 + n * self.var1 + var_n * slope ** 2

    def seen(self, lengthbiased: np.ndarray) -> np.ndarray:
        """The batch a prompt joins when it arrives during a step of that length-biased mean:
        itself and the Poisson arrivals of that step."""
        return np.clip(1.0 + self.rate * lengthbiased, 1.0, self.ncap)

    def extra(self, w: _Work, seen: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Seconds a prompt of ``w`` spends beyond its own prefill when it joins a batch of
        ``seen`` (timed at the mean length: its own length moves the batch's time by 1/seen
        of its difference); a prompt that finds the replica idle is prefilled alone."""
        t_seen = self.time(seen) * scale
        return np.maximum(t_seen + (w.mean - self.s1) * scale / seen - w.mean, 0.0)

    def leftover(self, a: np.ndarray) -> np.ndarray:
        """Mean number of prompts left waiting at a step boundary when the steps take at most
        ``ncap`` and ``a`` arrive per step (Poisson): the Lindley walk
        ``Q' = (Q + A - ncap)+``, interpolated in ``a / ncap`` from ``_leftover_table``."""
        a = np.asarray(a, dtype=float)
        K = float(np.max(self.ncap))
        u = a / K
        f = np.interp(u, _LEFTOVER_U, _leftover_table(K))
        return np.where(u < 1.0, f / np.maximum(1.0 - u, 1e-300), np.inf)

    def capacity_cost(self, w: _Work, n: float) -> float:
        """Seconds per prompt of ``w`` in batches of ``n`` (for capacity)."""
        return float(np.mean(self.time(np.asarray(n)) / n * w.mean / self.s1))


#: Grid of ``u = a / ncap`` on which ``(1 - u) E[Q]`` of the Lindley walk is tabulated.
_LEFTOVER_U = np.linspace(0.0, 1.0, 257)
#: ``(1 - u) E[Q]`` on ``_LEFTOVER_U`` per ``ncap`` (a property of the prompt lengths and
#: the engine's limits, shared by every call).
_LEFTOVER: dict[float, np.ndarray] = {}


def _leftover_table(K: float, terms: int = 4000, rtol: float = 1e-10) -> np.ndarray:
    """``(1 - u) E[Q]`` of ``Q' = (Q + A - K)+``, ``A`` Poisson with mean ``a = u K``, on
    ``_LEFTOVER_U``: Spitzer's identity ``E[Q] = sum_k E[(S_k)+] / k``, ``S_k`` the walk after
    ``k`` steps, each point summed until its terms fall below ``rtol`` of its sum. Near
    ``u = 1`` the series needs more than ``terms`` terms; those points are dropped and the
    table runs linearly to the heavy-traffic limit ``(1 - u) E[Q] -> 1/2`` (walk variance
    ``a``, drift ``K - a``)."""
    got = _LEFTOVER.get(K)
    if got is not None:
        return got
    u = _LEFTOVER_U[1:-1]
    a = u * K
    total = np.zeros_like(u)
    active = np.arange(u.size)
    for k in range(1, terms + 1):
        mu, c = k * a[active], k * K
        m = np.floor(c)
        # E[(S - c)+] = mu - c + E[(c - S)+], S Poisson(mu)
        below = c * special.pdtr(m, mu) - mu * special.pdtr(m - 1.0, mu)
        term = np.maximum(mu - c + below, 0.0) / k
        total[active] += term
        if k > 8:
            active = active[term > rtol * np.maximum(total[active], 1e-300)]
            if active.size == 0:
                break
    f = (1.0 - u) * total
    good = np.ones(u.size, dtype=bool)
    good[active] = False  # not settled within the terms
    table = np.interp(_LEFTOVER_U, np.concatenate([[0.0], u[good], [1.0]]),
                      np.concatenate([[0.0], f[good], [0.5]]))
    if len(_LEFTOVER) >= 64:
        _LEFTOVER.clear()
    _LEFTOVER[K] = table
    return table


def _fitting_prompts(works: list[_Work], share: np.ndarray, budget: int, cap: int) -> float:
    """Mean number of queued prompts one step takes: the first always, then while their
    tokens sum to at most ``budget`` (and at most ``cap``); prompt lengths drawn from the
    works' points in proportion ``share`` (``1 + sum_k P(S_k <= budget)``, k >= 2).
    Cached: the answer depends only on these inputs."""
    key = (budget, cap, np.asarray(share, dtype=float).tobytes(),
           tuple((np.asarray(w.points, dtype=float).tobytes(),
                  np.asarray(w.point_weights, dtype=float).tobytes()) for w in works))
    got = _FITTING.get(key)
    if got is None:
        if len(_FITTING) >= 256:
            _FITTING.clear()
        got = _FITTING[key] = _fitting_count(works, share, budget, cap)
    return got


#: ``_fitting_prompts`` answers by their inputs.
_FITTING: dict[tuple, float] = {}


def _fitting_count(works: list[_Work], share: np.ndarray, budget: int, cap: int) -> float:
    """``_fitting_prompts`` computed: the token sums by convolution on 512 bins."""
    bins = 512
    h = budget / bins
    pmf = np.zeros(bins + 1)
    for w, s in zip(works, share):
        idx = np.rint(np.asarray(w.points, dtype=float) / h).astype(int)
        keep = idx <= bins
        pmf += np.bincount(idx[keep], weights=s * np.asarray(w.point_weights)[keep],
                           minlength=bins + 1)[:bins + 1]
    total, dist = 1.0, pmf
    for _ in range(2, cap + 1):
        dist = np.convolve(dist, pmf)[:bins + 1]
        mass = float(dist.sum())
        total += mass
        if mass < 1e-6:
            break
    return float(np.clip(total, 1.0, cap))


def _per_point(context: np.ndarray, build) -> np.ndarray:
    """Apply ``build(context) -> (L,)`` per distinct context; stack to (*S, L)."""
    flat = np.atleast_1d(context).ravel()
    keys = np.round(flat / 16.0).astype(int)
    uniq, inverse = np.unique(keys, return_inverse=True)
    rows = [build(u * 16.0) for u in uniq]
    L = max(len(r) for r in rows)
    rows = np.stack([np.pad(r, (0, L - len(r)), mode="edge") for r in rows])
    return rows[inverse].reshape(np.shape(context) + (L,))


def _speedup(step: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Speed of a batch station with ``n = 1..L`` present relative to one sequence,
    ``min(n, cap) t(1) / t(min(n, cap))``, from step times ``step`` (s, ``(*S, L)``)."""
    b = np.arange(1, step.shape[-1] + 1)
    mult = b * step[..., :1] / step
    return np.where(b > cap[..., None], np.take_along_axis(mult, cap[..., None] - 1, -1), mult)


def _falsi(gap, lo: np.ndarray, hi: np.ndarray, tol: float, max_iter: int):
    """Per point, a root of ``gap(x)[0]`` on ``[lo, hi]`` where ``gap(lo) >= 0 >= gap(hi)``
    (regula falsi, Illinois). ``gap`` returns ``(g, *more)``; the answer is ``(x, g, more,
    iterations, residual)`` at the last ``x``, or ``None`` when ``max_iter`` did not settle
    it (at every point, ``|g| / max(x, 1)`` or the bracket below ``tol``). A first bracket is tried at
    ``lo + 2 gap(lo)`` (a root's distance from ``lo`` is about ``gap(lo)`` when ``gap``
    is flat), ``hi`` evaluated only where that is not past the root."""
    g_lo = gap(lo)[0]
    trial = np.minimum(lo + 2.0 * g_lo, hi)
    g_trial = gap(trial)[0]
    past = g_trial <= 0
    g_hi = g_trial if np.all(past) else np.where(past, g_trial, gap(hi)[0])
    lo, g_lo = np.where(past, lo, trial), np.where(past, g_lo, g_trial)
    hi = np.where(past, trial, hi)
    kept = np.zeros(np.shape(g_lo), dtype=int)   # -1: hi kept last time, +1: lo kept
    residual = np.inf
    for iterations in range(1, max_iter + 1):
        span = g_lo - g_hi
        x = np.where(span > 0, lo + g_lo * (hi - lo) / np.where(span > 0, span, 1.0),
                     0.5 * (lo + hi))
        g, *more = gap(x)
        miss = np.abs(g) / np.maximum(x, 1.0)
        residual = float(np.max(miss, initial=0.0))
        # settled per point: a root, or a bracket as narrow as tol around a step of the map
        if np.all((miss < tol) | ((hi - lo) / np.maximum(x, 1.0) < tol)):
            return x, g, more, iterations, residual
        up = g > 0
        lo, g_lo = np.where(up, x, lo), np.where(up, g, g_lo)
        hi, g_hi = np.where(up, hi, x), np.where(up, g_hi, g)
        g_hi = np.where(up & (kept == -1), g_hi / 2, g_hi)
        g_lo = np.where(~up & (kept == 1), g_lo / 2, g_lo)
        kept = np.where(up, -1, 1)
    return None, None, None, max_iter, residual


def _solve_llm(lp: _LLMPool, lam: np.ndarray, res: _Result, tables: _StepTable,
               damping: float, tol: float, max_iter: int, K: int) -> None:
    pool = lp.pool
    R = pool.replicas
    name = pool.name
    shape = np.shape(lam[0]) if K else ()
    zero = np.zeros(shape)
    # high-priority work: prompts (except under chunking) and encoder passes
    chunked = pool.batching == "chunked" and lp.role == "colocated"
    static = pool.batching == "static" and lp.role == "colocated"
    # prompts (unless chunked or static) are prefilled in batches of what waits: _PrefillBatches
    batched = bool(lp.prefill) and not (chunked or static)
    hi = lp.encoder
    rho_hi = zero + _rate(lam, hi, R, "mean")
    lam_hi = zero + _rate(lam, hi, R)
    r0_hi = zero + _rate(lam, hi, R, "second") / 2.0
    stretch = 1.0 / np.maximum(1.0 - rho_hi, 1e-12)
    unstable_hi = rho_hi >= 1.0
    cap_hi = np.zeros(K)
    for w in hi:
        cap_hi[w.cls] += w.visits * w.mean / R

    if not lp.decode:  # a prefill-only pool (disaggregated) or encoders only
        _solve_prefill_only(lp, lam, res, R, zero, rho_hi, r0_hi, cap_hi, tol, max_iter)
        return

    theta = zero + _rate(lam, lp.decode, R, "tokens")        # decode tokens/s per replica
    seqs = zero + _rate(lam, lp.decode, R)                   # sequences/s per replica
    ctx = zero + _context(lam, lp.decode)
    cap = np.asarray(pool.max_batch(ctx + 0.0), dtype=int)
    L = int(np.max(cap))
    t_dec = _per_point(ctx, lambda c: tables.table(c, "decode", L))          # (*S, L)
    b = np.arange(1, L + 1)
    iterations, residual = 0, 0.0

    if static:
        # Gated batches: a request that finds the replica busy waits for the running batch
        # to end (the residual of a batch duration, inspection paradox), then leaves with the
        # next batch, whose size is what arrived meanwhile: b = max(1, lambda T(b)) <= B.
        prompt = sum(w.visits * w.tokens for w in lp.prefill) / sum(w.visits for w in lp.prefill)
        pts = np.concatenate([w.points for w in lp.decode])
        emax = np.array([expected_max(pts, int(k)) for k in b])
        emax2 = np.array([expected_max(pts ** 2, int(k)) for k in b])
        t_pre_b = np.asarray(lp.steps.prefill(prompt, 0.0, b.astype(float)), dtype=float)
        # finished sequences leave and are not replaced: over a batch's decode the mean
        # running count is b E[n] / E[max of b n]; steps are timed at that batch
        running = np.maximum(b * pts.mean() / np.maximum(emax, 1e-300), 1.0)
        lo = np.clip(np.floor(running).astype(int), 1, L)
        frac = (np.clip(running, 1, L) - lo)
        t_lo = np.take_along_axis(t_dec, np.broadcast_to(lo - 1, t_dec.shape), -1)
        t_hi = np.take_along_axis(t_dec, np.broadcast_to(np.minimum(lo, L - 1), t_dec.shape), -1)
        t_run = t_lo + frac * (t_hi - t_lo)
        T = (t_pre_b + emax * t_run) * stretch[..., None]
        T2 = (t_pre_b ** 2 + 2 * t_pre_b * emax * t_run + emax2 * t_run ** 2) \
            * stretch[..., None] ** 2
        bbar = zero + 1.0
        for iterations in range(1, max_iter + 1):
            new = np.clip(seqs * _interp(T, bbar), 1.0, cap)
            residual = float(np.max(np.abs(new - bbar) / new, initial=0.0))
            bbar = bbar + damping * (new - bbar)
            if residual < tol:
                break
        else:
            raise ConvergenceError(
                f"evaluate: static-batch size on pool {name!r} did not settle in {max_iter} "
                f"iterations (residual {residual:.3g}); valid: raise max_iter or lower damping",
                iterations=max_iter, residual=residual)
        T_b = _interp(T, bbar)
        tB = np.take_along_axis(T, cap[..., None] - 1, -1)[..., 0]
        unstable = (seqs * tB / cap >= 1.0) | unstable_hi
        busy = np.minimum(seqs * T_b / bbar, 1.0)
        wait = np.where(unstable, np.inf, busy * _interp(T2, bbar) / (2.0 * T_b))
        t_pre_busy = np.interp(bbar, b, t_pre_b) * stretch
        t_dec_busy = _interp(t_run, bbar) * stretch
        for w in lp.prefill:
            res.time[id(w)] = wait + t_pre_busy
            res.prefill_parts[id(w)] = (t_pre_busy[..., None], np.ones(1))
            res.waits[id(w)] = (wait, busy)
            res.var[id(w)] = _wait_var(wait, np.maximum(busy, 1e-9))
        drain = _Draining(pts, bbar, t_dec)
        for w in lp.decode:
            time, per_request = drain.decode(w.points)
            res.time[id(w)] = np.where(unstable, np.inf, time * w.max_factor * stretch)
            res.var[id(w)] = (w.tokens_second - w.tokens ** 2) * t_dec_busy ** 2
            res.tpot_var[id(w)] = zero
            n = max(w.tokens, 1e-300)
            res.tpot_extra[id(w)] = np.where(unstable, 0.0, (per_request - time / n) * stretch)
        util = np.minimum(rho_hi + (1 - rho_hi) * busy, 1.0)
        batch = busy * np.interp(bbar, b, running)  # time-average running, as the batch drains
        coef = cap_hi.copy()
        for w in lp.decode:
            coef[w.cls] += np.mean(w.visits / w.branches * tB / stretch / cap / R)
        res.capacity_terms.append((f"pool {name!r} static batch", coef))
    else:
        if chunked:
            C = pool.chunk_tokens
            pre_tokens = zero + _rate(lam, lp.prefill, R, "tokens")
            pre_rate = zero + _rate(lam, lp.prefill, R)
            pre_second = zero + _rate(lam, lp.prefill, R, "tokens_second")
            t_mix = _per_point(ctx, lambda c: tables.table(c, "mixed", L))     # (*S, L)
            # mixed steps with b = 0..L decodes and a chunk filled to each of _FILLS
            fill0 = np.asarray(lp.steps.mixed(0.0, 0.0, np.maximum(_FILLS * C, 1.0),
                                              tables.chunk_context), dtype=float)
            t_fill = np.stack([_per_point(ctx, lambda c, q=q: tables.table(c, "mixed", L, q))
                               for q in _FILLS], axis=-1)                      # (*S, L, F)
            t_fill = np.concatenate([np.broadcast_to(fill0, t_fill.shape[:-2] + (1, len(_FILLS))),
                                     t_fill], axis=-2)                         # (*S, L+1, F)
            mean_prompt = np.asarray(pre_tokens / np.where(pre_rate > 0, pre_rate, 1.0))
            def settle(x):
                """The decode station at a mean running batch ``x``: (its own mean - x, it)."""
                mix = _ChunkMix(lp.prefill, C, x, pre_tokens, mean_prompt, t_dec, t_fill)
                step = (1 - mix.p_mixed[..., None]) * t_dec + mix.p_mixed[..., None] * mix.t_b
                step = step * stretch[..., None]
                bs = batch_station(theta * step[..., 0], _speedup(step, cap), cap, g=step)
                new = np.where(np.isfinite(bs.mean_running), bs.mean_running, cap)
                return new - x, bs, step

            # the batch solves x = mean running(x) in [0, cap]: regula falsi (Illinois) on
            # that bracket, which cannot cycle where the map has kinks (damping is not used)
            bbar, _, more, iterations, residual = _falsi(settle, zero + 0.0, cap + 0.0, tol,
                                                         max_iter)
            if bbar is None:
                raise ConvergenceError(
                    f"evaluate: chunked-prefill fixed point on pool {name!r} did not settle in "
                    f"{max_iter} iterations (residual {residual:.3g}); valid: raise max_iter",
                    iterations=max_iter, residual=residual)
            bs, step = more
            mix = _ChunkMix(lp.prefill, C, bbar, pre_tokens, mean_prompt, t_dec, t_fill)
            tm = mix.t_full * stretch
            speed = mix.chunk / tm                                # prompt tokens/s when backlogged
            f = pre_tokens / speed
            unstable_pre = f >= 1.0
            wait_pre = np.where(unstable_pre, np.inf,
                                pre_second / speed ** 2 / 2.0 / np.maximum(1 - f, 1e-12))
            wait_pre = wait_pre + np.where(lam_hi > 0, r0_hi / np.maximum(1 - rho_hi, 1e-12), 0)
            pre_util = f
            res.capacity_terms.append(("chunked", (pool, lp, t_dec, t_mix, cap, stretch)))
        else:
            def station(s: np.ndarray):
                """The decode batch station with steps stretched by ``s``."""
                st = t_dec * s[..., None]
                return batch_station(theta * st[..., 0], _speedup(st, cap), cap, g=st), st

            tB = np.take_along_axis(t_dec, cap[..., None] - 1, -1)[..., 0]
            coef = cap_hi.copy()
            for w in lp.decode:
                coef[w.cls] += np.mean(w.visits * w.tokens * tB / cap / R)
            if batched:
                bt = _PrefillBatches(lp, lam, R, zero)

                def settle(n: np.ndarray):
                    """The batch after a step (prefill batches of ``n`` or a decode step),
                    minus ``n``; its variance, the prefill load, the stretch of decode steps
                    and the decode station (with its step times) at ``n``."""
                    t_n = bt.time(n) * stretch
                    rho_p = np.minimum(bt.rate * t_n / n, 1.0 - rho_hi)
                    s_all = 1.0 / np.maximum(1.0 - rho_hi - rho_p, 1e-12)
                    bs, step = station(s_all)
                    dec = (1.0 - rho_hi - rho_p) * bs.busy
                    g = np.where(np.isfinite(bs.mean_running), bs.g_mean / s_all, tB)
                    t_prev = (rho_p * t_n + dec * g) / np.maximum(rho_p + dec, 1e-300)
                    new, var = bt.size(bt.rate * t_prev, alone_after_idle=False)
                    return new - n, var, rho_p, s_all, bs, step

                # n = F(n) on [1, ncap] (F(1) >= 1, F <= ncap): regula falsi (Illinois)
                n, g, more, iterations, residual = _falsi(settle, zero + 1.0, bt.ncap + 0.0,
                                                          tol, max_iter)
                if n is None:
                    raise ConvergenceError(
                        f"evaluate: prefill batch size on pool {name!r} did not settle in "
                        f"{max_iter} iterations (residual {residual:.3g}); valid: raise "
                        "max_iter", iterations=max_iter, residual=residual)
                # the settled batch, with the decode station the last step found there
                var_n, rho_p, s_all, bs, step = more
                t_n, t2_n = bt.time(n) * stretch, bt.second(n, var_n) * stretch ** 2
                # the step in progress when a prompt arrives: a prefill batch or a decode step
                dec = (1.0 - rho_hi - rho_p) * bs.busy
                g_mean, g_second = bs.g_mean / s_all, bs.g_second / s_all ** 2
                resid_p = t2_n / (2.0 * t_n)
                resid_d = g_second / np.maximum(2.0 * g_mean, 1e-300)
                seen = bt.seen(2.0 * (rho_p * resid_p + dec * resid_d)
                               / np.maximum(rho_p + dec, 1e-300))
                steps_p = bt.rate / n  # prefill steps per second
                unstable_pre = (rho_hi + bt.rate * bt.time(bt.ncap) * stretch / bt.ncap >= 1.0)
                prompts = np.zeros(K)
                for w in lp.prefill:
                    prompts[w.cls] += w.visits / R
                res.capacity_terms.append(("batched", (f"pool {name!r} prefill+decode", coef,
                                                       coef - cap_hi, prompts, bt, stretch,
                                                       tB)))
            else:
                bs, step = station(stretch)
                unstable_pre = unstable_hi
                res.capacity_terms.append((f"pool {name!r} prefill+decode" if lp.prefill
                                           else f"pool {name!r} decode", coef))
        finite = np.isfinite(bs.mean_running)
        tau = np.where(theta > 0, bs.mean_running / np.where(theta > 0, theta, 1.0),
                       step[..., 0])
        admit = np.where(seqs > 0, bs.mean_waiting / np.where(seqs > 0, seqs, 1.0), 0.0)
        admit_var = _wait_var(admit, bs.full)
        batch_cv2 = np.maximum(bs.g_second / np.maximum(bs.g_mean, 1e-300) ** 2 - 1.0, 0.0)
        # rate x E[S^2] of interrupting work (encoder passes, prefill batches), x a step
        interrupt = 2.0 * (r0_hi + (steps_p * t2_n / 2.0 if batched else 0.0)) * bs.g_mean
        if batched:
            # gated: a prompt waits for the step in progress (a prefill batch, a decode step
            # or an encoder pass) and goes into the next prefill step with all that waits
            pre_util = rho_hi + rho_p
            wait_pre = np.where(unstable_hi | unstable_pre, np.inf,
                                rho_p * resid_p + dec * resid_d + r0_hi * stretch)
            wait_enc = np.where(unstable_hi, np.inf,
                                (r0_hi + rho_p * resid_p + dec * resid_d) * stretch)
        elif not chunked:
            frac = (1 - rho_hi) * bs.busy
            r0 = r0_hi + frac * bs.g_second / np.maximum(2.0 * bs.g_mean, 1e-300)
            wait_pre = wait_enc = np.where(unstable_hi, np.inf,
                                           r0 / np.maximum(1 - rho_hi, 1e-12))
            pre_util = rho_hi
        # prompts on a disaggregated decode pool do not exist; colocated prompts wait for a slot
        colocated = bool(lp.prefill)
        busy_any = np.minimum(pre_util + (1 - np.minimum(pre_util, 1.0)) * bs.busy, 1.0)
        if chunked:
            # encoder passes go before any LLM step (they do not queue behind the prompt
            # stream): non-preemptive priority, the LLM step in progress and the passes queued
            wait_enc = np.where(unstable_hi, np.inf,
                                (r0_hi + (1 - rho_hi) * busy_any * mix.residual) * stretch)
        if batched:
            # the prompts that arrived during a request's own prefill step are prefilled right
            # after its first token, and those that arrived meanwhile after them: its first
            # decode gap holds q / (1 - q) more prefill batches, q = P(an arrival in a step)
            q = -np.expm1(-bt.rate * bt.time(seen) * stretch)
            first_gap = np.where(q < 1, q / np.maximum(1 - q, 1e-12), np.inf) * t_n
            for w in lp.prefill:
                # a prompt queued on the replica whose encoder step it just left goes into
                # the next step: it does not wait for a step in progress a second time
                # and, having waited, is prefilled in a batch (wait + extra: 0 or exponential
                # in the TTFT mixture); one that finds the replica idle is prefilled alone
                own_wait = (wait_pre * (1.0 - w.after_encoder)
                            + busy_any * bt.extra(w, seen, stretch))
                res.time[id(w)] = admit + own_wait + w.mean
                # a prompt waits when it finds a step (prefill or decode) in progress
                res.var[id(w)] = (_wait_var(own_wait, np.maximum(busy_any, 1e-9)) + admit_var
                                  + (w.second - w.mean ** 2))
                res.waits[id(w)] = (admit + own_wait, busy_any)
                res.prefill_parts[id(w)] = (w.time_points, w.point_weights)
        for w in hi:
            res.time[id(w)] = wait_enc + w.mean
            res.var[id(w)] = (_wait_var(wait_enc, np.maximum(busy_any, 1e-9))
                              + (w.second - w.mean ** 2))
            res.waits[id(w)] = (wait_enc, busy_any)
        if chunked:
            # a prompt waits for the step in progress, then its own steps: full chunks and a
            # last, partly filled one whose end gives the first token
            # (the step in progress: found with the replica's busy probability)
            resid = mix.residual * stretch * busy_any
            for w in lp.prefill:
                s1, s2, steps = mix.own_steps(w)
                res.prefill_parts[id(w)] = (steps * stretch[..., None], w.point_weights)
                res.waits[id(w)] = (admit + wait_pre + resid, busy_any)
                res.time[id(w)] = admit + wait_pre + resid + s1 * stretch
                res.var[id(w)] = (_wait_var(wait_pre + resid, np.maximum(busy_any, 1e-9))
                                  + admit_var + s2 * stretch ** 2)
        for w in lp.decode:
            own_admit = 0.0 if colocated else admit
            res.time[id(w)] = own_admit + w.tokens * w.max_factor * tau
            tv = tau ** 2 * batch_cv2 + interrupt / max(w.tokens, 1.0)
            res.tpot_var[id(w)] = tv
            if batched:
                res.tpot_extra[id(w)] = first_gap * w.gap_weight if w.gap_weight else zero
            res.var[id(w)] = ((0.0 if colocated else admit_var)
                              + (w.tokens_second - w.tokens ** 2) * tau ** 2
                              + w.tokens_second * tv)
        unstable = ~finite | unstable_pre | unstable_hi
        util = np.minimum(pre_util + (1 - np.minimum(pre_util, 1.0)) * bs.busy, 1.0)
        batch = bs.mean_running
    label = f"pool {name!r} " + ("decode" if not lp.prefill else
                                 "prefill+decode" if not chunked else "chunked prefill+decode")
    res.unstable[label] = unstable
    res.pool_util[name] = np.where(unstable, 1.0, util)
    res.pool_batch[name] = np.where(unstable, cap, batch)
    res.pool_cap[name] = cap + 0.0
    res.pool_context[name] = ctx
    res.iterations = max(res.iterations, iterations)
    res.residual = max(res.residual, residual)


def _solve_prefill_only(lp: _LLMPool, lam: np.ndarray, res: _Result, R: int,
                        zero: np.ndarray, rho_e: np.ndarray, r0_e: np.ndarray,
                        cap_e: np.ndarray, tol: float, max_iter: int) -> None:
    """A pool without decodes: encoder passes (priority, one by one) and gated prefill batches.

    A prompt that finds a step in progress waits its residual ``E[T^2] / (2 E[T])``
    and is prefilled with everything that arrived meanwhile; the mean batch solves
    ``n = x + exp(-x)``, ``x = lambda T(n)`` (capped at ``ncap``); the replica is busy
    with prompts ``lambda T(n) / n`` of the time and saturates when
    ``lambda T(ncap) / ncap >= 1``.
    """
    name = lp.pool.name
    stretch = 1.0 / np.maximum(1.0 - rho_e, 1e-12)
    unstable = rho_e >= 1.0
    busy_p, resid_p, coef = zero + 0.0, zero + 0.0, cap_e.copy()
    if lp.prefill:
        bt = _PrefillBatches(lp, lam, R, zero)

        def settle(n: np.ndarray):
            """The batch after steps of mean batch ``n``, minus ``n``; its variance.
            Prompts left over from a full step join the next one."""
            x = bt.rate * bt.time(n) * stretch
            new, var = bt.size(x, alone_after_idle=True)
            return np.minimum(new + bt.leftover(x), bt.ncap) - n, var

        # the batch solves n = F(n) on [1, ncap] (F(1) >= 1, F <= ncap): regula falsi
        # (Illinois) on that bracket; near saturation the leftover is steep and a damped
        # iteration creeps (500 iterations were not enough in a notebook's sweep)
        n, g, more, iterations, residual = _falsi(settle, zero + 1.0, bt.ncap + 0.0, tol,
                                                  max_iter)
        if n is None:
            raise ConvergenceError(
                f"evaluate: prefill batch size on pool {name!r} did not settle in {max_iter} "
                f"iterations (residual {residual:.3g}); valid: raise max_iter",
                iterations=max_iter, residual=residual)
        var_n = more[0]
        n = n + g  # F(n), the settled batch
        res.iterations = max(res.iterations, iterations)
        res.residual = max(res.residual, residual)
        t_n, t2_n = bt.time(n) * stretch, bt.second(n, var_n) * stretch ** 2
        busy_p = np.minimum(bt.rate * t_n / n, 1.0)
        resid_p = t2_n / (2.0 * t_n)
        unstable = unstable | (bt.rate * bt.time(bt.ncap) * stretch / bt.ncap >= 1.0)
        seen = bt.seen(2.0 * resid_p)
        # the step in progress, then whole steps while more wait than a step takes
        queued = bt.leftover(bt.rate * t_n) / np.where(bt.rate > 0, bt.rate, 1.0)
        wait = np.where(unstable, np.inf, busy_p * resid_p + queued + r0_e * stretch)
        busy = np.minimum(busy_p + rho_e, 1.0)
        ncap = float(np.mean(bt.ncap))
        for w in lp.prefill:
            # a prompt that waits is prefilled in a batch (wait + extra, 0 or exponential
            # in the TTFT mixture), one that finds the replica idle alone
            own_wait = wait + busy * bt.extra(w, seen, stretch)
            res.time[id(w)] = own_wait + w.mean
            res.var[id(w)] = _wait_var(own_wait, np.maximum(busy, 1e-9)) + (
                w.second - w.mean ** 2)
            res.waits[id(w)] = (own_wait, busy)
            res.prefill_parts[id(w)] = (w.time_points, w.point_weights)
            coef[w.cls] += w.visits * bt.capacity_cost(w, ncap) / R
    # encoder passes wait for the work in progress, prompts' batches included
    wait_e = np.where(unstable, np.inf, (r0_e + busy_p * resid_p) * stretch)
    for w in lp.encoder:
        res.time[id(w)] = wait_e + w.mean
        res.var[id(w)] = _wait_var(wait_e, np.maximum(rho_e + busy_p, 1e-9)) + (
            w.second - w.mean ** 2)
        res.waits[id(w)] = (wait_e, np.minimum(rho_e + busy_p, 1.0))
    res.unstable[f"pool {name!r} prefill"] = unstable
    res.pool_util[name] = np.minimum(rho_e + busy_p, 1.0)
    res.capacity_terms.append((f"pool {name!r} prefill", coef))


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=float)
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def _interp(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table[..., n-1]`` (n = 1..L) at real ``x`` (broadcast)."""
    L = table.shape[-1]
    if table.ndim == 1:  # one point's table (a scalar call): numpy's own, clamped alike
        return np.interp(x, np.arange(1.0, L + 1.0), table)
    shape = np.broadcast_shapes(table.shape[:-1], np.shape(x))
    x = np.minimum(np.maximum(np.broadcast_to(np.asarray(x, dtype=float), shape), 1.0), L)
    flat = np.broadcast_to(table, shape + (L,)).reshape(-1, L)
    lo = np.minimum(np.maximum(x.astype(int), 1), max(L - 1, 1)).ravel()  # floor, 1..L-1
    rows = np.arange(lo.size)
    tlo = flat[rows, lo - 1]
    thi = flat[rows, np.minimum(lo, L - 1)]
    return (tlo + (x.ravel() - lo) * (thi - tlo)).reshape(shape)


#: Fractions of a chunk at which mixed-step times are tabulated (chunked prefill).
_FILLS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


class _Draining:
    """A static batch of ``bbar`` sequences that leave as they finish, slots not refilled.

    With the equally likely decode-token counts ``points``, step ``j`` runs the
    ``bbar x P(d >= j)`` sequences still decoding: piecewise constant between
    the sorted points. A request of ``d`` tokens decodes through the first
    ``d`` steps, the fullest ones, so its time is the sum of those steps (not
    ``d`` steps at the batch's mean occupancy), and its TPOT their mean.
    """

    def __init__(self, points: np.ndarray, bbar: np.ndarray, t_dec: np.ndarray) -> None:
        d = np.sort(np.asarray(points, dtype=float))
        m = len(d)
        self.x = np.concatenate([[0.0], d])
        running = bbar[..., None] * (m - np.arange(m)) / m                      # (*S, m)
        L = t_dec.shape[-1]
        r = np.clip(running, 1.0, L)
        lo = np.clip(np.floor(r).astype(int), 1, L)
        hi = np.minimum(lo + 1, L)
        t_lo = np.take_along_axis(t_dec, lo - 1, -1)
        self.step = t_lo + (r - lo) * (np.take_along_axis(t_dec, hi - 1, -1) - t_lo)
        self.cum = np.concatenate([np.zeros(np.shape(bbar) + (1,)),
                                   np.cumsum(np.diff(self.x) * self.step, -1)], -1)

    def decode(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Mean decode seconds, mean per-request seconds per token) of requests of ``points``."""
        p = np.asarray(points, dtype=float)
        k = np.clip(np.searchsorted(self.x, p, side="right") - 1, 0, len(self.x) - 2)
        time = self.cum[..., k] + (p - self.x[k]) * self.step[..., k]             # (*S, n)
        some = p >= 1.0
        per = (time[..., some] / p[some]).mean(-1) if some.any() else np.zeros(time.shape[:-1])
        return time.mean(-1), per


class _ChunkMix:
    """Mixed steps of chunked prefill at a mean running batch ``bbar`` (arrays over the sweep).

    A step carries the running decodes plus up to ``chunk = C - bbar`` prompt
    tokens. A prompt of ``P`` tokens takes ``k = ceil(P / chunk)`` steps, all
    full but the last, beside the ``bbar`` decodes it finds running. Mixed
    steps hold ``x`` prompt tokens on average: a prompt's own share
    ``E[P] / E[k]`` at low load, growing linearly with the stream's
    utilisation to a full chunk (a backlog fills every step). Flow balance
    fixes the fraction of decode steps that carry prompt tokens,
    ``p_mixed = (prompt tokens/s) x (mean step) / x``, and the mean step
    solves ``t = t_dec + p_mixed (t_mix(x) - t_dec)``.

    ``t_fill`` holds mixed-step times for b = 0..L decodes (axis -2) at the
    chunk fills ``_FILLS`` (axis -1); ``t_dec`` decode steps for b = 1..L.
    """

    def __init__(self, works: list[_Work], C: int, bbar: np.ndarray, pre_tokens: np.ndarray,
                 mean_prompt: np.ndarray, t_dec: np.ndarray, t_fill: np.ndarray) -> None:
        self.bbar = bbar
        self.chunk = chunk = np.clip(C - bbar, 1.0, C)
        # every fill at the prompt's b (0..L: index b + 1 in _interp's 1-based table)
        self.at_b = _interp(np.moveaxis(t_fill, -1, -2), bbar[..., None] + 1.0)   # (*S, F)
        self.t_full = self.at_b[..., -1]
        total = sum(w.visits for w in works)
        steps = sum(w.visits * _expected_steps(w.points, w.point_weights, chunk)
                    for w in works) / total
        own = np.minimum(mean_prompt / np.maximum(steps, 1.0), chunk)
        util = np.clip(pre_tokens * self.t_full / chunk, 0.0, 1.0)
        x = own + (chunk - own) * util
        # decode steps (b >= 1) that carry x prompt tokens
        self.t_b = _between_fills(t_fill[..., 1:, :], np.broadcast_to(
            (x / chunk)[..., None], t_fill.shape[:-1])[..., 1:])                  # (*S, L)
        bb = np.maximum(bbar, 1.0)
        t_d, t_x = _interp(t_dec, bb), _interp(self.t_b, bb)
        denom = np.maximum(1.0 - pre_tokens * (t_x - t_d) / np.maximum(x, 1e-300), 1e-12)
        self.p_mixed = p = np.clip(pre_tokens * t_d / denom / np.maximum(x, 1e-300), 0.0, 1.0)
        mean = (1 - p) * t_d + p * t_x
        self.residual = ((1 - p) * t_d ** 2 + p * t_x ** 2) / (2.0 * mean)

    def own_steps(self, w: _Work) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and variance (s, s^2) of the steps of one prompt of ``w``, and the seconds of
        each of its prompt points."""
        chunk = self.chunk[..., None]
        k = np.ceil(w.points / chunk)
        last = (w.points - (k - 1) * chunk) / chunk                       # (*S, n)
        t = (k - 1) * self.t_full[..., None] + _between_fills(self.at_b[..., None, :], last)
        mean = (w.point_weights * t).sum(-1)
        return mean, np.maximum((w.point_weights * t * t).sum(-1) - mean ** 2, 0.0), t


def _expected_steps(points: np.ndarray, weights: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """E[ceil(P / chunk)] = sum_j P(P > j chunk), with P's survival function linear between
    its points (continuous in ``chunk``, so the chunked fixed point cannot cycle on a jump)."""
    order = np.argsort(points)
    p, w = points[order], weights[order]
    survival = 1.0 - (np.cumsum(w) - w / 2.0)
    jmax = int(np.ceil(p[-1] / max(float(np.min(chunk)), 1.0))) + 1
    j = np.arange(jmax)
    return np.interp(j * chunk[..., None], p, survival, left=1.0, right=0.0).sum(-1)


def _between_fills(table: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Interpolate ``table[..., F]`` (times at the fills ``_FILLS``) at ``fill`` in [0, 1]."""
    f = np.clip(fill, 0.0, 1.0) * (len(_FILLS) - 1)
    lo = np.clip(np.floor(f).astype(int), 0, len(_FILLS) - 2)
    table = np.broadcast_to(table, f.shape + table.shape[-1:])
    a = np.take_along_axis(table, lo[..., None], -1)[..., 0]
    c = np.take_along_axis(table, lo[..., None] + 1, -1)[..., 0]
    return a + (f - lo) * (c - a)


def _solve_shared(name: str, works: list[_Work], instances: int, lam: np.ndarray,
                  res: _Result, kind: str, K: int) -> None:
    """FCFS M/G/c pools (kind "fcfs") or processor-sharing tiers and links (kind "ps")."""
    lam_tot = _rate(lam, works, 1.0)
    mean_work = _rate(lam, works, 1.0, "mean")
    coef = np.zeros(K)
    for w in works:
        coef[w.cls] += w.visits * w.mean / instances
    if kind == "fcfs":
        s1 = _safe_div(mean_work, lam_tot)
        s2 = _safe_div(_rate(lam, works, 1.0, "second"), lam_tot)
        if not np.any(lam_tot > 0):
            s1 = np.asarray(sum(w.mean for w in works) / len(works))
            s2 = np.asarray(sum(w.second for w in works) / len(works))
        scv = np.maximum(s2 / np.maximum(s1 * s1, 1e-300) - 1.0, 0.0)
        wait = mgc_wait(lam_tot, s1, scv, instances)
        rho = mean_work / instances
        for w in works:
            res.time[id(w)] = wait + w.mean
            res.var[id(w)] = _wait_var(wait, np.minimum(rho, 1.0)) + w.second - w.mean ** 2
            res.waits[id(w)] = (wait, np.minimum(rho, 1.0))
        res.unstable[f"pool {name!r}"] = rho >= 1.0
        res.pool_util[name] = np.minimum(rho, 1.0)
        res.capacity_terms.append((f"pool {name!r}", coef))
    else:
        rho = mean_work / instances
        stable = rho < 1.0
        for w in works:
            t = np.where(stable, w.mean / np.maximum(1.0 - rho, 1e-12), np.inf)
            res.time[id(w)] = t
            res.var[id(w)] = t * t
        res.unstable[name] = ~stable
        res.capacity_terms.append((name, coef))


# --------------------------------------------------------------------------- evaluate


def _solve_all(plan: _Plan, lam: np.ndarray, damping: float, tol: float,
               max_iter: int) -> _Result:
    res = _Result()
    K = len(plan.scenario.classes)
    for lp in plan.llm.values():
        _solve_llm(lp, lam, res, plan.step_tables[lp.pool.name], damping, tol, max_iter, K)
    for name, works in plan.fcfs.items():
        _solve_shared(name, works, plan.scenario.pool(name).devices, lam, res, "fcfs", K)
    for name, medium in plan.media.items():
        _solve_shared(f"medium {name!r}", medium.works, medium.instances, lam, res, "ps", K)
    return res


def _class_metrics(plan: _Plan, res: _Result, shape: tuple[int, ...]):
    """Per class: ttft, tpot, e2e means and variances, and the per-stage breakdown."""
    K = len(plan.scenario.classes)
    out = {name: np.zeros((K,) + shape) for name in
           ("ttft", "ttft_var", "tpot", "tpot_var", "e2e", "e2e_var")}
    labels: list[str] = []
    for segs in plan.segments:
        for s in segs:
            if s.label not in labels:
                labels.append(s.label)
    breakdown = np.zeros((K, len(labels)) + shape)
    for k, segs in enumerate(plan.segments):
        after_main = np.zeros(shape)
        tpot_var = np.zeros(shape)
        tpot_extra = np.zeros(shape)
        for s in segs:
            if s.work is None:
                mean, var = np.full(shape, s.seconds), np.zeros(shape)
            else:
                mean, var = res.time[id(s.work)], res.var[id(s.work)]
            p = s.probability
            contrib = p * mean
            contrib_var = p * (var + mean * mean) - contrib * contrib
            contrib = np.where(np.isfinite(mean), contrib, np.inf)
            contrib_var = np.where(np.isfinite(mean), contrib_var, np.inf)
            breakdown[k, labels.index(s.label)] += contrib
            out["e2e"][k] += contrib
            out["e2e_var"][k] += contrib_var
            if s.before_first_token:
                out["ttft"][k] += contrib
                out["ttft_var"][k] += contrib_var
            elif s.main:
                after_main = after_main + contrib
                if s.kind == "decode":
                    tpot_var = tpot_var + p * res.tpot_var.get(id(s.work), 0.0)
                    tpot_extra = tpot_extra + p * res.tpot_extra.get(id(s.work), 0.0)
        n = plan.decoded_tokens[k] - 1.0
        out["tpot"][k] = after_main / n + tpot_extra if n > 0 else np.nan
        out["tpot_var"][k] = tpot_var
        saturated = ~np.isfinite(out["e2e"][k])
        for name in ("ttft", "tpot"):
            out[name][k] = np.where(saturated, np.inf, out[name][k])
    return out, labels, breakdown


def _ttft_mixtures(plan: _Plan, res: _Result, ttft: np.ndarray) -> list[tuple | None]:
    """Per class, TTFT as a mixture for its percentiles, or None (then a gamma fit).

    The first prefill of the main Generate stage, on each target: its seconds
    at each prompt length (the token distribution, cut into tail-fine bins)
    plus a wait, 0 or exponential (``station_formulas.wait_mixture_cdf``),
    whose mean adds the waits of every queue before the first token and whose
    probability is that of waiting at any of them; the other stages' service
    adds its mean. Returns
    ``(values (*S, n), weights (n,), wait (*S, n), P(wait) (*S, n))``.
    """
    out: list[tuple | None] = []
    for k, segs in enumerate(plan.segments):
        firsts = [s for s in segs if s.kind == "prefill" and s.main and s.before_first_token
                  and s.work.first_round]
        if not firsts or any(id(s.work) not in res.prefill_parts for s in firsts):
            out.append(None)
            continue
        # the queues of the other stages before the first token: one wait, summed means
        other_wait, no_wait = 0.0, 1.0
        for s in segs:
            if s.before_first_token and s not in firsts and s.work is not None \
                    and id(s.work) in res.waits:
                wait_s, p_s = res.waits[id(s.work)]
                other_wait = other_wait + s.probability * wait_s
                no_wait = no_wait * (1.0 - s.probability * np.clip(p_s, 0.0, 1.0))
        values, weights, waits, probs = [], [], [], []
        own = other_wait
        for s in firsts:
            v, w = res.prefill_parts[id(s.work)]
            wait, p_wait = res.waits[id(s.work)]
            v, w = compress_points(np.asarray(v, dtype=float), np.asarray(w, dtype=float))
            wait = np.asarray(wait, dtype=float)
            own = own + s.probability * ((v * w).sum(-1) + wait)
            values.append(v)
            weights.append(s.probability * w)
            both = wait + other_wait
            p_any = 1.0 - (1.0 - np.clip(np.asarray(p_wait, dtype=float), 0.0, 1.0)) * no_wait
            waits.append(np.broadcast_to(np.asarray(both)[..., None], np.shape(both) + w.shape))
            probs.append(np.broadcast_to(np.asarray(p_any)[..., None], np.shape(p_any) + w.shape))
        shape = np.shape(ttft[k])
        shift = ttft[k] - own  # the other stages before the first token, at their means
        v = np.concatenate([np.broadcast_to(x, shape + x.shape[-1:]) for x in values], -1)
        wait = np.concatenate([np.broadcast_to(x, shape + x.shape[-1:]) for x in waits], -1)
        p = np.concatenate([np.broadcast_to(x, shape + x.shape[-1:]) for x in probs], -1)
        out.append((v + shift[..., None], np.concatenate(weights), wait, p))
    return out


def _capacity(plan: _Plan, res: _Result, lam: np.ndarray) -> tuple[np.ndarray, list]:
    """Largest arrival rate of each class that keeps every station stable, others fixed."""
    K = len(plan.scenario.classes)
    shape = lam.shape[1:]
    best = np.full((K,) + shape, np.inf)
    names = np.full((K,) + shape, "", dtype=object)
    for name, coef in res.capacity_terms:
        if name == "chunked":
            caps, label = _chunked_capacity(coef, lam, K), f"pool {coef[0].name!r} chunked"
        elif name == "batched":
            caps, label = _batched_capacity(coef, lam, K), coef[0]
        else:
            used = np.tensordot(coef, lam, axes=(0, 0))
            caps = np.full((K,) + shape, np.inf)
            for k in range(K):
                if coef[k] > 0:
                    caps[k] = (1.0 - (used - coef[k] * lam[k])) / coef[k]
        caps = np.maximum(caps, 0.0)
        better = caps < best
        best = np.where(better, caps, best)
        names = np.where(better, label if name in ("chunked", "batched") else name, names)
    return best, names


def _chunked_capacity(term, lam: np.ndarray, K: int) -> np.ndarray:
    """Stability boundary of a chunked-prefill replica, per class (others fixed).

    Two ways to saturate: decode, with a full batch ``B`` and a fraction ``f``
    of mixed steps (a quadratic in the rate, solved directly); or the prompt
    stream (``f`` reaches 1), where every step is mixed and the decode batch
    ``b`` is that of a batch station with mixed steps: ``Pi t_m(b) / (C - b) = 1``,
    monotone in the rate and solved by vectorised bisection.
    """
    pool, lp, t_dec, t_mix, cap, stretch = term
    R = pool.replicas
    C = pool.chunk_tokens
    theta = np.zeros(K)
    pi = np.zeros(K)
    for w in lp.decode:
        theta[w.cls] += w.visits * w.tokens / R
    for w in lp.prefill:
        pi[w.cls] += w.visits * w.tokens / R
    tB = np.take_along_axis(t_dec, cap[..., None] - 1, -1)[..., 0] * stretch
    tmB = np.take_along_axis(t_mix, cap[..., None] - 1, -1)[..., 0] * stretch
    roomB = np.maximum(C - cap, 1.0)
    A = tB / cap
    Bq = (tmB - tB) * tmB / (roomB * cap)
    step = t_mix * stretch[..., None]
    mult = _speedup(step, cap)
    out = np.full((K,) + lam.shape[1:], np.inf)
    for k in range(K):
        th_o = np.tensordot(theta, lam, axes=(0, 0)) - theta[k] * lam[k]
        pi_o = np.tensordot(pi, lam, axes=(0, 0)) - pi[k] * lam[k]
        a2 = theta[k] * pi[k] * Bq
        a1 = theta[k] * (A + Bq * pi_o) + th_o * Bq * pi[k]
        a0 = th_o * (A + Bq * pi_o) - 1.0
        quad = np.where(a2 > 0, (-a1 + np.sqrt(np.maximum(a1 * a1 - 4 * a2 * a0, 0.0)))
                        / (2 * np.where(a2 > 0, a2, 1.0)),
                        np.where(a1 > 0, -a0 / np.where(a1 > 0, a1, 1.0), np.inf))
        if pi[k] == 0:
            out[k] = quad
            continue

        def prompt_load(x: np.ndarray) -> np.ndarray:
            bs = batch_station((th_o + theta[k] * x) * step[..., 0], mult, cap)
            bbar = np.where(np.isfinite(bs.mean_running), bs.mean_running, cap)
            tm = _interp(step, np.maximum(bbar, 1.0))
            return (pi_o + pi[k] * x) * tm / np.maximum(C - bbar, 1.0)

        lo = np.zeros_like(quad)
        hi = np.where(np.isfinite(quad), quad, C / (pi[k] * step[..., 0]))
        saturated_at_hi = prompt_load(hi) >= 1.0
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            over = prompt_load(mid) >= 1.0
            lo = np.where(over, lo, mid)
            hi = np.where(over, mid, hi)
        out[k] = np.where(saturated_at_hi, lo, quad)
    return out


def _batched_capacity(term, lam: np.ndarray, K: int) -> np.ndarray:
    """Stability boundary of a continuous-batching replica, per class (others fixed).

    Decode saturates when its full-batch load plus the encoder and prefill loads
    reach 1: ``sum_k lambda_k c_k + lambda_p T(n) / n = 1`` (``c_k``: decode and
    encoder seconds per request at a full batch, ``lambda_p`` prompts/s; the
    prompts alone saturate where ``lambda_p T(ncap) / ncap`` reaches 1). At the
    boundary the decode steps are full (``t(B)``), so the prefill batch ``n`` is
    that of the arrivals during a step of ``t(B)`` or a prefill step. The loads
    are linear in the class's rate: for a batch ``n`` the boundary gives the rate
    directly, and ``n`` is the batch that rate makes, a root on ``[1, ncap]``
    found by regula falsi (Illinois).
    """
    _, coef, decode, prompts, bt, stretch, tB = term
    full = bt.time(bt.ncap) * stretch / bt.ncap    # seconds per prompt in full steps
    out = np.full((K,) + lam.shape[1:], np.inf)
    for k in range(K):
        if coef[k] <= 0 and prompts[k] <= 0:
            continue
        others = [j for j in range(K) if j != k]
        fixed0 = sum((coef[j] * lam[j] for j in others), np.zeros(lam.shape[1:]))
        dec0 = sum((decode[j] * lam[j] for j in others), np.zeros(lam.shape[1:]))
        rate0 = sum((prompts[j] * lam[j] for j in others), np.zeros(lam.shape[1:]))

        def at(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """The class's rate at which the load with prefill batches of ``n`` is 1,
            and the batch that rate makes minus ``n``."""
            per = np.maximum(bt.time(n) * stretch / n, full)
            x = np.maximum((1.0 - fixed0 - rate0 * per) / (coef[k] + prompts[k] * per), 0.0)
            rate, dec = rate0 + prompts[k] * x, dec0 + decode[k] * x
            t_n = bt.time(n) * stretch
            rho_p = rate * t_n / n
            t_prev = (rho_p * t_n + dec * tB) / np.maximum(rho_p + dec, 1e-300)
            return bt.size(rate * t_prev, alone_after_idle=False)[0] - n, x

        n, _, more, _, residual = _falsi(at, np.ones(lam.shape[1:]), bt.ncap + 0.0, 1e-12, 200)
        if n is None:
            raise ConvergenceError(f"evaluate: capacity of a prefill+decode replica did not "
                                   f"settle in 200 iterations (residual {residual:.3g})",
                                   iterations=200, residual=residual)
        out[k] = more[0]
    return out


def _rates(scenario: Scenario, rates: Mapping[str, Any] | None) -> list[xr.DataArray]:
    rates = dict(rates or {})
    unknown = set(rates) - {c.name for c in scenario.classes}
    if unknown:
        raise ValidationError(f"rates: unknown class {sorted(unknown)[0]!r}; valid: one of "
                              f"{[c.name for c in scenario.classes]}")
    out = []
    for c in scenario.classes:
        value = rates.get(c.name, c.rate if c.is_open else 0.0)
        if c.name in rates and not c.is_open:
            raise ValidationError(f"rates: class {c.name!r} is closed (clients = {c.clients}); "
                                  "valid: rates for open classes only")
        da = value if isinstance(value, xr.DataArray) else xr.DataArray(
            np.asarray(value, dtype=float),
            dims=() if np.ndim(value) == 0 else (f"{c.name}_rate",))
        if da.ndim and da.dims == (f"{c.name}_rate",):
            da = da.assign_coords({f"{c.name}_rate": da.values})
        v = np.asarray(da.values, dtype=float)
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValidationError(f"rates[{c.name!r}]: got {value!r}; valid: finite arrival rates "
                                  ">= 0 (requests/s)")
        out.append(da)
    return list(xr.broadcast(*out))


def evaluate(scenario: Scenario, *, rates: Mapping[str, Any] | None = None,
             damping: float = 0.5, tol: float = 1e-6, max_iter: int = 500) -> xr.Dataset:
    """Solve a scenario in closed form; the mapping and its limits are in the module docstring.

    Parameters
    ----------
    scenario : Scenario
        From :func:`hermes_qn.load_scenario` or built in Python.
    rates : mapping of class name to float or array, optional
        Arrival rates (requests/s) of open classes overriding the scenario's;
        a 1-D array becomes a dimension ``<class>_rate``, a DataArray keeps
        its dimensions. Every metric is then computed for every point at once.
    damping, tol, max_iter :
        Iteration controls: the step fraction in (0, 1] of the damped fixed
        points (static batch size, closed classes); the relative tolerance and
        iteration cap of every loop (those and the regula falsi of chunked
        prefill and of prefill batches).

    Returns
    -------
    xarray.Dataset
        Per class (dim ``class``): ``ttft``, ``tpot``, ``e2e`` (mean s) and
        ``ttft_q``, ``tpot_q``, ``e2e_q`` (dim ``quantile``), ``throughput``
        (requests/s), ``token_throughput`` (output tokens/s), ``goodput``
        (requests/s meeting every SLO), ``slo_attainment``, ``slo_met``,
        ``capacity`` (largest sustainable rate, others fixed) and
        ``load_fraction`` (rate / capacity); per stage (dim ``stage``)
        ``stage_time`` (s, summing to ``e2e``); per pool (dim ``pool``)
        ``utilization``, ``batch_size``, ``max_batch``, ``kv_memory`` (bytes per
        device), ``kv_fraction``, ``power`` (W); scalars ``energy_per_token``
        (J per output token), ``cost_per_million_tokens`` (USD), ``saturated``
        and ``saturated_station``. attrs: ``iterations``, ``residual``, ``notes``.

    Raises
    ------
    ValidationError
        Bad rates or fixed-point controls.
    ConvergenceError
        A fixed point did not settle in ``max_iter`` iterations.
    """
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"evaluate: got {type(scenario).__name__}; valid: a Scenario "
                              "(hermes_qn.load_scenario(...) or hermes_qn.scenario.Scenario)")
    if not (0 < damping <= 1):
        raise ValidationError(f"damping: got {damping!r}; valid: 0 < damping <= 1")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _evaluate(scenario, rates, damping, tol, max_iter)


def _evaluate(scenario: Scenario, rates: Mapping[str, Any] | None, damping: float, tol: float,
              max_iter: int) -> xr.Dataset:
    plan = _Plan(scenario)
    classes = scenario.classes
    K = len(classes)
    rate_das = _rates(scenario, rates)
    dims = rate_das[0].dims
    coords = {d: rate_das[0].coords[d] for d in dims if d in rate_das[0].coords}
    lam = np.stack([np.asarray(d.values, dtype=float) for d in rate_das])
    shape = lam.shape[1:]
    res, lam, closed_iter = _solve_with_closed(plan, lam, damping, tol, max_iter)
    m, labels, breakdown = _class_metrics(plan, res, shape)
    capacity, cap_station = _capacity(plan, res, lam)

    unstable = np.zeros(shape, dtype=bool)
    station = np.full(shape, "", dtype=object)
    for name, flag in res.unstable.items():
        flag = np.broadcast_to(flag, shape)
        station = np.where(flag & ~unstable, name, station)
        unstable = unstable | flag
    finite = np.isfinite(m["e2e"])
    throughput = np.where(finite, lam, np.minimum(lam, capacity))
    answer = plan.answer_tokens.reshape((K,) + (1,) * len(shape))
    tokens = throughput * answer

    q = np.asarray(QUANTILES)
    quant = {name: gamma_quantile(m[name], m[f"{name}_var"], q) for name in ("ttft", "tpot", "e2e")}
    mixtures = _ttft_mixtures(plan, res, m["ttft"])
    for k, mix in enumerate(mixtures):
        if mix is not None:
            quant["ttft"][k] = wait_mixture_quantile(q, *mix)
    attain = np.ones((K,) + shape)
    met = np.ones((K,) + shape, dtype=bool)
    for k, c in enumerate(classes):
        if c.slo is None:
            continue
        for name in ("ttft", "tpot", "e2e"):
            target = getattr(c.slo, name)
            if target is None:
                continue
            pct = np.array([c.slo.percentile / 100.0])
            if name == "ttft" and mixtures[k] is not None:
                # the SLO's percentile is within target iff the CDF there reaches it
                within = wait_mixture_cdf(np.full(shape + (1,), target), *mixtures[k])[..., 0]
                attain[k] *= within
                met[k] &= within >= pct[0] - 1e-12
            else:
                attain[k] *= gamma_cdf(m[name][k], m[f"{name}_var"][k], target)
                at_pct = gamma_quantile(m[name][k], m[f"{name}_var"][k], pct)[..., 0]
                met[k] &= at_pct <= target

    pools = [p.name for p in scenario.pools]
    P = len(pools)
    util = np.zeros((P,) + shape)
    batch = np.full((P,) + shape, np.nan)
    maxb = np.full((P,) + shape, np.nan)
    kv = np.full((P,) + shape, np.nan)
    kv_frac = np.full((P,) + shape, np.nan)
    power = np.zeros((P,) + shape)
    price = np.zeros(shape)
    notes = list(dict.fromkeys(plan.notes))
    for i, p in enumerate(scenario.pools):
        if p.name in res.pool_util:
            util[i] = res.pool_util[p.name]
        if p.name in res.pool_batch and p.decoder is not None:
            batch[i] = res.pool_batch[p.name]
            maxb[i] = res.pool_cap[p.name]
            kv[i] = batch[i] * res.pool_context[p.name] * p.memory.kv_bytes_per_token
            kv_frac[i] = kv[i] / p.memory.kv_cache_bytes
        power[i], note = _pool_power(p, util[i])
        if note:
            notes.append(note)
        hourly = p.price_per_hour if p.price_per_hour is not None else p.device.price_per_hour
        if hourly is None:
            notes.append(f"pool {p.name!r}: {p.device.name} has no price_per_hour; cost is NaN "
                         "(give the pool a price_per_hour)")
            hourly = np.nan
        price = price + p.devices * hourly / 3600.0
    total_tokens = tokens.sum(axis=0)
    energy = _safe_div(power.sum(axis=0), total_tokens)
    cost = _safe_div(price * 1e6, total_tokens)
    energy = np.where(total_tokens > 0, energy, np.nan)
    cost = np.where(total_tokens > 0, cost, np.nan)

    cdims = ("class",) + dims
    ds = xr.Dataset(
        {
            "ttft": (cdims, m["ttft"], {"units": "s", "long_name": "time to first token (mean)"}),
            "tpot": (cdims, m["tpot"], {"units": "s", "long_name": "time per output token (mean)"}),
            "e2e": (cdims, m["e2e"], {"units": "s", "long_name": "end-to-end latency (mean)"}),
            "ttft_q": (("class",) + dims + ("quantile",), quant["ttft"], {"units": "s"}),
            "tpot_q": (("class",) + dims + ("quantile",), quant["tpot"], {"units": "s"}),
            "e2e_q": (("class",) + dims + ("quantile",), quant["e2e"], {"units": "s"}),
            "throughput": (cdims, throughput, {"units": "requests/s"}),
            "token_throughput": (cdims, tokens, {"units": "tokens/s",
                                                 "long_name": "output (answer) tokens per second"}),
            "goodput": (cdims, throughput * attain, {"units": "requests/s",
                                                      "long_name": "requests meeting every SLO"}),
            "slo_attainment": (cdims, attain, {"units": "1"}),
            "slo_met": (cdims, met, {"long_name": "SLO percentile of every objective within target"}),
            "capacity": (cdims, capacity, {"units": "requests/s",
                                           "long_name": "largest stable arrival rate, others fixed"}),
            "capacity_station": (cdims, cap_station.astype(str)),
            "load_fraction": (cdims, _safe_div(lam, capacity) + np.where(capacity == 0, np.inf, 0),
                              {"units": "1", "long_name": "arrival rate / capacity"}),
            "stage_time": (("class", "stage") + dims, breakdown, {"units": "s"}),
            "utilization": (("pool",) + dims, util, {"units": "1"}),
            "batch_size": (("pool",) + dims, batch, {"units": "sequences",
                                                     "long_name": "mean running batch per replica"}),
            "max_batch": (("pool",) + dims, maxb, {"units": "sequences"}),
            "kv_memory": (("pool",) + dims, kv, {"units": "B", "long_name": "KV cache in use per device"}),
            "kv_fraction": (("pool",) + dims, kv_frac, {"units": "1"}),
            "power": (("pool",) + dims, power, {"units": "W"}),
            "energy_per_token": (dims, energy, {"units": "J/token"}),
            "cost_per_million_tokens": (dims, cost, {"units": "USD"}),
            "saturated": (dims, unstable),
            "saturated_station": (dims, station.astype(str)),
        },
        coords={"class": [c.name for c in classes], "quantile": list(QUANTILES),
                "stage": labels, "pool": pools, **coords},
        attrs={"scenario": scenario.name, "method": "closed-form",
               "iterations": int(max(res.iterations, closed_iter)),
               "residual": float(res.residual), "notes": "; ".join(dict.fromkeys(notes))},
    )
    return ds


def _pool_power(pool: Pool, util: np.ndarray) -> tuple[np.ndarray, str]:
    dev = pool.device
    peak = dev.peak_power
    if peak is None:
        return np.full(np.shape(util), np.nan), (f"pool {pool.name!r}: {dev.name} has no "
                                                 "peak_power; power and energy are NaN")
    idle = pool.idle_power if pool.idle_power is not None else dev.idle_power
    note = ""
    if idle is None:
        idle = peak
        note = (f"pool {pool.name!r}: no idle power for {dev.name}; power taken at peak "
                "(an upper bound on energy; give the pool an idle_power)")
    return pool.devices * np.asarray(_energy.power(dev, np.clip(util, 0.0, 1.0),
                                                   idle_power=idle)), note


def _solve_with_closed(plan: _Plan, lam: np.ndarray, damping: float, tol: float,
                       max_iter: int) -> tuple[_Result, np.ndarray, int]:
    """Solve; closed classes by the fixed point X = N / (Z + E2E(X)) (see Limits)."""
    classes = plan.scenario.classes
    closed = [k for k, c in enumerate(classes) if not c.is_open]
    res = _solve_all(plan, lam, damping, tol, max_iter)
    if not closed:
        return res, lam, 0
    lam = lam.copy()
    for it in range(1, max_iter + 1):
        m, _, _ = _class_metrics(plan, res, lam.shape[1:])
        cap, _ = _capacity(plan, res, lam)
        residual = 0.0
        for k in closed:
            c = classes[k]
            target = c.clients / (c.think_time + m["e2e"][k])
            target = np.minimum(np.where(np.isfinite(target), target, 0.0), 0.999 * cap[k])
            new = lam[k] + damping * (target - lam[k])
            residual = max(residual, float(np.max(np.abs(new - lam[k])
                                                  / np.maximum(np.abs(new), 1e-12))))
            lam[k] = new
        res = _solve_all(plan, lam, damping, tol, max_iter)
        if residual < tol:
            return res, lam, it
    raise ConvergenceError(f"evaluate: closed-class fixed point did not settle in {max_iter} "
                           f"iterations (residual {residual:.3g}); valid: raise max_iter or "
                           "change damping", iterations=max_iter, residual=residual)
