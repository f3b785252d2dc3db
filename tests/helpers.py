"""Shared test helpers: run crawls against the fake hub and read catalogs back."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from indexer import crawl, fetch, parse, schema, status, store


class Clock:
    """A crawl clock: still until `advance`, or `step` later at each reading when given one."""

    def __init__(self, start, step=None):
        self.now, self.step = start, step

    def __call__(self):
        moment = self.now
        if self.step is not None:
            self.now += self.step
        return moment

    def advance(self, **delta):
        self.now += timedelta(**delta)


class Sleeps(list):
    """A sleep that records instead of waiting, so retry tests run instantly."""

    def __call__(self, seconds):
        self.append(round(seconds, 3))


def make_fetcher(hub, token=None, max_retries=3, timeout=5.0, sleep=None):
    return fetch.Fetcher(fetch.build_session(token), hub_url=hub.hub_url,
                         inference_url=hub.inference_url, delay=0, max_retries=max_retries,
                         backoff=0.01, timeout=timeout,
                         sleep=sleep if sleep is not None else Sleeps())


def run_crawl(db_path, hub, scope="api", confirm=2, **kwargs):
    fetcher = kwargs.pop("fetcher", None) or make_fetcher(hub)
    # Capability reads cost requests of their own; tests of them ask (tests/test_enrich.py).
    kwargs.setdefault("capabilities", False)
    return crawl.crawl(db_path, fetcher, scope=scope, confirm=confirm, **kwargs)


def rows(db_path, sql, params=()):
    db = store.open_db(db_path, create=False)
    try:
        return [dict(r) for r in db.query(sql, params)]
    finally:
        db.conn.close()


def models(db_path):
    """Every models row keyed by ID, with JSON columns decoded."""
    out = {}
    for row in rows(db_path, "select * from models order by model_id"):
        for column in schema.JSON_COLUMNS:
            if row[column] is not None:
                row[column] = json.loads(row[column])
        out[row["model_id"]] = row
    return out


def expected_row(item, api, listed, seen_at=None):
    """The models row a crawl must store for a hub item (without the seen-times)."""
    row = parse.parse_model(item, api=api or listed)
    row.update(api_inference=int(api), in_inference_list=int(listed), removed_at=None)
    return with_status(row)


def with_status(row):
    """`row` plus what the merge derives (issue 11) and the capability columns, unread.

    The rule itself is tested case by case in test_status.py; here it only fills
    in the columns a stored row carries.
    """
    tasks = row["tasks"] if isinstance(row["tasks"], list) else json.loads(row["tasks"] or "[]")
    kind = status.kind_of(tasks)
    answer, reason = status.decide(removed=row["removed_at"] is not None, badge=bool(row["api_inference"]),
                                   listed=bool(row["in_inference_list"]), kind=kind)
    return {**row, "kind": kind, "status": answer, "status_reason": reason,
            **{column: None for column in schema.CAPABILITY_COLUMNS}}


def without_times(row):
    return {k: v for k, v in row.items() if k not in ("first_seen_at", "last_seen_at")}


def valid_items(catalog):
    out = []
    for item in catalog.items:
        try:
            parse.parse_model(item)
        except parse.SkipItem:
            continue
        out.append(item)
    return out


def events(db_path):
    return [(r["model_id"], r["event"], json.loads(r["detail"]) if r["detail"] else None)
            for r in rows(db_path, "select * from model_events order by id")]


# Columns that migrations in progress add to `models` (issue 13's schema
# contract). Delete this helper, and its callers' use of it, once they land.
PLANNED_COLUMNS = {
    "kind": "text", "status": "text", "status_reason": "text", "providers": "text",
    "cost_per_call": "real", "cost_tier": "text", "context_length": "integer",
    "context_length_max": "integer", "vision": "integer", "tools": "integer",
    "reasoning": "integer", "params_b": "real", "capabilities_at": "text",
}
PLANNED_CAPABILITIES = {
    # model_id: (providers, cost_per_call, cost_tier, context_length, context_length_max,
    #            vision, tools, reasoning, params_b)
    "Qwen/Qwen3-235B-A22B-Instruct-2507": ('["modelscope"]', 1.0, "standard", 131072, 262144,
                                           0, 1, 1, 235.0),
    "deepseek-ai/DeepSeek-V3": ('["modelscope"]', 2.0, "premium", 65536, None, 0, 1, 0, 671.0),
    "Qwen/Qwen2.5-7B-Instruct": ('["modelscope"]', 0.1, "cheap", 32768, None, 0, 1, 0, 7.6),
    "Qwen/Qwen3-Omni-30B-A3B-Instruct": ('["modelscope"]', 0.5, "cheap", 65536, None,
                                         1, 0, 1, 30.0),
    "Qwen/Qwen-Image": ('["modelscope"]', 5.0, None, None, None, None, None, None, 20.0),
    # Read, and nobody serves it: not-served whatever its badge says.
    "ZhipuAI/GLM-4.6": ("[]", None, None, None, None, None, None, None, None),
}


def set_capabilities(path):
    """Give a few models of the catalog at `path` known capabilities, and store their status again."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            for model_id, values in PLANNED_CAPABILITIES.items():
                conn.execute(
                    "update models set providers = ?, cost_per_call = ?, cost_tier = ?, "
                    "context_length = ?, context_length_max = ?, vision = ?, tools = ?, "
                    "reasoning = ?, params_b = ?, capabilities_at = '2026-11-15T02:00:20+00:00' "
                    "where model_id = ?", [*values, model_id])
            schema.derive_columns(conn)
    finally:
        conn.close()


