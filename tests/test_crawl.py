"""Crawls against the fake hub, both scopes, depth limits, faults and idempotence (issue 2)."""

import json
import sqlite3

import pytest

from indexer import crawl, schema, store
from tests.fixtures.catalog import build_catalog
from tests.helpers import (
    Sleeps,
    expected_row,
    make_fetcher,
    models,
    rows,
    run_crawl,
    valid_items,
    with_status,
    without_times,
)


def expected_models(catalog, scope):
    """Every row a crawl of `scope` must leave, keyed by ID, without seen-times."""
    listed = set(catalog.listed_ids)
    out = {}
    for item in valid_items(catalog):
        row = expected_row(item, item_id(item) in catalog.api_ids, item_id(item) in listed)
        if scope == "full" or item_id(item) in catalog.api_ids:
            out[row["model_id"]] = row
    for model_id in listed - set(out):
        if scope == "api" and model_id in {item_id(i) for i in valid_items(catalog)}:
            # The api scope only knows a listed model's ID when the hub's API
            # set lacks it, so it stores the bare row.
            pass
        if model_id in out:
            continue
        owner, name = model_id.split("/", 1)
        out[model_id] = with_status({
            "model_id": model_id, "owner": owner, "name": name, "chinese_name": None,
            "description": None, "tasks": None, "tags": None, "libraries": None,
            "license": None, "downloads": None, "likes": None, "created_at": None,
            "updated_at": None, "api_inference": 0, "api_model_id": None,
            "in_inference_list": 1, "support_inference": None,
            "url": f"https://modelscope.cn/models/{model_id}", "removed_at": None})
    return out


def item_id(item):
    return f"{item['Path']}/{item['Name']}"


def stored(db_path):
    return {k: without_times(v) for k, v in models(db_path).items()}


def test_api_scope_stores_the_api_set_and_the_listed_ids(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, fakehub, scope="api")
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "api")
    run = rows(db_path, "select * from crawl_runs")[0]
    assert {k: run[k] for k in ("id", "scope", "status", "models_seen", "expected_total",
                                "api_models", "listed_models", "error")} == {
        "id": 1, "scope": "api", "status": "complete", "models_seen": len(catalog.api_ids),
        "expected_total": len(catalog.api_ids), "api_models": len(catalog.api_ids),
        "listed_models": len(catalog.listed_ids), "error": None}
    # A handful of requests: the guard's two totals, the API pages, /models.
    assert run["requests"] == 2 + -(-len(catalog.api_ids) // 100) + 1


def test_full_scope_collects_every_model_with_flags_likes_and_downloads(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, fakehub, scope="full")
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "full")
    assert result.warnings == {"skipped_missing_path": 1, "skipped_missing_name": 1}
    seen = models(db_path)
    first = {r["first_seen_at"] for r in seen.values()}
    assert len(first) == 1 and first.pop().endswith("+00:00")


@pytest.mark.parametrize("style", ["empty", "short", "error"])
@pytest.mark.parametrize("facets", [False, True])
def test_full_crawl_past_a_depth_limit_partitions_and_still_gets_everything(
        tmp_path, catalog, make_hub, style, facets):
    hub = make_hub(catalog, max_offset=100, depth_style=style, facets_tasks_orgs=facets)
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "full")
    assert result.warnings["depth_limit_hits"] >= 1


def test_depth_limit_without_task_list_or_facets_uses_tasks_seen(tmp_path, catalog, make_hub):
    hub = make_hub(catalog, max_offset=100, depth_style="empty", tasks_endpoint=False)
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "full")
    assert result.warnings["task_list_unavailable"] == 1


def test_a_slice_the_hub_cannot_page_is_recorded_incomplete_and_saved(tmp_path, make_hub):
    # Depth 10 with the largest task in one organisation: no slice fits.
    catalog = build_catalog(300)
    hub = make_hub(catalog, max_offset=10, depth_style="empty")
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "incomplete"
    assert result.error == "API-Inference set: 10 of 36; collected 244 of 300 models"
    assert 0 < len(models(db_path)) < len(valid_items(catalog))
    assert rows(db_path, "select status from crawl_runs") == [{"status": "incomplete"}]


def test_recrawl_with_no_upstream_change_only_moves_last_seen_at(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, fakehub, scope="full").status == "complete"
    before = models(db_path)
    assert run_crawl(db_path, fakehub, scope="full").status == "complete"
    after = models(db_path)
    assert {k: dict(v, last_seen_at=None) for k, v in after.items()} == \
        {k: dict(v, last_seen_at=None) for k, v in before.items()}
    assert rows(db_path, "select count(*) as n from model_events") == [{"n": 0}]


@pytest.mark.parametrize("kind, extra", [
    ("429", {"retry_after": 1}), ("500", {}), ("503", {}), ("truncated", {}),
    ("nonjson", {}), ("success_false", {}), ("reset", {}),
])
def test_passing_faults_are_retried(tmp_path, catalog, fakehub, kind, extra):
    fakehub.add_fault(kind, count=2, path="/api/v1/dolphin", **extra)
    sleeps = Sleeps()
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, fakehub, fetcher=make_fetcher(fakehub, sleep=sleeps))
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "api")
    assert len(sleeps) == 2
    if kind == "429":
        assert sleeps == [1.0, 1.0]  # Retry-After is honoured


