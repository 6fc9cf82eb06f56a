"""Tests for hermes_qn.models: the model catalog, validation, parameter and byte counts."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from hermes_qn import models
from hermes_qn.catalog_paths import catalog_dir
from hermes_qn.errors import ValidationError
from hermes_qn.models import MLA, MoE, Model

CATALOG = ["bge-reranker-base", "deepseek-v3", "e5-base-v2", "llama-2-13b", "llama-2-70b",
           "llama-2-7b", "llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b", "mistral-7b",
           "mixtral-8x7b", "qwen2.5-7b", "qwen3-32b"]

# Exact parameter counts from the Hugging Face safetensors metadata of each repository
# (model page "Model size"; the total of all tensors). These are the counts of the
# checkpoints whose config.json the catalog copies, so the derivation should be exact.
HF_EXACT = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "qwen2.5-7b": 7_615_616_512,
    "e5-base-v2": 109_482_240,
}

# Published KV-cache bytes per token. Llama-2-7B: 2 (K, V) * 32 layers * 4096 * 2 B.
# Llama-3.1-70B, Llama-3.1-405B, DeepSeek-V3: Zhao et al. 2025, "Insights into
# DeepSeek-V3" (arXiv:2505.09343) Table 1 (bf16): 327.680 KB (Qwen-2.5-72B and
# LLaMA-3.1-70B share the shape 80 x 8 x 128), 516.096 KB, 70.272 KB.
KV_PUBLISHED = [
    ("llama-2-7b", "fp16", 524_288),
    ("llama-2-13b", "fp16", 819_200),
    ("llama-3.1-70b", "bf16", 327_680),
    ("llama-3.1-405b", "bf16", 516_096),
    ("deepseek-v3", "bf16", 70_272),
    ("mistral-7b", "bf16", 131_072),
]


def test_list_models_is_the_catalog():
    assert models.list_models() == CATALOG


@pytest.mark.parametrize("name", CATALOG)
def test_param_count_matches_published_within_2_percent(name):
    m = models.load(name)
    published = m.published["params"]
    assert m.param_count() == pytest.approx(published, rel=0.02)


@pytest.mark.parametrize("name,count", sorted(HF_EXACT.items()))
def test_param_count_exact_against_safetensors(name, count):
    assert models.load(name).param_count() == count


@pytest.mark.parametrize("name", ["mixtral-8x7b", "deepseek-v3"])
def test_active_params_match_published(name):
    m = models.load(name)
    assert m.active_param_count() == pytest.approx(m.published["active_params"], rel=0.02)
    assert m.active_param_count() < m.param_count()


def test_deepseek_v3_total_is_671b_without_mtp():
    m = models.load("deepseek-v3")
    assert m.param_count() == 671_026_419_200
    assert m.mtp_layers == 1


@pytest.mark.parametrize("name", ["qwen2.5-7b", "qwen3-32b"])
def test_non_embedding_params_match_model_card(name):
    m = models.load(name)
    assert m.non_embedding_param_count() == pytest.approx(m.published["non_embedding_params"],
                                                          rel=0.01)


def test_dense_model_active_equals_total():
    m = models.load("llama-3.1-8b")
    assert m.active_param_count() == m.param_count()


@pytest.mark.parametrize("name,precision,expected", KV_PUBLISHED)
def test_kv_bytes_per_token_match_published(name, precision, expected):
    assert models.load(name).kv_bytes_per_token(precision) == expected


def test_kv_bytes_scale_with_precision_and_vanish_for_encoders():
    m = models.load("llama-3.1-8b")
    assert m.kv_bytes_per_token("fp8") == m.kv_bytes_per_token("bf16") / 2
    assert m.kv_bytes_per_token("bf16") == 2 * 32 * 8 * 128 * 2
    assert models.load("e5-base-v2").kv_bytes_per_token() == 0
    assert models.load("bge-reranker-base").kv_bytes_per_token() == 0


@pytest.mark.parametrize("precision,nbytes", [("bf16", 2), ("fp16", 2), ("fp8", 1), ("int8", 1),
                                              ("int4", 0.5), ("fp4", 0.5), ("fp32", 4)])
def test_weight_bytes_per_precision(precision, nbytes):
    m = models.load("llama-2-7b")
    assert m.weight_bytes(precision) == m.param_count() * nbytes


def test_unknown_precision_names_valid_ones():
    with pytest.raises(ValidationError, match=r"weight precision: got 'fp12'; valid: .*bf16.*int4"):
        models.load("llama-2-7b").weight_bytes("fp12")


def test_breakdown_sums_to_total_and_has_moe_parts():
    m = models.load("deepseek-v3")
    b = m.param_breakdown()
    assert sum(b.values()) == m.param_count()
    assert b["experts"] == 58 * 256 * 3 * 7168 * 2048
    assert b["shared_experts"] == 58 * 3 * 7168 * 2048
    assert b["ffn"] == 3 * 3 * 7168 * 18432


def test_every_catalog_file_sources_every_dimension():
    for name in CATALOG:
        m = models.load(name)
        dims = [f.name for f in dataclasses.fields(Model)
                if f.name not in {"name", "display_name", "hf_repo", "architecture", "moe", "mla",
                                  "published", "sources", "path"}]
        text = m.path.read_text()
        for key in dims:
            if f"\n{key} =" in text:
                assert m.sources.get(key), (name, key)
        assert m.published["source"]


def test_load_by_hf_repo_case_insensitive_and_path():
    a = models.load("meta-llama/Llama-3.1-70B")
    b = models.load("LLAMA-3.1-70B")
    c = models.load(catalog_dir("models") / "llama-3.1-70b.toml")
    assert a == b == c
    assert a.name == "llama-3.1-70b"


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValidationError, match=r"unknown name 'llama-3-8b' \(close matches: "
                                              r"llama-3.1-8b.*valid: one of"):
        models.load("llama-3-8b")


# ----------------------------------------------------------------------- file validation


@pytest.fixture
def model_file(tmp_path):
    def make(edit):
        src = catalog_dir("models") / "mixtral-8x7b.toml"
        dst = tmp_path / "mixtral-8x7b.toml"
        shutil.copy(src, dst)
        dst.write_text(edit(dst.read_text()))
        return dst
    return make


def test_unknown_key_is_named_with_suggestion(model_file):
    path = model_file(lambda s: s.replace("layers = 32\n", "layers = 32\nlayer = 3\n", 1))
    with pytest.raises(ValidationError, match=r"mixtral-8x7b.toml: unknown key 'layer' "
                                              r"\(did you mean 'layers'\?\); valid: "):
        models.load(path)


def test_missing_key_is_named(model_file):
    path = model_file(lambda s: s.replace("vocab_size = 32000\n", "", 1))
    with pytest.raises(ValidationError, match=r"missing required key 'vocab_size'"):
        models.load(path)


def test_wrong_type_names_key_value_and_valid(model_file):
    path = model_file(lambda s: s.replace("hidden_size = 4096", 'hidden_size = "4096"', 1))
    with pytest.raises(ValidationError, match=r"key 'hidden_size': got '4096'; valid: an integer"):
        models.load(path)


def test_bad_value_names_file_key_value_valid(model_file):
    path = model_file(lambda s: s.replace("kv_heads = 8", "kv_heads = 5", 1))
    with pytest.raises(ValidationError, match=r"mixtral-8x7b.toml: key 'kv_heads': got 5; valid: "
                                              r"a divisor of query_heads = 32"):
        models.load(path)


def test_moe_active_above_experts(model_file):
    path = model_file(lambda s: s.replace("active_experts = 2", "active_experts = 9", 1))
    with pytest.raises(ValidationError, match=r"key 'moe.active_experts': got 9; valid: an integer "
                                              r"from 1 to moe.experts = 8"):
        models.load(path)


def test_missing_source_is_an_error(model_file):
    path = model_file(lambda s: s.replace('"moe.experts" = ', '"moe.nothing" = ', 1))
    with pytest.raises(ValidationError, match=r"\[source\] has no entry for 'moe.experts'"):
        models.load(path)


def test_name_must_match_file(model_file):
    path = model_file(lambda s: s.replace('name = "mixtral-8x7b"', 'name = "mixtral"', 1))
    with pytest.raises(ValidationError, match=r"key 'name': got 'mixtral'; valid: the file name"):
        models.load(path)


def test_invalid_toml(model_file):
    path = model_file(lambda s: s + "\nlayers = = 3\n")
    with pytest.raises(ValidationError, match=r"not valid TOML"):
        models.load(path)


def test_missing_file():
    with pytest.raises(ValidationError, match=r"does not exist"):
        models.load("/nonexistent/x.toml")


# ----------------------------------------------------------------------- the dataclass


def test_replace_revalidates():
    m = models.load("llama-2-7b")
    with pytest.raises(ValidationError, match=r"Model 'llama-2-7b'|llama-2-7b.toml"):
        dataclasses.replace(m, kv_heads=3)
    m2 = dataclasses.replace(m, kv_heads=8, path=None)
    assert m2.kv_bytes_per_token("fp16") == 524_288 / 4


def test_mla_head_dim_must_match():
    m = models.load("deepseek-v3")
    with pytest.raises(ValidationError, match=r"key 'head_dim': got 128; valid: "
                                              r"mla.qk_nope_head_dim \+ mla.qk_rope_head_dim = 192"):
        dataclasses.replace(m, head_dim=128, path=None)


def test_encoder_rejects_moe():
    m = models.load("e5-base-v2")
    with pytest.raises(ValidationError, match=r"key 'moe'.*absent for an encoder"):
        dataclasses.replace(m, moe=MoE(experts=4, active_experts=1, expert_ffn_size=8), path=None)


def test_toy_model_by_hand():
    # 2 layers, h=8, 2 query heads, 1 KV head of 4, ffn 16 gated, vocab 10, untied
    m = Model(name="toy", architecture="decoder", layers=2, hidden_size=8, query_heads=2,
              kv_heads=1, head_dim=4, ffn_size=16, gated_ffn=True, vocab_size=10,
              tied_embeddings=False, max_context=64)
    attn = 8 * (2 + 2 * 1) * 4 + 2 * 4 * 8      # q,k,v then o
    ffn = 3 * 8 * 16
    norms = (2 * 2 + 1) * 8
    assert m.param_count() == 2 * (attn + ffn) + norms + 2 * 10 * 8
    assert m.kv_bytes_per_token("bf16") == 2 * 2 * 1 * 4 * 2
    assert dataclasses.replace(m, tied_embeddings=True).param_count() == m.param_count() - 80


def test_mla_latent_width():
    a = MLA(q_lora_rank=0, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
            v_head_dim=128)
    assert a.latent_width == 576
