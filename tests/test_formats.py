"""Each export parsed back with its target's own rules (docs/capabilities.md §7; issue 12)."""

from __future__ import annotations

import io
import itertools
import json
import os
import re

import pytest
import tomllib

from indexer import formats

CHAT = {"model_id": "Qwen/Qwen3-235B-A22B", "name": "Qwen3-235B-A22B", "kind": "chat",
        "providers": '["ModelScope"]', "cost_per_call": 2.0, "cost_tier": "ultra", "context_length": 32768,
        "context_length_max": 131072, "vision": 0, "tools": 1, "reasoning": 1, "params_b": 235.0,
        "created_at": "2025-04-28T10:00:00+00:00", "updated_at": "2025-07-21T08:30:00+00:00",
        "tasks": '["text-generation"]'}
VISION = {**CHAT, "model_id": "Qwen/Qwen3-VL-8B-Instruct", "name": 'Qwen3 "VL" \\ 8B\n<new>, =eq',
          "context_length": 262144, "context_length_max": None, "vision": 1, "tools": None, "reasoning": 0,
          "updated_at": None, "tasks": '["image-text-to-text"]'}
UNKNOWN = {**CHAT, "model_id": "OpenGVLab/InternVL3-8B", "name": None, "context_length": None, "vision": None,
           "tools": None, "reasoning": None}
IMAGE = {**CHAT, "model_id": "Tongyi-MAI/Z-Image-Turbo", "name": "Z-Image-Turbo", "kind": "image",
         "context_length": None, "vision": None, "tools": None, "reasoning": None}
SPEECH = {**CHAT, "model_id": "iic/CosyVoice2-0.5B", "kind": "speech"}
EVIL = {**CHAT, "model_id": "../../etc/passwd"}
NO_DATE = {**CHAT, "model_id": "X/no-date", "created_at": None, "updated_at": "yesterday"}
ROWS = [CHAT, VISION, UNKNOWN, IMAGE, SPEECH, EVIL, NO_DATE]

# models.dev's schema for a provider model (docs/capabilities.md §7.1): objects are
# strict, so the exporter may only use these keys.
MD_REQUIRED = {"name", "attachment", "reasoning", "tool_call", "release_date", "last_updated", "open_weights",
               "modalities", "limit"}
MD_ALLOWED = MD_REQUIRED | {"family", "reasoning_options", "structured_output", "temperature", "interleaved",
                            "knowledge", "cost", "status", "provider", "experimental"}
MD_MODALITIES = {"text", "audio", "image", "video", "pdf"}


def check_models_dev(doc: dict) -> None:
    assert MD_REQUIRED <= set(doc) <= MD_ALLOWED
    assert isinstance(doc["name"], str) and doc["name"]
    for key in ("attachment", "reasoning", "tool_call", "open_weights"):
        assert isinstance(doc[key], bool)
    for key in ("release_date", "last_updated"):
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", doc[key])
    assert ("reasoning_options" in doc) == doc["reasoning"]
    assert set(doc["modalities"]) == {"input", "output"}
    assert set(doc["modalities"]["input"]) | set(doc["modalities"]["output"]) <= MD_MODALITIES
    assert {"context", "output"} <= set(doc["limit"]) <= {"context", "output", "input"}
    if "cost" in doc:
        assert {"input", "output"} <= set(doc["cost"])


def test_models_dev_tree(tmp_path):
    result = formats.write_models_dev(ROWS, tmp_path)
    found = {}
    for folder, _, files in os.walk(tmp_path):
        for f in files:
            path = os.path.join(folder, f)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, tmp_path)] = tomllib.load(fh)
    for doc in found.values():
        check_models_dev(doc)
    assert found == {
        "providers/modelscope/models/Qwen/Qwen3-235B-A22B.toml": {
            "name": "Qwen3-235B-A22B", "release_date": "2025-04-28", "last_updated": "2025-07-21",
            "attachment": False, "reasoning": True, "reasoning_options": [], "tool_call": True,
            "open_weights": True, "cost": {"input": 0, "output": 0}, "limit": {"context": 32768, "output": 32768},
            "modalities": {"input": ["text"], "output": ["text"]}},
        "providers/modelscope/models/Qwen/Qwen3-VL-8B-Instruct.toml": {
            "name": 'Qwen3 "VL" \\ 8B\n<new>, =eq', "release_date": "2025-04-28", "last_updated": "2025-04-28",
            "attachment": True, "reasoning": False, "tool_call": False, "open_weights": True,
            "cost": {"input": 0, "output": 0}, "limit": {"context": 262144, "output": 262144},
            "modalities": {"input": ["text", "image"], "output": ["text"]}},
    }
    assert (result.written, result.skipped) == (2, {
        "OpenGVLab/InternVL3-8B": "context length unknown",
        "Tongyi-MAI/Z-Image-Turbo": "not a chat model",
        "iic/CosyVoice2-0.5B": "not a chat model",
        "../../etc/passwd": "model ID is not a safe Owner/Name path",
        "X/no-date": "dates unknown",
    })


