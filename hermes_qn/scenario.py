"""Scenarios: hardware pools, request classes and their pipelines of stages.

A :class:`Scenario` is what :func:`hermes_qn.evaluate` solves and what the
LLM-level sampler replays. Build one in Python from the dataclasses here, or
load a TOML file with :func:`load_scenario` (the format is documented in
``scenarios/README.md``).

Everything is checked when it is built: wrong types, values out of range,
unknown devices or models, a parallel layout larger than the pool, a model
that does not fit in memory, a stage on a pool that does not exist. Errors
name the place (``classes[0].pipeline[2].pool``), the bad value and what is
valid. Units are SI (seconds, requests per second); tokens are counts.

Stages of a request's pipeline, in order:

- :class:`Embed` -- embed the query with an encoder on a pool.
- :class:`Search` -- vector search (flat, IVF, IVF-PQ, HNSW) on a CPU or GPU
  pool; ``retrieved_tokens`` are appended to the prompt of later generation.
- :class:`Rerank` -- a cross-encoder scores ``documents`` candidates.
- :class:`KVFetch` -- ``reused_tokens`` of cached context come from memory
  tiers with per-tier hit rates; a miss recomputes them in the prefill.
- :class:`Generate` -- prefill and decode of an LLM on one pool, on a
  prefill pool and a decode pool joined by a KV-transfer link
  (disaggregation), or routed between several such targets by probability;
  with reasoning (thinking tokens, several rounds, parallel branches).
- :class:`Pause` -- a fixed delay (tool call, network round trip).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from . import hardware as _hw
from . import workload
from .catalog_paths import catalog_dir, read_toml
from .errors import ValidationError
from .hardware import Device, Link, MemoryTier
from .memory import MemoryFit, memory_fit
from .models import Model, as_model
from .rag import INDEXES
from .service import SOURCES
from .workload import TokenLengths

__all__ = ["BATCHING", "Embed", "Generate", "KVFetch", "Pause", "Pool", "RequestClass",
           "Rerank", "SLO", "Scenario", "Search", "Stage", "Target", "TierShare",
           "list_scenarios", "load_scenario", "scenario_dir"]

#: Batching strategies of a pool. Prefill-decode disaggregation is a property of
#: a :class:`Target` (separate prefill and decode pools), not of one pool.
BATCHING = ("static", "continuous", "chunked")


def _fail(where: str, value: Any, valid: str) -> ValidationError:
    return ValidationError(f"{where}: got {value!r}; valid: {valid}")


def _number(where: str, value: Any, *, low: float = 0.0, high: float = math.inf,
            low_inclusive: bool = True, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) \
            or not (value >= low if low_inclusive else value > low) or value > high:
        lo = f"{'>=' if low_inclusive else '>'} {low:g}"
        hi = "" if high == math.inf else f" and <= {high:g}"
        raise _fail(where, value, f"a finite number {lo}{hi}{' ' + unit if unit else ''}")
    return float(value)


def _integer(where: str, value: Any, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise _fail(where, value, f"an integer >= {low}")
    return int(value)


def _choice(where: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _fail(where, value, f"one of {tuple(choices)}")
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, value, "a non-empty string")
    return value


def _optional_number(where: str, value: Any, **kw: Any) -> float | None:
    return None if value is None else _number(where, value, **kw)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _device(where: str, value: Any) -> Device:
    if isinstance(value, Device):
        return value
    if not isinstance(value, str):
        raise _fail(where, value, "a hardware catalog name (hermes_qn.list_hardware('device')) "
                                  "or a Device")
    try:
        return _hw.load_device(value)
    except ValidationError as e:
        raise ValidationError(f"{where}: {e}") from None


def _medium(where: str, value: Any) -> Link | MemoryTier:
    if isinstance(value, (Link, MemoryTier)):
        return value
    if not isinstance(value, str):
        raise _fail(where, value, "a link or memory-tier catalog name "
                                  "(hermes_qn.list_hardware('link'), list_hardware('tier'))")
    try:
        found = _hw.load(value)
    except ValidationError as e:
        raise ValidationError(f"{where}: {e}") from None
    if not isinstance(found, (Link, MemoryTier)):
        raise _fail(where, value, "a link or a memory tier, not a device")
    return found


def _model(where: str, value: Any) -> Model:
    try:
        return as_model(value, where)
    except ValidationError as e:
        msg = str(e)
        raise ValidationError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _tokens(where: str, value: Any) -> TokenLengths:
    if isinstance(value, TokenLengths):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return TokenLengths(_number(where, value, unit="tokens"))
    raise _fail(where, value, "a TokenLengths, or a number of tokens")


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class Pool:
    """A group of identical devices serving one or more models.

    Parameters
    ----------
    name : str
        Unique within the scenario; stages refer to the pool by it.
    device : Device or str
        The device type (hardware catalog name or object).
    devices : int
        Devices in the pool. ``devices // (tp * pp)`` replicas serve in
        parallel, each with its own batch; requests are spread evenly over them.
    tp, pp : int
        Tensor- and pipeline-parallel degree of one replica.
    models : sequence of Model or str
        Models resident on every replica: at most one decoder LLM (the one
        :class:`Generate` stages run here) plus any encoders (embedding,
        reranker). Empty for a pool that only runs vector search.
    batching : {"static", "continuous", "chunked"}
        How the LLM's requests share a replica (see :func:`hermes_qn.evaluate`).
    batch_cap : int
        Most sequences in one batch (vLLM ``max_num_seqs``); the KV cache may
        allow fewer, see :attr:`max_batch`.
    chunk_tokens : int
        Token budget of one step under ``"chunked"`` (Sarathi-Serve's chunk).
    max_batched_tokens : int
        Most prompt tokens one prefill step takes under ``"continuous"``.
    memory_utilization : float
        Fraction of device memory the engine uses, in (0, 1].
    weight_precision, kv_precision : str
        Storage precisions of weights and KV cache.
    source : {"auto", "roofline", "calibrated", "fitted"}
        Service-time model (:mod:`hermes_qn.service`).
    idle_power, price_per_hour : float, optional
        Watts per device and USD per device-hour, overriding the catalog.
    """

    name: str
    device: Device | str
    devices: int = 1
    tp: int = 1
    pp: int = 1
    models: tuple[Model | str, ...] = ()
    batching: str = "continuous"
    batch_cap: int = 256
    chunk_tokens: int = 512
    max_batched_tokens: int = 8192
    memory_utilization: float = 0.9
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    source: str = "auto"
    idle_power: float | None = None
    price_per_hour: float | None = None

    def __post_init__(self) -> None:
        w = f"pool {self.name!r}"
        _text("pool.name", self.name)
        _set(self, "device", _device(f"{w}.device", self.device))
        _set(self, "devices", _integer(f"{w}.devices", self.devices))
        _set(self, "tp", _integer(f"{w}.tp", self.tp))
        _set(self, "pp", _integer(f"{w}.pp", self.pp))
        if self.tp * self.pp > self.devices:
            raise ValidationError(
                f"{w}.tp: tp x pp = {self.tp} x {self.pp} = {self.tp * self.pp} is larger than "
                f"the pool's {self.devices} devices; valid: tp * pp <= devices")
        if self.devices % (self.tp * self.pp):
            raise ValidationError(
                f"{w}.devices: got {self.devices}, not a multiple of tp x pp = "
                f"{self.tp * self.pp}; valid: a whole number of replicas, e.g. "
                f"{self.tp * self.pp * max(1, self.devices // (self.tp * self.pp))}")
        models = self.models
        if isinstance(models, (str, Model)):
            models = (models,)
        models = tuple(_model(f"{w}.models[{i}]", m) for i, m in enumerate(models))
        _set(self, "models", models)
        decoders = [m.name for m in models if m.architecture != "encoder"]
        if len(decoders) > 1:
            raise ValidationError(f"{w}.models: got decoders {decoders}; valid: at most one "
                                  "decoder LLM per pool (put another model on its own pool)")
        _choice(f"{w}.batching", self.batching, BATCHING)
        _set(self, "batch_cap", _integer(f"{w}.batch_cap", self.batch_cap))
        _set(self, "chunk_tokens", _integer(f"{w}.chunk_tokens", self.chunk_tokens, low=2))
        _set(self, "max_batched_tokens",
             _integer(f"{w}.max_batched_tokens", self.max_batched_tokens))
        _number(f"{w}.memory_utilization", self.memory_utilization, low=0.0, high=1.0,
                low_inclusive=False)
        _choice(f"{w}.source", self.source, SOURCES)
        _optional_number(f"{w}.idle_power", self.idle_power, unit="W")
        _optional_number(f"{w}.price_per_hour", self.price_per_hour, unit="USD per device-hour")
        if self.decoder is not None:
            try:
                _ = self.memory
            except ValidationError as e:
                raise ValidationError(f"{w}: {e}") from None

    @property
    def replicas(self) -> int:
        """Independent model replicas: ``devices // (tp * pp)``."""
        return self.devices // (self.tp * self.pp)

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def decoder(self) -> Model | None:
        """The decoder LLM of this pool, or None."""
        return next((m for m in self.models if m.architecture != "encoder"), None)

    @cached_property
    def memory(self) -> MemoryFit:
        """How one replica's device memory splits (weights, workspace, KV cache)."""
        model = self.decoder
        if model is None:
            raise ValidationError(f"pool {self.name!r}: no decoder model, so no KV cache; valid: "
                                  "add a decoder LLM to models")
        tokens = self.chunk_tokens if self.batching == "chunked" else self.max_batched_tokens
        return memory_fit(model, self.device, tp=self.tp, pp=self.pp,
                          weight_precision=self.weight_precision,
                          kv_precision=self.kv_precision,
                          memory_utilization=self.memory_utilization,
                          max_batched_tokens=tokens, max_seqs=self.batch_cap)

    def max_batch(self, context: Any) -> Any:
        """Largest batch of sequences holding ``context`` tokens each: min(cap, KV cache).

        ``context`` (tokens) may be an array (an int array comes back); below 1 or NaN
        counts as 1 token.
        """
        c = np.fmax(np.asarray(context, dtype=float), 1.0)
        out = np.maximum(1, np.minimum(self.batch_cap, self.memory.max_batch(c)))
        return int(out) if np.ndim(out) == 0 else out

    def with_changes(self, **changes: Any) -> "Pool":
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Embed:
    """Embed the query with an encoder model on ``pool``.

    ``tokens`` defaults to the request's prompt tokens (the query).
    """

    pool: str
    model: Model | str
    tokens: TokenLengths | float | None = None
    kind: str = field(default="embed", init=False)

    def __post_init__(self) -> None:
        _set(self, "model", _model("embed.model", self.model))
        if self.model.architecture != "encoder":
            raise _fail("embed.model", self.model.name, "an encoder model (e.g. 'e5-base-v2')")
        if self.tokens is not None:
            _set(self, "tokens", _tokens("embed.tokens", self.tokens))


@dataclass(frozen=True)
class Search:
    """Vector search over an index on ``pool`` (CPU or GPU); see :func:`hermes_qn.rag.search`.

    ``retrieved_tokens`` are the tokens of the retrieved documents appended to
    the prompt of every later :class:`Generate` stage. ``options`` go to
    :func:`hermes_qn.rag.search` (``nlist``, ``nprobe``, ``pq_m``, ``hnsw_m``,
    ``ef_search``, ``cores``, ``vector_bytes``...).
    """

    pool: str
    index: str = "ivf_pq"
    corpus: float = 1e7
    dim: int = 768
    k: int = 10
    retrieved_tokens: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)
    kind: str = field(default="search", init=False)

    def __post_init__(self) -> None:
        _choice("search.index", self.index, INDEXES)
        _number("search.corpus", self.corpus, low=1.0, unit="vectors")
        _integer("search.dim", self.dim)
        _integer("search.k", self.k)
        _number("search.retrieved_tokens", self.retrieved_tokens, unit="tokens")
        _set(self, "options", dict(self.options))


