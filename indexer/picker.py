"""The model picker at /-/pick, and its lists as .txt and .json: reads `models`, writes nothing.

Status, kind and capabilities are read from the columns the merge stores
(indexer/status.py decides them once); this page never decides them again.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.utils import tilde_encode
from datasette.utils.asgi import AsgiStream, Response

from indexer import site, status
from indexer.pickquery import (
    ROW_COLUMNS,
    SORTS,
    STATUS_CHOICES,
    WINDOWS,
    build_where,
    cherry_lines,
    chips,
    json_lines,
    json_list,
    parse_pick,
    pick_args,
    pick_url,
    text_chunks,
)

PLUGIN_NAME = "indexer-picker"
PATH = "/-/pick"
PAGE_SIZE = 50
TASK_CHOICES = 200
# A deep OFFSET walks every row before it (1.6 s for page 5,000 of 254,000
# models); past this page the lists at .txt and .json are the way on.
MAX_PAGES = 100
STREAM_ROWS = 2000


def iter_rows(cursor):
    while rows := cursor.fetchmany(STREAM_ROWS):
        yield from rows


class Picker:
    """One request's view of the catalog: the filters, and the queries they make."""

    def __init__(self, datasette, request):
        self.datasette = datasette
        self.db_name = site._catalog_name(datasette)
        self.db = datasette.get_database(self.db_name)
        self.pick, self.errors = parse_pick(request.args)
        self._since = None

    async def reference_time(self):
        """The last complete crawl's end: "new" counts back from it, so a sample or a
        paused catalog still shows its own last week."""
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
        if self._since is None:
            self._since = (await self.reference_time() - timedelta(days=self.pick.new)).isoformat()
        return self._since

    async def sql_for(self, columns, limit=None, offset=0):
        """(sql, params) selecting `columns` of the matches, in the chosen order."""
        where, params = build_where(self.pick, await self.since())
        order = SORTS[self.pick.sort]
        if limit is None:
            # Every match is read anyway: one pass over the table and a sort beats
            # walking the sort's index with a seek per row (as export.py finds).
            order = "+" + order
        sql = f"select {columns} from models{where} order by {order}"
        if limit is not None:
            sql += " limit ? offset ?"
            params += [limit, offset]
        return sql, params

    async def query(self, columns, limit, offset=0):
        return (await self.db.execute(*await self.sql_for(columns, limit, offset))).rows

    async def count(self):
        where, params = build_where(self.pick, await self.since())
        return (await self.db.execute(f"select count(*) from models{where}", params)).rows[0][0]

    async def stream(self, columns, lines, content_type):
        """A response streaming `lines(rows)` over every match, from one read-only cursor.

        Datasette's execute() would hold all of them (254,000 at full size) and stop
        at its time limit; one cursor is also one snapshot, so a crawl committing
        meanwhile cannot tear the list.
        """
        sql, params = await self.sql_for(columns)
        # Compiled, not run: a missing column is an answer before any byte is sent.
        await self.db.execute("explain " + sql, params)
        uri = Path(self.db.path).resolve().as_uri() + (
            "?mode=ro" if self.db.is_mutable else "?immutable=1")

        def start():
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            try:
                conn.row_factory = sqlite3.Row
                return conn, text_chunks(lines(iter_rows(conn.execute(sql, params))))
            except BaseException:
                conn.close()
                raise

        async def send(writer):
            conn, chunks = await asyncio.to_thread(start)
            try:
                while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                    await writer.write(chunk)
            finally:
                conn.close()

        return AsgiStream(send, content_type=content_type)

    async def tasks(self):
        """Task names that exist, most used first, from the counts the crawl keeps."""
        try:
            rows = (await self.db.execute(
                "select value, count from facet_counts where facet = 'tasks' "
                "order by count desc, value limit ?", [TASK_CHOICES])).rows
        except sqlite3.Error:  # an older catalog without facet_counts
            rows = []
        return [{"value": row[0], "count": row[1]} for row in rows]


def answers_plainly(view):
    """Turn a slow query or a catalog without the status columns into a one-line answer."""

    @functools.wraps(view)
    async def wrapped(datasette, request):
        try:
            return await view(datasette, request)
        except QueryInterrupted:
            return Response.text("This search took too long; narrow it with a filter.\n",
                                 status=503)
        except sqlite3.OperationalError as error:
            if "no such column" not in str(error):
                raise
            return Response.text("This catalog has no status columns yet: run `indexer crawl` "
                                 "to update it.\n", status=503)

    return wrapped


@answers_plainly
async def pick_txt(datasette, request):
    picker = Picker(datasette, request)
    if picker.errors:
        return Response.text("; ".join(picker.errors) + "\n", status=400)
    cherry = request.args.get("format") == "cherry"

    def lines(rows):
        ids = (row[0] for row in rows)
        return cherry_lines(ids) if cherry else ids

    return await picker.stream("coalesce(api_model_id, model_id)", lines,
                               "text/plain; charset=utf-8")


@answers_plainly
async def pick_json(datasette, request):
    picker = Picker(datasette, request)
    if picker.errors:
        return Response.json({"ok": False, "errors": picker.errors}, status=400)
    filters = dict(pick_args(picker.pick, page=1))
    return await picker.stream(", ".join(ROW_COLUMNS), lambda rows: json_lines(rows, filters),
                               "application/json; charset=utf-8")


@answers_plainly
async def pick_page(datasette, request):
    picker = Picker(datasette, request)
    pick = picker.pick
    total = await picker.count()
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(pick.page, pages, MAX_PAGES)
    rows = await picker.query(", ".join(ROW_COLUMNS), PAGE_SIZE, (page - 1) * PAGE_SIZE)
    since = await picker.since()
    tasks = await picker.tasks()
    if pick.task and pick.task not in {t["value"] for t in tasks}:
        tasks.append({"value": pick.task, "count": None})
    models = [{
        "id": row["call_id"], "status": row["status"], "reason": row["status_reason"],
        "kind": row["kind"], "tasks": json_list(row["tasks"]), "downloads": row["downloads"],
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
        "next_url": (datasette.urls.path(pick_url(PATH, pick, page=page + 1))
                     if page < min(pages, MAX_PAGES) else None),
        "max_pages": MAX_PAGES,
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


plugin = PickerPlugin()
