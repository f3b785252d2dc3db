"""Parsing is pure: JSON in, whole rows out (issue 2)."""

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from indexer import parse

ITEM = {
    "Id": 123456, "Name": "Qwen2.5-7B-Instruct", "Path": "Qwen",
    "ChineseName": "通义千问2.5-7B-Instruct", "CreatedBy": "qwen",
    "Organization": {"Name": "Qwen", "FullName": "通义千问", "Avatar": "https://x/a.png"},
    "Downloads": 1234567, "Stars": 890, "CreatedTime": 1726566000, "LastUpdatedTime": 1727000000,
    "License": "Apache License 2.0", "Tasks": [{"Name": "text-generation"}], "Tags": [],
    "Libraries": ["transformers", "safetensors"], "ModelType": ["qwen2"],
    "Architectures": ["Qwen2ForCausalLM"], "Visibility": 5,
    "BackendSupport": {"model_id": "Qwen/Qwen2.5-7B-Instruct"},
    "SupportInference": "", "SupportApiInference": False, "SupportExperience": 0,
    "SupportDeployment": 1, "StorageSize": 0,
    "Description": "<p>Qwen2.5 is the <b>latest</b> series</p>",
    "SomeFieldFromTheFuture": {"x": 1},
}

ROW = {
    "model_id": "Qwen/Qwen2.5-7B-Instruct",
    "owner": "Qwen",
    "name": "Qwen2.5-7B-Instruct",
    "chinese_name": "通义千问2.5-7B-Instruct",
    "description": "Qwen2.5 is the latest series",
    "tasks": ["text-generation"],
    "tags": [],
    "libraries": ["transformers", "safetensors"],
    "license": "Apache License 2.0",
    "downloads": 1234567,
    "likes": 890,
    "created_at": "2024-09-17T09:40:00+00:00",
    "updated_at": "2024-09-22T10:13:20+00:00",
    "api_model_id": "Qwen/Qwen2.5-7B-Instruct",
    "support_inference": "",
    "url": "https://modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct",
}


def test_reconstructed_item_parses_to_the_whole_row():
    assert parse.parse_model(ITEM, api=True) == ROW


def test_a_callable_id_outside_the_api_inference_set_is_no_callable_id():
    # Issue 15: the real hub fills BackendSupport.model_id on LoRAs nobody can call.
    assert parse.parse_model(ITEM) == dict(ROW, api_model_id=None)
    flagged = dict(ITEM, SupportApiInference=True)
    assert parse.parse_model(flagged) == ROW


def test_quirky_item_parses_to_the_whole_row():
    # docs/modelscope-api.md §2.3's variants: numeric-string times, BackendSupport as a JSON
    # string, empty ChineseName, no tasks, Likes instead of Stars, no Description.
    item = {"Name": "Z-Image-Turbo", "Path": "Tongyi-MAI", "ChineseName": "",
            "CreatedTime": "1726566000", "LastUpdatedTime": "1727000000.0",
            "Downloads": "42", "Likes": 7.0, "Tasks": [], "License": "",
            "BackendSupport": "{\"model_id\": \"Tongyi-MAI/Z-Image-Turbo\"}",
            "SupportInference": "txt2img"}
    assert parse.parse_model(item, api=True) == {
        "model_id": "Tongyi-MAI/Z-Image-Turbo", "owner": "Tongyi-MAI", "name": "Z-Image-Turbo",
        "chinese_name": None, "description": None, "tasks": [], "tags": [], "libraries": [],
        "license": None, "downloads": 42, "likes": 7,
        "created_at": "2024-09-17T09:40:00+00:00", "updated_at": "2024-09-22T10:13:20+00:00",
        "api_model_id": "Tongyi-MAI/Z-Image-Turbo", "support_inference": "txt2img",
        "url": "https://modelscope.cn/models/Tongyi-MAI/Z-Image-Turbo",
    }


@pytest.mark.parametrize("backend, expected", [
    ({"model_id": "A/b"}, "A/b"),
    ('{"model_id": "A/b"}', "A/b"),
    ({}, None),
    ("{}", None),
    ("", None),
    (None, None),
    ("not json", None),
    ({"model_id": ""}, None),
    ([1, 2], None),
])
def test_backend_support_in_every_shape(backend, expected):
    assert parse.parse_backend_model_id(backend) == expected


@pytest.mark.parametrize("item, reason", [
    ({"Name": "x"}, "missing_path"),
    ({"Path": "x"}, "missing_name"),
    ({"Path": "", "Name": "x"}, "missing_path"),
    ({"Path": "a/b", "Name": "x"}, "missing_path"),
    ({"Path": 5, "Name": "x"}, "missing_path"),
    ("not an object", "not_an_object"),
])
def test_malformed_items_are_skipped_and_counted(item, reason):
    rows, skipped = parse.parse_models([item, ITEM], api=True)
    assert rows == [ROW]
    assert dict(skipped) == {reason: 1}