def test_models_dev_writes_the_house_style(tmp_path):
    formats.write_models_dev([CHAT], tmp_path)
    path = tmp_path / "providers/modelscope/models/Qwen/Qwen3-235B-A22B.toml"
    assert path.read_text(encoding="utf-8") == (
        'name = "Qwen3-235B-A22B"\nrelease_date = "2025-04-28"\nlast_updated = "2025-07-21"\n'
        "attachment = false\nreasoning = true\nreasoning_options = []\ntool_call = true\nopen_weights = true\n"
        "\n[cost]\ninput = 0\noutput = 0\n\n[limit]\ncontext = 32_768\noutput = 32_768\n"
        '\n[modalities]\ninput = ["text"]\noutput = ["text"]\n')


HOSTILE_STRINGS = ["".join(map(chr, range(128))), "魔搭社区 ✓", "a\ud800b", '"""', "'''", "\\u0041",
                   "\x7f\x1b[0m", "\u2028\u2029\ufeff", "#not a comment", "key = \"value\"\n[table]"]


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
def test_toml_string_round_trips(value):
    expected = value.replace("\ud800", "\ufffd")
    assert tomllib.loads(f"x = {formats.toml_string(value)}\n") == {"x": expected}


def test_litellm_map():
    out = io.StringIO()
    result = formats.write_litellm(ROWS, out)
    assert out.getvalue().endswith("}\n")
    common = {"litellm_provider": "modelscope", "input_cost_per_token": 0, "output_cost_per_token": 0}
    assert json.loads(out.getvalue()) == {
        "modelscope/Qwen/Qwen3-235B-A22B": {**common, "mode": "chat", "max_input_tokens": 32768,
                                            "supports_vision": False, "supports_function_calling": True,
                                            "supports_reasoning": True},
        "modelscope/Qwen/Qwen3-VL-8B-Instruct": {**common, "mode": "chat", "max_input_tokens": 262144,
                                                 "supports_vision": True, "supports_reasoning": False},
        "modelscope/OpenGVLab/InternVL3-8B": {**common, "mode": "chat"},
        "modelscope/Tongyi-MAI/Z-Image-Turbo": {**common, "mode": "image_generation"},
        "modelscope/X/no-date": {**common, "mode": "chat", "max_input_tokens": 32768, "supports_vision": False,
                                 "supports_function_calling": True, "supports_reasoning": True},
    }
    assert (result.written, result.skipped) == (5, {
        "iic/CosyVoice2-0.5B": "no LiteLLM mode for this kind",
        "../../etc/passwd": "model ID is not a safe Owner/Name path"})


def parse_lobechat(value: str) -> list[dict]:
    """LobeChat's model-list grammar (docs/capabilities.md §7.3), read strictly.

    item := ("-all" | ("+" | "-") id ["=" displayName] ["<" maxToken {":" ability} ">"])
    items are separated by ASCII commas.
    """
    abilities = {"vision", "reasoning", "search", "fc", "file", "imageOutput"}
    out = []
    for item in value.split(","):
        if item == "-all":
            out.append({"op": "-all"})
            continue
        m = re.fullmatch(r"([+-])([^=<>,]+?)(?:=([^=<>,]+))?(?:<(\d+)((?::\w+)*)>)?", item)
        assert m, f"not in LobeChat's grammar: {item!r}"
        flags = [f for f in m.group(5).split(":") if f] if m.group(5) else []
        assert set(flags) <= abilities and len(flags) == len(set(flags))
        out.append({"op": m.group(1), "id": m.group(2), "name": m.group(3),
                    "max_tokens": int(m.group(4)) if m.group(4) else None, "abilities": flags})
    return out


