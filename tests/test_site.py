"""The Datasette site: metadata, canned queries, feed, dashboard, banner (issue 4)."""

import asyncio
import gc
import html
import json
import re
import shutil
import sqlite3
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timedelta, timezone

import markupsafe
import pytest
from datasette.app import Datasette
from datasette.utils import tilde_encode

from indexer import check as check_module
from indexer import facets, growth, schema, site, site_pages, store
from tests.fakehub import FakeHub
from tests.fixtures.catalog import (
    API_IMAGE_ID,
    LISTED_MISSING_ID,
    LISTED_NOT_API_ID,
    UNLISTED_API_CHAT_ID,
    build_catalog,
)
from tests.helpers import Clock, rows, run_crawl

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
LAST_CRAWL_AT = "2026-11-03T03:00:00+00:00"
TG = "text-generation"
EVIL_NAME = "<script>alert(1)</script>"
EVIL_ID = f"evil/{EVIL_NAME}"
EVIL_URL = f"https://modelscope.cn/models/{EVIL_ID}"
ATOM = "{http://www.w3.org/2005/Atom}"
FRESH = 30



def first_model(catalog, api, listed, task=None, skip=()):
    for model_id in sorted(catalog.model_ids()):
        item = catalog.get(model_id)
        if (model_id in skip or (model_id in catalog.api_ids) != api
                or (model_id in catalog.listed_ids) != listed):
            continue
        if task and task not in [t["Name"] for t in item["Tasks"]]:
            continue
        return model_id
    raise LookupError("no such model in the fixture catalog")


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    """A catalog crawled three days running, with events of every common kind, plus a hostile row.

    Returns the catalog's path and the models the test changed on the hub.
    """
    path = tmp_path_factory.mktemp("site") / "catalog.db"
    catalog = build_catalog()
    clock = Clock(DAY0)
    picks = {}
    with FakeHub(catalog) as hub:
        run_crawl(path, hub, scope="full", now=clock)
        template = catalog.get(first_model(catalog, api=False, listed=False))
        for i in range(FRESH):
            catalog.add(dict(template, Id=990_000 + i, Name=f"Fresh-Model-{i:02d}"))
        catalog.set_api(LISTED_NOT_API_ID, True)
        picks["removed"] = first_model(catalog, api=False, listed=False, skip={template["Path"] + "/" + template["Name"]})
        catalog.remove(picks["removed"])
        picks["changed"] = first_model(catalog, api=False, listed=False, skip=set(picks.values()))
        catalog.update(picks["changed"], License="Changed-License-1.0")
        picks["unlisted"] = first_model(catalog, api=True, listed=True, task=TG)
        catalog.set_listed(picks["unlisted"], False)
        for _ in range(2):
            clock.now += timedelta(days=1)
            run_crawl(path, hub, scope="full", now=clock)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "insert into models (model_id, owner, name, chinese_name, description, tasks, tags, "
            "libraries, license, downloads, likes, api_inference, api_model_id, in_inference_list, "
            "url, first_seen_at, last_seen_at) values (?, 'evil', ?, '恶意模型<b>x</b>', "
            "'<img src=x onerror=alert(2)>', ?, '[]', '[]', 'MIT', 5, 0, 1, ?, 0, ?, ?, ?)",
            [EVIL_ID, EVIL_NAME, json.dumps([TG]), EVIL_ID, EVIL_URL, LAST_CRAWL_AT, LAST_CRAWL_AT])
        conn.execute("insert into model_events (run_id, model_id, event, at, detail) "
                     "values (null, ?, 'added', '2026-11-03T04:00:00+00:00', null)", [EVIL_ID])
        # Ten days of history, so `trending` (and the dashboard's growth chart) has a row.
        conn.execute("insert into model_stats values (?, '2026-10-24', 1, 0)", [EVIL_ID])
        conn.execute("insert into model_stats values (?, '2026-11-03', 5, 0)", [EVIL_ID])
        # What the merge stores for every row it writes (indexer/status.py's rule), and
        # the growth it stores after (indexer/growth.py).
        schema.derive_columns(conn)
        growth.refresh(conn)
    conn.close()
    return path, picks


@pytest.fixture(scope="module")
def crawled(crawl):
    return crawl[0]


@pytest.fixture(scope="module")
def picks(crawl):
    return crawl[1]


@pytest.fixture(scope="module")
def ds(crawled):
    return site.build_datasette(crawled)


@pytest.fixture(scope="module")
def models(crawled):
    """Every models row as stored, with `_tasks` decoded."""
    out = rows(crawled, "select * from models")
    for row in out:
        row["_tasks"] = json.loads(row["tasks"] or "null") or []
    return out


def get(ds, url):
    return asyncio.run(ds.client.get(url))


def get_json(ds, url):
    response = get(ds, url)
    assert response.status_code == 200, response.text
    return response.json()


def q(**params):
    return urllib.parse.urlencode(params)


def public(row, *columns):
    return {c: row[c] for c in columns}


def is_callable(m):
    # The stored answer every page reads (the rule is tested in test_status.py;
    # the anchors below pin what it says for each kind of model).
    return m["status"] == "ok"


def by_downloads(rows_, key="model_id"):
    # SQL's `downloads desc` puts NULL (a listed model missing from the hub) last.
    return sorted(rows_, key=lambda r: (r["downloads"] is None, -(r["downloads"] or 0), r[key]))


# The fixture itself -------------------------------------------------------


