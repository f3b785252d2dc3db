"""Datasette wiring: the catalog's metadata, plugins, templates and settings."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import sqlite3
import threading
import urllib.parse
from functools import partial
from pathlib import Path

import markupsafe
import sqlite_utils
import yaml
from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.utils.asgi import Response
from jinja2 import ChoiceLoader, FileSystemLoader

from indexer import check, facets, freshness, picker, site_pages, status, store
from indexer.modelid import visible, xml_safe

PACKAGE_DIR = Path(__file__).resolve().parent
METADATA_PATHS = (PACKAGE_DIR.parent / "metadata.yml", PACKAGE_DIR / "metadata.yml")
TEMPLATE_DIR = PACKAGE_DIR / "templates"
# The in-package plugin below acts only on a Datasette whose metadata carries
# this plugin entry, so other Datasette instances in the same process (tests,
# other tools) are left alone even though pluggy's registry is global.
PLUGIN_NAME = "indexer-site"
CATALOG_NAME = "catalog"
SETTINGS = {
    "sql_time_limit_ms": 2000,
    "facet_time_limit_ms": 1000,
    "max_returned_rows": 1000,
    # The catalog file is for the crawler; the site offers tables and exports.
    "allow_download": False,
    # /catalog/api_models.csv?_stream=on is the documented full export.
    "allow_csv_stream": True,
    # Suggested facets try every column of every table page; at 254,000 models
    # that is time spent on each view for suggestions that then time out.
    "suggest_facets": False,
}
READ_METHODS = ("GET", "HEAD", "OPTIONS")
MODELSCOPE_URL = "https://modelscope.cn/"
ERROR_CHARS = 300
# Datasette's count of a search's matches, with no other filter (datasette/filters.py).
SEARCH_COUNT = re.compile(r"select count\(\*\) from models " + facets.SEARCH_CLAUSE)
# How much of the catalog file a page's connection maps into memory (all of it at
# 1,000,000 models, 1.2 GB); virtual memory, shared with the OS's file cache.
MMAP_BYTES = 1 << 31
# The catalog and home pages give exact row counts up to this many rows.
COUNT_BOUND = 50_000
# Columns that name a model: shown with every hidden or reordering character
# as <U+XXXX> (issue 14). Other text keeps its tabs and newlines.
ID_COLUMNS = frozenset({"model_id", "owner", "name", "chinese_name", "api_model_id"})

def load_metadata():
    """metadata.yml: the package's copy when the repository's is absent (an installed wheel)."""
    for path in METADATA_PATHS:
        if path.exists():
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {}


def build_datasette(db_path, immutable=False, settings=None):
    """A Datasette app serving the catalog at `db_path` read-only, with our metadata."""
    # Imported here: Datasette loads this module through its entry point while
    # datasette.app is still being imported.
    from datasette.app import Datasette

    register_plugin()
    db_path = Path(db_path)
    settings = {**SETTINGS, **(settings or {})}
    metadata = load_metadata()
    max_rows = settings["max_returned_rows"]
    # A page larger than the row cap is a 400 for tables, and for views it also
    # ends CSV streaming after the first page.
    settings["default_page_size"] = min(settings.get("default_page_size", 100), max_rows)
    fit_page_sizes(metadata, max_rows)
    datasette = _catalog_datasette(Datasette)([], metadata=metadata, settings=settings)
    # Whatever the file is called, it is served as `catalog`: metadata.yml and the
    # site's pages link to /catalog/... (an `other.db` once served 404 links).
    datasette.add_database(catalog_database(datasette, str(db_path), not immutable),
                           name=CATALOG_NAME)
    # Datasette given no files adds an in-memory database; the site has only the catalog.
    datasette.remove_database("_memory")
    return datasette


def switch_catalog(datasette, db_path, sample=None):
    """Serve the live catalog in the sample's place once a crawl there completed (issue 13)."""
    from indexer import store

    wanted = store.catalog_for_reading(db_path, sample)
    current = datasette.databases.get(CATALOG_NAME)
    if current is None or os.path.abspath(current.path) == os.path.abspath(wanted):
        return False
    datasette.remove_database(CATALOG_NAME)
    datasette.add_database(catalog_database(datasette, wanted, True), name=CATALOG_NAME)
    datasette.forget_permissions()
    return True


