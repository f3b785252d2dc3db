"""`indexer probe` against the fake hub: all ok when it behaves, one changed line per drift (issue 7)."""

import json
import re

import pytest
from click.testing import CliRunner

from indexer import fetch, probe
from indexer.cli_probe import probe_command
from tests.fakehub import DOLPHIN_PATH, V1_MODELS_PATH
from tests.fixtures.catalog import build_catalog
from tests.helpers import make_fetcher

TOKEN = "ms-00000000-1111-2222-3333-444455556666"

NORMAL = """\
ok       envelope        PUT /api/v1/dolphin/models answers {Code, Success, Data.Model.Models, TotalCount}; 300 models
ok       fields          items carry Path, Name, Downloads, Stars, Tasks (100 items looked at); 7 with Tasks: null (no task)
ok       timestamps      CreatedTime: 99 integers, 1 numeric string; LastUpdatedTime: 100 integers
ok       backend-support BackendSupport on API-Inference items: 35 objects, 1 JSON string
ok       filed-agg       Data.FiledAgg carries libraries, license, tags (no task and organization counts: full crawls use the task list)
ok       api-filter      inference_type = 1 gives 36 of 300 models, each with BackendSupport.model_id
ok       task-filter     tasks contains text-generation gives 139 of 300 models
ok       org-filter      organizations contains AI-ModelScope gives 77 of 300 models
ok       sorts           each orders largest first: DownloadsCount by Downloads, StarsCount by Stars, GmtModified by LastUpdatedTime; Default orders by CreatedTime
ok       depth           paging reaches offset 200 (the last page of 300)
ok       models-list     GET /models answers without a token: 27 IDs
11 ok, 0 changed, 0 unknown (9 requests)
"""

NOT_ANSWERED = "not checked: the list endpoint did not answer"
HUB_CHECKS = probe.CHECK_NAMES[1:10]


def invoke(hub, *extra, token="", hub_url=None, inference_url=None):
    args = ["--hub-url", hub_url or hub.hub_url,
            "--inference-url", inference_url or hub.inference_url, "--delay", "0", *extra]
    return CliRunner().invoke(probe_command, args, env={"MODELSCOPE_TOKEN": token},
                              catch_exceptions=False)


def lines(output):
    """(status, name, detail) per check line; the summary line is left out."""
    out = []
    for line in output.splitlines()[:-1]:
        match = re.fullmatch(r"(ok|changed|unknown) +(\S+) +(.*)", line)
        assert match, line
        out.append(match.groups())
    return out


def not_ok(output):
    return [line for line in lines(output) if line[0] != "ok"]


def requests_in(output):
    return int(re.search(r"\((\d+) requests\)\n$", output).group(1))


def test_a_hub_that_behaves_is_all_ok(catalog, fakehub):
    result = invoke(fakehub)
    assert result.exit_code == 0, result.output
    assert result.output == NORMAL
    # Only the two list endpoints: never a chat or image call (docs/modelscope-api.md §6.2).
    assert {r["path"] for r in fakehub.requests} == {DOLPHIN_PATH, V1_MODELS_PATH}
    assert len(fakehub.requests) == 9
    assert all("authorization" not in {k.lower() for k in r["headers"]} for r in fakehub.requests)


