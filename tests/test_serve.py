"""`indexer serve` and `indexer snapshot`, and the bundled sample catalog (issue 4)."""

import asyncio
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from indexer import site
from indexer.cli_serve import serve as serve_command
from indexer.cli_serve import snapshot as snapshot_command
from tests import build_sample
from tests.fixtures.catalog import build_catalog
from tests.helpers import events, make_fetcher, models, rows, run_crawl

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "catalog.db"
# Until the lead registers the commands on the group, add them here; once
# registered, adding them again changes nothing.
RUN_CLI = ("from indexer.cli import cli; from indexer.cli_serve import serve, schedule, snapshot; "
           "[cli.add_command(c) for c in (serve, schedule, snapshot)]; cli(prog_name='indexer')")


def read_db(path):
    """Every table's and view's rows, in a stable order, read without touching the file."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "select name from sqlite_master where type in ('table', 'view') order by name")]
        schema = list(conn.execute("select type, name, tbl_name, sql from sqlite_master "
                                   "order by type, name"))
        content = {name: sorted(conn.execute(f'select * from "{name}"'), key=repr)
                   for name in names}
        return schema, content
    finally:
        conn.close()


# The bundled sample --------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "catalog.db"
    build_sample.build(path)
    return path


def test_the_committed_sample_is_what_the_build_command_makes(fresh_sample):
    # If this fails, rebuild it: python -m tests.build_sample
    assert SAMPLE.exists(), "catalog.db is missing: python -m tests.build_sample"
    committed_schema, committed = read_db(SAMPLE)
    fresh_schema, fresh = read_db(fresh_sample)
    assert committed_schema == fresh_schema
    assert sorted(committed) == sorted(fresh)
    for name in fresh:
        assert committed[name] == fresh[name], f"{name} differs: python -m tests.build_sample"


def test_the_sample_has_history_to_show(fresh_sample):
    runs = rows(fresh_sample, "select scope, status, count(*) as n from crawl_runs "
                              "group by scope, status order by scope")
    assert runs == [{"scope": "api", "status": "complete", "n": 42},
                    {"scope": "full", "status": "complete", "n": 6}]
    assert rows(fresh_sample, "select event, count(*) as n from model_events group by event "
                              "order by event") == [
        {"event": "added", "n": 3}, {"event": "api_disabled", "n": 1},
        {"event": "api_enabled", "n": 3}, {"event": "changed", "n": 2},
        {"event": "listed", "n": 2}, {"event": "removed", "n": 1},
        {"event": "status_changed", "n": 3}, {"event": "unlisted", "n": 2}]
    # Status moves the sample's history causes (issue 11), for the feed to show.
    assert rows(fresh_sample, "select model_id, json_extract(detail, '$.new') as new from model_events "
                              "where event = 'status_changed' order by model_id") == [
        {"model_id": "AI-ModelScope/Phi-3.5-mini-instruct", "new": "not-served"},
        {"model_id": "Qwen/Qwen2.5-72B-Instruct", "new": "not-api"},
        {"model_id": "openmoss/MOSS-TTSD-v0.5", "new": "removed"}]
    assert rows(fresh_sample, "select value from catalog_info where key = 'sample'") == [
        {"value": "1"}]
    assert len(models(fresh_sample)) == 302
    trending = rows(fresh_sample, "select model_id, downloads_7d from trending "
                                  "order by downloads_7d desc limit 3")
    assert all(row["downloads_7d"] > 10_000 for row in trending)
    assert rows(fresh_sample, "pragma journal_mode") == [{"journal_mode": "delete"}]


def test_the_first_live_crawl_replaces_the_sample_without_events(tmp_path, fresh_sample,
                                                                fakehub):
    db_path = tmp_path / "catalog.db"
    shutil.copy(fresh_sample, db_path)
    result = run_crawl(db_path, fakehub, scope="api")
    assert (result.status, result.events) == ("complete", 0)
    assert events(db_path) == []
    assert rows(db_path, "select id, scope, status from crawl_runs") == [
        {"id": 49, "scope": "api", "status": "complete"}]
    assert rows(db_path, "select * from catalog_info where key = 'sample'") == []
    assert set(models(db_path)) == set(fakehub.catalog.api_ids) | set(fakehub.catalog.listed_ids)


def test_the_sample_serves_through_the_site(fresh_sample):
    ds = site.build_datasette(fresh_sample)
    response = asyncio.run(ds.client.get(
        "/catalog/models.json?_shape=arrayfirst&_col=model_id&api_inference=1"
        "&model_id__contains=Qwen2.5-7B&_sort=model_id"))
    assert response.status_code == 200
    assert response.json() == ["AI-ModelScope/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct",
                               "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]


# Snapshots ------------------------------------------------------------------


def snapshot(*args):
    return CliRunner().invoke(snapshot_command, [str(a) for a in args])


def test_snapshot_while_a_crawl_is_writing(tmp_path, make_hub):
    db_path = tmp_path / "catalog.db"
    hub = make_hub(build_catalog(300, seed=7))
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    before = models(db_path)
    # A second crawl, parked half way: its run row says `running`.
    entered, release = threading.Event(), threading.Event()
    hub.before_dolphin = lambda hub_, body: (entered.set(), release.wait(10))
    crawler = threading.Thread(target=run_crawl, args=(db_path, hub), kwargs={"scope": "full"})
    crawler.start()
    # And a writer in the middle of a transaction it has not committed.
    writer = sqlite3.connect(db_path, isolation_level=None, timeout=1)
    try:
        assert entered.wait(10)
        writer.execute("begin immediate")
        writer.execute("delete from models")
        result = snapshot(tmp_path / "snap.db", "--db", db_path)
        writer.execute("rollback")
    finally:
        writer.close()
        release.set()
        crawler.join(10)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"snapshot of {re.escape(str(db_path))} written to "
                        rf"{re.escape(str(tmp_path / 'snap.db'))} \(\d+\.\d MB\)\n", result.output)
    snap = tmp_path / "snap.db"
    conn = sqlite3.connect(f"file:{snap}?immutable=1", uri=True)
    try:
        assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]
        assert conn.execute("pragma journal_mode").fetchall() == [("delete",)]
        runs = conn.execute("select id, status from crawl_runs order by id").fetchall()
    finally:
        conn.close()
    assert runs == [(1, "complete"), (2, "running")]
    assert models(snap) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".snap", "snap"))) == [
        "snap.db"]
    # A read-only replica serves it immutable.
    ds = site.build_datasette(snap, immutable=True)
    response = asyncio.run(ds.client.get("/catalog/models.json?_size=1"))
    assert response.status_code == 200
    assert response.json()["filtered_table_rows_count"] == len(before)


def test_snapshot_replaces_an_older_snapshot(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    run_crawl(db_path, fakehub)
    (tmp_path / "snap.db").write_text("an old snapshot")
    assert snapshot(tmp_path / "snap.db", "--db", db_path).exit_code == 0
    assert models(tmp_path / "snap.db") == models(db_path)


def test_snapshot_refuses_to_overwrite_the_catalog(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    run_crawl(db_path, fakehub)
    before = db_path.read_bytes()
    for target in (db_path, tmp_path / "." / "catalog.db"):
        result = snapshot(target, "--db", db_path)
        assert result.exit_code == 1
        assert result.output == f"Error: {target} is the catalog itself; pick another path\n"
    assert db_path.read_bytes() == before


def test_snapshot_of_a_missing_catalog(tmp_path):
    result = snapshot(tmp_path / "snap.db", "--db", tmp_path / "nope.db")
    assert (result.exit_code, result.output) == (
        1, f"Error: no catalog at {tmp_path / 'nope.db'}\n")
    assert not (tmp_path / "snap.db").exists()


# `indexer serve` as a process ---------------------------------------------------


class Served:
    """An `indexer serve` process whose log lines are collected as they come."""

    def __init__(self, args, env=None):
        self.lines = []
        self._queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "serve", *map(str, args)], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "MODELSCOPE_TOKEN": "", **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()
        self._url = None

    @property
    def url(self):
        """The site's address, once it serves (the first use waits for it)."""
        if self._url is None:
            self._url = self.wait_for(r"serving .* at (http://\S+)").group(1)
        return self._url

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern, timeout=20):
        """The first log line (seen or to come) matching `pattern`."""
        for line in self.lines:
            if re.search(pattern, line):
                return re.search(pattern, line)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"serve exited ({self.proc.wait()}) before {pattern!r}:\n"
                                     + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return re.search(pattern, line)
        raise AssertionError(f"no log line matched {pattern!r} in {timeout}s:\n"
                             + "\n".join(self.lines))

    def get(self, path, **kwargs):
        return httpx.get(self.url.rstrip("/") + path, timeout=10, **kwargs)

    def terminate(self, timeout=10):
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def served(*args, env=None):
    process = Served(args, env=env)
    try:
        yield process
    finally:
        process.close()


