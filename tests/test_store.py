"""The catalog schema and its migrations (indexer.schema), and opening catalogs (indexer.store)."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from indexer import schema, stage, store
from indexer.cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
OLD_CATALOGS = ("catalog-v2.db", "catalog-v2-pre07c010f.db")
DATA_TABLES = ("models", "model_events", "model_stats", "model_tracking", "crawl_runs",
               "catalog_info", "facet_counts")


def master(conn):
    """Every schema object as (type, name, tbl_name, sql with whitespace collapsed)."""
    return sorted((t, n, tn, re.sub(r"\s+", " ", sql or "").strip()) for t, n, tn, sql in conn.execute(
        "select type, name, tbl_name, sql from sqlite_master"))


def table_rows(conn, table):
    return sorted(conn.execute(f"select * from {table}").fetchall(), key=repr)


def search(conn, text):
    return [row[0] for row in conn.execute(
        "select model_id from models where rowid in (select rowid from models_fts where models_fts match ?) "
        "order by model_id", [f'"{text}"'])]


def fresh_copy(source, path):
    """A catalog born at the current version holding `source`'s rows (triggers fill FTS and facets)."""
    db = store.open_db(path)
    conn = db.conn
    conn.execute("attach database ? as old", [str(source)])
    with store.transaction(db):
        for table in DATA_TABLES:
            if table != "facet_counts":
                columns = ", ".join(r[1] for r in conn.execute(f"pragma old.table_info({table})"))
                conn.execute(f"insert into {table} ({columns}) select {columns} from old.{table}")
        # What migration 4 stores from the old columns, the merge stores for a new row.
        schema.derive_columns(conn)
        conn.execute("update model_tracking set status = (select m.status from models m "
                     "where m.model_id = model_tracking.model_id)")
    conn.execute("detach database old")
    return db


@pytest.mark.parametrize("name", OLD_CATALOGS)
def test_upgrading_a_release_catalog_gives_the_schema_and_rows_of_a_fresh_one(tmp_path, name):
    old = tmp_path / name
    shutil.copy(FIXTURES / name, old)
    before = sqlite3.connect(old)
    assert before.execute("pragma user_version").fetchone() == (2,)
    old_rows = {t: table_rows(before, t) for t in DATA_TABLES}
    old_columns = {t: [r[1] for r in before.execute(f"pragma table_info({t})")] for t in DATA_TABLES}
    before.close()

    upgraded = store.open_db(old)
    fresh = fresh_copy(FIXTURES / name, tmp_path / "fresh.db")
    assert master(upgraded.conn) == master(fresh.conn)
    assert schema.schema_version(upgraded) == schema.schema_version(fresh) == schema.SCHEMA_VERSION
    for table in DATA_TABLES:
        assert table_rows(upgraded.conn, table) == table_rows(fresh.conn, table)
        # The old columns keep the old values; migration 4 only appends columns, and
        # migration 6 only adds the plain columns' counts to the arrays' in facet_counts.
        columns = ", ".join(old_columns[table])
        only_old = (" where facet in " + repr(schema.FACET_ARRAYS)) if table == "facet_counts" else ""
        assert sorted(upgraded.conn.execute(f"select {columns} from {table}{only_old}").fetchall(),
                      key=repr) == old_rows[table]
    # Migration 4 stored the rule's answer on every model and the tracking row.
    assert upgraded.conn.execute(
        "select count(*) from models m join model_tracking t using (model_id) "
        "where m.status is null or m.kind is null or t.status is not m.status").fetchone() == (0,)
    for text in ("qwen", "Qwen", "chat", "模型"):
        assert search(upgraded.conn, text) == search(fresh.conn, text)
    assert search(upgraded.conn, "qwen")  # the rebuilt index finds something at all
    upgraded.conn.execute("insert into models_fts(models_fts) values ('integrity-check')")


