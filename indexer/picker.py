"""The model picker at /-/pick, with .txt and .json twins: reads the catalog's `models` table, writes nothing.

Status, kind and capabilities are read from the columns the merge stores
(indexer/status.py decides them once); this page never decides them again.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.plugins import pm
from datasette.utils import tilde_encode
from datasette.utils.asgi import Response

from indexer import site, status
from indexer.export import MIN_FTS_CHARS, fts_phrase, like_pattern

PLUGIN_NAME = "indexer-picker"
PATH = "/-/pick"
PAGE_SIZE = 50
# Cherry Studio's "add model" box takes at most 200 characters (issue 13).
CHERRY_CHARS = 200
WINDOWS = (1, 7, 30)
TASK_CHOICES = 200
STATUS_CHOICES = (*status.STATUSES, "any")
SORTS = {
    # downloads and likes have indexes (store.py); ties go by ID so pages are stable.
    "downloads": "downloads desc, model_id",
    "likes": "likes desc, model_id",
    "newest": "coalesce(created_at, first_seen_at) desc, model_id",
}
FLAGS = ("vision", "tools", "reasoning")
FLAG_TITLES = {"vision": "takes images as input", "tools": "can call tools (functions)",
               "reasoning": "thinks before it answers"}
ROW_COLUMNS = ("model_id", "coalesce(api_model_id, model_id) as call_id", "status",
               "status_reason", "kind", "tasks", "downloads", "likes", "updated_at",
               "created_at", "vision", "tools", "reasoning", "context_length",
               "context_length_max", "cost_per_call", "cost_tier", "params_b", "providers")
JSON_KEYS = ("id", "model_id", "status", "status_reason", "kind", "tasks", "downloads",
             "likes", "updated_at", "created_at", "vision", "tools", "reasoning",
             "context_length", "context_length_max", "cost_per_call", "cost_tier",
             "params_b", "providers")


@dataclass(frozen=True)
class Pick:
    """What the picker shows; every field is a URL parameter of the same name."""

    q: str = ""
    status: str = "ok"
    kind: str = ""
    task: str = ""
    vision: bool = False
    tools: bool = False
    reasoning: bool = False
    min_context: int | None = None
    max_cost: float | None = None
    new: int | None = None
    sort: str = "downloads"
    page: int = 1


def parse_pick(args):
    """(Pick, errors) from URL parameters; a bad value is reported and left at its default."""
    values, errors = {}, []

    def text(name):
        return (args.get(name) or "").strip()

    values["q"] = text("q")
    values["task"] = text("task")
    for name, choices in (("status", STATUS_CHOICES), ("kind", status.KINDS), ("sort", SORTS)):
        value = text(name)
        if value and value not in choices:
            errors.append(f"{name} must be one of: {', '.join(choices)}")
        elif value:
            values[name] = value
    for flag in FLAGS:
        values[flag] = text(flag) in ("1", "on", "true")
    for name, kind, check, message in (
            ("min_context", int, lambda v: v > 0, "a whole number of tokens above 0"),
            ("max_cost", float, lambda v: v >= 0 and math.isfinite(v), "a number of credits, 0 or more"),
            ("new", int, lambda v: v in WINDOWS, "one of " + ", ".join(map(str, WINDOWS)) + " (days)"),
            ("page", int, lambda v: 0 < v < 1_000_000, "a page number from 1")):
        raw = text(name)
        if not raw:
            continue
        try:
            value = kind(raw)
            if not check(value):
                raise ValueError
        except ValueError:
            errors.append(f"{name} must be {message}")
            continue
        values[name] = value
    return Pick(**values), errors


def pick_args(pick, **override):
    """The URL parameters that say `pick`, defaults left out, in a stable order."""
    chosen = {**asdict(pick), **override}
    out = []
    for item in fields(Pick):
        value = chosen[item.name]
        # status=ok is the default too, but it is said out loud so that a shared
        # link keeps meaning "callable" whatever the default becomes.
        if value in (None, "", False) or (item.name, value) in (("page", 1), ("sort", "downloads")):
            continue
        out.append((item.name, "1" if value is True else f"{value:g}" if isinstance(value, float)
                    else str(value)))
    return out


def pick_url(path, pick, extra=(), **override):
    args = pick_args(pick, **override) + list(extra)
    return path + ("?" + urlencode(args) if args else "")


def build_where(pick, since=None):
    """(" where ...", params) for `pick`; every user value is a bound parameter."""
    where, params = [], []
    if pick.status != "any":
        where.append("status = ?")
        params.append(pick.status)
    if pick.kind:
        where.append("kind = ?")
        params.append(pick.kind)
    if pick.task:
        where.append("exists (select 1 from json_each(models.tasks) where value = ?)")
        params.append(pick.task)
    for flag in FLAGS:
        if getattr(pick, flag):
            where.append(f"{flag} = 1")
    if pick.min_context is not None:
        # A model whose context can be raised to the minimum qualifies.
        where.append("coalesce(context_length_max, context_length) >= ?")
        params.append(pick.min_context)
    if pick.max_cost is not None:
        where.append("cost_per_call <= ?")
        params.append(pick.max_cost)
    if pick.new is not None and since is not None:
        where.append("coalesce(created_at, first_seen_at) >= ?")
        params.append(since)
    if len(pick.q) >= MIN_FTS_CHARS:
        # The trigram index, limited to the ID and the names.
        where.append("rowid in (select rowid from models_fts where models_fts match ?)")
        params.append("{model_id name chinese_name} : " + fts_phrase(pick.q))
    elif pick.q:
        where.append("model_id like ? escape '\\'")
        params.append(like_pattern(pick.q))
    return (" where " + " and ".join(where) if where else ""), params


def cherry_lines(ids, limit=CHERRY_CHARS):
    """IDs joined by commas into lines of at most `limit` characters (a longer ID stands alone)."""
    lines, line = [], ""
    for model_id in ids:
        if line and len(line) + 1 + len(model_id) > limit:
            lines.append(line)
            line = ""
        line = f"{line},{model_id}" if line else model_id
    if line:
        lines.append(line)
    return lines


def chips(row):
    """(label, explanation) pairs for what is known of a model's capabilities; unknowns are left out."""
    out = [(flag, FLAG_TITLES[flag]) for flag in FLAGS if row[flag] == 1]
    context = row["context_length_max"] or row["context_length"]
    if context:
        label = f"{context // 1024}K ctx" if context >= 1024 else f"{context} ctx"
        out.append((label, f"context window up to {context:,} tokens"))
    if row["params_b"] is not None:
        out.append((f"{row['params_b']:g}B", f"{row['params_b']:g} billion parameters"))
    if row["cost_per_call"] is not None:
        out.append((f"{row['cost_per_call']:g} cr/call", f"{row['cost_per_call']:g} credits per call"))
    elif row["cost_tier"]:
        out.append((row["cost_tier"], "cost tier"))
    return out


