"""Exporting callable model IDs and checking IDs, on a hand-written catalog (issue 5)."""

import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from indexer import check, export, status, store
from indexer.cli_export import check_command, export_command

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)


def model(model_id, downloads=None, likes=None, tasks=("text-generation",), api=0, listed=0,
          api_model_id=None, updated_at=None, removed_at=None, chinese_name=None,
          description=None, tags=()):
    owner, name = model_id.split("/")
    kind = status.kind_of(tasks)
    # What the merge stores (schema.derive_columns); the rule is tested in test_status.py.
    answer, reason = status.decide(removed=removed_at is not None, badge=bool(api),
                                   listed=bool(listed), kind=kind)
    if removed_at:
        reason = f"it is gone from the hub (since {removed_at[:10]})"
    return {
        "model_id": model_id, "owner": owner, "name": name, "chinese_name": chinese_name,
        "description": description,
        "tasks": None if tasks is None else json.dumps(list(tasks)),
        "tags": None if tasks is None else json.dumps(list(tags)),
        "libraries": None if tasks is None else "[]",
        "license": None, "downloads": downloads, "likes": likes,
        "created_at": None, "updated_at": updated_at, "api_inference": api,
        "api_model_id": api_model_id if api_model_id is not None else (model_id if api else None),
        "in_inference_list": listed, "support_inference": None,
        "url": f"https://modelscope.cn/models/{model_id}",
        "first_seen_at": "2026-01-01T00:00:00+00:00", "last_seen_at": "2026-05-01T00:00:00+00:00",
        "removed_at": removed_at,
        "kind": kind, "status": answer, "status_reason": reason,
    }


MODELS = [
    model("Qwen/Qwen2.5-7B-Instruct", 5000, 300, api=1, listed=1, updated_at="2026-03-01T00:00:00+00:00",
          chinese_name="通义千问2.5-7B-Instruct", description="Qwen2.5 chat model"),
    model("Qwen/Qwen2.5-7B-Instruct-GGUF", 700, 10, updated_at="2026-02-01T00:00:00+00:00"),
    # Listed by /models without the hub's API badge: callable all the same.
    model("Qwen/Qwen2.5-72B-Instruct", 8000, 500, listed=1, updated_at="2026-01-15T00:00:00+00:00"),
    model("Qwen/Qwen-Image", 3000, 200, tasks=["text-to-image-synthesis"], api=1,
          updated_at="2026-04-01T00:00:00+00:00", chinese_name="通义千问-图像"),
    model("Qwen/QwQ-32B", 2000, 400, api=1, listed=1, updated_at="2026-05-01T00:00:00+00:00"),
    # An API chat model the /models list lacks.
    model("moonshotai/Kimi-K2-Instruct", 3000, 250, api=1, updated_at="2026-02-15T00:00:00+00:00"),
    # The callable ID differs from the hub ID.
    model("ZhipuAI/GLM-4.6", 4000, 150, api=1, listed=1, api_model_id="ZhipuAI/GLM-4.6-API",
          updated_at="2026-03-15T00:00:00+00:00"),
    model("black-forest-labs/FLUX.1-dev", 3000, None, tasks=["text-to-image-synthesis"], api=1,
          description="A 12B rectified flow transformer, \"dev\" weights", tags=["diffusers"]),
    model("Shanghai_AI_Laboratory/internlm2-chat-7b", None, None, tasks=["text-generation", "chat"],
          api=1, listed=1, updated_at="2026-01-20T00:00:00+00:00"),
    model("iic/speech_paraformer-large", 100000, 600, tasks=["auto-speech-recognition"],
          updated_at="2025-12-01T00:00:00+00:00"),
    model("OldOrg/Gone-Model", 9000, 50, tasks=["text-to-image-synthesis"], api=1,
          removed_at="2026-04-20T06:00:00+00:00", updated_at="2025-11-01T00:00:00+00:00"),
    # Named by /models, missing from the hub's list: the crawl stores a bare row.
    model("deepseek-ai/DeepSeek-V4-Flash", tasks=None, listed=1),
]

