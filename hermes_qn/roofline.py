"""Roofline step times of a transformer on one device type, per operator.

Three kinds of step, all through one kernel:

- :func:`prefill` -- a chunk of ``tokens`` new tokens for each of ``batch``
  sequences that already hold ``context`` tokens in the KV cache (``context=0``:
  a whole prompt; encoders: one forward pass over ``tokens`` tokens);
- :func:`decode_step` -- one new token for each of ``batch`` sequences with a
  mean ``context`` tokens cached (or exact per-sequence ``contexts``);
- :func:`mixed_step` -- a chunked-prefill step: a prefill chunk and decode
  tokens in one forward pass (Sarathi / vLLM chunked prefill).

Each operator (QKV projection, attention, output projection, FFN, MoE,
elementwise, LM head, embedding) gets FLOPs and bytes moved, and its time is
``max(FLOPs / (peak * matmul_efficiency), bytes / (bandwidth * memory_efficiency))``
on one tensor-parallel rank. Communication (tensor-parallel all-reduce,
pipeline-parallel sends, expert-parallel all-to-all) and a fixed per-step
overhead are added. Operators do not overlap (times add up).

Inputs broadcast like numpy (arrays of token counts, batch sizes, contexts give
arrays of times), or like xarray when any input is a :class:`xarray.DataArray`.
The result is a :class:`StepTime`: ``total`` (seconds) and, on demand,
``breakdown`` -- an :class:`xarray.Dataset` with dimension ``operator`` (and the
inputs' dimensions) and variables ``flops``, ``bytes``, ``compute_time``,
``memory_time``, ``time`` and ``bound``.

Conventions and approximations
------------------------------
- ``flops`` and ``bytes`` are those of **one tensor-parallel rank, summed over
  the pipeline stages**: the critical path of one step. ``total`` is the latency
  of one step through all stages; ``stage_interval`` is the time between steps
  leaving a full pipeline.
- Linear layers: ``2 * m * n * k`` FLOPs; bytes = weights (read once per step,
  shared by the whole batch) + activations in and out. Column/row-parallel
  splits divide weights and FLOPs by ``tp``; KV heads split by ``tp`` down to
  one head per rank (replicated beyond, as in vLLM).
- Attention counts the two matmuls (``Q K^T`` and ``P V``) over the attended
  (query, key) pairs: a chunk of ``T`` tokens after ``C`` cached ones attends
  ``T*C + T*(T+1)/2`` pairs (causal), capped by a sliding window; an encoder
  attends ``T*T``. Softmax FLOPs are left out. KV bytes: each sequence's cache
  is read once per layer (FlashAttention keeps the query block on chip) and the
  new tokens' K/V written once.
- MLA (DeepSeek-V3): the KV cache is the latent (``kv_lora_rank +
  qk_rope_head_dim`` values per token and layer), read in full by every TP rank.
  Decode uses the absorbed form: the query is mapped into the latent space
  (``2*heads*qk_nope_head_dim*kv_lora_rank`` FLOPs per token), attention is
  multi-query over the latent (``2*heads*(kv_lora_rank + qk_rope_head_dim)``
  FLOPs per pair for scores, ``2*heads*kv_lora_rank`` for values), and the
  output is mapped back (``2*heads*kv_lora_rank*v_head_dim`` per token).
  Prefill uses the expanded form: each context token's latent is expanded by
  ``kv_b_proj`` (``2*kv_lora_rank*heads*(qk_nope_head_dim + v_head_dim)`` FLOPs
  per context token) into keys (width ``head_dim``) and values (``v_head_dim``)
  that are written and read once, then ordinary attention. ``q_a_proj`` and
  ``kv_a_proj`` are replicated on every TP rank (as in vLLM).
- MoE: router (replicated) plus ``active_experts`` routed and all shared
  experts per token; FLOPs assume balanced experts. Weight bytes count only the
  experts the step touches: with ``N`` tokens routed uniformly at random to
  ``k`` of ``E`` experts, the expected number of distinct experts hit is
  ``E * (1 - (1 - k/E)**N)`` (a skewed router touches fewer).
- Elementwise: fused residual-add + norm twice per layer (read and write the
  residual and the hidden state), rotary embedding, FFN activation; memory-bound.
- LM head: one row per sequence (prefill: only the last token; decode: every
  token), logits written in fp32, gathered across TP ranks.
- Embedding: a row gather from the vocab-parallel table.
- Tensor parallel: two ring all-reduces of the hidden states per layer plus one
  after the embedding; a ring all-reduce of ``M`` bytes sends
  ``2*(tp-1)/tp * M`` bytes per rank and costs ``2*(tp-1)`` link latencies, over
  the device's scale-up link (``scale_up_bandwidth``, per direction). With
  ``ep > 1`` the MoE layers' all-reduce is replaced by the expert-parallel
  all-to-all (dispatch and combine; tokens split evenly over the ``ep`` ranks,
  each token's hidden state sent to its ``k`` experts, ``(ep-1)/ep`` of it off-rank,
  ``ep-1`` latencies each).
- Pipeline parallel: ``pp - 1`` point-to-point sends of the hidden states per
  step. Pipeline bubble: ``m`` micro-batches through ``pp`` stages take
  ``(m + pp - 1) * stage_interval``; with one micro-batch the step takes
  ``total`` and each stage idles ``(pp-1)/pp`` of the time.
- Efficiencies and the per-step overhead are explicit parameters (defaults:
  the device's ``matmul_efficiency`` and ``memory_efficiency``, overhead 0) so
  that they can be fitted to traces.

Examples
--------
>>> from hermes_qn import models, hardware, roofline
>>> m, d = models.load("llama-2-7b"), hardware.load_device("H100-SXM")
>>> step = roofline.decode_step(m, d, batch=1, context=0)   # memory-bound: reads the weights
>>> read = m.weight_bytes("bf16") - 2 * m.param_breakdown()["embedding"]  # table is gathered, not read
>>> round(step.total / (read / (d.memory_bandwidth * d.memory_efficiency)), 2)
1.0
>>> step.breakdown["bound"].sel(operator="ffn").item()
'memory'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np
import xarray as xr

from . import models as _models
from .errors import ValidationError
from .models import Model, precision_bytes

__all__ = [
    "OPERATORS",
    "DeviceLike",
    "StepTime",
    "decode_step",
    "distinct_experts",
    "mixed_step",
    "prefill",
    "valid_tp",
]

#: Operators of the breakdown, in order.
OPERATORS = ("embedding", "qkv_proj", "attention", "o_proj", "ffn", "moe", "elementwise",
             "lm_head", "tp_comm", "pp_comm", "ep_comm", "overhead")
_OPERATOR_LONG_NAMES = {
    "embedding": "token embedding gather",
    "qkv_proj": "query/key/value projections (MLA: q_a, q_b, kv_a)",
    "attention": "attention scores and values (MLA: plus latent expansion or absorption)",
    "o_proj": "attention output projection",
    "ffn": "dense feed-forward layers",
    "moe": "mixture-of-experts layers: router, routed and shared experts",
    "elementwise": "norms, residual adds, rotary embedding, activation",
    "lm_head": "output head (LM head: one row per sequence; encoders: pooler/classifier)",
    "tp_comm": "tensor-parallel all-reduces and logits gather",
    "pp_comm": "pipeline-parallel activation sends",
    "ep_comm": "expert-parallel all-to-all (dispatch and combine)",
    "overhead": "fixed per-step overhead (scheduling, launch, sampling)",
}
_COMM = ("tp_comm", "pp_comm", "ep_comm")

#: Compute precision used with each weight precision unless told otherwise:
#: W8A8 for fp8/int8, W4A16 for int4, FP4 tensor cores for fp4.
_DEFAULT_COMPUTE = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8",
                    "int8": "int8", "fp4": "fp4", "int4": "bf16"}
_PEAK_ALIASES = {"bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16")}
_LOGIT_BYTES = 4.0  # logits kept in fp32 for sampling


@runtime_checkable
class DeviceLike(Protocol):
    """What the roofline reads from a device (:class:`hermes_qn.hardware.Device` has it all).

    ``peak_flops`` maps a precision (``"bf16"``, ``"fp8"``, ...) to dense FLOP/s;
    ``memory_bandwidth`` and ``scale_up_bandwidth`` are bytes/s (the link per
    direction, None if absent); ``scale_up_latency`` seconds (None if unknown);
    ``memory_bytes`` bytes; efficiencies are fractions in (0, 1].
    """

    peak_flops: Mapping[str, float]
    memory_bytes: float
    memory_bandwidth: float
    scale_up_bandwidth: float | None
    scale_up_latency: float | None
    matmul_efficiency: float
    memory_efficiency: float


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Options:
    model: Model
    device_name: str
    tp: int
    pp: int
    ep: int
    weight_precision: str
    kv_precision: str
    compute_precision: str
    weight_bytes: float
    kv_bytes: float
    act_bytes: float
    compute_peak: float
    attention_peak: float
    matmul_efficiency: float
    memory_efficiency: float
    memory_bandwidth: float
    link_bandwidth: float
    link_latency: float
    pp_bandwidth: float
    pp_latency: float
    overhead: float

    def attrs(self) -> dict[str, Any]:
        return {
            "model": self.model.name, "device": self.device_name,
            "tp": self.tp, "pp": self.pp, "ep": self.ep,
            "weight_precision": self.weight_precision, "kv_precision": self.kv_precision,
            "compute_precision": self.compute_precision,
            "matmul_efficiency": self.matmul_efficiency,
            "memory_efficiency": self.memory_efficiency,
            "overhead_s": self.overhead,
            "link_bandwidth_Bps": self.link_bandwidth, "link_latency_s": self.link_latency,
            "pp_bandwidth_Bps": self.pp_bandwidth, "pp_latency_s": self.pp_latency,
        }


def _number(name: str, value: Any, *, low: float = 0.0, high: float = np.inf,
            low_inclusive: bool = True) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else np.nan
    if not ok or not np.isfinite(v) or v > high or (v < low if low_inclusive else v <= low):
        bound = ">=" if low_inclusive else ">"
        raise ValidationError(f"{name}: got {value!r}; valid: a finite number {bound} {low:g}"
                              + (f" and <= {high:g}" if np.isfinite(high) else ""))
    return v


def _degree(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{name}: got {value!r}; valid: an integer >= 1")
    return int(value)


def resolve(model: Model | str, device: Any) -> tuple[Model, Any]:
    """Catalog names to objects: ``model`` by :func:`hermes_qn.models.load`, ``device`` by
    :func:`hermes_qn.hardware.load_device`; objects pass through (a model is type-checked)."""
    model = _models.as_model(model)
    if isinstance(device, str):
        from . import hardware  # imported here: hardware is optional for duck-typed devices
        device = hardware.load_device(device)
    return model, device


def _device_name(device: Any) -> str:
    return str(getattr(device, "name", type(device).__name__))


def _peak(device: Any, precision: str, what: str) -> float:
    flops = getattr(device, "peak_flops", None)
    if not isinstance(flops, Mapping):
        raise ValidationError(f"device {_device_name(device)}: peak_flops is {flops!r}; valid: a "
                              "mapping of precision to FLOP/s")
    for key in _PEAK_ALIASES.get(precision, (precision,)):
        if key in flops:
            return float(flops[key])
    raise ValidationError(f"{what}: device {_device_name(device)} has no peak_flops for "
                          f"{precision!r}; valid: one of {', '.join(flops)} (pass "
                          "compute_precision=...)")


def valid_tp(model: Model, tp: int) -> bool:
    """Whether ``tp`` splits the model's heads: ``tp | query_heads`` and ``tp | kv_heads`` or ``kv_heads | tp``."""
    return (model.query_heads % tp == 0
            and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0))