@dataclass(frozen=True)
class Rerank:
    """A cross-encoder on ``pool`` scores ``documents`` candidates of ``tokens_per_document``."""

    pool: str
    model: Model | str
    documents: int = 20
    tokens_per_document: float = 256.0
    kind: str = field(default="rerank", init=False)

    def __post_init__(self) -> None:
        _set(self, "model", _model("rerank.model", self.model))
        if self.model.architecture != "encoder":
            raise _fail("rerank.model", self.model.name, "an encoder (cross-encoder) model")
        _integer("rerank.documents", self.documents)
        _number("rerank.tokens_per_document", self.tokens_per_document, low=1.0)


@dataclass(frozen=True)
class TierShare:
    """One memory tier of a :class:`KVFetch`: where, how often, how many copies.

    Parameters
    ----------
    tier : MemoryTier, Link or str
        The tier (or the link to a remote store).
    hit_rate : float
        Fraction of requests whose reused KV is found here, in [0, 1].
    instances : int
        Independent copies of the tier the traffic spreads over (e.g. one DRAM
        tier per replica); 1 for one shared store.
    latency : float, optional
        Access latency in seconds, overriding (or standing in for) the catalog's.
    bandwidth : float, optional
        Bytes per second, overriding the catalog's.
    """

    tier: MemoryTier | Link | str
    hit_rate: float
    instances: int = 1
    latency: float | None = None
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        _set(self, "tier", _medium("kv_fetch.tiers.tier", self.tier))
        _number("kv_fetch.tiers.hit_rate", self.hit_rate, high=1.0)
        _integer("kv_fetch.tiers.instances", self.instances)
        _optional_number("kv_fetch.tiers.latency", self.latency, unit="s")
        _optional_number("kv_fetch.tiers.bandwidth", self.bandwidth, low=0.0, low_inclusive=False,
                         unit="B/s")
        if self.latency is None and self.tier.latency is None:
            raise ValidationError(f"kv_fetch.tiers.latency: tier {self.tier.name!r} has no "
                                  "catalog latency; valid: give latency = <seconds>")

    @property
    def seconds_latency(self) -> float:
        return float(self.latency if self.latency is not None else self.tier.latency)

    @property
    def bytes_per_second(self) -> float:
        if self.bandwidth is not None:
            return float(self.bandwidth)
        return float(self.tier.bandwidth)


