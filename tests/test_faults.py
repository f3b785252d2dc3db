"""Fault tolerance at a small size: a killed crawler, readers during a crawl, two crawls at
once and hostile hub input (issue 6). Shifting pages and a full disk are in test_crawl.py."""

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer import fetch, site
from tests import fakehub
from tests.fixtures.catalog import build_catalog, make_item
from tests.helpers import make_fetcher, models, rows, run_crawl, with_status, without_times
from tests.test_crawl import expected_models, stored

ROOT = Path(__file__).resolve().parent.parent


class Gate:
    """A `before_dolphin` hook: lets `open_for` list requests through, then holds the rest."""

    def __init__(self, open_for):
        self.open_for = open_for
        self.seen = 0
        self.lock = threading.Lock()
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, hub, body):
        with self.lock:
            self.seen += 1
            held = self.seen > self.open_for
        if held:
            self.holding.set()
            self.release.wait(30)


@pytest.fixture
def gated_hub(make_hub):
    """A hub whose gate is always opened at teardown, so no server thread stays parked."""
    gates = []

    def _make(catalog, open_for):
        hub = make_hub(catalog)
        gate = Gate(open_for)
        hub.before_dolphin = gate
        gates.append(gate)
        return hub, gate

    yield _make
    for gate in gates:
        gate.release.set()