def test_json_output_carries_the_same_checks(catalog, fakehub):
    result = invoke(fakehub, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["requests"] == 9
    assert [(c["status"], c["name"], c["detail"]) for c in report["checks"]] == lines(NORMAL)


def test_task_and_organization_counts_in_filed_agg_are_fine_too(make_hub):
    hub = make_hub(facets_tasks_orgs=True)
    result = invoke(hub)
    assert result.exit_code == 0, result.output
    assert ("ok", "filed-agg", "Data.FiledAgg carries libraries, license, organizations, tags, "
            "tasks (task and organization counts: full crawls slice with them)") in lines(result.output)


DRIFTS = [
    ({"layout": "legacy"}, [
        ("changed", "envelope", "PUT /api/v1/dolphin/models answers the legacy layout "
         "{Data.Models, Data.TotalCount}; 300 models (the parser copes)")]),
    ({"ignore_inference_filter": True}, [
        ("unknown", "backend-support", "not checked: the API-Inference filter is ignored, so its "
         "items are any models"),
        ("changed", "api-filter", "inference_type = 1 gives 300 of 300 models: the hub ignores the "
         "filter (crawls stop at the guard and save no flags)")]),
    ({"ignore_task_filter": True}, [
        ("changed", "task-filter", "tasks contains text-generation gives 300 of 300 models: the hub "
         "ignores the filter (full crawls cannot slice by task)")]),
    ({"ignore_org_filter": True}, [
        ("changed", "org-filter", "organizations contains AI-ModelScope gives 300 of 300 models: "
         "the hub ignores the filter (full crawls cannot slice by organization)")]),
    ({"max_offset": 100, "depth_style": "empty"}, [
        ("changed", "depth", "items stop before offset 200: an empty page, though TotalCount is "
         "300 (full crawls slice around it, with more requests)")]),
    ({"max_offset": 100, "depth_style": "short"}, [
        ("changed", "depth", "items stop before offset 200: a page of 3 items the first page "
         "already had, though TotalCount is 300 (full crawls slice around it, with more "
         "requests)")]),
    ({"max_offset": 250, "depth_style": "short"}, [
        ("changed", "depth", "items stop before offset 200: a short page (50 of 100 items), "
         "though TotalCount is 300 (full crawls slice around it, with more requests)")]),
    ({"max_offset": 100, "depth_style": "error"}, [
        ("changed", "depth", "items stop before offset 200: an error envelope (Success: false), "
         "though TotalCount is 300 (full crawls slice around it, with more requests)")]),
    ({"filed_agg": False}, [
        ("changed", "filed-agg", "Data.FiledAgg is missing (the crawler takes task names from the "
         "task list)")]),
    ({"timestamps_as_strings": True}, [
        ("changed", "timestamps", "CreatedTime: 100 numeric strings; LastUpdatedTime: 100 numeric "
         "strings (the parser copes)")]),
    ({"backend_support_as_string": True}, [
        ("changed", "backend-support", "BackendSupport on API-Inference items: 36 JSON strings "
         "(the parser copes)")]),
    ({"honoured_sorts": {"Default", "DownloadsCount"}}, [
        ("changed", "sorts", "not honoured: StarsCount (not by Stars), GmtModified (not by "
         "LastUpdatedTime); honoured: DownloadsCount (full crawls lose the deep windows "
         "other orders reach); Default orders by CreatedTime")]),
    ({"honoured_sorts": {"Default"}}, [
        ("changed", "sorts", "not honoured: DownloadsCount (not by Downloads), StarsCount (not by "
         "Stars), GmtModified (not by LastUpdatedTime) (crawls page in an order "
         "new uploads can shift); Default orders by CreatedTime")]),
]


@pytest.mark.parametrize("switches, expected", DRIFTS,
                         ids=[",".join(f"{k}={v}" for k, v in s.items()) for s, _ in DRIFTS])
def test_each_drift_gives_its_changed_line_and_exit_1(make_hub, switches, expected):
    hub = make_hub(**switches)
    result = invoke(hub)
    assert result.exit_code == 1, result.output
    assert not_ok(result.output) == expected
    assert requests_in(result.output) == len(hub.requests) <= probe.BUDGET


def test_a_renamed_envelope_is_changed_and_stops_the_hub_checks(make_hub):
    hub = make_hub(layout="renamed")
    result = invoke(hub)
    assert result.exit_code == 1, result.output
    unknown = "not checked: the list answer has a shape the parser does not know"
    assert lines(result.output) == [
        ("changed", "envelope", "PUT /api/v1/dolphin/models answers a shape the parser does not "
         "know (Data: FiledAgg, Model, Source, Target; Data.Model: ModelList, TotalCount): "
         "crawls fail until the parser learns it"),
        *[("unknown", name, unknown) for name in HUB_CHECKS],
        ("ok", "models-list", "GET /models answers without a token: 27 IDs")]
    assert result.output.endswith("1 ok, 1 changed, 9 unknown (2 requests)\n")


@pytest.mark.parametrize("field, expected", [
    # Without Downloads the fake hub's order puts an item without a Name on page 1.
    # The real-shaped items' `Tasks: null` is reported as seen, never as a change (issue 15).
    ("Downloads", [
        ("changed", "fields", "100 of 100 lack Downloads (their columns stay empty); 1 of 100 "
                              "lacks Name; 6 with Tasks: null (no task)"),
        ("unknown", "sorts", "not told: DownloadsCount (no readable Downloads); honoured: "
                             "StarsCount, GmtModified; Default orders by CreatedTime")]),
    ("Path", [
        ("changed", "fields", "100 of 100 lack Path (the crawler skips items without an ID); "
                              "7 with Tasks: null (no task)"),
        ("unknown", "backend-support", "the API-Inference filter gave no items"),
        ("changed", "api-filter", "inference_type = 1 gives 0 of 300 models: the filter matches "
                                  "nothing (a crawl would see the whole set vanish)"),
        ("unknown", "org-filter", "no item on the first page has a organization to filter by")]),
])
def test_a_field_items_no_longer_carry_is_changed(field, expected, make_hub):
    catalog = build_catalog()
    for item in catalog.items:
        item.pop(field, None)
    catalog.touch()
    result = invoke(make_hub(catalog))
    assert result.exit_code == 1, result.output
    assert not_ok(result.output) == expected


def test_the_token_list_is_compared_and_the_token_never_shown(catalog, make_hub):
    hub = make_hub(catalog)
    result = invoke(hub, token=TOKEN)
    assert result.exit_code == 0, result.output
    assert lines(result.output)[-1] == (
        "ok", "models-token", "GET /models lists the same 27 IDs with MODELSCOPE_TOKEN")
    # The token goes to /models alone, once.
    sent = [r["path"] for r in hub.requests
            if any(k.lower() == "authorization" for k in r["headers"])]
    assert sent == [V1_MODELS_PATH]
    assert TOKEN not in result.output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_token_that_sees_other_ids_is_changed(catalog, make_hub, fmt):
    hub = make_hub(catalog, token_listed_ids=catalog.listed_ids[:20] + ["Qwen/Secret-Preview"])
    result = invoke(hub, "--format", fmt, token=TOKEN)
    assert result.exit_code == 1, result.output
    assert TOKEN not in result.output
    detail = ("GET /models lists 21 IDs with MODELSCOPE_TOKEN and 27 IDs without (1 only with "
              "it, 7 only without): a crawl's listed flags depend on the token")
    if fmt == "json":
        assert json.loads(result.output)["checks"][-1] == {
            "name": "models-token", "status": "changed", "detail": detail}
    else:
        assert lines(result.output)[-1] == ("changed", "models-token", detail)


def test_an_unreachable_hub_is_one_clear_line_and_exit_2(catalog, make_hub):
    dead = make_hub(catalog)
    dead_url = dead.hub_url
    dead.stop()
    hub = make_hub(catalog)
    result = invoke(hub, hub_url=dead_url)
    assert result.exit_code == 2, result.output
    assert lines(result.output) == [
        ("unknown", "envelope", f"PUT {dead_url}/api/v1/dolphin/models failed after 2 tries: "
                                "could not connect (ConnectionError)"),
        *[("unknown", name, NOT_ANSWERED) for name in HUB_CHECKS],
        ("ok", "models-list", "GET /models answers without a token: 27 IDs")]
    assert result.output.endswith("1 ok, 0 changed, 10 unknown (3 requests)\n")


def test_nothing_reachable_is_all_unknown(catalog, make_hub):
    dead = make_hub(catalog)
    dead.stop()
    result = invoke(dead, token=TOKEN)
    assert result.exit_code == 2, result.output
    assert {status for status, _, _ in lines(result.output)} == {"unknown"}
    assert [name for _, name, _ in lines(result.output)] == list(probe.CHECK_NAMES)
    assert result.output.endswith("0 ok, 0 changed, 12 unknown (6 requests)\n")
    assert TOKEN not in result.output


def test_a_list_endpoint_that_refuses_put_is_changed(catalog, fakehub):
    gone = fakehub.hub_url + "/gone"
    result = invoke(fakehub, hub_url=gone)
    assert result.exit_code == 1, result.output
    assert lines(result.output)[:2] == [
        ("changed", "envelope", f"PUT {gone}/api/v1/dolphin/models answered HTTP 404"),
        ("unknown", "fields", "not checked: the list endpoint refused the request")]
    assert requests_in(result.output) == 2


def test_a_models_list_without_data_is_changed(catalog, fakehub):
    fakehub.add_fault("success_false", count=1, path=V1_MODELS_PATH)
    result = invoke(fakehub)
    assert result.exit_code == 1, result.output
    assert not_ok(result.output) == [
        ("changed", "models-list", "GET /models without a token: the /models answer has no "
         "`data` list (crawls record the list as unavailable)")]


def test_a_models_list_that_moved_is_changed(catalog, fakehub):
    moved = fakehub.hub_url + "/nowhere"
    result = invoke(fakehub, inference_url=moved)
    assert result.exit_code == 1, result.output
    assert not_ok(result.output) == [
        ("changed", "models-list", f"GET {moved}/models answered HTTP 404")]


def test_deep_paging_is_sampled_at_offset_10000_and_at_the_last_page(make_hub):
    catalog = build_catalog(10_250)
    hub = make_hub(catalog)
    checks = probe.run_probe(make_fetcher(hub, max_retries=1))
    assert checks[9] == probe.Check(
        "depth", "ok", "paging reaches offset 10,000 and 10,200 (the last page of 10,250)")
    hub.max_offset = 10_100
    checks = probe.run_probe(make_fetcher(hub, max_retries=1))
    assert checks[9] == probe.Check(
        "depth", "changed", "items stop before offset 10,200: an empty page, though TotalCount "
        "is 10,250 (full crawls slice around it, with more requests)")
    hub.max_offset = 10_000
    hub.reset_log()
    fetcher = make_fetcher(hub, max_retries=1)
    checks = probe.run_probe(fetcher)
    assert checks[9] == probe.Check(
        "depth", "changed", "items stop before offset 10,000: an empty page, though TotalCount "
        "is 10,250 (full crawls slice around it, with more requests)")
    assert fetcher.requests_made == len(hub.requests) == 9


def test_retries_never_take_the_probe_past_its_budget(catalog, make_hub):
    hub = make_hub(catalog)
    # Every answered list request makes the next two fail.
    hub.before_dolphin = lambda hub_, body: hub_.add_fault("503", count=2, path=DOLPHIN_PATH)
    fetcher = make_fetcher(hub, max_retries=4)
    token_fetcher = make_fetcher(hub, token=TOKEN, max_retries=4)
    checks = probe.run_probe(fetcher, token_fetcher)
    assert probe.requests_made(fetcher, token_fetcher) == len(hub.requests) == probe.BUDGET
    spent = "not checked: the probe's budget of 15 requests is spent"
    assert [c.name for c in checks if c.detail == spent] == ["depth", "models-token"]
    assert [c.name for c in checks if c.status != "ok"] == ["sorts", "depth", "models-token"]
    assert probe.exit_code(checks) == 2
    assert (fetcher.max_retries, token_fetcher.max_retries) == (4, 4)


class StillClock:
    """Time that moves only when someone sleeps, so pauses are exact."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_usual_pause_is_kept_between_requests(catalog, fakehub):
    clock, token_clock = StillClock(), StillClock()
    fetcher = fetch.Fetcher(fetch.build_session(), hub_url=fakehub.hub_url,
                            inference_url=fakehub.inference_url, delay=0.5, sleep=clock.sleep,
                            clock=clock)
    token_fetcher = fetch.Fetcher(fetch.build_session(TOKEN), hub_url=fakehub.hub_url,
                                  inference_url=fakehub.inference_url, delay=0.5,
                                  sleep=token_clock.sleep, clock=clock)
    probe.run_probe(fetcher, token_fetcher)
    # The fake hub serves both hosts on one port, so every request after the first waits,
    # the token's too: it follows the keyless fetcher's last request to that host.
    assert clock.sleeps == [0.5] * 8
    assert token_clock.sleeps == [0.5]


@pytest.mark.parametrize("statuses, code", [
    (["ok", "ok"], 0), (["ok", "changed", "unknown"], 1), (["ok", "unknown"], 2), ([], 0)])
def test_exit_codes(statuses, code):
    assert probe.exit_code([probe.Check(str(i), s, "") for i, s in enumerate(statuses)]) == code


def test_help_names_every_option():
    result = CliRunner().invoke(probe_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--hub-url", "--inference-url", "--delay", "--format"):
        assert option in result.output


def test_an_empty_hub_is_changed(make_hub):
    from tests.fixtures.catalog import Catalog

    result = invoke(make_hub(Catalog(items=[], api_ids=set(), listed_ids=["Qwen/Qwen3-8B"])))
    assert result.exit_code == 1, result.output
    assert lines(result.output)[0] == (
        "changed", "envelope", "PUT /api/v1/dolphin/models answers, but TotalCount is 0 (a crawl "
        "would see every model vanish)")


def test_hub_text_cannot_break_the_one_line_per_check_output(make_hub):
    catalog = build_catalog()
    for item in catalog.items[:150]:
        item["Tasks"] = [{"Name": "evil\n\x1b[31mtask"}]
    catalog.touch()
    result = invoke(make_hub(catalog))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert lines(result.output)[6] == (
        "ok", "task-filter", "tasks contains evil [31mtask gives 150 of 300 models")


# The real hub's answer (issue 15) --------------------------------------------

LORA = (__import__("pathlib").Path(__file__).parent / "fixtures" / "real"
        / "dolphin-models_tags-lora_30items_captured-by-2025-11-14.json")


def test_the_real_answer_gives_no_changed_line_in_fields_or_sorts():
    from indexer import parse, probe_checks
    items = parse.parse_page(json.loads(LORA.read_text(encoding="utf-8"))["Data"])[0]
    assert probe_checks.check_fields(items) == probe.Check(
        "fields", "ok", "items carry Path, Name, Downloads, Stars, Tasks (30 items looked at); "
        "4 with Tasks: null, 1 with a placeholder task (no task)")
    answer = probe.Answer(data={})
    parsed = {"Default": (items, 30)}
    answers = dict.fromkeys(["DownloadsCount", "StarsCount", "GmtModified", "Default"], answer)
    check = probe_checks.check_sorts(answers, parsed, items)
    assert check.status != "changed"
    assert check.detail.endswith("; Default follows none of CreatedTime, LastUpdatedTime, "
                                 "Downloads, Stars, Id")


def test_probe_and_crawl_on_a_hub_serving_the_real_answer(tmp_path, make_hub):
    from tests.fakehub import catalog_from_recording
    from tests.helpers import run_crawl
    api = ["lightx2v/Qwen-Image-Lightning", "dx8152/Qwen-Edit-2509-Multiple-angles"]
    hub = make_hub(catalog_from_recording(LORA, api_ids=api, listed_ids=api), recorded=str(LORA))
    result = invoke(hub)
    assert [line for line in lines(result.output) if line[0] == "changed"] == []
    assert result.exit_code == 0, result.output
    crawl = run_crawl(tmp_path / "catalog.db", hub, scope="full")
    assert (crawl.status, crawl.warnings) == ("complete", {}), crawl.summary()
