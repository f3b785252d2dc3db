"""Hostile input to `check`, CSV formula cells, display escaping and odd counts (issue 14)."""

import os
import random
import re
import subprocess
import sys
import time

import pytest

from indexer import check, export, modelid, parse, site
from indexer.cli_export import check_command, export_command
from tests.helpers import SAMPLE_CHECK_OK
from tests.test_export import db, db_path, model, run  # noqa: F401 - fixtures and helpers

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "catalog.db")


def cli(*args, input=b"", env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LANG", "LC_ALL")}
    env.update({"LC_ALL": "C.UTF-8", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "indexer", *args], input=input, env=env,
                          capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("env_extra", [{}, {"PYTHONIOENCODING": "utf-8:strict"}])
def test_check_answers_every_line_of_garbage_without_a_traceback(env_extra):
    # 100,000 lines: random bytes, NUL in a token, real IDs (issue 14).
    import sqlite3
    conn = sqlite3.connect(SAMPLE)
    real = [r[0] for r in conn.execute("select model_id from models where status = 'ok' order by model_id")]
    conn.close()
    ok_lines = {line.split()[1]: line for line in SAMPLE_CHECK_OK}
    assert sorted(ok_lines) == real
    rng = random.Random(14)
    lines, expected = [], []
    for i in range(100_000):
        kind = i % 3
        if kind == 0:
            line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif kind == 1:
            line = b"Qwen/Qwen\x002.5-" + str(i).encode()
        else:
            line = rng.choice(real).encode()
        line = line.replace(b"\n", b"").replace(b"\r", b"")
        lines.append(line)
        text = line.decode("utf-8", "surrogateescape")
        expected.extend(part for part in re.split(r"[,\s]+", text) if part)
    started = time.monotonic()
    result = cli("check", "--db", SAMPLE, "-", input=b"\n".join(lines) + b"\n", env_extra=env_extra)
    elapsed = time.monotonic() - started
    assert b"Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1
    out = result.stdout.decode("utf-8")
    answers = out.splitlines()
    assert len(answers) == len(expected)
    for answer, given in zip(answers, expected):
        if given in real:
            assert answer == ok_lines[given]
        else:
            assert answer.startswith("unknown    ")
        # Nothing a terminal would act on, and no bidi control, is echoed raw.
        assert not any(modelid._hidden(c) for c in answer), answer
    assert any("not a model ID: it holds a control character" in a for a in answers)
    assert any("not a model ID: it is not valid UTF-8" in a for a in answers)
    assert elapsed < 30


def test_a_nul_in_a_token_is_not_a_model_id_and_the_rest_is_answered(db_path):  # noqa: F811
    result = run(check_command, db_path, "-", input="Qwen/Qwen\x002.5\nQwen/QwQ-32B\n")
    assert result.stdout == ("unknown    Qwen/Qwen<U+0000>2.5  not a model ID: it holds a control character\n"
                             "ok         Qwen/QwQ-32B\n")
    assert result.exit_code == 1


def test_bidi_characters_are_shown_in_check_text_and_raw_in_json(db, db_path):  # noqa: F811
    db.table("models").insert(model("LLM-Research/invoice-\u202egpj.exe", 5, api=1, listed=1))
    result = run(check_command, db_path, "LLM-Research/invoice-\u202egpj.exe")
    assert result.stdout == "ok         LLM-Research/invoice-<U+202E>gpj.exe\n"
    result = run(check_command, db_path, "--format", "json", "LLM-Research/invoice-\u202egpj.exe")
    assert "LLM-Research/invoice-\u202egpj.exe" in result.stdout


def test_visible():
    assert modelid.visible("a/b") == "a/b"
    assert modelid.visible("a/\u202eb\u200b\x00\x1b[31m\uffff\ufffe\ud800\n") == \
        "a/<U+202E>b<U+200B><U+0000><U+001B>[31m<U+FFFF><U+FFFE><U+D800><U+000A>"
    assert modelid.xml_safe("one\ttwo\nthree\x07") == "one\ttwo\nthree<U+0007>"
    assert modelid.visible("通义千问/Qwen") == "通义千问/Qwen"


def test_suggestions_go_to_the_first_unknown_ids_only(db):  # noqa: F811
    results = check.check_ids(db, ["qwen/qwq-32b", "qwen/qwq-32b", "QWEN/QWQ-32B"], suggest_for=1)
    assert results == [
        {"id": "qwen/qwq-32b", "status": "unknown", "model_id": None, "note": None,
         "suggestions": ["Qwen/QwQ-32B"]},
        {"id": "qwen/qwq-32b", "status": "unknown", "model_id": None, "note": None,
         "suggestions": ["Qwen/QwQ-32B"]},
        {"id": "QWEN/QWQ-32B", "status": "unknown", "model_id": None,
         "note": "no suggestions past the first 1 unknown IDs", "suggestions": []},
    ]
    assert check.check_ids(db, ["qwen/qwq-32b"], suggest_for=0)[0]["suggestions"] == []


# CSV formula cells ----------------------------------------------------------

FORMULA_IDS = ["=cmd/calc", "+evil/x", "-minus/y", "@at/z", "\tTab/t", "\rCr/c"]


def test_csv_cells_that_spreadsheets_run_get_a_quote(db, db_path):  # noqa: F811
    for model_id in FORMULA_IDS:
        db.table("models").insert(model(model_id, 10**9, api=1, listed=1))
    out = run(export_command, db_path, "--format", "csv", "--limit", "6").stdout
    assert out.split("\n")[:7] == [
        "model_id,owner,kind,tasks,downloads,likes,status,url",
        "'\tTab/t,'\tTab,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/\tTab/t",
        "'\rCr/c,'\rCr,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/\rCr/c",
        "'+evil/x,'+evil,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/+evil/x",
        "'-minus/y,'-minus,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/-minus/y",
        "'=cmd/calc,'=cmd,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/=cmd/calc",
        "'@at/z,'@at,chat,\"[\"\"text-generation\"\"]\",1000000000,,ok,https://modelscope.cn/models/@at/z",
    ]
    raw = run(export_command, db_path, "--format", "csv", "--limit", "6", "--raw-csv").stdout
    assert all(f"\n{model_id},{model_id.split('/')[0]}," in raw for model_id in FORMULA_IDS)
    assert "'" not in raw
    # Plain ID lists are for scripts: raw.
    txt = run(export_command, db_path, "--limit", "6", "--sort", "id").stdout
    assert txt.startswith("\tTab/t\n\rCr/c\n+evil/x\n")


def test_csv_cell():
    assert [export.csv_cell(v) for v in ["=1+1", "ok", -5, None, "-", ""]] == \
        ["'=1+1", "ok", -5, "", "'-", ""]
    assert export.csv_cell("=1+1", raw=True) == "=1+1"


# Counts ---------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("12,345", (12345, None)), ("1,234,567", (1234567, None)), (12, (12, None)), ("7", (7, None)),
    (-1, (None, "negative")), ("-3", (None, "negative")), ("-1,000", (None, "negative")),
    (2**63 - 1, (2**63 - 1, None)), (2**63, (None, "out_of_range")), ("1e30", (None, "out_of_range")),
    ("12,34", (None, None)), ("lots", (None, None)), (None, (None, None)), (True, (None, None)),
])
def test_parse_count(value, expected):
    assert parse.parse_count(value) == expected