# Permission answers remembered per Datasette, at most this many (a visitor can
# name any table in a URL); past it the memory starts again.
PERMISSION_MEMO = 1024


def _catalog_datasette(base):
    """Datasette, remembering its permission answers for visitors who are not signed in.

    Datasette 0.65 answers every "may this visitor see this table?" with a query of
    sqlite_master on an SQL thread and a deep copy of the whole metadata: the home and
    catalog pages ask it for each of 34 tables and views, 20 to 40 ms a page on a
    2-core machine (issue 16). The answers follow from metadata.yml's `allow` blocks,
    which are read once at start, so for the anonymous visitor they never change while
    the site runs. A signed-in actor (`--root`) is always asked afresh.
    """

    class CatalogDatasette(base):
        _permission_memo: dict

        async def permission_allowed(self, actor, action, resource=None, default=False):
            if actor is not None:
                return await super().permission_allowed(actor, action, resource, default)
            memo = self.__dict__.setdefault("_permission_memo", {})
            key = (action, tuple(resource) if isinstance(resource, list) else resource, default)
            if key not in memo:
                if len(memo) >= PERMISSION_MEMO:
                    memo.clear()
                memo[key] = await super().permission_allowed(actor, action, resource, default)
            return memo[key]

        def forget_permissions(self):
            """After the served databases change: their tables may be others."""
            self.__dict__.pop("_permission_memo", None)

    return CatalogDatasette


def catalog_database(datasette, path, is_mutable):
    """Datasette's Database for the catalog file, with table counts that stay within their limit."""
    from datasette.database import Database, QueryInterrupted, Results

    class CatalogDatabase(Database):
        # Tables with more rows show as "many rows", as a count past its time limit does.
        count_bound = COUNT_BOUND

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._thread_connections = threading.local()

        async def execute_fn(self, fn):
            # Datasette keeps each SQL thread's connection under the database's name,
            # so once switch_catalog served the live file as `catalog`, threads that had
            # read the sample went on reading it. These connections are this file's own.
            if self.ds.executor is None:
                return await super().execute_fn(fn)

            def in_thread():
                conn = getattr(self._thread_connections, "conn", None)
                if conn is None:
                    conn = self.connect()
                    self.ds._prepare_connection(conn, self.name)
                    self._thread_connections.conn = conn
                return fn(conn)

            return await asyncio.get_running_loop().run_in_executor(self.ds.executor, in_thread)

        async def execute(self, sql, *args, **kwargs):
            # Datasette counts a plain search's matches by looking each one up in models;
            # every rowid of the full-text index is a models row (its triggers keep it
            # so), so the same count comes from the index alone, 14 -> 8 ms for `qwen2.5`
            # at 254,000 models (issue 16).
            if isinstance(sql, str) and (search := SEARCH_COUNT.fullmatch(sql.strip())):
                params = args[0] if args else kwargs.get("params")
                total = await facets.early_search_count(self.name, params)
                if total is not None:
                    return Results([(total,)], False, [("count(*)",)])
                sql = f"select count(*) from models_fts where models_fts match {search.group(1)}"
            return await super().execute(sql, *args, **kwargs)

        def connect(self, write=False):
            conn = super().connect(write=write)
            # Pages read the file through a memory map instead of a read() per page: a
            # search's rows, which fetch thousands of rows by rowid, took half the time
            # (issue 16). SQLite caps it at its build's limit and keeps it right while
            # the crawler writes (WAL).
            conn.execute(f"pragma mmap_size = {MMAP_BYTES}")
            return conn

        async def table_counts(self, limit=10):
            # The catalog and home pages count every table, each within `limit` ms, but
            # SQLite counts a whole table in one step its time limit cannot stop: at
            # 1,000,000 models the counts took 0.2 s a page (issue 16). Counting at most
            # count_bound rows one by one stays within the limit; a virtual table (the
            # full-text index) is left unknown.
            virtual = {row[0] for row in (await self.execute(
                "select name from sqlite_master where type = 'table' "
                "and sql like 'create virtual table%'")).rows}
            counts = {}
            for table in await self.table_names():
                counts[table] = None
                if table in virtual:
                    continue
                try:
                    n = (await self.execute(
                        f"select count(*) from (select 1 from [{table}] limit {self.count_bound + 1})",
                        custom_time_limit=limit)).rows[0][0]
                except (QueryInterrupted, sqlite3.OperationalError, sqlite3.DatabaseError):
                    continue
                counts[table] = n if n <= self.count_bound else None
            return counts

    return CatalogDatabase(datasette, path=path, is_mutable=is_mutable)


