"""A drifting hub shows up in crawls: verbatim shapes, warning counters, the 20% drop rule (issue 7)."""

import json
from collections import Counter
from pathlib import Path

import pytest
import requests

from indexer import fetch, parse
from tests.fixtures.catalog import build_catalog
from tests.helpers import events, models, rows, run_crawl, valid_items

VERBATIM = Path(__file__).parent / "fixtures" / "verbatim"


def verbatim(name):
    return json.loads((VERBATIM / name).read_text(encoding="utf-8"))


def stored_warnings(db_path):
    return [json.loads(r["warnings"]) if r["warnings"] else None
            for r in rows(db_path, "select warnings from crawl_runs order by id")]


def runs(db_path):
    return [(r["status"], r["error"]) for r in
            rows(db_path, "select status, error from crawl_runs order by id")]


# Verbatim shapes (docs/modelscope-api.md §2.1, §2.2, §6.1) ----------------


def test_the_verbatim_envelope_parses_and_its_trimmed_items_are_skipped_and_counted():
    # docs/modelscope-api.md §2.2 [VERBATIM, author-trimmed]: the author removed every
    # field but two.
    payload = verbatim("dolphin_envelope_2025-11-27.json")
    assert fetch.check_envelope(payload) is None
    items, total, facets = parse.parse_page(payload["Data"])
    assert (len(items), total, facets) == (2, 51, {})
    assert [parse.parse_backend_model_id(item["BackendSupport"]) for item in items] == [
        "ZhipuAI/GLM-4.6", "Qwen/Qwen3-Next-80B-A3B-Instruct"]
    assert parse.parse_models(items) == ([], Counter({"missing_path": 2}))


def test_the_verbatim_request_body_is_the_one_we_send():
    # docs/modelscope-api.md §2.1 [VERBATIM]: the chat client's body for API-Inference
    # chat models.
    assert fetch.models_body(page=1, page_size=100, sort="Default", tasks=["text-generation"],
                             api_only=True) == verbatim("dolphin_body_chat_client.json")


def test_the_fake_hub_filters_on_the_verbatim_body(catalog, fakehub):
    answer = requests.put(fakehub.dolphin_url, json=verbatim("dolphin_body_chat_client.json"),
                          timeout=5).json()
    assert fetch.check_envelope(answer) is None
    items, total, _ = parse.parse_page(answer["Data"])
    expected = [mid for mid in catalog.api_ids
                if "text-generation" in [t["Name"] for t in catalog.get(mid)["Tasks"]]]
    assert total == len(expected) < len(catalog.api_ids)
    assert sorted(parse.parse_backend_model_id(i["BackendSupport"]) for i in items) == sorted(expected)


def test_the_v1_models_shape_parses():
    # docs/modelscope-api.md §6.1 [RECONSTRUCTED]: no verbatim capture is public.
    assert parse.parse_inference_list(verbatim("v1_models_reconstructed.json")) == [
        "Qwen/Qwen3-235B-A22B-Instruct-2507", "deepseek-ai/DeepSeek-V4-Flash"]


# Warning counters ---------------------------------------------------------


def test_a_renamed_envelope_fails_the_crawl_clearly_and_keeps_the_catalog(tmp_path, catalog,
                                                                          make_hub):
    db_path = tmp_path / "catalog.db"
    hub = make_hub(catalog)
    assert run_crawl(db_path, hub).status == "complete"
    before = models(db_path)
    hub.layout = "renamed"
    result = run_crawl(db_path, hub)
    assert (result.status, result.error) == (
        "failed", "the hub's model list changed shape: the answer has no `Data.Model.Models` "
                  "list and `TotalCount`")
    assert result.warnings == {"unknown_envelope": 1}
    assert stored_warnings(db_path) == [{}, {"unknown_envelope": 1}]
    assert "warnings: unknown_envelope=1 (the hub's model list changed shape" in result.summary()
    assert models(db_path) == before


def test_the_legacy_envelope_is_read_as_usual(tmp_path, catalog, make_hub):
    normal, legacy = tmp_path / "normal.db", tmp_path / "legacy.db"
    assert run_crawl(normal, make_hub(catalog), scope="full").status == "complete"
    result = run_crawl(legacy, make_hub(catalog, layout="legacy"), scope="full")
    assert result.status == "complete", result.summary()
    strip = {"first_seen_at": None, "last_seen_at": None}
    assert {k: dict(v, **strip) for k, v in models(legacy).items()} == \
        {k: dict(v, **strip) for k, v in models(normal).items()}