def _parallel_iv(model: Model, tp: Any, pp: Any, ep: Any) -> tuple[int, int, int]:
    tp, pp, ep = _degree("tp", tp), _degree("pp", pp), _degree("ep", ep)
    if not valid_tp(model, tp):
        ok = [t for t in range(1, model.query_heads + 1) if valid_tp(model, t)]
        raise ValidationError(f"tp: got {tp} for {model.name} ({model.query_heads} query heads, "
                              f"{model.kv_heads} KV heads); valid: one of {ok}")
    if pp > model.layers:
        raise ValidationError(f"pp: got {pp} for {model.name} ({model.layers} layers); valid: "
                              f"1 to {model.layers}")
    if ep > 1:
        if model.moe is None:
            raise ValidationError(f"ep: got {ep} for {model.name}, which has no experts; valid: 1")
        if ep != tp or model.moe.experts % ep:
            raise ValidationError(f"ep: got {ep} with tp={tp} for {model.name} "
                                  f"({model.moe.experts} experts); valid: 1 or ep == tp dividing "
                                  "the number of experts (the expert-parallel group is the "
                                  "tensor-parallel group)")
    return tp, pp, ep


def _options_iv(model: Any, device: Any, *, tp: Any = 1, pp: Any = 1, ep: Any = 1,
                weight_precision: str = "bf16", kv_precision: str = "bf16",
                compute_precision: str | None = None,
                matmul_efficiency: float | None = None, memory_efficiency: float | None = None,
                overhead: float = 0.0,
                link_bandwidth: float | None = None, link_latency: float | None = None,
                pp_bandwidth: float | None = None, pp_latency: float | None = None) -> _Options:
    model, device = resolve(model, device)
    for attr in ("peak_flops", "memory_bandwidth", "memory_bytes"):
        if not hasattr(device, attr):
            raise ValidationError(f"device: {type(device).__name__} has no {attr!r}; valid: a "
                                  "hermes_qn.hardware.Device (or an object with peak_flops, "
                                  "memory_bytes, memory_bandwidth, scale_up_bandwidth, "
                                  "scale_up_latency, matmul_efficiency, memory_efficiency)")
    name = _device_name(device)
    tp, pp, ep = _parallel_iv(model, tp, pp, ep)
    wbytes = precision_bytes(weight_precision, what="weight_precision")
    kbytes = precision_bytes(kv_precision, what="kv_precision")
    if compute_precision is None:
        compute_precision = _DEFAULT_COMPUTE[weight_precision.lower()]
    if not isinstance(compute_precision, str):
        raise ValidationError(f"compute_precision: got {compute_precision!r}; valid: a precision "
                              "name such as 'bf16' or 'fp8'")
    compute_peak = _peak(device, compute_precision, "compute_precision")
    attn_precision = "fp32" if compute_precision == "fp32" else (
        "fp16" if weight_precision.lower() == "fp16" else "bf16")
    attention_peak = _peak(device, attn_precision, "attention precision")
    act_bytes = 4.0 if compute_precision == "fp32" else 2.0
    me = device.matmul_efficiency if matmul_efficiency is None else matmul_efficiency
    be = device.memory_efficiency if memory_efficiency is None else memory_efficiency
    me = _number("matmul_efficiency", me, low=0.0, high=1.0, low_inclusive=False)
    be = _number("memory_efficiency", be, low=0.0, high=1.0, low_inclusive=False)
    bw = _number(f"device {name} memory_bandwidth", device.memory_bandwidth, low=0.0,
                 low_inclusive=False)
    overhead = _number("overhead", overhead)
    lbw = link_bandwidth if link_bandwidth is not None else getattr(device, "scale_up_bandwidth", None)
    llat = link_latency if link_latency is not None else getattr(device, "scale_up_latency", None)
    if lbw is None:
        if tp > 1 or ep > 1:
            raise ValidationError(f"link_bandwidth: device {name} has no scale_up_bandwidth and "
                                  f"tp={tp}, ep={ep} need one; valid: pass link_bandwidth=<bytes/s "
                                  "per direction>, or tp=1")
        lbw = np.inf
    else:
        lbw = _number("link_bandwidth", lbw, low=0.0, low_inclusive=False)
    llat = _number("link_latency", 0.0 if llat is None else llat)
    pbw = pp_bandwidth if pp_bandwidth is not None else lbw
    if pp > 1 and not np.isfinite(pbw):
        raise ValidationError(f"pp_bandwidth: device {name} has no scale_up_bandwidth and pp={pp} "
                              "needs one; valid: pass pp_bandwidth=<bytes/s per direction>")
    pbw = _number("pp_bandwidth", pbw, low=0.0, low_inclusive=False) if np.isfinite(pbw) else pbw
    plat = _number("pp_latency", llat if pp_latency is None else pp_latency)
    return _Options(model, name, tp, pp, ep, weight_precision.lower(), kv_precision.lower(),
                    compute_precision, wbytes, kbytes, act_bytes, compute_peak, attention_peak,
                    me, be, bw, lbw, llat, pbw, plat, overhead)