@dataclass(frozen=True)
class KVFetch:
    """Reuse ``reused_tokens`` of cached context (history, system prompt, document).

    The request's context is ``reused_tokens`` plus its prompt. A hit in tier
    ``i`` (probability ``tiers[i].hit_rate``) moves ``reused_tokens x KV bytes
    per token`` over that tier, and the prefill then computes only the prompt
    on top of the reused context; a miss (the remaining probability) recomputes
    the reused tokens in the prefill.
    """

    reused_tokens: float
    tiers: tuple[TierShare, ...] = ()
    kind: str = field(default="kv_fetch", init=False)

    def __post_init__(self) -> None:
        _number("kv_fetch.reused_tokens", self.reused_tokens, unit="tokens")
        tiers = tuple(t if isinstance(t, TierShare) else TierShare(**t) for t in self.tiers)
        _set(self, "tiers", tiers)
        total = sum(t.hit_rate for t in tiers)
        if total > 1 + 1e-9:
            raise _fail("kv_fetch.tiers.hit_rate", [t.hit_rate for t in tiers],
                        "hit rates summing to at most 1 (the rest is recomputed)")

    @property
    def miss_rate(self) -> float:
        return max(0.0, 1.0 - sum(t.hit_rate for t in self.tiers))


@dataclass(frozen=True)
class Target:
    """Where one :class:`Generate` runs: a pool, or a prefill pool and a decode pool.

    Parameters
    ----------
    model : Model or str
        The decoder LLM; the pool(s) must hold it.
    pool : str, optional
        Colocated prefill and decode on this pool (its batching applies).
    prefill_pool, decode_pool : str, optional
        Disaggregated: prefill on one pool, decode on another.
    link : Link, MemoryTier or str, optional
        Carries the KV cache from prefill to decode (required when disaggregated).
    probability : float
        Share of the stage's requests routed here (model routing), in (0, 1].
    """

    model: Model | str
    pool: str | None = None
    prefill_pool: str | None = None
    decode_pool: str | None = None
    link: Link | MemoryTier | str | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        _set(self, "model", _model("generate.model", self.model))
        split = self.prefill_pool is not None or self.decode_pool is not None
        if self.pool is not None and split:
            raise ValidationError("generate: got pool and prefill_pool/decode_pool; valid: pool "
                                  "(colocated) or prefill_pool + decode_pool + link "
                                  "(disaggregated)")
        if self.pool is None and not split:
            raise ValidationError("generate.pool: missing; valid: pool = <name>, or "
                                  "prefill_pool, decode_pool and link")
        if split:
            if self.prefill_pool is None or self.decode_pool is None:
                raise ValidationError("generate: disaggregation needs both prefill_pool and "
                                      "decode_pool")
            if self.link is None:
                raise ValidationError("generate.link: missing; valid: the link that carries the "
                                      "KV cache from prefill_pool to decode_pool (e.g. 'NVLink4', "
                                      "'IB-NDR-400')")
            _set(self, "link", _medium("generate.link", self.link))
        _number("generate.probability", self.probability, low=0.0, high=1.0, low_inclusive=False)

    @property
    def disaggregated(self) -> bool:
        return self.pool is None

    @property
    def prefill_on(self) -> str:
        return self.pool if self.pool is not None else self.prefill_pool

    @property
    def decode_on(self) -> str:
        return self.pool if self.pool is not None else self.decode_pool