def test_lobechat_list():
    out = io.StringIO()
    result = formats.write_lobechat(ROWS, out)
    value = out.getvalue()
    assert value.endswith("\n") and "\n" not in value[:-1]
    assert parse_lobechat(value[:-1]) == [
        {"op": "-all"},
        {"op": "+", "id": "Qwen/Qwen3-235B-A22B", "name": "Qwen3-235B-A22B", "max_tokens": 32768,
         "abilities": ["reasoning", "fc"]},
        {"op": "+", "id": "Qwen/Qwen3-VL-8B-Instruct", "name": 'Qwen3 "VL" \\ 8B new eq', "max_tokens": 262144,
         "abilities": ["vision"]},
        {"op": "+", "id": "OpenGVLab/InternVL3-8B", "name": "InternVL3-8B", "max_tokens": None, "abilities": []},
        {"op": "+", "id": "X/no-date", "name": "Qwen3-235B-A22B", "max_tokens": 32768,
         "abilities": ["reasoning", "fc"]},
    ]
    assert result.written == 4 and set(result.skipped) == {"Tongyi-MAI/Z-Image-Turbo", "iic/CosyVoice2-0.5B",
                                                           "../../etc/passwd"}


def test_lobechat_docs_example():
    # The example in docs/capabilities.md §7.3, rebuilt from rows.
    rows = [{**CHAT, "model_id": "ZhipuAI/GLM-4.6", "name": "GLM-4.6", "context_length": 202752},
            {**CHAT, "model_id": "Qwen/Qwen3-235B-A22B-Instruct-2507", "name": "", "context_length": 262144,
             "reasoning": 0}]
    out = io.StringIO()
    formats.write_lobechat(rows, out)
    assert out.getvalue() == ("-all,+ZhipuAI/GLM-4.6=GLM-4.6<202752:reasoning:fc>,"
                              "+Qwen/Qwen3-235B-A22B-Instruct-2507=Qwen3-235B-A22B-Instruct-2507<262144:fc>\n")


def cherry_paste(line: str) -> list[str]:
    """What Cherry Studio's add-model box does with one paste (docs/capabilities.md §7.4)."""
    assert len(line) <= formats.CHERRY_MAX  # maxLength={200}
    text = line.strip().replace("，", ",")
    return [part.strip() for part in text.split(",") if part.strip()]


def test_cherry_lines_fit_the_box():
    ids = [f"Owner{i % 7}/Model-Name-{i:03d}-Instruct-2507" for i in range(40)]
    rows = [{"model_id": i} for i in ids]
    rows += [{"model_id": "x/" + "y" * 199}, {"model_id": "a/b,c"}, {"model_id": "a/b c"}, {"model_id": None}]
    out = io.StringIO()
    result = formats.write_cherry(rows, out)
    lines = out.getvalue().splitlines()
    pasted = [mid for line in lines for mid in cherry_paste(line)]
    assert pasted == ids
    # Each line is full: the next ID would not have fitted.
    for line, following in itertools.pairwise(lines):
        assert len(line) + 1 + len(following.split(",")[0]) > formats.CHERRY_MAX
    assert (len(lines), result.written, len(result.skipped)) == (8, 40, 4)


def test_cherry_id_of_exactly_200():
    mid = "o/" + "n" * 198
    out = io.StringIO()
    formats.write_cherry([{"model_id": "a/b"}, {"model_id": mid}], out)
    assert out.getvalue() == f"a/b\n{mid}\n"


def test_empty_exports(tmp_path):
    for write in (formats.write_litellm, formats.write_lobechat, formats.write_cherry):
        out = io.StringIO()
        assert write([], out) == formats.Written(0, {})
        assert out.getvalue() == {formats.write_litellm: "{}\n", formats.write_lobechat: "-all\n",
                                  formats.write_cherry: ""}[write]
    assert formats.write_models_dev([], tmp_path) == formats.Written(0, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("second,lines", [(99, 1), (100, 2)])
def test_cherry_boundary(second, lines):
    # 100 + comma + 99 is exactly the box's 200 characters; one more needs a second paste.
    first, other = "a/" + "b" * 98, "c/" + "d" * (second - 2)
    out = io.StringIO()
    formats.write_cherry([{"model_id": first}, {"model_id": other}], out)
    got = out.getvalue().splitlines()
    assert [mid for line in got for mid in cherry_paste(line)] == [first, other]
    assert len(got) == lines