@pytest.mark.parametrize("switch", ["timestamps_as_strings", "backend_support_as_string"])
def test_type_drift_the_parser_copes_with_changes_no_row(tmp_path, catalog, make_hub, switch):
    normal, drifted = tmp_path / "normal.db", tmp_path / "drifted.db"
    assert run_crawl(normal, make_hub(catalog), scope="full").status == "complete"
    result = run_crawl(drifted, make_hub(catalog, **{switch: True}), scope="full")
    assert result.status == "complete", result.summary()
    assert result.warnings == {"skipped_missing_path": 1, "skipped_missing_name": 1}
    strip = {"first_seen_at": None, "last_seen_at": None}
    assert {k: dict(v, **strip) for k, v in models(drifted).items()} == \
        {k: dict(v, **strip) for k, v in models(normal).items()}


def test_malformed_items_are_counted_once_by_reason(tmp_path, make_hub):
    catalog = build_catalog()
    template = valid_items(catalog)[5]
    catalog.add(dict(template, Id=990001, Name="a/b"))          # not an ID part
    catalog.add({k: v for k, v in template.items() if k != "Path"} | {"Id": 990002})
    catalog.add(dict(template, Id=990003, Path="", Name="Orphan"))
    db_path = tmp_path / "catalog.db"
    # A depth limit makes slices overlap, so malformed items arrive more than once.
    result = run_crawl(db_path, make_hub(catalog, max_offset=100), scope="full")
    assert result.status == "complete", result.summary()
    counted = {k: v for k, v in result.warnings.items() if k.startswith("skipped_")}
    assert counted == {"skipped_missing_path": 3, "skipped_missing_name": 2}
    assert stored_warnings(db_path)[0] == result.warnings
    assert "; 5 items skipped; warnings: depth_limit_hits=" in result.summary()


def test_a_guard_trip_is_counted_and_saves_no_flags(tmp_path, catalog, make_hub):
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, make_hub(catalog, ignore_inference_filter=True), scope="api")
    assert result.status == "failed"
    assert result.error == (f"the hub ignored the API-Inference filter ({len(catalog):,} of "
                            f"{len(catalog):,} models came back); no flags were saved")
    assert stored_warnings(db_path) == [{"filter_guard_trips": 1}]
    assert "warnings: filter_guard_trips=1" in result.summary()
    assert rows(db_path, "select count(*) as n from models where api_inference = 1") == [{"n": 0}]


@pytest.mark.parametrize("style", ["empty", "short", "error"])
def test_depth_limit_hits_are_counted_in_the_run(tmp_path, catalog, make_hub, style):
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, make_hub(catalog, max_offset=100, depth_style=style), scope="full")
    assert result.status == "complete", result.summary()
    hits = stored_warnings(db_path)[0]["depth_limit_hits"]
    assert hits >= 1
    assert f"depth_limit_hits={hits}" in result.summary()


def test_api_items_without_a_callable_id_are_counted(tmp_path, catalog, make_hub):
    victim = sorted(catalog.api_ids)[0]
    catalog.get(victim).pop("BackendSupport")
    catalog.touch()
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, make_hub(catalog), scope="api")
    assert result.status == "complete", result.summary()
    assert stored_warnings(db_path) == [{"api_items_without_backend_model_id": 1}]
    row = models(db_path)[victim]
    assert (row["api_inference"], row["api_model_id"]) == (1, None)


def test_the_full_sweep_keeps_the_callable_ids_of_api_items(tmp_path, catalog, make_hub):
    # The sweep restages every item without the API filter, where BackendSupport.model_id
    # is no callable ID (issue 15); Crawl._keep_callable_ids keeps it for the items
    # already staged as API-Inference or listed by /models.
    victim = sorted(mid for mid in catalog.api_ids
                    if catalog.get(mid).get("SupportApiInference") is not True)[0]
    catalog.update(victim, BackendSupport={"model_id": "Callable/Other-ID"})
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, make_hub(catalog), scope="full")
    assert result.status == "complete", result.summary()
    callable_ = catalog.api_ids | set(catalog.listed_ids)
    expected = {mid: parse.parse_backend_model_id(catalog.get(mid).get("BackendSupport"))
               if mid in callable_ or catalog.get(mid).get("SupportApiInference") is True else None
               for mid in catalog.model_ids() if catalog.get(mid).get("Path")}
    stored = {mid: row["api_model_id"] for mid, row in models(db_path).items() if mid in expected}
    assert stored == expected
    assert stored[victim] == "Callable/Other-ID"
    # Kept for the API items that do not say SupportApiInference, as well as the others.
    assert sum(1 for mid in catalog.api_ids if stored.get(mid)
               and catalog.get(mid).get("SupportApiInference") is not True) > 10


