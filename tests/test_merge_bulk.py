"""A first crawl builds the full-text index and facet counts in one pass; later crawls keep them by triggers (issue 16)."""

import sqlite3

import pytest

from indexer import schema, store
from tests.fixtures.catalog import LISTED_MISSING_ID, build_catalog
from tests.helpers import run_crawl


def fts_instances(conn):
    """Every (term, rowid, column, offset) in models_fts: the index's whole content."""
    conn.execute("create virtual table if not exists temp.fts_vocab using fts5vocab(main, models_fts, instance)")
    return conn.execute("select term, doc, col, offset from temp.fts_vocab order by 1, 2, 3, 4").fetchall()


def facet_counts(conn):
    return conn.execute("select facet, value, count from facet_counts order by facet, value").fetchall()


def master(conn):
    return conn.execute("select type, name, tbl_name, sql from sqlite_master "
                        "where name not like 'sqlite_stat%' order by type, name").fetchall()


def search(conn, text):
    return conn.execute("select m.model_id from models_fts f join models m on m.rowid = f.rowid "
                        "where models_fts match ? order by m.model_id", [f'"{text}"']).fetchall()


def row_by_row(source, path):
    """The same models rows put in one at a time, so the triggers build FTS and facet_counts."""
    db = store.open_db(path)
    conn = db.conn
    conn.execute("attach database ? as src", [str(source)])
    with store.transaction(db):
        for (rowid,) in conn.execute("select rowid from src.models order by rowid").fetchall():
            conn.execute("insert into models select * from src.models where rowid = ?", [rowid])
    conn.execute("detach database src")
    return conn


def assert_same_indexes(conn, reference):
    assert conn.execute("select rowid, * from models order by rowid").fetchall() == \
        reference.execute("select rowid, * from models order by rowid").fetchall()
    assert fts_instances(conn) == fts_instances(reference)
    assert facet_counts(conn) == facet_counts(reference)
    assert facet_groups(conn) == facet_groups(reference)
    assert_groups_exact(conn)
    for text in ("qwen", "Qwen2.5", "通义千问", "chat", "Kimi-K2"):
        assert search(conn, text) == search(reference, text)
    conn.execute("insert into models_fts(models_fts) values ('integrity-check')")


def facet_groups(conn):
    """Each model's rowid with the facet values its model_facet_groups number stands for."""
    cols = ", ".join(f"g.{c}" for c in schema.GROUP_COLUMNS)
    return conn.execute(f"""select x.id, {cols} from model_facet_groups x
                            join facet_groups g using (grp) order by x.id""").fetchall()


def assert_groups_exact(conn):
    cols = ", ".join(schema.GROUP_COLUMNS)
    assert facet_groups(conn) == conn.execute(
        f"select rowid, {cols} from models order by rowid").fetchall()


def rebuilt_copy(conn, path):
    """A copy of the catalog with FTS and facet_counts rebuilt from its rows from scratch."""
    conn.execute("vacuum into ?", [str(path)])
    copy = sqlite3.connect(path)
    copy.execute("insert into models_fts(models_fts) values ('rebuild')")
    schema.rebuild_facet_counts(copy)
    copy.commit()
    return copy


@pytest.fixture
def first_crawl(tmp_path, make_hub):
    hub = make_hub(build_catalog(300, seed=5))
    db_path = tmp_path / "catalog.db"
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    return hub, db_path


def test_a_first_crawl_indexes_exactly_as_row_by_row_triggers_do(tmp_path, first_crawl):
    _, db_path = first_crawl
    conn = sqlite3.connect(db_path)
    reference = row_by_row(db_path, tmp_path / "reference.db")
    assert conn.execute("select count(*) from models").fetchone()[0] > 250
    assert facet_counts(conn) and fts_instances(conn)
    assert_same_indexes(conn, reference)
    # The triggers and indexes dropped for the load came back exactly as they were.
    assert master(conn) == master(reference)


def test_a_first_crawl_tracks_every_model_with_the_status_it_stored(first_crawl):
    # The presence rows of an empty catalog go in after the status is derived, with it.
    _, db_path = first_crawl
    conn = sqlite3.connect(db_path)
    tracked = conn.execute("""select model_id, present, missing, license, tasks, chinese_name, status,
                                     coalesce(api, 0), coalesce(listed, 0), api_missing, listed_missing
                              from model_tracking order by model_id""").fetchall()
    assert len(tracked) > 250
    # Every model the hub listed is present; the ID only /v1/models lists is not (§2.6).
    assert tracked == conn.execute("""select model_id, iif(model_id = ?, null, 1), 0, license, tasks,
                                             chinese_name, status, api_inference, in_inference_list, 0, 0
                                      from models order by model_id""", [LISTED_MISSING_ID]).fetchall()
    assert {row[6] for row in tracked} >= {"not-api", "ok"}
    assert conn.execute("select count(*) from model_events").fetchone() == (0,)


def test_a_second_crawl_keeps_fts_and_facets_by_triggers(tmp_path, first_crawl):
    hub, db_path = first_crawl
    catalog = hub.catalog
    ids = catalog.model_ids()
    catalog.update(ids[0], Name="renamed-zzqx", Tags=["zzqx-tag"], Libraries=["zzqx-lib"])
    catalog.update(ids[1], ChineseName="新名字模型", Tasks=[{"Name": "zzqx-task"}])
    catalog.update(ids[2], Downloads=1)  # not indexed: its FTS entry must not move
    catalog.remove(ids[3])
    added = dict(catalog.get(ids[4]), Id=999_999, Name="brand-new-zzqx", Path="newowner")
    catalog.add(added)
    hub.invalidate()
    conn = sqlite3.connect(db_path)
    before = dict(conn.execute("select model_id, rowid from models"))
    assert run_crawl(db_path, hub, scope="full").status == "complete"
    # Rows kept their rowids: the second crawl updated in place, with the triggers on.
    after = dict(conn.execute("select model_id, rowid from models"))
    assert {k: after[k] for k in before} == before
    assert sorted(search(conn, "zzqx")) == sorted([("newowner/brand-new-zzqx",),
                                                   (ids[0].split("/")[0] + "/renamed-zzqx",)])
    assert search(conn, "新名字") == [(ids[1],)]
    assert ("tasks", "zzqx-task", 1) in facet_counts(conn)
    assert ("libraries", "zzqx-lib", 1) in facet_counts(conn)
    assert ("tasks", '["zzqx-task"]') in {(c[0], c[1]) for c in conn.execute(
        "select 'tasks', tasks from facet_groups")}
    assert_same_indexes(conn, rebuilt_copy(conn, tmp_path / "rebuilt.db"))


def test_a_load_that_fails_leaves_triggers_and_indexes_in_place(tmp_path):
    db = store.open_db(tmp_path / "catalog.db")
    conn = db.conn
    schema_before = master(conn)
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(db):
            with schema.bulk_load(conn):
                conn.execute("insert into models (model_id) values ('a/b')")
                conn.execute("insert into models (model_id) values ('a/b')")
    assert master(conn) == schema_before
    assert conn.execute("select count(*) from models").fetchone() == (0,)
    conn.execute("insert into models (model_id, name, tags) values ('x/trigram', 'trigram', '[\"t1\"]')")
    assert search(conn, "rigra") == [("x/trigram",)]


def test_the_full_text_index_leaves_out_descriptions(tmp_path):
    db = store.open_db(tmp_path / "catalog.db")
    db.conn.execute("insert into models (model_id, name, description) values ('a/alpha', 'alpha', 'zebra')")
    assert search(db.conn, "alpha") == [("a/alpha",)]
    assert search(db.conn, "zebra") == []
