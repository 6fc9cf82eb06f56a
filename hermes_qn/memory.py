"""Does a model fit on a device, and how much KV cache is left.

:func:`memory_fit` splits a device's memory the way vLLM does: a fraction
``memory_utilization`` of it (vLLM ``gpu_memory_utilization``, default 0.9) is
the budget; from it go the weights held by the device (under tensor and
pipeline parallelism), an activation workspace and a reserve for the runtime;
what is left holds KV-cache blocks. The result says how many KV tokens fit and,
through :meth:`MemoryFit.max_batch`, how many sequences of a given context.

Estimates and their limits
--------------------------
- Weights per device: each pipeline stage holds a contiguous run of layers
  (split as vLLM does: ``layers // pp`` each, the remainder to the stages before
  the last), the first stage the embedding and the last the LM head; the
  device with the most bytes counts. Within a stage, the attention projections,
  FFN, experts, embedding and LM head are split ``tp`` ways; norms, the MoE
  router and MLA's ``q_a_proj``/``kv_a_proj`` are replicated, and so are KV
  heads when ``tp > kv_heads`` (one head per rank). Quantisation scales are not
  counted.
- Activation workspace (what vLLM's profiling forward pass peaks at): for
  ``max_batched_tokens`` tokens, the residual and hidden state, the q/k/v
  output and the FFN intermediates (gate/up and activation: ``3 * ffn / tp``, or
  ``(active + shared) * expert_ffn * 3 / tp`` for MoE layers), in bf16; plus
  fp32 logits and probabilities for ``max_seqs`` rows. This is an estimate
  (within about a factor of 2 of what vLLM reports; allocator fragmentation
  and CUDA graphs are in ``reserved_bytes``).
- KV cache per token on the device: the layers of the largest stage times
  ``2 * max(kv_heads / tp, 1) * head_dim`` values (MLA: the whole latent, not
  split across ranks), at ``kv_precision``. Tokens are allocated in blocks of
  ``block_size`` (vLLM: 16), so a sequence of ``c`` tokens takes
  ``ceil(c / block_size)`` blocks.

Examples
--------
>>> from hermes_qn import models, hardware
>>> from hermes_qn.memory import memory_fit
>>> fit = memory_fit(models.load("llama-3.1-8b"), hardware.load_device("H100-SXM"))
>>> round(fit.weight_bytes / 1e9, 2)                 # GB per device
16.06
>>> fit.max_kv_tokens > 300_000
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import models as _models
from .errors import ValidationError
from .models import Model, precision_bytes
from .roofline import _device_name, _parallel_iv, resolve, valid_tp

__all__ = [
    "MemoryFit",
    "kv_bytes_per_token_per_device",
    "memory_fit",
    "stage_layers",
    "weight_bytes_per_device",
    "workspace_bytes",
]

_GB = 1e9


def stage_layers(layers: int, pp: int) -> list[range]:
    """Layer indices held by each of ``pp`` pipeline stages (vLLM's split).

    ``layers // pp`` each; the ``layers % pp`` extra layers go one each to the
    stages just before the last one (the last stage also holds the LM head).
    """
    sizes = [layers // pp] * pp
    for i in range(layers % pp):
        sizes[-2 - i if pp > 1 else 0] += 1
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


def _layer_params_per_rank(model: Model, tp: int) -> list[float]:
    """Parameters each tensor-parallel rank holds for every layer."""
    m = model
    h, hd, vd, qh = m.hidden_size, m.head_dim, m.v_head_dim, m.query_heads
    norms = 2 * m._norm_params(h)
    if m.mla is None:
        kvh_r = max(m.kv_heads / tp, 1.0)
        attn = h * qh * hd / tp + 2 * h * kvh_r * hd + qh * vd * h / tp
        attn += (m.attention_params_per_layer() - (h * (qh + 2 * m.kv_heads) * hd + qh * vd * h)) / tp
    else:
        a = m.mla
        rep = h * a.latent_width + a.kv_lora_rank + (h * a.q_lora_rank + a.q_lora_rank
                                                     if a.q_lora_rank else 0)
        attn = rep + (m.attention_params_per_layer() - rep) / tp
    dense = attn + m.ffn_params(m.ffn_size) / tp + norms
    if m.moe is None:
        return [dense] * m.layers
    e = m.moe
    sparse = (attn + (e.experts + e.shared_experts) * m.ffn_params(e.expert_ffn_size) / tp
              + h * e.experts + (e.experts if e.router_bias else 0) + norms)
    return [dense] * e.dense_layers + [sparse] * (m.layers - e.dense_layers)


def _stage_params(model: Model, tp: int, pp: int) -> list[float]:
    per_layer = _layer_params_per_rank(model, tp)
    b = model.param_breakdown()
    h = model.hidden_size
    embed = model.vocab_size * h / tp + (model.learned_positions + model.token_types) * h
    head = b["head"] / tp if model.output_head == "lm" else b["head"]
    final_norm = model._norm_params(h)
    stages = [sum(per_layer[i] for i in r) for r in stage_layers(model.layers, pp)]
    stages[0] += embed
    stages[-1] += head + final_norm
    return stages


def weight_bytes_per_device(model: Model, *, tp: int = 1, pp: int = 1,
                            precision: str = "bf16") -> float:
    """Bytes of weights on the most loaded device under ``tp`` x ``pp`` parallelism.

    With ``tp = pp = 1`` this is :meth:`Model.weight_bytes`.
    """
    _parallel_iv(model, tp, pp, 1)
    return max(_stage_params(model, tp, pp)) * precision_bytes(precision, what="weight_precision")


def workspace_bytes(model: Model, *, tp: int = 1, max_batched_tokens: int = 8192,
                    max_seqs: int = 256) -> float:
    """Estimated activation workspace of one forward pass, bytes (see the module notes).

    ``max_batched_tokens * 2 B * (2*hidden + qkv_width/tp + 3*ffn_width/tp)``
    plus fp32 logits and probabilities for ``min(max_seqs, max_batched_tokens)``
    rows (decoders).
    """
    m = model
    kvh_r = max(m.kv_heads / tp, 1.0)
    if m.mla is None:
        qkv = m.query_heads * m.head_dim / tp + 2 * kvh_r * m.head_dim
    else:
        qkv = m.query_heads * (m.head_dim + m.v_head_dim) / tp * 2 + m.mla.latent_width
    ffn = m.ffn_size
    if m.moe is not None:
        ffn = max(ffn, (m.moe.active_experts + m.moe.shared_experts) * m.moe.expert_ffn_size)
    per_token = 2.0 * (2 * m.hidden_size + qkv + 3 * ffn / tp)
    out = max_batched_tokens * per_token
    if m.output_head == "lm":
        out += min(max_seqs, max_batched_tokens) * m.vocab_size / tp * 4.0 * 2
    return float(out)


def kv_bytes_per_token_per_device(model: Model, *, tp: int = 1, pp: int = 1,
                                  precision: str = "bf16") -> float:
    """KV-cache bytes one token takes on the most loaded device (0 for encoders)."""
    _parallel_iv(model, tp, pp, 1)
    layers = max(len(r) for r in stage_layers(model.layers, pp))
    b = precision_bytes(precision, what="kv_precision")
    if model.architecture == "encoder":
        return 0.0
    if model.mla is not None:
        per_layer = model.mla.latent_width
    else:
        per_layer = 2 * max(model.kv_heads / tp, 1.0) * model.head_dim
    return float(layers * per_layer * b)


@dataclass(frozen=True)
class MemoryFit:
    """How a model's deployment uses one device's memory (bytes unless stated).

    Attributes
    ----------
    model, device : str
        Names.
    tp, pp : int
        Parallel degrees.
    memory_utilization : float
        Fraction of the device memory given to the engine.
    device_bytes, budget_bytes : float
        Device memory, and ``memory_utilization * device_bytes``.
    weight_bytes, workspace_bytes, reserved_bytes : float
        Weights on the most loaded device, activation workspace, runtime reserve.
    kv_cache_bytes : float
        What is left for the KV cache.
    kv_bytes_per_token : float
        KV bytes one token takes on a device.
    block_size : int
        Tokens per KV block.
    kv_blocks : int
        Whole KV blocks that fit.
    max_kv_tokens : int
        ``kv_blocks * block_size``: tokens of KV cache the deployment holds
        (0 for encoders, which keep none).
    max_batched_tokens : int
        Tokens per forward pass the workspace was sized for.
    sliding_window : int or None
        The model's attention window (caps the KV a sequence keeps).
    """

    model: str
    device: str
    tp: int
    pp: int
    memory_utilization: float
    device_bytes: float
    budget_bytes: float
    weight_bytes: float
    workspace_bytes: float
    reserved_bytes: float
    kv_cache_bytes: float
    kv_bytes_per_token: float
    block_size: int
    kv_blocks: int
    max_kv_tokens: int
    max_batched_tokens: int
    sliding_window: int | None = None

    def max_batch(self, context: Any) -> Any:
        """Most sequences of ``context`` tokens each whose KV cache fits at once.

        Parameters
        ----------
        context : int or array_like
            Tokens per sequence (prompt plus generated so far), >= 1; capped at
            the sliding window when the model has one.

        Returns
        -------
        int or numpy.ndarray of int
            ``kv_blocks // ceil(context / block_size)``. For an encoder, which
            keeps no KV cache, ``max_batched_tokens // context``.
        """
        c = np.asarray(context, dtype=float)
        if c.size and (not np.all(np.isfinite(c)) or c.min() < 1):
            bad = c[~np.isfinite(c) | (c < 1)].flat[0]
            raise ValidationError(f"max_batch: context {bad!r}; valid: tokens >= 1")
        if self.kv_bytes_per_token == 0:
            out = np.floor(self.max_batched_tokens / c)
        else:
            if self.sliding_window:
                c = np.minimum(c, self.sliding_window)
            out = self.kv_blocks // np.ceil(c / self.block_size)
        out = out.astype(np.int64)
        return int(out) if out.ndim == 0 else out

    def summary(self) -> str:
        """One line in GB: budget, weights, workspace, reserve, KV cache and KV tokens."""
        return (f"{self.model} on {self.device} (tp={self.tp}, pp={self.pp}): budget "
                f"{self.budget_bytes / _GB:.1f} GB = weights {self.weight_bytes / _GB:.1f} + "
                f"workspace {self.workspace_bytes / _GB:.1f} + reserved "
                f"{self.reserved_bytes / _GB:.1f} + KV cache {self.kv_cache_bytes / _GB:.1f} GB "
                f"({self.max_kv_tokens:,} tokens)")


def _number(name: str, value: Any, *, low: float, high: float = math.inf,
            low_inclusive: bool = True) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not ok or not math.isfinite(v) or v > high or (v < low if low_inclusive else v <= low):
        op = ">=" if low_inclusive else ">"
        rng = f"{op} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ValidationError(f"{name}: got {value!r}; valid: a finite number {rng}")
    return v


def _int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValidationError(f"{name}: got {value!r}; valid: an integer >= {low}")
    return int(value)


def memory_fit(model: Model | str, device: Any, *, tp: int = 1, pp: int = 1,
               weight_precision: str = "bf16", kv_precision: str = "bf16",
               memory_utilization: float = 0.9, max_batched_tokens: int = 8192,
               max_seqs: int = 256, reserved_bytes: float = 2**30,
               block_size: int = 16) -> MemoryFit:
    """Split one device's memory between weights, workspace and KV cache.

    Parameters
    ----------
    model : Model or str
        The model (or its catalog name).
    device : DeviceLike or str
        Needs ``memory_bytes`` (bytes) and ``name``.
    tp, pp : int
        Tensor- and pipeline-parallel degrees.
    weight_precision, kv_precision : str
        Storage precisions (``"bf16"``, ``"fp8"``, ``"int4"``, ...).
    memory_utilization : float
        Fraction of device memory the engine may use, in (0, 1] (vLLM
        ``gpu_memory_utilization``, default 0.9).
    max_batched_tokens : int
        Tokens per forward pass the workspace must hold (vLLM
        ``max_num_batched_tokens``).
    max_seqs : int
        Sequences per step (logits rows in the workspace; vLLM ``max_num_seqs``).
    reserved_bytes : float
        Runtime reserve: CUDA context, NCCL buffers, CUDA graphs, allocator
        slack, bytes (default 1 GiB, a rough typical figure).
    block_size : int
        Tokens per KV-cache block (vLLM default 16; 1 for no paging).

    Returns
    -------
    MemoryFit

    Raises
    ------
    ValidationError
        The weights, workspace and reserve leave no room for KV cache (for a
        decoder; no room at all for an encoder). The message gives the shortfall
        and the smallest tensor-parallel degree that would fit.
    """
    model, device = resolve(model, device)
    name = _device_name(device)
    tp, pp, _ = _parallel_iv(model, tp, pp, 1)
    util = _number("memory_utilization", memory_utilization, low=0.0, high=1.0,
                   low_inclusive=False)
    mbt = _int("max_batched_tokens", max_batched_tokens)
    max_seqs = _int("max_seqs", max_seqs)
    reserved = _number("reserved_bytes", reserved_bytes, low=0.0)
    block = _int("block_size", block_size)
    dev_bytes = _number(f"device {name} memory_bytes", getattr(device, "memory_bytes", None),
                        low=0.0, low_inclusive=False)
    budget = util * dev_bytes

    def parts(t: int, p: int) -> tuple[float, float, float]:
        w = weight_bytes_per_device(model, tp=t, pp=p, precision=weight_precision)
        a = workspace_bytes(model, tp=t, max_batched_tokens=mbt, max_seqs=max_seqs)
        return w, a, budget - w - a - reserved

    weights, work, kv_bytes = parts(tp, pp)
    encoder = model.architecture == "encoder"
    if kv_bytes < 0 or (kv_bytes == 0 and not encoder):
        need = weights + work + reserved
        hint = []
        for t in range(tp + 1, 2 * model.query_heads + 1):
            if valid_tp(model, t) and parts(t, pp)[2] > 0:
                hint.append(f"tp={t} (weights {parts(t, pp)[0] / _GB:.1f} GB per device)")
                break
        if not hint:
            for p in range(pp + 1, model.layers + 1):
                if parts(tp, p)[2] > 0:
                    hint.append(f"pp={p}")
                    break
        current = precision_bytes(weight_precision, what="weight_precision")
        smaller = [k for k in ("fp8", "int4") if _models.PRECISION_BYTES[k] < current]
        if smaller:
            hint.append(f"a smaller weight_precision ({', '.join(smaller)})")
        hint.append("a device with more memory or a higher memory_utilization")
        raise ValidationError(
            f"{model.name} does not fit on {name} with tp={tp}, pp={pp}, {weight_precision} "
            f"weights: it needs {need / _GB:.1f} GB per device (weights {weights / _GB:.1f} + "
            f"workspace {work / _GB:.1f} + reserved {reserved / _GB:.1f}) plus room for KV cache, "
            f"but the budget is {util:g} x {dev_bytes / _GB:.1f} GB = {budget / _GB:.1f} GB: short "
            f"by {max(need - budget, 0.0) / _GB:.1f} GB; valid: {', or '.join(hint)}")
    per_token = kv_bytes_per_token_per_device(model, tp=tp, pp=pp, precision=kv_precision)
    if per_token > 0:
        blocks = int(kv_bytes // (per_token * block))
    else:
        blocks = 0
    return MemoryFit(model=model.name, device=name, tp=tp, pp=pp, memory_utilization=util,
                     device_bytes=dev_bytes, budget_bytes=budget, weight_bytes=weights,
                     workspace_bytes=work, reserved_bytes=reserved, kv_cache_bytes=kv_bytes,
                     kv_bytes_per_token=per_token, block_size=block, kv_blocks=blocks,
                     max_kv_tokens=blocks * block, max_batched_tokens=mbt,
                     sliding_window=model.sliding_window)