@pytest.mark.parametrize("max_offset", [None, 100])
def test_items_missing_fields_they_used_to_carry_are_counted_once(tmp_path, make_hub, max_offset):
    catalog = build_catalog()
    items = valid_items(catalog)
    for item in items[10:13]:
        item.pop("Downloads")
    for item in items[20:22]:
        item.pop("Stars")
    items[30].pop("Tasks")
    items[40]["Likes"] = items[40].pop("Stars")  # the parser reads Likes instead
    catalog.touch()
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, make_hub(catalog, max_offset=max_offset), scope="full")
    assert result.status == "complete", result.summary()
    counted = {k: v for k, v in result.warnings.items() if k.startswith("missing_")}
    assert counted == {"missing_downloads": 3, "missing_stars": 2, "missing_tasks": 1}
    assert stored_warnings(db_path)[0] == result.warnings
    assert "missing_downloads=3, missing_stars=2, missing_tasks=1" in result.summary()


# The 20% drop rule --------------------------------------------------------


def non_api_ids(catalog, count):
    return sorted(set(catalog.model_ids()) - catalog.api_ids - set(catalog.listed_ids))[:count]


def test_a_drop_in_the_model_count_holds_back_removals_until_it_persists(tmp_path, catalog,
                                                                          make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    before = len(valid_items(catalog))
    victims = non_api_ids(catalog, before // 4)
    for model_id in victims:
        catalog.remove(model_id)
    after = before - len(victims)

    second = run_crawl(db_path, hub, scope="full")
    assert (second.status, second.error) == (
        "incomplete", f"drop: the model count fell from {before} to {after} "
                      "(more than 20%); waiting for it to persist")
    assert second.warnings["drop_suspected"] == 1
    assert events(db_path) == []
    assert all(models(db_path)[v]["removed_at"] is None for v in victims)

    # confirm=2: the second crawl in a row that sees the drop accepts it ...
    third = run_crawl(db_path, hub, scope="full")
    assert (third.status, third.error) == ("complete", None)
    assert third.warnings["drop_accepted"] == 1
    assert "drop_suspected" not in third.warnings
    # ... and from there removals are debounced as usual, over complete crawls.
    assert events(db_path) == []
    fourth = run_crawl(db_path, hub, scope="full")
    assert (fourth.status, fourth.warnings.get("drop_accepted")) == ("complete", None)
    assert flag_events(db_path) == [(v, "removed", None) for v in victims]
    assert status_moves(db_path) == {v: ("not-api", "removed") for v in victims}
    assert stored_warnings(db_path)[1]["drop_suspected"] == 1
    assert stored_warnings(db_path)[2]["drop_accepted"] == 1


def flag_events(db_path):
    """The presence and flag events, without the status_changed ones they cause."""
    return [e for e in events(db_path) if e[1] != "status_changed"]


def status_moves(db_path):
    """{model_id: (old, new)} from the status_changed events (each model moves once here)."""
    moves = [e for e in events(db_path) if e[1] == "status_changed"]
    assert len({e[0] for e in moves}) == len(moves)
    return {e[0]: (e[2]["old"], e[2]["new"]) for e in moves}


def test_a_drop_in_the_api_set_holds_back_api_disabled(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    api = sorted(catalog.api_ids)
    victims = api[:len(api) * 3 // 10]
    for model_id in victims:
        catalog.set_api(model_id, False)

    second = run_crawl(db_path, hub, scope="api")
    assert (second.status, second.error) == (
        "incomplete", f"drop: the API-Inference set fell from {len(api)} to "
                      f"{len(api) - len(victims)} (more than 20%); waiting for it to persist")
    assert events(db_path) == []
    assert all(models(db_path)[v]["api_inference"] == 1 for v in victims)

    assert run_crawl(db_path, hub, scope="api").status == "complete"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    assert sorted(flag_events(db_path)) == [(v, "api_disabled", None) for v in victims]
    # A victim /v1/models still lists stays ok; the others are not-api now (issue 11).
    assert status_moves(db_path) == {v: ("ok", "not-api") for v in victims
                                     if v not in catalog.listed_ids}
    assert all(models(db_path)[v]["api_inference"] == 0 for v in victims)


@pytest.mark.parametrize("disabled, status", [(7, "complete"), (8, "incomplete")])
def test_the_limit_is_more_than_20_percent(tmp_path, catalog, make_hub, disabled, status):
    # 36 API-Inference models: 7 gone is 19%, 8 gone is 22%.
    assert len(catalog.api_ids) == 36
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    for model_id in sorted(catalog.api_ids)[:disabled]:
        catalog.set_api(model_id, False)
    assert run_crawl(db_path, hub, scope="api").status == status


def test_a_small_drop_is_debounced_as_usual(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    victims = non_api_ids(catalog, len(valid_items(catalog)) // 10)
    for model_id in victims:
        catalog.remove(model_id)
    second = run_crawl(db_path, hub, scope="full")
    third = run_crawl(db_path, hub, scope="full")
    assert [second.status, third.status] == ["complete", "complete"]
    assert not {"drop_suspected", "drop_accepted"} & (set(second.warnings) | set(third.warnings))
    assert flag_events(db_path) == [(v, "removed", None) for v in victims]
    assert status_moves(db_path) == {v: ("not-api", "removed") for v in victims}


def test_a_drop_that_recovers_leaves_no_trace_but_its_incomplete_run(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    victims = non_api_ids(catalog, len(valid_items(catalog)) // 3)
    gone = [catalog.remove(model_id) for model_id in victims]
    assert run_crawl(db_path, hub, scope="full").status == "incomplete"
    for item in gone:
        catalog.add(item)
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    # A later drop starts a new streak instead of counting the old one.
    for model_id in victims:
        catalog.remove(model_id)
    assert run_crawl(db_path, hub, scope="full").status == "incomplete"
    assert [status for status, _ in runs(db_path)] == [
        "complete", "incomplete", "complete", "incomplete"]
    assert events(db_path) == []


def test_a_longer_confirmation_waits_for_as_many_crawls(tmp_path, catalog, make_hub):
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="api", confirm=3).status == "complete"
    for model_id in sorted(catalog.api_ids)[:12]:
        catalog.set_api(model_id, False)
    statuses = [run_crawl(db_path, hub, scope="api", confirm=3).status for _ in range(3)]
    assert statuses == ["incomplete", "incomplete", "complete"]
    assert [w.get("drop_accepted") for w in stored_warnings(db_path)] == [None, None, None, 1]


def test_a_failed_run_is_no_baseline_for_the_drop_rule(tmp_path, catalog, make_hub):
    # The comparison is with the last *complete* run of the same scope.
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    hub.layout = "renamed"
    assert run_crawl(db_path, hub, scope="api").status == "failed"
    assert run_crawl(db_path, hub, scope="full").status == "failed"
    hub.layout = "normal"
    for model_id in sorted(catalog.api_ids)[:12]:
        catalog.set_api(model_id, False)
    third = run_crawl(db_path, hub, scope="api")
    assert third.status == "incomplete"
    assert third.error.startswith("drop: the API-Inference set fell from 36 to 24 ")


def test_an_empty_models_list_holds_back_unlisted_until_it_persists(tmp_path, catalog, make_hub):
    # The inference service answering an empty but valid list is a hiccup until
    # it persists, like a drop on the hub (issue 7).
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    listed = sorted(catalog.listed_ids)
    for model_id in listed:
        catalog.set_listed(model_id, False)

    second = run_crawl(db_path, hub, scope="api")
    assert (second.status, second.error) == (
        "incomplete", f"drop: the inference service's /models list fell from {len(listed)} to 0 "
                      "(more than 20%); waiting for it to persist")
    assert events(db_path) == []
    assert all(models(db_path)[m]["in_inference_list"] == 1 for m in listed)

    assert run_crawl(db_path, hub, scope="api").status == "complete"
    assert run_crawl(db_path, hub, scope="api").status == "complete"
    assert sorted(flag_events(db_path)) == [(m, "unlisted", None) for m in listed]
    # Badged chat models the list lacks are not-served; the unbadged ones not-api.
    assert status_moves(db_path) == {
        m: ("ok", "not-served" if m in catalog.api_ids else "not-api") for m in listed}