# --------------------------------------------------------------------------- broadcasting


def _as_arrays(named: dict[str, Any]) -> tuple[dict[str, np.ndarray], tuple[str, ...], dict, bool]:
    """Broadcast the inputs; return float arrays, dim names, coords, and whether xarray was used."""
    if any(isinstance(v, xr.DataArray) for v in named.values()):
        das = {}
        for k, v in named.items():
            if isinstance(v, xr.DataArray):
                das[k] = v
                continue
            a = np.asarray(v, dtype=float)
            if a.ndim > 1:
                raise ValidationError(f"{k}: a {a.ndim}-D numpy array mixed with DataArrays; "
                                      "valid: a scalar, a 1-D array (gets dimension "
                                      f"{k!r}) or a DataArray")
            das[k] = xr.DataArray(a, dims=[k] if a.ndim else [])
        out = xr.broadcast(*das.values())
        dims = out[0].dims
        coords = {}
        for x in out:
            coords.update({c: x.coords[c] for c in x.coords})
        return {k: np.asarray(x.values, dtype=float) for k, x in zip(das, out)}, dims, coords, True
    arrays = {}
    for k, v in named.items():
        try:
            arrays[k] = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError(f"{k}: got {v!r}; valid: a number or an array of numbers") from None
    try:
        b = np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = {k: a.shape for k, a in arrays.items()}
        raise ValidationError(f"inputs do not broadcast: shapes {shapes}; valid: numpy-broadcastable "
                              "shapes (or DataArrays with named dimensions)") from None
    shape = b[0].shape if b else ()
    dims = []
    for axis in range(len(shape)):
        name = f"dim_{axis}"
        for k, a in arrays.items():
            off = axis - (len(shape) - a.ndim)
            if off >= 0 and a.shape[off] > 1:
                name = k
                break
        while name in dims:
            name += "_"
        dims.append(name)
    return dict(zip(arrays, b)), tuple(dims), {}, False


