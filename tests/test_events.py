"""Change tracking: debounced events, sparse stats, trend views (issue 3)."""

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from indexer import growth, status, store, track
from tests.helpers import Clock, events, models, rows, run_crawl

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)



@pytest.fixture
def clock():
    return Clock(DAY0)


@pytest.fixture
def crawler(tmp_path, fakehub, clock):
    db_path = tmp_path / "catalog.db"

    def _crawl(scope="full", **kwargs):
        result = run_crawl(db_path, fakehub, scope=scope, now=clock, **kwargs)
        clock.advance(hours=1)
        return result

    _crawl.db_path = db_path
    return _crawl


def some_model(catalog, api=None, listed=None, task=None):
    for model_id in sorted(catalog.model_ids()):
        if api is not None and (model_id in catalog.api_ids) != api:
            continue
        if listed is not None and (model_id in catalog.listed_ids) != listed:
            continue
        item = catalog.get(model_id)
        if task and task not in [t["Name"] for t in item["Tasks"]]:
            continue
        return model_id
    raise LookupError("no such model in the fixture catalog")


def test_the_first_complete_crawl_of_each_scope_is_a_silent_baseline(crawler):
    assert crawler("api").events == 0
    assert crawler("full").events == 0
    assert events(crawler.db_path) == []
    assert crawler("full").events == 0


def test_added_model(crawler, fakehub, catalog):
    crawler("full")
    template = catalog.get(some_model(catalog, api=False))
    catalog.add(dict(template, Id=999001, Name="Brand-New-Model"))
    result = crawler("full")
    owner = template["Path"]
    assert events(crawler.db_path) == [(f"{owner}/Brand-New-Model", "added", None)]
    assert result.events == 1


def test_a_model_missing_for_one_crawl_then_back_emits_nothing(crawler, catalog):
    crawler("full")
    victim = some_model(catalog, api=False)
    item = catalog.get(victim)
    catalog.remove(victim)
    crawler("full")
    catalog.add(item)
    crawler("full")
    assert events(crawler.db_path) == []
    assert models(crawler.db_path)[victim]["removed_at"] is None


def test_a_model_missing_for_two_crawls_is_removed_once_then_returns(crawler, catalog, clock):
    crawler("full")
    victim = some_model(catalog, api=False)
    item = catalog.get(victim)
    catalog.remove(victim)
    crawler("full")
    removed_at = store.iso(clock.now)
    crawler("full")
    crawler("full")
    gone = (victim, "status_changed", {"old": "not-api", "new": "removed",
                                       "reason": f"it is gone from the hub (since {removed_at[:10]})"})
    assert events(crawler.db_path) == [(victim, "removed", None), gone]
    assert models(crawler.db_path)[victim]["removed_at"] == removed_at
    catalog.add(item)
    crawler("full")
    assert events(crawler.db_path) == [
        (victim, "removed", None), gone, (victim, "returned", None),
        (victim, "status_changed", {"old": "removed", "new": "not-api",
                                    "reason": "it is not served by API-Inference"})]
    assert models(crawler.db_path)[victim]["removed_at"] is None


def test_api_flag_flips_are_debounced(crawler, catalog):
    crawler("api")
    model = some_model(catalog, api=True, listed=False)
    catalog.set_api(model, False)
    crawler("api")
    assert events(crawler.db_path) == []
    assert models(crawler.db_path)[model]["api_inference"] == 1  # not yet confirmed
    crawler("api")
    assert events(crawler.db_path) == [
        (model, "api_disabled", None),
        (model, "status_changed", {"old": "ok", "new": "not-api",
                                   "reason": "it is not served by API-Inference"})]
    assert models(crawler.db_path)[model]["api_inference"] == 0
    catalog.set_api(model, True)
    crawler("api")
    assert events(crawler.db_path)[-2:] == [
        (model, "api_enabled", None),
        (model, "status_changed", {"old": "not-api", "new": "ok", "reason": status.REASONS["badge"]})]
    assert models(crawler.db_path)[model]["api_inference"] == 1


def test_a_flag_that_flickers_back_emits_nothing(crawler, catalog):
    crawler("api")
    model = some_model(catalog, api=True)
    catalog.set_api(model, False)
    crawler("api")
    catalog.set_api(model, True)
    crawler("api")
    catalog.set_api(model, False)
    crawler("api")
    assert events(crawler.db_path) == []