def fit_page_sizes(metadata, max_rows):
    """Lower any table `size` above max_rows, which would make every page of that table a 400."""
    for database in (metadata.get("databases") or {}).values():
        for table in (database.get("tables") or {}).values():
            if table and table.get("size", 0) > max_rows:
                table["size"] = max_rows


def register_plugin():
    """Register the site's hooks with Datasette once per process."""
    # Imported here: importing datasette.plugins loads our entry points, which
    # import this module. Installed, those entry points registered both already.
    from datasette.plugins import pm

    if pm.get_plugin(PLUGIN_NAME) is None:
        pm.register(plugin, name=PLUGIN_NAME)
    if pm.get_plugin(facets.PLUGIN_NAME) is None:
        pm.register(facets.plugin, name=facets.PLUGIN_NAME)
    if pm.get_plugin(picker.PLUGIN_NAME) is None:
        pm.register(picker.plugin, name=picker.PLUGIN_NAME)


def _catalog_name(datasette):
    """The served catalog's database name, or None for a Datasette that is not ours."""
    # Asked for every cell of every table page: Datasette's plugin_config merges the
    # metadata again on each call, and metadata is fixed once Datasette starts.
    try:
        return datasette._indexer_catalog_name
    except AttributeError:
        name = CATALOG_NAME if datasette.plugin_config(PLUGIN_NAME) else None
        datasette._indexer_catalog_name = name
        return name


async def read_freshness(datasette, db_name):
    """The catalog's Freshness through Datasette, or None for a catalog without the schema yet."""
    try:
        db = datasette.get_database(db_name)
        rows = (await db.execute(freshness.FRESHNESS_SQL)).rows
    except (KeyError, sqlite3.Error, QueryInterrupted):
        # A catalog without the schema yet (or a slow disk) must not break a page.
        return None
    return freshness.from_row(dict(rows[0]) if rows else {})


async def read_banner(datasette, db_name):
    """What the freshness banner says: {"level", "text"} dicts, worst first; [] when unknown."""
    fresh = await read_freshness(datasette, db_name)
    return [] if fresh is None else banner_lines(fresh, store.utc_now())


def _suggest_ids(conn, given):
    """`suggest_ids(id)` in SQL: indexer.check's close matches, as a JSON array."""
    if not isinstance(given, str):
        return "[]"
    return json.dumps(check.suggest(sqlite_utils.Database(conn), given.strip()))


def banner_lines(fresh, now):
    """The banner for a Freshness, in plain words: what is shown, how old it is, what happens next."""
    lines = []
    if fresh.sample:
        as_of = fresh.refreshed_at.date().isoformat() if fresh.refreshed_at else "an unknown day"
        lines.append({"level": "warning", "text": (
            f"Sample data, made up: the bundled example models as of {as_of}, not real "
            "ModelScope counts. The first live crawl replaces them.")})
    if fresh.last_failed:
        lines.append({"level": "error", "text": failure_text(fresh, now)})
    elif not fresh.sample and fresh.refreshed_at:
        lines.append({"level": "info", "text": (
            f"Catalog last refreshed {fresh.refreshed_at.isoformat()} ({fresh.refreshed_scope})")})
    if not fresh.sample and fresh.refreshed_at is None and not fresh.last_failed:
        lines.append({"level": "warning", "text": "No crawl has completed yet: the catalog may be empty."})
    return lines


