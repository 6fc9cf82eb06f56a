"""Model catalog: transformer shapes read from ``models/*.toml``, and what follows from them.

One TOML file per model gives every dimension the service-time models need
(layers, hidden size, query and key/value heads, head width, FFN size and whether
it is gated, vocabulary, mixture-of-experts and multi-head-latent-attention
shapes, ...) together with where each number comes from (a ``[source]`` table:
the Hugging Face ``config.json`` field, the model card or the paper) and the
parameter counts the authors publish. ``models/README.md`` documents the schema.

This module reads and checks those files and returns frozen :class:`Model`
objects with the derived quantities:

- :meth:`Model.param_count` (and :meth:`Model.param_breakdown`,
  :meth:`Model.active_param_count` for mixture-of-experts models);
- :meth:`Model.weight_bytes` for a weight precision;
- :meth:`Model.kv_bytes_per_token` for a KV-cache precision.

Multi-head latent attention (MLA, DeepSeek-V2/V3) is approximated as follows:
the KV cache holds, per token and layer, the compressed latent
(``kv_lora_rank`` values) and the decoupled RoPE key (``qk_rope_head_dim``
values) -- nothing else -- so KV bytes per token are
``layers * (kv_lora_rank + qk_rope_head_dim) * bytes``; the attention FLOPs are
described in :mod:`hermes_qn.roofline` (absorbed form for decode, expanded form
for prefill).

Examples
--------
>>> from hermes_qn.models import load
>>> m = load("llama-2-7b")
>>> m.param_count()
6738415616
>>> m.kv_bytes_per_token("fp16")          # 2 (K and V) * 32 layers * 4096 * 2 bytes
524288.0
>>> m.weight_bytes("bf16") / 1e9          # GB
13.476831232
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .catalog_paths import catalog_dir, load_cached, read_toml
from .errors import ValidationError

__all__ = [
    "MLA",
    "MoE",
    "Model",
    "PRECISION_BYTES",
    "list_models",
    "load",
    "precision_bytes",
]

#: Bytes per stored element for each precision name hermes-qn accepts for weights
#: and KV cache. Quantisation scales (e.g. one fp16 scale per 128 int4 weights,
#: +3 %) are not counted.
PRECISION_BYTES: Mapping[str, float] = MappingProxyType({
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
})

ARCHITECTURES = ("decoder", "encoder")
NORMS = ("rmsnorm", "layernorm")
POSITION_EMBEDDINGS = ("rope", "learned")
OUTPUT_HEADS = {"decoder": ("lm",), "encoder": ("pooler", "classifier", "none")}
ACTIVATIONS = ("silu", "gelu", "relu")


def precision_bytes(precision: str, *, what: str = "precision") -> float:
    """Bytes per element of ``precision`` (see :data:`PRECISION_BYTES`).

    Raises
    ------
    ValidationError
        Unknown precision name; the message lists the valid ones.
    """
    if not isinstance(precision, str) or precision.lower() not in PRECISION_BYTES:
        raise ValidationError(f"{what}: got {precision!r}; valid: one of "
                              f"{', '.join(PRECISION_BYTES)}")
    return PRECISION_BYTES[precision.lower()]


def _fail(origin: str, key: str, value: Any, valid: str) -> ValidationError:
    return ValidationError(f"{origin}: key {key!r}: got {value!r}; valid: {valid}")


def _int(origin: str, key: str, value: Any, *, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(origin, key, value, f"an integer >= {low}")


def _bool(origin: str, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(origin, key, value, "true or false")


def _choice(origin: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(origin, key, value, f"one of {', '.join(repr(c) for c in choices)}")


@dataclass(frozen=True)
class MoE:
    """Mixture-of-experts shape (TOML table ``[moe]``).

    Parameters
    ----------
    experts : int
        Routed experts per MoE layer (HF ``num_local_experts`` / ``n_routed_experts``).
    active_experts : int
        Routed experts each token goes to (top-k, HF ``num_experts_per_tok``).
    shared_experts : int
        Experts every token goes to, each of ``expert_ffn_size`` (HF ``n_shared_experts``).
    expert_ffn_size : int
        Intermediate size of one expert (HF ``moe_intermediate_size``, or
        ``intermediate_size`` for Mixtral).
    dense_layers : int
        Leading layers with a dense FFN of the model's ``ffn_size`` instead of
        experts (HF ``first_k_dense_replace``).
    router_bias : bool
        Whether the router carries one bias per expert (DeepSeek-V3
        ``e_score_correction_bias``).
    """

    experts: int
    active_experts: int
    shared_experts: int = 0
    expert_ffn_size: int = 0
    dense_layers: int = 0
    router_bias: bool = False
    origin: str = field(default="MoE", compare=False, repr=False)

    def __post_init__(self) -> None:
        o = self.origin
        _int(o, "moe.experts", self.experts, low=2)
        _int(o, "moe.active_experts", self.active_experts)
        if self.active_experts > self.experts:
            raise _fail(o, "moe.active_experts", self.active_experts,
                        f"an integer from 1 to moe.experts = {self.experts}")
        _int(o, "moe.shared_experts", self.shared_experts, low=0)
        _int(o, "moe.expert_ffn_size", self.expert_ffn_size)
        _int(o, "moe.dense_layers", self.dense_layers, low=0)
        _bool(o, "moe.router_bias", self.router_bias)


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention shape (TOML table ``[mla]``; DeepSeek-V2/V3).

    Parameters
    ----------
    q_lora_rank : int
        Width of the compressed query (0: queries are projected directly).
    kv_lora_rank : int
        Width of the compressed key/value latent, the part of the KV cache that
        is not RoPE.
    qk_nope_head_dim, qk_rope_head_dim : int
        Per-head widths of the query/key part without and with rotary embedding;
        the RoPE key (``qk_rope_head_dim``) is shared by all heads and cached.
    v_head_dim : int
        Per-head width of the values.
    """

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    origin: str = field(default="MLA", compare=False, repr=False)

    def __post_init__(self) -> None:
        _int(self.origin, "mla.q_lora_rank", self.q_lora_rank, low=0)
        for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            _int(self.origin, f"mla.{name}", getattr(self, name))

    @property
    def latent_width(self) -> int:
        """Values cached per token and layer: ``kv_lora_rank + qk_rope_head_dim``."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class Model:
    """A transformer's shape, enough for parameter, memory and roofline estimates.

    Build one with :func:`load` (from the catalog or a TOML file) or directly;
    vary one with :func:`dataclasses.replace` (the fields are checked again).

    Parameters
    ----------
    name : str
        Catalog name, e.g. ``"llama-3.1-70b"`` (the file stem).
    architecture : {"decoder", "encoder"}
        Causal decoder (generates tokens, keeps a KV cache) or bidirectional
        encoder (embedding models, cross-encoder rerankers: one forward pass).
    layers : int
        Transformer blocks.
    hidden_size : int
        Residual-stream width.
    query_heads, kv_heads : int
        Attention heads for queries and for keys/values (``kv_heads <
        query_heads`` is grouped-query attention; ``query_heads`` must be a
        multiple of ``kv_heads``).
    head_dim : int
        Width of one query/key head (``qk_nope_head_dim + qk_rope_head_dim`` for MLA).
    ffn_size : int
        Intermediate size of the dense FFN.
    gated_ffn : bool
        Gated FFN (SwiGLU/GeGLU: three matrices) or plain (two matrices).
    vocab_size : int
        Vocabulary (rows of the embedding table, columns of the LM head).
    tied_embeddings : bool
        Whether the LM head reuses the embedding table (no extra parameters).
    max_context : int
        Longest sequence (prompt plus output) the model accepts, tokens.
    activation : str
        FFN activation (``"silu"``, ``"gelu"``, ``"relu"``); informative.
    norm : {"rmsnorm", "layernorm"}
        Normalisation (LayerNorm has a bias as well as a weight).
    position_embedding : {"rope", "learned"}
        Rotary or learned absolute positions.
    learned_positions : int
        Rows of the learned position table (0 with RoPE).
    token_types : int
        Rows of the token-type (segment) table (BERT; 0 for decoders).
    qkv_bias : bool
        Bias on the query/key/value projections.
    linear_bias : bool
        Bias on every other linear layer (output projection, FFN).
    qk_norm : bool
        RMSNorm on queries and keys per head (Qwen3).
    sliding_window : int or None
        Sliding-window attention: each token attends at most this many tokens.
    output_head : {"lm", "pooler", "classifier", "none"}
        What follows the last block: an LM head (decoders), a pooler (dense
        ``hidden x hidden``), a classifier (dense ``hidden x hidden`` then
        ``hidden x num_labels``), or nothing.
    num_labels : int
        Classifier outputs (``output_head = "classifier"``).
    mtp_layers : int
        Multi-token-prediction modules in the checkpoint (DeepSeek-V3); not
        counted in the parameters and not modelled by the roofline.
    moe : MoE or None
        Mixture-of-experts shape; None for dense models.
    mla : MLA or None
        Multi-head latent attention shape; None for ordinary attention.
    display_name, hf_repo : str
        Human name and the Hugging Face repository the numbers come from.
    published : mapping
        Published counts (``params``, ``active_params``, ...) with ``source``.
    sources : mapping of str to str
        Where each dimension comes from (key -> text), as in the file.
    path : pathlib.Path or None
        File the model was read from.
    """

    name: str
    architecture: str
    layers: int
    hidden_size: int
    query_heads: int
    kv_heads: int
    head_dim: int
    ffn_size: int
    gated_ffn: bool
    vocab_size: int
    tied_embeddings: bool
    max_context: int
    activation: str = "silu"
    norm: str = "rmsnorm"
    position_embedding: str = "rope"
    learned_positions: int = 0
    token_types: int = 0
    qkv_bias: bool = False
    linear_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    output_head: str = "lm"
    num_labels: int = 1
    mtp_layers: int = 0
    moe: MoE | None = None
    mla: MLA | None = None
    display_name: str = ""
    hf_repo: str = ""
    published: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        o = _where(self.path) if self.path is not None else f"Model {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise _fail(o, "name", self.name, "a non-empty string")
        _choice(o, "architecture", self.architecture, ARCHITECTURES)
        for key in ("layers", "hidden_size", "query_heads", "kv_heads", "head_dim", "ffn_size",
                    "vocab_size", "max_context", "num_labels"):
            _int(o, key, getattr(self, key))
        for key in ("learned_positions", "token_types", "mtp_layers"):
            _int(o, key, getattr(self, key), low=0)
        for key in ("gated_ffn", "tied_embeddings", "qkv_bias", "linear_bias", "qk_norm"):
            _bool(o, key, getattr(self, key))
        _choice(o, "activation", self.activation, ACTIVATIONS)
        _choice(o, "norm", self.norm, NORMS)
        _choice(o, "position_embedding", self.position_embedding, POSITION_EMBEDDINGS)
        _choice(o, "output_head", self.output_head, OUTPUT_HEADS[self.architecture])
        if self.query_heads % self.kv_heads:
            raise _fail(o, "kv_heads", self.kv_heads,
                        f"a divisor of query_heads = {self.query_heads} (grouped-query attention)")
        if self.position_embedding == "learned" and self.learned_positions < self.max_context:
            raise _fail(o, "learned_positions", self.learned_positions,
                        f"an integer >= max_context = {self.max_context} (one learned row per position)")
        if self.position_embedding == "rope" and self.learned_positions:
            raise _fail(o, "learned_positions", self.learned_positions,
                        "0 (or leave it out) with position_embedding = 'rope'")
        if self.sliding_window is not None:
            _int(o, "sliding_window", self.sliding_window)
        if self.moe is not None:
            if not isinstance(self.moe, MoE):
                raise _fail(o, "moe", self.moe, "a MoE instance or None")
            if self.moe.dense_layers >= self.layers:
                raise _fail(o, "moe.dense_layers", self.moe.dense_layers,
                            f"an integer from 0 to layers - 1 = {self.layers - 1}")
        if self.mla is not None:
            if not isinstance(self.mla, MLA):
                raise _fail(o, "mla", self.mla, "an MLA instance or None")
            width = self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim
            if self.head_dim != width:
                raise _fail(o, "head_dim", self.head_dim,
                            f"mla.qk_nope_head_dim + mla.qk_rope_head_dim = {width} with [mla]")
        if self.architecture == "encoder":
            for key, value in (("moe", self.moe), ("mla", self.mla),
                               ("sliding_window", self.sliding_window)):
                if value is not None:
                    raise _fail(o, key, value, "absent for an encoder (not modelled)")
        object.__setattr__(self, "published", MappingProxyType(dict(self.published)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))

    # ------------------------------------------------------------------ shapes

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.moe is not None

    @property
    def dense_layer_count(self) -> int:
        """Layers with a dense FFN (all layers of a dense model)."""
        return self.layers if self.moe is None else self.moe.dense_layers

    @property
    def moe_layer_count(self) -> int:
        """Layers with experts (0 for a dense model)."""
        return self.layers - self.dense_layer_count

    @property
    def ffn_matrices(self) -> int:
        """Weight matrices in one FFN (or expert): 3 when gated, else 2."""
        return 3 if self.gated_ffn else 2

    @property
    def q_width(self) -> int:
        """Query width after projection: ``query_heads * head_dim``."""
        return self.query_heads * self.head_dim

    @property
    def v_head_dim(self) -> int:
        """Per-head value width (``head_dim`` unless MLA sets it)."""
        return self.mla.v_head_dim if self.mla is not None else self.head_dim

    @property
    def attn_out_width(self) -> int:
        """Input width of the output projection: ``query_heads * v_head_dim``."""
        return self.query_heads * self.v_head_dim

    # ------------------------------------------------------------------ parameters

    def _norm_params(self, width: int) -> int:
        return width * (2 if self.norm == "layernorm" else 1)

    def attention_params_per_layer(self) -> int:
        """Parameters of one attention block (projections, biases, QK-norm)."""
        h, hd = self.hidden_size, self.head_dim
        if self.mla is not None:
            m = self.mla
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.query_heads * hd
            else:
                q = h * self.query_heads * hd
            kv_a = h * m.latent_width + m.kv_lora_rank  # + kv_a_layernorm
            kv_b = m.kv_lora_rank * self.query_heads * (m.qk_nope_head_dim + m.v_head_dim)
            o = self.attn_out_width * h
            return q + kv_a + kv_b + o
        qkv_out = (self.query_heads + 2 * self.kv_heads) * hd
        n = h * qkv_out + self.q_width * h
        if self.qkv_bias or self.linear_bias:
            n += qkv_out
        if self.linear_bias:
            n += h
        if self.qk_norm:
            n += 2 * hd
        return n

    def ffn_params(self, size: int) -> int:
        """Parameters of one FFN (or expert) of intermediate size ``size``."""
        n = self.ffn_matrices * self.hidden_size * size
        if self.linear_bias:
            n += (self.ffn_matrices - 1) * size + self.hidden_size
        return n

    def layer_params(self) -> tuple[int, ...]:
        """Parameters of each transformer block, in order (attention, FFN or experts, norms)."""
        attn = self.attention_params_per_layer()
        norms = 2 * self._norm_params(self.hidden_size)
        dense = attn + self.ffn_params(self.ffn_size) + norms
        if self.moe is None:
            return (dense,) * self.layers
        m = self.moe
        experts = (m.experts + m.shared_experts) * self.ffn_params(m.expert_ffn_size)
        router = self.hidden_size * m.experts + (m.experts if m.router_bias else 0)
        sparse = attn + experts + router + norms
        return (dense,) * m.dense_layers + (sparse,) * (self.layers - m.dense_layers)

    def param_breakdown(self) -> dict[str, int]:
        """Parameters by part, summed over layers.

        Keys: ``embedding`` (token, position and token-type tables),
        ``attention``, ``ffn`` (dense FFN layers), ``experts`` (routed),
        ``shared_experts``, ``router``, ``norms`` (per-layer, final and embedding
        norms), ``head`` (untied LM head, pooler or classifier).
        """
        h, L = self.hidden_size, self.layers
        out = {
            "embedding": (self.vocab_size + self.learned_positions + self.token_types) * h,
            "attention": L * self.attention_params_per_layer(),
            "ffn": self.dense_layer_count * self.ffn_params(self.ffn_size),
            "experts": 0,
            "shared_experts": 0,
            "router": 0,
            # two per block, plus the final norm (decoders) or embedding LayerNorm (encoders)
            "norms": (2 * L + 1) * self._norm_params(h),
            "head": 0,
        }
        if self.moe is not None:
            m, n_moe = self.moe, self.moe_layer_count
            expert = self.ffn_params(m.expert_ffn_size)
            out["experts"] = n_moe * m.experts * expert
            out["shared_experts"] = n_moe * m.shared_experts * expert
            out["router"] = n_moe * (h * m.experts + (m.experts if m.router_bias else 0))
        if self.output_head == "lm":
            out["head"] = 0 if self.tied_embeddings else self.vocab_size * h
        elif self.output_head == "pooler":
            out["head"] = h * h + h
        elif self.output_head == "classifier":
            out["head"] = h * h + h + h * self.num_labels + self.num_labels
        return out

    def param_count(self) -> int:
        """Total parameters (all experts; multi-token-prediction modules excluded)."""
        return sum(self.param_breakdown().values())

    def active_param_count(self) -> int:
        """Parameters used per token: the total with only ``active_experts`` routed experts.

        Equal to :meth:`param_count` for a dense model. The embedding table counts
        in full, as published counts do.
        """
        total = self.param_count()
        if self.moe is None:
            return total
        m = self.moe
        unused = self.moe_layer_count * (m.experts - m.active_experts) \
            * self.ffn_params(m.expert_ffn_size)
        return total - unused

    def non_embedding_param_count(self) -> int:
        """Parameters without the embedding tables and the (untied) LM head."""
        b = self.param_breakdown()
        head = b["head"] if self.output_head == "lm" else 0
        return self.param_count() - b["embedding"] - head

    # ------------------------------------------------------------------ bytes

    def weight_bytes(self, precision: str = "bf16") -> float:
        """Bytes of all weights stored at ``precision`` (bf16/fp16 2, fp8/int8 1, int4/fp4 0.5).

        Quantisation scales and the multi-token-prediction module are not counted.
        """
        return self.param_count() * precision_bytes(precision, what="weight precision")

    def kv_values_per_token_per_layer(self) -> int:
        """Values cached per token and layer: ``2 * kv_heads * head_dim``, or the MLA latent.

        0 for an encoder (it keeps no KV cache between calls).
        """
        if self.architecture == "encoder":
            return 0
        if self.mla is not None:
            return self.mla.latent_width
        return 2 * self.kv_heads * self.head_dim

    def kv_bytes_per_token(self, precision: str = "bf16") -> float:
        """KV-cache bytes per token over all layers, at ``precision``.

        ``layers * 2 * kv_heads * head_dim * bytes`` for ordinary (multi-head or
        grouped-query) attention; ``layers * (kv_lora_rank + qk_rope_head_dim) *
        bytes`` for MLA; 0 for encoders. Llama-2-7B in fp16: 524,288 B;
        Llama-3.1-70B in bf16: 327,680 B; DeepSeek-V3 in bf16: 70,272 B.
        """
        b = precision_bytes(precision, what="kv precision")
        return float(self.layers * self.kv_values_per_token_per_layer() * b)

    def summary(self) -> str:
        """One line: name, parameters, layers, heads, KV bytes per token in bf16."""
        p = self.param_count()
        act = f", {self.active_param_count() / 1e9:.1f}B active" if self.moe else ""
        return (f"{self.display_name}: {p / 1e9:.2f}B params{act}, {self.layers} layers, "
                f"{self.query_heads}/{self.kv_heads} heads, "
                f"{self.kv_bytes_per_token('bf16'):.0f} KV B/token (bf16)")


# --------------------------------------------------------------------------- loading

_TOP_KEYS: dict[str, tuple[type, bool]] = {
    # key: (type, required)
    "name": (str, True),
    "display_name": (str, False),
    "hf_repo": (str, False),
    "architecture": (str, True),
    "layers": (int, True),
    "hidden_size": (int, True),
    "query_heads": (int, True),
    "kv_heads": (int, True),
    "head_dim": (int, True),
    "ffn_size": (int, True),
    "gated_ffn": (bool, True),
    "activation": (str, True),
    "vocab_size": (int, True),
    "tied_embeddings": (bool, True),
    "max_context": (int, True),
    "norm": (str, True),
    "position_embedding": (str, True),
    "learned_positions": (int, False),
    "token_types": (int, False),
    "qkv_bias": (bool, True),
    "linear_bias": (bool, True),
    "qk_norm": (bool, False),
    "sliding_window": (int, False),
    "output_head": (str, True),
    "num_labels": (int, False),
    "mtp_layers": (int, False),
}
_TABLES = ("moe", "mla", "published", "source")
_MOE_KEYS = {"experts": (int, True), "active_experts": (int, True),
             "shared_experts": (int, True), "expert_ffn_size": (int, True),
             "dense_layers": (int, True), "router_bias": (bool, True)}
_MLA_KEYS = {k: (int, True) for k in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                                      "qk_rope_head_dim", "v_head_dim")}
#: Keys that need no [source] entry (labels, not dimensions).
_UNSOURCED = frozenset({"name", "display_name", "hf_repo", "architecture"})
_TYPE_WORD = {int: "an integer", bool: "true or false", str: "a quoted string"}


def _where(path: Path) -> str:
    """The file as messages name it: ``models/<name>.toml`` inside the built-in catalog."""
    try:
        return "models/" + path.resolve().relative_to(catalog_dir("models").resolve()).as_posix()
    except ValueError:
        return str(path)


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(where: str, table: Mapping[str, Any], spec: Mapping[str, tuple[type, bool]],
                prefix: str = "", extra: tuple[str, ...] = ()) -> dict[str, Any]:
    for key in table:
        if key not in spec and key not in extra:
            valid = sorted(spec) + list(extra)
            raise ValidationError(f"{where}: unknown key {prefix + key!r}{_suggest(key, valid)}; "
                                  f"valid: {', '.join(prefix + k for k in valid)}")
    out = {}
    for key, (typ, required) in spec.items():
        if key not in table:
            if required:
                raise ValidationError(f"{where}: missing required key {prefix + key!r}; "
                                      f"valid: {prefix + key} = <{_TYPE_WORD[typ]}>")
            continue
        value = table[key]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            raise _fail(where, prefix + key, value, _TYPE_WORD[typ])
        out[key] = value
    return out


def _parse(path: Path) -> Model:
    where = _where(path)
    raw = read_toml(path, where, "models/README.md")
    top = _check_keys(where, raw, _TOP_KEYS, extra=_TABLES)
    for table in _TABLES:
        if table in raw and not isinstance(raw[table], dict):
            raise _fail(where, table, raw[table], f"a [{table}] table")
    if top["name"] != path.stem:
        raise _fail(where, "name", top["name"], f"the file name without .toml, {path.stem!r}")
    moe = mla = None
    if "moe" in raw:
        moe = MoE(**_check_keys(where, raw["moe"], _MOE_KEYS, "moe."), origin=where)
    if "mla" in raw:
        mla = MLA(**_check_keys(where, raw["mla"], _MLA_KEYS, "mla."), origin=where)
    published = dict(raw.get("published", {}))
    for key, value in published.items():
        if key == "source":
            if not isinstance(value, str) or not value.strip():
                raise _fail(where, "published.source", value, "a non-empty string")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _fail(where, f"published.{key}", value, "a positive number")
    if "params" not in published or "source" not in published:
        raise ValidationError(f"{where}: [published] needs params and source; got keys "
                              f"{sorted(published)}; valid: params = <number>, source = \"...\"")
    sources = dict(raw.get("source", {}))
    needed = [k for k in top if k not in _UNSOURCED]
    needed += [f"moe.{k}" for k in raw.get("moe", {})] + [f"mla.{k}" for k in raw.get("mla", {})]
    for key in needed:
        text = sources.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"{where}: [source] has no entry for {key!r} (got {text!r}); "
                                  f"valid: {key if '.' not in key else repr(key)} = "
                                  "\"<config.json field, model card or paper>\"")
    for key in sources:
        if key not in needed:
            raise ValidationError(f"{where}: [source] key {key!r} names no dimension of this "
                                  f"file{_suggest(key, needed)}; valid: one of {', '.join(needed)}")
    return Model(**top, moe=moe, mla=mla, published=published, sources=sources, path=path)


def _load_file(path: Path) -> Model:
    return load_cached(path, _parse, "model", "a path to a .toml file, or a catalog name from "
                       "hermes_qn.models.list_models()")


def _catalog_files() -> dict[str, Path]:
    return {p.stem.casefold(): p for p in sorted(catalog_dir("models").glob("*.toml"))}


def list_models() -> list[str]:
    """Names of the models in the built-in catalog, sorted."""
    return sorted(p.stem for p in _catalog_files().values())


def load(name: str | os.PathLike) -> Model:
    """Load a model by catalog name, Hugging Face repository id, or TOML path.

    Parameters
    ----------
    name : str or os.PathLike
        A catalog name (case-insensitive, e.g. ``"llama-3.1-70b"``), a Hugging
        Face repository id found in the catalog (``"meta-llama/Llama-3.1-70B"``),
        or the path of a TOML file (anything ending in ``.toml``).

    Returns
    -------
    Model

    Raises
    ------
    ValidationError
        Unknown name (the message lists close matches and the catalog), or a
        malformed file (the message names the file, key, value and what is valid).
    """
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".toml")):
        return _load_file(Path(name))
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"model name: got {name!r}; valid: a catalog name such as "
                              "'llama-3.1-8b' or a path to a .toml file")
    files = _catalog_files()
    key = name.strip().casefold()
    if key in files:
        return _load_file(files[key])
    if "/" in key:
        for path in files.values():
            model = _load_file(path)
            if model.hf_repo.casefold() == key:
                return model
    names = list_models()
    close = difflib.get_close_matches(key, [n.casefold() for n in names], n=3, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}; " if close else ""
    raise ValidationError(f"model: unknown name {name!r} ({hint}catalog {catalog_dir('models')}); "
                          f"valid: one of {', '.join(names)}, or a path to a .toml file")


def as_model(model: Model | str, where: str = "model") -> Model:
    """``model`` itself, or the catalog model of that name; anything else is a ValidationError.

    ``where`` starts the message (the calling function or argument).
    """
    if isinstance(model, str):
        model = load(model)
    if not isinstance(model, Model):
        raise ValidationError(f"{where}: got {type(model).__name__}; valid: a "
                              f"hermes_qn.models.Model or a catalog name such as 'llama-3.1-8b'")
    return model