def _json_list(text):
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


class Picker:
    """One request's view of the catalog: the filters, and the queries they make."""

    def __init__(self, datasette, request):
        self.datasette = datasette
        self.db_name = site._catalog_name(datasette)
        self.db = datasette.get_database(self.db_name)
        self.pick, self.errors = parse_pick(request.args)

    async def reference_time(self):
        """'New' is counted back from the last complete crawl, so a sample or a paused catalog shows its own week."""
        rows = (await self.db.execute(
            "select max(finished_at) from crawl_runs where status = 'complete'")).rows
        text = rows[0][0] if rows else None
        try:
            return datetime.fromisoformat(text) if text else datetime.now(timezone.utc)
        except ValueError:
            return datetime.now(timezone.utc)

    async def since(self):
        if self.pick.new is None:
            return None
        return (await self.reference_time() - timedelta(days=self.pick.new)).isoformat()

    async def query(self, columns, limit=None, offset=0):
        where, params = build_where(self.pick, await self.since())
        sql = f"select {columns} from models{where} order by {SORTS[self.pick.sort]}"
        if limit is not None:
            sql += " limit ? offset ?"
            params += [limit, offset]
        return (await self.db.execute(sql, params)).rows

    async def count(self):
        where, params = build_where(self.pick, await self.since())
        return (await self.db.execute(f"select count(*) from models{where}", params)).rows[0][0]

    async def call_ids(self):
        return [row[0] for row in await self.query("coalesce(api_model_id, model_id)")]

    async def tasks(self):
        """Task names that exist, most used first, from the counts the crawl keeps."""
        try:
            rows = (await self.db.execute(
                "select value, count from facet_counts where facet = 'tasks' "
                "order by count desc, value limit ?", [TASK_CHOICES])).rows
        except sqlite3.Error:  # an older catalog without facet_counts
            rows = []
        return [{"value": row[0], "count": row[1]} for row in rows]