@dataclass(frozen=True)
class Generate:
    """LLM generation: prefill of the prompt, then decode of the output.

    Parameters
    ----------
    targets : sequence of Target
        Where it runs; several targets route requests by their probabilities
        (which must sum to 1).
    thinking : float
        Reasoning tokens generated before the answer, as a multiple of the
        output tokens (decoded like output; counted in TPOT and E2E, not in
        tokens delivered).
    rounds : int
        Rounds of decode -> tool/think delay -> prefill of the grown context.
        The output (and thinking) tokens are split evenly over the rounds.
    round_delay : float
        Seconds between rounds (tool call, external think time).
    round_tokens : float
        New prompt tokens each later round adds (the tool's result).
    branches : int
        Parallel samples decoded from one prefill (best-of-n, self-consistency);
        the stage ends when the last branch does.
    prompt_tokens, output_tokens : TokenLengths or float, optional
        Override the class's token lengths (e.g. a small pre-processing model
        that rewrites the query).
    main : bool
        The stage whose first token is TTFT and whose decode is TPOT. With one
        Generate stage it is that one; with several exactly one must say so.
    """

    targets: tuple[Target, ...]
    thinking: float = 0.0
    rounds: int = 1
    round_delay: float = 0.0
    round_tokens: float = 0.0
    branches: int = 1
    prompt_tokens: TokenLengths | float | None = None
    output_tokens: TokenLengths | float | None = None
    main: bool = False
    kind: str = field(default="generate", init=False)

    def __post_init__(self) -> None:
        targets = self.targets
        if isinstance(targets, Target):
            targets = (targets,)
        targets = tuple(t if isinstance(t, Target) else Target(**t) for t in targets)
        if not targets:
            raise _fail("generate.targets", [], "one or more targets")
        total = sum(t.probability for t in targets)
        if abs(total - 1.0) > 1e-6:
            raise _fail("generate.targets.probability", [t.probability for t in targets],
                        "routing probabilities summing to 1")
        _set(self, "targets", targets)
        _number("generate.thinking", self.thinking, unit="x output tokens")
        _integer("generate.rounds", self.rounds)
        _number("generate.round_delay", self.round_delay, unit="s")
        _number("generate.round_tokens", self.round_tokens, unit="tokens")
        _integer("generate.branches", self.branches)
        for name in ("prompt_tokens", "output_tokens"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, _tokens(f"generate.{name}", value))
        if not isinstance(self.main, bool):
            raise _fail("generate.main", self.main, "true or false")

    @classmethod
    def on(cls, pool: str, model: Model | str, **options: Any) -> "Generate":
        """Colocated generation of ``model`` on ``pool``."""
        return cls((Target(model, pool=pool),), **options)


