"""Faster facets for the catalog's models pages: every facet of a page counted in one pass.

Datasette 0.65 runs one query per facet, each over every matching row again: with
five facets a search read its matches six times (issue 16), and its array facet
deduplicates with `select distinct j.value, inner.*`, which sorts every column of
every row (issue 6). Two facet types of our own, named in metadata.yml, replace them:

- `catalog: owner` is a column facet (Datasette's `column`, same links);
- `catalog_array: tasks` is an array facet (Datasette's `array`, same links). Our
  arrays are deduplicated when parsed, so a value counts once per model.

Both read one count per request (`CatalogFacets`), whichever asks first:

- the unfiltered models page, which everyone opens first, reads `facet_counts`, which
  the crawl keeps exact (indexer/schema.py);
- any other page (a search, a filter) groups its matches once by every faceted column
  together, and the groups are added up here per facet (`one_pass`). There are far
  fewer groups than matches (a search for `qwen2.5` in the benchmark's catalog: 20,000
  matches, under 200 groups), and one sort of the matches costs less than five;
  The matches' combinations are read from `model_facet_groups`, a narrow table the
  crawl keeps, rather than from their whole rows;
- a page narrowed to one value that holds most of the catalog counts the other rows
  and subtracts them from `facet_counts` (`by_complement`);
- a page whose shape was seen before has its count started as its request arrives
  (`start_facets_early`).

Datasette's own `column` and `array` types stay as they are for every other table,
database and Datasette in the process.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import sqlite3
import urllib.parse
from collections import Counter

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import ArrayFacet, ColumnFacet, load_facet_configs
from datasette.utils import escape_sqlite, path_with_added_args, path_with_removed_args

from indexer.schema import FACET_ARRAYS, FACET_COLUMNS, GROUP_COLUMNS

PLUGIN_NAME = "indexer-facets"
# Query-string keys that only shape the page; any other key narrows the rows.
SHAPING_ARGS = {"_sort", "_sort_desc", "_size", "_next", "_facet", "_facet_array", "_facet_date",
                "_facet_catalog", "_facet_catalog_array", "_facet_size",
                "_labels", "_nolabels", "_shape", "_col", "_nocol", "_json", "_nl", "_stream",
                "_trace", "_timelimit", "_ttl", "_dl", "_header", "_nofacet", "_nocount",
                "_extra"}
SCOPE_KEY = "indexer.facet_counts"
PREFETCH_KEY = "indexer.facet_prefetch"
LEARNED_ATTR = "_indexer_search_facets"
# Datasette's clause for a search and nothing else (datasette/filters.py); the group is
# its match expression. Its rowids are the full-text index's own, every one a models
# row (the triggers keep it so), so what it selects can be read off the index alone.
SEARCH_CLAUSE = (r"where rowid in \(select rowid from models_fts where models_fts "
                 r"match (escape_fts\(:search\)|:search)\)")
SEARCH_ONLY = re.compile(SEARCH_CLAUSE)
# The count of a page's rows, beside its facets' counts (one_pass adds it).
TOTAL = "\0total"
# The current request's facets, started early, for a plain search: (database, search,
# task). Its total is the search's count, so the page does not count its matches again.
EARLY_SEARCH: contextvars.ContextVar = contextvars.ContextVar("indexer_early_search", default=None)
# What facet_counts holds for the whole models table (indexer/schema.py).
STORED_FACETS = frozenset(FACET_ARRAYS + FACET_COLUMNS)


def unfiltered(request):
    pairs = urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
    return all(key in SHAPING_ARGS for key, _ in pairs)


def _parse_array(text, parsed):
    values = parsed.get(text)
    if values is None:
        try:
            loaded = json.loads(text) if text else []
        except (TypeError, ValueError):
            loaded = []
        values = parsed[text] = (list(dict.fromkeys(str(v) for v in loaded))
                                 if isinstance(loaded, list) else [])
    return values


class CatalogFacets:
    """What the `catalog` and `catalog_array` facets of one request count, counted once."""

    def __init__(self, facet):
        self.ds, self.database, self.table = facet.ds, facet.database, facet.table
        self.sql, self.params, self.request = facet.sql, facet.params, facet.request
        # Every facet of either type on this page, whichever instance asks first.
        configs = facet.load_configs()
        self.columns = list(dict.fromkeys(configs.get(CatalogColumnFacet.type, [])))
        self.arrays = list(dict.fromkeys(configs.get(CatalogArrayFacet.type, [])))

    async def counts(self):
        """({column: Counter}, [columns that timed out])."""
        counts: dict = {}
        live_columns, live_arrays = self.columns, self.arrays
        if self.table == "models" and unfiltered(self.request):
            try:
                counts = await stored_counts(self.ds, self.database, self.columns + self.arrays)
            except Exception:  # timed out, or an older catalog without facet_counts: count live
                counts = {}
            live_columns = [c for c in self.columns if c not in counts]
            live_arrays = [c for c in self.arrays if c not in counts]
        if not live_columns and not live_arrays:
            return counts, []
        try:
            return {**counts, **await self._live(live_columns, live_arrays)}, []
        except QueryInterrupted:
            return counts, live_columns + live_arrays

    async def _live(self, columns, arrays):
        started = self.request.scope.get(PREFETCH_KEY)
        if started is not None and started[0] == (self.sql, self.params, columns, arrays):
            return await started[1]
        narrowed = narrowing(self.request.query_string)
        counts = await live_counts(self.ds, self.database, self.table, self.sql, self.params,
                                   columns, arrays, narrowed)
        sources = None
        if narrowed is not None and isinstance(self.params, dict):
            sources = _param_sources(self.params, sorted(narrowed))
        if sources is not None:
            # What start_facets_early needs to count the next such page's facets early.
            learned = getattr(self.ds, LEARNED_ATTR, None)
            if learned is None:
                learned = {}
                setattr(self.ds, LEARNED_ATTR, learned)
            learned[(self.database, self.table, _shape(narrowed))] = (
                self.sql, sources, columns, arrays)
        return counts


async def stored_counts(ds, database, names):
    """The whole-catalog counts the crawl keeps, for those of `names` it keeps them for."""
    names = [n for n in names if n in STORED_FACETS]
    if not names:
        return {}
    marks = ", ".join("?" for _ in names)
    rows = (await ds.execute(
        database, f"select facet, value, count from facet_counts where facet in ({marks})",
        names, truncate=False)).rows
    counts = {name: Counter() for name in names}
    for facet, value, count in rows:
        counts[facet][value] = count
    return counts


async def live_counts(ds, database, table, sql, params, columns, arrays, narrowed):
    """{column: Counter} over the rows of `sql`: by complement when that applies, else one pass."""
    if narrowed is not None:
        try:
            counts = await by_complement(ds, database, table, narrowed, columns, arrays)
            if counts is not None:
                return counts
        except QueryInterrupted:
            pass
    where = await models_where(ds, database, table, sql)
    return await one_pass(ds, database, sql, params, columns, arrays, where)


async def models_where(ds, database, table, sql):
    """The `where ...` clause of Datasette's `select <every column> from models <where>`
    (the whole text after the table's name, "" when unfiltered), or None for any other SQL."""
    if table != "models":
        return None
    names = await ds.get_database(database).table_columns("models")
    prefix = f"select {', '.join(escape_sqlite(n) for n in names)} from models "
    return sql[len(prefix):] if sql.startswith(prefix) else None


async def by_complement(ds, database, table, narrowed, columns, arrays):
    """Counts for a page narrowed to one value of a stored column (`?status=not-api`) that
    holds most of the catalog: the whole catalog's counts minus those of the few rows
    without the value. None when that does not apply."""
    if table != "models" or len(narrowed) != 1 or \
            not all(n in STORED_FACETS for n in columns + arrays):
        return None
    column, value = narrowed[0]
    column = column.removesuffix("__exact")
    if column not in FACET_COLUMNS:
        return None
    whole = await stored_counts(ds, database, columns + arrays)
    if column not in whole or whole[column][value] * 2 < sum(whole[column].values()):
        return None
    # Both sides of the value, and its empty rows: each side reads the column's index.
    where = f"where {column} < :value or {column} > :value or {column} is null"
    rest = await one_pass(ds, database, f"select * from models {where}", {"value": value},
                          columns, arrays, where)
    return {name: +(whole[name] - rest[name]) for name in whole}


async def one_pass(ds, database, sql, params, columns, arrays, where=None):
    """{column: Counter} for `columns` and `arrays` over the rows of `sql`, in one GROUP BY.

    `where` is the models table's clause that `sql` applies (models_where): the matches'
    combinations are then grouped from model_facet_groups, a few bytes a model, instead
    of from their whole rows."""
    names = columns + arrays
    keys = ", ".join(escape_sqlite(name) for name in names)
    limit = ds.setting("facet_time_limit_ms")
    rows = None
    if where is not None and set(names) <= set(GROUP_COLUMNS):
        of_group = ", ".join(f"g.{escape_sqlite(name)}" for name in names)
        search = SEARCH_ONLY.fullmatch(where.strip())
        # A plain search's matches come straight from the full-text index, without a
        # lookup of each one in models (26 -> 18 ms for `qwen2.5` at 254,000 models).
        matches = (f"select rowid from models_fts where models_fts match {search.group(1)}"
                   if search else f"select rowid from models {where}")
        grouped = f"""select {of_group}, x.n from (
            select grp, count(*) as n from model_facet_groups
            where id in ({matches}) group by grp
        ) x join facet_groups g on g.grp = x.grp"""
        try:
            rows = (await ds.execute(database, grouped, params, truncate=False,
                                     custom_time_limit=limit)).rows
        except sqlite3.OperationalError:  # a catalog older than migration 8, served read-only
            rows = None
    if rows is None:
        grouped = f"select {keys}, count(*) from ({sql}) group by {keys}"
        rows = (await ds.execute(database, grouped, params, truncate=False,
                                 custom_time_limit=limit)).rows
    counts = {name: Counter() for name in names}
    # Every row is in exactly one group, so the groups add up to the row count.
    counts[TOTAL] = sum(row[-1] for row in rows)
    parsed: dict = {}
    width = len(columns)
    for row in rows:
        n = row[-1]
        for i, name in enumerate(columns):
            if row[i] is not None:
                counts[name][row[i]] += n
        for j, name in enumerate(arrays):
            for value in _parse_array(row[width + j], parsed):
                counts[name][value] += n
    return counts


def narrowing(query_string):
    """The (key, value) pairs that narrow a page's rows, in order; None when the page changes
    its facets or has none, or when it narrows nothing (the unfiltered page reads
    facet_counts)."""
    pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
    if any(key.startswith("_facet") or key in ("_nofacet", "_stream") for key, _ in pairs):
        return None
    narrowed = [(key, value) for key, value in pairs if key not in SHAPING_ARGS]
    if not narrowed or any(key == "_search" and not value.strip() for key, value in narrowed):
        return None
    return narrowed


def _shape(narrowed):
    """What makes two pages' facet SQL the same text: the names that narrow them."""
    return tuple(sorted(key for key, _ in narrowed))


def _param_sources(params, narrowed):
    """{parameter: index in `narrowed`} when each SQL parameter is exactly one narrowing
    value (`?kind=chat` is `:p0 = 'chat'`), else None."""
    sources = {}
    for name, value in params.items():
        matches = [i for i, (_, text) in enumerate(narrowed) if text == value]
        if len(matches) != 1 or matches[0] in sources.values():
            return None
        sources[name] = matches[0]
    return sources


def start_facets_early(datasette, scope):
    """Start counting a page's facets as its request arrives (issue 16).

    Datasette runs a page's rows, its count and then its facets one after another,
    each reading every match. Two pages narrowed by the same names (two searches, or
    `?kind=chat` and `?kind=image`) have the same facet SQL with other parameters, so
    once one page has shown it, the next one's facets are counted on another SQL
    thread beside its rows and count. The facets use the answer only when their own
    SQL, parameters and columns are exactly what was started; otherwise they count as
    usual, so a wrong guess costs time, never a wrong count.
    """
    learned = getattr(datasette, LEARNED_ATTR, None)
    if not learned or scope.get("type") != "http":
        return scope
    parts = scope.get("path", "").strip("/").split("/")
    if len(parts) != 2:
        return scope
    database, table = parts[0], parts[1].removesuffix(".json")
    narrowed = narrowing((scope.get("query_string") or b"").decode("latin-1"))
    if narrowed is None:
        return scope
    shape = learned.get((database, table, _shape(narrowed)))
    if shape is None:
        return scope
    sql, sources, columns, arrays = shape
    ordered = sorted(narrowed)
    params = {name: ordered[i][1] for name, i in sources.items()}
    task = asyncio.ensure_future(live_counts(datasette, database, table, sql, params, columns,
                                             arrays, narrowed))
    # An answer nobody reads (an error page, say) must not warn when collected.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    if [key for key, _ in narrowed] == ["_search"]:  # Datasette's SEARCH_CLAUSE alone
        EARLY_SEARCH.set((database, params.get("search"), task))
    return {**scope, PREFETCH_KEY: ((sql, params, columns, arrays), task)}


async def early_search_count(database, params):
    """The count of a plain search whose facets this request started early, or None.

    Datasette counts a search's matches after its rows; the facets, grouped over the
    same matches, already hold the count (`TOTAL`): on a 2-core machine that saves a
    third full-text match per page, and the contention of running it beside the others.
    """
    early = EARLY_SEARCH.get()
    if early is None or early[0] != database or not isinstance(params, dict) \
            or params.get("search") != early[1] or set(params) != {"search"}:
        return None
    try:
        counts = await early[2]
    except Exception:  # the facets failed or timed out: count as usual
        return None
    return counts.get(TOTAL)


def _column(source_and_config):
    config = source_and_config["config"]
    return config.get("column") or config["simple"]


class _SharedCounts:
    """The facet-type side: reads the request's one CatalogFacets count and renders its share."""

    type = ""
    # What the JSON and the rail's heading call it: Datasette's own name for the facet
    # it stands in for. Datasette's template adds any other type to the heading, which
    # made the rail read "status (catalog)".
    shown_type = ""

    def load_configs(self):
        return {kind: [_column(c) for c in configs]
                for kind, configs in load_facet_configs(self.request, self.metadata).items()}

    async def _shared(self):
        store = self.request.scope.setdefault(SCOPE_KEY, {})
        key = (self.database, self.table, self.sql, repr(self.params))
        if key not in store:
            store[key] = asyncio.ensure_future(CatalogFacets(self).counts())
        return await store[key]

    def _arg(self, column, value):
        raise NotImplementedError

    async def facet_results(self):
        configs = self.get_configs()
        if not configs:
            return [], []
        counts, timed_out = await self._shared()
        facet_size = self.get_facet_size()
        pairs = self.get_querystring_pairs()
        results = []
        for source_and_config in configs:
            column = _column(source_and_config)
            if column not in counts:
                continue
            # As Datasette orders them: most models first, then by value.
            ordered = sorted(counts[column].items(), key=lambda item: (-item[1], str(item[0])))
            values = []
            for value, count in ordered[:facet_size]:
                arg = self._arg(column, str(value))
                selected = arg in pairs
                toggle = (path_with_removed_args(self.request, {arg[0]: arg[1]}) if selected
                          else path_with_added_args(self.request, {arg[0]: arg[1]}))
                values.append({"value": value, "label": value, "count": count,
                               "toggle_url": self.ds.absolute_url(self.request,
                                                                  self.ds.urls.path(toggle)),
                               "selected": selected})
            results.append({
                "name": column, "type": self.shown_type, "results": values,
                "hideable": source_and_config["source"] != "metadata",
                "toggle_url": self.ds.urls.path(
                    path_with_removed_args(self.request, {f"_facet_{self.type}": column})),
                "truncated": len(ordered) > facet_size,
            })
        return results, [c for c in timed_out if c in {_column(s) for s in configs}]


class CatalogColumnFacet(_SharedCounts, ColumnFacet):
    """The `catalog` facet type: Datasette's `column` facet, counted with the page's others."""

    type = "catalog"
    shown_type = ColumnFacet.type

    def _arg(self, column, value):
        return (f"{column}__exact" if column.startswith("_") else column, value)

    async def suggest(self):
        return []


class CatalogArrayFacet(_SharedCounts, ArrayFacet):
    """The `catalog_array` facet type: Datasette's `array` facet, counted with the page's others."""

    type = "catalog_array"
    shown_type = ArrayFacet.type

    def _arg(self, column, value):
        return (f"{column}__arraycontains", value)

    async def suggest(self):
        return []


class FacetPlugin:
    __name__ = PLUGIN_NAME

    @hookimpl
    def register_facet_classes(self):
        return [CatalogColumnFacet, CatalogArrayFacet]

    @hookimpl
    def asgi_wrapper(self, datasette):
        def wrap(app):
            async def facets_early(scope, receive, send):
                token = EARLY_SEARCH.set(None)
                try:
                    await app(start_facets_early(datasette, scope), receive, send)
                finally:
                    EARLY_SEARCH.reset(token)

            return facets_early

        return wrap


# Registered by the `datasette` entry point in pyproject.toml, or by site.register_plugin.
plugin = FacetPlugin()