def compact(value):
    """JSON as SQLite's json_object writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_the_fixture_has_the_events_the_tests_rely_on(crawled, picks):
    counts = Counter(r["event"] for r in rows(crawled, "select event from model_events"))
    assert counts == {"added": FRESH + 1, "api_enabled": 1, "changed": 1, "removed": 1, "unlisted": 1,
                      "status_changed": 2}
    # Issue 11: the status moves with the debounced flags; LISTED_NOT_API_ID was ok
    # (listed) before it got the badge too, so it has no status_changed event.
    assert rows(crawled, "select model_id, detail from model_events where event = 'status_changed' "
                         "order by model_id") == sorted([
        {"model_id": picks["unlisted"], "detail": compact(
            {"old": "ok", "new": "not-served",
             "reason": "it has the API-Inference badge, but /v1/models lacks this chat model"})},
        {"model_id": picks["removed"], "detail": compact(
            {"old": "not-api", "new": "removed", "reason": "it is gone from the hub (since 2026-11-03)"})},
    ], key=lambda r: r["model_id"])


# Index and tables ---------------------------------------------------------


def test_internal_tables_are_hidden(ds):
    tables = get_json(ds, "/catalog.json")["tables"]
    assert sorted(t["name"] for t in tables if not t["hidden"]) == [
        "crawl_runs", "model_events", "model_stats", "models"]
    page = get(ds, "/catalog").text
    assert "model_tracking" not in page and "catalog_info" not in page


def test_every_public_column_has_a_description(ds, crawled):
    meta = site.load_metadata()["databases"]["catalog"]["tables"]
    for name in ("models", "crawl_runs", "model_events", "model_stats", "trending",
                 "api_history", "api_models"):
        columns = [r["name"] for r in rows(crawled, f"select name from pragma_table_info('{name}')")]
        assert sorted(meta[name]["columns"]) == sorted(columns), name


def test_models_table_facets_and_sort(ds, models):
    data = get_json(ds, "/catalog/models.json?_size=3&_shape=objects")
    # Datasette 0.65 drops a facet that timed out from the JSON (and names it
    # on the HTML page), so all five must be here with their counts.
    facets = data["facet_results"]
    assert sorted(facets) == sorted(["status", "kind", "tasks", "owner", "license"])
    for column in ("status", "kind"):
        assert {r["value"]: r["count"] for r in facets[column]["results"]} == Counter(
            m[column] for m in models)
    # Every status but `unknown` (which only `indexer check` says) is stored here.
    assert {r["value"] for r in facets["status"]["results"]} == {"ok", "not-served", "not-api", "removed"}
    tasks = Counter(t for m in models for t in m["_tasks"])
    # The rail shows 8 values a facet (facet_size), the most common first, ties by name.
    assert [(r["value"], r["count"]) for r in facets["tasks"]["results"]] == sorted(
        tasks.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    assert [r["model_id"] for r in data["rows"]] == [m["model_id"] for m in by_downloads(models)[:3]]
    page = get(ds, "/catalog/models").text
    assert "facets-timed-out" not in page
    # The page shows the key columns; `url`, linked, is behind "all columns".
    link = '<a href="https://modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct">'
    assert link not in page and 'href="/catalog/models?_wide=1"' in page
    assert link in get(ds, "/catalog/models?_wide=1").text


def header_columns(page):
    return re.findall(r'<th [^>]*data-column="([^"]+)"', page)


def test_a_default_table_page_reads_only_the_columns_it_shows(crawled, ds, models):
    # Datasette renders every selected cell through every render_cell hook; the default
    # page selects its key columns and those its cells read (issue 16).
    keys = site_pages.KEY_COLUMNS["models"]
    page = get(ds, "/catalog/models").text
    total = len(models[0]) - 1  # without `_tasks`
    assert header_columns(page) == keys
    assert f'<p class="column-note">{len(keys)} of {total} columns;' in page
    # A status cell still carries its reason, which the page does not show as a column.
    top = by_downloads(models)[0]
    assert f'title="{markupsafe.escape(top["status_reason"])}">{top["status"]}</span>' in page
    # Sorted by a column it does not show, the next page still follows.
    sorted_page = get(ds, "/catalog/models?_sort=created_at&_size=2")
    assert sorted_page.status_code == 200
    following = re.search(r'href="([^"]*_next=[^"]*)"', sorted_page.text).group(1)
    following = following.replace("&amp;", "&").removeprefix("http://localhost")
    assert get(ds, following).status_code == 200
    # Every other shape selects every column, as Datasette does.
    assert len(header_columns(get(ds, "/catalog/models?_wide=1").text)) == total
    assert header_columns(get(ds, "/catalog/models?_col=likes").text) == ["model_id", "likes"]
    assert len(get_json(ds, "/catalog/models.json?_shape=array&_size=1")[0]) == total
    # So does a plain Datasette in the same process: the narrowing is the site's alone.
    plain = Datasette([str(crawled)], settings={"suggest_facets": False})
    assert len(header_columns(get(plain, "/catalog/models").text)) == total


def plain_facets(metadata_facets):
    """Our metadata's facet list in Datasette's own facet types."""
    types = {"catalog": "column", "catalog_array": "array"}
    return [next(iter(f.values())) if next(iter(f)) == "catalog"
            else {types[next(iter(f))]: next(iter(f.values()))} for f in metadata_facets]


def comparable(facet_results):
    """Facet results without what names the facet's type: its own removal link."""
    return {name: {k: v for k, v in facet.items() if k != "toggle_url"}
            for name, facet in facet_results.items()}


@pytest.mark.parametrize("query", [
    "",                                            # facet_counts, kept by the crawl
    "?_search=qwen",                               # one pass over the matches
    "?_search=",                                   # the box sent empty: no search
    "?status=not-api",
    "?kind=chat&_search=instruct",
    "?tasks__arraycontains=text-generation",
    "?owner=Qwen&_facet_size=3",
    "?_search=no-such-model-anywhere",             # no matches: empty facets
    "?_facet_catalog=support_inference&_search=qwen",  # a facet facet_counts does not keep
])
def test_catalog_facets_count_what_datasettes_own_facets_count(crawled, ds, query):
    # The catalog and catalog_array types count every facet of a page in one pass
    # (issue 16); what they show must be what Datasette's column and array facets show.
    table = site.load_metadata()["databases"]["catalog"]["tables"]["models"]
    plain_meta = {"databases": {"catalog": {"tables": {"models": {
        **{k: table[k] for k in ("sort_desc", "size", "facet_size", "fts_table", "fts_pk")},
        "facets": plain_facets(table["facets"])}}}}}
    plain = Datasette([str(crawled)], metadata=plain_meta, settings={"suggest_facets": False})
    # Datasette itself answers 400 to an empty search; the site drops it.
    plain_query = "" if query == "?_search=" else query.replace("_facet_catalog=", "_facet=")
    answer = get(ds, f"/catalog/models.json{query}")
    assert answer.status_code == 200, answer.text
    ours = json.loads(answer.text.replace("_facet_catalog=", "_facet="))
    theirs = get_json(plain, f"/catalog/models.json{plain_query}")
    assert ours.get("facets_timed_out", []) == theirs.get("facets_timed_out", []) == []
    assert comparable(ours["facet_results"]) == comparable(theirs["facet_results"])
    if query == "":
        assert [r["value"] for r in ours["facet_results"]["status"]["results"]][:1] == ["not-api"]