@dataclass(frozen=True)
class Pause:
    """A fixed delay of ``seconds`` (tool call, network round trip); no hardware."""

    seconds: float
    label: str = "pause"
    kind: str = field(default="pause", init=False)

    def __post_init__(self) -> None:
        _number("pause.seconds", self.seconds, unit="s")


Stage = Union[Embed, Search, Rerank, KVFetch, Generate, Pause]
_STAGE_TYPES = {"embed": Embed, "search": Search, "rerank": Rerank, "kv_fetch": KVFetch,
                "generate": Generate, "pause": Pause}


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class SLO:
    """Service-level objectives of a class, met when the ``percentile`` of each metric is under it.

    Times in seconds; an objective left as None is not checked.
    """

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None
    percentile: float = 90.0

    def __post_init__(self) -> None:
        for name in ("ttft", "tpot", "e2e"):
            _optional_number(f"slo.{name}", getattr(self, name), low=0.0, low_inclusive=False,
                             unit="s")
        _number("slo.percentile", self.percentile, low=0.0, high=100.0, low_inclusive=False)


@dataclass(frozen=True)
class RequestClass:
    """One kind of traffic: its pipeline, token lengths, arrivals and SLOs.

    Parameters
    ----------
    name : str
        Unique within the scenario.
    pipeline : sequence of Stage
        Stages in order; at least one :class:`Generate`.
    prompt_tokens, output_tokens : TokenLengths or float
        Per-request token counts (``output_tokens`` >= 1).
    rate : float, optional
        Open traffic: Poisson arrivals per second (> 0).
    clients, think_time : int and float, optional
        Closed traffic: ``clients`` users, each waiting ``think_time`` seconds
        (exponential) after a response before the next request.
    slo : SLO, optional
    """

    name: str
    pipeline: tuple[Stage, ...]
    prompt_tokens: TokenLengths | float
    output_tokens: TokenLengths | float
    rate: float | None = None
    clients: int | None = None
    think_time: float = 0.0
    slo: SLO | None = None

    def __post_init__(self) -> None:
        w = f"class {self.name!r}"
        _text("class.name", self.name)
        _set(self, "prompt_tokens", _tokens(f"{w}.prompt_tokens", self.prompt_tokens))
        _set(self, "output_tokens", _tokens(f"{w}.output_tokens", self.output_tokens))
        if self.output_tokens.mean < 1:
            raise _fail(f"{w}.output_tokens", self.output_tokens.mean, "a mean of at least 1 token")
        if (self.rate is None) == (self.clients is None):
            raise ValidationError(f"{w}: give exactly one of rate (open, requests/s) and clients "
                                  "(closed, with think_time)")
        if self.rate is not None:
            _number(f"{w}.rate", self.rate, low=0.0, unit="requests/s")
        else:
            _integer(f"{w}.clients", self.clients)
        _number(f"{w}.think_time", self.think_time, unit="s")
        pipeline = tuple(self.pipeline)
        if not any(isinstance(s, Generate) for s in pipeline):
            raise _fail(f"{w}.pipeline", [getattr(s, "kind", s) for s in pipeline],
                        "a pipeline with at least one generate stage")
        for i, s in enumerate(pipeline):
            if not isinstance(s, tuple(_STAGE_TYPES.values())):
                raise _fail(f"{w}.pipeline[{i}]", s, f"one of {tuple(_STAGE_TYPES)} stages")
        mains = [i for i, s in enumerate(pipeline) if isinstance(s, Generate) and s.main]
        generates = [i for i, s in enumerate(pipeline) if isinstance(s, Generate)]
        if len(generates) > 1 and len(mains) != 1:
            raise ValidationError(f"{w}.pipeline: {len(generates)} generate stages and "
                                  f"{len(mains)} marked main; valid: exactly one with main = true "
                                  "(its first token is TTFT)")
        _set(self, "pipeline", pipeline)
        if self.slo is not None and not isinstance(self.slo, SLO):
            _set(self, "slo", SLO(**self.slo))

    @property
    def is_open(self) -> bool:
        return self.rate is not None

    @property
    def main_index(self) -> int:
        """Index in ``pipeline`` of the main Generate stage."""
        generates = [i for i, s in enumerate(self.pipeline) if isinstance(s, Generate)]
        return next((i for i in generates if self.pipeline[i].main), generates[0])


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    """Hardware pools and request classes: the input of evaluate and of the sampler."""

    name: str
    pools: tuple[Pool, ...]
    classes: tuple[RequestClass, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _text("scenario.name", self.name)
        pools, classes = tuple(self.pools), tuple(self.classes)
        if not pools:
            raise _fail("pools", [], "one or more pools")
        if not classes:
            raise _fail("classes", [], "one or more request classes")
        _set(self, "pools", pools)
        _set(self, "classes", classes)
        for kind, items in (("pools", pools), ("classes", classes)):
            names = [x.name for x in items]
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup is not None:
                raise ValidationError(f"{kind}: name {dup!r} is used twice; valid: unique names")
        for k, c in enumerate(classes):
            for i, stage in enumerate(c.pipeline):
                self._check_stage(f"classes[{k}] ({c.name}).pipeline[{i}]", stage, c)

    def pool(self, name: str) -> Pool:
        """The pool called ``name``."""
        for p in self.pools:
            if p.name == name:
                return p
        raise _fail("pool", name, f"one of {[p.name for p in self.pools]}")

    def request_class(self, name: str) -> RequestClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise _fail("class", name, f"one of {[c.name for c in self.classes]}")

    def _pool_at(self, where: str, name: Any) -> Pool:
        names = [p.name for p in self.pools]
        if name not in names:
            hint = difflib.get_close_matches(str(name), names, n=1)
            raise _fail(where, name, f"one of {names}" + (f" (did you mean {hint[0]!r}?)"
                                                            if hint else ""))
        return self.pool(name)

    def _check_stage(self, where: str, stage: Stage, c: RequestClass) -> None:
        if isinstance(stage, (Embed, Rerank)):
            pool = self._pool_at(f"{where}.pool", stage.pool)
            if stage.model.name not in [m.name for m in pool.models]:
                raise _fail(f"{where}.model", stage.model.name,
                            f"a model resident on pool {pool.name!r}: "
                            f"{[m.name for m in pool.models]} (add it to the pool's models)")
        elif isinstance(stage, Search):
            pool = self._pool_at(f"{where}.pool", stage.pool)
            if pool.device.category not in ("cpu", "gpu"):
                raise _fail(f"{where}.pool", pool.name, "a pool of CPU or GPU devices (vector "
                            f"search has no cost model on {pool.device.category!r})")
            from .rag import search  # the cost model checks its own options (nlist, precision...)
            try:
                search(stage.index, stage.corpus, stage.dim, device=pool.device, k=stage.k,
                       **stage.options)
            except (ValidationError, TypeError) as e:
                raise ValidationError(f"{where}: {e}") from None
        elif isinstance(stage, Generate):
            for j, t in enumerate(stage.targets):
                for key, name in (("pool", t.pool), ("prefill_pool", t.prefill_pool),
                                  ("decode_pool", t.decode_pool)):
                    if name is None:
                        continue
                    pool = self._pool_at(f"{where}.targets[{j}].{key}", name)
                    if pool.decoder is None or pool.decoder.name != t.model.name:
                        raise _fail(f"{where}.targets[{j}].model", t.model.name,
                                    f"the decoder on pool {pool.name!r}: "
                                    f"{pool.decoder.name if pool.decoder else None}")

    def value(self, path: str) -> Any:
        """The value of one field, addressed as in :meth:`with_value` (``"classes.chat.rate"``)."""
        parts = path.split(".")
        obj: Any = self
        for part in parts:
            if isinstance(obj, tuple):
                obj = obj[_find(f"value {path}", list(obj), part)]
            elif dataclasses.is_dataclass(obj) and part in {f.name for f in dataclasses.fields(obj)}:
                obj = getattr(obj, part)
            else:
                raise _fail(f"value {path}", part, f"a field of {type(obj).__name__}")
        return obj

    def with_value(self, path: str, value: Any) -> "Scenario":
        """A copy with one field changed, e.g. ``"classes.chat.rate"``, ``"pools.gpu.batch_cap"``.

        Path segments: ``pools`` or ``classes``, then a name or an index, then
        fields (and, for pipelines, ``pipeline.<index>.<field>``). The copy is
        validated like a new scenario.
        """
        parts = path.split(".")
        if len(parts) < 3 or parts[0] not in ("pools", "classes"):
            raise _fail("set", path, "pools.<name>.<field> or classes.<name>.<field>[...]")
        items = list(getattr(self, parts[0]))
        index = _find(f"set {path}", items, parts[1])
        items[index] = _replace_path(f"set {path}", items[index], parts[2:], value)
        return dataclasses.replace(self, **{parts[0]: tuple(items)})


def _find(where: str, items: list, key: str) -> int:
    names = [getattr(x, "name", None) for x in items]
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(items):
        return int(key)
    valid = [n for n in names if n is not None] or list(range(len(items)))
    raise _fail(where, key, f"one of {valid} or an index below {len(items)}")


def _replace_path(where: str, obj: Any, parts: list[str], value: Any) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(obj, tuple):
        items = list(obj)
        i = _find(where, items, head)
        items[i] = value if not rest else _replace_path(where, items[i], rest, value)
        return tuple(items)
    fields = [f.name for f in dataclasses.fields(obj) if f.init]
    if head not in fields:
        hint = difflib.get_close_matches(head, fields, n=1)
        raise _fail(where, head, f"a field of {type(obj).__name__}: {fields}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    if rest:
        value = _replace_path(where, getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: value})


# --------------------------------------------------------------------------- TOML


def scenario_dir() -> Path:
    """The folder of built-in scenarios (``scenarios/`` in a source tree)."""
    return catalog_dir("scenarios")


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(p.stem for p in scenario_dir().glob("*.toml"))


_POOL_KEYS = {f.name for f in dataclasses.fields(Pool)}
_CLASS_KEYS = {"name", "pipeline", "prompt_tokens", "output_tokens", "rate", "clients",
               "think_time", "slo", "dataset"}
_TOKEN_KEYS = {"mean", "scv", "dataset", "csv", "column"}
_TARGET_KEYS = {f.name for f in dataclasses.fields(Target)}
_STAGE_KEYS = {name: {f.name for f in dataclasses.fields(cls) if f.init} - {"targets", "tiers"}
               for name, cls in _STAGE_TYPES.items()}
_STAGE_KEYS["generate"] |= _TARGET_KEYS | {"route"}
_STAGE_KEYS["kv_fetch"] |= {"tiers"}


def _check_keys(where: str, table: Any, valid: set[str]) -> None:
    if not isinstance(table, Mapping):
        raise _fail(where, table, f"a table with keys {sorted(valid)}")
    for key in table:
        if key not in valid:
            hint = difflib.get_close_matches(key, sorted(valid), n=1)
            raise ValidationError(f"{where}: unknown key {key!r}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                  + f"; valid: {sorted(valid)}")


def _token_table(where: str, raw: Any, which: str, base: Path) -> TokenLengths:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _tokens(where, raw)
    _check_keys(where, raw, _TOKEN_KEYS)
    if "dataset" in raw:
        return workload.token_lengths(raw["dataset"], raw.get("column", which))
    if "csv" in raw:
        if "column" not in raw:
            raise ValidationError(f"{where}.column: missing; valid: the CSV column of token counts")
        path = Path(raw["csv"]).expanduser()
        if not path.is_absolute():
            path = (base / path) if (base / path).exists() else _traces_root(base) / path
        return workload.from_csv(path, raw["column"])
    if "mean" not in raw:
        raise ValidationError(f"{where}: missing 'mean'; valid: {{mean = <tokens>, scv = <0..>}}, "
                              "{dataset = 'azure-conv'} or {csv = '<path>', column = '<name>'}")
    return TokenLengths.of(_number(f"{where}.mean", raw["mean"]),
                           _number(f"{where}.scv", raw.get("scv", 0.0)))


def _traces_root(base: Path) -> Path:
    """Where a relative CSV path not beside the scenario file is looked for: the traces folder
    (:func:`hermes_qn.fit.traces_dir`), else the scenario's folder (from_csv then says it is missing)."""
    from .fit import traces_dir
    try:
        return traces_dir()
    except FileNotFoundError:
        return base


def _stage(where: str, raw: Any, base: Path) -> Stage:
    if not isinstance(raw, Mapping) or "stage" not in raw:
        raise _fail(where, raw, f"a table with stage = one of {tuple(_STAGE_TYPES)}")
    kind = raw["stage"]
    if kind not in _STAGE_TYPES:
        raise _fail(f"{where}.stage", kind, f"one of {tuple(_STAGE_TYPES)}")
    body = {k: v for k, v in raw.items() if k != "stage"}
    _check_keys(where, body, _STAGE_KEYS[kind])
    if kind == "generate":
        target_keys = {k: body.pop(k) for k in list(body) if k in _TARGET_KEYS}
        if "route" in body:
            route = body.pop("route")
            if target_keys.keys() - {"model"} or not isinstance(route, list):
                raise ValidationError(f"{where}.route: valid: a list of targets "
                                      "[{model=..., pool=..., probability=...}, ...] and no "
                                      "pool keys beside it")
            targets = []
            for j, t in enumerate(route):
                _check_keys(f"{where}.route[{j}]", t, _TARGET_KEYS)
                targets.append(Target(**{**({"model": target_keys["model"]}
                                            if "model" in target_keys else {}), **t}))
        else:
            if "model" not in target_keys:
                raise ValidationError(f"{where}.model: missing; valid: a decoder model name")
            targets = [Target(**target_keys)]
        for name in ("prompt_tokens", "output_tokens"):
            if name in body:
                body[name] = _token_table(f"{where}.{name}", body[name], name.split("_")[0], base)
        return Generate(tuple(targets), **body)
    if kind == "kv_fetch":
        tiers = body.pop("tiers", [])
        shares = []
        for j, t in enumerate(tiers):
            _check_keys(f"{where}.tiers[{j}]", t, {f.name for f in dataclasses.fields(TierShare)})
            shares.append(TierShare(**t))
        return KVFetch(tiers=tuple(shares), **body)
    if kind == "embed" and "tokens" in body:
        body["tokens"] = _token_table(f"{where}.tokens", body["tokens"], "prompt", base)
    return _STAGE_TYPES[kind](**body)


def _located(where: str, build, *args: Any, **kwargs: Any) -> Any:
    try:
        return build(*args, **kwargs)
    except ValidationError as e:
        raise ValidationError(f"{where}: {e}") from None
    except TypeError as e:  # a required field left out
        raise ValidationError(f"{where}: {e}") from None


def scenario_from_dict(raw: Mapping[str, Any], *, origin: str = "scenario",
                       base: Path | None = None) -> Scenario:
    """Build a :class:`Scenario` from the structure of a scenario TOML file."""
    base = base or Path.cwd()
    _check_keys(origin, raw, {"name", "description", "pools", "classes"})
    for key in ("name", "pools", "classes"):
        if key not in raw:
            raise ValidationError(f"{origin}: missing key {key!r}; valid: a scenario has name, "
                                  "[[pools]] and [[classes]]")
    pools = []
    for i, p in enumerate(raw["pools"]):
        where = f"{origin}: pools[{i}]"
        _check_keys(where, p, _POOL_KEYS)
        pools.append(_located(where, Pool, **p))
    classes = []
    for k, c in enumerate(raw["classes"]):
        where = f"{origin}: classes[{k}]"
        _check_keys(where, c, _CLASS_KEYS)
        body = dict(c)
        if "dataset" in body:
            name = body.pop("dataset")
            prompt, output = _located(where, workload.dataset, name)
            body.setdefault("prompt_tokens", prompt)
            body.setdefault("output_tokens", output)
        for name in ("prompt_tokens", "output_tokens"):
            if name in body and not isinstance(body[name], TokenLengths):
                body[name] = _located(where, _token_table, name, body[name],
                                      name.split("_")[0], base)
        stages = body.pop("pipeline", None)
        if not isinstance(stages, list):
            raise _fail(f"{where}.pipeline", stages, "a list of stage tables "
                        "[{stage = 'generate', pool = ..., model = ...}, ...]")
        body["pipeline"] = tuple(_located(f"{where}.pipeline[{i}]", _stage, "stage", s, base)
                                 for i, s in enumerate(stages))
        if "slo" in body:
            _check_keys(f"{where}.slo", body["slo"], {"ttft", "tpot", "e2e", "percentile"})
            body["slo"] = _located(f"{where}.slo", SLO, **body["slo"])
        classes.append(_located(where, RequestClass, **body))
    return _located(origin, Scenario, raw["name"], tuple(pools), tuple(classes),
                    raw.get("description", ""))


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Read a scenario TOML file, or a built-in scenario by name (see :func:`list_scenarios`)."""
    path = Path(path_or_name)
    if not path.is_file():
        builtin = scenario_dir() / f"{path_or_name}.toml"
        if builtin.is_file():
            path = builtin
        else:
            raise ValidationError(f"scenario: {str(path_or_name)!r} is neither a file nor a "
                                  f"built-in scenario; valid: a path or one of "
                                  f"{list_scenarios()}")
    raw = read_toml(path, str(path), "scenarios/README.md")
    return scenario_from_dict(raw, origin=str(path.name), base=path.parent)