def test_odd_counts_are_stored_null_and_named():
    item = {"Path": "o", "Name": "n", "Downloads": "-5", "Stars": 10**30}
    row = parse.parse_model(item)
    assert (row["downloads"], row["likes"]) == (None, None)
    assert parse.count_warnings(item) == ["negative_downloads", "out_of_range_stars"]
    assert parse.parse_model({"Path": "o", "Name": "n", "Downloads": "12,345"})["downloads"] == 12345


def test_a_huge_name_has_its_own_skip_reason():
    rows, skipped = parse.parse_models([{"Path": "o", "Name": "x" * 100_000},
                                        {"Path": "p" * 301, "Name": "n"}, {"Path": "o"}])
    assert (rows, dict(skipped)) == ([], {"long_name": 1, "long_path": 1, "missing_name": 1})


def test_a_model_that_left_the_api_set_has_no_callable_id(tmp_path, catalog, make_hub):
    # Issue 15: api_model_id outlives the model's API badge in its row (an API
    # crawl never restages a model that left the set), so no surface may read a
    # non-null api_model_id as "callable".
    from indexer import store
    from tests.helpers import models, run_crawl

    catalog.update("Qwen/Qwen-Image", BackendSupport={"model_id": "Qwen/qwen-image-callable"})
    hub = make_hub(catalog)
    path = tmp_path / "catalog.db"
    assert run_crawl(path, hub).status == "complete"
    catalog.set_api("Qwen/Qwen-Image", False)
    assert [run_crawl(path, hub).status for _ in range(2)] == ["complete", "complete"]
    row = models(path)["Qwen/Qwen-Image"]
    assert (row["api_inference"], row["in_inference_list"], row["api_model_id"]) == (
        0, 0, "Qwen/qwen-image-callable")
    catalog_db = store.open_db(path, create=False)
    try:
        assert check.check_ids(catalog_db, ["Qwen/Qwen-Image", "Qwen/qwen-image-callable"]) == [
            {"id": "Qwen/Qwen-Image", "status": "not-api", "model_id": "Qwen/Qwen-Image",
             "note": "it is not served by API-Inference", "suggestions": []},
            {"id": "Qwen/qwen-image-callable", "status": "unknown", "model_id": None,
             "note": None, "suggestions": check.suggest(catalog_db, "Qwen/qwen-image-callable")},
        ]
        exported = [r for r in export.iter_export_rows(catalog_db, export.Filters(all_models=True))
                    if r["url"] == row["url"]]
        assert [r["model_id"] for r in exported] == ["Qwen/Qwen-Image"]
    finally:
        catalog_db.conn.close()
    # The site's check_model_id names no callable ID other than the model's own.
    from tests.test_site import get_json, q
    answer = get_json(site.build_datasette(path),
                      f"/catalog/check_model_id.json?{q(id='Qwen/Qwen-Image')}&_shape=array")
    assert [(r["match"], r["model_id"], r["callable_id"], r["status"]) for r in answer] == [
        ("exact", "Qwen/Qwen-Image", None, "not-api")]