# The default is status ok (indexer/status.py): listed by /v1/models, or badged and
# not a chat model. Kimi (badge, chat, unlisted) is not-served; the removed model is out.
DEFAULT_IDS = [
    "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "ZhipuAI/GLM-4.6-API", "Qwen/Qwen-Image",
    "black-forest-labs/FLUX.1-dev", "Qwen/QwQ-32B", "Shanghai_AI_Laboratory/internlm2-chat-7b",
    "deepseek-ai/DeepSeek-V4-Flash",
]

EXPECTED = {
    "txt": "".join(i + "\n" for i in DEFAULT_IDS),
    "comma": ",".join(DEFAULT_IDS) + "\n",
    "csv": (
        "model_id,owner,kind,tasks,downloads,likes,status,url\n"
        'Qwen/Qwen2.5-72B-Instruct,Qwen,chat,"[""text-generation""]",8000,500,ok,'
        "https://modelscope.cn/models/Qwen/Qwen2.5-72B-Instruct\n"
        'Qwen/Qwen2.5-7B-Instruct,Qwen,chat,"[""text-generation""]",5000,300,ok,'
        "https://modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct\n"
        'ZhipuAI/GLM-4.6-API,ZhipuAI,chat,"[""text-generation""]",4000,150,ok,'
        "https://modelscope.cn/models/ZhipuAI/GLM-4.6\n"
        'Qwen/Qwen-Image,Qwen,image,"[""text-to-image-synthesis""]",3000,200,ok,'
        "https://modelscope.cn/models/Qwen/Qwen-Image\n"
        'black-forest-labs/FLUX.1-dev,black-forest-labs,image,"[""text-to-image-synthesis""]",3000,,ok,'
        "https://modelscope.cn/models/black-forest-labs/FLUX.1-dev\n"
        'Qwen/QwQ-32B,Qwen,chat,"[""text-generation""]",2000,400,ok,'
        "https://modelscope.cn/models/Qwen/QwQ-32B\n"
        'Shanghai_AI_Laboratory/internlm2-chat-7b,Shanghai_AI_Laboratory,chat,'
        '"[""text-generation"", ""chat""]",,,ok,'
        "https://modelscope.cn/models/Shanghai_AI_Laboratory/internlm2-chat-7b\n"
        "deepseek-ai/DeepSeek-V4-Flash,deepseek-ai,other,,,,ok,"
        "https://modelscope.cn/models/deepseek-ai/DeepSeek-V4-Flash\n"
    ),
}
JSON_OBJECTS = [
    '{"model_id": "Qwen/Qwen2.5-72B-Instruct", "owner": "Qwen", "kind": "chat", '
    '"tasks": ["text-generation"], "downloads": 8000, "likes": 500, "status": "ok", '
    '"url": "https://modelscope.cn/models/Qwen/Qwen2.5-72B-Instruct"}',
    '{"model_id": "Qwen/Qwen2.5-7B-Instruct", "owner": "Qwen", "kind": "chat", '
    '"tasks": ["text-generation"], "downloads": 5000, "likes": 300, "status": "ok", '
    '"url": "https://modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct"}',
    '{"model_id": "ZhipuAI/GLM-4.6-API", "owner": "ZhipuAI", "kind": "chat", '
    '"tasks": ["text-generation"], "downloads": 4000, "likes": 150, "status": "ok", '
    '"url": "https://modelscope.cn/models/ZhipuAI/GLM-4.6"}',
    '{"model_id": "Qwen/Qwen-Image", "owner": "Qwen", "kind": "image", '
    '"tasks": ["text-to-image-synthesis"], "downloads": 3000, "likes": 200, "status": "ok", '
    '"url": "https://modelscope.cn/models/Qwen/Qwen-Image"}',
    '{"model_id": "black-forest-labs/FLUX.1-dev", "owner": "black-forest-labs", "kind": "image", '
    '"tasks": ["text-to-image-synthesis"], "downloads": 3000, "likes": null, "status": "ok", '
    '"url": "https://modelscope.cn/models/black-forest-labs/FLUX.1-dev"}',
    '{"model_id": "Qwen/QwQ-32B", "owner": "Qwen", "kind": "chat", '
    '"tasks": ["text-generation"], "downloads": 2000, "likes": 400, "status": "ok", '
    '"url": "https://modelscope.cn/models/Qwen/QwQ-32B"}',
    '{"model_id": "Shanghai_AI_Laboratory/internlm2-chat-7b", "owner": "Shanghai_AI_Laboratory", '
    '"kind": "chat", "tasks": ["text-generation", "chat"], "downloads": null, "likes": null, '
    '"status": "ok", "url": "https://modelscope.cn/models/Shanghai_AI_Laboratory/internlm2-chat-7b"}',
    '{"model_id": "deepseek-ai/DeepSeek-V4-Flash", "owner": "deepseek-ai", "kind": "other", '
    '"tasks": [], "downloads": null, "likes": null, "status": "ok", '
    '"url": "https://modelscope.cn/models/deepseek-ai/DeepSeek-V4-Flash"}',
]
EXPECTED["json"] = "[\n" + ",\n".join(JSON_OBJECTS) + "\n]\n"
EXPECTED["jsonl"] = "".join(o + "\n" for o in JSON_OBJECTS)


