"""KV-cache retrieval from memory tiers versus recomputation, and where they cross.

A request that shares a prefix with earlier ones (a system prompt, a document,
an earlier turn) can **fetch** the prefix's KV cache from a tier (HBM, DDR,
CXL, SSD, a remote pool) or **recompute** it (a prefill of the reused tokens).

- :func:`kv_bytes` -- ``reused tokens * KV bytes per token`` for one
  tensor-parallel rank: KV heads are split over ``tp`` ranks down to one head
  per rank (replicated beyond, as in vLLM and :mod:`hermes_qn.roofline`);
  an MLA latent is held whole by every rank.
- :func:`fetch_time` -- ``latency + bytes / bandwidth`` from one tier (each
  rank reads its share over its own path, in parallel).
- :func:`expected_fetch_time` -- over several tiers with hit rates
  ``h_i``: ``sum_i h_i * fetch_i + (1 - sum_i h_i) * recompute``.
- :func:`recompute_time` -- :func:`hermes_qn.roofline.prefill` of the reused
  tokens from an empty cache.
- :func:`crossover` -- the reused-token count above which fetching beats
  recomputing.

Why a crossover exists: fetching is linear in tokens, ``L + a*n``; recomputing
a prefill is at least linear in tokens (weights FLOPs), plus a quadratic
attention term, with a floor at small ``n`` (the weights are read once whatever
``n``). So at long contexts fetching wins whenever the tier is fast enough,
and at very short ones it also wins (the floor); in between recompute can win
on a slow tier. :func:`crossover` returns the start of the *last* interval
where fetching wins, the length users care about ("prefixes longer than this
should be cached"), and flags the cases where one option wins everywhere.

Examples
--------
>>> from hermes_qn import hardware, kv_tiers, models
>>> m = models.load("llama-2-7b")
>>> kv_tiers.kv_bytes(m, 1000, kv_precision="fp16")    # 1000 * 524,288 B
524288000.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import brentq

from . import models as _models
from . import roofline as _roofline
from .errors import ValidationError
from .hardware import Link, MemoryTier
from .models import Model

__all__ = [
    "Crossover",
    "crossover",
    "crossover_tokens",
    "expected_fetch_time",
    "fetch_time",
    "kv_bytes",
    "recompute_time",
]


def _model_iv(func: str, model: Any) -> Model:
    model = _models.as_model(model, f"{func}: model")
    if model.architecture != "decoder":
        raise ValidationError(f"{func}: model {model.name!r} is an {model.architecture} and keeps "
                              "no KV cache; valid: a decoder model")
    return model


def _tokens(name: str, value: Any, *, low: float = 0.0) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: got {value!r}; valid: a number or array >= {low:g}") from None
    bad = ~np.isfinite(a) | (a < low)
    if bad.any():
        raise ValidationError(f"{name}: got {float(a[bad].flat[0])!r}; valid: finite numbers "
                              f">= {low:g}")
    return a


def _scalar(x: np.ndarray) -> Any:
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _tp_iv(model: Model, tp: Any) -> int:
    if isinstance(tp, bool) or not isinstance(tp, (int, np.integer)) or tp < 1:
        raise ValidationError(f"tp: got {tp!r}; valid: an integer >= 1")
    if not _roofline.valid_tp(model, int(tp)):
        ok = [t for t in range(1, model.query_heads + 1) if _roofline.valid_tp(model, t)]
        raise ValidationError(f"tp: got {tp} for {model.name} ({model.query_heads} query heads, "
                              f"{model.kv_heads} KV heads); valid: one of {ok}")
    return int(tp)


def kv_bytes(model: Model | str, reused_tokens: Any, *, kv_precision: str = "bf16",
             tp: int = 1) -> Any:
    """KV-cache bytes of ``reused_tokens`` tokens held by one tensor-parallel rank.

    Parameters
    ----------
    model : Model or str
        A decoder model.
    reused_tokens : float or array_like
        Tokens whose KV cache is reused, >= 0.
    kv_precision : str
        ``"bf16"`` (2 B), ``"fp8"`` (1 B), ...
    tp : int
        Tensor-parallel degree: each rank holds ``max(kv_heads / tp, 1)`` heads
        (all of an MLA latent).

    Returns
    -------
    float or ndarray
        Bytes per rank (the group holds ``tp`` times this).
    """
    model = _model_iv("kv_bytes", model)
    tp = _tp_iv(model, tp)
    n = _tokens("reused_tokens", reused_tokens)
    per_token = model.kv_bytes_per_token(kv_precision)
    if model.mla is None:
        per_token *= max(model.kv_heads // tp, 1) / model.kv_heads
    return _scalar(n * per_token)


def _tier_iv(tier: Any, latency: Any, bandwidth: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(tier, (MemoryTier, Link)) and tier is not None:
        raise ValidationError(f"{where}: got {type(tier).__name__}; valid: a MemoryTier or Link "
                              "(load_memory_tier(...), load_link(...)) or None with bandwidth= and "
                              "latency=")
    bw = bandwidth if bandwidth is not None else getattr(tier, "bandwidth", None)
    lat = latency if latency is not None else getattr(tier, "latency", None)
    name = getattr(tier, "name", "tier")
    if bw is None:
        raise ValidationError(f"{where}: no bandwidth; valid: a MemoryTier/Link or bandwidth=<B/s>")
    if lat is None:
        raise ValidationError(f"{where}: {name} has no latency in the catalog (no published "
                              "figure); valid: pass latency=<s> (0 to ignore it)")
    bw = _tokens(f"{where} bandwidth", bw)
    if np.any(bw <= 0):
        raise ValidationError(f"{where} bandwidth: got {float(bw.min())!r}; valid: bytes/s > 0")
    return bw, _tokens(f"{where} latency", lat)


def fetch_time(model: Model | str, tier: MemoryTier | Link | None, reused_tokens: Any, *,
               kv_precision: str = "bf16", tp: int = 1, latency: Any = None,
               bandwidth: Any = None) -> Any:
    """Seconds to fetch the KV cache of ``reused_tokens`` tokens: ``latency + bytes / bandwidth``.

    ``bytes`` is the whole TP group's cache, ``tp x`` :func:`kv_bytes` (one rank's
    shard): every rank's shard crosses the one tier, as in
    :func:`hermes_qn.evaluate` and the sampler (a tier shared by the ranks). ``latency``
    (s) and ``bandwidth`` (B/s) override the tier's, or stand in for missing
    catalog values (most tiers have no published latency: pass one). Zero
    tokens take zero time (nothing is fetched).
    """
    nbytes = tp * np.asarray(kv_bytes(model, reused_tokens, kv_precision=kv_precision, tp=tp))
    bw, lat = _tier_iv(tier, latency, bandwidth, "tier")
    return _scalar(np.where(nbytes > 0, lat + nbytes / bw, 0.0))


def recompute_time(model: Model | str, device: Any, reused_tokens: Any, **options: Any) -> Any:
    """Seconds to recompute the KV cache of ``reused_tokens`` tokens: a prefill from empty.

    :func:`hermes_qn.roofline.prefill` with ``context=0`` (``**options``: ``tp``,
    precisions, efficiencies, ``overhead``...). Zero tokens take zero time.
    """
    model = _model_iv("recompute_time", model)
    n = _tokens("reused_tokens", reused_tokens)
    t = _roofline.prefill(model, device, np.maximum(n, 1.0), **options).total
    return _scalar(np.where(n > 0, np.asarray(t, dtype=float), 0.0))


def expected_fetch_time(model: Model | str, tiers: Sequence[MemoryTier | Link],
                        hit_rates: Sequence[float], reused_tokens: Any, *, device: Any = None,
                        kv_precision: str = "bf16", tp: int = 1,
                        latencies: Sequence[float | None] | None = None,
                        **options: Any) -> Any:
    """Expected seconds to obtain the reused KV cache from a hierarchy of tiers.

    ``sum_i h_i * fetch_time(tier_i) + (1 - sum_i h_i) * recompute_time``.

    Parameters
    ----------
    tiers : sequence of MemoryTier or Link
        Where the cache may be found.
    hit_rates : sequence of float
        Probability that a request's prefix is served by each tier, each in
        [0, 1], summing to at most 1; the rest is recomputed (then ``device`` is
        required).
    latencies : sequence of float or None, optional
        Per-tier latency overrides (s), for tiers with no catalog latency.
    device : Device, optional
        For the recompute share.
    **options
        Passed to :func:`recompute_time`.
    """
    tiers = list(tiers)
    h = np.asarray(hit_rates, dtype=float)
    if h.ndim != 1 or len(h) != len(tiers) or not tiers:
        raise ValidationError(f"hit_rates: got {list(np.atleast_1d(h))} for {len(tiers)} tiers; "
                              "valid: one hit rate per tier, at least one tier")
    if np.any(~np.isfinite(h) | (h < 0) | (h > 1)) or h.sum() > 1 + 1e-12:
        raise ValidationError(f"hit_rates: got {list(h)} (sum {h.sum():g}); valid: each in [0, 1], "
                              "summing to at most 1 (the rest is recomputed)")
    lats = [None] * len(tiers) if latencies is None else list(latencies)
    if len(lats) != len(tiers):
        raise ValidationError(f"latencies: got {len(lats)} for {len(tiers)} tiers; valid: one per "
                              "tier (None keeps the catalog value)")
    total = 0.0
    for i, (tier, hi, lat) in enumerate(zip(tiers, h, lats)):
        if hi > 0:
            total = total + hi * np.asarray(fetch_time(model, tier, reused_tokens,
                                                       kv_precision=kv_precision, tp=tp,
                                                       latency=lat))
    miss = 1.0 - h.sum()
    if miss > 1e-12:
        if device is None:
            raise ValidationError(f"device: hit_rates sum to {h.sum():g} < 1, so {miss:g} of "
                                  "requests recompute; valid: pass device=<Device> (or hit rates "
                                  "summing to 1)")
        rc = recompute_time(model, device, reused_tokens, tp=tp, kv_precision=kv_precision,
                            **options)
        total = total + miss * np.asarray(rc)
    return _scalar(np.broadcast_to(total, np.shape(np.asarray(reused_tokens, dtype=float))))


@dataclass(frozen=True)
class Crossover:
    """Result of :func:`crossover`.

    Attributes
    ----------
    tokens : float
        Reused tokens above which fetching beats recomputing (at most
        ``max_tokens``): ``1.0`` when fetching wins at every length, ``inf``
        when recomputing wins at every length up to ``max_tokens``.
    time : float
        Seconds both options take at ``tokens`` (NaN for the two edge cases).
    status : str
        ``"crossover"``, ``"fetch_always"`` or ``"recompute_always"``.
    fetch_wins_below : float
        Largest length below ``tokens`` at which fetching also wins (short
        prefixes, where recompute still reads all the weights), or 0 if none.
    """

    tokens: float
    time: float
    status: str
    fetch_wins_below: float = 0.0


def crossover(model: Model | str, device: Any, tier: MemoryTier | Link | None = None, *,
              kv_precision: str = "bf16", tp: int = 1, latency: float | None = None,
              bandwidth: float | None = None, max_tokens: float | None = None,
              grid: int = 256, **options: Any) -> Crossover:
    """Reused-token count above which fetching the KV cache beats recomputing it.

    Both times are evaluated on ``grid`` log-spaced lengths from 1 to
    ``max_tokens`` (default the model's ``max_context``); the last interval
    where ``recompute < fetch`` turns into ``fetch <= recompute`` is refined by
    Brent's method (relative tolerance 1e-10 on tokens), so that at
    ``tokens`` both times are equal.

    Parameters
    ----------
    model, device
        The decoder model and the device that would recompute.
    tier : MemoryTier or Link, optional
        Where the cache is fetched from; or None with ``bandwidth`` and ``latency``.
    kv_precision, tp
        As for :func:`kv_bytes` (also passed to the prefill).
    latency, bandwidth : float, optional
        Override (or supply) the tier's latency (s) and bandwidth (B/s).
    max_tokens : float, optional
        Upper end of the search, <= ``max_context``.
    grid : int
        Points of the coarse scan, >= 8.
    **options
        Passed to :func:`hermes_qn.roofline.prefill`.

    Returns
    -------
    Crossover

    Examples
    --------
    >>> from hermes_qn import hardware, kv_tiers
    >>> x = kv_tiers.crossover("llama-3.1-8b", hardware.load_device("H100-SXM"),
    ...                        bandwidth=3e9, latency=1e-4)     # a 3 GB/s SSD
    >>> x.status, round(x.tokens, -3)
    ('crossover', 57000.0)
    >>> f = kv_tiers.fetch_time("llama-3.1-8b", None, x.tokens, bandwidth=3e9, latency=1e-4)
    >>> r = kv_tiers.recompute_time("llama-3.1-8b", hardware.load_device("H100-SXM"), x.tokens)
    >>> abs(f / r - 1) < 1e-8
    True
    """
    model = _model_iv("crossover", model)
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 8:
        raise ValidationError(f"grid: got {grid!r}; valid: an integer >= 8")
    hi = float(model.max_context) if max_tokens is None else float(
        _tokens("max_tokens", max_tokens, low=1.0))
    if hi > model.max_context:
        raise ValidationError(f"max_tokens: got {hi:g} for {model.name}; valid: 1 to max_context "
                              f"= {model.max_context}")
    _tier_iv(tier, latency, bandwidth, "tier")  # check early

    def diff(n):
        f = np.asarray(fetch_time(model, tier, n, kv_precision=kv_precision, tp=tp,
                                  latency=latency, bandwidth=bandwidth))
        r = np.asarray(recompute_time(model, device, n, tp=tp, kv_precision=kv_precision,
                                      **options))
        return f - r, f

    xs = np.unique(np.geomspace(1.0, hi, grid))
    d, _ = diff(xs)
    win = d <= 0
    if win.all():
        return Crossover(1.0, float("nan"), "fetch_always")
    if not win[-1]:
        below = float(xs[win].max()) if win.any() else 0.0
        return Crossover(float("inf"), float("nan"), "recompute_always", below)
    j = int(np.flatnonzero(~win).max())  # last grid point where recompute wins
    a, b = float(xs[j]), float(xs[j + 1])
    root = brentq(lambda n: float(diff(n)[0]), a, b, xtol=1e-12, rtol=1e-10)
    _, f = diff(root)
    below = float(xs[:j][win[:j]].max()) if win[:j].any() else 0.0
    return Crossover(float(root), float(f), "crossover", below)


def crossover_tokens(model: Model | str, device: Any, tier: MemoryTier | Link | None = None, *,
                     bandwidth: Any = None, latency: Any = None, **kwargs: Any) -> Any:
    """:func:`crossover` over arrays of tier ``bandwidth`` (B/s) and ``latency`` (s).

    ``bandwidth`` and ``latency`` broadcast like numpy (None: the tier's); the
    result has their broadcast shape and holds :attr:`Crossover.tokens`: the
    crossover length, ``1.0`` where fetching always wins and ``inf`` where
    recomputing always wins. Other keywords go to :func:`crossover`.

    Examples
    --------
    >>> from hermes_qn import hardware, kv_tiers
    >>> t = kv_tiers.crossover_tokens("llama-3.1-8b", hardware.load_device("H100-SXM"),
    ...                               bandwidth=[1e9, 3e9, 100e9], latency=1e-4)
    >>> [float(t[0]), round(float(t[1]), -3), float(t[2])]
    [inf, 57000.0, 1.0]
    """
    bw = np.asarray(np.nan if bandwidth is None else bandwidth, dtype=float)
    lat = np.asarray(np.nan if latency is None else latency, dtype=float)
    bw, lat = np.broadcast_arrays(bw, lat)
    out = np.empty(bw.shape)
    for idx in np.ndindex(bw.shape):
        b = None if np.isnan(bw[idx]) else float(bw[idx])
        la = None if np.isnan(lat[idx]) else float(lat[idx])
        out[idx] = crossover(model, device, tier, bandwidth=b, latency=la, **kwargs).tokens
    return float(out) if out.ndim == 0 else out