def test_a_slow_answer_times_out_and_is_retried(tmp_path, catalog, fakehub):
    fakehub.add_fault("slow", count=1, seconds=1.5)
    fetcher = make_fetcher(fakehub, timeout=0.5)
    result = run_crawl(tmp_path / "catalog.db", fakehub, fetcher=fetcher)
    assert result.status == "complete", result.summary()
    assert fetcher.retries_made == 1


def test_retries_spent_fail_the_crawl_and_keep_the_catalog(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, fakehub, scope="api").status == "complete"
    before = models(db_path)
    fakehub.add_fault("500", count=10)
    result = run_crawl(db_path, fakehub, scope="api", fetcher=make_fetcher(fakehub, max_retries=2))
    assert result.status == "failed"
    assert result.error == (f"PUT {fakehub.hub_url}/api/v1/dolphin/models failed after 3 tries: "
                            "HTTP 500")
    assert models(db_path) == before
    assert [r["status"] for r in rows(db_path, "select status from crawl_runs order by id")] == [
        "complete", "failed"]


def test_a_hub_that_ignores_the_api_filter_fails_loudly_without_flags(tmp_path, catalog, make_hub):
    hub = make_hub(catalog, ignore_inference_filter=True)
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "failed"
    assert result.error.startswith("the hub ignored the API-Inference filter")
    assert rows(db_path, "select count(*) as n from models where api_inference = 1") == [{"n": 0}]
    assert json.loads(rows(db_path, "select warnings from crawl_runs")[0]["warnings"]) == {
        "filter_guard_trips": 1}


def insert_at_front_while_paging(hub, template, limit):
    """Every unfiltered page request from page 2 on first adds a top model (issue 6)."""
    inserted = []

    def hook(hub_, body):
        if body.get("PageNumber", 1) >= 2 and not body.get("SingleCriterion") \
                and not body.get("Criterion") and len(inserted) < limit:
            n = len(inserted)
            item = dict(template, Id=900000 + n, Name=f"Fresh-Upload-{n}", Downloads=10**12,
                        Stars=10**6, CreatedTime=1999999999, LastUpdatedTime=1999999999)
            hub_.catalog.add(item)
            inserted.append(item)

    hub.before_dolphin = hook
    return inserted