def _check(name: str, a: np.ndarray, *, low: float, integer_hint: str = "") -> None:
    bad = ~np.isfinite(a) | (a < low)
    if bad.any():
        raise ValidationError(f"{name}: got {float(a[bad].flat[0])!r}; valid: finite numbers >= {low:g}"
                              f"{integer_hint}")


# --------------------------------------------------------------------------- kernel


def distinct_experts(experts: int, active: int, tokens: Any) -> np.ndarray:
    """Expected distinct experts hit when ``tokens`` tokens each pick ``active`` of ``experts``.

    Uniform routing without replacement per token, independent tokens:
    ``experts * (1 - (1 - active/experts) ** tokens)``. 0 tokens hit 0 experts,
    1 token hits ``active``, many tokens approach ``experts``.
    """
    t = np.asarray(tokens, dtype=float)
    return experts * -np.expm1(t * np.log1p(-active / experts)) if active < experts \
        else np.where(t > 0, float(experts), 0.0)


def _attended(T: np.ndarray, C: np.ndarray, window: int | None) -> np.ndarray:
    """Causal (query, key) pairs of a chunk of T tokens after C cached: sum_{i=1..T} min(C+i, w)."""
    if window is None:
        return T * C + T * (T + 1) / 2
    lo, hi = C + 1, C + T
    a = np.clip(float(window), lo - 1, hi)  # last position attending its whole prefix
    return (a * (a + 1) - (lo - 1) * lo) / 2 + (hi - a) * window