@pytest.mark.parametrize("fragment", ["wen2.5-7", "QWEN3-2", "Kimi-K2", "通义千问", "深度求索", "恶意模"])
def test_search_finds_models_by_id_fragments_and_chinese_names(ds, models, fragment):
    got = get_json(ds, f"/catalog/models.json?{q(_search=fragment)}&_shape=array&_size=max")
    text = lambda m: " ".join(m[c] or "" for c in schema.FTS_COLUMNS).lower()
    assert_by_downloads(got, [m for m in models if fragment.lower() in text(m)])


def test_short_fragments_need_contains(ds, models):
    assert get_json(ds, "/catalog/models.json?_search=V3&_shape=arrayfirst") == []
    got = get_json(ds, "/catalog/models.json?model_id__contains=V3&_shape=array&_size=max")
    assert_by_downloads(got, [m for m in models if "v3" in m["model_id"].lower()])


def assert_by_downloads(got, expected):
    """The same models, most downloaded first (Datasette breaks ties its own way)."""
    assert sorted(r["model_id"] for r in got) == sorted(m["model_id"] for m in expected)
    assert got
    downloads = [-1 if r["downloads"] is None else r["downloads"] for r in got]
    assert downloads == sorted(downloads, reverse=True)


# Canned queries -----------------------------------------------------------


API_COLUMNS = ("model_id", "owner", "kind", "tasks", "downloads", "likes", "status_reason", "url")


def api_rows(models, keep=lambda m: True):
    out = [dict(public(m, *API_COLUMNS), model_id=m["api_model_id"] or m["model_id"])
           for m in models if m["status"] == "ok" and keep(m)]
    return by_downloads(out)


@pytest.mark.parametrize("params, keep", [
    ({}, lambda m: True),
    ({"task": "", "owner": "", "min_downloads": ""}, lambda m: True),
    ({"task": TG}, lambda m: TG in m["_tasks"]),
    ({"owner": "Qwen"}, lambda m: m["owner"] == "Qwen"),
    ({"min_downloads": "1000"}, lambda m: (m["downloads"] or 0) >= 1000),
    ({"task": "text-to-image-synthesis", "owner": "Qwen", "min_downloads": "10"},
     lambda m: "text-to-image-synthesis" in m["_tasks"] and m["owner"] == "Qwen" and m["downloads"] >= 10),
])
def test_find_api_models(ds, models, params, keep):
    got = get_json(ds, f"/catalog/find_api_models.json?{q(**params)}&_shape=array")
    assert got == api_rows(models, keep)
    assert got


def test_find_api_models_unfiltered_equals_the_api_models_view(ds):
    view = get_json(ds, "/catalog/api_models.json?_shape=array&_size=max&_sort_desc=downloads")
    query = get_json(ds, "/catalog/find_api_models.json?_shape=array")
    assert sorted(query, key=lambda r: r["model_id"]) == sorted(view, key=lambda r: r["model_id"])


FALLBACK_COLUMNS = ("model_id", "kind", "downloads", "likes", "tasks", "url")


@pytest.mark.parametrize("params, task, n", [
    ({}, None, 10), ({"task": "", "n": ""}, None, 10), ({"task": TG, "n": "3"}, TG, 3),
    ({"task": "text-to-image-synthesis"}, "text-to-image-synthesis", 10), ({"n": "0"}, None, 1),
])
def test_fallback_models_and_ids(ds, models, params, task, n):
    expected = by_downloads([
        dict(public(m, *FALLBACK_COLUMNS), model_id=m["api_model_id"] or m["model_id"])
        for m in models
        if is_callable(m) and (task is None or task in m["_tasks"])])[:n]
    assert get_json(ds, f"/catalog/fallback_models.json?{q(**params)}&_shape=array") == expected
    lines = get(ds, f"/catalog/fallback_ids.csv?{q(**params)}&_header=off").text.splitlines()
    assert lines == [r["model_id"] for r in expected]
    copyable = get(ds, f"/catalog/fallback_ids.copyable?{q(**params)}&_table_format=tsv&_raw=1")
    assert copyable.text.splitlines() == ["model_id", *lines]


def test_fallbacks_leave_out_chat_models_the_service_does_not_list(ds, picks):
    ids = get_json(ds, f"/catalog/fallback_ids.json?{q(task=TG, n=1000)}&_shape=arrayfirst")
    assert UNLISTED_API_CHAT_ID not in ids and picks["unlisted"] not in ids
    assert EVIL_ID not in ids and LISTED_NOT_API_ID in ids


CHECK_COLUMNS = ("model_id", "callable_id", "status", "status_reason", "kind", "tasks",
                 "downloads", "last_seen_at", "url")


def check_row(models, model_id, match, status):
    m = next(m for m in models if m["model_id"] == model_id)
    assert m["status"] == status
    return {"match": match, "model_id": model_id,
            # Only an ID that will work has an ID to call.
            "callable_id": (m["api_model_id"] or m["model_id"]) if status == "ok" else None,
            **public(m, *CHECK_COLUMNS[2:])}


UNKNOWN_ROW = {"match": "exact", "model_id": None, "callable_id": None, "status": "unknown",
               "status_reason": "the catalog has never seen this ID", "kind": None, "tasks": None,
               "downloads": None, "last_seen_at": None, "url": None}


def check(ds, pasted):
    rows_ = get_json(ds, f"/catalog/check_model_id.json?{q(id=pasted)}&_shape=array")
    # Column order is part of the answer users read.
    if rows_:
        assert list(rows_[0]) == ["match", *CHECK_COLUMNS]
    return rows_


def suggestions(crawled, given):
    """What `indexer check` suggests (indexer.check.suggest), which the site must echo."""
    db = store.open_db(crawled, create=False)
    try:
        return check_module.suggest(db, given)
    finally:
        db.conn.close()


def test_check_model_id_without_an_id_answers_nothing(ds):
    assert get_json(ds, "/catalog/check_model_id.json?_shape=array") == []
    assert get_json(ds, "/catalog/check_model_id.json?id=&_shape=array") == []


@pytest.mark.parametrize("model_id, status", [
    ("Qwen/Qwen2.5-7B-Instruct", "ok"),
    (API_IMAGE_ID, "ok"),                # the badge, not chat: not expected on the list
    (LISTED_NOT_API_ID, "ok"),           # flagged since the second crawl
    (LISTED_MISSING_ID, "ok"),           # listed, not on the hub: callable
    (UNLISTED_API_CHAT_ID, "not-served"),
    (EVIL_ID, "not-served"),
    ("openmoss/MOSS-TTSD-v0.5", "not-api"),
])
def test_check_model_id_exact(ds, models, model_id, status):
    # A known, live ID gets no close matches: it is its own answer.
    assert check(ds, model_id) == [check_row(models, model_id, "exact", status)]


