"""The capability parsers, table by table, and the fake hub's capability endpoints (issue 12)."""

from __future__ import annotations

import json

import pytest
import requests

from indexer import capabilities as caps
from tests import fakehub_caps as fc

NONE_CONFIG = {"context_length": None, "context_length_max": None, "vision": None, "moe": None, "params_b": None}
NONE_TEMPLATE = {"tools": None, "reasoning": None, "thinking_switch": None}


def ok(providers):
    return {"Code": 200, "Data": {"Providers": providers, "TotalCount": len(providers or [])}, "Success": True}


# -- list_model_providers ------------------------------------------------------------

PROVIDER_CASES = {
    # Verbatim sample, docs/capabilities.md §3.1.
    "sample served": (
        {"Code": 200, "Data": {"Providers": [{"Name": "ModelScope", "CostTier": "standard",
                                              "EstimatedMagicGrainCost": 1}], "TotalCount": 1}, "Success": True},
        {"providers": ["ModelScope"], "cost_per_call": 1.0, "cost_tier": "standard"}),
    "sample nobody": (
        {"Code": 200, "Data": {"Providers": None, "TotalCount": 0}, "Success": True},
        {"providers": [], "cost_per_call": None, "cost_tier": None}),
    "ultra with third parties": (
        ok([fc.modelscope_provider(2, "ultra"), fc.third_party("DashScope"), fc.third_party("DeepSeek")]),
        {"providers": ["ModelScope", "DashScope", "DeepSeek"], "cost_per_call": 2.0, "cost_tier": "ultra"}),
    "third parties only": (
        ok([fc.third_party("DashScope")]),
        {"providers": ["DashScope"], "cost_per_call": None, "cost_tier": None}),
    "half a credit": (
        ok([fc.modelscope_provider(0.5, "lite")]),
        {"providers": ["ModelScope"], "cost_per_call": 0.5, "cost_tier": "lite"}),
    "as text": (
        json.dumps(ok([fc.modelscope_provider(1)])),
        {"providers": ["ModelScope"], "cost_per_call": 1.0, "cost_tier": "standard"}),
    "as bytes": (
        json.dumps(ok(None)).encode(),
        {"providers": [], "cost_per_call": None, "cost_tier": None}),
    "hostile entries": (
        ok([7, None, {"Name": 3}, {"Name": ""}, {"Name": "x" * 500}, {"Name": " DashScope "},
            {"Name": "DashScope"}, {"Name": "ModelScope", "EstimatedMagicGrainCost": True, "CostTier": ["ultra"]}]),
        {"providers": ["DashScope", "ModelScope"], "cost_per_call": None, "cost_tier": None}),
    "cost as string": (
        ok([{"Name": "ModelScope", "EstimatedMagicGrainCost": "2", "CostTier": "ultra"}]),
        {"providers": ["ModelScope"], "cost_per_call": None, "cost_tier": "ultra"}),
    "huge cost": (
        ok([{"Name": "ModelScope", "EstimatedMagicGrainCost": 10 ** 40}]),
        {"providers": ["ModelScope"], "cost_per_call": None, "cost_tier": None}),
    "infinite cost": (
        '{"Success": true, "Data": {"Providers": [{"Name": "ModelScope", "EstimatedMagicGrainCost": 1e999}]}}',
        {"providers": ["ModelScope"], "cost_per_call": None, "cost_tier": None}),
    "negative cost": (
        ok([{"Name": "ModelScope", "EstimatedMagicGrainCost": -1}]),
        {"providers": ["ModelScope"], "cost_per_call": None, "cost_tier": None}),
    "success false": ({"Code": 500, "Data": None, "Success": False}, None),
    "no Data": ({"Code": 200, "Success": True}, None),
    "no Providers key": ({"Code": 200, "Data": {"TotalCount": 0}, "Success": True}, None),
    "Providers a string": (ok("ModelScope"), None),
    "too many providers": (ok([{"Name": f"P{i}"} for i in range(caps.MAX_PROVIDERS + 1)]), None),
    "not JSON": ("<html>502 Bad Gateway</html>", None),
    "truncated": ('{"Code":200,"Data":{"Providers":[{"Name":"Model', None),
    "a list": ([1, 2], None),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, None),
    "huge integer text": ('{"Data": {"Providers": [{"Name": "ModelScope", "EstimatedMagicGrainCost": '
                          + "9" * 5000 + "}]}}", None),
    "not UTF-8": (b"\xff\xfe{", None),
    "None": (None, None),
}


