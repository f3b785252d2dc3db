"""One answer to "will this ID work?" on every surface: CLI, site, export, feed (issue 11)."""

import asyncio
import json
import urllib.parse
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import site
from indexer.cli import cli
from tests.fixtures.catalog import UNLISTED_API_CHAT_ID, make_item
from tests.helpers import SAMPLE_CHECK_OK, events, models, run_crawl

SAMPLE = Path(__file__).resolve().parent.parent / "catalog.db"
ATOM = "{http://www.w3.org/2005/Atom}"
DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
VL_CHAT_ID = "Qwen/Qwen3-VL-8B-Instruct"

# 20 IDs of every kind on the sample catalog: ok (chat, image, listed after
# losing the badge), not-served, not-api, removed, unknown, the right name under
# the wrong owner,
# typos and other casings that get suggestions, and IDs that suggest nothing.
TWENTY_IDS = [
    "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen-Image", "AI-ModelScope/DeepSeek-V3-0324",
    "deepseek-ai/DeepSeek-V3-0324",
    "AI-ModelScope/Phi-3.5-mini-instruct", "moonshotai/Kimi-K2-Instruct",
    "Qwen/Qwen2.5-72B-Instruct", "openmoss/MOSS-TTSD-v0.5", "iic/speech_paraformer-large",
    "qwen/qwen2.5-7b-instruct", "QWEN/QWEN-IMAGE", "Qwen/Qwen2.5-7B-Instrcut", "moonshot/Kimi-K2-Instruct",
    "Kimi-K2-Instruct", "qwen/qwen-image", "nobody/zzz-nothing", "Qwen/Qwen9-Nothing-Like-It",
    "a", "%", "ZhipuAI/GLM-4.6",
]


def cli_check(db_path, ids):
    result = CliRunner().invoke(cli, ["check", "--db", str(db_path), "--format", "json", *ids])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def site_check(ds, given):
    url = f"/catalog/check_model_id.json?{urllib.parse.urlencode({'id': given})}&_shape=array"
    response = asyncio.run(ds.client.get(url))
    assert response.status_code == 200, response.text
    return response.json()


def test_the_cli_and_the_site_give_the_same_status_and_suggestions():
    answers = cli_check(SAMPLE, TWENTY_IDS)
    ds = site.build_datasette(SAMPLE)
    for answer in answers:
        rows = site_check(ds, answer["id"])
        assert (rows[0]["status"], [r["model_id"] for r in rows[1:]]) == (
            answer["status"], answer["suggestions"]), answer["id"]
        assert rows[0]["model_id"] == answer["model_id"]
    # The table covers every status, and suggestions for typos and other casings.
    assert {a["status"] for a in answers} == {"ok", "not-served", "not-api", "removed", "unknown"}
    by_id = {a["id"]: a for a in answers}
    assert by_id["qwen/qwen2.5-7b-instruct"]["suggestions"][0] == "Qwen/Qwen2.5-7B-Instruct"
    assert by_id["QWEN/QWEN-IMAGE"]["suggestions"][0] == "Qwen/Qwen-Image"
    assert by_id["openmoss/MOSS-TTSD-v0.5"]["status"] == "removed"
    assert by_id["openmoss/MOSS-TTSD-v0.5"]["suggestions"] == ["openmoss/MOSS-TTSD-v0.7",
                                                              "openmoss/moss-moon-003-base"]
    assert by_id["moonshot/Kimi-K2-Instruct"]["suggestions"] == [UNLISTED_API_CHAT_ID]
    assert by_id["nobody/zzz-nothing"] == {"id": "nobody/zzz-nothing", "status": "unknown",
                                           "model_id": None, "note": None, "suggestions": []}


def export_then_check(db_path):
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", "--db", str(db_path)])
    assert exported.exit_code == 0, exported.output
    checked = runner.invoke(cli, ["check", "--db", str(db_path), "-"], input=exported.stdout)
    return exported.stdout.split(), checked


def test_export_piped_into_check_exits_0_on_the_sample():
    ids, checked = export_then_check(SAMPLE)
    assert ids == [line.split()[1] for line in SAMPLE_CHECK_OK]
    assert checked.stdout.splitlines() == SAMPLE_CHECK_OK
    assert checked.exit_code == 0


@pytest.fixture
def vl_catalog(catalog):
    # An API-badged vision-language chat model that /v1/models lacks, as the
    # Qwen3-VL models were once withdrawn (issue 11).
    catalog.add(make_item("Qwen", "Qwen3-VL-8B-Instruct", id=990_500, task="image-text-to-text"),
                api=True, listed=False)
    return catalog


def test_export_piped_into_check_exits_0_on_a_crawled_hub(tmp_path, vl_catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, fakehub, scope="full").status == "complete"
    ids, checked = export_then_check(db_path)
    assert len(ids) == sum(m["status"] == "ok" for m in models(db_path).values()) > 30
    assert UNLISTED_API_CHAT_ID not in ids and VL_CHAT_ID not in ids
    assert checked.exit_code == 0, checked.stdout


def test_an_api_vision_language_chat_model_off_the_list_is_not_served(tmp_path, vl_catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, fakehub, scope="full").status == "complete"
    row = models(db_path)[VL_CHAT_ID]
    assert (row["api_inference"], row["in_inference_list"], row["tasks"]) == (1, 0, ["image-text-to-text"])
    assert (row["kind"], row["status"], row["status_reason"]) == (
        "chat", "not-served", "it has the API-Inference badge, but /v1/models lacks this chat model")
    assert cli_check(db_path, [VL_CHAT_ID])[0]["status"] == "not-served"


def test_a_model_leaving_the_list_gets_one_debounced_status_event_and_a_feed_title(
        tmp_path, catalog, fakehub):
    db_path = tmp_path / "catalog.db"
    clock = [DAY0]
    crawl = lambda: run_crawl(db_path, fakehub, scope="full", confirm=2,  # noqa: E731
                              now=lambda: clock[0])
    crawl()
    model = "Qwen/Qwen2.5-7B-Instruct"
    assert models(db_path)[model]["status"] == "ok"
    catalog.set_listed(model, False)
    clock[0] += timedelta(days=1)
    crawl()
    # Missing once: not yet confirmed, so nothing moves.
    assert events(db_path) == []
    assert models(db_path)[model]["status"] == "ok"
    clock[0] += timedelta(days=1)
    crawl()
    assert events(db_path) == [
        (model, "unlisted", None),
        (model, "status_changed", {"old": "ok", "new": "not-served", "reason":
                                   "it has the API-Inference badge, but /v1/models lacks this chat model"})]
    assert models(db_path)[model]["status"] == "not-served"
    response = asyncio.run(site.build_datasette(db_path).client.get(
        "/catalog/changes.atom?event=status_changed"))
    assert response.status_code == 200, response.text
    titles = [e.find(f"{ATOM}title").text for e in ET.fromstring(response.content).findall(f"{ATOM}entry")]
    assert titles == [f"{model} is no longer served"]
