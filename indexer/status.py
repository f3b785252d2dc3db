"""Pure: what kind of call a model takes, and whether an ID will work (the one place this rule lives).

The merge stores both answers on every `models` row (`kind`, `status`,
`status_reason`), through the SQLite functions `register_functions` adds, and
every surface (the CLI's check and export, the site's pages and feed) reads the
stored columns instead of deciding again. docs/status.md explains the rule.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable

# How a model is called, from the hub's task names. The names are the ones the
# hub sends (`Tasks[].Name`, and the task list endpoint; docs/modelscope-api.md
# §2.3, docs/capabilities.md §2). Chat includes the multimodal dialogue tasks:
# vision-language chat models are called through /v1/chat/completions too.
TASK_KINDS: dict[str, str] = {
    "text-generation": "chat",
    "text2text-generation": "chat",
    "chat": "chat",
    "image-text-to-text": "chat",
    "visual-question-answering": "chat",
    "multimodal-dialogue": "chat",
    "multi-modal-dialogue": "chat",
    "video-text-to-text": "chat",
    "audio-text-to-text": "chat",
    "any-to-any": "chat",
    "text-to-image-synthesis": "image",
    "text-to-image": "image",
    "image-to-image": "image-edit",
    "image-editing": "image-edit",
    "text-to-video-synthesis": "video",
    "text-to-video": "video",
    "image-to-video": "video",
    "video-generation": "video",
    "sentence-embedding": "embedding",
    "text-embedding": "embedding",
    "feature-extraction": "embedding",
    "sentence-similarity": "embedding",
    "text-ranking": "embedding",
    "text-to-speech": "speech",
    "speech-synthesis": "speech",
    "auto-speech-recognition": "speech",
    "automatic-speech-recognition": "speech",
}

# A model with several tasks takes the first of its kinds in this order: a chat
# model that can also edit images is still called as a chat model.
KINDS = ("chat", "image", "image-edit", "video", "embedding", "speech", "other")

# The words every surface uses, in the order docs/changes-export-check.md lists them.
STATUSES = ("ok", "not-served", "not-api", "removed")
UNKNOWN = "unknown"  # only `indexer check` says this: an ID the catalog never saw

REASONS = {
    "listed": "the inference service's /v1/models list names it",
    "badge": "it has the hub's API-Inference badge (/v1/models lists chat models only)",
    "unlisted": "it has the API-Inference badge, but /v1/models lacks this chat model",
    "no-provider": "no provider serves it",
    "not-api": "it is not served by API-Inference",
    "removed": "it is gone from the hub",
    "unknown": "the catalog has never seen this ID",
}


# How the feed and `indexer changes` say a status_changed event, by the new status.
HEADLINES = {
    "ok": "is now callable",
    "not-served": "is no longer served",
    "not-api": "is no longer on API-Inference",
    "removed": "was removed from the hub",
}


def headline(new_status: str | None) -> str:
    """The words after a model ID for a status_changed event ("is no longer served")."""
    return HEADLINES.get(new_status or "", f"is now {new_status}")


def kind_of(tasks: Iterable[str] | None) -> str:
    """The kind of call a model with these task names takes."""
    found = {TASK_KINDS.get((task or "").strip().lower(), "other") for task in tasks or ()}
    found.discard("other")
    for kind in KINDS:
        if kind in found:
            return kind
    return "other"


def decide(*, removed: bool, badge: bool, listed: bool, kind: str,
           no_provider: bool = False) -> tuple[str, str]:
    """(status, reason) from the signals a crawl has.

    `no_provider` is True only when list_model_providers answered that nobody
    serves the model; an answer that could not be read leaves it False.
    """
    if removed:
        return "removed", REASONS["removed"]
    if no_provider and (badge or listed):
        return "not-served", REASONS["no-provider"]
    if listed:
        return "ok", REASONS["listed"]
    if badge and kind == "chat":
        return "not-served", REASONS["unlisted"]
    if badge:
        return "ok", REASONS["badge"]
    return "not-api", REASONS["not-api"]


def _tasks_from_json(tasks_json: str | None) -> list[str]:
    try:
        tasks = json.loads(tasks_json) if tasks_json else []
    except (TypeError, ValueError):
        return []
    return [t for t in tasks if isinstance(t, str)] if isinstance(tasks, list) else []


def sql_kind(tasks_json: str | None) -> str:
    """`model_kind(tasks)` in SQL: the kind from a `models.tasks` JSON array."""
    return kind_of(_tasks_from_json(tasks_json))


_kind_of_json = functools.lru_cache(maxsize=4096)(sql_kind)


def _no_provider(providers_json: str | None) -> bool:
    # NULL: never read, or the read failed; '[]': read, and nobody serves it.
    return providers_json is not None and providers_json.strip() == "[]"


def sql_status(removed_at, api_inference, in_inference_list, kind, providers=None) -> str:
    """`model_status(...)` in SQL: the stored status of a `models` row."""
    return decide(removed=removed_at is not None, badge=bool(api_inference),
                  listed=bool(in_inference_list), kind=kind or "other",
                  no_provider=_no_provider(providers))[0]


def sql_status_reason(removed_at, api_inference, in_inference_list, kind, providers=None) -> str:
    """`model_status_reason(...)` in SQL: the plain words behind the status."""
    status, reason = decide(removed=removed_at is not None, badge=bool(api_inference),
                            listed=bool(in_inference_list), kind=kind or "other",
                            no_provider=_no_provider(providers))
    if status == "removed" and isinstance(removed_at, str):
        return f"it is gone from the hub (since {removed_at[:10]})"
    return reason


def register_functions(conn: sqlite3.Connection) -> None:
    """Add model_kind, model_status, model_status_reason and status_headline to a connection."""
    # A first crawl asks for every model's kind; the catalog has a few dozen distinct
    # task lists, so each is read once (1.9 s to 0.8 s at 254,000 models).
    conn.create_function("model_kind", 1, _kind_of_json, deterministic=True)
    conn.create_function("model_status", -1, sql_status, deterministic=True)
    conn.create_function("model_status_reason", -1, sql_status_reason, deterministic=True)
    conn.create_function("status_headline", 1, headline, deterministic=True)
