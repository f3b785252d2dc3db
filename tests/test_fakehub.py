"""Tests for the test rig itself: tests/fakehub.py and tests/fixtures/catalog.py."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.fakehub import FakeHub
from tests.fixtures.catalog import (
    ANCHOR_ID,
    API_IMAGE_ID,
    LISTED_MISSING_ID,
    LISTED_NOT_API_ID,
    STRING_BACKEND_ID,
    UNLISTED_API_CHAT_ID,
    build_catalog,
    iter_items,
    make_item,
    model_id,
)

VERBATIM = Path(__file__).parent / "fixtures" / "verbatim"
DOLPHIN = "/api/v1/dolphin/models"
API_CRIT = {"category": "inference_type", "DateType": "int", "predicate": "equal", "IntValue": 1}


def crit(category, *values, predicate="contains", sub_values=None):
    c = {"category": category, "predicate": predicate, "values": list(values)}
    if sub_values is not None:
        c["sub_values"] = sub_values
    return c


@pytest.fixture
def s():
    with requests.Session() as sess:
        yield sess


def put(s, hub, body=None, **kw):
    r = s.put(hub.hub_url + DOLPHIN, json=body if body is not None else {}, timeout=10, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def models(env):
    return env["Data"]["Model"]["Models"]


def total(env):
    return env["Data"]["Model"]["TotalCount"]


def ids(items):
    return [model_id(it) if model_id(it) else ("#%d" % it["Id"]) for it in items]


def crawl(s, hub, body=None, size=100):
    """All pages of a query, stopping at the first empty page."""
    out, page = [], 1
    while True:
        env = put(s, hub, {**(body or {}), "PageSize": size, "PageNumber": page})
        got = models(env)
        if not got:
            return out, total(env)
        out.extend(got)
        page += 1


def expected(cat, pred, key="CreatedTime"):
    items = [it for it in cat.items if pred(it)]
    return sorted(items, key=lambda it: (int(it[key]), it["Id"]), reverse=True)


def task_names(it):
    return {t["Name"] for t in it["Tasks"]}


# ---------------------------------------------------------------------------
# catalog.py
# ---------------------------------------------------------------------------
def test_build_catalog_is_deterministic():
    a, b = build_catalog(), build_catalog()
    assert a.items[0]["Organization"] is not b.items[0]["Organization"]
    assert a.items == b.items and a.api_ids == b.api_ids and a.listed_ids == b.listed_ids
    assert a.notes == b.notes
    assert json.dumps(a.items, sort_keys=True) == json.dumps(b.items, sort_keys=True)
    assert build_catalog(seed=8).items != a.items
    assert list(iter_items()) == a.items


def test_catalog_properties(catalog):
    items = catalog.items
    assert len(items) == 300
    valid = [it for it in items if model_id(it)]
    assert len(valid) == 298
    malformed = catalog.malformed()
    assert len(malformed) == 2
    assert sorted(("Path" in m, "Name" in m) for m in malformed) == [(False, True), (True, False)]
    assert len(set(catalog.model_ids())) == 298
    assert len({it["Id"] for it in items}) == 300
    assert ANCHOR_ID in catalog.model_ids()

    # no-task models exist (~8%), and every org that has them also has task models
    no_task = [it for it in valid if it["Tasks"] == []]
    assert 0.03 * 300 <= len(no_task) <= 0.15 * 300
    orgs_with_tasks = {it.get("Path") for it in items if it["Tasks"]}
    assert {it["Path"] for it in no_task} <= orgs_with_tasks
    assert all(0 <= len(it["Tasks"]) <= 2 for it in items)
    assert all(isinstance(t, dict) and set(t) == {"Name"} for it in items for t in it["Tasks"])

    # skewed tasks: text-generation and text-to-image-synthesis big, long tail
    tc = Counter(t for it in items for t in task_names(it))
    assert tc.most_common(1)[0][0] == "text-generation"
    assert tc["text-to-image-synthesis"] >= 15 and len(tc) >= 12
    # skewed organisations (~25 of them)
    oc = Counter(it.get("Path") for it in valid)
    assert 20 <= len(oc) <= 30
    for org in ("Qwen", "deepseek-ai", "ZhipuAI", "AI-ModelScope", "iic", "mlx-community", "Tongyi-MAI", "openmoss"):
        assert oc[org] >= 1, org
    assert oc.most_common(1)[0][1] >= 5 * min(oc.values())

    # field shapes
    for it in items:
        assert it["Visibility"] == 5 and it["StorageSize"] == 0
        assert isinstance(it["Downloads"], int) and isinstance(it["Stars"], int)
        assert it["License"] in {"Apache License 2.0", "MIT", "", "other", "cc-by-nc-4.0", "llama3.1"}
        assert set(it["Organization"]) == {"Name", "FullName", "Avatar"}
        assert isinstance(it["SupportApiInference"], bool)
        assert 1_700_000_000 <= int(it["CreatedTime"]) <= int(it["LastUpdatedTime"]) <= 1_795_000_000
        assert isinstance(it["LastUpdatedTime"], int)
    assert sum(it["Downloads"] == 0 for it in items) > 50
    assert max(it["Downloads"] for it in items) > 1_000_000
    assert 0.2 <= sum(bool(it["ChineseName"]) for it in items) / 300 <= 0.6
    assert any(it.get("Description") == "<p>Hello <b>world</b></p>" for it in items)
    assert any("Description" not in it for it in items)
    assert any(it["SupportInference"] == "txt2img" for it in items)

    # API set: ~10%, mostly text-generation / image, each with BackendSupport.model_id
    assert 0.06 <= len(catalog.api_ids) / 298 <= 0.16
    api_items = [catalog.get(m) for m in catalog.api_ids]
    friendly = sum(bool(task_names(it) & {"text-generation", "text-to-image-synthesis", "image-to-image"})
                   for it in api_items)
    assert friendly >= 0.8 * len(api_items)
    for it in api_items:
        bs = it["BackendSupport"]
        bs = json.loads(bs) if isinstance(bs, str) else bs
        assert bs == {"model_id": model_id(it)}
    assert any(not it["SupportApiInference"] for it in api_items)  # the unreliable flag
    backends = Counter(type(it.get("BackendSupport", None)).__name__ + repr(it.get("BackendSupport"))[:2]
                       for it in valid if model_id(it) not in catalog.api_ids)
    assert {"NoneTypeNo", "dict{}", "str'{"} <= set(backends)

    # /v1/models list
    listed = catalog.listed_ids
    chat_api = {m for m in catalog.api_ids if "text-generation" in task_names(catalog.get(m))}
    assert UNLISTED_API_CHAT_ID in chat_api and UNLISTED_API_CHAT_ID not in listed
    assert set(listed) == (chat_api - {UNLISTED_API_CHAT_ID}) | {LISTED_NOT_API_ID, LISTED_MISSING_ID}
    assert LISTED_NOT_API_ID in catalog and LISTED_NOT_API_ID not in catalog.api_ids
    assert LISTED_MISSING_ID not in catalog
    assert API_IMAGE_ID in catalog.api_ids and API_IMAGE_ID not in listed
    assert catalog.notes["listed_missing_id"] == LISTED_MISSING_ID


def test_quirk_items(catalog):
    strings = [it for it in catalog.items if isinstance(it["CreatedTime"], str)]
    assert len(strings) == 3 and all(s["CreatedTime"].isdigit() for s in strings)
    assert catalog.notes["string_time_ids"] == ids(strings)
    glm = catalog.get(STRING_BACKEND_ID)
    assert glm["BackendSupport"] == '{"model_id": "ZhipuAI/GLM-4.6"}'
    assert catalog.notes["string_backend_ids"] == [STRING_BACKEND_ID]
    anchor = catalog.get(ANCHOR_ID)
    assert anchor["BackendSupport"] == {"model_id": ANCHOR_ID}
    assert anchor["Tasks"] == [{"Name": "text-generation"}]
    assert anchor["CreatedTime"] == 1726566000

    plain = build_catalog(quirks=False)
    assert plain.malformed() == []
    assert not any(isinstance(it["CreatedTime"], str) for it in plain.items)
    assert plain.get(STRING_BACKEND_ID)["BackendSupport"] == {"model_id": STRING_BACKEND_ID}


def test_catalog_mutation_helpers(catalog):
    c = catalog.copy()
    assert c == catalog and c.items is not catalog.items and c.items[0] is not catalog.items[0]
    v = c.version
    c.update(ANCHOR_ID, License="MIT", Downloads=5)
    assert c.get(ANCHOR_ID)["License"] == "MIT" and c.get(ANCHOR_ID)["Downloads"] == 5
    assert catalog.get(ANCHOR_ID)["License"] == "Apache License 2.0"  # deep copy
    c.set_api(ANCHOR_ID, False)
    assert ANCHOR_ID not in c.api_ids and "BackendSupport" not in c.get(ANCHOR_ID)
    c.set_api(ANCHOR_ID, True)
    assert c.get(ANCHOR_ID)["BackendSupport"] == {"model_id": ANCHOR_ID}
    c.set_listed("x/y", True)
    assert c.listed_ids[-1] == "x/y"
    c.set_listed("x/y", False)
    assert "x/y" not in c.listed_ids
    new = c.add(make_item("Qwen", "Qwen9-1B", id=1), api=True, listed=True)
    assert c.get("Qwen/Qwen9-1B") is new and "Qwen/Qwen9-1B" in c.api_ids and "Qwen/Qwen9-1B" in c.listed_ids
    with pytest.raises(ValueError):
        c.add(make_item("Qwen", "Qwen9-1B"))
    c.remove("Qwen/Qwen9-1B")
    assert c.get("Qwen/Qwen9-1B") is None and "Qwen/Qwen9-1B" not in c.api_ids
    with pytest.raises(KeyError):
        c.update("nope/nope", License="x")
    assert c.version > v


# ---------------------------------------------------------------------------
# dolphin: method, envelope, paging
# ---------------------------------------------------------------------------
def test_put_only(fakehub, s):
    url = fakehub.hub_url + DOLPHIN
    for method in ("GET", "POST"):
        r = s.request(method, url, json={}, timeout=5)
        assert r.status_code == 404
        assert r.json()["Success"] is False
    assert s.put(url, json={}, timeout=5).status_code == 200
    assert s.put(url + "/", json={}, timeout=5).status_code == 200
    r = s.get(fakehub.hub_url + "/nope", timeout=5)
    assert r.status_code == 404 and r.json()["Code"] == 404
    assert s.put(url, data="{not json", timeout=5).status_code == 400


def test_envelope_matches_verbatim_shape(fakehub, s):
    verbatim = json.loads((VERBATIM / "dolphin_envelope_2025-11-27.json").read_text())
    body = json.loads((VERBATIM / "dolphin_body_chat_client.json").read_text())
    env = put(s, fakehub, body)
    assert set(env) == set(verbatim) == {"Code", "Data", "Message", "RequestId", "Success"}
    assert set(verbatim["Data"]) <= set(env["Data"]) == {"Model", "FiledAgg", "Source", "Target"}
    assert set(env["Data"]["Model"]) == set(verbatim["Data"]["Model"]) == {"Models", "TotalCount"}
    assert (env["Code"], env["Message"], env["Success"], env["Data"]["Source"], env["Data"]["Target"]) == \
        (200, "success", True, "", "")
    uuid.UUID(env["RequestId"])
    cat = fakehub.catalog
    chat_api = {m for m in cat.api_ids if "text-generation" in task_names(cat.get(m))}
    assert total(env) == len(chat_api)
    assert {model_id(m) for m in models(env)} == chat_api
    for m in models(env):
        assert set(verbatim["Data"]["Model"]["Models"][0]) <= set(m)
    v1 = json.loads((VERBATIM / "v1_models_reconstructed.json").read_text())
    got = s.get(fakehub.inference_url + "/models", timeout=5).json()
    assert set(got) == set(v1) and set(got["data"][0]) == set(v1["data"][0])


def test_page_size_clamp_and_defaults(fakehub, s):
    env = put(s, fakehub, {"PageSize": 200})
    assert len(models(env)) == 100 and total(env) == 300
    env = put(s, fakehub, {})
    assert len(models(env)) == 10
    first10 = ids(expected(fakehub.catalog, lambda it: True))[:10]
    assert ids(models(env)) == first10
    assert ids(models(put(s, fakehub, {"PageSize": 10, "PageNumber": 1}))) == first10


def test_paging_to_the_end_and_past(fakehub, s):
    got, tot = crawl(s, fakehub, {"SortBy": "Default"})
    assert tot == 300
    assert ids(got) == ids(expected(fakehub.catalog, lambda it: True))
    env = put(s, fakehub, {"PageSize": 100, "PageNumber": 4})
    assert models(env) == [] and total(env) == 300
    env = put(s, fakehub, {"PageSize": 100, "PageNumber": 99})
    assert models(env) == [] and total(env) == 300
    env = put(s, fakehub, {"PageSize": 100, "PageNumber": 3})
    assert len(models(env)) == 100
    env = put(s, fakehub, {"PageSize": 7, "PageNumber": 43})
    assert len(models(env)) == 300 - 7 * 42


# ---------------------------------------------------------------------------
# dolphin: filters
# ---------------------------------------------------------------------------
def test_task_filter(fakehub, s):
    cat = fakehub.catalog
    got, tot = crawl(s, fakehub, {"Criterion": [crit("tasks", "text-generation", sub_values=[])]})
    exp = expected(cat, lambda it: "text-generation" in task_names(it))
    assert ids(got) == ids(exp) and tot == len(exp)
    # values OR sub_values
    env = put(s, fakehub, {"PageSize": 1, "Criterion": [crit("tasks", "translation", sub_values=["text-ranking"])]})
    assert total(env) == len(expected(cat, lambda it: task_names(it) & {"translation", "text-ranking"}))
    # task-less models never match a task filter
    env = put(s, fakehub, {"PageSize": 1, "Criterion": [crit("tasks", "nope")]})
    assert total(env) == 0 and models(env) == []


def test_org_filter_is_case_sensitive(fakehub, s):
    cat = fakehub.catalog
    got, tot = crawl(s, fakehub, {"Criterion": [crit("organizations", "openmoss")]})
    assert tot == len(expected(cat, lambda it: it.get("Path") == "openmoss")) > 0
    assert {m["Path"] for m in got} == {"openmoss"}
    assert total(put(s, fakehub, {"Criterion": [crit("organizations", "OpenMOSS")]})) == 0
    assert total(put(s, fakehub, {"Criterion": [crit("organizations", "qwen")]})) == 0
    both = total(put(s, fakehub, {"Criterion": [crit("organizations", "Qwen", "openmoss")]}))
    assert both == len(expected(cat, lambda it: it.get("Path") in ("Qwen", "openmoss")))


def test_other_facets_and_and(fakehub, s):
    cat = fakehub.catalog
    cases = [
        ([crit("libraries", "gguf")], lambda it: "gguf" in it["Libraries"]),
        ([crit("tags", "chat")], lambda it: "chat" in it["Tags"]),
        ([crit("license", "MIT")], lambda it: it["License"] == "MIT"),
        ([crit("tasks", "text-generation"), crit("organizations", "Qwen")],
         lambda it: "text-generation" in task_names(it) and it.get("Path") == "Qwen"),
        ([crit("tasks", "text-generation"), crit("license", "MIT"), crit("libraries", "transformers")],
         lambda it: "text-generation" in task_names(it) and it["License"] == "MIT"
         and "transformers" in it["Libraries"]),
    ]
    for criterion, pred in cases:
        got, tot = crawl(s, fakehub, {"Criterion": criterion})
        exp = expected(cat, pred)
        assert exp and ids(got) == ids(exp) and tot == len(exp), criterion


def test_inference_type_and_name(fakehub, s):
    cat = fakehub.catalog
    got, tot = crawl(s, fakehub, {"SingleCriterion": [API_CRIT]})
    assert {model_id(m) for m in got} == cat.api_ids and tot == len(cat.api_ids)
    got, tot = crawl(s, fakehub, {"Name": "qWeN2.5-7b"})
    exp = expected(cat, lambda it: "qwen2.5-7b" in f"{it.get('Path', '')}/{it.get('Name', '')}".lower())
    assert ids(got) == ids(exp) and ANCHOR_ID in ids(got)
    # "<org>/" prefix search also matches through Path
    got, _ = crawl(s, fakehub, {"Name": "Qwen/"})
    assert {m["Path"] for m in got} == {"Qwen"}


def test_ignored_filters_return_the_unfiltered_set(fakehub, s):
    full = 300
    bodies = [
        {"Criterion": [crit("tasks", "text-generation", predicate="eq")]},
        {"Criterion": [crit("tasks", "text-generation", predicate="in")]},
        {"Criterion": [crit("organizations", "Qwen", predicate="equal")]},
        {"Criterion": [crit("model_family", "qwen")]},
        {"Criterion": [{"Category": "tasks", "Predicate": "contains", "Values": ["text-generation"]}]},
        {"Criterion": ["tasks"]},
        {"Criterion": {"category": "tasks", "predicate": "contains", "values": ["text-generation"]}},
        {"Criterion": [{"category": "tasks", "predicate": "contains", "values": "text-generation"}]},
        {"Owner": "Qwen"}, {"Author": "Qwen"}, {"Namespace": "Qwen"}, {"Publisher": "Qwen"},
        {"SingleCriterion": [{**API_CRIT, "DataType": "int", "DateType": None}]},
        {"SingleCriterion": [{**API_CRIT, "IntValue": "1"}]},
        {"SingleCriterion": [{**API_CRIT, "predicate": "eq"}]},
        {"SingleCriterion": [{"category": "support_api_inference", "DateType": "int", "predicate": "equal",
                              "IntValue": 1}]},
        {"SingleCriterion": API_CRIT},
        {"SupportApiInference": True, "inference_type": 1},
    ]
    for body in bodies:
        assert total(put(s, fakehub, body)) == full, body


# ---------------------------------------------------------------------------
# dolphin: sorts, FiledAgg
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("sort,key", [("Default", "CreatedTime"), ("GmtModified", "LastUpdatedTime"),
                                      ("DownloadsCount", "Downloads"), ("StarsCount", "Stars"),
                                      ("GmtCreate", "CreatedTime"), (None, "CreatedTime")])
def test_sorts(fakehub, s, sort, key):
    body = {"SortBy": sort} if sort else {}
    got, _ = crawl(s, fakehub, body)
    assert ids(got) == ids(expected(fakehub.catalog, lambda it: True, key))


def test_honoured_sorts_switch(make_hub, s):
    hub = make_hub(honoured_sorts={"Default", "GmtModified"})
    got, _ = crawl(s, hub, {"SortBy": "DownloadsCount"})
    assert ids(got) == ids(expected(hub.catalog, lambda it: True, "CreatedTime"))
    got, _ = crawl(s, hub, {"SortBy": "GmtModified"})
    assert ids(got) == ids(expected(hub.catalog, lambda it: True, "LastUpdatedTime"))


def _agg(items, values_of):
    c = Counter(v for it in items for v in values_of(it) if v)
    return [{"Value": v, "Count": n} for v, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]


def test_filed_agg(make_hub, s):
    cat = build_catalog()
    qwen = [it for it in cat.items if it.get("Path") == "Qwen"]
    exp = {"libraries": _agg(qwen, lambda it: it["Libraries"]),
           "license": _agg(qwen, lambda it: [it["License"]]),
           "tags": _agg(qwen, lambda it: it["Tags"])}
    body = {"PageSize": 1, "Criterion": [crit("organizations", "Qwen")]}

    env = put(s, make_hub(cat, real_shape=False), body)
    assert env["Data"]["FiledAgg"] == exp
    # The real hub lower-cases facet values (issue 15, §2.2 real capture).
    lower = {c: _agg(qwen, lambda it, c=c: [v.lower() for v in (
        it["Libraries"] if c == "libraries" else it["Tags"] if c == "tags" else [it["License"]])])
        for c in exp}
    env = put(s, make_hub(cat, real_shape=True), body)
    assert env["Data"]["FiledAgg"] == lower

    env = put(s, make_hub(cat, facets_tasks_orgs=True, real_shape=False), body)
    assert env["Data"]["FiledAgg"] == {**exp, "tasks": _agg(qwen, task_names),
                                       "organizations": [{"Value": "Qwen", "Count": len(qwen)}]}

    env = put(s, make_hub(cat, filed_agg=False), body)
    assert set(env["Data"]) == {"Model", "Source", "Target"}

    full = put(s, make_hub(cat, facets_tasks_orgs=True), {"PageSize": 1})["Data"]["FiledAgg"]
    assert full["organizations"] == _agg(cat.items, lambda it: [(it.get("Path") or "").lower()])
    assert sum(x["Count"] for x in full["organizations"]) == 299  # one item lacks Path


# ---------------------------------------------------------------------------
# dolphin: depth limit
# ---------------------------------------------------------------------------
def test_depth_styles(make_hub, s):
    cat = build_catalog()
    order = ids(expected(cat, lambda it: True))
    for style in ("empty", "short", "error"):
        hub = make_hub(cat, max_offset=150, depth_style=style)
        p1, p2, p3 = (put(s, hub, {"PageSize": 100, "PageNumber": p}) for p in (1, 2, 3))
        assert ids(models(p1)) == order[:100]
        assert ids(models(p2)) == order[100:150]  # straddles the limit: cut short
        assert total(p1) == total(p2) == 300
        if style == "empty":
            assert models(p3) == [] and total(p3) == 300
        elif style == "short":
            assert ids(models(p3)) == order[100:103] and total(p3) == 300
            assert ids(models(put(s, hub, {"PageSize": 100, "PageNumber": 9}))) == order[100:103]
        else:
            assert p3["Success"] is False and p3["Code"] == 10010101 and p3["Data"] is None
            assert p3["Message"] == "page out of range"
            assert set(p3) == {"Code", "Data", "Message", "RequestId", "Success"}
    hub = make_hub(cat, max_offset=100, depth_style="short")
    assert ids(models(put(s, hub, {"PageSize": 50, "PageNumber": 3}))) == order[50:53]
    # the limit applies to filtered queries too, TotalCount stays the full count
    env = put(s, hub, {"PageSize": 100, "PageNumber": 2, "Criterion": [crit("tasks", "text-generation")]})
    assert total(env) == len(expected(cat, lambda it: "text-generation" in task_names(it))) > 100
    assert len(models(env)) == 3


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------
def test_fault_status_codes(fakehub, s):
    url = fakehub.hub_url + DOLPHIN
    fakehub.add_fault("429", retry_after=1)
    r = s.put(url, json={}, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["errors"]["message"] == "Request limit exceeded."
    assert set(r.json()["errors"]) == {"message", "request_id"}
    fakehub.add_fault("429")
    r = s.put(url, json={}, timeout=5)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    for code in ("500", "503"):
        fakehub.add_fault(code)
        assert s.put(url, json={}, timeout=5).status_code == int(code)
    fakehub.add_fault("nonjson")
    r = s.put(url, json={}, timeout=5)
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError):
        r.json()
    fakehub.add_fault("success_false")
    r = s.put(url, json={}, timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["Success"] is False and body["Code"] == 10010101
    assert (body["Data"], body["Message"]) == (None, "system busy")
    assert s.put(url, json={}, timeout=5).json()["Success"] is True  # all consumed
    assert fakehub.pending_faults == []


def test_fault_connection_level(fakehub, s):
    url = fakehub.hub_url + DOLPHIN
    fakehub.add_fault("truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        s.put(url, json={"PageSize": 100}, timeout=5)
    fakehub.add_fault("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        s.put(url, json={}, timeout=5)
    fakehub.add_fault("slow", seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.put(url, json={}, timeout=0.3)
    fakehub.add_fault("slow", seconds=0.3)
    t = time.monotonic()
    r = s.put(url, json={}, timeout=5)
    assert r.status_code == 200 and time.monotonic() - t >= 0.3 and r.json()["Success"] is True
    assert s.put(url, json={}, timeout=5).status_code == 200
    assert fakehub.errors == []


def test_fault_count_path_and_fifo(fakehub, s):
    fakehub.add_fault("503", count=2, path="/v1/models")
    fakehub.add_fault("429", count=1)
    fakehub.add_fault("500", count=1, path=DOLPHIN)
    # a dolphin request skips the /v1/models fault and takes the first match (429)
    assert s.put(fakehub.hub_url + DOLPHIN, json={}).status_code == 429
    assert s.put(fakehub.hub_url + DOLPHIN, json={}).status_code == 500
    assert s.put(fakehub.hub_url + DOLPHIN, json={}).status_code == 200
    assert [s.get(fakehub.inference_url + "/models").status_code for _ in range(3)] == [503, 503, 200]
    assert len(fakehub.requests) == 6


# ---------------------------------------------------------------------------
# drift switches
# ---------------------------------------------------------------------------
def test_layouts(make_hub, s):
    cat = build_catalog()
    legacy = put(s, make_hub(cat, layout="legacy"), {"PageSize": 5})
    assert set(legacy["Data"]) == {"Models", "TotalCount", "FiledAgg", "Source", "Target"}
    assert len(legacy["Data"]["Models"]) == 5 and legacy["Data"]["TotalCount"] == 300
    renamed = put(s, make_hub(cat, layout="renamed"), {"PageSize": 5})
    assert set(renamed["Data"]["Model"]) == {"ModelList", "TotalCount"}
    assert renamed["Data"]["Model"]["ModelList"] == legacy["Data"]["Models"]
    with pytest.raises(ValueError):
        FakeHub(cat, layout="weird")
    with pytest.raises(TypeError):
        FakeHub(cat, no_such_switch=1)


def test_ignore_filter_switches(make_hub, s):
    cat = build_catalog()
    api = {"PageSize": 1, "SingleCriterion": [API_CRIT]}
    task = {"PageSize": 1, "Criterion": [crit("tasks", "text-generation")]}
    org = {"PageSize": 1, "Criterion": [crit("organizations", "Qwen")]}
    normal = make_hub(cat)
    assert total(put(s, normal, api)) == len(cat.api_ids) < 300
    assert total(put(s, normal, task)) < 300 and total(put(s, normal, org)) < 300
    assert total(put(s, make_hub(cat, ignore_inference_filter=True), api)) == 300
    assert total(put(s, make_hub(cat, ignore_task_filter=True), task)) == 300
    h = make_hub(cat, ignore_org_filter=True)
    assert total(put(s, h, org)) == 300
    assert total(put(s, h, task)) < 300


def test_served_value_quirk_switches(make_hub, s):
    cat = build_catalog()
    plain, _ = crawl(s, make_hub(cat))
    by = {it["Id"]: it for it in plain}
    assert by[cat.get(STRING_BACKEND_ID)["Id"]]["BackendSupport"] == '{"model_id": "ZhipuAI/GLM-4.6"}'
    assert sum(isinstance(it["CreatedTime"], str) for it in plain) == 3
    assert plain == json.loads(json.dumps([real_shaped(it) for it in expected(cat, lambda it: True)]))

    strs, _ = crawl(s, make_hub(cat, timestamps_as_strings=True))
    assert all(isinstance(it["CreatedTime"], str) and isinstance(it["LastUpdatedTime"], str) for it in strs)
    assert [int(it["CreatedTime"]) for it in strs] == [int(it["CreatedTime"]) for it in plain]

    bs, _ = crawl(s, make_hub(cat, backend_support_as_string=True))
    for a, b in zip(plain, bs):
        if "BackendSupport" in a:
            assert isinstance(b["BackendSupport"], str)
            exp = a["BackendSupport"] if isinstance(a["BackendSupport"], str) else json.dumps(a["BackendSupport"])
            assert b["BackendSupport"] == exp
        else:
            assert "BackendSupport" not in b
    assert cat.get(ANCHOR_ID)["BackendSupport"] == {"model_id": ANCHOR_ID}  # catalog untouched


def real_shaped(item, tasks_when_none=None):
    """`item` as the real hub shapes it (issue 15, docs/modelscope-api.md §2.3 real capture)."""
    out = {"AigcAttributes": "{}", "ApplyMeta": "{}", "CertificationCreatedTime": -62135596800,
           "MuseInfo": None, "OfficialTags": None, "TriggerWords": None, "_": None, **item}
    if out.get("Tasks") == []:
        out["Tasks"] = tasks_when_none
    return dict(sorted(out.items()))


def test_items_follow_the_real_shape_by_default(make_hub, s):
    cat = build_catalog()
    plain = expected(cat, lambda it: True)
    served, _ = crawl(s, make_hub(cat))
    assert served == json.loads(json.dumps([real_shaped(it) for it in plain]))
    assert [list(it) == sorted(it) for it in served] == [True] * len(served)
    assert sum(it["Tasks"] is None for it in served) == sum(it["Tasks"] == [] for it in plain) == 24
    # Parsing a real-shaped item gives the row of the catalog's own item.
    from indexer import parse
    assert [parse.parse_model(it) for it in served if it.get("Path") and it.get("Name")] == [
        parse.parse_model(it) for it in plain if it.get("Path") and it.get("Name")]
    # real_shape=False serves the catalog's items as they are.
    old, _ = crawl(s, make_hub(cat, real_shape=False))
    assert old == json.loads(json.dumps(plain))
    assert cat.items[0].keys() == build_catalog().items[0].keys()  # catalog untouched


def test_placeholder_tasks_switch(make_hub, s):
    cat = build_catalog()
    plain = expected(cat, lambda it: True)
    served, _ = crawl(s, make_hub(cat, placeholder_tasks=True))
    placeholder = {"ChineseName": "", "Description": "", "DomainName": "", "Id": 0,
                   "IsExhibition": False, "IsHot": 0, "IsLeaf": False, "IsLoginRequired": False,
                   "IsRetrieval": False, "Level": 0, "Name": "", "ParentId": 0, "ParentTask": None,
                   "Sorting": 0, "SupportWidgets": False, "TaskAlias": "", "WidgetConfig": "",
                   "WidgetType": ""}
    assert served == json.loads(json.dumps([real_shaped(it, [placeholder]) for it in plain]))
    # A placeholder is no task: it is neither a filter value nor a facet value.
    hub = make_hub(cat, placeholder_tasks=True)
    assert total(put(s, hub, {"Criterion": [crit("tasks", "")]})) == 0
    env = put(s, make_hub(cat, placeholder_tasks=True, facets_tasks_orgs=True), {"PageSize": 1})
    assert "" not in {e["Value"] for e in env["Data"]["FiledAgg"]["tasks"]}


@pytest.mark.parametrize("order, sort, key", [
    ("created", "Default", "CreatedTime"), ("given", "Default", None),
    ("given", "DownloadsCount", "Downloads"), ("given", "GmtModified", "LastUpdatedTime")])
def test_default_order_switch(make_hub, s, order, sort, key):
    cat = build_catalog()
    got, _ = crawl(s, make_hub(cat, default_order=order), {"SortBy": sort})
    want = list(cat.items) if key is None else expected(cat, lambda it: True, key)
    assert ids(got) == ids(want)


# ---------------------------------------------------------------------------
# /v1/models and /api/v1/tasks
# ---------------------------------------------------------------------------
def test_v1_models(make_hub, s):
    cat = build_catalog()
    hub = make_hub(cat)
    exp = {"object": "list", "data": [{"id": i, "object": "model", "created": 1753000000, "owned_by": "system"}
                                      for i in cat.listed_ids]}
    assert s.get(hub.inference_url + "/models").json() == exp
    assert s.get(hub.inference_url + "/models", headers={"Authorization": "Bearer garbage"}).json() == exp
    assert hub.inference_url == hub.hub_url + "/v1"
    assert s.put(hub.inference_url + "/models").status_code == 404

    hub2 = make_hub(cat, token_listed_ids=["a/b", "c/d"])
    assert s.get(hub2.inference_url + "/models").json() == exp
    got = s.get(hub2.inference_url + "/models", headers={"Authorization": "Bearer ms-123"}).json()
    assert [d["id"] for d in got["data"]] == ["a/b", "c/d"]


def test_tasks_endpoint(make_hub, s):
    cat = build_catalog()
    r = s.get(make_hub(cat).hub_url + "/api/v1/tasks")
    body = r.json()
    assert r.status_code == 200
    assert {k: body[k] for k in ("Code", "Success", "Message")} == {"Code": 200, "Success": True,
                                                                   "Message": "success"}
    domains = body["Data"]["Domains"]
    assert 2 <= len(domains) <= 4
    listed = [t["Name"] for d in domains for t in d["Tasks"]]
    assert sorted(listed) == cat.tasks() and len(listed) == len(set(listed))
    assert all(set(t) == {"Name"} for d in domains for t in d["Tasks"])
    assert "text-generation" in [t["Name"] for t in domains[0]["Tasks"]]
    assert s.get(make_hub(cat, tasks_endpoint=False).hub_url + "/api/v1/tasks").status_code == 404


# ---------------------------------------------------------------------------
# hooks, logs, mutation, concurrency
# ---------------------------------------------------------------------------
def test_request_log(fakehub, s):
    body = {"PageSize": 3, "Owner": "Qwen"}
    s.put(fakehub.hub_url + DOLPHIN, json=body, headers={"User-Agent": "indexer-test/1"})
    s.get(fakehub.inference_url + "/models?x=1")
    log = fakehub.requests
    assert [(r["method"], r["path"], r["body"]) for r in log] == [("PUT", DOLPHIN, body),
                                                                  ("GET", "/v1/models", None)]
    assert log[0]["headers"]["User-Agent"] == "indexer-test/1"
    assert len(fakehub.dolphin_requests()) == 1
    fakehub.reset_log()
    assert fakehub.requests == []


def test_before_dolphin_hook_inserts_at_front(fakehub, s):
    calls = []

    def hook(hub, body):
        calls.append(body.get("PageNumber"))
        if body.get("PageNumber") == 2:
            for k in range(3):
                hub.catalog.add(make_item("Qwen", f"Qwen-New-{k}", id=10_000_000 + k, created=1_795_000_000 + k))

    fakehub.before_dolphin = hook
    p1 = models(put(s, fakehub, {"PageSize": 100, "PageNumber": 1}))
    p2env = put(s, fakehub, {"PageSize": 100, "PageNumber": 2})
    assert calls == [1, 2]
    assert total(p2env) == 303
    # the three new models pushed the last three of page 1 onto page 2
    assert ids(models(p2env))[:3] == ids(p1)[-3:]
    assert ids(models(put(s, fakehub, {"PageSize": 3})))[:3] == ["Qwen/Qwen-New-2", "Qwen/Qwen-New-1",
                                                               "Qwen/Qwen-New-0"]


def test_catalog_mutations_invalidate_caches(fakehub, s):
    cat = fakehub.catalog
    api_body = {"PageSize": 100, "SingleCriterion": [API_CRIT]}
    n_api = total(put(s, fakehub, api_body))
    put(s, fakehub, {"PageSize": 5, "SortBy": "DownloadsCount"})  # warm caches
    victim = ids(expected(cat, lambda it: True))[-1]
    cat.update(victim, Downloads=10**10)
    assert ids(models(put(s, fakehub, {"PageSize": 1, "SortBy": "DownloadsCount"}))) == [victim]
    cat.set_api(victim, True)
    assert total(put(s, fakehub, api_body)) == n_api + 1
    cat.remove(victim)
    assert total(put(s, fakehub, api_body)) == n_api
    assert total(put(s, fakehub, {})) == 299
    cat.items.pop()  # direct mutation still noticed (length changed)
    assert total(put(s, fakehub, {})) == 298


def test_concurrent_requests(fakehub):
    errors, results = [], []

    def worker(k):
        try:
            with requests.Session() as sess:
                for p in range(1, 4):
                    results.append(len(models(put(sess, fakehub, {"PageSize": 100, "PageNumber": p,
                                                                 "SortBy": "StarsCount"}))))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and sorted(results) == sorted([100, 100, 100] * 6)
    assert len(fakehub.requests) == 18 and fakehub.errors == []


def test_stop_closes_everything(catalog, s):
    hub = FakeHub(catalog).start()
    url = hub.hub_url + DOLPHIN
    assert s.put(url, json={}).status_code == 200  # keep-alive connection in the pool
    hub.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        s.put(url, json={}, timeout=2)
    hub.stop()  # idempotent