def _kernel(o: _Options, Np, Nd, S, pairs_p, pairs_d, kvr_p, kvr_d):
    """FLOPs, bytes and times per operator for one TP rank, summed over pipeline stages."""
    m = o.model
    tp = o.tp
    wb, kb, ab = o.weight_bytes, o.kv_bytes, o.act_bytes
    h, hd, vd, qh = m.hidden_size, m.head_dim, m.v_head_dim, m.query_heads
    L, Ld, Lm = m.layers, m.dense_layer_count, m.moe_layer_count
    N = Np + Nd
    step = (N > 0).astype(float)  # weights are read only if the step has work
    qh_r = qh / tp
    kvh_r = max(m.kv_heads / tp, 1.0)
    zero = np.zeros_like(N)
    F: dict[str, np.ndarray] = {}
    B: dict[str, np.ndarray] = {}
    encoder = m.architecture == "encoder"

    # embedding: gather N rows from the vocab-parallel table, write the hidden states
    F["embedding"] = zero
    B["embedding"] = N * h * (wb / tp + ab)

    # QKV projection
    if m.mla is None:
        q_r, kv_r = qh_r * hd, 2 * kvh_r * hd
        w = h * (q_r + kv_r)
        F["qkv_proj"] = L * 2 * N * w
        B["qkv_proj"] = L * (w * wb * step + N * (h + q_r + kv_r) * ab)
    else:
        a = m.mla
        rep = h * a.latent_width + (h * a.q_lora_rank if a.q_lora_rank else 0)
        split = (a.q_lora_rank if a.q_lora_rank else h) * qh_r * hd
        F["qkv_proj"] = L * 2 * N * (rep + split)
        B["qkv_proj"] = L * ((rep + split) * wb * step
                             + N * (h + a.q_lora_rank + qh_r * hd + a.latent_width) * ab)

    # attention
    if m.mla is None:
        kv_tok = 2 * kvh_r * hd * (ab if encoder else kb)  # per token and layer on this rank
        F["attention"] = L * 2 * (pairs_p + pairs_d) * qh_r * (hd + vd)
        B["attention"] = L * ((kvr_p + kvr_d) * kv_tok + N * kv_tok
                              + N * qh_r * (hd + vd) * ab)
    else:
        a = m.mla
        lat = a.latent_width
        expand = a.kv_lora_rank * qh_r * (a.qk_nope_head_dim + vd)  # kv_b_proj on this rank
        f_pre = 2 * kvr_p * expand + 2 * pairs_p * qh_r * (hd + vd)
        f_dec = (2 * Nd * qh_r * a.qk_nope_head_dim * a.kv_lora_rank
                 + 2 * pairs_d * qh_r * (lat + a.kv_lora_rank)
                 + 2 * Nd * qh_r * a.kv_lora_rank * vd)
        F["attention"] = L * (f_pre + f_dec)
        B["attention"] = L * ((kvr_p + kvr_d) * lat * kb + N * lat * kb       # latent read/write
                              + 2 * kvr_p * qh_r * (hd + vd) * ab             # expanded K, V
                              + expand * wb * step                            # kv_b weights
                              + N * qh_r * (hd + vd) * ab)                    # q in, out

    # output projection
    w = qh_r * vd * h
    F["o_proj"] = L * 2 * N * w
    B["o_proj"] = L * (w * wb * step + N * (qh_r * vd + h) * ab)

    # dense FFN
    nm = m.ffn_matrices
    f_r = m.ffn_size / tp
    F["ffn"] = Ld * 2 * N * nm * h * f_r
    B["ffn"] = Ld * (nm * h * f_r * wb * step + N * (2 * h + nm * f_r) * ab)

    # MoE
    if m.moe is not None and Lm:
        e = m.moe
        fe = e.expert_ffn_size
        routed = e.active_experts + e.shared_experts
        hit = distinct_experts(e.experts, e.active_experts, N)
        expert_w = nm * h * fe / tp
        router_w = h * e.experts
        F["moe"] = Lm * (2 * N * router_w + 2 * N * routed * nm * h * fe / tp)
        if o.ep > 1:   # whole experts per rank: each rank sees 1/ep of the (token, expert) pairs
            act = N * routed / tp * (2 * h + nm * fe)
        else:          # every expert split tp ways: every rank sees every pair
            act = N * routed * (2 * h + nm * fe / tp)
        B["moe"] = Lm * (router_w * wb * step + (hit + e.shared_experts * step) * expert_w * wb
                         + act * ab)
        f_act = Ld * f_r + Lm * routed * fe / tp  # activation widths summed over layers
    else:
        F["moe"] = zero
        B["moe"] = zero
        f_act = Ld * f_r

    # elementwise: two fused residual-add + norms per layer plus one final/embedding norm,
    # rotary embedding on q and k, FFN activation (gated: reads 2f, writes f)
    rope_w = (qh_r * hd + kvh_r * hd) if m.position_embedding == "rope" else 0.0
    act_rw = 3 if m.gated_ffn else 2
    F["elementwise"] = N * ((2 * L + 1) * 5 * h + L * 3 * rope_w + 4 * f_act)
    B["elementwise"] = N * ab * ((2 * L + 1) * 4 * h + L * 2 * rope_w + act_rw * f_act)

    # output head, one row per sequence
    if m.output_head == "lm":
        V_r = m.vocab_size / tp
        F["lm_head"] = 2 * S * h * V_r
        B["lm_head"] = h * V_r * wb * (S > 0) + S * h * ab + S * V_r * _LOGIT_BYTES
    elif m.output_head in ("pooler", "classifier"):
        w = h * h + (h * m.num_labels if m.output_head == "classifier" else 0)
        F["lm_head"] = 2 * S * w
        B["lm_head"] = w * wb * (S > 0) + S * 2 * h * ab
    else:
        F["lm_head"] = zero
        B["lm_head"] = zero

    compute_time = {}
    memory_time = {}
    time = {}
    peak_mm = o.compute_peak * o.matmul_efficiency
    bw = o.memory_bandwidth * o.memory_efficiency
    for op in F:
        peak = o.attention_peak * o.matmul_efficiency if op == "attention" else peak_mm
        compute_time[op] = F[op] / peak
        memory_time[op] = B[op] / bw
        time[op] = np.maximum(compute_time[op], memory_time[op])

    # communication
    msg = N * h * ab
    if tp > 1:
        n_ar = 2 * L + 1 - (Lm if o.ep > 1 else 0)
        ring = 2 * (tp - 1) / tp
        sent = n_ar * ring * msg
        t = sent / o.link_bandwidth + n_ar * 2 * (tp - 1) * o.link_latency * step
        if m.output_head == "lm":
            gather = (tp - 1) / tp * S * m.vocab_size * _LOGIT_BYTES
            sent = sent + gather
            t = t + gather / o.link_bandwidth + (tp - 1) * o.link_latency * (S > 0)
        B["tp_comm"], time["tp_comm"] = sent, t
    else:
        B["tp_comm"], time["tp_comm"] = zero, zero
    if o.pp > 1:
        sent = (o.pp - 1) * msg
        B["pp_comm"] = sent
        time["pp_comm"] = sent / o.pp_bandwidth + (o.pp - 1) * o.pp_latency * step
    else:
        B["pp_comm"], time["pp_comm"] = zero, zero
    if o.ep > 1:
        e = m.moe
        sent = Lm * 2 * (N / o.ep) * e.active_experts * h * ab * (o.ep - 1) / o.ep
        B["ep_comm"] = sent
        time["ep_comm"] = sent / o.link_bandwidth + Lm * 2 * (o.ep - 1) * o.link_latency * step
    else:
        B["ep_comm"], time["ep_comm"] = zero, zero
    for op in _COMM:
        F[op] = zero
        compute_time[op] = zero
        memory_time[op] = zero
    F["overhead"] = B["overhead"] = compute_time["overhead"] = memory_time["overhead"] = zero
    time["overhead"] = zero + o.overhead
    return F, B, compute_time, memory_time, time


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class StepTime:
    """Time of one forward step, and what it is made of.

    Attributes
    ----------
    total : float, numpy.ndarray or xarray.DataArray
        Seconds for one step through all pipeline stages (shape of the
        broadcast inputs; a DataArray when an input was one).
    stage_interval : same type as ``total``
        Seconds between steps leaving a full pipeline: ``total`` with the
        per-stage work divided by ``pp`` (equal to ``total`` when ``pp == 1``).
    kind : str
        ``"prefill"``, ``"decode"`` or ``"mixed"``.
    breakdown : xarray.Dataset
        Per operator (dimension ``operator``, see :data:`OPERATORS`):
        ``flops`` (FLOP), ``bytes`` (B; for communication, bytes each rank sends),
        ``compute_time``, ``memory_time``, ``time`` (s) and ``bound``
        (``"compute"``, ``"memory"``, ``"communication"``, ``"overhead"`` or
        ``"none"`` where the operator does nothing), plus ``total`` (s);
        ``time.sum("operator") == total``. Attributes record the model, device,
        parallelism, precisions, efficiencies and overhead.
    """

    total: Any
    stage_interval: Any
    kind: str
    _parts: tuple = field(repr=False)
    _dims: tuple = field(repr=False)
    _coords: dict = field(repr=False)
    _attrs: dict = field(repr=False)

    @cached_property
    def breakdown(self) -> xr.Dataset:
        F, B, ct, mt, t = self._parts
        shape = np.shape(t["overhead"])
        stack = lambda d: np.stack([np.broadcast_to(d[op], shape) for op in OPERATORS])  # noqa: E731
        flops, nbytes, ctime, mtime, time = (stack(d) for d in (F, B, ct, mt, t))
        bound = np.where(ctime >= mtime, "compute", "memory").astype(object)
        for i, op in enumerate(OPERATORS):
            if op in _COMM:
                bound[i] = "communication"
            elif op == "overhead":
                bound[i] = "overhead"
        bound = np.where(time > 0, bound, "none").astype(str)
        dims = ("operator",) + tuple(self._dims)
        ds = xr.Dataset(
            {
                "flops": (dims, flops, {"units": "FLOP", "long_name": "floating-point operations "
                                        "per tensor-parallel rank"}),
                "bytes": (dims, nbytes, {"units": "B", "long_name": "bytes moved per "
                                         "tensor-parallel rank (memory, or link for comm)"}),
                "compute_time": (dims, ctime, {"units": "s", "long_name": "compute roof time"}),
                "memory_time": (dims, mtime, {"units": "s", "long_name": "memory roof time"}),
                "time": (dims, time, {"units": "s", "long_name": "operator time"}),
                "bound": (dims, bound, {"long_name": "what limits the operator"}),
            },
            coords={"operator": ("operator", list(OPERATORS)), **self._coords},
            attrs={**self._attrs, "kind": self.kind},
        )
        ds["operator"].attrs["long_name"] = "operator"
        ds["operator"].attrs["description"] = "; ".join(f"{k}: {v}" for k, v in
                                                        _OPERATOR_LONG_NAMES.items())
        ds["total"] = ds["time"].sum("operator")
        ds["total"].attrs = {"units": "s", "long_name": "step time"}
        return ds