def _bad_request(errors):
    return Response.text("; ".join(errors) + "\n", status=400)


async def pick_txt(datasette, request):
    picker = Picker(datasette, request)
    if picker.errors:
        return _bad_request(picker.errors)
    ids = await picker.call_ids()
    lines = cherry_lines(ids) if request.args.get("format") == "cherry" else ids
    return Response.text("".join(line + "\n" for line in lines))


async def pick_json(datasette, request):
    picker = Picker(datasette, request)
    if picker.errors:
        return Response.json({"ok": False, "errors": picker.errors}, status=400)
    rows = await picker.query(", ".join(ROW_COLUMNS))
    models = []
    for row in rows:
        item = {key: row[key] for key in JSON_KEYS if key != "id"}
        item = {"id": row["call_id"], **item, "tasks": _json_list(row["tasks"]),
                "providers": None if row["providers"] is None else _json_list(row["providers"])}
        models.append(item)
    return Response.json({"ok": True, "count": len(models),
                          "filters": dict(pick_args(picker.pick, page=1)), "models": models})


async def pick_page(datasette, request):
    picker = Picker(datasette, request)
    pick = picker.pick
    try:
        total = await picker.count()
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(pick.page, pages)
        rows = await picker.query(", ".join(ROW_COLUMNS), PAGE_SIZE, (page - 1) * PAGE_SIZE)
        since = await picker.since()
    except QueryInterrupted:
        return Response.text("This search took too long; narrow it with a filter.\n", status=503)
    tasks = await picker.tasks()
    if pick.task and pick.task not in {t["value"] for t in tasks}:
        tasks.append({"value": pick.task, "count": None})
    models = [{
        "id": row["call_id"], "status": row["status"], "reason": row["status_reason"],
        "kind": row["kind"], "tasks": _json_list(row["tasks"]), "downloads": row["downloads"],
        "likes": row["likes"], "updated": (row["updated_at"] or "")[:10], "chips": chips(row),
        "row_url": datasette.urls.row(picker.db_name, "models", tilde_encode(row["model_id"])),
    } for row in rows]
    context = {
        "pick": pick, "errors": picker.errors, "models": models, "total": total,
        "page": page, "pages": pages, "page_size": PAGE_SIZE,
        "since": since[:10] if since else None,
        "statuses": STATUS_CHOICES, "kinds": status.KINDS, "tasks": tasks,
        "sorts": tuple(SORTS), "windows": WINDOWS,
        "txt_url": datasette.urls.path(pick_url(PATH + ".txt", pick, page=1)),
        "json_url": datasette.urls.path(pick_url(PATH + ".json", pick, page=1)),
        "cherry_url": datasette.urls.path(pick_url(PATH + ".txt", pick, [("format", "cherry")],
                                                   page=1)),
        "prev_url": datasette.urls.path(pick_url(PATH, pick, page=page - 1)) if page > 1 else None,
        "next_url": datasette.urls.path(pick_url(PATH, pick, page=page + 1)) if page < pages else None,
    }
    return Response.html(await datasette.render_template("picker.html", context, request=request))


class PickerPlugin:
    """Datasette hooks for the picker: its routes and its menu link, on the catalog site only."""

    __name__ = PLUGIN_NAME

    @hookimpl
    def register_routes(self, datasette):
        if site._catalog_name(datasette) is None:
            return []
        return [(r"^/-/pick$", pick_page), (r"^/-/pick\.txt$", pick_txt),
                (r"^/-/pick\.json$", pick_json)]

    @hookimpl
    def menu_links(self, datasette, actor, request):
        if site._catalog_name(datasette) is None:
            return []
        return [{"href": datasette.urls.path(PATH), "label": "Pick a model"}]


def register():
    """Register the picker's hooks with Datasette once per process."""
    if pm.get_plugin(PLUGIN_NAME) is None:
        pm.register(PickerPlugin(), name=PLUGIN_NAME)
