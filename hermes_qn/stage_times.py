"""Seconds each stage of a scenario takes on its hardware: one source for evaluate and the sampler.

Both :func:`hermes_qn.evaluate` (closed forms) and the LLM-level event
sampler take their service times from here, so that a difference between them
is a difference of queueing mechanics, never of service-time models.

- :class:`StepModel` -- prefill, decode and mixed (chunked) step times of a
  pool's decoder, from :mod:`hermes_qn.service` (``pool.source`` picks fitted,
  calibrated or roofline).
- :func:`embed_time`, :func:`rerank_time`, :func:`search_time` -- RAG stages,
  from :mod:`hermes_qn.rag` (roofline for the encoders).
- :func:`kv_fetch_time`, :func:`kv_transfer_time` -- moving KV cache over a
  tier or a link, bytes from :func:`hermes_qn.kv_tiers.kv_bytes`.

All functions broadcast over numpy arrays of token counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import kv_tiers, rag, service
from .hardware import Link, MemoryTier
from .models import Model
from .scenario import Embed, Pool, Rerank, Search, TierShare

__all__ = ["StepModel", "embed_time", "kv_fetch_time", "kv_transfer_time", "rerank_time",
           "search_time"]


@dataclass(frozen=True)
class StepModel:
    """Step times (seconds) of the decoder LLM of ``pool``, on one replica of it.

    ``prefill(tokens, context, batch)``: one prefill step of ``batch`` prompts
    of ``tokens`` new tokens after ``context`` cached ones.
    ``decode(batch, context)``: one decode iteration of ``batch`` sequences of
    mean context ``context``.
    ``mixed(decodes, context, chunk, chunk_context)``: one chunked-prefill step
    (Sarathi-Serve): ``decodes`` decode tokens plus a ``chunk``-token slice of a
    prompt. Approximation: the decode tokens join the chunk in the linear
    layers (one forward pass of ``chunk + decodes`` tokens), and their attention
    over their own contexts is added as ``decode(decodes, context) -
    decode(decodes, 0)``. With ``chunk = 0`` it is ``decode``.
    """

    pool: Pool

    def _kw(self) -> dict[str, Any]:
        p = self.pool
        return {"tp": p.tp, "pp": p.pp, "source": p.source}

    @property
    def model(self) -> Model:
        return self.pool.decoder

    def prefill(self, tokens: Any, context: Any = 0.0, batch: Any = 1) -> Any:
        t = np.maximum(np.asarray(tokens, dtype=float), 1.0)
        return service.prefill_time(self.model, self.pool.device, prompt_tokens=t, batch=batch,
                                    context_tokens=context, **self._kw())

    def decode(self, batch: Any, context: Any) -> Any:
        b = np.maximum(np.asarray(batch, dtype=float), 1.0)
        return service.decode_step_time(self.model, self.pool.device, batch=b,
                                        context_tokens=context, **self._kw())

    def mixed(self, decodes: Any, context: Any, chunk: Any, chunk_context: Any = 0.0) -> Any:
        d = np.asarray(decodes, dtype=float)
        c = np.asarray(chunk, dtype=float)
        joint = self.prefill(c + d, chunk_context)
        attention = np.where(d > 0, self.decode(np.maximum(d, 1), context)
                             - self.decode(np.maximum(d, 1), 0.0), 0.0)
        out = np.where(c > 0, joint + attention, self.decode(np.maximum(d, 1), context))
        return float(out) if out.ndim == 0 else out


def embed_time(stage: Embed, pool: Pool, tokens: Any) -> Any:
    """Seconds to embed one query of ``tokens`` tokens on ``pool``."""
    t = np.clip(np.asarray(tokens, dtype=float), 1.0, stage.model.max_context)
    return rag.embed(stage.model, pool.device, t).total


@lru_cache(maxsize=256)
def _search_seconds(index: str, corpus: float, dim: int, k: int, options: tuple,
                    device: Any) -> float:
    return float(rag.search(index, corpus, dim, device=device, k=k, **dict(options)).time)


def search_time(stage: Search, pool: Pool) -> float:
    """Seconds of one query's vector search on one device of ``pool`` (batch of 1)."""
    return _search_seconds(stage.index, stage.corpus, stage.dim, stage.k,
                           tuple(sorted(stage.options.items())), pool.device)


def rerank_time(stage: Rerank, pool: Pool, query_tokens: Any = 0.0) -> Any:
    """Seconds for the cross-encoder to score the stage's documents for one query."""
    q = np.minimum(np.asarray(query_tokens, dtype=float),
                   stage.model.max_context - stage.tokens_per_document)
    return rag.rerank(stage.model, pool.device, stage.documents, stage.tokens_per_document,
                      query_tokens=np.maximum(q, 0.0)).total


def kv_fetch_time(share: TierShare, model: Model, tokens: Any, tp: int,
                  kv_precision: str = "bf16") -> tuple[Any, float]:
    """(Bandwidth seconds, latency seconds) to fetch the KV of ``tokens`` for a TP group.

    The ``tp`` ranks' shards all cross the one tier: bytes = ``tp x``
    :func:`hermes_qn.kv_tiers.kv_bytes` per rank.
    """
    nbytes = tp * np.asarray(kv_tiers.kv_bytes(model, tokens, kv_precision=kv_precision, tp=tp))
    return nbytes / share.bytes_per_second, share.seconds_latency


def kv_transfer_time(link: Link | MemoryTier, model: Model, tokens: Any, tp: int,
                     kv_precision: str = "bf16") -> tuple[Any, float]:
    """(Bandwidth seconds, latency seconds) to move a request's KV from prefill to decode.

    Each of the ``tp`` ranks sends its shard over its own link, in parallel:
    bytes per link = :func:`hermes_qn.kv_tiers.kv_bytes` of one rank. A link
    with no catalog latency counts none (the notes of the result say so).
    """
    nbytes = np.asarray(kv_tiers.kv_bytes(model, tokens, kv_precision=kv_precision, tp=tp))
    return nbytes / link.bandwidth, float(link.latency or 0.0)