def test_check_model_id_for_a_removed_model(ds, crawled, models, picks):
    removed = picks["removed"]
    got = check(ds, removed)
    assert got[0] == check_row(models, removed, "exact", "removed")
    # A removed ID gets the CLI's suggestions, as an unknown one does (issue 11).
    assert [r["model_id"] for r in got[1:]] == suggestions(crawled, removed)
    assert all(r["match"] == "close" for r in got[1:])


def test_check_model_id_unknown_with_close_matches(ds, crawled, models):
    got = check(ds, " qwen/qwen2.5-7b-instruct ")
    assert got[0] == UNKNOWN_ROW
    expected = suggestions(crawled, "qwen/qwen2.5-7b-instruct")
    assert expected[0] == "Qwen/Qwen2.5-7B-Instruct"  # the right casing first
    assert got[1:] == [check_row(models, m, "close", next(x["status"] for x in models
                                                           if x["model_id"] == m)) for m in expected]


@pytest.mark.parametrize("pasted", ["SomeMirror/Kimi-K2-Instruct", "Qwen/Qwen2.5-7B-Instrcut",
                                    "modelscope/Qwen/Qwen-Image:latest", "a", "%",
                                    "Qwen_Qwen2.5-7B-Instruct", "\\", "_"])
def test_check_model_id_suggests_what_the_cli_suggests(ds, crawled, pasted):
    got = check(ds, pasted)
    assert got[0] == UNKNOWN_ROW
    assert [r["model_id"] for r in got[1:]] == suggestions(crawled, pasted)
    assert all(r["match"] == "close" for r in got[1:])


def test_check_model_id_finds_the_name_under_another_owner(ds):
    got = check(ds, "SomeMirror/Kimi-K2-Instruct")
    assert [r["model_id"] for r in got[1:]] == [UNLISTED_API_CHAT_ID]


def test_disagreements(ds, models, picks):
    def side(m):
        return "badge, not served" if m["status"] == "not-served" else "listed, no badge"

    expected = [
        {"disagreement": side(m), **public(m, "model_id", "status", "status_reason", "kind", "tasks",
                                           "downloads", "last_seen_at", "url")}
        for m in models
        if m["status"] == "not-served" or (m["in_inference_list"] == 1 and m["api_inference"] == 0)]
    expected.sort(key=lambda r: (r["disagreement"], -(r["downloads"] or 0), r["model_id"]))
    got = get_json(ds, "/catalog/disagreements.json?_shape=array")
    assert got == expected
    by_id = {r["model_id"]: r["disagreement"] for r in got}
    assert by_id[UNLISTED_API_CHAT_ID] == by_id[picks["unlisted"]] == by_id[EVIL_ID] == "badge, not served"
    assert by_id[LISTED_MISSING_ID] == "listed, no badge"
    assert API_IMAGE_ID not in by_id


def changes_ids(ds, **params):
    return get_json(ds, f"/catalog/changes.json?{q(**params)}&_shape=arrayfirst")


def test_changes_without_filters_lists_every_event_newest_first(ds, crawled):
    events = rows(crawled, "select id from model_events order by at desc, id desc")
    assert changes_ids(ds) == [e["id"] for e in events]
    assert changes_ids(ds, event="", task="", owner="") == [e["id"] for e in events]


def test_changes_filtered(ds, crawled, models, picks):
    removed = picks["removed"]
    got = get_json(ds, "/catalog/changes.json?event=removed&_shape=array")
    (event,) = rows(crawled, "select * from model_events where event = 'removed'")
    url = f"https://modelscope.cn/models/{removed}"
    assert got == [{
        "id": event["id"], "at": "2026-11-03T03:00:00+00:00", "event": "removed",
        "model_id": removed, "owner": removed.split("/")[0],
        "tasks": next(m["tasks"] for m in models if m["model_id"] == removed),
        "detail": None, "url": url, "atom_id": f"tag:modelscope-indexer,2026:event/{event['id']}",
        "atom_title": f"{removed}: removed", "atom_updated": "2026-11-03T03:00:00+00:00",
        "atom_link": url, "atom_content": f"{removed} removed at 2026-11-03T03:00:00+00:00"}]
    owner = picks["changed"].split("/")[0]
    by_owner = rows(crawled, "select e.id from model_events e left join models m using (model_id) "
                             "where coalesce(m.owner, substr(e.model_id, 1, instr(e.model_id, '/') - 1)) = ? "
                             "order by e.at desc, e.id desc", [owner])
    assert changes_ids(ds, owner=owner) == [r["id"] for r in by_owner]
    chat = [r["id"] for r in rows(crawled, "select e.id from model_events e join models m using (model_id) "
                                           "where m.tasks like '%\"text-generation\"%' "
                                           "order by e.at desc, e.id desc")]
    assert changes_ids(ds, task=TG) == chat
    assert len(chat) >= 2
    assert changes_ids(ds, task="text-to-image-synthesis") == [None]   # the placeholder


def test_changes_with_nothing_to_show_has_one_placeholder_row(ds):
    got = get_json(ds, "/catalog/changes.json?event=returned&_shape=array")
    assert got == [{"id": None, "at": None, "event": None, "model_id": None, "owner": None,
                    "tasks": None, "detail": None, "url": None,
                    "atom_id": "tag:modelscope-indexer,2026:no-changes",
                    "atom_title": "No matching catalog changes yet",
                    "atom_updated": "2026-01-01T00:00:00+00:00",
                    "atom_link": "https://modelscope.cn/models",
                    "atom_content": "The catalog has recorded no changes matching this feed yet."}]


# The Atom feed ------------------------------------------------------------