def failure_text(fresh, now):
    """"Showing the catalog of <date>. The crawl at <time> could not reach ModelScope; next try …"."""
    shown = (f"Showing the catalog of {freshness.human(fresh.refreshed_at)}." if fresh.refreshed_at
             else "No crawl has completed yet, so the catalog may be empty.")
    when = freshness.human(fresh.last_at) if fresh.last_at else "an unknown time"
    if fresh.could_not_reach:
        what = "could not reach ModelScope"
    else:
        error = " ".join((fresh.last_error or "").split())
        reason = f": {error[:ERROR_CHARS]}{'…' if len(error) > ERROR_CHARS else ''}" if error else ""
        what = ("stopped before the end" if fresh.last_status == "incomplete" else "failed") + reason
    # The site cannot see a scheduler in another process, so it says when the
    # default hourly crawl is due, and admits it when that time has passed.
    due = fresh.last_at + freshness.DEFAULT_EVERY if fresh.last_at else None
    if due is not None and due > now:
        after = f"the hourly crawl tries again about {freshness.human(due)}."
    else:
        after = "no crawl has run since; `indexer serve` crawls hourly, `indexer crawl` once."
    return f"{shown} The crawl at {when} {what}; {after}"


def uri_text(url):
    """`url` with every character outside printable ASCII percent-encoded (as UTF-8), safe in XML and HTML.

    Printable ASCII stays as it is (the page's own escaping handles `<` and `"`),
    so a link to a hostile ID still opens that ID's page.
    """
    if not isinstance(url, str) or (url.isascii() and url.isprintable() and " " not in url):
        return url
    return "".join(c if "!" <= c <= "~" else urllib.parse.quote(c, safe="", errors="replace")
                   for c in url)


def _row_url(row):
    try:
        url = row["url"]
    except (IndexError, KeyError):
        return None
    return url if isinstance(url, str) and url.startswith(MODELSCOPE_URL) else None


class SitePlugin:
    """Datasette hooks for the catalog site: freshness banner, model links, read-only guard."""

    # Datasette lists plugins by __name__ and looks for a package of that name
    # holding templates/ and static/ for every Datasette in the process; this name
    # is no package, so our templates reach only the catalog site (below).
    __name__ = PLUGIN_NAME

    @hookimpl
    def prepare_jinja2_environment(self, env, datasette):
        # The catalog's base.html, after any --template-dir, whether the site was
        # built by build_datasette or started as plain `datasette -m metadata.yml`.
        if _catalog_name(datasette) is not None:
            paths = [p for p in (datasette.template_dir, str(TEMPLATE_DIR)) if p]
            env.loader = ChoiceLoader([FileSystemLoader(paths), env.loader])
            env.filters["exact_attr"] = site_pages.exact_attr

    @hookimpl
    def startup(self, datasette):
        # However the site was started (indexer serve, the benchmark, plain datasette):
        # what is loaded by now (Datasette, Jinja, the plugins and ours) lives as long
        # as the process. Left to the collector, each full collection walked all of it:
        # 25-28 ms, on about one page in fifty, which alone set a search's p95 at
        # 254,000 models (issue 16). Frozen, a full collection takes 1.5-3 ms.
        if _catalog_name(datasette) is not None:
            gc.freeze()

    @hookimpl
    def extra_template_vars(self, template, database, table, view_name, request, datasette):
        db_name = _catalog_name(datasette)
        if db_name is None:
            return {}

        async def inner():
            extra = {"catalog_banner": await read_banner(datasette, db_name)}
            if database != db_name and template != "index.html":
                return extra
            db = datasette.get_database(db_name)
            if template == "index.html":
                extra["callable_this_week"] = await site_pages.callable_this_week(db)
                extra["catalog_name"] = db_name
            elif template.startswith("query"):
                extra["choices"] = await site_pages.query_choices(db)
            elif template.startswith("table") and table is not None and request is not None:
                args = [(k, v) for k in request.args.keys() for v in request.args.getlist(k)]
                extra["copy_ids_url"] = site_pages.copy_ids_url(datasette, database, table, args)
                extra["column_indexes"] = partial(site_pages.column_indexes, table,
                                                  args={k for k, _ in args})
                extra["column_count"] = request.scope.get(site_pages.COUNT_KEY)
            return extra

        return inner

    @hookimpl
    def prepare_connection(self, conn, database, datasette):
        # The feed query (metadata.yml, `changes`) renders model text through
        # these: feedgen refuses text XML 1.0 forbids, which made one hostile
        # ID a 500 for every subscriber (issue 14). Stored values stay raw.
        if database != _catalog_name(datasette):
            return
        conn.create_function("visible_text", 1, xml_safe, deterministic=True)
        conn.create_function("uri_text", 1, uri_text, deterministic=True)
        # The status rule and the close-match suggestions the CLI uses, so the
        # site's pages never hold a copy of either (issue 11).
        status.register_functions(conn)
        conn.create_function("suggest_ids", 1, partial(_suggest_ids, conn))

    @hookimpl
    def render_cell(self, row, value, column, table, database, datasette):
        if _catalog_name(datasette) is None:
            return None
        compact = site_pages.render_cell(row, value, column)
        if compact is not None or not isinstance(value, str):
            return compact
        shown = visible(value) if column in ID_COLUMNS else xml_safe(value)
        # In views and canned queries the ID is plain text; link it to the
        # model's ModelScope page when the row carries that page. (In `models`
        # itself the ID links to the row and `url` is linked by Datasette.)
        url = _row_url(row) if column == "model_id" else None
        if url is not None:
            return markupsafe.Markup('<a href="{}">{}</a>').format(uri_text(url), shown)
        if shown != value:
            return markupsafe.Markup("{}").format(shown)
        return None

    @hookimpl
    def asgi_wrapper(self, datasette):
        _select_key_columns()

        def wrap(app):
            async def read_only(scope, receive, send):
                if (scope["type"] == "http" and scope.get("method", "GET") not in READ_METHODS
                        and _catalog_name(datasette) is not None):
                    response = Response.text("This catalog is read-only.", status=405,
                                             headers={"Allow": ", ".join(READ_METHODS)})
                    await response.asgi_send(send)
                    return
                if scope["type"] == "http" and _catalog_name(datasette) is not None:
                    scope = _without_empty_search(scope)
                    table = site_pages.key_page_table(
                        scope.get("path", ""), _catalog_name(datasette),
                        (scope.get("query_string") or b"").decode("latin-1"))
                    if table is not None:
                        scope = {**scope, site_pages.SELECT_KEY: table}
                await app(scope, receive, send)

            return read_only

        return wrap