def test_hostile_values_are_stored_safely():
    item = dict(ITEM, ChineseName="a\x00b\udcff" + "x" * 1000, Tags=["t%d" % i for i in range(10000)],
                Downloads=1e300, Stars="lots", Description="y" * 100000, CreatedTime=-5)
    row = parse.parse_model(item)
    assert row["chinese_name"] == "ab?" + "x" * 297
    assert row["tags"] == ["t%d" % i for i in range(100)]
    assert row["downloads"] is None and row["likes"] is None and row["created_at"] is None
    assert row["description"] == "y" * 4000
    json.dumps(row)


def test_timestamps_in_milliseconds_and_strings():
    assert parse.parse_timestamp(1726566000000) == "2024-09-17T09:40:00+00:00"
    assert parse.parse_timestamp(" 1726566000 ") == "2024-09-17T09:40:00+00:00"
    assert parse.parse_timestamp("yesterday") is None
    assert parse.parse_timestamp(True) is None


def test_timestamps_read_as_datetime_reads_them_up_to_its_last_year():
    # The fast path (time.gmtime) must give datetime's text for every second it covers,
    # leap days and the ends included; beyond year 9999 there is no timestamp.
    seconds = [1, 59, 86_399, 951_782_400, 4_107_542_399, 10**11, *range(1, 10**11, 9_999_991)]
    assert [parse.parse_timestamp(s) for s in seconds] == [
        datetime.fromtimestamp(s, timezone.utc).isoformat(timespec="seconds") for s in seconds]
    assert parse.parse_timestamp(253_402_300_799_000) == "9999-12-31T23:59:59+00:00"
    assert parse.parse_timestamp(253_402_300_800_000) is None


def test_inference_list_ids_in_order_without_duplicates_or_junk():
    body = {"object": "list", "data": [
        {"id": "Qwen/Qwen3-235B-A22B-Instruct-2507", "object": "model"},
        {"id": " deepseek-ai/DeepSeek-V4-Flash "}, {"id": "Qwen/Qwen3-235B-A22B-Instruct-2507"},
        {"id": "no-slash"}, {"id": 5}, "junk"]}
    assert parse.parse_inference_list(body) == [
        "Qwen/Qwen3-235B-A22B-Instruct-2507", "deepseek-ai/DeepSeek-V4-Flash"]
    with pytest.raises(ValueError):
        parse.parse_inference_list({"object": "list"})


def test_page_envelope_current_and_legacy_layouts():
    facets = {"license": [{"Value": "MIT", "Count": 3}]}
    current = {"Model": {"Models": [ITEM], "TotalCount": 7}, "FiledAgg": facets}
    legacy = {"Models": [ITEM], "TotalCount": "7"}
    assert parse.parse_page(current) == ([ITEM], 7, facets)
    assert parse.parse_page(legacy) == ([ITEM], 7, {})
    with pytest.raises(ValueError):
        parse.parse_page({"Model": {"ModelList": [], "TotalCount": 1}})
    assert parse.parse_facet_values(facets, "license") == [("MIT", 3)]
    assert parse.parse_facet_values(facets, "tasks") == []


def test_task_list():
    body = {"Data": {"Domains": [{"Tasks": [{"Name": "text-generation"}, {"Name": "ocr"}]},
                                 {"Tasks": [{"Name": "ocr"}, {"Name": "text-to-image-synthesis"}]}]}}
    assert parse.parse_task_list(body) == ["text-generation", "ocr", "text-to-image-synthesis"]


# The real hub's answer (issue 15) --------------------------------------------

REAL = Path(__file__).parent / "fixtures" / "real"
LORA = REAL / "dolphin-models_tags-lora_30items_captured-by-2025-11-14.json"


def real_items():
    return parse.parse_page(json.loads(LORA.read_text(encoding="utf-8"))["Data"])[0]


def test_all_30_real_items_parse_to_their_whole_rows():
    rows, skipped = parse.parse_models(real_items())
    assert skipped == Counter()
    assert rows == json.loads((REAL / "lora_30items_rows.json").read_text(encoding="utf-8"))


def test_the_real_items_filled_backend_model_id_is_kept_only_inside_the_api_inference_set():
    # Issue 15: 11 of the 30 LoRAs carry BackendSupport.model_id; none is callable.
    items = real_items()
    filled = [parse.parse_backend_model_id(item["BackendSupport"]) for item in items]
    assert sum(1 for model_id in filled if model_id) == 11
    assert [row["api_model_id"] for row in parse.parse_models(items)[0]] == [None] * 30
    assert [row["api_model_id"] for row in parse.parse_models(items, api=True)[0]] == filled
