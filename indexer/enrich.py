"""After a crawl's merge: read what the API models can do, through the crawl's Fetcher, into `models`.

Touches the hub (list_model_providers and two repository files per model,
docs/capabilities.md §3, §4.1) and, in one transaction, the capability columns
of the models API-Inference may serve, the status that follows from them, their
`status_changed` events and the crawl run's counters. Never the other models.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

from indexer import capabilities, fetch, schema, status, store, track

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
    return _due(rows, today)


def due_after_merge(conn, today):
    """What `due_models` will say of the staged API-Inference and /models sets once the crawl
    is merged, read before the merge: the staged rows over the stored ones.

    A model the sets no longer hold but whose flag outlives this crawl (indexer/track.py)
    is left to `enrich`, which reads what this missed: so no read is made for a model
    whose flag this merge ends.
    """
    status.register_functions(conn)
    rows = conn.execute("""
        select i.model_id, iif(s.model_id is null, m.name, s.name),
               model_kind(iif(s.model_id is null, m.tasks, s.tasks)),
               iif(s.model_id is null, m.tasks, s.tasks),
               iif(s.model_id is null, m.updated_at, s.updated_at),
               m.capabilities_at, m.providers_at, m.providers
        from (select model_id from stage.api union select model_id from stage.listed) i
        left join stage.items s on s.model_id = i.model_id
        left join models m on m.model_id = i.model_id
        order by i.model_id""").fetchall()
    return _due(rows, today)


def _due(rows, today):
    out = []
    for model_id, name, kind, tasks, updated_at, caps_at, providers_at, providers in rows:
        files = caps_at is None or (updated_at is not None and updated_at > caps_at)
        ask = providers_at is None or providers_at[:10] < today
        if files or ask:
            out.append({"model_id": model_id, "name": name, "kind": kind, "tasks": tasks,
                        "files": files, "providers": ask, "stored_providers": providers})
    return out


def enrich(db, fetcher, run_id, now, emit, stop=None, ahead=None):
    """Read, then write in one transaction; returns an Outcome. Network trouble never raises.

    `ahead` is a ReadAhead started before the merge; what it read is used, not read again.
    """
    at = store.iso(now)
    outcome = Outcome()
    pending = set(_pending(db.conn))
    readings = ahead.readings() if ahead is not None else {}
    for model in due_models(db.conn, at[:10]):
        if stop is not None and stop.is_set():
            break
        update, failed = read_model(fetcher, model, pending, readings.get(model["model_id"]))
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
UNREAD = object()  # a source not asked yet
FAILED = object()  # a source that could not tell: a 5xx or a transport failure


@dataclass
class Reading:
    """What the hub said of one model, parsed: small, whatever the files weighed."""

    providers: object = UNREAD  # capabilities.parse_providers' answer; None: could not tell
    config: object = UNREAD  # capabilities.parse_config's; None: the repository lacks the file
    template: object = UNREAD  # capabilities.parse_chat_template's; None: lacking


def read_sources(fetcher, model, reading):
    """Ask the hub what is due for `model` and not yet in `reading`; fills `reading`."""
    mid = model["model_id"]
    if model["providers"] and reading.providers is UNREAD:
        try:
            reading.providers = capabilities.parse_providers(fetcher.request_json(
                "GET", providers_url(fetcher.hub_url, mid), envelope=False))
        except fetch.HubError:
            # A 500 is also what an unknown ID gets: "could not tell" (§3.3).
            reading.providers = None
    if model["files"]:
        if reading.config is UNREAD:
            reading.config = _read_file(fetcher, mid, CONFIG_FILE, capabilities.parse_config)
        # Only chat models have a chat template worth a request.
        if model["kind"] == "chat" and reading.template is UNREAD and reading.config is not FAILED:
            reading.template = _read_file(fetcher, mid, TEMPLATE_FILE,
                                          lambda t: capabilities.parse_chat_template(json.dumps(t)))


def read_model(fetcher, model, pending, reading=None):
    """(column values to write, 1 if a due source could not tell else 0) for one model.

    A source that fails leaves its columns as they were; the other source's
    columns are still written.
    """
    reading = reading if reading is not None else Reading()
    read_sources(fetcher, model, reading)
    update, failed = {}, 0
    if model["providers"]:
        if reading.providers is None:
            failed = 1
        else:
            update.update(_providers_update(model, reading.providers, pending))
    if model["files"]:
        template = reading.template if model["kind"] == "chat" else None
        if reading.config is FAILED or template is FAILED:
            failed = 1
        else:
            caps = capabilities.build_capabilities(
                model["name"] or model["model_id"], tasks=_tasks(model["tasks"]),
                config=reading.config, template=template)
            update.update({c: caps[c] for c in FILE_COLUMNS}, capabilities_at=_NOW)
    return update, failed


class ReadAhead:
    """The capability reads of `due_after_merge`, on a thread of their own while the merge runs.

    The merge is SQLite's work and leaves the GIL free; the hub is idle meanwhile. One
    request at a time still: the crawl's own thread makes none until `readings()`.
    """

    def __init__(self, fetcher, models, stop=None):
        self._cancel = threading.Event()
        self._readings: dict[str, Reading] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fetcher, models, stop),
                                        name="capabilities", daemon=True)
        self._thread.start()

    def _run(self, fetcher, models, stop):
        try:
            for model in models:
                if self._cancel.is_set() or (stop is not None and stop.is_set()):
                    return
                reading = Reading()
                read_sources(fetcher, model, reading)
                self._readings[model["model_id"]] = reading
        except BaseException as error:  # handed to the crawl's thread in readings()
            self._error = error

    def readings(self):
        """Wait for the reads; model ID to Reading."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._readings

    def cancel(self):
        """Stop after the read in flight and wait for it: the fetcher is the crawl's again."""
        self._cancel.set()
        self._thread.join()


def read_ahead(conn, fetcher, now, stop=None):
    """Start reading what the merge about to run will most likely leave due; a ReadAhead."""
    return ReadAhead(fetcher, due_after_merge(conn, store.iso(now)[:10]), stop)


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


def _read_file(fetcher, model_id, path, parse):
    """`parse` of the decoded JSON file, None when the repository lacks it (a 4xx), else FAILED."""
    try:
        answer = fetcher.request_json("GET", file_url(fetcher.hub_url, model_id, path), envelope=False)
    except fetch.HubError as error:
        # The fetcher names the HTTP status of an answer it refused (fetch.HubError.status).
        if error.status is not None and 400 <= error.status < 500:
            return None
        return FAILED
    return parse(answer) if answer is not None else None


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


def enrich_after_crawl(db, fetcher, result, now, emit, stop=None, ahead=None):
    """Run `enrich` for a finished crawl and add its counts to `result` and its crawl_runs row.

    A database error here leaves the crawl as it was recorded, with a warning.
    """
    try:
        outcome = enrich(db, fetcher, result.run_id, now, emit, stop, ahead)
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
