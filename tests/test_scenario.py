"""Scenarios: TOML loading, Python construction, and errors that name the key and what is valid."""

import textwrap

import pytest

import hermes_qn as hq
from hermes_qn.scenario import Generate, Pool, RequestClass, Scenario, SLO, Target
from hermes_qn.workload import TokenLengths

BASE = """
name = "t"
[[pools]]
name = "gpu"
device = "H100-SXM"
devices = 2
models = ["llama-3.1-8b"]
[[classes]]
name = "chat"
rate = 1.0
prompt_tokens = { mean = 500, scv = 0.5 }
output_tokens = 100
pipeline = [ { stage = "generate", pool = "gpu", model = "llama-3.1-8b" } ]
"""


def _load(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    return hq.load_scenario(path)


def test_builtin_scenarios_load_and_evaluate():
    names = hq.list_scenarios()
    assert {"chat-h100", "rag-cpu", "reasoning", "disaggregated", "remote-kv"} <= set(names)
    for name in names:
        ds = hq.evaluate(hq.load_scenario(name))
        assert not bool(ds.saturated), name
        assert (ds.ttft > 0).all() and (ds.e2e > ds.ttft).all(), name


def test_toml_and_python_give_the_same_scenario(tmp_path):
    sc = _load(tmp_path, BASE)
    pool = Pool("gpu", "H100-SXM", devices=2, models=("llama-3.1-8b",))
    chat = RequestClass("chat", (Generate.on("gpu", "llama-3.1-8b"),),
                        prompt_tokens=TokenLengths.of(500, 0.5), output_tokens=100, rate=1.0)
    py = Scenario("t", (pool,), (chat,))
    a, b = hq.evaluate(sc), hq.evaluate(py)
    assert a.e2e.item() == pytest.approx(b.e2e.item(), rel=1e-12)


@pytest.mark.parametrize("edit, message", [
    (("batch_cap = 4", "batch_cap = 4\nbatchcap = 5"), "unknown key 'batchcap' (did you mean 'batch_cap'?)"),
    (("devices = 2", "devices = 2\ntp = 4"), "tp x pp = 4 x 1 = 4 is larger than the pool's 2 devices"),
    (("devices = 2", "devices = 3\ntp = 2"), "not a multiple of tp x pp"),
    (('models = ["llama-3.1-8b"]', 'models = ["llama-3.1-405b"]'), "pools[0]"),
    (('pool = "gpu", model', 'pool = "gpo", model'), "did you mean 'gpu'"),
    (("rate = 1.0", "rate = -1.0"), "classes[0]"),
    (('device = "H100-SXM"', 'device = "H101"'), "H101"),
    (('{ mean = 500, scv = 0.5 }', '{ mean = 500, cv = 0.5 }'), "unknown key 'cv'"),
    (('stage = "generate"', 'stage = "generat"'), "one of ('embed', 'search'"),
])
def test_bad_input_names_the_key(tmp_path, edit, message):
    text = BASE.replace("models = [", "batch_cap = 4\nmodels = [", 1)
    text = text.replace(*edit, 1)
    with pytest.raises(hq.ValidationError) as e:
        _load(tmp_path, text)
    assert message in str(e.value)


def test_model_that_does_not_fit_is_an_error_with_a_hint():
    with pytest.raises(hq.ValidationError, match="pool 'gpu'.*llama-3.1-405b|405"):
        Pool("gpu", "H100-SXM", devices=1, models=("llama-3.1-405b",))


def test_routing_probabilities_must_sum_to_one():
    with pytest.raises(hq.ValidationError, match="summing to 1"):
        Generate((Target("llama-3.1-8b", pool="a", probability=0.5),
                  Target("llama-3.1-8b", pool="b", probability=0.3)))


def test_with_value_changes_one_field_and_revalidates(tmp_path):
    sc = _load(tmp_path, BASE)
    assert sc.with_value("classes.chat.rate", 3.0).classes[0].rate == 3.0
    assert sc.with_value("pools.gpu.batch_cap", 8).pools[0].batch_cap == 8
    assert sc.with_value("classes.chat.pipeline.0.thinking", 2.0).classes[0].pipeline[0].thinking == 2
    with pytest.raises(hq.ValidationError, match="did you mean 'batch_cap'"):
        sc.with_value("pools.gpu.batchcap", 8)
    with pytest.raises(hq.ValidationError, match="tp x pp"):
        sc.with_value("pools.gpu.tp", 4)


def test_token_datasets_match_the_trace_readme():
    prompt, output = hq.workload.dataset("azure-conv")
    assert prompt.mean == pytest.approx(1155, rel=0.01)   # trace README: 1155 / 211
    assert output.mean == pytest.approx(211, rel=0.02)
    code_prompt, code_output = hq.workload.dataset("azure-code")
    assert code_prompt.mean == pytest.approx(2048, rel=0.01) and code_output.mean < 40


def test_several_generate_stages_need_one_main():
    gen = Generate.on("gpu", "llama-3.1-8b")
    with pytest.raises(hq.ValidationError, match="main = true"):
        RequestClass("c", (gen, gen), prompt_tokens=10, output_tokens=10, rate=1.0)
    main = Generate.on("gpu", "llama-3.1-8b", main=True)
    assert RequestClass("c", (gen, main), prompt_tokens=10, output_tokens=10,
                        rate=1.0).main_index == 1


def test_slo_and_class_arrivals_are_checked():
    with pytest.raises(hq.ValidationError, match="exactly one of rate"):
        RequestClass("c", (Generate.on("gpu", "llama-3.1-8b"),), prompt_tokens=10,
                     output_tokens=10)
    with pytest.raises(hq.ValidationError, match="slo.percentile"):
        SLO(ttft=1.0, percentile=120)


def test_search_options_are_checked_when_the_scenario_is_built():
    from hermes_qn.scenario import Search
    cpu = Pool("cpu", "Xeon-8480+", devices=1)
    gpu = Pool("gpu", "H100-SXM", devices=1, models=("llama-3.1-8b",))
    bad = RequestClass("c", (Search("cpu", "ivf_pq", corpus=1e6, dim=768),
                             Generate.on("gpu", "llama-3.1-8b")), prompt_tokens=10,
                       output_tokens=10, rate=1.0)
    with pytest.raises(hq.ValidationError, match=r"classes\[0\] \(c\).pipeline\[0\]"):
        Scenario("s", (cpu, gpu), (bad,))
