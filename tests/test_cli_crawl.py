"""`indexer crawl` from the command line: summaries, exit codes, one-line errors (issue 2)."""

import re
import subprocess
import sys

from click.testing import CliRunner

from indexer.cli import cli
from tests.helpers import models, rows

TOKEN = "ms-00000000-1111-2222-3333-444455556666"


def invoke(*args, env=None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"MODELSCOPE_TOKEN": "", **(env or {})},
                         catch_exceptions=False)


def crawl_args(hub, db_path, *extra):
    return ["crawl", "--db", str(db_path), "--hub-url", hub.hub_url,
            "--inference-url", hub.inference_url, "--delay", "0", *extra]


def test_crawl_prints_a_one_line_summary_and_exits_0(tmp_path, catalog, fakehub):
    result = invoke(*crawl_args(fakehub, tmp_path / "c.db"))
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"crawl #1 \(api\) complete: 36/36 models, 36 API-Inference, 27 listed; 0 events, "
        r"36 stats rows; 106 requests in \d+\.\ds; capabilities of 38 models read\n",
        result.stdout), result.stdout


def test_env_vars_name_the_hub_and_the_catalog(tmp_path, catalog, fakehub):
    db_path = tmp_path / "env.db"
    result = invoke("crawl", "--delay", "0", env={
        "INDEXER_DB": str(db_path), "MODELSCOPE_HUB_URL": fakehub.hub_url,
        "MODELSCOPE_INFERENCE_URL": fakehub.inference_url})
    assert result.exit_code == 0, result.output
    assert len(models(db_path)) == 36 + 2  # the API set plus two listed-only IDs


def test_an_unreachable_hub_is_one_line_and_exit_1(tmp_path):
    db_path = tmp_path / "c.db"
    result = invoke("crawl", "--db", str(db_path), "--hub-url", "http://127.0.0.1:9",
                    "--inference-url", "http://127.0.0.1:9/v1", "--delay", "0",
                    "--max-retries", "1")
    assert result.exit_code == 1
    assert result.stdout == ("crawl #1 (api) failed: 0 models, 0 API-Inference, 0 listed; "
                             f"0 events, 0 stats rows; 2 requests in {_secs(result.stdout)}s "
                             "(PUT http://127.0.0.1:9/api/v1/dolphin/models failed after 2 tries: "
                             "could not connect (ConnectionError))\n")
    assert rows(db_path, "select status from crawl_runs") == [{"status": "failed"}]


def _secs(text):
    return re.search(r"in (\d+\.\d)s", text).group(1)


def test_a_corrupt_catalog_is_one_line_and_exit_1(tmp_path, fakehub):
    db_path = tmp_path / "c.db"
    db_path.write_bytes(b"this is not a database at all" * 200)
    result = invoke(*crawl_args(fakehub, db_path))
    assert result.exit_code == 1
    assert result.output == f"Error: {db_path} is not a usable SQLite catalog (file is not a database)\n"
    assert db_path.read_bytes() == b"this is not a database at all" * 200


def test_a_catalog_in_a_missing_folder_is_one_line_and_exit_1(tmp_path, fakehub):
    db_path = tmp_path / "nowhere" / "c.db"
    result = invoke(*crawl_args(fakehub, db_path))
    assert result.exit_code == 1
    assert result.output == (f"Error: cannot create the lock file {db_path}.lock "
                             "(No such file or directory)\n")


def test_a_bad_option_is_a_usage_error(tmp_path):
    result = invoke("crawl", "--scope", "everything")
    assert result.exit_code == 2
    assert "Invalid value for '--scope'" in result.output


def test_the_token_is_sent_but_never_stored_logged_or_shown(tmp_path, catalog, fakehub):
    db_path = tmp_path / "c.db"
    assert invoke(*crawl_args(fakehub, db_path), env={"MODELSCOPE_TOKEN": TOKEN}).exit_code == 0
    fakehub.add_fault("500", count=50)
    result = invoke(*crawl_args(fakehub, db_path, "--max-retries", "1", "-v"),
                    env={"MODELSCOPE_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert {r["headers"].get("Authorization") for r in fakehub.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.output
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "indexer", "crawl", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("Usage: indexer crawl [OPTIONS]")