def test_migration_9_drops_name_from_the_index_and_finds_the_same_models(tmp_path):
    path = tmp_path / "v8.db"
    shutil.copy(FIXTURES / "catalog-v2.db", path)
    store.open_db(path).conn.close()
    conn = sqlite3.connect(path)
    # Back to version 8's index, which held `name` as well.
    for trigger in schema.FTS_TRIGGERS:
        conn.execute(f"drop trigger {trigger}")
    conn.execute("drop table models_fts")
    conn.execute("""create virtual table models_fts using fts5(model_id, name, chinese_name, tags,
                    content="models", content_rowid="rowid", tokenize="trigram", columnsize=0)""")
    conn.execute("insert into models_fts(models_fts) values ('rebuild')")
    conn.execute("pragma user_version = 8")
    names = [row[0] for row in conn.execute("select name from models order by model_id limit 20")]
    found_before = {text: search(conn, text) for text in names + ["qwen", "模型"]}
    conn.commit()
    conn.close()

    upgraded = store.open_db(path)
    assert [r[1] for r in upgraded.conn.execute("pragma table_info(models_fts)")] == \
        ["model_id", "chinese_name", "tags"]
    assert {text: search(upgraded.conn, text) for text in found_before} == found_before
    assert all(found_before[name] for name in names)
    upgraded.conn.execute("insert into models_fts(models_fts) values ('integrity-check')")


def test_the_old_catalog_really_has_the_old_objects():
    conn = sqlite3.connect(FIXTURES / "catalog-v2-pre07c010f.db")
    sql = dict(conn.execute("select name, sql from sqlite_master where name in "
                            "('model_tracking_api', 'idx_model_stats_day', 'models_fts')"))
    conn.close()
    assert sql["model_tracking_api"] == "CREATE INDEX model_tracking_api on model_tracking(api)"
    assert "idx_model_stats_day" in sql
    assert "columnsize" not in sql["models_fts"]


def test_shaping_twice_changes_nothing(db):
    shape = master(db.conn)
    schema.ensure_db_shape(db)
    assert master(db.conn) == shape
    assert schema.schema_version(db) == schema.SCHEMA_VERSION


def test_a_fresh_catalog_is_born_at_the_newest_version(tmp_path):
    db = store.open_db(tmp_path / "new.db")
    assert db.conn.execute("pragma user_version").fetchone() == (schema.SCHEMA_VERSION,)
    assert db.journal_mode == "wal"
    assert [v for v, _ in schema.MIGRATIONS] == list(range(2, schema.SCHEMA_VERSION + 1))


def test_a_newer_catalog_is_refused_with_one_line(tmp_path):
    path = tmp_path / "future.db"
    store.open_db(path).conn.execute(f"pragma user_version = {schema.SCHEMA_VERSION + 1}")
    message = (f"{path} has schema version {schema.SCHEMA_VERSION + 1}, newer than this indexer "
               f"knows ({schema.SCHEMA_VERSION}): upgrade indexer to open it")
    for create in (True, False):
        with pytest.raises(store.CatalogError) as error:
            store.open_db(path, create=create)
        assert str(error.value) == message
    result = CliRunner().invoke(cli, ["changes", "--db", str(path)])
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")


def test_a_failed_migration_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "catalog-v2-pre07c010f.db", path)
    conn = sqlite3.connect(path)
    shape = master(conn)
    conn.close()

    def broken(db):
        db.conn.execute("drop index model_tracking_api")
        db.table("half").create({"id": int}, pk="id")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", ((2, schema._baseline), (3, broken)))
    with pytest.raises(store.CatalogError, match="disk I/O error"):
        store.open_db(path)
    conn = sqlite3.connect(path)
    assert master(conn) == shape
    assert conn.execute("pragma user_version").fetchone() == (2,)
    conn.close()


def test_a_failed_stage_ends_its_transaction(db):
    # The stage runs without a rollback journal (stage.py), so a failed page is not
    # undone there; the crawl fails and drops the stage. What must hold is that the
    # error reaches the caller and no transaction is left open on the connection.
    stage.attach_stage(db)
    row = {c: None for c in stage.STAGE_COLUMNS} | {"model_id": "a/b", "tasks": [], "tags": [],
                                                    "libraries": []}
    assert stage.stage_rows(db, [row], api=True) == (1, 1)
    bad = row | {"model_id": "c/d", "downloads": object()}  # not a type sqlite3 can bind
    with pytest.raises(sqlite3.Error):
        stage.stage_rows(db, [bad], api=True)
    assert not db.conn.in_transaction
    assert stage.stage_rows(db, [row | {"model_id": "e/f"}]) == (1, 1)
    assert [stage.stage_count(db, t) for t in ("items", "api", "slice")] == [2, 1, 2]
    stage.detach_stage(db)


def test_an_in_memory_catalog_has_every_table(db):
    assert set(DATA_TABLES) <= set(db.table_names())
    assert isinstance(db, sqlite_utils.Database)