def _finish(o: _Options, kind: str, arrays: dict, dims, coords, is_xr, aggregates) -> StepTime:
    parts = _kernel(o, *aggregates)
    time = parts[4]
    total = sum(np.asarray(v, dtype=float) for v in time.values())
    total = np.broadcast_to(total, np.shape(next(iter(arrays.values())))) if arrays else total
    if o.pp > 1:
        per_stage = total - time["pp_comm"] - time["overhead"]
        interval = per_stage / o.pp + time["pp_comm"] / (o.pp - 1) + time["overhead"]
    else:
        interval = total

    def wrap(x):
        x = np.asarray(x, dtype=float)
        if is_xr:
            return xr.DataArray(x, dims=dims, coords=coords, attrs={"units": "s"})
        return float(x) if x.ndim == 0 else x

    return StepTime(wrap(total), wrap(interval), kind, parts, dims, coords, o.attrs())


def _context_limit(o: _Options, what: str, ctx_plus_new: np.ndarray) -> None:
    limit = o.model.max_context
    if np.any(ctx_plus_new > limit):
        raise ValidationError(f"{what}: {float(ctx_plus_new.max()):g} tokens of context for "
                              f"{o.model.name}; valid: at most max_context = {limit} (see "
                              f"{o.model.sources.get('max_context', 'the model file')})")