def add_run(db, finished_at, status="complete", scope="api"):
    db.table("crawl_runs").insert({"scope": scope, "started_at": store.iso(finished_at),
                                   "finished_at": store.iso(finished_at), "status": status})


@pytest.fixture
def db_path(tmp_path):
    """A catalog with the models above and a complete crawl an hour old."""
    path = tmp_path / "catalog.db"
    db = store.open_db(path)
    db.table("models").insert_all(MODELS)
    add_run(db, store.utc_now() - timedelta(hours=1))
    db.conn.close()
    return path


@pytest.fixture
def db(db_path):
    db = store.open_db(db_path, create=False)
    yield db
    db.conn.close()


def run(command, db_path, *args, input=None):
    return CliRunner().invoke(command, ["--db", str(db_path), *args], input=input)


def lines(text):
    return text.splitlines()


# export: formats ----------------------------------------------------------


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_default_export_in_every_format(db_path, fmt):
    result = run(export_command, db_path, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED[fmt]
    assert result.stderr == ""


def test_default_format_is_one_id_a_line(db_path):
    assert run(export_command, db_path).stdout == EXPECTED["txt"]


def test_json_and_csv_outputs_parse_back(db_path):
    as_json = json.loads(run(export_command, db_path, "--format", "json").stdout)
    assert [row["model_id"] for row in as_json] == DEFAULT_IDS
    as_jsonl = [json.loads(line) for line in lines(run(export_command, db_path, "--format", "jsonl").stdout)]
    assert as_jsonl == as_json


@pytest.mark.parametrize("fmt, expected", [
    ("txt", ""), ("comma", ""), ("json", "[]\n"), ("jsonl", ""),
    ("csv", "model_id,owner,kind,tasks,downloads,likes,status,url\n"),
])
def test_an_empty_export_is_still_well_formed(db_path, fmt, expected):
    result = run(export_command, db_path, "--owner", "nobody", "--format", fmt)
    assert result.exit_code == 0
    assert result.stdout == expected


# export: filters and sorting -----------------------------------------------


@pytest.mark.parametrize("args, expected", [
    # --all: the whole catalog, removed and not-API models too; NULL downloads last.
    (["--all"], ["iic/speech_paraformer-large", "OldOrg/Gone-Model", "Qwen/Qwen2.5-72B-Instruct",
                 "Qwen/Qwen2.5-7B-Instruct", "ZhipuAI/GLM-4.6-API", "Qwen/Qwen-Image",
                 "black-forest-labs/FLUX.1-dev", "moonshotai/Kimi-K2-Instruct", "Qwen/QwQ-32B",
                 "Qwen/Qwen2.5-7B-Instruct-GGUF", "Shanghai_AI_Laboratory/internlm2-chat-7b",
                 "deepseek-ai/DeepSeek-V4-Flash"]),
    (["--all", "--limit", "3"], ["iic/speech_paraformer-large", "OldOrg/Gone-Model",
                                 "Qwen/Qwen2.5-72B-Instruct"]),
    # --listed: every ID /models names, with or without the hub's API badge.
    (["--listed"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "ZhipuAI/GLM-4.6-API",
                    "Qwen/QwQ-32B", "Shanghai_AI_Laboratory/internlm2-chat-7b",
                    "deepseek-ai/DeepSeek-V4-Flash"]),
    (["--listed", "--owner", "Qwen"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                                       "Qwen/QwQ-32B"]),
    # The removed image model is not exported by default.
    (["--task", "text-to-image-synthesis"], ["Qwen/Qwen-Image", "black-forest-labs/FLUX.1-dev"]),
    (["--task", "text-to-image-synthesis", "--task", "chat"],
     ["Qwen/Qwen-Image", "black-forest-labs/FLUX.1-dev", "Shanghai_AI_Laboratory/internlm2-chat-7b"]),
    (["--task", "x') or 1=1 --"], []),
    (["--owner", "Qwen"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen-Image",
                           "Qwen/QwQ-32B"]),
    (["--owner", "Qwen", "--owner", "ZhipuAI"],
     ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "ZhipuAI/GLM-4.6-API", "Qwen/Qwen-Image",
      "Qwen/QwQ-32B"]),
    (["--owner", "qwen"], []),  # owners are case-sensitive, as on the hub
    (["--min-downloads", "3000"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                                   "ZhipuAI/GLM-4.6-API", "Qwen/Qwen-Image",
                                   "black-forest-labs/FLUX.1-dev"]),
    (["--all", "--task", "text-generation", "--min-downloads", "1000", "--sort", "id"],
     ["Qwen/QwQ-32B", "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "ZhipuAI/GLM-4.6-API",
      "moonshotai/Kimi-K2-Instruct"]),
    (["--sort", "likes"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/QwQ-32B", "Qwen/Qwen2.5-7B-Instruct",
                           "Qwen/Qwen-Image", "ZhipuAI/GLM-4.6-API",
                           "Shanghai_AI_Laboratory/internlm2-chat-7b", "black-forest-labs/FLUX.1-dev",
                           "deepseek-ai/DeepSeek-V4-Flash"]),
    (["--sort", "updated"], ["Qwen/QwQ-32B", "Qwen/Qwen-Image", "ZhipuAI/GLM-4.6-API",
                             "Qwen/Qwen2.5-7B-Instruct", "Shanghai_AI_Laboratory/internlm2-chat-7b",
                             "Qwen/Qwen2.5-72B-Instruct", "black-forest-labs/FLUX.1-dev",
                             "deepseek-ai/DeepSeek-V4-Flash"]),
    (["--sort", "id"], ["Qwen/QwQ-32B", "Qwen/Qwen-Image", "Qwen/Qwen2.5-72B-Instruct",
                        "Qwen/Qwen2.5-7B-Instruct", "Shanghai_AI_Laboratory/internlm2-chat-7b",
                        "ZhipuAI/GLM-4.6-API", "black-forest-labs/FLUX.1-dev",
                        "deepseek-ai/DeepSeek-V4-Flash"]),
    (["--limit", "2"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]),
    (["--sort", "likes", "--limit", "3"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/QwQ-32B",
                                           "Qwen/Qwen2.5-7B-Instruct"]),
    # --status picks other statuses (issue 11): the badged chat model /v1/models lacks,
    # the removed one, and several at once.
    (["--status", "not-served"], ["moonshotai/Kimi-K2-Instruct"]),
    (["--status", "removed"], ["OldOrg/Gone-Model"]),
    (["--status", "not-api", "--status", "removed"],
     ["iic/speech_paraformer-large", "OldOrg/Gone-Model", "Qwen/Qwen2.5-7B-Instruct-GGUF"]),
    (["--status", "ok", "--task", "text-to-image-synthesis"],
     ["Qwen/Qwen-Image", "black-forest-labs/FLUX.1-dev"]),
])
def test_filters_and_sorts(db_path, args, expected):
    result = run(export_command, db_path, *args)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == expected


