"""LLM-level discrete-event sampler: replay a :class:`~hermes_qn.scenario.Scenario` with real mechanics.

:func:`simulate_scenario` steps through the iterations of every replica of every
pool (prefill steps, decode steps, chunked mixed steps, static batches), the
KV-cache of each replica (admission, growth, preemption), RAG stations, KV
fetches from memory tiers and KV transfers between disaggregated pools. It is
the check of the closed forms of :func:`hermes_qn.evaluate`: both take every
duration from :mod:`hermes_qn.stage_times`, so a difference between them is a
difference of queueing mechanics, never of service-time models.

The mechanics
-------------
Arrivals
    Open classes: Poisson at ``rate``. Closed classes: ``clients`` users, each
    thinking an exponential ``think_time`` (0: resubmits at once) before its
    first request and after every response.
Routing to replicas
    Every request arriving at a pool stage goes to a replica drawn uniformly at
    random (an even random split, as the closed form assumes); a
    :class:`~hermes_qn.scenario.Generate` with several targets draws one by
    their probabilities.
Embed, Rerank, Search
    Service = ``embed_time`` / ``rerank_time`` (query = the request's prompt) /
    ``search_time``, one request at a time. On a pool without an LLM engine:
    one FCFS queue served by ``replicas`` servers. On a pool whose replicas
    run an LLM engine: the job goes to a random replica and runs there as one
    whole iteration before any LLM step (priority, not preempting the step in
    progress), so encoders and the LLM share the replica's time.
KVFetch
    A tier is drawn by the hit rates. A miss adds the reused tokens to the
    prompt of later Generate stages (recomputed in the prefill). A hit picks one
    of the tier's ``instances`` at random, a processor-sharing server for the
    bandwidth seconds of ``kv_fetch_time``, then waits its latency (a pure
    delay); later prefills compute only the prompt, on a context of the reused
    tokens (which occupy the KV cache).
Search
    Adds ``retrieved_tokens`` (rounded) to the prompt of later Generate stages.
Pause
    A pure delay of ``seconds``.
Generate, colocated (``pool.batching``)
    ``"continuous"`` (vLLM): per replica a FCFS waiting queue and a running
    batch. Each iteration first admits waiting requests in FCFS order while the
    running batch has fewer than ``batch_cap`` sequences, the KV cache holds
    their prompt + context tokens, and their prompt tokens sum to at most
    ``max_batched_tokens`` (the head request is always taken alone if it is
    longer); if it admitted any it runs ONE prefill step for them, else one
    decode step of the whole running batch. Prefill step time of ``n``
    prompts = ``StepModel.prefill(tokens = their mean new tokens, context = 0,
    batch = n)`` plus, per prompt, the extra attention over the mean cached
    context (``prefill(mean, context) - prefill(mean, 0)``); each prompt
    attends to itself only, and prompts of unequal lengths are timed at their
    mean length (a few per cent low for very unequal ones: attention is
    quadratic). Each admitted request gets its first token at the end of the
    step. Decode step time = ``StepModel.decode(batch = n, context = mean
    KV tokens of the running sequences)``; every running sequence gains one
    token, and one KV token; those done leave and free their KV.
    ``"chunked"`` (Sarathi-Serve): each iteration has ``chunk_tokens``; every
    running decode takes one, the rest goes to the prompts being prefilled in
    admission order (a prompt may span several iterations, several prompts
    may share one); time = ``StepModel.mixed(decodes, context, chunk,
    chunk_context)`` with chunk_context the token-weighted mean of the cached
    tokens before each slice; first token at the end of the step that finishes
    the prompt. ``"static"``: an idle replica takes up to ``batch_cap``
    waiting requests whose KV for prompt + context + all output fits
    (reserved up front, so static batching never preempts), runs one prefill
    step for them all, then decode steps until the last of them finishes;
    finished sequences leave the decode batch, slots are not refilled.
Preemption (continuous and chunked)
    Before a decode step, while the KV cache cannot take one more token for
    every running sequence, the most recently admitted running sequence is
    evicted (vLLM's recompute policy): its KV is freed, it goes back to the
    front of the waiting queue, and when readmitted its prompt, context and
    tokens generated so far are prefilled again (that prefill yields its next
    token). A request whose KV alone exceeds the cache is admitted when the
    replica is otherwise empty, so nothing deadlocks.
Generate, disaggregated (``prefill_pool``, ``decode_pool``, ``link``)
    The prefill pool's replicas run prefill steps as above (a ``"chunked"``
    pool in chunks; a ``"static"`` pool is treated as ``"continuous"``), and
    keep the KV until it has crossed the link: a processor-sharing server per
    (prefill replica, link) for the bandwidth seconds of ``kv_transfer_time``
    of the prompt + context tokens (prefill pool's tp), then the link's
    latency as a delay. The request then joins a random decode replica's
    waiting queue: decode-only continuous batching (admission needs a batch
    slot and KV room, no prefill step; the first token came from the prefill).
    A request with one output token is done after its prefill.
Reasoning
    ``thinking``: ``round(thinking x output)`` more decode tokens; they count
    in TPOT and E2E but not in ``token_throughput`` (answer tokens only).
    ``rounds > 1``: answer + thinking tokens are split evenly over the rounds
    (at least one each); between rounds a pause of ``round_delay``, then a
    prefill of ``round_tokens`` new tokens (at least 1) on the grown context
    (prompt + context + the tokens of earlier rounds), queued afresh on a
    random replica of the same target. ``branches > 1``: after each round's
    prefill, ``branches`` sequences decode in parallel, each with its own batch
    slot and its own KV (prompt + context copied, no prefix sharing) and its
    own output length (the request's draw for the first branch, independent
    draws of the same distribution for the others, each split over the rounds
    like the first); the round ends when the last branch does. A later round
    continues one branch.
Measurement
    A replication generates arrivals until its first ``requests`` arrivals have
    all completed (arrivals go on meanwhile, so the load holds to the end). The
    first ``warmup`` fraction of those arrivals is dropped; the window runs
    from the arrival of the first measured request to the arrival of the last.
    TTFT = first token of the main Generate stage - arrival; TPOT = (end of that
    stage's decode - its first token) / (tokens of its longest branch - 1), for
    requests with at least 2 such tokens (a multi-round stage's pauses and
    later prefills count in it); E2E = completion of the pipeline - arrival.
    ``throughput`` and ``token_throughput`` count completions inside the
    window. Pool ``utilization``: busy time of the LLM engines (any step,
    RAG jobs included) or of the RAG servers in the window / (replicas x
    window). ``batch_size``: time average, over the window, of the
    sequences in a replica's running decode batch (idle time counts as 0);
    NaN for a pool that decodes nothing (RAG pools, disaggregated prefill
    pools). attrs ``saturated`` is 1 when, in some replication, fewer than
    90% as many requests completed in the window as arrived in it (the notes
    then say so): the latencies then describe a growing backlog.
    Each replication has its own seed stream
    (``numpy.random.SeedSequence(seed).spawn``); estimates are means over
    replications, half-widths 95% Student-t across them (NaN with one).
Step times
    Decode times are tabulated per pool for batch 1..batch_cap on a uniform
    context grid (1025 points up to the model's context) and interpolated
    linearly in context; prefill times on a geometric token grid (exact up to
    256 tokens) x a uniform context grid, interpolated bilinearly (0.1%
    agreement with direct StepModel calls); a prefill longer than the model's
    context is extrapolated linearly in tokens.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import time as _time
from bisect import bisect_right
from collections import deque
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from .errors import ValidationError
from .scenario import Embed, Generate, KVFetch, Pause, Pool, Rerank, Scenario
from .stage_times import (StepModel, embed_time, kv_fetch_time, kv_transfer_time, rerank_time,
                          search_time)

__all__ = ["simulate_scenario", "PREEMPTION"]

QUANTILES = (0.5, 0.9, 0.99)

#: The preemption policy, as written into the result's attrs.
PREEMPTION = ("recompute: before a decode step, while the KV cache cannot hold one more token "
              "per running sequence, the most recently admitted running sequence is evicted, "
              "its KV freed, and it returns to the front of the waiting queue; on readmission "
              "its prompt, context and generated tokens are prefilled again (vLLM recompute). "
              "Static batching reserves prompt + output KV at admission and never preempts.")

_BLOCK = 4096


# --------------------------------------------------------------------------- step-time tables


def _lerp(row: list[float], x: float, n: int) -> float:
    """``row`` at the real grid position ``x >= 0``: linear between points, ``row[n]`` from ``n`` on."""
    if x >= n:
        return row[n]
    i = int(x)
    a = row[i]
    return a + (x - i) * (row[i + 1] - a)


def _bracket(grid: list[float], x: float) -> tuple[int, float]:
    """Segment ``j`` of an increasing ``grid`` below its last point holding ``x``, and the
    fraction ``(x - grid[j]) / (grid[j + 1] - grid[j])`` (negative below ``grid[0]``)."""
    j = max(bisect_right(grid, x) - 1, 0)
    return j, (x - grid[j]) / (grid[j + 1] - grid[j])


class _Tables:
    """Tabulated StepModel times of one pool (see the module docstring)."""

    def __init__(self, pool: Pool) -> None:
        sm = StepModel(pool)
        self.model = model = pool.decoder
        cmax = float(model.max_context - 1)
        self.cmax = cmax
        # decode: batch 1..cap x uniform context grid
        cap = pool.batch_cap
        nctx = 1024
        self.dh = dh = cmax / nctx
        grid = np.arange(nctx + 1) * dh
        d = np.asarray(sm.decode(np.arange(1, cap + 1, dtype=float)[:, None], grid[None, :]),
                       dtype=float)
        self.dec = [None] + [list(map(float, row)) + [float(row[-1])] for row in d]
        self.dec_n = nctx
        self.cap = cap
        # prefill: tokens grid x uniform context grid
        tmax = max(float(model.max_context), 2.0)
        tok = np.unique(np.concatenate([np.arange(1, 257, dtype=float),
                                        np.round(np.geomspace(256, tmax, 400))]))
        self.ptok = tok.tolist()
        npc = 256
        self.ph = ph = cmax / npc
        pctx = np.arange(npc + 1) * ph
        T, C = np.meshgrid(tok, pctx, indexing="ij")
        limit = np.maximum(model.max_context - C, 1.0)
        teff = np.minimum(T, limit)
        p = np.asarray(sm.prefill(teff, np.minimum(C, model.max_context - teff)), dtype=float)
        p = p * (T / teff)
        self.pre = [list(map(float, row)) + [float(row[-1])] for row in p]
        self.pre_n = npc
        self.ptmax = float(tok[-1])
        # several prompts in one prefill step: StepModel.prefill(mean tokens, 0, batch=n) for
        # n = 2..batch_cap on a geometric grid of mean prompt lengths (context added per prompt)
        btok = np.unique(np.round(np.geomspace(1.0, float(model.max_context), 96)))
        n = np.arange(2, max(cap, 2) + 1, dtype=float)
        b = np.asarray(sm.prefill(btok[None, :], 0.0, n[:, None]), dtype=float)
        self.btok = btok.tolist()
        self.bpre = [None, None] + [list(map(float, row)) for row in b]

    def decode(self, n: int, ctx: float) -> float:
        if n > self.cap:
            n = self.cap  # more sequences than the cap never run together
        return _lerp(self.dec[n], ctx / self.dh, self.dec_n)

    def _pre_row(self, j: int, x: float) -> float:
        return _lerp(self.pre[j], x, self.pre_n)

    def prefill(self, tokens: float, ctx: float) -> float:
        if tokens < 1:
            tokens = 1.0
        x = ctx / self.ph
        tok = self.ptok
        if tokens >= self.ptmax:
            return self._pre_row(len(tok) - 1, x) * tokens / self.ptmax
        j, f = _bracket(tok, tokens)
        lo = self._pre_row(j, x)
        return lo if f == 0 else lo + f * (self._pre_row(j + 1, x) - lo)

    def prefill_batch(self, n: int, tokens: float, ctx: float) -> float:
        """One prefill step of ``n`` prompts of ``tokens`` new tokens in all, mean context ``ctx``."""
        if n <= 1:
            return self.prefill(tokens, ctx)
        mean = tokens / n
        row = self.bpre[min(n, len(self.bpre) - 1)]
        tok = self.btok
        if mean >= tok[-1]:
            base = row[-1] * mean / tok[-1]
        else:
            j, f = _bracket(tok, mean)
            base = row[j] + f * (row[j + 1] - row[j])
        if n > len(self.bpre) - 1:  # more prompts than the table: scale linearly in prompts
            base *= n / (len(self.bpre) - 1)
        if ctx > 0:  # each prompt's attention over its cached context
            base += n * (self.prefill(mean, ctx) - self.prefill(mean, 0.0))
        return base

    def mixed(self, d: int, ctx: float, c: float, cctx: float) -> float:
        # StepModel.mixed: prefill(c + d, cctx) + decode(d, ctx) - decode(d, 0)
        if c <= 0:
            return self.decode(max(d, 1), ctx)
        out = self.prefill(c + d, cctx)
        if d > 0:
            out += self.decode(d, ctx) - self.dec[min(d, self.cap)][0]
        return out


_TABLE_CACHE: dict = {}


def _tables(pool: Pool) -> _Tables:
    """The step-time tables of ``pool``, cached by what they depend on (sweeps rebuild none)."""
    key = (StepModel, repr(pool.device), repr(pool.decoder), pool.tp, pool.pp, pool.source,
           pool.batch_cap)
    got = _TABLE_CACHE.get(key)
    if got is None:
        if len(_TABLE_CACHE) >= 32:
            _TABLE_CACHE.clear()
        got = _TABLE_CACHE[key] = _Tables(pool)
    return got


# --------------------------------------------------------------------------- simulation objects


class _Req:
    __slots__ = ("k", "idx", "arrival", "prompt", "output", "extra", "ctx", "stage",
                 "stage_start", "st", "first", "main_end", "main_tokens", "answer", "client",
                 "draw", "end")

    def __init__(self, k: int, idx: int, arrival: float, nstages: int) -> None:
        self.k = k
        self.idx = idx
        self.arrival = arrival
        self.extra = 0
        self.ctx = 0
        self.stage = -1
        self.stage_start = arrival
        self.st = [0.0] * nstages
        self.first = math.nan
        self.main_end = math.nan
        self.main_tokens = 0
        self.answer = 0
        self.client = None


class _Seq:
    """One sequence in an LLM engine (a round's prefill, or one branch of its decode)."""

    __slots__ = ("job", "pre", "ctx", "kv", "left", "branches", "handoff", "recompute",
                 "done", "k0", "kv0", "fin", "reserve", "id")

    def __init__(self, job, pre: int, ctx: int, left: int, branches: int, handoff: bool) -> None:
        self.job = job
        self.pre = pre
        self.ctx = ctx
        self.kv = 0
        self.left = left
        self.branches = branches
        self.handoff = handoff
        self.recompute = False
        self.done = 0
        self.fin = -1
        self.reserve = 0
        self.id = 0


class _Sim:
    def __init__(self) -> None:
        self.heap: list = []
        self.counter = itertools.count()
        self.events = 0

    def at(self, t: float, fn, arg) -> None:
        heapq.heappush(self.heap, (t, next(self.counter), fn, arg))


class _Uniform:
    """Uniform(0,1) draws in blocks."""

    __slots__ = ("rng", "buf", "i")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.buf = rng.random(_BLOCK).tolist()
        self.i = 0

    def __call__(self) -> float:
        i = self.i
        if i == _BLOCK:
            self.buf = self.rng.random(_BLOCK).tolist()
            i = 0
        self.i = i + 1
        return self.buf[i]


class _FCFS:
    """``servers`` FCFS servers with one queue (RAG stages of a pool)."""

    def __init__(self, sim: _Sim, servers: int) -> None:
        self.sim = sim
        self.servers = servers
        self.free = servers
        self.queue: deque = deque()
        self.ends: list[float] = []
        self.busy = 0.0

    def submit(self, t: float, service: float, fn, arg) -> None:
        if self.free:
            self.free -= 1
            self._start(t, service, fn, arg)
        else:
            self.queue.append((service, fn, arg))

    def _start(self, t: float, service: float, fn, arg) -> None:
        self.busy += service
        end = t + service
        self.ends.append(end)
        self.sim.at(end, self._end, (end, fn, arg))

    def _end(self, t: float, item) -> None:
        end, fn, arg = item
        self.ends.remove(end)
        if self.queue:
            s, f, a = self.queue.popleft()
            self._start(t, s, f, a)
        else:
            self.free += 1
        fn(t, arg)

    def busy_at(self, t: float) -> float:
        return self.busy - sum(max(0.0, e - t) for e in self.ends)


class _PS:
    """A processor-sharing server (tier bandwidth, KV-transfer link)."""

    def __init__(self, sim: _Sim) -> None:
        self.sim = sim
        self.n = 0
        self.v = 0.0
        self.last = 0.0
        self.jobs: list = []
        self.version = 0

    def _update(self, t: float) -> None:
        if self.n:
            self.v += (t - self.last) / self.n
        self.last = t

    def submit(self, t: float, work: float, fn, arg) -> None:
        self._update(t)
        heapq.heappush(self.jobs, (self.v + work, next(self.sim.counter), fn, arg))
        self.n += 1
        self._schedule(t)

    def _schedule(self, t: float) -> None:
        self.version += 1
        vmin = self.jobs[0][0]
        self.sim.at(t + max(0.0, vmin - self.v) * self.n, self._done, self.version)

    def _done(self, t: float, version: int) -> None:
        if version != self.version:
            return
        self._update(t)
        _, _, fn, arg = heapq.heappop(self.jobs)
        self.n -= 1
        if self.n:
            self._schedule(t)
        fn(t, arg)


# --------------------------------------------------------------------------- engines


class _Engine:
    """One replica's LLM engine: continuous batching (base), chunked and static below."""

    def __init__(self, sim: _Sim, pool: Pool, tables: _Tables) -> None:
        self.sim = sim
        self.tables = tables
        self.cap = pool.batch_cap
        self.maxkv = int(pool.memory.max_kv_tokens)
        self.mbt = pool.max_batched_tokens
        self.chunk = pool.chunk_tokens
        self.waiting: deque = deque()
        self.running: dict = {}
        self.fin: dict = {}
        self.count = 0
        self.held = 0      # KV tokens of admitted sequences not in the running batch
        self.run_kv = 0    # KV tokens of the running batch
        self.busy_flag = False
        self.busy = 0.0
        self.area = 0.0
        self.step_end = 0.0
        self.step_n = 0
        self.ids = itertools.count()
        self.preemptions = 0
        self.links: dict = {}
        self.encoder: deque = deque()

    def encode(self, t: float, service: float, fn, arg) -> None:
        """Queue a RAG job (embed, search, rerank) of ``service`` seconds; ``fn(t, arg)`` after."""
        self.encoder.append((service, fn, arg))
        if not self.busy_flag:
            self._start(t)

    def _encoder_step(self, t: float) -> bool:
        """Run the first queued RAG job as this iteration, before any LLM step (priority)."""
        if not self.encoder:
            return False
        service, fn, arg = self.encoder.popleft()
        self._step(t, service, self._encoder_end, (fn, arg))
        return True

    def _encoder_end(self, t: float, job) -> None:
        fn, arg = job
        fn(t, arg)
        self._start(t)

    # -- bookkeeping shared by all kinds
    def submit(self, t: float, s: _Seq) -> None:
        self.waiting.append(s)
        if not self.busy_flag:
            self._start(t)

    def release(self, t: float, tokens: int) -> None:
        self.held -= tokens
        if not self.busy_flag and self.waiting:
            self._start(t)

    def _step(self, t: float, dur: float, fn, arg) -> None:
        self.busy_flag = True
        n = len(self.running)
        self.busy += dur
        self.area += n * dur
        self.step_end = t + dur
        self.step_n = n
        self.sim.at(t + dur, fn, arg)

    def snapshot(self, t: float) -> tuple[float, float]:
        rem = max(0.0, self.step_end - t)
        return self.busy - rem, self.area - rem * self.step_n

    def _enter(self, s: _Seq) -> None:
        """Sequence ``s`` (KV ``s.kv`` already counted in ``held``) joins the running batch."""
        s.id = next(self.ids)
        self.running[s.id] = s
        s.k0 = self.count
        s.kv0 = s.kv
        self.held -= s.kv
        self.run_kv += s.kv
        f = self.count + s.left
        s.fin = f
        lst = self.fin.get(f)
        if lst is None:
            self.fin[f] = [s]
        else:
            lst.append(s)

    def _finish(self, s: _Seq) -> None:
        self.run_kv -= s.kv0 + self.count - s.k0

    def _decode_done(self, t: float, n: int) -> None:
        self.count += 1
        count = self.count
        self.run_kv += n
        done = self.fin.pop(count, None)
        if done:
            running = self.running
            for s in done:
                if s.fin == count:
                    del running[s.id]
                    s.fin = -1
                    self._finish(s)
                    s.job.seq_done(t)

    def _prefilled(self, t: float, s: _Seq) -> None:
        """The prefill of ``s`` ended at ``t`` (its KV, ``s.kv``, is counted in ``held``)."""
        s.left -= 1
        job = s.job
        if not s.recompute:
            job.first_token(t)
        s.recompute = False
        b = s.branches
        if s.handoff:
            job.handoff(t, s, self)
            return
        seqs = [s]
        if b > 1:
            s.branches = 1
            for i in range(1, b):
                c = _Seq(job, 0, s.ctx, job.branch_left(i) - 1, 1, False)
                c.kv = s.kv
                c.reserve = s.reserve
                self._alloc_clone(c)
                seqs.append(c)
        for x in seqs:
            if x.left <= 0:
                self._drop(x)
                job.seq_done(t)
            else:
                self._enter(x)

    def _alloc_clone(self, c: _Seq) -> None:
        self.held += c.kv

    def _drop(self, s: _Seq) -> None:
        """``s`` ended with its prefill (no decode): free what it holds."""
        self.held -= s.kv

    def _preempt_for(self, n: int) -> int:
        """Evict (recompute) until the KV cache takes ``n`` more tokens; returns the new ``n``."""
        running = self.running
        while n > 1 and self.held + self.run_kv + n > self.maxkv:
            _, s = running.popitem()
            gen = self.count - s.k0
            kvnow = s.kv0 + gen
            self.run_kv -= kvnow
            s.left -= gen
            s.fin = -1
            s.pre = kvnow
            s.ctx = 0
            s.kv = 0
            s.recompute = True
            self.waiting.appendleft(s)
            self.preemptions += 1
            n -= 1
        return n

    def _admit(self, s: _Seq, slots: int) -> bool:
        """Take ``s`` off the head of the waiting queue if the KV cache holds it (beside
        ``slots`` running sequences); its KV is then counted in ``held``."""
        need = s.ctx + s.pre if s.pre else s.kv
        if not self._fits(need, slots + s.branches):
            return False
        self.waiting.popleft()
        s.kv = need
        self.held += need
        return True

    def _fits(self, need: int, slots: int) -> bool:
        """Room for ``need`` more KV tokens and then one decode step of ``slots`` sequences."""
        return (self.held + self.run_kv + need + slots <= self.maxkv
                or (not self.running and self.held == 0))

    # -- continuous batching
    def _start(self, t: float) -> None:
        if self._encoder_step(t):
            return
        waiting = self.waiting
        batch = []
        if waiting:
            slots = len(self.running)
            tokens = 0
            cap = self.cap
            while waiting:
                s = waiting[0]
                if slots + s.branches > cap and (slots or batch):
                    break
                if s.pre and batch and tokens + s.pre > self.mbt:
                    break
                if not self._admit(s, slots):
                    break
                slots += s.branches
                if s.pre:
                    batch.append(s)
                    tokens += s.pre
                else:
                    self._enter(s)
            if batch:
                ctx = sum(x.ctx for x in batch) / len(batch)
                self._step(t, self.tables.prefill_batch(len(batch), tokens, ctx),
                           self._prefill_end, batch)
                return
        n = len(self.running)
        if n:
            n = self._preempt_for(n)
            self._step(t, self.tables.decode(n, self.run_kv / n), self._decode_end, n)
        else:
            self.busy_flag = False

    def _prefill_end(self, t: float, batch) -> None:
        for s in batch:
            self._prefilled(t, s)
        self._start(t)

    def _decode_end(self, t: float, n: int) -> None:
        self._decode_done(t, n)
        self._start(t)


class _Chunked(_Engine):
    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.prefilling: deque = deque()

    def _start(self, t: float) -> None:
        if self._encoder_step(t):
            return
        n = len(self.running)
        if n:
            n = self._preempt_for(n)
        dctx = self.run_kv / n if n else 0.0
        budget = self.chunk - n
        slices = []
        direct = []
        if budget > 0:
            for s in self.prefilling:
                take = min(budget, s.pre - s.done)
                slices.append((s, take))
                budget -= take
                if budget <= 0:
                    break
            waiting = self.waiting
            slots = n + sum(x.branches for x in self.prefilling)
            while budget > 0 and waiting:
                s = waiting[0]
                if slots + s.branches > self.cap and slots:
                    break
                if not self._admit(s, slots):
                    break
                slots += s.branches
                if s.pre:
                    s.done = 0
                    self.prefilling.append(s)
                    take = min(budget, s.pre)
                    slices.append((s, take))
                    budget -= take
                else:
                    # decode-only arrival (KV already moved here): joins the batch after
                    # this iteration
                    direct.append(s)
        if not slices and not n:
            if direct:  # only decode-only arrivals: they decode from this iteration
                for s in direct:
                    self._enter(s)
                self._start(t)
                return
            self.busy_flag = False
            return
        if slices:
            c = 0
            w = 0.0
            for s, take in slices:
                c += take
                w += take * (s.ctx + s.done)
            dur = self.tables.mixed(n, dctx, c, w / c)
        else:
            dur = self.tables.decode(n, dctx)
        self._step(t, dur, self._mixed_end, (n, slices, direct))

    def _mixed_end(self, t: float, arg) -> None:
        n, slices, direct = arg
        if n:
            self._decode_done(t, n)
        for s in direct:
            self._enter(s)
        for s, take in slices:
            s.done += take
            if s.done >= s.pre:
                self.prefilling.popleft()
                self._prefilled(t, s)
        self._start(t)


class _Static(_Engine):
    """Static batching: KV for prompt + context + output reserved at admission."""

    def _enter(self, s: _Seq) -> None:
        held = self.held
        super()._enter(s)
        self.held = held  # the reservation stays in ``held`` until the sequence ends

    def _finish(self, s: _Seq) -> None:
        super()._finish(s)
        self.held -= s.reserve

    def _alloc_clone(self, c: _Seq) -> None:
        pass  # the parent's reservation covers every branch

    def _drop(self, s: _Seq) -> None:
        self.held -= s.reserve

    def _start(self, t: float) -> None:
        if self._encoder_step(t):
            return
        n = len(self.running)
        if n:
            self._step(t, self.tables.decode(n, self.run_kv / n), self._decode_end, n)
            return
        waiting = self.waiting
        batch = []
        direct = []
        slots = 0
        while waiting:
            s = waiting[0]
            if slots + s.branches > self.cap and slots:
                break
            kv = s.ctx + s.pre if s.pre else s.kv
            need = kv if s.handoff else kv * s.branches + s.job.round_left()
            if not (self.held + need <= self.maxkv or self.held == 0):
                break
            waiting.popleft()
            slots += s.branches
            s.kv = kv
            s.reserve = need if s.handoff else need // s.branches
            self.held += need
            (batch if s.pre else direct).append(s)
        for s in direct:
            self._enter(s)
        if batch:
            tokens = sum(x.pre for x in batch)
            ctx = sum(x.ctx for x in batch) / len(batch)
            self._step(t, self.tables.prefill_batch(len(batch), tokens, ctx),
                       self._prefill_end, batch)
        elif self.running:
            self._start(t)
        else:
            self.busy_flag = False


# --------------------------------------------------------------------------- generate jobs


class _GenJob:
    """One request's pass through one Generate stage."""

    __slots__ = ("run", "req", "main", "tgt", "prompt", "ctx", "rounds", "round", "pending",
                 "branches", "delay", "round_tokens", "grown", "done_fn", "other_rounds")

    def branch_left(self, i: int) -> int:
        """Tokens branch ``i`` decodes in this round (branch 0: ``rounds``)."""
        return self.rounds[self.round] if i == 0 else self.other_rounds[i - 1][self.round]

    def round_left(self) -> int:
        """Tokens all branches decode in this round."""
        return sum(self.branch_left(i) for i in range(self.branches))

    def first_token(self, t: float) -> None:
        if self.round == 0 and self.main:
            self.req.first = t

    def seq_done(self, t: float) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.round += 1
            if self.round < len(self.rounds):
                if self.delay > 0:
                    self.run.sim.at(t + self.delay, self._next_round, None)
                else:
                    self._next_round(t, None)
            else:
                if self.main:
                    self.req.main_end = t
                self.done_fn(t, self.req)

    def start(self, t: float) -> None:
        self._submit(t, self.prompt, self.ctx)

    def _next_round(self, t: float, _) -> None:
        self.grown += self.rounds[self.round - 1]
        self._submit(t, self.round_tokens, self.grown)
        self.grown += self.round_tokens

    def _submit(self, t: float, pre: int, ctx: int) -> None:
        tgt = self.tgt
        self.pending = self.branches
        s = _Seq(self, pre, ctx, self.rounds[self.round], self.branches, tgt.disaggregated)
        engines = self.run.engines[tgt.prefill_on]
        engines[int(self.run.route() * len(engines))].submit(t, s)

    def handoff(self, t: float, s: _Seq, engine: _Engine) -> None:
        """Disaggregated: the prefill of ``s`` on ``engine`` is done; move its KV to decode."""
        if s.left <= 0 and all(self.branch_left(i) <= 1 for i in range(1, s.branches)):
            engine.release(t, s.kv)
            for _ in range(s.branches):
                self.seq_done(t)
            return
        tgt = self.tgt
        key = tgt.link.name
        ps = engine.links.get(key)
        if ps is None:
            ps = engine.links[key] = _PS(self.run.sim)
        work, latency = self.run.transfer(tgt, s.kv)
        ps.submit(t, work, self._sent, (s, engine, latency))

    def _sent(self, t: float, arg) -> None:
        s, engine, latency = arg
        if latency > 0:
            self.run.sim.at(t + latency, self._arrived, (s, engine))
        else:
            self._arrived(t, (s, engine))

    def _arrived(self, t: float, arg) -> None:
        s, engine = arg
        engine.release(t, s.kv)
        engines = self.run.engines[self.tgt.decode_on]
        dec = engines[int(self.run.route() * len(engines))]
        b = s.branches
        s.branches = 1
        s.handoff = False
        s.pre = 0
        for i in range(b):
            x = s if i == 0 else _Seq(self, 0, s.ctx, self.branch_left(i) - 1, 1, False)
            if x.left <= 0:
                self.seq_done(t)
                continue
            x.kv = s.kv
            dec.submit(t, x)


# --------------------------------------------------------------------------- one replication


def _split_rounds(out: int, thinking: float, rounds: int) -> list[int]:
    """``out`` answer tokens plus ``round(thinking x out)`` thinking tokens, split evenly."""
    base, rem = divmod(out + int(round(thinking * out)), rounds)
    return [max(1, base + (1 if q < rem else 0)) for q in range(rounds)]


class _ClassPlan:
    def __init__(self, rc, k: int, scenario: Scenario) -> None:
        self.rc = rc
        self.k = k
        self.stages = rc.pipeline
        self.main = rc.main_index
        self.open = rc.is_open


class _Replication:
    def __init__(self, scenario: Scenario, tables: dict, engine_kind: dict, seed,
                 requests: int, warmup: float, progress) -> None:
        self.sc = scenario
        self.sim = sim = _Sim()
        self.requests = requests
        self.warm_n = int(math.floor(warmup * requests))
        if self.warm_n >= requests:
            self.warm_n = requests - 1
        self.progress = progress
        self.plans = [_ClassPlan(rc, k, scenario) for k, rc in enumerate(scenario.classes)]
        ncls = len(self.plans)
        seqs = seed.spawn(2 * ncls + 2)
        self.route = _Uniform(np.random.default_rng(seqs[0]))
        self.choice = _Uniform(np.random.default_rng(seqs[1]))
        self.arr_rng = [np.random.default_rng(seqs[2 + 2 * k]) for k in range(ncls)]
        self.tok_rng = [np.random.default_rng(seqs[3 + 2 * k]) for k in range(ncls)]
        self.pools = {p.name: p for p in scenario.pools}
        self.engines: dict[str, list[_Engine]] = {}
        for p in scenario.pools:
            if p.name in tables:
                cls = {"continuous": _Engine, "chunked": _Chunked,
                       "static": _Static}[engine_kind[p.name]]
                self.engines[p.name] = [cls(sim, p, tables[p.name]) for _ in range(p.replicas)]
        self.fcfs = {p.name: _FCFS(sim, p.replicas) for p in scenario.pools}
        self.tiers: dict = {}
        self.transfer_memo: dict = {}
        self.fetch_memo: dict = {}
        self.search_memo: dict = {}
        self.blocks = [None] * ncls
        self.block_i = [_BLOCK] * ncls
        self.n_arr = 0
        self.n_done = 0
        self.t0 = math.nan
        self.t1 = math.nan
        self.snap0 = None
        self.snap1 = None
        self.done_times = [[] for _ in range(ncls)]
        self.done_tokens = [[] for _ in range(ncls)]
        self.rows: list = []
        self.stopped = False

    # -- per-class draws, in blocks
    def _draw_block(self, k: int) -> dict:
        plan = self.plans[k]
        rc = plan.rc
        rng = self.tok_rng[k]
        b: dict[str, Any] = {}
        prompt = rc.prompt_tokens.sample(rng, _BLOCK)
        b["prompt"] = prompt.tolist()
        b["output"] = rc.output_tokens.sample(rng, _BLOCK).tolist()
        for i, st in enumerate(plan.stages):
            if isinstance(st, Embed):
                tok = st.tokens.sample(rng, _BLOCK) if st.tokens is not None else prompt
                b[i] = np.broadcast_to(np.asarray(
                    embed_time(st, self.pools[st.pool], tok), dtype=float), (_BLOCK,)).tolist()
            elif isinstance(st, Rerank):
                b[i] = np.broadcast_to(np.asarray(
                    rerank_time(st, self.pools[st.pool], prompt), dtype=float),
                    (_BLOCK,)).tolist()
            elif isinstance(st, Generate):
                if st.prompt_tokens is not None:
                    b[("p", i)] = st.prompt_tokens.sample(rng, _BLOCK).tolist()
                if st.output_tokens is not None:
                    b[("o", i)] = st.output_tokens.sample(rng, _BLOCK).tolist()
        return b

    def _next_draw(self, k: int) -> tuple[dict, int]:
        i = self.block_i[k]
        if i == _BLOCK:
            self.blocks[k] = self._draw_block(k)
            i = 0
        self.block_i[k] = i + 1
        return self.blocks[k], i

    # -- arrivals
    def start(self) -> None:
        for plan in self.plans:
            rc = plan.rc
            if plan.open:
                if rc.rate > 0:
                    self.sim.at(self.arr_rng[plan.k].exponential(1.0 / rc.rate), self._arrive,
                                plan)
            else:
                for c in range(rc.clients):
                    self._think(0.0, (plan, c))

    def _think(self, t: float, arg) -> None:
        plan, _ = arg
        tt = plan.rc.think_time
        d = self.arr_rng[plan.k].exponential(tt) if tt > 0 else 0.0
        self.sim.at(t + d, self._arrive, arg)

    def _arrive(self, t: float, arg) -> None:
        if isinstance(arg, _ClassPlan):
            plan, client = arg, None
            self.sim.at(t + self.arr_rng[plan.k].exponential(1.0 / plan.rc.rate), self._arrive,
                        plan)
        else:
            plan, client = arg
        idx = self.n_arr
        self.n_arr += 1
        if idx == self.warm_n:
            self.t0 = t
            self.snap0 = self._snapshot(t)
        if idx == self.requests - 1:
            self.t1 = t
            self.snap1 = self._snapshot(t)
        r = _Req(plan.k, idx, t, len(plan.stages))
        r.client = arg if client is not None else None
        blk, j = self._next_draw(plan.k)
        r.draw = (blk, j)
        r.prompt = blk["prompt"][j]
        r.output = blk["output"][j]
        self._advance(t, r)

    # -- pipeline
    def _advance(self, t: float, r: _Req) -> None:
        if r.stage >= 0:
            r.st[r.stage] = t - r.stage_start
        r.stage += 1
        r.stage_start = t
        plan = self.plans[r.k]
        if r.stage == len(plan.stages):
            self._complete(t, r)
            return
        i = r.stage
        st = plan.stages[i]
        blk, j = r.draw
        kind = st.kind
        if kind == "generate":
            self._generate(t, r, st, i, plan)
        elif kind == "embed" or kind == "rerank":
            self._rag(t, st.pool, blk[i][j], r)
        elif kind == "search":
            r.extra += int(round(st.retrieved_tokens))
            sec = self.search_memo.get(id(st))
            if sec is None:
                sec = self.search_memo[id(st)] = float(search_time(st, self.pools[st.pool]))
            self._rag(t, st.pool, sec, r)
        elif kind == "pause":
            self.sim.at(t + st.seconds, self._advance, r)
        elif kind == "kv_fetch":
            self._kv_fetch(t, r, st, i)
        else:  # pragma: no cover
            raise ValidationError(f"sampler: stage kind {kind!r} is not simulated")

    def _rag(self, t: float, pool: str, service: float, r: _Req) -> None:
        """A RAG stage: an LLM pool's engine runs it first at its next iteration; else FCFS."""
        engines = self.engines.get(pool)
        if engines:
            engines[int(self.route() * len(engines))].encode(t, service, self._advance, r)
        else:
            self.fcfs[pool].submit(t, service, self._advance, r)

    def _kv_fetch(self, t: float, r: _Req, st: KVFetch, i: int) -> None:
        reused = int(round(st.reused_tokens))
        u = self.choice()
        acc = 0.0
        share = None
        for sh in st.tiers:
            acc += sh.hit_rate
            if u < acc:
                share = sh
                break
        if share is None or reused == 0:
            r.extra += reused
            self._advance(t, r)
            return
        r.ctx += reused
        # the decoder the reused KV belongs to: the first later Generate's first target
        gen = next((s for s in self.plans[r.k].stages[i + 1:] if isinstance(s, Generate)), None)
        if gen is None:
            self._advance(t, r)
            return
        tgt = gen.targets[0]
        pool = self.pools[tgt.prefill_on]
        key = (id(share), reused, tgt.prefill_on)
        got = self.fetch_memo.get(key)
        if got is None:
            bw, lat = kv_fetch_time(share, tgt.model, reused, pool.tp, pool.kv_precision)
            got = self.fetch_memo[key] = (float(bw), float(lat))
        inst = int(self.choice() * share.instances)
        tkey = (id(share), inst)
        ps = self.tiers.get(tkey)
        if ps is None:
            ps = self.tiers[tkey] = _PS(self.sim)
        ps.submit(t, got[0], self._fetched, (r, got[1]))

    def _fetched(self, t: float, arg) -> None:
        r, lat = arg
        if lat > 0:
            self.sim.at(t + lat, self._advance, r)
        else:
            self._advance(t, r)

    def transfer(self, tgt, tokens: int) -> tuple[float, float]:
        key = (tgt.link.name, tgt.prefill_on, tokens)
        got = self.transfer_memo.get(key)
        if got is None:
            pool = self.pools[tgt.prefill_on]
            bw, lat = kv_transfer_time(tgt.link, tgt.model, tokens, pool.tp, pool.kv_precision)
            got = self.transfer_memo[key] = (float(bw), float(lat))
        return got

    def _generate(self, t: float, r: _Req, st: Generate, i: int, plan: _ClassPlan) -> None:
        blk, j = r.draw
        targets = st.targets
        if len(targets) == 1:
            tgt = targets[0]
        else:
            u = self.choice()
            acc = 0.0
            tgt = targets[-1]
            for x in targets:
                acc += x.probability
                if u < acc:
                    tgt = x
                    break
        prompt = blk[("p", i)][j] if ("p", i) in blk else r.prompt
        out = blk[("o", i)][j] if ("o", i) in blk else r.output
        out = max(1, out)
        rounds = _split_rounds(out, st.thinking, st.rounds)
        others = []
        if st.branches > 1:  # every other branch draws its own output length
            dist = st.output_tokens if st.output_tokens is not None else plan.rc.output_tokens
            for o in dist.sample(self.tok_rng[r.k], st.branches - 1):
                others.append(_split_rounds(max(1, int(o)), st.thinking, st.rounds))
        job = _GenJob()
        job.run = self
        job.req = r
        job.main = i == plan.main
        job.tgt = tgt
        job.prompt = max(1, prompt + r.extra)
        job.ctx = r.ctx
        job.rounds = rounds
        job.other_rounds = others
        job.round = 0
        job.branches = st.branches
        job.delay = st.round_delay
        job.round_tokens = max(1, int(round(st.round_tokens)))
        job.grown = job.prompt + job.ctx
        job.done_fn = self._advance
        if job.main:
            r.answer = out
            r.main_tokens = max([sum(rounds)] + [sum(o) for o in others])
        job.start(t)

    def _complete(self, t: float, r: _Req) -> None:
        k = r.k
        r.end = t
        self.done_times[k].append(t)
        self.done_tokens[k].append(r.answer)
        if r.idx < self.requests:
            if r.idx >= self.warm_n:
                self.rows.append(r)
            self.n_done += 1
            if self.progress is not None and self.n_done % 1000 == 0:
                self.progress(self.n_done)
            if self.n_done == self.requests:
                self.stopped = True
        if r.client is not None:
            self._think(t, r.client)
        r.draw = None

    def _snapshot(self, t: float) -> dict:
        out = {}
        for p in self.sc.pools:
            busy = self.fcfs[p.name].busy_at(t)
            area = 0.0
            for e in self.engines.get(p.name, ()):
                b, a = e.snapshot(t)
                busy += b
                area += a
            out[p.name] = (busy, area)
        return out

    def run(self) -> None:
        self.start()
        sim = self.sim
        heap = sim.heap
        pop = heapq.heappop
        n = 0
        while heap and not self.stopped:
            t, _, fn, arg = pop(heap)
            fn(t, arg)
            n += 1
        sim.events = n
        self.t_end = t if n else 0.0


# --------------------------------------------------------------------------- summary


def _stage_labels(rc) -> list[str]:
    """A class's pipeline stages named as evaluate's ``stage`` labels begin (a Pause by its
    label; a kind that occurs twice gets its index)."""
    names = [st.label if isinstance(st, Pause) else st.kind for st in rc.pipeline]
    return [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]


def _all_stage_labels(scenario: Scenario) -> list[str]:
    out: list[str] = []
    for rc in scenario.classes:
        out += [lab for lab in _stage_labels(rc) if lab not in out]
    return out


def _summarise(rep: _Replication, scenario: Scenario) -> dict:
    ncls = len(scenario.classes)
    t0, t1 = rep.t0, rep.t1
    span = t1 - t0
    res: dict[str, Any] = {}
    by = [[] for _ in range(ncls)]
    for r in rep.rows:
        by[r.k].append(r)
    for name in ("ttft", "tpot", "e2e", "throughput", "token_throughput"):
        res[name] = np.full(ncls, np.nan)
    for name in ("ttft_q", "tpot_q", "e2e_q"):
        res[name] = np.full((ncls, len(QUANTILES)), np.nan)
    labels = _all_stage_labels(scenario)
    res["stage_time"] = np.full((ncls, len(labels)), np.nan)
    res["slo_attainment"] = np.full(ncls, np.nan)
    for k in range(ncls):
        rows = by[k]
        times = np.asarray(rep.done_times[k])
        toks = np.asarray(rep.done_tokens[k], dtype=float)
        inside = (times >= t0) & (times <= t1)
        if span > 0:
            res["throughput"][k] = inside.sum() / span
            res["token_throughput"][k] = toks[inside].sum() / span
        if not rows:
            continue
        ttft = np.array([r.first - r.arrival for r in rows])
        e2e = np.array([r.end - r.arrival for r in rows])
        tp = np.array([(r.main_end - r.first) / (r.main_tokens - 1) for r in rows
                       if r.main_tokens >= 2])
        for name, x in (("ttft", ttft), ("tpot", tp), ("e2e", e2e)):
            if x.size:
                res[name][k] = x.mean()
                res[name + "_q"][k] = np.quantile(x, QUANTILES)
        for i, lab in enumerate(_stage_labels(scenario.classes[k])):
            res["stage_time"][k, labels.index(lab)] = float(np.mean([r.st[i] for r in rows]))
        # SLO attainment: the fraction of requests that meet every target of the class
        slo = scenario.classes[k].slo
        ok = np.ones(len(rows), dtype=bool)
        if slo is not None:
            tpot_all = np.array([(r.main_end - r.first) / (r.main_tokens - 1)
                                 if r.main_tokens >= 2 else 0.0 for r in rows])
            for target, x in ((slo.ttft, ttft), (slo.tpot, tpot_all), (slo.e2e, e2e)):
                if target is not None:
                    ok &= x <= target
        res["slo_attainment"][k] = ok.mean()
    pools = scenario.pools
    decoding = {tg.decode_on for c in scenario.classes for st in c.pipeline
                if isinstance(st, Generate) for tg in st.targets}
    res["utilization"] = np.full(len(pools), np.nan)
    res["batch_size"] = np.full(len(pools), np.nan)
    for j, p in enumerate(pools):
        if span > 0 and rep.snap0 is not None and rep.snap1 is not None:
            b0, a0 = rep.snap0[p.name]
            b1, a1 = rep.snap1[p.name]
            res["utilization"][j] = (b1 - b0) / (p.replicas * span)
            if p.name in decoding:
                res["batch_size"][j] = (a1 - a0) / (p.replicas * span)
    # saturation: the window's completions fall short of its arrivals
    arrived = rep.requests - 1 - rep.warm_n
    completed = sum(int(np.sum((np.asarray(x) >= t0) & (np.asarray(x) <= t1)))
                    for x in rep.done_times)
    res["saturated"] = bool(arrived >= 50 and completed < 0.9 * arrived)
    res["completion_ratio"] = completed / arrived if arrived > 0 else math.nan
    return res


def _engine_kinds(scenario: Scenario) -> dict[str, str]:
    split = set()
    for c in scenario.classes:
        for st in c.pipeline:
            if isinstance(st, Generate):
                for tg in st.targets:
                    if tg.disaggregated:
                        split.update((tg.prefill_pool, tg.decode_pool))
    kinds = {}
    for p in scenario.pools:
        if p.decoder is None:
            continue
        kinds[p.name] = "continuous" if (p.batching == "static" and p.name in split) \
            else p.batching
    return kinds


def _used_llm_pools(scenario: Scenario) -> set[str]:
    used = set()
    for c in scenario.classes:
        for st in c.pipeline:
            if isinstance(st, Generate):
                for tg in st.targets:
                    used.update((tg.prefill_on, tg.decode_on))
    return used


def simulate_scenario(scenario: Scenario, *, requests: int = 20000, warmup: float = 0.1,
                      replications: int = 5, seed: int | None = 0, records: bool = False,
                      progress: bool | None = None):
    """Simulate ``scenario`` request by request, iteration by iteration.

    Parameters
    ----------
    scenario : Scenario
    requests : int
        Requests per replication (the first ``requests`` arrivals, all classes
        together); the first ``warmup`` fraction of them is not measured.
    warmup : float
        Fraction of each replication's requests dropped, in [0, 1).
    replications : int
        Independent replications, each with its own seed stream.
    seed : int, optional
        Root of :class:`numpy.random.SeedSequence`; the same seed gives the same
        result.
    records : bool
        Also return the measured requests as a :class:`pandas.DataFrame`.
    progress : bool, optional
        Print a progress line to stderr; default: only when stderr is a
        terminal and the run is long.

    Returns
    -------
    xarray.Dataset, or (xarray.Dataset, pandas.DataFrame) with ``records=True``
        Per class (dims ``class``, ``quantile``): ``ttft``, ``tpot``, ``e2e``
        (mean seconds), ``ttft_q``, ``tpot_q``, ``e2e_q``, ``throughput``
        (requests/s), ``token_throughput`` (answer tokens/s), each with a
        ``<name>_halfwidth`` (95% t across replications); ``slo_attainment``
        (fraction of requests meeting every target of the class's SLO; 1
        without one) and ``goodput`` (throughput x attainment, requests/s);
        ``stage_time`` (dims ``class``, ``stage``: mean seconds per pipeline
        stage, a Generate stage whole, named as evaluate's labels begin). Per
        ``pool``: ``utilization``, ``batch_size`` (and half-widths). The
        mechanics are described in the module docstring.
    """
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"simulate_scenario: scenario got {type(scenario).__name__}; "
                              "valid: a hermes_qn.scenario.Scenario")
    if isinstance(requests, bool) or not isinstance(requests, (int, np.integer)) or requests < 2:
        raise ValidationError(f"simulate_scenario: requests got {requests!r}; valid: an "
                              "integer >= 2")
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) \
            or replications < 1:
        raise ValidationError(f"simulate_scenario: replications got {replications!r}; valid: "
                              "an integer >= 1")
    if not isinstance(warmup, (int, float)) or isinstance(warmup, bool) \
            or not 0 <= warmup < 1:
        raise ValidationError(f"simulate_scenario: warmup got {warmup!r}; valid: a fraction "
                              "in [0, 1)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValidationError(f"simulate_scenario: seed got {seed!r}; valid: an integer >= 0 "
                              "or None")
    requests = int(requests)
    replications = int(replications)
    used = _used_llm_pools(scenario)
    tables = {p.name: _tables(p) for p in scenario.pools
              if p.decoder is not None and p.name in used}
    kinds = _engine_kinds(scenario)
    root = np.random.SeedSequence(seed)
    streams = root.spawn(replications)
    show = progress if progress is not None else (
        sys.stderr.isatty() and requests * replications >= 200_000)
    results = []
    frames = []
    events = 0
    preemptions = 0
    started = _time.perf_counter()
    for rep_i, ss in enumerate(streams):
        cb = None
        if show:
            def cb(done, rep_i=rep_i):
                sys.stderr.write(f"\rhermes-qn sampler: replication {rep_i + 1}/{replications}, "
                                 f"{done}/{requests} requests")
                sys.stderr.flush()
        rep = _Replication(scenario, tables, kinds, ss, requests, warmup, cb)
        rep.run()
        events += rep.sim.events
        preemptions += sum(e.preemptions for es in rep.engines.values() for e in es)
        results.append(_summarise(rep, scenario))
        if records:
            frames.append(_records(rep, scenario, rep_i))
    if show:
        sys.stderr.write("\n")
        sys.stderr.flush()
    elapsed = _time.perf_counter() - started
    ds = _dataset(scenario, results, seed, requests, replications, warmup, kinds, events,
                  preemptions, elapsed)
    if records:
        import pandas as pd
        return ds, pd.concat(frames, ignore_index=True)
    return ds