# --------------------------------------------------------------------------- public


def prefill(model: Model | str, device: Any, tokens: Any, *, batch: Any = 1, context: Any = 0,
            **options: Any) -> StepTime:
    """Roofline time of a prefill step: ``tokens`` new tokens for each of ``batch`` sequences.

    Parameters
    ----------
    model : Model or str
        The model (or its catalog name).
    device : DeviceLike or str
        One device of the tensor-parallel group (or its hardware catalog name).
    tokens : float or array_like
        New tokens per sequence in this step (a whole prompt, or one chunk), >= 1.
    batch : float or array_like
        Sequences in the step, >= 1 (all with the same ``tokens`` and ``context``).
    context : float or array_like
        Tokens already in each sequence's KV cache (0 for a fresh prompt; earlier
        chunks for chunked prefill; reused prefix for prefix caching), >= 0.
        Encoders need 0.
    tp, pp, ep : int, optional
        Tensor-, pipeline- and expert-parallel degrees (``ep`` is 1 or ``tp``).
    weight_precision, kv_precision : str, optional
        ``"bf16"`` (default), ``"fp16"``, ``"fp8"``, ``"int8"``, ``"int4"``, ``"fp4"``, ``"fp32"``.
    compute_precision : str, optional
        Tensor-core precision of the linear layers; by default the weight
        precision (``"bf16"`` for int4 weights). Attention always runs in bf16.
    matmul_efficiency, memory_efficiency : float, optional
        Fractions of peak FLOP/s and bandwidth reached; default the device's.
    overhead : float, optional
        Fixed seconds added to every step (scheduler, launch, sampling); default 0.
    link_bandwidth, link_latency : float, optional
        Scale-up link per direction (bytes/s) and latency (s); default the device's
        ``scale_up_bandwidth`` and ``scale_up_latency`` (a missing latency is 0).
    pp_bandwidth, pp_latency : float, optional
        Link between pipeline stages; default the scale-up link.

    Returns
    -------
    StepTime
        ``total`` in seconds, same shape as the broadcast inputs.

    Raises
    ------
    ValidationError
        Negative or non-finite counts, context beyond ``max_context``, a
        parallel degree that does not split the model, a precision the device
        lacks, ``context > 0`` for an encoder.
    """
    o = _options_iv(model, device, **options)
    arrays, dims, coords, is_xr = _as_arrays({"tokens": tokens, "batch": batch, "context": context})
    T, b, C = arrays["tokens"], arrays["batch"], arrays["context"]
    _check("tokens", T, low=1)
    _check("batch", b, low=1)
    _check("context", C, low=0)
    m = o.model
    if m.architecture == "encoder":
        if np.any(C > 0):
            raise ValidationError(f"context: got {float(C.max()):g} for encoder {m.name}; valid: 0 "
                                  "(an encoder keeps no KV cache)")
        _context_limit(o, "tokens", T)
        aggregates = (b * T, 0 * T, b, b * T * T, 0 * T, b * T, 0 * T)
    else:
        _context_limit(o, "context + tokens", C + T)
        w = m.sliding_window
        kv_read = np.minimum(C + T, w + T - 1) if w else C + T
        aggregates = (b * T, 0 * T, b, b * _attended(T, C, w), 0 * T, b * kv_read, 0 * T)
    return _finish(o, "prefill", arrays, dims, coords, is_xr, aggregates)