def start_cli_crawl(hub, db_path, scope="full"):
    env = {k: v for k, v in os.environ.items() if k != "MODELSCOPE_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", "crawl", "--db", str(db_path), "--scope", scope,
         "--hub-url", hub.hub_url, "--inference-url", hub.inference_url, "--delay", "0",
         "--max-retries", "0", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(event, process, seconds=30):
    """Wait until the hub holds a request, failing early if the crawler died first."""
    deadline = time.monotonic() + seconds
    while not event.wait(0.05):
        if process.poll() is not None:
            pytest.fail(f"the crawler ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail("the crawler never reached the held request")


def file_digest(db_path):
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        path = Path(f"{db_path}{suffix}")
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def test_a_crawler_killed_mid_crawl_leaves_a_sound_catalog_and_the_next_crawl_mends_it(
        tmp_path, gated_hub):
    catalog = build_catalog(1500)
    # Two totals, two API pages, then two pages of the full list; the seventh is held.
    hub, gate = gated_hub(catalog, open_for=6)
    db_path = tmp_path / "catalog.db"
    crawler = start_cli_crawl(hub, db_path)
    try:
        wait_for(gate.holding, crawler)
        os.kill(crawler.pid, signal.SIGKILL)
        crawler.wait(10)
    finally:
        if crawler.poll() is None:
            crawler.kill()
        crawler.communicate()
    assert crawler.returncode == -signal.SIGKILL
    hub.before_dolphin = None
    gate.release.set()

    conn = sqlite3.connect(db_path)
    assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]
    conn.close()
    # Staged pages never reach the catalog before the merge: nothing half-written.
    assert rows(db_path, "select id, status from crawl_runs") == [{"id": 1, "status": "running"}]
    assert models(db_path) == {}

    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "complete", result.summary()
    assert rows(db_path, "select id, status, error from crawl_runs order by id") == [
        {"id": 1, "status": "failed",
         "error": "interrupted: the crawling process ended before the run finished"},
        {"id": 2, "status": "complete", "error": None}]
    assert stored(db_path) == expected_models(catalog, "full")


def test_datasette_reads_without_lock_errors_while_a_crawl_writes(tmp_path, make_hub):
    catalog = build_catalog(2000)
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    # Give the second crawl real writes to make: moved stats, new models, changed fields.
    for item in catalog.items[10:210]:
        item["Downloads"] = (item.get("Downloads") or 0) + 5
        item["License"] = "MIT"
    for n in range(50):
        catalog.add(make_item("fresh-org", f"Fresh-{n}"))
    catalog.touch()
    hub.before_dolphin = lambda hub_, body: time.sleep(0.1)

    outcome = {}
    crawler = threading.Thread(target=lambda: outcome.update(
        result=run_crawl(db_path, hub, scope="full")))
    ds = site.build_datasette(db_path)
    loop = asyncio.new_event_loop()
    reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    urls = ["/catalog/models.json?_size=5", "/catalog/models.json?_search=Qwen&_size=5",
            "/catalog/models.json?api_inference=1&_size=5", "/catalog/models",
            "/catalog/crawl_runs.json"]
    errors, reads, reads_during = [], 0, 0
    crawler.start()
    try:
        while crawler.is_alive() or reads < len(urls):
            reads_during += crawler.is_alive()
            url = urls[reads % len(urls)]
            try:
                response = loop.run_until_complete(ds.client.get(url))
                if response.status_code != 200 or "database is locked" in response.text:
                    errors.append((url, response.status_code, response.text[:200]))
                reader.execute("select count(*), max(last_seen_at) from models").fetchone()
            except sqlite3.Error as error:
                errors.append((url, repr(error)))
            reads += 1
    finally:
        crawler.join(60)
        loop.close()
        reader.close()
    assert outcome["result"].status == "complete", outcome["result"].summary()
    assert errors == []
    assert reads_during >= 10
    assert len(models(db_path)) == len(expected_models(catalog, "full"))


def test_a_second_crawl_started_at_once_refuses_and_changes_nothing(tmp_path, gated_hub):
    catalog = build_catalog(300)
    hub, gate = gated_hub(catalog, open_for=0)
    db_path = tmp_path / "catalog.db"
    first = start_cli_crawl(hub, db_path)
    try:
        wait_for(gate.holding, first)
        before = file_digest(db_path)
        second = start_cli_crawl(hub, db_path)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert (out, err) == ("", f"Error: another crawl is already running on {db_path}; "
                                  "this one was not started\n")
        assert file_digest(db_path) == before
        assert rows(db_path, "select id, status from crawl_runs") == [
            {"id": 1, "status": "running"}]
        gate.release.set()
        out, err = first.communicate(timeout=60)
    finally:
        gate.release.set()
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert out.startswith("crawl #1 (full) complete: ")
    assert rows(db_path, "select id, status from crawl_runs") == [{"id": 1, "status": "complete"}]


# Hostile input ------------------------------------------------------------------

# The fake hub writes JSON it made itself, which is always valid; these markers
# are swapped for raw bytes on the wire.
RAW = {
    b'"@@INVALID_UTF8@@"': b'"\xff\xfeQwen\xc3("',
    b'"@@LONE_SURROGATE@@"': b'"\\ud800x"',
    b'"@@DEEP@@"': b"[" * 100_000 + b"]" * 100_000,
    # The fake hub's facet counts cannot sort an int among strings.
    b'"@@NUMBER@@"': b"5",
}


@pytest.fixture
def raw_wire(monkeypatch):
    original = fakehub._Handler._send

    def _send(self, status, payload, *args, **kwargs):
        if isinstance(payload, dict):
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            for marker, raw in RAW.items():
                data = data.replace(marker, raw)
            payload = data
        return original(self, status, payload, *args, **kwargs)

    monkeypatch.setattr(fakehub._Handler, "_send", _send)


def hostile_row(name, **values):
    row = {
        "model_id": f"hostile/{name}", "owner": "hostile", "name": name, "chinese_name": None,
        "description": f"{name} by hostile.", "tasks": ["text-generation"], "tags": [],
        "libraries": ["transformers", "safetensors"], "license": "Apache License 2.0",
        "downloads": 0, "likes": 0, "created_at": "2026-05-28T20:26:40+00:00",
        "updated_at": "2026-05-28T20:26:40+00:00", "api_inference": 0, "api_model_id": None,
        "in_inference_list": 0, "support_inference": "",
        "url": f"https://modelscope.cn/models/hostile/{name}", "removed_at": None}
    row.update(values)
    return with_status(row)


HOSTILE = [
    (make_item("hostile", "long-html-description",
               Description="<p>" + "word " * 200_000 + "</p>"),
     hostile_row("long-html-description", description="word " * 800)),
    (make_item("hostile", "long-plain-description", Description="x" * 1_000_000),
     hostile_row("long-plain-description", description="x" * 4000)),
    (make_item("hostile", "nul-bytes", ChineseName="中\x00文", Description="a\x00b",
               License="MIT\x00"),
     hostile_row("nul-bytes", chinese_name="中文", description="ab", license="MIT")),
    (make_item("hostile", "invalid-utf8", ChineseName="@@INVALID_UTF8@@"),
     hostile_row("invalid-utf8", chinese_name="\ufffd\ufffdQwen\ufffd(")),
    (make_item("hostile", "lone-surrogate", ChineseName="@@LONE_SURROGATE@@"),
     hostile_row("lone-surrogate", chinese_name="?x")),
    (make_item("hostile", "numbers-as-strings", Downloads="12345", Stars="7",
               CreatedTime="1700000000", LastUpdatedTime="1700000000.0"),
     hostile_row("numbers-as-strings", downloads=12345, likes=7,
                 created_at="2023-11-14T22:13:20+00:00", updated_at="2023-11-14T22:13:20+00:00")),
    (make_item("hostile", "numbers-as-floats", Downloads=12.9, Stars=3.0, CreatedTime=1.7e9),
     hostile_row("numbers-as-floats", downloads=12, likes=3,
                 created_at="2023-11-14T22:13:20+00:00")),
    (make_item("hostile", "numbers-out-of-range", Downloads=1e300, Stars="NaN",
               CreatedTime="-1", LastUpdatedTime=True),
     hostile_row("numbers-out-of-range", downloads=None, likes=None, created_at=None,
                 updated_at=None)),
    (make_item("hostile", "ten-thousand-tags", Tags=[f"tag-{i}" for i in range(10_000)],
               Libraries=["y" * 1_000_000]),
     hostile_row("ten-thousand-tags", tags=[f"tag-{i}" for i in range(100)],
                 libraries=["y" * 100])),
    (make_item("hostile", "wrong-types", Tasks="text-to-speech", Tags={"a": 1},
               ChineseName=["not", "text"], License="@@NUMBER@@",
               BackendSupport=[1, 2]),
     hostile_row("wrong-types", tasks=["text-to-speech"], license="5")),
]
# Items no row can be made of: skipped, counted, and the crawl still complete.
SKIPPED = [
    make_item("hostile", "n" * 1_000_000),
    make_item("hostile", "n\x00" * 500_000),
    make_item("hostile", "control\x00char"),
    make_item("hostile/with-slash", "name"),
]


def test_hostile_items_are_stored_safely_or_skipped_and_counted(tmp_path, make_hub, raw_wire):
    catalog = build_catalog(300)
    for item, _ in HOSTILE:
        catalog.add(item)
    for item in SKIPPED:
        catalog.add(item)
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    result = run_crawl(db_path, hub, scope="full")
    assert result.status == "complete", result.summary()
    # A too-long name and a count beyond 64 bits have counters of their own (issue 14).
    assert result.warnings == {"skipped_missing_path": 2, "skipped_missing_name": 1,
                               "skipped_long_name": 1, "skipped_invalid_id": 2,
                               "out_of_range_downloads": 1}
    saved = stored(db_path)
    assert {k: v for k, v in saved.items() if k.startswith("hostile")} == {
        row["model_id"]: without_times(row) for _, row in HOSTILE}
    # The full-text index took them too.
    hits = rows(db_path, "select model_id from models where rowid in (select rowid from "
                         "models_fts where models_fts match ?)", ['"tag-9999"'])
    assert hits == []
    hits = rows(db_path, "select model_id from models where rowid in (select rowid from "
                         "models_fts where models_fts match ?)", ['"Qwen\ufffd("'])
    assert hits == [{"model_id": "hostile/invalid-utf8"}]


def test_a_page_nested_too_deep_to_decode_is_pruned_not_fatal(tmp_path, make_hub, raw_wire):
    catalog = build_catalog(300)
    catalog.add(make_item("hostile", "deeply-nested", SomeFieldFromTheFuture="@@DEEP@@",
                          Tags="@@DEEP@@"))
    hub = make_hub(catalog)
    db_path = tmp_path / "catalog.db"
    fetcher = make_fetcher(hub)
    result = run_crawl(db_path, hub, scope="full", fetcher=fetcher)
    assert result.status == "complete", result.summary()
    assert fetcher.pruned_answers == 1
    assert stored(db_path)["hostile/deeply-nested"] == without_times(
        hostile_row("deeply-nested"))
    assert len(stored(db_path)) == len(expected_models(catalog, "full"))


def test_pruning_nulls_only_what_is_nested_too_deep():
    text = '{"a": [[[[1]]], "x[\\"]{"], "b": {"c": {"d": 2}}}'
    assert json.loads(fetch.prune_deep_json(text, limit=3)) == {
        "a": [[None], 'x["]{'], "b": {"c": {"d": 2}}}
    assert fetch.prune_deep_json(text, limit=5) == text
