"""The embedded sample is never written: crawls go to its live sibling, which readers take up (issue 13)."""

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from indexer import site, store
from indexer.cli import cli
from tests.helpers import rows
from tests.test_serve import SAMPLE


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "catalog.db"
    shutil.copy(SAMPLE, path)
    return path


def indexer(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"MODELSCOPE_TOKEN": "", **(env or {})})


def test_a_failed_crawl_of_the_sample_writes_the_live_sibling_only(sample):
    before = digest(sample)
    result = indexer("crawl", "--db", sample, "--hub-url", "http://127.0.0.1:9",
                     "--inference-url", "http://127.0.0.1:9", "--max-retries", "0", "--timeout", "1",
                     "--delay", "0")
    assert result.exit_code == 1
    live = sample.parent / "catalog.live.db"
    assert result.stderr.splitlines()[0] == (
        f"{sample} holds the embedded sample, which stays as it is: crawls write {live}, "
        "which every command reads instead once a crawl there completes")
    assert digest(sample) == before
    assert sorted(os.listdir(sample.parent)) == ["catalog.db", "catalog.live.db", "catalog.live.db.lock"]
    assert [r["status"] for r in rows(live, "select status from crawl_runs")] == ["failed"]
    # Until a crawl there completes, every reader still reads the sample.
    assert store.catalog_for_reading(sample) == str(sample)
    exported = indexer("export", "--db", sample)
    assert exported.exit_code == 0
    assert "Qwen/Qwen2.5-7B-Instruct\n" in exported.stdout


def test_a_complete_crawl_takes_the_samples_place_for_every_reader(sample, fakehub):
    before = digest(sample)
    args = ["--hub-url", fakehub.hub_url, "--inference-url", fakehub.inference_url, "--delay", "0"]
    assert indexer("crawl", "--db", sample, "--scope", "full", *args).exit_code == 0
    live = sample.parent / "catalog.live.db"
    assert digest(sample) == before
    assert store.catalog_for_reading(sample) == str(live)
    from_sample = indexer("export", "--db", sample, "--all", "--sort", "id")
    from_live = indexer("export", "--db", live, "--all", "--sort", "id")
    assert from_sample.exit_code == from_live.exit_code == 0
    assert from_sample.stdout == from_live.stdout
    stored = rows(live, "select count(*) as n from models")[0]["n"]
    assert stored > 250
    assert len(from_sample.stdout.splitlines()) == stored
    # The site swaps the live catalog in once it is there.
    ds = site.build_datasette(SAMPLE, immutable=True)
    ds.databases["catalog"].path = str(sample)
    asyncio.run(ds.client.get("/catalog"))
    assert ds._permission_memo
    assert site.switch_catalog(ds, sample) is True
    assert "_permission_memo" not in vars(ds)  # the permissions of the new file are asked afresh
    assert ds.databases["catalog"].path == str(live)
    count = asyncio.run(ds.client.get("/catalog.json?sql=select+count(*)+from+models&_shape=arrayfirst"))
    assert count.json() == [stored]
    assert site.switch_catalog(ds, sample) is False


def test_a_missing_catalog_is_read_as_the_packaged_sample_until_a_crawl_completes(tmp_path):
    missing = tmp_path / "catalog.db"
    assert store.catalog_for_reading(missing, sample=SAMPLE) == str(SAMPLE)
    assert store.catalog_for_reading(missing) == str(missing)


def test_serving_the_sample_offline_leaves_it_byte_for_byte(sample):
    # The Quick start's first command, offline: the scheduled crawl fails and the
    # sample is served all the same, unchanged.
    before = digest(sample)
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "serve", "--db", str(sample), "--port", "0",
         "--hub-url", "http://127.0.0.1:9", "--inference-url", "http://127.0.0.1:9",
         "--max-retries", "0", "--timeout", "1", "--delay", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "MODELSCOPE_TOKEN": ""})
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "crawl could not run" in line or "failed" in line:
                break
    finally:
        process.terminate()
        process.wait(10)
    assert any("failed" in line for line in lines), lines
    assert digest(sample) == before
    assert set(os.listdir(sample.parent)) <= {"catalog.db", "catalog.live.db", "catalog.live.db-wal",
                                              "catalog.live.db-shm", "catalog.live.db.lock"}