def test_listed_and_unlisted(crawler, catalog):
    crawler("api")
    model = catalog.listed_ids[0]
    newcomer = some_model(catalog, api=True, listed=False)
    catalog.set_listed(model, False)
    catalog.set_listed(newcomer, True)
    crawler("api")
    crawler("api")
    # The chat model that left /v1/models is not-served now (issue 11); the newcomer,
    # an image model with the badge, was ok before it was listed and stays ok.
    assert events(crawler.db_path) == [
        (newcomer, "listed", None), (model, "unlisted", None),
        (model, "status_changed", {"old": "ok", "new": "not-served",
                                   "reason": "it has the API-Inference badge, but /v1/models lacks this chat model"})]
    assert models(crawler.db_path)[model]["in_inference_list"] == 0
    assert models(crawler.db_path)[newcomer]["in_inference_list"] == 1


def test_license_tasks_and_chinese_name_changes(crawler, catalog):
    crawler("full")
    model = some_model(catalog, api=False, task="text-generation")
    item = catalog.get(model)
    old_license = item["License"] or None
    old_name = item["ChineseName"] or None
    old_tasks = [t["Name"] for t in item["Tasks"]]
    catalog.update(model, License="Some-New-License", ChineseName="新名字",
                   Tasks=[{"Name": "text-generation"}, {"Name": "translation"}])
    crawler("full")
    assert events(crawler.db_path) == [
        (model, "changed", {"field": "license", "old": old_license, "new": "Some-New-License"}),
        (model, "changed", {"field": "tasks", "old": old_tasks,
                            "new": ["text-generation", "translation"]}),
        (model, "changed", {"field": "chinese_name", "old": old_name, "new": "新名字"}),
    ]
    crawler("full")
    assert len(events(crawler.db_path)) == 3


def test_an_api_crawl_emits_no_presence_or_change_events(crawler, catalog):
    crawler("full")
    crawler("api")
    model = some_model(catalog, api=True)
    catalog.update(model, License="Changed")
    catalog.add(dict(catalog.get(model), Id=999002, Name="New-API-Model"))
    catalog.set_api(f"{catalog.get(model)['Path']}/New-API-Model", True)
    crawler("api")
    assert [e[1] for e in events(crawler.db_path)] == ["api_enabled"]


def test_an_incomplete_crawl_in_between_emits_no_negative_events(crawler, fakehub, catalog):
    crawler("full")
    crawler("api")
    victim = some_model(catalog, api=True, listed=True)
    catalog.remove(victim)
    crawler("full")  # missing once
    fakehub.add_fault("500", count=4, path="/v1/models")  # outlasts the 3 retries
    assert crawler("full").status == "incomplete"
    assert events(crawler.db_path) == []
    assert models(crawler.db_path)[victim]["api_inference"] == 1
    crawler("full")  # missing twice, counting complete crawls only
    # The inference service still lists it: that list is a source of its own.
    assert sorted(events(crawler.db_path), key=repr) == [
        (victim, "api_disabled", None), (victim, "removed", None),
        (victim, "status_changed", {"old": "ok", "new": "removed",
                                    "reason": "it is gone from the hub (since 2026-11-01)"})]


def test_an_incomplete_crawl_still_saves_what_it_saw(crawler, fakehub, catalog):
    crawler("full")
    model = some_model(catalog, api=False)
    catalog.update(model, Downloads=123456789)
    fakehub.add_fault("500", count=4, path="/v1/models")
    assert crawler("full").status == "incomplete"
    assert models(crawler.db_path)[model]["downloads"] == 123456789
    assert events(crawler.db_path) == []


def test_stats_rows_only_when_values_change(crawler, catalog, clock):
    crawler("full")
    # Rows for IDs only the inference list names carry no counts, so no stats.
    n_models = sum(1 for m in models(crawler.db_path).values() if m["downloads"] is not None)
    assert rows(crawler.db_path, "select count(*) as n from model_stats") == [{"n": n_models}]
    crawler("full")
    clock.advance(days=1)
    crawler("full")
    assert rows(crawler.db_path, "select count(*) as n from model_stats") == [{"n": n_models}]
    model = some_model(catalog, api=False)
    catalog.update(model, Downloads=777, Stars=5)
    result = crawler("full")
    assert result.stats_rows == 1
    assert rows(crawler.db_path, "select * from model_stats where model_id = ? order by day",
                [model])[-1] == {"model_id": model, "day": "2026-11-02", "downloads": 777,
                                 "likes": 5}
    catalog.update(model, Downloads=778)
    crawler("full")  # same day: the day's row is updated, not added
    assert rows(crawler.db_path, "select day, downloads from model_stats where model_id = ? "
                "order by day", [model])[-1] == {"day": "2026-11-02", "downloads": 778}
    assert rows(crawler.db_path, "select count(*) as n from model_stats") == [{"n": n_models + 1}]