def test_models_inserted_at_the_front_while_paging_are_refetched(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    inserted = insert_at_front_while_paging(hub, valid_items(catalog)[0], limit=2)
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert len(inserted) == 2
    assert result.status == "complete", result.summary()
    assert result.warnings["refetched_slices"] == 1
    assert set(models(db_path)) == {item_id(i) for i in valid_items(hub.catalog)} | set(
        catalog.listed_ids)


def test_a_hub_that_keeps_shifting_is_recorded_incomplete(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    insert_at_front_while_paging(hub, valid_items(catalog)[0], limit=1000)
    result = run_crawl(tmp_path / "catalog.db", hub, scope="full")
    assert result.status == "incomplete"
    assert result.error.startswith("collected ")


def test_a_second_crawl_on_a_locked_catalog_refuses(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    lock = crawl.acquire_lock(db_path)
    try:
        with pytest.raises(crawl.CrawlBusy, match="another crawl is already running"):
            run_crawl(db_path, fakehub)
    finally:
        lock.close()
    assert not db_path.exists()


def test_a_run_left_running_is_marked_failed_at_the_next_start(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    db = store.open_db(db_path)
    store.start_run(db, "full", store.utc_now())
    db.conn.close()
    assert run_crawl(db_path, fakehub).status == "complete"
    runs = rows(db_path, "select id, status, error from crawl_runs order by id")
    assert runs == [
        {"id": 1, "status": "failed",
         "error": "interrupted: the crawling process ended before the run finished"},
        {"id": 2, "status": "complete", "error": None}]


def test_an_interrupted_crawl_saves_what_it_saw_as_incomplete(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    fetcher = make_fetcher(hub)
    real = fetcher.fetch_models_page

    def fetch_then_maybe_stop(body, **kwargs):
        if body.get("PageNumber") == 2 and not body.get("SingleCriterion"):
            raise KeyboardInterrupt
        return real(body, **kwargs)

    fetcher.fetch_models_page = fetch_then_maybe_stop
    with pytest.raises(KeyboardInterrupt):
        run_crawl(db_path, hub, scope="full", fetcher=fetcher)
    assert rows(db_path, "select status, error from crawl_runs") == [
        {"status": "incomplete", "error": "interrupted"}]
    assert len(models(db_path)) > len(catalog.api_ids)


def test_wal_mode_and_full_text_search(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    run_crawl(db_path, fakehub, scope="full")
    assert rows(db_path, "pragma journal_mode") == [{"journal_mode": "wal"}]
    hits = rows(db_path, "select model_id from models where rowid in "
                         "(select rowid from models_fts where models_fts match ?)", ['"wen2.5-7B-Inst"'])
    assert {"model_id": "Qwen/Qwen2.5-7B-Instruct"} in hits


def test_a_full_disk_is_a_clear_failure_and_loses_nothing(tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, fakehub, scope="api").status == "complete"
    before = models(db_path)
    conn = sqlite3.connect(db_path)
    pages = conn.execute("pragma page_count").fetchone()[0]
    conn.close()

    db = store.open_db(db_path)
    db.conn.execute(f"pragma max_page_count = {pages + 2}")
    fetcher = make_fetcher(fakehub)
    result = crawl.Crawl(db, fetcher, scope="full").run()
    db.conn.close()
    assert result.status == "failed"
    assert "full" in result.error
    assert models(db_path) == before
    conn = sqlite3.connect(db_path)
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)


def test_a_stop_request_ends_the_crawl_as_incomplete(tmp_path, catalog, make_hub):
    import threading

    hub = make_hub(catalog)
    stop = threading.Event()
    hub.before_dolphin = lambda hub_, body: body.get("PageNumber") == 2 and stop.set()
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full", stop=stop)
    assert (result.status, result.error) == ("incomplete", "interrupted: the process is shutting down")
    assert rows(db_path, "select status from crawl_runs") == [{"status": "incomplete"}]
    assert len(models(db_path)) > len(catalog.api_ids)


def test_facet_counts_stay_exact_through_inserts_updates_and_deletes(tmp_path, catalog, fakehub):
    # The unfiltered models page reads these instead of unpacking every array (issue 6)
    # or grouping every row once per facet (issue 16).
    db_path = tmp_path / "catalog.db"
    run_crawl(db_path, fakehub, scope="full")
    model = valid_items(catalog)[0]
    # New tasks make it another kind too (image), so kind moves with them.
    catalog.update(item_id(model), Tasks=[{"Name": "text-to-image"}, {"Name": "brand-new-task"}],
                   Libraries=["gguf"], License="zzqx-licence")
    run_crawl(db_path, fakehub, scope="full")
    db = store.open_db(db_path)
    db.conn.execute("delete from models where model_id = ?", [item_id(valid_items(catalog)[1])])
    db.conn.close()
    plain = "".join(f"""union all select '{c}', {c}, count(*) from models
                        where {c} is not null group by {c} """ for c in schema.FACET_COLUMNS)
    live = rows(db_path, f"""
        select 'tasks' as facet, j.value as value, count(*) as count from models, json_each(models.tasks) j
        group by j.value union all
        select 'libraries', j.value, count(*) from models, json_each(models.libraries) j group by j.value
        {plain} order by facet, value""")
    assert rows(db_path, "select * from facet_counts order by facet, value") == live
    assert {"facet": "tasks", "value": "brand-new-task", "count": 1} in live
    assert {"facet": "license", "value": "zzqx-licence", "count": 1} in live
    assert rows(db_path, "select kind from models where model_id = ?", [item_id(model)]) == \
        [{"kind": "image"}]


def test_a_crawl_hands_the_gil_over_quickly_and_restores_the_interval(tmp_path, catalog, make_hub):
    import sys

    hub = make_hub(catalog)
    seen = []
    # The hub's handler runs in the test process: what the prefetch thread's
    # request meets is the interval the crawl set.
    hub.before_dolphin = lambda hub_, body: seen.append(sys.getswitchinterval())
    before = sys.getswitchinterval()
    result = run_crawl(tmp_path / "catalog.db", hub, scope="full")
    assert result.status == "complete", result.summary()
    assert seen and set(seen) == {crawl.SWITCH_INTERVAL}
    assert sys.getswitchinterval() == before == 0.005


def test_pages_are_asked_for_ahead_one_request_at_a_time_even_through_retries(tmp_path, make_hub):
    import threading
    import time

    catalog = build_catalog(1000)  # ten pages in the full sweep
    hub = make_hub(catalog)
    lock, active, peak, asked = threading.Lock(), [0], [0], []

    def one_at_a_time(hub_, body):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            sweep = not body.get("SingleCriterion") and body.get("PageSize") == 100
            asked.append(body.get("PageNumber") if sweep else None)
            if sweep and body.get("PageNumber") == 3:
                # The next request, page 4 asked for ahead while page 3 is decoded, gets
                # an answer that is not JSON: the main thread finds out and asks again
                # while page 5 is being asked for ahead.
                hub_.add_fault("nonjson", count=1, path="/api/v1/dolphin")
        time.sleep(0.005)  # long enough for a second request to overlap, if one were sent
        with lock:
            active[0] -= 1

    hub.before_dolphin = one_at_a_time
    sleeps = Sleeps()
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full", fetcher=make_fetcher(hub, sleep=sleeps))
    assert result.status == "complete", result.summary()
    assert stored(db_path) == expected_models(catalog, "full")
    assert peak[0] == 1
    assert len(sleeps) == 1  # the one retry's pause
    # Page 4's first answer was no JSON (its request never reached the hook); its retry
    # and page 5, asked for ahead, went one after the other, in either order.
    assert hub.pending_faults == []
    assert sorted(page for page in asked if page) == list(range(1, 11))
    assert result.requests == len(hub.requests)
