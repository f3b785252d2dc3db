"""After a crawl's merge: read what the API models can do, through the crawl's Fetcher, into `models`.

Touches the hub (list_model_providers and two repository files per model,
docs/capabilities.md §3, §4.1) and, in one transaction, the capability columns
of the models API-Inference may serve, the status that follows from them, their
`status_changed` events and the crawl run's counters. Never the other models.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from urllib.parse import quote

from indexer import capabilities, fetch, schema, store, track

PROVIDERS_PATH = "/api/v1/inference/list_model_providers"
# JSON files only: the Fetcher decodes JSON, and a chat_template.jinja would be
# retried as a broken answer (docs/capabilities.md §4.3 names both places).
CONFIG_FILE = "config.json"
TEMPLATE_FILE = "tokenizer_config.json"
PROVIDER_COLUMNS = ("providers", "cost_per_call", "cost_tier")
FILE_COLUMNS = tuple(c for c in capabilities.COLUMNS if c not in PROVIDER_COLUMNS)
# IDs whose last providers answer was `Providers: null` once: the second null in
# a row stores '[]' (not-served), so one odd answer never flips a status.
PENDING_KEY = "providers_null_pending"


class _Failed(Exception):
    """A repository file could not be read (not a 4xx: a 5xx or a transport failure)."""


@dataclass
class Outcome:
    """What one enrichment pass did."""

    read: int = 0
    failed: int = 0
    events: int = 0
    updates: list = field(default_factory=list)


def due_models(conn, today):
    """Models API-Inference may serve, with what is due for each: providers and/or repository files.

    Files are due when never read or when the hub's `updated_at` moved past the
    last read; providers once per UTC day (docs/capabilities.md §10).
    """
    rows = conn.execute("""
        select model_id, name, kind, tasks, updated_at, capabilities_at, providers_at, providers
        from models
        where (api_inference = 1 or in_inference_list = 1) and removed_at is null
        order by model_id""").fetchall()
    out = []
    for model_id, name, kind, tasks, updated_at, caps_at, providers_at, providers in rows:
        files = caps_at is None or (updated_at is not None and updated_at > caps_at)
        ask = providers_at is None or providers_at[:10] < today
        if files or ask:
            out.append({"model_id": model_id, "name": name, "kind": kind, "tasks": tasks,
                        "files": files, "providers": ask, "stored_providers": providers})
    return out


def enrich(db, fetcher, run_id, now, emit, stop=None):
    """Read, then write in one transaction; returns an Outcome. Network trouble never raises."""
    at = store.iso(now)
    outcome = Outcome()
    pending = set(_pending(db.conn))
    for model in due_models(db.conn, at[:10]):
        if stop is not None and stop.is_set():
            break
        update, failed = read_model(fetcher, model, pending)
        outcome.failed += failed
        if update:
            outcome.read += 1
            outcome.updates.append({"model_id": model["model_id"], **update})
    with store.transaction(db) as conn:
        for update in outcome.updates:
            model_id = update.pop("model_id")
            update = {k: (at if v is _NOW else v) for k, v in update.items()}
            sets = ", ".join(f"{k} = ?" for k in update)
            conn.execute(f"update models set {sets} where model_id = ?", [*update.values(), model_id])
        store.set_info(conn, PENDING_KEY, json.dumps(sorted(pending)))
        events_before = _event_count(conn)
        schema.derive_columns(conn)
        # The status that follows from the providers is announced like every other
        # status change, and only by a complete crawl (indexer/track.py).
        track._announce_status(conn, run_id, at, emit)
        outcome.events = _event_count(conn) - events_before
    return outcome


_NOW = object()  # replaced by the run's timestamp when written


def read_model(fetcher, model, pending):
    """(column values to write, 1 if a due source could not tell else 0) for one model.

    A source that fails leaves its columns as they were; the other source's
    columns are still written.
    """
    update, failed = {}, 0
    if model["providers"]:
        try:
            answer = capabilities.parse_providers(fetcher.request_json(
                "GET", providers_url(fetcher.hub_url, model["model_id"]), envelope=False))
        except fetch.HubError:
            # A 500 is also what an unknown ID gets: "could not tell" (§3.3).
            answer = None
        if answer is None:
            failed = 1
        else:
            update.update(_providers_update(model, answer, pending))
    if model["files"]:
        try:
            config = _read_file(fetcher, model["model_id"], CONFIG_FILE)
            # Only chat models have a chat template worth a request.
            template = (_read_file(fetcher, model["model_id"], TEMPLATE_FILE)
                        if model["kind"] == "chat" else None)
        except _Failed:
            failed = 1
        else:
            caps = capabilities.build_capabilities(
                model["name"] or model["model_id"], tasks=_tasks(model["tasks"]),
                config=capabilities.parse_config(config) if config is not None else None,
                template=(capabilities.parse_chat_template(json.dumps(template))
                          if template is not None else None))
            update.update({c: caps[c] for c in FILE_COLUMNS}, capabilities_at=_NOW)
    return update, failed


def _providers_update(model, answer, pending):
    mid = model["model_id"]
    update = {"providers_at": _NOW}
    if answer["providers"]:
        pending.discard(mid)
        update.update(providers=json.dumps(answer["providers"], ensure_ascii=False),
                      cost_per_call=answer["cost_per_call"], cost_tier=answer["cost_tier"])
    elif mid in pending or model["stored_providers"] == "[]":
        pending.discard(mid)
        update.update(providers="[]", cost_per_call=None, cost_tier=None)
    else:
        # The first null reading: remembered, not yet stored.
        pending.add(mid)
    return update


def _read_file(fetcher, model_id, path):
    """The decoded JSON file, None when the repository lacks it (a 4xx); _Failed otherwise."""
    try:
        return fetcher.request_json("GET", file_url(fetcher.hub_url, model_id, path), envelope=False)
    except fetch.HubError as error:
        # The fetcher names the HTTP status of an answer it refused (fetch.HubError.status).
        if error.status is not None and 400 <= error.status < 500:
            return None
        raise _Failed(model_id) from None


def providers_url(hub_url, model_id):
    return f"{hub_url}{PROVIDERS_PATH}?ModelId={quote(model_id, safe='/')}"


def file_url(hub_url, model_id, path):
    """The raw-file URL the SDK downloads from (docs/capabilities.md §4.1)."""
    owner, _, name = model_id.partition("/")
    return (f"{hub_url}/api/v1/models/{quote(owner, safe='')}/{quote(name, safe='')}/repo"
            f"?Revision=master&FilePath={quote(path, safe='')}")


def _tasks(tasks_json):
    try:
        tasks = json.loads(tasks_json) if tasks_json else []
    except ValueError:
        return []
    return tasks if isinstance(tasks, list) else []


def _pending(conn):
    row = conn.execute("select value from catalog_info where key = ?", [PENDING_KEY]).fetchone()
    try:
        value = json.loads(row[0]) if row else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _event_count(conn):
    return conn.execute("select coalesce(max(id), 0) from model_events").fetchone()[0]


def enrich_after_crawl(db, fetcher, result, now, emit, stop=None):
    """Run `enrich` for a finished crawl and add its counts to `result` and its crawl_runs row.

    A database error here leaves the crawl as it was recorded, with a warning.
    """
    try:
        outcome = enrich(db, fetcher, result.run_id, now, emit, stop)
    except sqlite3.Error:
        outcome = None
    warnings = dict(result.warnings)
    if outcome is None:
        warnings["capabilities_not_saved"] = 1
    else:
        result.capabilities_read = outcome.read
        result.events += outcome.events
        if outcome.failed:
            warnings["capabilities_failed"] = outcome.failed
    result.warnings = warnings
    result.requests = fetcher.requests_made
    try:
        with store.transaction(db) as conn:
            store.update_run(conn, result.run_id, requests=result.requests, events=result.events,
                             capabilities_read=result.capabilities_read,
                             warnings=json.dumps(warnings, sort_keys=True))
    except sqlite3.Error:
        pass