def test_events_stats_and_models_are_written_together_or_not_at_all(crawler, catalog, monkeypatch):
    crawler("full")
    before = (models(crawler.db_path), rows(crawler.db_path, "select * from model_stats"))
    catalog.add(dict(catalog.get(some_model(catalog)), Id=999003, Name="Never-Saved"))
    catalog.update(some_model(catalog, api=False), Downloads=5)

    def crash(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(track, "_flags_from_tracking", crash)
    result = crawler("full")
    assert result.status == "failed"
    assert result.error == "the catalog: disk I/O error"
    assert (models(crawler.db_path), rows(crawler.db_path, "select * from model_stats")) == before
    assert events(crawler.db_path) == []


def test_confirm_one_makes_negative_events_immediate(crawler, catalog):
    crawler("api", confirm=1)
    model = some_model(catalog, api=True)
    catalog.set_api(model, False)
    crawler("api", confirm=1)
    assert events(crawler.db_path) == [(model, "api_disabled", None)]


def test_event_rows_are_whole_and_timestamped_with_an_offset(crawler, catalog, clock):
    crawler("api")
    model = some_model(catalog, api=False)
    catalog.set_api(model, True)
    at = store.iso(clock.now)
    crawler("api")
    assert rows(crawler.db_path, "select * from model_events") == [
        {"id": 1, "run_id": 2, "model_id": model, "event": "api_enabled", "at": at,
         "detail": None}]
    assert at.endswith("+00:00")


def test_trending_view_on_a_40_day_history(tmp_path):
    db = store.open_db(tmp_path / "c.db")
    db.table("models").insert_all([
        {"model_id": "A/steady", "owner": "A", "name": "steady", "downloads": 1400,
         "api_inference": 1, "in_inference_list": 0, "tasks": '["text-generation"]'},
        {"model_id": "B/young", "owner": "B", "name": "young", "downloads": 50,
         "api_inference": 0, "in_inference_list": 0, "tasks": "[]"},
    ])
    start = datetime(2026, 10, 1)
    history = [{"model_id": "A/steady", "day": (start + timedelta(days=d)).date().isoformat(),
                "downloads": 1000 + 10 * d, "likes": 1} for d in range(0, 41)]
    history.append({"model_id": "B/young", "day": "2026-11-07", "downloads": 10, "likes": 0})
    history.append({"model_id": "B/young", "day": "2026-11-10", "downloads": 50, "likes": 0})
    db.table("model_stats").insert_all(history)
    # A merge stores growth (issue 16); with no crawl recorded, the newest stats day is the
    # reference day.
    assert growth.refresh(db.conn) == 1
    out = [dict(r) for r in db.query(
        "select model_id, downloads, downloads_7d, downloads_30d from trending order by model_id")]
    # Reference day 2026-11-10: 7 days back is 2026-11-03 (1330), 30 back 2026-10-11 (1100).
    # B/young has no stats that old, so no growth yet, and trending leaves it out.
    assert out == [
        {"model_id": "A/steady", "downloads": 1400, "downloads_7d": 70, "downloads_30d": 300}]
    # Nothing moved: a second refresh writes nothing.
    assert growth.refresh(db.conn) == 0
    # A day later the windows move: 7 days back is 2026-11-04 (1340).
    assert growth.refresh(db.conn, "2026-11-11") == 1
    assert [dict(r) for r in db.query("select * from model_growth")] == [
        {"model_id": "A/steady", "downloads_7d": 60, "downloads_30d": 290}]
    # Younger than a week (the reference day's window reaches before all stats): none.
    assert growth.refresh(db.conn, "2026-10-05") == 1
    assert [dict(r) for r in db.query("select * from trending")] == []


def test_api_history_view(crawler, catalog, clock):
    crawler("api")
    model = some_model(catalog, api=True)
    first_day = DAY0.date().isoformat()
    catalog.set_api(model, False)
    crawler("api")
    crawler("api")
    disabled_at = store.iso(clock.now - timedelta(hours=1))
    catalog.set_api(model, True)
    crawler("api")
    enabled_at = store.iso(clock.now - timedelta(hours=1))
    assert rows(crawler.db_path, "select * from api_history where model_id = ?", [model]) == [
        {"model_id": model, "first_api_day": first_day, "api_inference": 1,
         "last_change_at": enabled_at, "flips": 2}]
    assert disabled_at < enabled_at
