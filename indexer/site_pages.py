"""What the site's own templates need beyond Datasette's context: read-only catalog queries and cell rendering."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse

import markupsafe
from datasette.database import QueryInterrupted

from indexer.modelid import xml_safe

# The columns a person picks a model by, first and within a 1366 px screen
# (issue 13); every other column stays on the row page, in exports and
# behind the "all columns" link. Keyed by table name, not `<db>-<table>`,
# because the database may be served under another name.
KEY_COLUMNS = {
    "models": ["model_id", "status", "kind", "tasks", "downloads", "likes", "updated_at",
               "description"],
    "api_models": ["model_id", "kind", "tasks", "downloads", "likes", "owner", "status_reason"],
    "trending": ["model_id", "status", "kind", "downloads_7d", "downloads_30d", "downloads",
                 "likes", "tasks"],
}
# Pages with a "Copy these IDs" button: tables and views with a model_id column.
COPY_TABLES = frozenset(KEY_COLUMNS)
# URL arguments that shape the page, not which rows match; the copy link drops them.
LAYOUT_ARGS = frozenset({"_col", "_nocol", "_next", "_size", "_facet", "_facet_array",
                         "_facet_date", "_facet_size", "_wide", "_labels", "_shape"})
DESCRIPTION_CHARS = 48
DATE_COLUMNS = frozenset({"updated_at", "created_at"})
LIST_COLUMNS = frozenset({"tasks", "tags", "libraries"})
# "Became callable": a status change to ok, or the signals the status rule reads.
BECAME_CALLABLE = ("(e.event in ('api_enabled', 'listed') or (e.event = 'status_changed' "
                   "and json_extract(e.detail, '$.new') = 'ok'))")
# The window ends at the newest complete crawl, so the sample (and a catalog
# that stopped crawling) still answers "this week" about its own data.
CALLABLE_THIS_WEEK_SQL = f"""
select count(distinct e.model_id) as n from model_events e
where e.at >= strftime('%Y-%m-%dT%H:%M:%S+00:00', coalesce(
    (select max(finished_at) from crawl_runs where status = 'complete'), 'now'), '-7 days')
  and {BECAME_CALLABLE}
"""
CHOICE_SQL = {
    # facet_counts is kept exact by triggers, so no JSON is unpacked per page.
    "tasks": "select value from facet_counts where facet = 'tasks' order by count desc, value limit 300",
    # Owners of callable models: the few hundred worth choosing, off the status index.
    "owners": "select owner from models where status = 'ok' and owner is not null "
              "group by owner order by count(*) desc, owner limit 300",
    "events": "select distinct event from model_events order by event",
}
DAY_WINDOWS = [("", "any time"), ("1", "last day"), ("7", "last 7 days"), ("30", "last 30 days")]


async def _values(db, sql):
    try:
        return [row[0] for row in (await db.execute(sql)).rows]
    except (sqlite3.Error, QueryInterrupted):
        return []


async def query_choices(db):
    """Option lists for canned-query form fields, from the data that exists."""
    choices = {name: await _values(db, sql) for name, sql in CHOICE_SQL.items()}
    choices["events"] = ["became-callable", *choices["events"]]
    choices["days"] = DAY_WINDOWS
    return choices


async def callable_this_week(db):
    values = await _values(db, CALLABLE_THIS_WEEK_SQL)
    return values[0] if values else None


# Columns a page's cells read besides those they show: a status cell's title, a view's
# ID link (indexer/site.py render_cell).
CELL_COLUMNS = ("status_reason", "url")
# Arguments after which a table page is no longer the default HTML page of key columns.
CHOSEN_ARGS = frozenset({"_col", "_nocol", "_wide", "_shape", "_json", "_stream", "_format"})
SELECT_KEY = "indexer.select_columns"
COUNT_KEY = "indexer.column_count"


def key_page_table(path, db_name, query_string):
    """The table whose default HTML page `path` is (`/catalog/models`, no `_col`, `_wide`...),
    or None: for that page Datasette need read and render only the columns it shows."""
    prefix = f"/{db_name}/"
    if not path.startswith(prefix):
        return None
    table = path[len(prefix):]
    if table not in KEY_COLUMNS:
        return None
    keys = {k for k, _ in urllib.parse.parse_qsl(query_string, keep_blank_values=True)}
    return None if keys & CHOSEN_ARGS else table


def select_columns(table, table_columns, pks, sort_args):
    """What the default page of `table` selects: its key columns, the ones its cells read,
    its primary key and whatever it is sorted by, in the table's order."""
    wanted = {*pks, *KEY_COLUMNS[table], *CELL_COLUMNS, *sort_args}
    return [c for c in table_columns if c in wanted]


def column_indexes(table, names, args):
    """Which of `names` (in their order) a table page shows: the key columns first, unless the URL chose."""
    keys = KEY_COLUMNS.get(table)
    if not keys or "_col" in args or "_nocol" in args or "_wide" in args:
        return list(range(len(names)))
    return [names.index(k) for k in keys if k in names]


def copy_ids_url(datasette, database, table, args):
    """The CSV of the current filter's IDs alone, every row: what "Copy these IDs" fetches."""
    if table not in COPY_TABLES:
        return None
    kept = [(k, v) for k, v in args if k not in LAYOUT_ARGS and not k.startswith("_facet")]
    kept += [("_col", "model_id"), ("_stream", "on"), ("_header", "off")]
    return datasette.urls.table(database, table, format="csv") + "?" + urllib.parse.urlencode(kept)


def _get(row, column):
    try:
        return row[column]
    except (IndexError, KeyError):
        return None


def render_cell(row, value, column):
    """Markup for the columns shown compactly on every page, else None."""
    if column == "status" and isinstance(value, str):
        reason = _get(row, "status_reason")
        return markupsafe.Markup('<span class="status status-{}" title="{}">{}</span>').format(
            value, xml_safe(reason or ""), value)
    if not isinstance(value, str):
        return None
    if column == "description" and len(value) > DESCRIPTION_CHARS:
        text = xml_safe(value)
        return markupsafe.Markup('<span title="{}">{}…</span>').format(
            text, text[:DESCRIPTION_CHARS].rstrip())
    if column in DATE_COLUMNS and len(value) > 10:
        return markupsafe.Markup('<span title="{}">{}</span>').format(value, value[:10])
    if column in LIST_COLUMNS and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            return None
        if isinstance(items, list):
            return markupsafe.Markup('<span title="{}">{}</span>').format(
                xml_safe(value), ", ".join(xml_safe(str(i)) for i in items))
    return None


def exact_attr(value):
    """`value` for an HTML attribute, with every invisible or reordering character as a numeric
    reference: a copy button copies the exact ID, yet the page source shows none raw (issue 14)."""
    text = "" if value is None else str(value)
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup("".join(c if c.isprintable() and c.isascii() or c.isalnum()
                                     else f"&#x{ord(c):x};" for c in escaped))