@pytest.mark.parametrize("args, expected", [
    # 3+ characters: the trigram FTS index, any case, names, description and tags.
    (["--search", "instruct"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]),
    (["--search", "12B RECTIFIED"], ["black-forest-labs/FLUX.1-dev"]),
    (["--search", "diffusers"], ["black-forest-labs/FLUX.1-dev"]),
    (["--search", '"dev"'], ["black-forest-labs/FLUX.1-dev"]),  # quotes are text, not syntax
    (["--search", "GLM-4.6 OR qwen"], []),  # so are operators
    (["--all", "--search", "paraformer"], ["iic/speech_paraformer-large"]),
    # Shorter: LIKE on the ID and names.
    (["--search", "千问"], ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen-Image"]),
    (["--search", "Qw"], ["Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen-Image",
                          "Qwen/QwQ-32B"]),
    (["--search", "%"], []),
    (["--search", "_"], ["Shanghai_AI_Laboratory/internlm2-chat-7b"]),
    (["--search", "  "], DEFAULT_IDS),
])
def test_search(db_path, args, expected):
    result = run(export_command, db_path, *args)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == expected


def test_rows_are_streamed_from_a_cursor(db):
    rows = export.iter_export_rows(db, export.Filters(all_models=True))
    assert next(rows)["model_id"] == "iic/speech_paraformer-large"
    # The query is already running, so it cannot have been read into a list first.
    assert iter(rows) is rows
    rows.close()


# export: --output ----------------------------------------------------------


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_output_writes_the_file_and_reports_on_stderr(db_path, out_dir):
    target = out_dir / "ids.txt"
    result = run(export_command, db_path, "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"exported 8 models to {target}\n"
    assert target.read_text(encoding="utf-8") == EXPECTED["txt"]
    assert os.listdir(out_dir) == ["ids.txt"]


def test_a_failed_export_leaves_no_file(db, out_dir):
    target = out_dir / "ids.csv"

    def rows():
        yield from list(export.iter_export_rows(db))[:2]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        export.export_to_file(rows(), "csv", target)
    assert os.listdir(out_dir) == []


def test_a_failed_export_leaves_an_existing_file_untouched(db_path, out_dir, monkeypatch):
    target = out_dir / "ids.txt"
    target.write_text("the old list\n", encoding="utf-8")

    real_rows = export.iter_export_rows

    def rows_then_error(db, filters):
        yield from list(real_rows(db, filters))[:2]
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(export, "iter_export_rows", rows_then_error)
    result = run(export_command, db_path, "--output", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {db_path}: disk I/O error\n"
    assert target.read_text(encoding="utf-8") == "the old list\n"
    assert os.listdir(out_dir) == ["ids.txt"]


def test_output_into_a_missing_folder_is_a_one_line_error(db_path, tmp_path):
    target = tmp_path / "no" / "ids.txt"
    result = run(export_command, db_path, "--output", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write {target}: No such file or directory\n"


def test_output_dash_means_stdout(db_path):
    assert run(export_command, db_path, "--output", "-").stdout == EXPECTED["txt"]


# Freshness ----------------------------------------------------------------


@pytest.fixture
def empty_db(tmp_path):
    db = store.open_db(tmp_path / "empty.db")
    yield db
    db.conn.close()


def test_a_fresh_catalog_has_no_warning(empty_db):
    add_run(empty_db, NOW - timedelta(days=1, hours=23))
    assert export.freshness_warning(empty_db, NOW) is None


def test_a_catalog_never_crawled_completely_warns(empty_db):
    add_run(empty_db, NOW - timedelta(hours=1), status="incomplete")
    add_run(empty_db, NOW - timedelta(hours=2), status="failed")
    assert export.freshness_warning(empty_db, NOW) == (
        "this catalog has never had a complete crawl: run `indexer crawl` to refresh it")


def test_a_stale_catalog_warns_with_the_date(empty_db):
    add_run(empty_db, NOW - timedelta(days=9), scope="full")
    add_run(empty_db, NOW - timedelta(days=3, hours=2))
    add_run(empty_db, NOW - timedelta(hours=1), status="failed")
    assert export.freshness_warning(empty_db, NOW) == (
        "the newest complete crawl finished on 2026-05-07 (3 days ago): "
        "run `indexer crawl` to refresh the catalog")


def test_the_sample_catalog_warns(empty_db):
    add_run(empty_db, NOW)
    store.set_info(empty_db.conn, "sample", "1")
    assert export.freshness_warning(empty_db, NOW) == (
        "this catalog holds the bundled sample, not a crawl: "
        "its IDs are examples; run `indexer crawl` for real ones")


def test_a_stale_catalog_still_exports_and_warns_on_stderr(db_path):
    db = store.open_db(db_path, create=False)
    db.conn.execute("delete from crawl_runs")
    finished = store.utc_now() - timedelta(days=3)
    add_run(db, finished)
    db.conn.close()
    result = run(export_command, db_path, "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout == EXPECTED["csv"]
    assert result.stderr == (f"warning: the newest complete crawl finished on {finished.date()} "
                             "(3 days ago): run `indexer crawl` to refresh the catalog\n")


# Opening the catalog -------------------------------------------------------


@pytest.mark.parametrize("command, args", [(export_command, []), (check_command, ["Qwen/QwQ-32B"])])
def test_a_missing_catalog_is_a_one_line_error(tmp_path, command, args):
    path = tmp_path / "nothing.db"
    result = run(command, path, *args)
    assert result.exit_code == 1
    assert result.stderr == f"Error: no catalog at {path}: run `indexer crawl --db {path}` first\n"
    assert not path.exists()


@pytest.mark.parametrize("command, args", [(export_command, []), (check_command, ["Qwen/QwQ-32B"])])
def test_a_database_that_is_not_a_catalog_is_a_one_line_error(tmp_path, command, args):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("create table things (x)")
    conn.close()
    result = run(command, path, *args)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is not an indexer catalog (it has no `models` table)\n"


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not SQLite\n" * 100)
    result = run(export_command, path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path} is not a usable SQLite catalog")
    assert result.stderr.count("\n") == 1


# check ---------------------------------------------------------------------


@pytest.mark.parametrize("row, expected", [
    # classify reads what the merge stored (the rule itself is tested in test_status.py).
    (None, ("unknown", None)),
    ({"status": None, "status_reason": None}, ("unknown", None)),  # never derived
    ({"status": "ok", "status_reason": status.REASONS["listed"]}, ("ok", None)),
    ({"status": "not-served", "status_reason": status.REASONS["unlisted"]},
     ("not-served", "it has the API-Inference badge, but /v1/models lacks this chat model")),
    ({"status": "not-api", "status_reason": status.REASONS["not-api"]},
     ("not-api", "it is not served by API-Inference")),
    ({"status": "removed", "status_reason": "it is gone from the hub (since 2026-04-20)"},
     ("removed", "it is gone from the hub (since 2026-04-20)")),
])
def test_classify(row, expected):
    assert check.classify(row) == expected


CHECK_TEXT = """\
ok         Qwen/Qwen2.5-7B-Instruct
ok         Qwen/Qwen-Image
ok         Qwen/Qwen2.5-72B-Instruct
ok         deepseek-ai/DeepSeek-V4-Flash
ok         ZhipuAI/GLM-4.6-API
ok         ZhipuAI/GLM-4.6  call it as ZhipuAI/GLM-4.6-API
not-served moonshotai/Kimi-K2-Instruct  it has the API-Inference badge, but /v1/models lacks this chat model
not-api    iic/speech_paraformer-large  it is not served by API-Inference
unknown    qwen/qwen2.5-7b-instruct  did you mean: Qwen/Qwen2.5-7B-Instruct, Qwen/Qwen2.5-72B-Instruct, Qwen/Qwen2.5-7B-Instruct-GGUF
removed    OldOrg/Gone-Model  it is gone from the hub (since 2026-04-20)
unknown    nobody/zzz-nothing
"""
CHECK_IDS = [line[11:].split("  ")[0] for line in CHECK_TEXT.splitlines()]


def test_check_reports_each_id_on_an_aligned_line(db_path):
    result = run(check_command, db_path, *CHECK_IDS)
    assert result.stdout == CHECK_TEXT
    assert result.stderr == ""
    assert result.exit_code == 1


def test_check_json(db_path):
    result = run(check_command, db_path, "--format", "json", "ZhipuAI/GLM-4.6-API", "Qwen/qwq-32b",
                 "moonshotai/Kimi-K2-Instruct")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {"id": "ZhipuAI/GLM-4.6-API", "status": "ok", "model_id": "ZhipuAI/GLM-4.6", "note": None,
         "suggestions": []},
        {"id": "Qwen/qwq-32b", "status": "unknown", "model_id": None, "note": None,
         "suggestions": ["Qwen/QwQ-32B"]},
        {"id": "moonshotai/Kimi-K2-Instruct", "status": "not-served",
         "model_id": "moonshotai/Kimi-K2-Instruct",
         "note": "it has the API-Inference badge, but /v1/models lacks this chat model",
         "suggestions": []},
    ]


@pytest.mark.parametrize("ids, code", [
    (["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen-Image", "Qwen/Qwen2.5-72B-Instruct"], 0),
    (["Qwen/Qwen2.5-7B-Instruct", "iic/speech_paraformer-large"], 1),
    (["moonshotai/Kimi-K2-Instruct"], 1),
    (["Qwen/qwen-image"], 1),
])
def test_check_exits_0_only_when_every_id_is_ok(db_path, ids, code):
    assert run(check_command, db_path, *ids).exit_code == code


def test_check_reads_ids_from_stdin(db_path):
    result = run(check_command, db_path, "-", "Qwen/QwQ-32B",
                 input="Qwen/Qwen2.5-7B-Instruct\n\n  Qwen/Qwen-Image  \n")
    assert result.stdout == ("ok         Qwen/Qwen2.5-7B-Instruct\n"
                             "ok         Qwen/Qwen-Image\n"
                             "ok         Qwen/QwQ-32B\n")
    assert result.exit_code == 0


def test_an_export_pipes_into_check(db_path):
    listed = run(export_command, db_path, "--listed", "--format", "comma").stdout
    result = run(check_command, db_path, "-", input=listed)
    assert lines(result.stdout) == [f"ok         {i}" for i in listed.strip().split(",")]
    assert result.exit_code == 0
    # The default export is the IDs that will work, so check agrees with every one
    # (issue 11: it used to hold an API chat model /v1/models lacks).
    default = run(export_command, db_path).stdout
    result = run(check_command, db_path, "-", input=default)
    assert lines(result.stdout) == [f"ok         {i}" for i in DEFAULT_IDS]
    assert result.exit_code == 0
    # --all holds the others, and check says so.
    assert run(check_command, db_path, "-", input=run(export_command, db_path, "--all").stdout
               ).exit_code == 1


@pytest.mark.parametrize("args, stdin", [([], None), (["-"], ""), (["-"], " \n\n")])
def test_check_without_ids_is_a_usage_error(db_path, args, stdin):
    result = run(check_command, db_path, *args, input=stdin)
    assert result.exit_code == 2


def test_check_warns_on_a_stale_catalog(db_path):
    db = store.open_db(db_path, create=False)
    db.conn.execute("delete from crawl_runs")
    db.conn.close()
    result = run(check_command, db_path, "Qwen/QwQ-32B")
    assert result.stdout == "ok         Qwen/QwQ-32B\n"
    assert result.stderr == ("warning: this catalog has never had a complete crawl: "
                             "run `indexer crawl` to refresh it\n")
    assert result.exit_code == 0


# Suggestions ---------------------------------------------------------------


@pytest.mark.parametrize("given, expected", [
    # The right casing comes first, however similar the others are.
    ("qwen/qwen-image", ["Qwen/Qwen-Image"]),
    ("QWEN/QWQ-32B", ["Qwen/QwQ-32B"]),
    # A typo late in the name, under the right owner in any casing.
    ("Qwen/Qwen2.5-7B-Instrcut", ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct",
                                  "Qwen/Qwen2.5-7B-Instruct-GGUF"]),
    ("moonshotai/Kimi-K2-Instrcut", ["moonshotai/Kimi-K2-Instruct"]),
    # The wrong owner, or none at all.
    ("moonshot/Kimi-K2-Instruct", ["moonshotai/Kimi-K2-Instruct"]),
    ("Kimi-K2-Instruct", ["moonshotai/Kimi-K2-Instruct"]),
    ("zhipu/glm-4.6", ["ZhipuAI/GLM-4.6"]),
    # Removed models are never suggested, and nothing close means nothing.
    ("OldOrg/Gone-Model", []),
    ("nobody/zzz-nothing", []),
    ("", []),
])
def test_suggest(db, given, expected):
    assert check.suggest(db, given) == expected


def test_suggest_limit(db):
    assert check.suggest(db, "qwen/qwen2.5-7b-instruct", limit=1) == ["Qwen/Qwen2.5-7B-Instruct"]


def test_the_right_casing_beats_a_more_downloaded_reupload(db):
    db.table("models").insert(model("AI-ModelScope/Qwen-Image", 90000, tasks=["text-to-image-synthesis"]))
    assert check.suggest(db, "qwen/qwen-image") == ["Qwen/Qwen-Image", "AI-ModelScope/Qwen-Image"]
