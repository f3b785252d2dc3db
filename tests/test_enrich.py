"""Capabilities after a crawl: what is read, how often, and what a failure leaves (issue 12)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from indexer import store
from tests.helpers import events, rows, run_crawl

DAY1 = datetime(2026, 10, 5, 3, 0, tzinfo=timezone.utc)
AT1 = "2026-10-05T03:00:00+00:00"
COLUMNS = ("model_id", "kind", "status", "providers", "cost_per_call", "cost_tier", "context_length",
           "context_length_max", "vision", "tools", "reasoning", "params_b")
SERVED_BOTH = '["ModelScope", "DashScope"]'
# Each API (or listed) model of the fixture catalog gets one of the fake hub's
# five quirks in turn (tests/fakehub_caps.py models_for): a dense LLM served by
# ModelScope and DashScope; an MoE with rope scaling whose template is only in
# chat_template.jinja (not read, so tools and reasoning stay unknown); a VL
# model with a named template list that has tools; an InternVL model served by
# third parties only; and one nobody serves, whose repository has no files
# (params from its name). Image and other kinds get no template request.
EXPECTED = [
    ("AI-ModelScope/DeepSeek-V3-0324", "chat", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, 0, 0, 7.62),
    ("AI-ModelScope/Emu3-Chat", "image", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None, 235.0),
    ("AI-ModelScope/Phi-3.5-mini-instruct", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 0,
     7.62),
    ("AI-ModelScope/Qwen-Image-Edit-2509", "image", "ok", '["DashScope"]', None, None, 32768, None, 1, None, None,
     7.62),
    ("AI-ModelScope/Qwen2.5-7B-Instruct-AWQ", "chat", "ok", None, None, None, None, None, None, None, None, 7.0),
    ("AI-ModelScope/Qwen3-30B-A3B-Base", "chat", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, 0, 0, 7.62),
    ("AI-ModelScope/Z-Image-Turbo", "image", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None,
     235.0),
    ("AI-ModelScope/internlm2_5-20b-chat-1m", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 0,
     7.62),
    ("AI-ModelScope/stable-diffusion-3.5-large-turbo", "image", "ok", '["DashScope"]', None, None, 32768, None, 1,
     None, None, 7.62),
    ("FireRedTeam/FireRed-Image-Edit-1.1", "image-edit", "ok", None, None, None, None, None, None, None, None, None),
    ("Kwai-Kolors/Kolors-diffusers", "image", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, None, None, 7.62),
    ("LLM-Research/Llama-3.1-8B-Instruct", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None,
     235.0),
    ("LLM-Research/Llama-3.2-1B-Instruct", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 0,
     7.62),
    ("Qwen/Qwen-Image", "image", "ok", '["DashScope"]', None, None, 32768, None, 1, None, None, 7.62),
    ("Qwen/Qwen2.5-32B-Instruct-GPTQ-Int4", "chat", "ok", None, None, None, None, None, None, None, None, 32.0),
    ("Qwen/Qwen2.5-72B-Instruct", "other", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, None, None, 7.62),
    ("Qwen/Qwen2.5-7B-Instruct", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None, 235.0),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 0,
     7.62),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507", "chat", "ok", '["DashScope"]', None, None, 32768, None, 1, 0, 0, 7.62),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", "chat", "ok", None, None, None, None, None, None, None, None, 80.0),
    ("Shanghai_AI_Laboratory/internlm2_5-1_8b", "chat", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, 0, 0,
     7.62),
    ("Shanghai_AI_Laboratory/internlm2_5-20b", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None,
     None, 235.0),
    ("Tongyi-MAI/Z-Image-Turbo", "image", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, None, None, 7.62),
    ("ZhipuAI/GLM-4.6", "chat", "ok", '["DashScope"]', None, None, 32768, None, 1, 0, 0, 7.62),
    ("damo/mplug_base_image-captioning_coco_en", "other", "ok", None, None, None, None, None, None, None, None, None),
    ("damo/nlp_bert_large_backbone_chinese-chat", "other", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, None,
     None, 7.62),
    ("deepseek-ai/DeepSeek-V3", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None, 235.0),
    ("deepseek-ai/DeepSeek-V4-Flash", "other", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, None, None,
     7.62),
    ("deepseek-ai/DeepSeek-V4-Flash-0731", "chat", "ok", '["DashScope"]', None, None, 32768, None, 1, 0, 0, 7.62),
    ("lmstudio-community/Llama-3.2-1B-Q4_K_M-GGUF", "chat", "ok", None, None, None, None, None, None, None, None, 1.0),
    ("lmstudio-community/Phi-3.5-MoE-Q4_K_M-GGUF", "chat", "ok", SERVED_BOTH, 1.0, "standard", 32768, None, 0, 0, 0,
     7.62),
    ("mlx-community/Llama-3.1-70B-8bit", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None,
     235.0),
    ("mlx-community/Llama-3.1-8B-MLX-4bit", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 0,
     7.62),
    ("mlx-community/Llama-3.2-3B-8bit", "chat", "ok", '["DashScope"]', None, None, 32768, None, 1, 0, 0, 7.62),
    ("mlx-community/Qwen2.5-14B-3bit", "chat", "ok", None, None, None, None, None, None, None, None, 14.0),
    # Unlisted by /v1/models although a chat model (indexer/status.py).
    ("moonshotai/Kimi-K2-Instruct", "chat", "not-served", SERVED_BOTH, 1.0, "standard", 32768, None, 0, 0, 0, 7.62),
    # "Thinking" in the name says reasoning even where the template cannot.
    ("moonshotai/Kimi-K2-Thinking", "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, 1, 235.0),
    ("moonshotai/Kimi-K2-Thinking-ft", "chat", "ok", '["ModelScope"]', 1.0, "standard", 262144, None, 1, 1, 1, 7.62),
]
NOBODY = [row[0] for row in EXPECTED if row[3] is None]  # the quirk nobody serves
EXPECTED_IDS = [row[0] for row in EXPECTED]


def caps_rows(db_path, where="api_inference = 1 or in_inference_list = 1"):
    return [tuple(r.values()) for r in rows(db_path, f"select {', '.join(COLUMNS)} from models "
                                                      f"where {where} order by model_id")]


def crawl_on(db_path, hub, moment, **kwargs):
    result = run_crawl(db_path, hub, capabilities=True, now=lambda: moment, **kwargs)
    assert result.status == "complete", result.summary()
    return result


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "c.db"


def test_a_full_crawl_fills_every_capability_column_of_its_api_models(db_path, fakehub):
    result = crawl_on(db_path, fakehub, DAY1)
    assert caps_rows(db_path) == EXPECTED
    # Every other model keeps every capability column NULL.
    others = rows(db_path, "select count(*) as n from models where api_inference = 0 and in_inference_list = 0 "
                           "and coalesce(providers, cost_per_call, cost_tier, context_length, context_length_max, "
                           "vision, tools, reasoning, params_b, capabilities_at, providers_at) is not null")
    assert others == [{"n": 0}]
    # One providers request per model; config.json for each; the template for chat models only.
    assert dict(fakehub.caps.counts) == {"providers": 38, "repo": 38 + 26, "repo:config.json": 38,
                                         "repo:tokenizer_config.json": 26}
    assert {(r["capabilities_at"], r["providers_at"]) for r in rows(
        db_path, "select capabilities_at, providers_at from models where api_inference = 1 "
                 "or in_inference_list = 1")} == {(AT1, AT1)}
    run = rows(db_path, "select capabilities_read, warnings from crawl_runs")
    assert run == [{"capabilities_read": 38, "warnings": "{}"}]
    assert result.summary().endswith("; capabilities of 38 models read")


def test_an_unchanged_recrawl_reads_no_repository_file(db_path, fakehub):
    crawl_on(db_path, fakehub, DAY1)
    fakehub.caps.reset_counts()
    again = crawl_on(db_path, fakehub, DAY1 + timedelta(hours=6))
    # Same day: nothing is due, not even the providers.
    assert dict(fakehub.caps.counts) == {}
    assert again.capabilities_read == 0
    next_day = crawl_on(db_path, fakehub, DAY1 + timedelta(days=1))
    # Next day: the providers once each, still no repository file.
    assert dict(fakehub.caps.counts) == {"providers": 38}
    assert next_day.capabilities_read == 38
    assert rows(db_path, "select requests, capabilities_read from crawl_runs order by id") == [
        {"requests": 4 + 38 + 64, "capabilities_read": 38}, {"requests": 4, "capabilities_read": 0},
        {"requests": 4 + 38, "capabilities_read": 38}]


def test_a_model_whose_repository_moved_has_its_files_read_again(db_path, catalog, fakehub):
    crawl_on(db_path, fakehub, DAY1)
    fakehub.caps.reset_counts()
    item = catalog.get("Qwen/Qwen2.5-7B-Instruct")
    catalog.update("Qwen/Qwen2.5-7B-Instruct", LastUpdatedTime=int(DAY1.timestamp()) + 3600)
    assert item is not None
    crawl_on(db_path, fakehub, DAY1 + timedelta(hours=2))
    assert fakehub.caps.log == [("repo", "Qwen/Qwen2.5-7B-Instruct", "config.json"),
                                ("repo", "Qwen/Qwen2.5-7B-Instruct", "tokenizer_config.json")]


def test_providers_turning_null_make_a_model_not_served_on_the_second_reading(db_path, fakehub):
    mid = "AI-ModelScope/DeepSeek-V3-0324"
    crawl_on(db_path, fakehub, DAY1)
    fakehub.caps.models[mid]["providers"] = None
    crawl_on(db_path, fakehub, DAY1 + timedelta(days=1))
    # One null reading is remembered, not stored.
    assert caps_rows(db_path, f"model_id = '{mid}'") == [EXPECTED[0]]
    third = crawl_on(db_path, fakehub, DAY1 + timedelta(days=2))
    assert caps_rows(db_path, f"model_id = '{mid}'") == [
        (mid, "chat", "not-served", "[]", None, None, 32768, None, 0, 0, 0, 7.62)]
    # The models nobody ever served turned a day earlier, on their second reading.
    assert [e for e in events(db_path) if e[1] == "status_changed"] == [
        (m, "status_changed", {"old": "ok", "new": "not-served", "reason": "no provider serves it"})
        for m in [*NOBODY, mid]]
    assert third.events == 1
    # A provider coming back is believed at once.
    fakehub.caps.models[mid]["providers"] = [{"Name": "ModelScope", "EstimatedMagicGrainCost": 1,
                                              "CostTier": "standard"}]
    crawl_on(db_path, fakehub, DAY1 + timedelta(days=3))
    assert caps_rows(db_path, f"model_id = '{mid}'") == [
        (mid, "chat", "ok", '["ModelScope"]', 1.0, "standard", 32768, None, 0, 0, 0, 7.62)]
    assert events(db_path)[-1] == (mid, "status_changed", {"old": "not-served", "new": "ok",
                                                           "reason": "the inference service's /v1/models "
                                                                     "list names it"})


def test_a_providers_500_keeps_the_old_values_and_counts_a_warning(db_path, fakehub):
    mid = "AI-ModelScope/DeepSeek-V3-0324"
    crawl_on(db_path, fakehub, DAY1)
    before = rows(db_path, "select * from models where model_id = ?", [mid])
    fakehub.caps.providers_500 = {mid}
    fakehub.caps.models[mid]["providers"] = None
    result = crawl_on(db_path, fakehub, DAY1 + timedelta(days=1))
    after = rows(db_path, "select * from models where model_id = ?", [mid])
    assert [{k: v for k, v in r.items() if k != "last_seen_at"} for r in after] == [
        {k: v for k, v in r.items() if k != "last_seen_at"} for r in before]
    assert result.warnings == {"capabilities_failed": 1}
    assert rows(db_path, "select warnings from crawl_runs where id = 2") == [
        {"warnings": '{"capabilities_failed": 1}'}]
    # Not asked again the same day?  It is: a failed read is not a reading.
    fakehub.caps.reset_counts()
    crawl_on(db_path, fakehub, DAY1 + timedelta(days=1, hours=1))
    assert dict(fakehub.caps.counts) == {"providers": 4}  # the first try and three retries


def test_a_repository_500_keeps_the_old_values(db_path, fakehub):
    mid = "Qwen/Qwen2.5-7B-Instruct"
    fakehub.caps.repo_500 = {mid}
    result = crawl_on(db_path, fakehub, DAY1)
    row = caps_rows(db_path, f"model_id = '{mid}'")
    # Providers were read; the files were not, so they are asked again next crawl.
    assert row == [(mid, "chat", "ok", '["ModelScope"]', 2.0, "ultra", None, None, None, None, None, None)]
    assert result.warnings == {"capabilities_failed": 1}
    fakehub.caps.repo_500 = False
    crawl_on(db_path, fakehub, DAY1 + timedelta(hours=1))
    assert caps_rows(db_path, f"model_id = '{mid}'") == [
        (mid, "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None, 235.0)]


def test_reads_ahead_of_the_merge_and_after_it_for_a_model_the_debounce_keeps(db_path, catalog, fakehub):
    # Read ahead: what the staged sets make due. After the merge: a model that left both
    # sets this crawl keeps its flags (confirm=2), so it is still due, and read then.
    crawl_on(db_path, fakehub, DAY1)
    mid = "Qwen/Qwen2.5-7B-Instruct"
    catalog.set_api(mid, False)
    catalog.set_listed(mid, False)
    fakehub.caps.reset_counts()
    crawl_on(db_path, fakehub, DAY1 + timedelta(days=1))
    assert dict(fakehub.caps.counts) == {"providers": 38}
    providers = [m for endpoint, m, _ in fakehub.caps.log if endpoint == "providers"]
    # The 37 still in a set first, in ID order, then the one only the debounce holds.
    assert providers == sorted(set(EXPECTED_IDS) - {mid}) + [mid]
    assert caps_rows(db_path, f"model_id = '{mid}'") == [
        (mid, "chat", "ok", '["ModelScope"]', 2.0, "ultra", 32768, 131072, 0, None, None, 235.0)]


def test_a_merge_that_fails_stops_the_reads_ahead_and_writes_no_capability(db_path, fakehub):
    # A real SQLite error in the merge (a trap on the stats it writes first).
    conn = store.open_db(db_path).conn
    conn.execute("create trigger trap before insert on model_stats "
                 "begin select raise(abort, 'disk I/O error'); end")
    conn.commit()
    result = run_crawl(db_path, fakehub, capabilities=True, now=lambda: DAY1)
    assert result.status == "failed" and "disk I/O error" in result.error
    # The thread was stopped and waited for: nothing reads the hub after the crawl.
    assert [t.name for t in threading.enumerate() if t.name == "capabilities"] == []
    asked = len(fakehub.caps.log)
    time.sleep(0.2)
    assert len(fakehub.caps.log) == asked
    assert rows(db_path, "select count(*) as n from models") == [{"n": 0}]


def test_a_model_whose_staged_tasks_made_it_chat_has_its_template_read(db_path, catalog, fakehub):
    # The kind comes from the staged tasks, not the stored ones; read ahead or after
    # the merge, the template is read once.
    mid = "Tongyi-MAI/Z-Image-Turbo"  # kind "image" in the fixture
    crawl_on(db_path, fakehub, DAY1)
    fakehub.caps.reset_counts()
    catalog.update(mid, Tasks=[{"Name": "text-generation"}],
                   LastUpdatedTime=int(DAY1.timestamp()) + 3600)
    crawl_on(db_path, fakehub, DAY1 + timedelta(hours=2))
    assert fakehub.caps.log == [("repo", mid, "config.json"), ("repo", mid, "tokenizer_config.json")]
    assert caps_rows(db_path, f"model_id = '{mid}'")[0][1] == "chat"


# Exports and check on an enriched catalog --------------------------------------


def cli(*args):
    from click.testing import CliRunner

    from indexer.cli import cli as indexer_cli

    return CliRunner().invoke(indexer_cli, list(args), env={"MODELSCOPE_TOKEN": ""}, catch_exceptions=False)


@pytest.fixture
def enriched(db_path, fakehub):
    crawl_on(db_path, fakehub, DAY1)
    return db_path


def test_export_filters_on_capabilities(enriched):
    result = cli("export", "--db", str(enriched), "--kind", "chat", "--vision", "--tools",
                 "--min-context", "32000", "--max-cost", "1", "--sort", "id")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "AI-ModelScope/Phi-3.5-mini-instruct", "AI-ModelScope/internlm2_5-20b-chat-1m",
        "LLM-Research/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
        "mlx-community/Llama-3.1-8B-MLX-4bit", "moonshotai/Kimi-K2-Thinking-ft"]
    reasoning = cli("export", "--db", str(enriched), "--reasoning", "--sort", "id")
    assert reasoning.stdout.splitlines() == ["moonshotai/Kimi-K2-Thinking", "moonshotai/Kimi-K2-Thinking-ft"]


def test_each_tool_export_parses_back_in_its_format(enriched, tmp_path):
    import tomllib

    from tests.test_formats import cherry_paste, parse_lobechat

    base = ["export", "--db", str(enriched), "--sort", "id", "--owner", "moonshotai"]
    litellm = json.loads(cli(*base, "--format", "litellm").stdout)
    assert litellm == {
        "modelscope/moonshotai/Kimi-K2-Thinking": {
            "litellm_provider": "modelscope", "mode": "chat", "max_input_tokens": 32768,
            "input_cost_per_token": 0, "output_cost_per_token": 0, "supports_vision": False,
            "supports_reasoning": True},
        "modelscope/moonshotai/Kimi-K2-Thinking-ft": {
            "litellm_provider": "modelscope", "mode": "chat", "max_input_tokens": 262144,
            "input_cost_per_token": 0, "output_cost_per_token": 0, "supports_vision": True,
            "supports_function_calling": True, "supports_reasoning": True}}
    lobe = cli(*base, "--format", "lobechat").stdout
    assert [(m.get("id"), m.get("max_tokens"), m.get("abilities")) for m in parse_lobechat(lobe.strip())] == [
        (None, None, None), ("moonshotai/Kimi-K2-Thinking", 32768, ["reasoning"]),
        ("moonshotai/Kimi-K2-Thinking-ft", 262144, ["vision", "reasoning", "fc"])]
    cherry = cli(*base, "--format", "cherry").stdout
    assert [cherry_paste(line) for line in cherry.splitlines()] == [
        ["moonshotai/Kimi-K2-Thinking", "moonshotai/Kimi-K2-Thinking-ft"]]
    out = tmp_path / "md"
    written = cli(*base, "--format", "models-dev", "--output", str(out))
    assert written.exit_code == 0, written.output
    tree = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.toml"))
    assert tree == ["providers/modelscope/models/moonshotai/Kimi-K2-Thinking-ft.toml",
                    "providers/modelscope/models/moonshotai/Kimi-K2-Thinking.toml"]
    doc = tomllib.loads((out / tree[0]).read_text(encoding="utf-8"))
    assert (doc["reasoning"], doc["tool_call"], doc["limit"]["context"]) == (True, True, 262144)


def test_models_dev_needs_a_writable_folder(enriched, tmp_path):
    missing = cli("export", "--db", str(enriched), "--format", "models-dev")
    assert (missing.exit_code, missing.stderr.splitlines()[-1]) == (
        2, "Error: --format models-dev writes a folder: give it with --output DIR")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = cli("export", "--db", str(enriched), "--format", "models-dev", "--output", str(blocker))
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[-1] == f"Error: cannot write {blocker}: Not a directory"


def test_check_shows_capabilities_on_an_ok_line(enriched):
    result = cli("check", "--db", str(enriched), "moonshotai/Kimi-K2-Thinking-ft", "Qwen/Qwen2.5-7B-Instruct")
    assert result.stdout == ("ok         moonshotai/Kimi-K2-Thinking-ft  chat, 262k context, tools, vision, "
                             "reasoning, 1 credit/call\n"
                             "ok         Qwen/Qwen2.5-7B-Instruct  chat, 32k context, 2 credits/call\n")