async def _key_columns_to_select(self, table_columns, pks, request):
    """TableView.columns_to_select, narrowed on a default table page of the catalog site.

    Datasette renders every selected cell of a page through every render_cell hook, about
    25 ms for 30 rows of the models table's 34 columns, though the page shows 8
    (site_pages.KEY_COLUMNS). Our ASGI wrapper marks those pages' requests; anything
    unmarked, any other Datasette in the process included, selects as Datasette does.
    """
    table = request.scope.get(site_pages.SELECT_KEY)
    if table is None:
        return await _key_columns_to_select.stock(self, table_columns, pks, request)
    request.scope[site_pages.COUNT_KEY] = len(table_columns)
    sort_args = [request.args.get(k) for k in ("_sort", "_sort_desc") if request.args.get(k)]
    return site_pages.select_columns(table, table_columns, pks, sort_args)


def _select_key_columns():
    """Install _key_columns_to_select, once. Called when a site is built, as importing
    Datasette's views while Datasette loads this plugin would import it in a circle."""
    from datasette.views.table import TableView

    if TableView.columns_to_select is not _key_columns_to_select:
        _key_columns_to_select.stock = TableView.columns_to_select
        TableView.columns_to_select = _key_columns_to_select


def _without_empty_search(scope):
    """The request without an empty `_search=`: the search box submitted empty means no
    search, where Datasette 0.65 hands FTS5 an empty query and answers 400."""
    raw = scope.get("query_string") or b""
    if b"_search=" not in raw:
        return scope
    pairs = urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not (k == "_search" and not v.strip())]
    if len(kept) == len(pairs):
        return scope
    return {**scope, "query_string": urllib.parse.urlencode(kept).encode("latin-1")}


# Registered by the `datasette` entry point in pyproject.toml, or by register_plugin.
plugin = SitePlugin()