def decode_step(model: Model | str, device: Any, batch: Any = None, context: Any = None, *,
                contexts: Any = None, **options: Any) -> StepTime:
    """Roofline time of one decode step: one new token for each of ``batch`` sequences.

    Parameters
    ----------
    model, device
        As for :func:`prefill`; the model must be a decoder.
    batch : float or array_like
        Sequences decoding in this step, >= 1.
    context : float or array_like
        Mean tokens already in each sequence's KV cache, >= 0. Attention work is
        linear in context, so the mean gives the exact total (except under a
        sliding window, where ``min(context, window)`` is applied to the mean).
    contexts : 1-D sequence, optional
        Exact per-sequence contexts instead of ``batch`` and ``context`` (the
        batch is ``len(contexts)``); the result is a scalar.
    **options
        ``tp``, ``pp``, ``ep``, precisions, efficiencies, ``overhead``, links: as
        for :func:`prefill`.

    Returns
    -------
    StepTime
    """
    o = _options_iv(model, device, **options)
    m = o.model
    if m.architecture != "decoder":
        raise ValidationError(f"decode_step: {m.name} is an {m.architecture}; valid: a decoder "
                              "model (encoders run one prefill pass)")
    w = m.sliding_window
    if contexts is not None:
        if batch is not None or context is not None:
            raise ValidationError("decode_step: got contexts= together with batch/context; valid: "
                                  "either contexts=[...] or batch and context")
        c = np.asarray(contexts, dtype=float)
        if c.ndim != 1 or c.size == 0:
            raise ValidationError(f"contexts: got shape {c.shape}; valid: a non-empty 1-D sequence "
                                  "of per-sequence contexts")
        _check("contexts", c, low=0)
        _context_limit(o, "context + 1", c + 1)
        att = np.minimum(c + 1, w) if w else c + 1
        Bd, pairs = np.float64(c.size), np.float64(att.sum())
        arrays, dims, coords, is_xr = {}, (), {}, False
    else:
        if batch is None or context is None:
            raise ValidationError("decode_step: batch and context are required (or contexts=); "
                                  "valid: decode_step(model, device, batch, context)")
        arrays, dims, coords, is_xr = _as_arrays({"batch": batch, "context": context})
        Bd, C = arrays["batch"], arrays["context"]
        _check("batch", Bd, low=1)
        _check("context", C, low=0)
        _context_limit(o, "context + 1", C + 1)
        pairs = Bd * (np.minimum(C + 1, w) if w else C + 1)
    zero = 0 * Bd
    aggregates = (zero, Bd, Bd, zero, pairs, zero, pairs)
    return _finish(o, "decode", arrays, dims, coords, is_xr, aggregates)


def mixed_step(model: Model | str, device: Any, *, prefill_tokens: Any, prefill_context: Any = 0,
               prefill_batch: Any = 1, decode_batch: Any = 0, decode_context: Any = 0,
               **options: Any) -> StepTime:
    """Roofline time of a chunked-prefill step: prefill chunks and decode tokens in one pass.

    Parameters
    ----------
    model, device
        As for :func:`prefill`; the model must be a decoder.
    prefill_tokens : float or array_like
        Chunk size: new tokens per prefilling sequence, >= 0.
    prefill_context : float or array_like
        Tokens already cached for each prefilling sequence (earlier chunks), >= 0.
    prefill_batch : float or array_like
        Sequences prefilling in this step, >= 0.
    decode_batch : float or array_like
        Sequences decoding one token in this step, >= 0.
    decode_context : float or array_like
        Mean context of the decoding sequences, >= 0.
    **options
        As for :func:`prefill`.

    Returns
    -------
    StepTime
        Linear-layer FLOPs are those of prefill plus decode; weights are read
        once for both, which is why mixing is cheaper than two steps.
    """
    o = _options_iv(model, device, **options)
    m = o.model
    if m.architecture != "decoder":
        raise ValidationError(f"mixed_step: {m.name} is an {m.architecture}; valid: a decoder model")
    arrays, dims, coords, is_xr = _as_arrays({
        "prefill_tokens": prefill_tokens, "prefill_context": prefill_context,
        "prefill_batch": prefill_batch, "decode_batch": decode_batch,
        "decode_context": decode_context})
    T, C, b = arrays["prefill_tokens"], arrays["prefill_context"], arrays["prefill_batch"]
    Bd, Cd = arrays["decode_batch"], arrays["decode_context"]
    for k, a in arrays.items():
        _check(k, a, low=0)
    _context_limit(o, "prefill_context + prefill_tokens", C + T)
    _context_limit(o, "decode_context + 1", Cd + 1)
    w = m.sliding_window
    kv_read = np.minimum(C + T, w + T - 1) if w else C + T
    kv_read = np.where(T > 0, kv_read, 0.0)
    b_eff = np.where(T > 0, b, 0.0)  # a prefill sequence with no tokens is not in the step
    pairs_d = Bd * (np.minimum(Cd + 1, w) if w else Cd + 1)
    aggregates = (b_eff * T, Bd, b_eff + Bd, b_eff * _attended(T, C, w), pairs_d,
                  b_eff * kv_read, pairs_d)
    return _finish(o, "mixed", arrays, dims, coords, is_xr, aggregates)