@pytest.fixture
def sample_copy(tmp_path):
    """The committed sample, copied, so that a crawl can replace it."""
    path = tmp_path / "catalog.db"
    shutil.copy(SAMPLE, path)
    return path


def test_serve_keeps_serving_the_last_good_data_when_a_crawl_fails(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    # A live catalog whose newest complete run is old: the start-up API crawl is due.
    run_crawl(db_path, fakehub, now=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))
    before = models(db_path)
    with served("--db", db_path, "--port", 0, "--hub-url", "http://127.0.0.1:9",
                "--inference-url", "http://127.0.0.1:9/v1", "--max-retries", 0) as process:
        process.wait_for(r"crawl #2 \(api\) failed: .*could not connect")
        response = process.get("/catalog/crawl_runs.json?_shape=array&_sort=id&_col=status")
        assert response.status_code == 200
        assert response.json() == [{"id": 1, "status": "complete"}, {"id": 2, "status": "failed"}]
        response = process.get("/catalog/models.json?_shape=arrayfirst&_col=model_id"
                               "&model_id__contains=Qwen2.5-7B-Instruct&_sort=model_id")
        assert response.status_code == 200
        assert response.json() == ["AI-ModelScope/Qwen2.5-7B-Instruct-AWQ",
                                   "Qwen/Qwen2.5-7B-Instruct",
                                   "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]
        # A second server on the same port fails before it starts anything.
        port = int(process.url.rstrip("/").rsplit(":", 1)[1])
        busy = CliRunner().invoke(serve_command, ["--db", str(db_path), "--port", str(port)])
        assert (busy.exit_code, busy.output) == (
            1, f"Error: cannot listen on 127.0.0.1:{port} (Address already in use)\n")
        code, seconds = process.terminate()
    assert code == 0, "\n".join(process.lines)
    assert seconds < 5
    assert models(db_path) == before
    assert rows(db_path, "select id, status from crawl_runs") == [
        {"id": 1, "status": "complete"}, {"id": 2, "status": "failed"}]


class Unreachable:
    hub_url = "http://127.0.0.1:9"
    inference_url = "http://127.0.0.1:9/v1"


def test_a_failing_live_crawl_keeps_the_sample(sample_copy):
    # A fresh clone without network must keep serving the sample (issue 4).
    before = models(sample_copy)
    result = run_crawl(sample_copy, Unreachable, fetcher=make_fetcher(Unreachable, max_retries=0))
    assert result.status == "failed"
    assert models(sample_copy) == before
    assert rows(sample_copy, "select value from catalog_info where key = 'sample'") == [
        {"value": "1"}]


def test_sigterm_during_a_crawl_records_it_incomplete(tmp_path, make_hub):
    db_path = tmp_path / "catalog.db"
    hub = make_hub(build_catalog(300, seed=7))
    release = threading.Event()
    entered = threading.Event()
    hub.before_dolphin = lambda hub_, body: (entered.set(), release.wait(10))
    with served("--db", db_path, "--port", 0, "--hub-url", hub.hub_url,
                "--inference-url", hub.inference_url, "--delay", 0) as process:
        assert entered.wait(20)
        process.proc.send_signal(signal.SIGTERM)
        process.wait_for(r"Shutting down")
        release.set()  # the request in flight answers; the crawl must stop after it
        assert process.proc.wait(10) == 0, "\n".join(process.lines)
    assert rows(db_path, "select scope, status, error from crawl_runs") == [
        {"scope": "api", "status": "incomplete",
         "error": "interrupted: the process is shutting down"}]
    assert len(hub.dolphin_requests()) == 1


def test_serve_without_a_catalog_and_without_crawls_says_how_to_make_one(tmp_path):
    result = CliRunner().invoke(serve_command, ["--db", str(tmp_path / "c.db"), "--no-schedule"])
    assert result.exit_code == 1
    assert result.output == (f"Error: no catalog at {tmp_path / 'c.db'}: "
                             f"run `indexer crawl --db {tmp_path / 'c.db'}` first\n")
    assert not (tmp_path / "c.db").exists()


def test_serve_help_names_every_option():
    output = CliRunner().invoke(serve_command, ["--help"]).output
    for option in ("--db", "--host", "--port", "--no-schedule", "--api-every", "--full-cron",
                   "--hub-url", "--inference-url", "--delay", "--max-retries", "--timeout",
                   "--confirm", "--verbose"):
        assert option in output