def _records(rep: _Replication, scenario: Scenario, rep_i: int):
    import pandas as pd
    names = [c.name for c in scenario.classes]
    rows = rep.rows
    data: dict[str, Any] = {
        "replication": np.full(len(rows), rep_i, dtype=np.int64),
        "class": [names[r.k] for r in rows],
        "arrival": np.array([r.arrival for r in rows]),
        "first_token": np.array([r.first for r in rows]),
        "completion": np.array([r.end for r in rows]),
        "prompt_tokens": np.array([r.prompt for r in rows], dtype=np.int64),
        "output_tokens": np.array([r.answer for r in rows], dtype=np.int64),
    }
    data["ttft"] = data["first_token"] - data["arrival"]
    data["tpot"] = np.array([(r.main_end - r.first) / (r.main_tokens - 1)
                             if r.main_tokens >= 2 else np.nan for r in rows])
    data["e2e"] = data["completion"] - data["arrival"]
    nmax = max(len(c.pipeline) for c in scenario.classes)
    for i in range(nmax):
        kinds = {c.pipeline[i].kind for c in scenario.classes if i < len(c.pipeline)}
        label = f"stage{i}_" + ("_".join(sorted(kinds)))
        data[label] = np.array([r.st[i] if i < len(r.st) else np.nan for r in rows])
    return pd.DataFrame(data)