# `indexer export | indexer check -` on the bundled sample: every ok ID, in
# export order, with the capabilities the sample read from the fake hub.
SAMPLE_CHECK_OK = [
    "ok         Qwen/Qwen3-235B-A22B-Instruct-2507  chat, 32k context, vision",
    "ok         deepseek-ai/DeepSeek-V3  chat, 32k context, 2 credits/call",
    "ok         Qwen/Qwen-Image  image, 32k context, vision",
    "ok         Qwen/Qwen2.5-7B-Instruct  chat, 32k context, 2 credits/call",
    "ok         Tongyi-MAI/Z-Image-Turbo  image, 262k context, vision, 1 credit/call",
    "ok         ZhipuAI/GLM-4.6  chat, 32k context, vision",
    "ok         deepseek-ai/DeepSeek-V4-Flash-0731  chat, 32k context, vision",
    "ok         AI-ModelScope/Z-Image-Turbo  image, 32k context, 2 credits/call",
    "ok         Qwen/Qwen3-Omni-30B-A3B-Instruct  chat",
    "ok         AI-ModelScope/DeepSeek-V3-0324  chat, 32k context, 1 credit/call",
    "ok         Tongyi-MAI/Z-Image-Turbo-2  image",
    "ok         mlx-community/Llama-3.1-8B-MLX-4bit  chat, 262k context, tools, vision, 1 credit/call",
    "ok         AI-ModelScope/internlm2_5-20b-chat-1m  chat, 262k context, tools, vision, 1 credit/call",
    "ok         AI-ModelScope/Emu3-Chat  image, 32k context, 2 credits/call",
    "ok         AI-ModelScope/Qwen-Image-Edit-2509  image, 32k context, vision",
    "ok         AI-ModelScope/stable-diffusion-3.5-large-turbo  image, 32k context, vision",
    "ok         mlx-community/Llama-3.1-70B-8bit  chat, 32k context, 2 credits/call",
    "ok         moonshotai/Kimi-K2-Thinking  chat, 32k context, reasoning, 2 credits/call",
    "ok         LLM-Research/Llama-3.1-8B-Instruct  chat, 32k context, 2 credits/call",
    "ok         LLM-Research/Llama-3.2-1B-Instruct  chat, 262k context, tools, vision, 1 credit/call",
    "ok         moonshotai/Kimi-K2-Thinking-ft  chat, 262k context, tools, vision, reasoning, 1 credit/call",
    "ok         Shanghai_AI_Laboratory/internlm2_5-20b  chat, 32k context, 2 credits/call",
    "ok         lmstudio-community/Phi-3.5-MoE-Q4_K_M-GGUF  chat, 32k context, 1 credit/call",
    "ok         mlx-community/Llama-3.2-3B-8bit  chat, 32k context, vision",
    "ok         Kwai-Kolors/Kolors-diffusers  image, 32k context, 1 credit/call",
    "ok         damo/nlp_bert_large_backbone_chinese-chat  other, 32k context, 1 credit/call",
    "ok         Shanghai_AI_Laboratory/internlm2_5-1_8b  chat, 32k context, 1 credit/call",
    "ok         AI-ModelScope/Qwen3-30B-A3B-Base  chat, 32k context, 1 credit/call",
    "ok         Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4  chat, 262k context, tools, vision, 1 credit/call",
    "ok         deepseek-ai/DeepSeek-V4-Flash  other, 262k context, vision, 1 credit/call",
]
