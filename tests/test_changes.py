"""`indexer changes`: every format and filter, byte for byte (issue 3)."""

from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from indexer import changes, store
from indexer.cli import cli

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "catalog.db"
    db = store.open_db(path)
    db.table("models").insert_all([
        {"model_id": "Qwen/Qwen3-8B", "owner": "Qwen", "name": "Qwen3-8B",
         "tasks": '["text-generation"]', "api_inference": 1, "in_inference_list": 1},
        {"model_id": "Tongyi-MAI/Z-Image-Turbo", "owner": "Tongyi-MAI", "name": "Z-Image-Turbo",
         "tasks": '["text-to-image-synthesis"]', "api_inference": 1, "in_inference_list": 0},
        {"model_id": "iic/old-model", "owner": "iic", "name": "old-model", "tasks": "[]",
         "api_inference": 0, "in_inference_list": 0},
    ])
    db.table("model_events").insert_all([
        {"id": 1, "run_id": 1, "model_id": "iic/old-model", "event": "removed",
         "at": "2026-10-01T03:00:00+00:00", "detail": None},
        {"id": 2, "run_id": 2, "model_id": "Qwen/Qwen3-8B", "event": "api_enabled",
         "at": "2026-11-25T10:00:00+00:00", "detail": None},
        {"id": 3, "run_id": 2, "model_id": "Tongyi-MAI/Z-Image-Turbo", "event": "changed",
         "at": "2026-11-25T10:00:00+00:00",
         "detail": '{"field":"license","old":"MIT","new":"Apache-2.0"}'},
        {"id": 4, "run_id": 3, "model_id": "Qwen/Qwen3-8B", "event": "listed",
         "at": "2026-11-27T09:00:00+00:00", "detail": None},
    ])
    db.conn.close()
    return path


def run(db_path, *args):
    return CliRunner().invoke(cli, ["changes", "--db", str(db_path), *args])


def test_text_is_one_aligned_line_per_event_newest_first(db_path):
    result = run(db_path)
    assert result.exit_code == 0
    assert result.output == (
        "2026-11-27T09:00:00+00:00  listed          Qwen/Qwen3-8B\n"
        "2026-11-25T10:00:00+00:00  changed         Tongyi-MAI/Z-Image-Turbo  "
        'license: "MIT" -> "Apache-2.0"\n'
        "2026-11-25T10:00:00+00:00  api_enabled     Qwen/Qwen3-8B\n"
        "2026-10-01T03:00:00+00:00  removed         iic/old-model\n")


def test_json_is_a_list(db_path):
    result = run(db_path, "--format", "json", "--event", "changed", "--event", "listed")
    assert result.output == (
        '[\n'
        '  {"id": 4, "run_id": 3, "at": "2026-11-27T09:00:00+00:00", "event": "listed", '
        '"model_id": "Qwen/Qwen3-8B", "detail": null},\n'
        '  {"id": 3, "run_id": 2, "at": "2026-11-25T10:00:00+00:00", "event": "changed", '
        '"model_id": "Tongyi-MAI/Z-Image-Turbo", "detail": {"field": "license", "old": "MIT", '
        '"new": "Apache-2.0"}}\n'
        ']\n')


def test_json_with_no_events_is_an_empty_list(db_path):
    assert run(db_path, "--format", "json", "--event", "returned").output == "[]\n"


def test_csv_has_a_header(db_path):
    result = run(db_path, "--format", "csv", "--owner", "Tongyi-MAI")
    assert result.output == (
        "id,run_id,at,event,model_id,detail\n"
        '3,2,2026-11-25T10:00:00+00:00,changed,Tongyi-MAI/Z-Image-Turbo,'
        '"{""field"": ""license"", ""old"": ""MIT"", ""new"": ""Apache-2.0""}"\n')


def test_task_filter(db_path):
    assert run(db_path, "--task", "text-generation").output == (
        "2026-11-27T09:00:00+00:00  listed          Qwen/Qwen3-8B\n"
        "2026-11-25T10:00:00+00:00  api_enabled     Qwen/Qwen3-8B\n")


def test_since_a_date_and_limit(db_path):
    assert run(db_path, "--since", "2026-11-26", "--format", "csv").output == (
        "id,run_id,at,event,model_id,detail\n"
        "4,3,2026-11-27T09:00:00+00:00,listed,Qwen/Qwen3-8B,\n")
    assert run(db_path, "--limit", "1").output == (
        "2026-11-27T09:00:00+00:00  listed          Qwen/Qwen3-8B\n")


@pytest.mark.parametrize("text, expected", [
    ("7d", datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)),
    ("12h", datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc)),
    ("30m", datetime(2026, 11, 27, 11, 30, tzinfo=timezone.utc)),
    ("2w", datetime(2026, 11, 13, 12, 0, tzinfo=timezone.utc)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
    ("2026-11-01T08:00:00+08:00", datetime(2026, 11, 1, tzinfo=timezone.utc)),
])
def test_since_values(text, expected):
    assert changes.parse_since(text, NOW) == expected


def test_a_bad_since_is_a_clear_error(db_path):
    result = run(db_path, "--since", "last tuesday")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for '--since': 'last tuesday' is neither a duration like 7d, "
        "12h, 30m, 2w nor a date like 2026-11-01")


def test_a_missing_catalog_is_a_clear_error(tmp_path):
    result = run(tmp_path / "none.db")
    assert result.exit_code == 1
    assert result.output == (f"Error: no catalog at {tmp_path / 'none.db'}: run `indexer crawl "
                             f"--db {tmp_path / 'none.db'}` first\n")