def _dataset(scenario, results, seed, requests, replications, warmup, kinds, events,
             preemptions, elapsed) -> xr.Dataset:
    classes = [c.name for c in scenario.classes]
    pools = [p.name for p in scenario.pools]
    R = len(results)
    tq = float(stats.t.ppf(0.975, R - 1)) if R > 1 else math.nan
    data = {}
    dims = {"ttft": ("class",), "tpot": ("class",), "e2e": ("class",),
            "throughput": ("class",), "token_throughput": ("class",),
            "ttft_q": ("class", "quantile"), "tpot_q": ("class", "quantile"),
            "e2e_q": ("class", "quantile"), "utilization": ("pool",), "batch_size": ("pool",),
            "stage_time": ("class", "stage"), "slo_attainment": ("class",),
            "goodput": ("class",)}
    for res in results:
        res["goodput"] = res["throughput"] * res["slo_attainment"]
    for name, d in dims.items():
        stack = np.stack([res[name] for res in results])
        with np.errstate(invalid="ignore"), _quiet():
            mean = np.nanmean(stack, axis=0) if np.any(np.isfinite(stack)) else \
                np.full(stack.shape[1:], np.nan)
            if R > 1:
                hw = tq * np.nanstd(stack, axis=0, ddof=1) / math.sqrt(R)
            else:
                hw = np.full(stack.shape[1:], np.nan)
        data[name] = (d, mean)
        data[name + "_halfwidth"] = (d, hw)
    saturated = any(res["saturated"] for res in results)
    ratio = min(res["completion_ratio"] for res in results)
    notes = (
        "LLM-level event sampler (hermes_qn.llm_sampler): iteration-level batching per "
        "replica, KV-cache admission and preemption, token counts drawn per request. "
        "Requests are routed to a pool's replicas uniformly at random. A prefill step of n "
        "prompts = StepModel.prefill(their mean length, batch=n) plus each prompt's attention "
        "over its cached context. RAG stages on an LLM pool run on its replicas as priority "
        "iterations; elsewhere on FCFS servers. stage_time is per pipeline stage (a Generate "
        "stage whole). slo_attainment is the fraction of requests meeting every target of "
        "the class; goodput = throughput x slo_attainment. Thinking tokens count in TPOT and E2E, "
        "not in token_throughput. batch_size is the time average (idle counts as 0) of the "
        "running decode batch per replica. Step times are interpolated from tables of "
        f"StepModel (about 0.1%). Engines: {kinds}. Events: {events}; preemptions: "
        f"{preemptions}; wall time {elapsed:.1f} s.")
    if saturated:
        notes += (f" SATURATED: only {ratio:.0%} as many requests completed in the measurement "
                  "window as arrived in it; the system does not keep up with the offered load, "
                  "and the latencies describe a growing backlog, not a steady state.")
    ds = xr.Dataset(data, coords={"class": classes, "quantile": list(QUANTILES), "pool": pools,
                                  "stage": _all_stage_labels(scenario)})
    ds.attrs.update(method="sampler", seed=-1 if seed is None else int(seed),
                    requests=int(requests), replications=int(replications),
                    warmup=float(warmup), preemption=PREEMPTION, notes=notes,
                    events=int(events), preemptions=int(preemptions),
                    saturated=int(saturated))
    return ds


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