def feed(ds, url):
    response = get(ds, url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.find(f"{ATOM}title").text == "ModelScope catalog changes"
    return root.findall(f"{ATOM}entry")


def test_feed_with_many_events(ds, crawled):
    entries = feed(ds, "/catalog/changes.atom")
    events = rows(crawled, "select * from model_events order by at desc, id desc")
    assert len(entries) == len(events) == FRESH + 7
    titles = [e.find(f"{ATOM}title").text for e in entries]
    headline = {"not-served": "is no longer served", "removed": "was removed from the hub"}
    assert sorted(titles) == sorted(
        f"{e['model_id']} {headline[json.loads(e['detail'])['new']]}" if e["event"] == "status_changed"
        else f"{e['model_id']}: {e['event']}" for e in events)
    assert f"{EVIL_ID}: added" in titles
    assert all(e.find(f"{ATOM}updated").text.endswith("+00:00") for e in entries)
    assert all(e.find(f"{ATOM}link").get("href").startswith("https://modelscope.cn/models/")
               for e in entries)


def test_feed_filtered(ds, crawled):
    entries = feed(ds, f"/catalog/changes.atom?{q(event='added', owner='evil')}")
    assert [e.find(f"{ATOM}title").text for e in entries] == [f"{EVIL_ID}: added"]


@pytest.mark.parametrize("params", [{}, {"event": "removed"}, {"task": "no-such-task"}])
def test_feed_with_no_events(baseline, params):
    entries = feed(site.build_datasette(baseline), f"/catalog/changes.atom?{q(**params)}")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["No matching catalog changes yet"]


def test_feed_of_a_filter_matching_nothing(ds):
    entries = feed(ds, "/catalog/changes.atom?event=returned")
    assert [e.find(f"{ATOM}id").text for e in entries] == ["tag:modelscope-indexer,2026:no-changes"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A catalog after its first crawl: models, but no events yet."""
    path = tmp_path_factory.mktemp("baseline") / "catalog.db"
    with FakeHub(build_catalog()) as hub:
        run_crawl(path, hub, scope="full", now=Clock(DAY0))
    return path


# Hostile text -------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/catalog/models?_search=alert",
    "/catalog/models?owner=evil",
    f"/catalog/models/{tilde_encode(EVIL_ID)}",
    "/catalog/models?status=not-served&owner=evil",
    f"/catalog/check_model_id?{q(id=EVIL_ID)}",
    "/catalog/disagreements",
    "/catalog/changes?owner=evil",
    "/catalog/models?kind=chat&owner=evil",
    "/catalog/model_events?model_id=" + urllib.parse.quote(EVIL_ID),
])
def test_a_hostile_model_name_renders_escaped(ds, url):
    response = get(ds, url)
    assert response.status_code == 200
    assert "alert(1)" in response.text
    assert EVIL_NAME not in response.text
    assert "<img src=x" not in response.text and "<b>x" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_model_ids_in_queries_link_to_modelscope(ds):
    page = get(ds, "/catalog/find_api_models?owner=Qwen").text
    assert ('<a href="https://modelscope.cn/models/Qwen/Qwen-Image">Qwen/Qwen-Image</a>') in page
    # The hostile model is not-served, so it shows on the disagreements page.
    page = get(ds, "/catalog/disagreements").text
    escaped = "evil/&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f'<a href="https://modelscope.cn/models/{escaped}">{escaped}</a>' in page


# Dashboard ----------------------------------------------------------------


def chart_rows(ds, chart):
    config = site.load_metadata()["plugins"]["datasette-dashboards"]["catalog"]["charts"][chart]
    return get_json(ds, f"/catalog.json?{q(sql=config['query'])}&_shape=array")


def test_dashboard_renders(ds):
    response = get(ds, "/-/dashboards/catalog")
    assert response.status_code == 200
    for title in ("API-capable models over time", "Events per week by type", "Top growing models",
                  "Models per task", "Crawl health"):
        assert title in response.text
    assert get(ds, "/-/dashboards/catalog/crawl-health").status_code == 200


def test_dashboard_charts(ds, crawled, models):
    runs = rows(crawled, "select * from crawl_runs order by id desc")
    assert chart_rows(ds, "api-now") == [{"n": sum(m["status"] == "ok" for m in models)}]
    assert chart_rows(ds, "api-over-time") == [
        {"day": r["finished_at"][:10], "api_models": r["api_models"]} for r in runs]
    assert chart_rows(ds, "events-per-week") == [
        # Weeks are named by the date of their Monday.
        {"week": "2026-11-02", "event": e, "events": n}
        for e, n in sorted(Counter(r["event"] for r in rows(crawled, "select event from model_events")).items())]
    assert chart_rows(ds, "top-growing") == [{
        "model_id": "evil/&lt;script&gt;alert(1)&lt;/script&gt;", "status": "not-served",
        "downloads": 5, "downloads_7d": 4, "downloads_30d": None}]
    tasks = Counter(t for m in models if m["removed_at"] is None for t in m["_tasks"])
    assert {r["task"]: r["models"] for r in chart_rows(ds, "models-per-task")} == dict(tasks.most_common(25))
    assert chart_rows(ds, "crawl-health") == [
        {"id": r["id"], "scope": "full", "started_at": r["started_at"], "duration_s": 0.0,
         "status": "complete", "models_seen": r["models_seen"], "api_models": r["api_models"],
         "requests": r["requests"],
         "warnings": ", ".join(f"{k}={v}" for k, v in json.loads(r["warnings"]).items()),
         "error": ""} for r in runs]


def test_crawl_health_escapes_errors(tmp_path):
    path = tmp_path / "catalog.db"
    db = store.open_db(path)
    db.conn.execute("insert into crawl_runs (scope, started_at, finished_at, status, error) values "
                    "('api', '2026-11-01T03:00:00+00:00', '2026-11-01T03:02:30+00:00', 'failed', '<img src=x>')")
    db.conn.close()
    got = chart_rows(site.build_datasette(path), "crawl-health")
    assert [(r["duration_s"], r["warnings"], r["error"]) for r in got] == [
        (150.0, "", "&lt;img src=x&gt;")]


def test_crawl_health_shows_drift_warnings(tmp_path):
    # Issue 7: a drifting hub shows up on the crawl health page.
    path = tmp_path / "catalog.db"
    db = store.open_db(path)
    db.conn.execute("insert into crawl_runs (scope, started_at, finished_at, status, warnings, error) "
                    "values ('full', '2026-11-01T03:00:00+00:00', '2026-11-01T03:02:30+00:00', "
                    "'incomplete', ?, 'drop: ...')",
                    [json.dumps({"depth_limit_hits": 3, "drop_suspected": 1,
                                 "skipped_missing_path": 2}, sort_keys=True)])
    db.conn.close()
    got = chart_rows(site.build_datasette(path), "crawl-health")
    assert [r["warnings"] for r in got] == [
        "depth_limit_hits=3, drop_suspected=1, skipped_missing_path=2"]


# Freshness banner ---------------------------------------------------------


BANNER_PAGES = ["/", "/catalog", "/catalog/models", "/catalog/models/Qwen~2FQwen-Image",
                "/catalog/find_api_models", "/catalog/changes", "/catalog/api_models",
                "/-/dashboards/catalog"]


@pytest.mark.parametrize("url", BANNER_PAGES)
def test_every_page_says_when_the_catalog_was_refreshed(ds, url):
    page = get(ds, url).text
    assert page.count(f"Catalog last refreshed {LAST_CRAWL_AT} (full)") == 1
    assert "Sample data" not in page and "Last crawl" not in page


def catalog_with(tmp_path, runs=(), sample=False, name="catalog.db"):
    path = tmp_path / name
    db = store.open_db(path)
    for scope, status, finished_at, error in runs:
        db.conn.execute("insert into crawl_runs (scope, started_at, finished_at, status, error) "
                        "values (?, ?, ?, ?, ?)", [scope, finished_at, finished_at, status, error])
    if sample:
        db.conn.execute("insert into catalog_info values ('sample', '1')")
    db.conn.close()
    return site.build_datasette(path)


def banner(ds, url="/catalog/models"):
    response = get(ds, url)
    assert response.status_code == 200
    page = response.text
    if 'class="catalog-banner"' not in page:
        return []
    block = page.split('class="catalog-banner"', 1)[1].split("</div>", 1)[0]
    return [p.split(">", 1)[1].split("</p>", 1)[0] for p in block.split("<p ")[1:]]


def test_banner_for_the_sample(tmp_path):
    ds = catalog_with(tmp_path, sample=True)
    assert banner(ds) == ["Sample data, made up: the bundled example models as of an unknown day, "
                          "not real ModelScope counts. The first live crawl replaces them."]


def test_banner_without_any_crawl(tmp_path):
    assert banner(catalog_with(tmp_path)) == [
        "No crawl has completed yet: the catalog may be empty."]


def test_banner_after_a_failed_crawl(tmp_path):
    ds = catalog_with(tmp_path, runs=[
        ("full", "complete", "2026-11-01T03:00:00+00:00", None),
        ("api", "complete", "2026-11-01T04:00:00+00:00", None),
        ("api", "failed", "2026-11-01T05:00:00+00:00", "HTTP 503 <b>from</b> the hub"),
        ("api", "running", None, None),
    ])
    # Plain words (issue 13): what is shown, what failed, what happens next.
    assert banner(ds) == [
        "Showing the catalog of 2026-11-01 04:00 UTC. The crawl at 2026-11-01 05:00 UTC failed: "
        "HTTP 503 &lt;b&gt;from&lt;/b&gt; the hub; no crawl has run since; `indexer serve` crawls "
        "hourly, `indexer crawl` once."]


def test_banner_after_an_incomplete_crawl_then_a_complete_one(tmp_path):
    ds = catalog_with(tmp_path, runs=[
        ("full", "incomplete", "2026-11-01T03:00:00+00:00", "stopped"),
        ("api", "complete", "2026-11-01T04:00:00+00:00", None),
    ])
    assert banner(ds) == ["Catalog last refreshed 2026-11-01T04:00:00+00:00 (api)"]


def test_banner_for_an_incomplete_crawl_without_an_error(tmp_path):
    ds = catalog_with(tmp_path, runs=[("full", "incomplete", "2026-11-01T03:00:00+00:00", None)])
    assert banner(ds) == [
        "No crawl has completed yet, so the catalog may be empty. The crawl at 2026-11-01 03:00 UTC "
        "stopped before the end; no crawl has run since; `indexer serve` crawls hourly, "
        "`indexer crawl` once."]


def test_a_file_that_is_not_a_catalog_still_serves(tmp_path):
    path = tmp_path / "catalog.db"
    sqlite3.connect(path).execute("create table t (x)").connection.close()
    ds = site.build_datasette(path)
    assert banner(ds, "/catalog") == []
    assert get(ds, "/").status_code == 200


def test_a_catalog_of_another_name(crawled, tmp_path):
    path = tmp_path / "models-2026.db"
    source = sqlite3.connect(crawled)
    target = sqlite3.connect(path)
    source.backup(target)
    source.close()
    target.close()
    ds = site.build_datasette(path)
    # Served as `catalog` whatever the file is called (issue 10: the links are /catalog/...).
    assert banner(ds, "/catalog/models") == [f"Catalog last refreshed {LAST_CRAWL_AT} (full)"]
    assert get(ds, "/models-2026/models").status_code == 404
    assert get_json(ds, "/catalog/fallback_ids.json?n=2&_shape=arrayfirst") == \
        get_json(site.build_datasette(crawled), "/catalog/fallback_ids.json?n=2&_shape=arrayfirst")
    assert get(ds, "/-/dashboards/catalog").status_code == 200
    charts = get_json(ds, "/-/metadata.json")["plugins"]["datasette-dashboards"]["catalog"]["charts"]
    assert {c["db"] for c in charts.values()} == {"catalog"}


def test_the_site_plugin_leaves_other_datasettes_alone(crawled):
    site.register_plugin()
    site.register_plugin()
    plain = Datasette([str(crawled)])
    page = get(plain, "/catalog/models").text
    assert "catalog-banner" not in page and "last refreshed" not in page
    # ...while ours shows the banner once, however often the plugin was registered.
    assert get(site.build_datasette(crawled), "/catalog").text.count("Catalog last refreshed") == 1


# Read-only, robots, exports -----------------------------------------------


def test_robots_allow_only_the_index(ds):
    response = get(ds, "/robots.txt")
    assert response.status_code == 200
    assert response.text == "User-agent: *\nDisallow: /catalog"


@pytest.mark.parametrize("url", ["/catalog/find_api_models", "/catalog/models", "/catalog",
                                 "/-/messages", "/catalog/models/-/insert"])
def test_writes_are_refused(ds, url):
    response = asyncio.run(ds.client.post(url, data={"task": ""}))
    assert response.status_code == 405


def test_sql_cannot_write(ds, crawled):
    before = rows(crawled, "select count(*) as n from models")
    response = get(ds, "/catalog.json?" + q(sql="delete from models"))
    assert response.status_code == 400
    assert rows(crawled, "select count(*) as n from models") == before


def test_the_database_file_is_not_downloadable(ds):
    assert get(ds, "/catalog.db").status_code in (403, 404)


# Speed (issue 16) -----------------------------------------------------------


def test_pages_read_the_catalog_through_a_memory_map(crawled):
    ds = site.build_datasette(crawled)
    # SQLite caps the map at its build's limit, and says what it took.
    cap = sqlite3.connect(crawled).execute(f"pragma mmap_size = {site.MMAP_BYTES}").fetchone()[0]
    assert cap > 0
    assert [tuple(r) for r in asyncio.run(ds.get_database("catalog").execute("pragma mmap_size")).rows] == [(cap,)]


def test_what_the_site_loads_is_kept_out_of_full_collections(crawled):
    gc.unfreeze()
    ds = site.build_datasette(crawled)
    assert gc.get_freeze_count() == 0
    asyncio.run(ds.invoke_startup())  # on the first request, or by `datasette serve`
    # Everything alive once the site has started, its Datasette among it, is frozen:
    # tracked, yet in none of the generations a collection walks.
    assert gc.get_freeze_count() > 10_000
    assert gc.is_tracked(ds)
    assert not any(o is ds for o in gc.get_objects())


def test_a_search_counts_its_matches_from_the_full_text_index(crawled):
    ds = site.build_datasette(crawled, settings={"trace_debug": True})
    conn = sqlite3.connect(crawled)
    expected = conn.execute("select count(*) from models where rowid in "
                            "(select rowid from models_fts where models_fts match ?)", ['"qwen"']).fetchone()[0]
    chat = conn.execute("select count(*) from models where kind = 'chat' and rowid in "
                        "(select rowid from models_fts where models_fts match ?)", ['"qwen"']).fetchone()[0]
    instruct = conn.execute("select count(*) from models where rowid in "
                            "(select rowid from models_fts where models_fts match ?)", ['"instruct"']).fetchone()[0]
    assert expected > chat > 10 and instruct > 10 and instruct != expected

    def counted(url):
        if ".json" in url:
            answer = get_json(ds, url + "&_trace=1")
            count, traces = answer["filtered_table_rows_count"], answer["_trace"]["traces"]
        else:  # the page says the count; the trace follows it in a <pre>
            page = get(ds, url + "&_trace=1").text
            count = int(re.search(r"([\d,]+) rows? where search matches", page)[1].replace(",", ""))
            traces = json.loads(html.unescape(re.search(r"<pre>(.*)</pre>", page, re.S)[1]))["traces"]
        return count, [t["sql"] for t in traces if t.get("sql", "").startswith("select count(*)")]

    assert counted("/catalog/models.json?_search=qwen") == (
        expected, ["select count(*) from models_fts where models_fts match escape_fts(:search)"])
    # The next search's facets start as it arrives (facets.start_facets_early), and
    # their groups add up to its count: nothing counts the matches a third time.
    assert counted("/catalog/models.json?_search=instruct") == (instruct, [])
    assert counted("/catalog/models?_search=qwen") == (expected, [])  # the HTML page too
    # With another filter beside it, Datasette's own count runs.
    count, sql = counted("/catalog/models.json?_search=qwen&kind=chat")
    assert count == chat and len(sql) == 1 and sql[0].startswith("select count(*) from models where ")


def test_permission_answers_are_remembered_for_visitors_and_allow_blocks_still_hold(crawled):
    ds = site.build_datasette(crawled)
    ds._metadata_local["databases"]["catalog"]["tables"]["model_tracking"] = {"allow": False}

    def visit():
        return [get(ds, url).status_code for url in ("/catalog/model_tracking", "/catalog/crawl_runs", "/")]

    assert visit() == [403, 200, 200]
    asked = len(ds._permission_checks)
    assert visit() == [403, 200, 200]
    assert len(ds._permission_checks) == asked  # nothing asked again
    # A signed-in actor is asked every time.
    root = {"id": "root"}
    resource = ("catalog", "model_tracking")
    assert asyncio.run(ds.permission_allowed(root, "view-table", resource)) is False
    assert asyncio.run(ds.permission_allowed(root, "view-table", resource)) is False
    assert len(ds._permission_checks) == asked + 2
    ds.forget_permissions()
    assert visit() == [403, 200, 200]
    assert len(ds._permission_checks) > asked + 2


def test_csv_streaming_returns_every_api_model_past_the_row_cap(crawled, models):
    ds = site.build_datasette(crawled, settings={"max_returned_rows": 10})
    response = get(ds, "/catalog/api_models.csv?_stream=on&_col=model_id&_header=off")
    assert response.status_code == 200
    ids = [m["api_model_id"] or m["model_id"] for m in models if m["status"] == "ok"]
    assert len(ids) > 10
    assert sorted(response.text.splitlines()) == sorted(ids)
    # The models table's page size was fitted under the lower cap instead of failing.
    assert get(ds, "/catalog/models.json").status_code == 200


def test_json_array_of_api_models(ds, models):
    got = get_json(ds, "/catalog/models.json?api_inference=1&_shape=array&_size=max&_col=api_model_id")
    assert sorted(r["model_id"] for r in got) == sorted(m["model_id"] for m in models if m["api_inference"] == 1)


# Hostile model text (issue 14) ---------------------------------------------

HOSTILE_NAMES = ["invoice-\u202egpj.exe", "Broken\uffffModel", "Non\ufffeChar"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A catalog whose second crawl added models with bidi and XML-forbidden characters in their IDs."""
    path = tmp_path_factory.mktemp("hostile") / "catalog.db"
    catalog = build_catalog()
    with FakeHub(catalog) as hub:
        run_crawl(path, hub, now=Clock(DAY0))
        template = catalog.get(first_model(catalog, api=True, listed=False))
        for i, name in enumerate(HOSTILE_NAMES):
            catalog.add(dict(template, Id=980_000 + i, Path="Hostile-Org", Name=name), api=True)
        run_crawl(path, hub, now=Clock(DAY0 + timedelta(days=1)))
    return path


def test_a_hostile_model_id_keeps_the_feed_valid_xml(hostile):
    # Stored as the hub sent them, so `check` still finds them...
    stored = rows(hostile, "select model_id from models where owner = 'Hostile-Org' order by model_id")
    assert [r["model_id"] for r in stored] == sorted(f"Hostile-Org/{n}" for n in HOSTILE_NAMES)
    # ...while the feed is valid XML that shows every hidden character.
    entries = feed(site.build_datasette(hostile), "/catalog/changes.atom")
    assert sorted(e.find(f"{ATOM}title").text for e in entries) == [
        "Hostile-Org/Broken<U+FFFF>Model: api_enabled",
        "Hostile-Org/Non<U+FFFE>Char: api_enabled",
        "Hostile-Org/invoice-<U+202E>gpj.exe: api_enabled"]
    assert sorted(e.find(f"{ATOM}link").get("href") for e in entries) == [
        "https://modelscope.cn/models/Hostile-Org/Broken%EF%BF%BFModel",
        "https://modelscope.cn/models/Hostile-Org/Non%EF%BF%BEChar",
        "https://modelscope.cn/models/Hostile-Org/invoice-%E2%80%AEgpj.exe"]


# Not /catalog/models: Datasette renders a table's primary-key link itself,
# without render_cell, so that page still shows the raw ID.
@pytest.mark.parametrize("url", ["/catalog/changes", "/catalog/api_models?owner=Hostile-Org",
                                 "/catalog/model_events"])
def test_pages_show_hidden_characters_in_model_text(hostile, url):
    response = get(site.build_datasette(hostile), url)
    assert response.status_code == 200, response.text
    assert "\u202e" not in response.text and "\uffff" not in response.text
    assert "invoice-&lt;U+202E&gt;gpj.exe" in response.text


def test_render_cell_links_the_visible_id():
    ds = site.build_datasette(":memory:")
    row = {"model_id": "a/invoice-\u202egpj.exe", "url": "https://modelscope.cn/models/a/invoice-\u202egpj.exe"}
    html = site.SitePlugin().render_cell(row=row, value=row["model_id"], column="model_id",
                                         table=None, database="catalog", datasette=ds)
    assert html == ('<a href="https://modelscope.cn/models/a/invoice-%E2%80%AEgpj.exe">'
                    'a/invoice-&lt;U+202E&gt;gpj.exe</a>')
    plain = site.SitePlugin().render_cell(row=row, value="line one\nline\u202etwo", column="description",
                                          table="models", database="catalog", datasette=ds)
    assert plain == "line one\nline&lt;U+202E&gt;two"
    assert site.SitePlugin().render_cell(row=row, value="plain", column="license", table="models",
                                         database="catalog", datasette=ds) is None


@pytest.mark.parametrize("query, narrowed", [
    ("_search=qwen", [("_search", "qwen")]),
    ("_search=qwen&_sort=likes&_size=5&_next=3", [("_search", "qwen")]),
    ("kind=chat&_search=qwen", [("kind", "chat"), ("_search", "qwen")]),
    ("_search=qwen&_facet_catalog=name", None),  # another facet: other columns
    ("_search=qwen&_nofacet=1", None),
    ("_search=%20", None),
    ("_sort=likes", None),                       # unfiltered: facet_counts
    ("", None),
])
def test_which_pages_have_their_facets_counted_early(query, narrowed):
    assert facets.narrowing(query) == narrowed


@pytest.mark.parametrize("first, then", [
    ("_search=qwen", ["_search=instruct", "_search=kimi", "_search=qwen"]),
    ("kind=chat", ["kind=image", "kind=embedding"]),
    ("kind=chat&_search=qwen", ["kind=image&_search=instruct", "_search=instruct&kind=chat"]),
])
def test_a_page_counted_early_shows_what_datasette_counts(crawled, first, then):
    # The first page of a shape teaches the site its facet SQL; the next one's facets are
    # then counted beside its rows and count (issue 16), and must come out the same.
    ours = site.build_datasette(crawled)

    def scope(query):
        return {"type": "http", "path": "/catalog/models.json", "query_string": query.encode()}

    assert facets.PREFETCH_KEY not in facets.start_facets_early(ours, scope(then[0]))
    get_json(ours, f"/catalog/models.json?{first}")

    async def started(query):
        early = facets.start_facets_early(ours, scope(query))
        (sql, params, columns, arrays), task = early[facets.PREFETCH_KEY]
        await task
        return columns, arrays

    assert asyncio.run(started(then[0])) == (["status", "kind", "owner", "license"], ["tasks"])
    table = site.load_metadata()["databases"]["catalog"]["tables"]["models"]
    plain = Datasette([str(crawled)], settings={"suggest_facets": False}, metadata={
        "databases": {"catalog": {"tables": {"models": {
            **{k: table[k] for k in ("sort_desc", "size", "facet_size", "fts_table", "fts_pk")},
            "facets": plain_facets(table["facets"])}}}}})
    for query in then:
        assert comparable(get_json(ours, f"/catalog/models.json?{query}")["facet_results"]) \
            == comparable(get_json(plain, f"/catalog/models.json?{query}")["facet_results"])


def test_catalog_page_counts_are_exact_up_to_the_bound_and_many_above(crawled):
    # SQLite counts a whole table in one step its time limit cannot stop, which made the
    # catalog page 0.25 s at 1,000,000 models (issue 16); counts now stop at a bound.
    db = site.build_datasette(crawled).get_database("catalog")
    conn = sqlite3.connect(crawled)
    tables = [r[0] for r in conn.execute(
        "select name from sqlite_master where type = 'table' order by name")]
    exact = {t: conn.execute(f"select count(*) from [{t}]").fetchone()[0]
             for t in tables if t != "models_fts"}
    conn.close()
    assert asyncio.run(db.table_counts(1000)) == {**exact, "models_fts": None}
    db.count_bound = 10
    assert asyncio.run(db.table_counts(1000)) == {
        **{t: (n if n <= 10 else None) for t, n in exact.items()}, "models_fts": None}
    assert exact["models"] > 10


def test_the_api_models_view_trending_and_the_event_log_show_30_rows_a_page(crawled, tmp_path):
    path = tmp_path / "catalog.db"
    shutil.copy(crawled, path)
    conn = sqlite3.connect(path)
    with conn:
        # Enough rows for a second page at Datasette's own 100 as well as at 30.
        conn.execute("update models set status = 'ok' where rowid in "
                     "(select rowid from models order by rowid limit 120)")
        conn.executemany("insert into model_events (run_id, model_id, event, at) "
                         "values (1, ?, 'added', '2026-11-01T03:00:00+00:00')",
                         [(f"owner/model-{i}",) for i in range(120)])
        conn.execute("delete from model_growth")
        conn.execute("insert into model_growth (model_id, downloads_7d, downloads_30d) "
                     "select model_id, 5, 9 from models order by rowid limit 120")
    conn.close()
    ds = site.build_datasette(path)
    for table in ("api_models", "trending", "model_events"):
        page = get_json(ds, f"/catalog/{table}.json?_shape=objects")
        assert (table, len(page["rows"]), page["next"] is not None) == (table, 30, True)