@pytest.mark.parametrize("answer,expected", PROVIDER_CASES.values(), ids=PROVIDER_CASES.keys())
def test_parse_providers(answer, expected):
    assert caps.parse_providers(answer) == expected


# -- config.json ------------------------------------------------------------------------

DEEPSEEK_V3 = {"architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168, "intermediate_size": 18432,
               "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
               "num_key_value_heads": 128, "n_routed_experts": 256, "n_shared_experts": 1,
               "num_experts_per_tok": 8, "first_k_dense_replace": 3, "vocab_size": 129280,
               "max_position_embeddings": 163840,
               "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096}}

CONFIG_CASES = {
    # Qwen2.5-7B shapes; its published size is 7.61B.
    "dense": (fc.dense_config(),
              {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    # §4.2's Qwen3-MoE example: native 32,768, extended 131,072; published size 235B.
    "moe with yarn": (fc.moe_config(),
                      {"context_length": 32768, "context_length_max": 131072, "vision": 0, "moe": 1,
                       "params_b": 235.0}),
    "text_config wrapper": (fc.text_config_wrapper(fc.dense_config(max_position_embeddings=262144)),
                            {"context_length": 262144, "context_length_max": None, "vision": 1, "moe": 0,
                             "params_b": 7.62}),
    "llm_config wrapper with rope": (
        fc.llm_config_wrapper(fc.dense_config(rope_scaling={"type": "yarn", "factor": 4.0,
                                                            "original_max_position_embeddings": 32768})),
        {"context_length": 32768, "context_length_max": 131072, "vision": 1, "moe": 0, "params_b": 7.62}),
    "wrapper without a vision tower": (
        {"architectures": ["Qwen2AudioForConditionalGeneration"], "text_config": fc.dense_config(),
         "audio_config": {"d_model": 1280}},
        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    "vision by architecture": (
        fc.dense_config(architectures=["Qwen2_5_VLForConditionalGeneration"]),
        {"context_length": 32768, "context_length_max": None, "vision": 1, "moe": 0, "params_b": 7.62}),
    "vl inside a word": (
        fc.dense_config(architectures=["DevlinForCausalLM"]),
        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    "InternVL architecture": (
        {**fc.dense_config(architectures=["InternVLChatModel"])},
        {"context_length": 32768, "context_length_max": None, "vision": 1, "moe": 0, "params_b": 7.62}),
    # Newer transformers name the block rope_parameters (§4.2).
    "rope_parameters": (
        fc.dense_config(max_position_embeddings=40960,
                        rope_parameters={"rope_type": "yarn", "factor": 4,
                                         "original_max_position_embeddings": 32768}),
        {"context_length": 32768, "context_length_max": 131072, "vision": 0, "moe": 0, "params_b": 7.62}),
    # Llama 3.1: the stated maximum beats nothing, original × factor is the same 131,072.
    "llama3 rope": (
        fc.dense_config(max_position_embeddings=131072,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                      "original_max_position_embeddings": 8192}),
        {"context_length": 8192, "context_length_max": 131072, "vision": 0, "moe": 0, "params_b": 7.62}),
    "rope without original": (
        fc.dense_config(rope_scaling={"type": "linear", "factor": 2.0}),
        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    "rope factor 1": (
        fc.dense_config(rope_scaling={"type": "yarn", "factor": 1, "original_max_position_embeddings": 32768}),
        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    "rope factor hostile": (
        fc.dense_config(max_position_embeddings=4096,
                        rope_scaling={"factor": "4", "original_max_position_embeddings": 4096}),
        {"context_length": 4096, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 7.62}),
    # Published as 671B. Without head_dim the formula takes h / heads (56), which
    # happens to land near MLA's compressed attention.
    "deepseek v3": (DEEPSEEK_V3,
                    {"context_length": 4096, "context_length_max": 163840, "vision": 0, "moe": 1,
                     "params_b": 672.0}),
    "tied embeddings": (
        fc.dense_config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                        num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0, "params_b": 0.494}),
    "shapes missing": ({"model_type": "llama", "max_position_embeddings": 2048},
                       {"context_length": 2048, "context_length_max": None, "vision": 0, "moe": 0,
                        "params_b": None}),
    "no model keys": ({"max_position_embeddings": 2048},
                      {"context_length": 2048, "context_length_max": None, "vision": None, "moe": None,
                       "params_b": None}),
    "empty object": ("{}", NONE_CONFIG),
    "wrong types": (
        {"max_position_embeddings": "32768", "hidden_size": True, "num_hidden_layers": [28],
         "vocab_size": None, "intermediate_size": {}, "architectures": "LlavaForConditionalGeneration",
         "vision_config": "yes", "num_experts": "8", "rope_scaling": [1, 2]},
        {"context_length": None, "context_length_max": None, "vision": 0, "moe": 0, "params_b": None}),
    "huge numbers": (
        fc.dense_config(max_position_embeddings=10 ** 30, hidden_size=10 ** 30, num_experts=10 ** 12),
        {"context_length": None, "context_length_max": None, "vision": 0, "moe": 0, "params_b": None}),
    "float positions": (fc.dense_config(max_position_embeddings=32768.0),
                        {"context_length": 32768, "context_length_max": None, "vision": 0, "moe": 0,
                         "params_b": 7.62}),
    "infinite text": ('{"max_position_embeddings": 1e999}', NONE_CONFIG),
    "malformed": ('{"max_position_embeddings": 32768,', NONE_CONFIG),
    "a list": ("[1, 2, 3]", NONE_CONFIG),
    "empty": ("", NONE_CONFIG),
    "deep nesting": ('{"a":' * 100_000 + "1" + "}" * 100_000, NONE_CONFIG),
    "None": (None, NONE_CONFIG),
}


@pytest.mark.parametrize("config,expected", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_parse_config(config, expected):
    text = config if config is None or isinstance(config, str) else json.dumps(config)
    assert caps.parse_config(text) == expected


# -- chat templates ------------------------------------------------------------------------

R1_TEMPLATE = ("{% for message in messages %}{{ message.content }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}")
TEMPLATE_CASES = {
    "tools and switch, tokenizer_config": (fc.tokenizer_config(fc.TEMPLATE_TOOLS_THINKING),
                                           {"tools": 1, "reasoning": 1, "thinking_switch": 1}),
    "tools and switch, jinja file": (fc.TEMPLATE_TOOLS_THINKING,
                                     {"tools": 1, "reasoning": 1, "thinking_switch": 1}),
    "tools only": (fc.TEMPLATE_TOOLS, {"tools": 1, "reasoning": 0, "thinking_switch": 0}),
    "plain": (fc.tokenizer_config(fc.TEMPLATE_PLAIN), {"tools": 0, "reasoning": 0, "thinking_switch": 0}),
    "named list": (fc.tokenizer_config([{"name": "default", "template": fc.TEMPLATE_PLAIN},
                                        {"name": "tool_use", "template": fc.TEMPLATE_TOOLS}]),
                   {"tools": 1, "reasoning": 0, "thinking_switch": 0}),
    "named list, hostile items": (fc.tokenizer_config([None, {"name": "x"}, {"template": 5},
                                                       {"template": fc.TEMPLATE_PLAIN}]),
                                  {"tools": 0, "reasoning": 0, "thinking_switch": 0}),
    "thinks without a switch": (R1_TEMPLATE, {"tools": 0, "reasoning": 1, "thinking_switch": 0}),
    # The word outside a Jinja tag is prose, not the tools variable.
    "tools in prose only": ("You have no tools. {{ messages[0].content }}",
                            {"tools": 0, "reasoning": 0, "thinking_switch": 0}),
    "tool_call marker": ("{{ x }}<tool_call>", {"tools": 1, "reasoning": 0, "thinking_switch": 0}),
    "no chat_template": (json.dumps({"model_max_length": 8192}), NONE_TEMPLATE),
    "chat_template wrong type": (json.dumps({"chat_template": 42}), NONE_TEMPLATE),
    "empty list": (json.dumps({"chat_template": []}), NONE_TEMPLATE),
    "malformed JSON": ('{"chat_template": "{{ tools }}"', NONE_TEMPLATE),
    "deep nesting": ('{"a":' * 100_000 + "1" + "}" * 100_000, NONE_TEMPLATE),
    "bytes": (fc.TEMPLATE_TOOLS.encode(), {"tools": 1, "reasoning": 0, "thinking_switch": 0}),
    "not UTF-8": (b"\xff{{ tools }}", NONE_TEMPLATE),
    "blank": ("  \n", NONE_TEMPLATE),
    "not text": (42, NONE_TEMPLATE),
}


@pytest.mark.parametrize("text,expected", TEMPLATE_CASES.values(), ids=TEMPLATE_CASES.keys())
def test_parse_chat_template(text, expected):
    assert caps.parse_chat_template(text) == expected


# -- names ----------------------------------------------------------------------------------

NAME_CASES = {
    "Qwen/Qwen3-235B-A22B": (235.0, 22.0),
    "Qwen3-30B-A3B-Instruct-2507": (30.0, 3.0),
    "Qwen3-Next-80B-A3B-Thinking": (80.0, 3.0),
    "Qwen2.5-7B-Instruct": (7.0, None),
    "Qwen2.5-1.5B": (1.5, None),
    "gemma-3-27b-it": (27.0, None),
    "Mixtral-8x7B-Instruct-v0.1": (56.0, None),
    "SmolLM-360M": (0.36, None),
    "DeepSeek-R1-Distill-Qwen-32B": (32.0, None),
    "GLM-4.5": (None, None),
    "DeepSeek-V3": (None, None),
    "bge-m3": (None, None),
    "Qwen2.5-VL-72B-Instruct-AWQ": (72.0, None),
    "X-3B-A30B": (None, None),  # more active than total: a misreading, so nothing
    "X-0B": (None, None),
    "X-999999B": (None, None),
    "": (None, None),
}


@pytest.mark.parametrize("name,expected", NAME_CASES.items(), ids=NAME_CASES.keys())
def test_params_from_name(name, expected):
    assert caps.params_from_name(name) == {"total_b": expected[0], "active_b": expected[1]}


@pytest.mark.parametrize("name", [None, 42, ["7B"], "7B" * 500])
def test_params_from_name_hostile(name):
    assert caps.params_from_name(name) == {"total_b": None, "active_b": None}


# -- combining ----------------------------------------------------------------------------------

NOTHING = dict.fromkeys(caps.COLUMNS)
BUILD_CASES = {
    "everything known": (
        dict(name="Qwen/Qwen3-235B-A22B", providers=caps.parse_providers(ok([fc.modelscope_provider(2, "ultra")])),
             config=caps.parse_config(json.dumps(fc.moe_config())),
             template=caps.parse_chat_template(fc.TEMPLATE_TOOLS_THINKING), tasks=["text-generation"]),
        {"providers": '["ModelScope"]', "cost_per_call": 2.0, "cost_tier": "ultra", "context_length": 32768,
         "context_length_max": 131072, "vision": 0, "tools": 1, "reasoning": 1, "params_b": 235.0}),
    "nothing known": (dict(), NOTHING),
    "nobody serves it, size from the name": (
        dict(name="Qwen/Qwen3.6-35B-A3B", providers=caps.parse_providers(ok(None))),
        {**NOTHING, "providers": "[]", "params_b": 35.0}),
    "vision from the hub's tasks, as stored JSON": (
        dict(name="X/Y", config=caps.parse_config(json.dumps(fc.dense_config())),
             tasks='["image-text-to-text"]'),
        {**NOTHING, "context_length": 32768, "vision": 1, "params_b": 7.62}),
    "vision from task dicts": (
        dict(tasks=[{"Name": "visual-question-answering"}, {"Name": ""}, None]), {**NOTHING, "vision": 1}),
    "thinking by name beats a template without a switch": (
        dict(name="Qwen/Qwen3-VL-8B-Thinking", template=caps.parse_chat_template(fc.TEMPLATE_TOOLS)),
        {**NOTHING, "tools": 1, "reasoning": 1, "params_b": 8.0}),
    "template says no reasoning": (
        dict(name="Qwen/Qwen2.5-7B-Instruct", template=caps.parse_chat_template(fc.TEMPLATE_PLAIN)),
        {**NOTHING, "tools": 0, "reasoning": 0, "params_b": 7.0}),
    "hostile tasks and name": (dict(name=42, tasks=42), NOTHING),
}


@pytest.mark.parametrize("kwargs,expected", BUILD_CASES.values(), ids=BUILD_CASES.keys())
def test_build_capabilities(kwargs, expected):
    assert caps.build_capabilities(**kwargs) == expected


# -- over the fake hub's endpoints ----------------------------------------------------------------


def read_model(base, model_id, session):
    """What the crawl will do for one model: providers, config.json, then the template."""
    r = session.get(base + fc.PROVIDERS_PATH, params={"ModelId": model_id}, timeout=5)
    providers = caps.parse_providers(r.json()) if r.status_code == 200 else None
    files = {}
    for path in ("config.json", "chat_template.jinja", "tokenizer_config.json"):
        r = session.get(f"{base}/api/v1/models/{model_id}/repo",
                        params={"Revision": "master", "FilePath": path}, timeout=5)
        files[path] = r.text if r.status_code == 200 else None
    template = caps.parse_chat_template(files["chat_template.jinja"])
    if template["tools"] is None:
        template = caps.parse_chat_template(files["tokenizer_config.json"])
    return caps.build_capabilities(model_id, providers=providers, config=caps.parse_config(files["config.json"]),
                                   template=template)


HUB_EXPECTED = {
    "Qwen/Qwen2.5-7B-Instruct": {"providers": '["ModelScope", "DashScope"]', "cost_per_call": 1.0,
                                 "cost_tier": "standard", "context_length": 32768, "context_length_max": None,
                                 "vision": 0, "tools": 0, "reasoning": 0, "params_b": 7.62},
    "Qwen/Qwen3-235B-A22B": {"providers": '["ModelScope"]', "cost_per_call": 2.0, "cost_tier": "ultra",
                             "context_length": 32768, "context_length_max": 131072, "vision": 0, "tools": 1,
                             "reasoning": 1, "params_b": 235.0},
    "Qwen/Qwen3-VL-8B-Instruct": {"providers": '["ModelScope"]', "cost_per_call": 1.0, "cost_tier": "standard",
                                  "context_length": 262144, "context_length_max": None, "vision": 1, "tools": 1,
                                  "reasoning": 0, "params_b": 7.62},
    "OpenGVLab/InternVL3-8B": {"providers": '["DashScope"]', "cost_per_call": None, "cost_tier": None,
                               "context_length": 32768, "context_length_max": None, "vision": 1, "tools": 0,
                               "reasoning": 0, "params_b": 7.62},
    "Qwen/Qwen3.6-35B-A3B": {**NOTHING, "providers": "[]", "params_b": 35.0},
}


def test_fake_hub_models_read_back_whole():
    hub = fc.CapsHub()
    with fc.CapsServer(hub) as server, requests.Session() as session:
        got = {mid: read_model(server.hub_url, mid, session) for mid in HUB_EXPECTED}
    assert got == HUB_EXPECTED
    assert dict(hub.counts) == {"providers": 5, "repo": 15, "repo:config.json": 5,
                                "repo:chat_template.jinja": 5, "repo:tokenizer_config.json": 5}


def test_fake_hub_switches():
    hub = fc.CapsHub(null_providers=True, missing_files={"config.json"})
    mid = "Qwen/Qwen3-235B-A22B"
    with fc.CapsServer(hub) as server, requests.Session() as session:
        assert read_model(server.hub_url, mid, session) == {
            **NOTHING, "providers": "[]", "tools": 1, "reasoning": 1, "params_b": 235.0}
        hub.null_providers, hub.missing_files = False, frozenset()
        hub.providers_500, hub.repo_500 = {mid}, {mid}
        assert read_model(server.hub_url, mid, session) == {**NOTHING, "params_b": 235.0}
        # An ID the hub does not know answers 500 (reported), or null when switched off.
        base = server.hub_url + fc.PROVIDERS_PATH
        assert session.get(base, params={"ModelId": "no/such"}, timeout=5).status_code == 500
        hub.unknown_id_500 = False
        assert session.get(base, params={"ModelId": "no/such"}, timeout=5).json()["Data"] == {
            "Providers": None, "TotalCount": 0}
        missing = session.get(server.hub_url + "/api/v1/models/no/such/repo",
                              params={"FilePath": "config.json"}, timeout=5)
        assert (missing.status_code, missing.json()["Code"]) == (404, 10010205001)
    assert hub.log[-3:] == [("providers", "no/such", None), ("providers", "no/such", None),
                            ("repo", "no/such", "config.json")]
    assert hub.respond("GET", "/api/v1/dolphin/models") is None
    assert hub.respond("PUT", fc.PROVIDERS_PATH + "?ModelId=x/y") is None
    with pytest.raises(TypeError):
        fc.CapsHub(no_such_switch=True)


def test_models_for_cycles_the_quirks():
    quirks = list(fc.default_models().values())
    got = fc.models_for(["b/2", "a/1", "c/3", "d/4", "e/5", "f/6"])
    assert list(got) == ["a/1", "b/2", "c/3", "d/4", "e/5", "f/6"]
    assert list(got.values()) == quirks + quirks[:1]
