"""SQLite only: the catalog schema, opening a catalog, crawl runs and the staging area."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlite_utils

SCHEMA_VERSION = 2

MODELS_COLUMNS = {
    "model_id": str, "owner": str, "name": str, "chinese_name": str, "description": str,
    "tasks": str, "tags": str, "libraries": str, "license": str, "downloads": int,
    "likes": int, "created_at": str, "updated_at": str, "api_inference": int,
    "api_model_id": str, "in_inference_list": int, "support_inference": str, "url": str,
    "first_seen_at": str, "last_seen_at": str, "removed_at": str,
}
JSON_COLUMNS = ("tasks", "tags", "libraries")
FTS_COLUMNS = ("model_id", "name", "chinese_name", "description", "tags")
FACET_ARRAYS = ("tasks", "libraries")
STAGE_COLUMNS = (
    "model_id", "owner", "name", "chinese_name", "description", "tasks", "tags",
    "libraries", "license", "downloads", "likes", "created_at", "updated_at",
    "api_model_id", "support_inference", "url",
)

VIEWS = {
    # Growth over a window, measured back from the last crawl's day (or the
    # newest stats day) so a catalog that stopped crawling still shows its trend.
    "trending": """
        with ref as (select coalesce(
            (select substr(max(finished_at), 1, 10) from crawl_runs
              where status in ('complete', 'incomplete')),
            (select max(day) from model_stats)) as today)
        select m.model_id, m.owner, m.tasks, m.api_inference, m.downloads, m.likes,
          m.downloads - (select s.downloads from model_stats s
                         where s.model_id = m.model_id
                           and s.day <= date((select today from ref), '-7 days')
                         order by s.day desc limit 1) as downloads_7d,
          m.downloads - (select s.downloads from model_stats s
                         where s.model_id = m.model_id
                           and s.day <= date((select today from ref), '-30 days')
                         order by s.day desc limit 1) as downloads_30d,
          m.url
        from models m
        where m.removed_at is null
    """,
    "api_history": """
        select t.model_id,
          substr(t.api_first_at, 1, 10) as first_api_day,
          t.api as api_inference,
          (select max(e.at) from model_events e
            where e.model_id = t.model_id and e.event in ('api_enabled', 'api_disabled')) as last_change_at,
          (select count(*) from model_events e
            where e.model_id = t.model_id and e.event in ('api_enabled', 'api_disabled')) as flips
        from model_tracking t
        where t.api_first_at is not null
    """,
    "api_models": """
        select coalesce(api_model_id, model_id) as model_id, owner, tasks, downloads, likes,
          in_inference_list, url
        from models
        where api_inference = 1
    """,
}


class CatalogError(Exception):
    """A catalog that cannot be opened or written; the message is one line."""


def utc_now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment):
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def open_db(path, create=True):
    """A sqlite-utils Database on `path` in autocommit mode, shaped; CatalogError on trouble."""
    path = os.fspath(path)
    if not create and not os.path.exists(path):
        raise CatalogError(f"no catalog at {path}: run `indexer crawl --db {path}` first")
    folder = os.path.dirname(os.path.abspath(path))
    if create and not os.path.isdir(folder):
        raise CatalogError(f"cannot create {path}: folder {folder} does not exist")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("pragma busy_timeout = 30000")
        conn.execute("select count(*) from sqlite_master").fetchone()
        db = sqlite_utils.Database(conn)
        if create:
            ensure_db_shape(db)
        elif not db.table("models").exists():
            conn.close()
            raise CatalogError(f"{path} is not an indexer catalog (it has no `models` table)")
    except sqlite3.DatabaseError as error:
        raise CatalogError(describe_db_error(path, error)) from None
    return db


def describe_db_error(path, error):
    text = str(error)
    if "file is not a database" in text or "malformed" in text:
        return f"{path} is not a usable SQLite catalog ({text})"
    if "readonly" in text or "unable to open" in text:
        return f"cannot write {path} ({text})"
    if "disk is full" in text or "database or disk is full" in text:
        return f"the disk holding {path} is full; nothing more was written"
    return f"{path}: {text}"


def ensure_db_shape(db):
    """Create or update every table, index, trigger and view; calling it twice changes nothing."""
    conn = db.conn
    if db.journal_mode != "wal":
        db.enable_wal()
    version = conn.execute("pragma user_version").fetchone()[0]
    if version == SCHEMA_VERSION and db.table("models").exists():
        return
    # DDL runs in autocommit: every statement is idempotent, so a crash half way
    # is mended by the next call.
    _create_tables(db)
    conn.execute(f"pragma user_version = {SCHEMA_VERSION}")


def _create_tables(db):
    conn = db.conn
    db.table("models").create(MODELS_COLUMNS, pk="model_id", if_not_exists=True)
    db.table("crawl_runs").create({
        "id": int, "scope": str, "started_at": str, "finished_at": str, "status": str,
        "requests": int, "pages": int, "models_seen": int, "expected_total": int,
        "api_models": int, "listed_models": int, "events": int, "stats_rows": int,
        "warnings": str, "error": str,
    }, pk="id", if_not_exists=True)
    conn.execute("""
        create table if not exists model_events (
          id integer primary key,
          run_id integer,
          model_id text not null,
          event text not null,
          at text not null,
          detail text
        )""")
    conn.execute("""
        create table if not exists model_stats (
          model_id text not null,
          day text not null,
          downloads integer,
          likes integer,
          primary key (model_id, day)
        ) without rowid""")
    # What the event log knows of each model, kept apart from `models` so that
    # an incomplete crawl can save what it saw without moving the event baseline.
    conn.execute("""
        create table if not exists model_tracking (
          model_id text primary key,
          present integer,
          missing integer not null default 0,
          api integer,
          api_missing integer not null default 0,
          api_first_at text,
          listed integer,
          listed_missing integer not null default 0,
          license text,
          tasks text,
          chinese_name text
        ) without rowid""")
    # Partial indexes: only the few hundred flagged models are ever looked up.
    conn.execute("create index if not exists model_tracking_api on model_tracking(api) where api = 1")
    conn.execute("create index if not exists model_tracking_listed on model_tracking(listed) "
                 "where listed = 1")
    conn.execute("create table if not exists catalog_info (key text primary key, value text)")
    _create_facet_counts(db)
    for columns in (["api_inference", "downloads"], ["owner"], ["downloads"], ["likes"],
                    ["updated_at"], ["license"], ["in_inference_list"]):
        db.table("models").create_index(columns, if_not_exists=True)
    db.table("model_events").create_index(["at"], if_not_exists=True)
    db.table("model_events").create_index(["model_id", "at"], if_not_exists=True)
    db.table("model_events").create_index(["event", "at"], if_not_exists=True)
    db.table("crawl_runs").create_index(["scope", "status"], if_not_exists=True)
    _create_fts(db)
    for name, sql in VIEWS.items():
        db.create_view(name, sql.strip(), replace=True)


def _create_facet_counts(db):
    # Array-facet counts over the whole models table, kept exact by triggers, so
    # the unfiltered models page need not unpack 254,000 JSON arrays (issue 6).
    conn = db.conn
    fresh = not db.table("facet_counts").exists()
    conn.execute("""create table if not exists facet_counts (
        facet text not null, value text not null, count integer not null,
        primary key (facet, value)) without rowid""")

    def values(row, column):
        return f"json_each(case when json_valid({row}.{column}) then {row}.{column} end)"

    def add(row):
        return "".join(f"""
            insert into facet_counts (facet, value, count)
            select '{c}', value, 1 from {values(row, c)} where true
            on conflict (facet, value) do update set count = count + 1;""" for c in FACET_ARRAYS)

    def remove(row):
        return "".join(f"""
            update facet_counts set count = count - 1
            where facet = '{c}' and value in (select value from {values(row, c)});"""
                       for c in FACET_ARRAYS) + "\n            delete from facet_counts where count <= 0;"

    changed = " or ".join(f"old.{c} is not new.{c}" for c in FACET_ARRAYS)
    conn.execute(f"create trigger if not exists models_facets_ai after insert on models "
                 f"begin {add('new')} end")
    conn.execute(f"create trigger if not exists models_facets_ad after delete on models "
                 f"begin {remove('old')} end")
    conn.execute(f"create trigger if not exists models_facets_au after update on models "
                 f"when {changed} begin {remove('old')} {add('new')} end")
    if fresh:
        for c in FACET_ARRAYS:
            conn.execute(f"""insert into facet_counts (facet, value, count)
                             select '{c}', j.value, count(*) from models, {values('models', c)} j
                             group by j.value""")


def _create_fts(db):
    # Trigram tokens let Datasette's search box match any 3+ character fragment of
    # an ID or a Chinese name (docs/datasette.md §2). The update trigger only
    # fires when an indexed column really changes, so a re-crawl that only moves
    # `last_seen_at` leaves the index alone.
    fresh = not db.table("models_fts").exists()
    cols = ", ".join(FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    changed = " or ".join(f"old.{c} is not new.{c}" for c in FTS_COLUMNS)
    conn = db.conn
    # Datasette 0.65 recognises the content table only when it is double-quoted.
    conn.execute(f"""create virtual table if not exists models_fts using fts5({cols},
                     content="models", content_rowid="rowid", tokenize="trigram",
                     columnsize=0)""")
    conn.execute(f"""create trigger if not exists models_ai after insert on models begin
        insert into models_fts(rowid, {cols}) values (new.rowid, {new}); end""")
    conn.execute(f"""create trigger if not exists models_ad after delete on models begin
        insert into models_fts(models_fts, rowid, {cols}) values ('delete', old.rowid, {old}); end""")
    conn.execute(f"""create trigger if not exists models_au after update on models when {changed} begin
        insert into models_fts(models_fts, rowid, {cols}) values ('delete', old.rowid, {old});
        insert into models_fts(rowid, {cols}) values (new.rowid, {new}); end""")
    if fresh:
        conn.execute("insert into models_fts(models_fts) values ('rebuild')")


@contextmanager
def transaction(db):
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    conn = db.conn
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    else:
        conn.execute("commit")


def get_info(db, key, default=None):
    row = db.conn.execute("select value from catalog_info where key = ?", [key]).fetchone()
    return row[0] if row else default


def set_info(conn, key, value):
    conn.execute("insert into catalog_info(key, value) values (?, ?) "
                 "on conflict(key) do update set value = excluded.value", [key, value])


def is_sample(db):
    return get_info(db, "sample") == "1"


# Crawl runs ---------------------------------------------------------------


def fail_stale_runs(db, reason="interrupted: the crawling process ended before the run finished"):
    """Mark runs left `running` by a process that died as `failed` (call while holding the lock)."""
    with transaction(db) as conn:
        cur = conn.execute(
            "update crawl_runs set status = 'failed', finished_at = coalesce(finished_at, ?), "
            "error = coalesce(error, ?) where status = 'running'", [iso(utc_now()), reason])
        return cur.rowcount


def start_run(db, scope, started_at):
    with transaction(db) as conn:
        cur = conn.execute(
            "insert into crawl_runs(scope, started_at, status, requests, pages, models_seen) "
            "values (?, ?, 'running', 0, 0, 0)", [scope, iso(started_at)])
        return cur.lastrowid


def update_run(conn, run_id, **values):
    if not values:
        return
    sets = ", ".join(f"{key} = ?" for key in values)
    conn.execute(f"update crawl_runs set {sets} where id = ?", [*values.values(), run_id])


def last_complete_run(db, scope=None, before_id=None):
    sql = "select * from crawl_runs where status = 'complete'"
    params = []
    if scope:
        sql += " and scope = ?"
        params.append(scope)
    if before_id is not None:
        sql += " and id < ?"
        params.append(before_id)
    rows = list(db.query(sql + " order by id desc limit 1", params))
    return rows[0] if rows else None


# Staging ------------------------------------------------------------------


def attach_stage(db):
    """A private on-disk scratch database for one crawl, so memory never grows with the hub."""
    conn = db.conn
    if any(row[1] == "stage" for row in conn.execute("pragma database_list")):
        conn.execute("detach database stage")
    conn.execute("attach database '' as stage")
    # Scratch data: a crash loses nothing worth keeping, so skip the rollback
    # journal (the benchmark measured staging at 7.6 s of CPU with it, 4.4 s without).
    conn.execute("pragma stage.journal_mode = off")
    cols = ", ".join(f"{c} {'integer' if c in ('downloads', 'likes') else 'text'}"
                     for c in STAGE_COLUMNS[1:])
    conn.execute(f"create table stage.items (model_id text primary key, {cols}) without rowid")
    conn.execute("create table stage.api (model_id text primary key) without rowid")
    conn.execute("create table stage.listed (model_id text primary key) without rowid")
    conn.execute("create table stage.slice (model_id text primary key) without rowid")


def detach_stage(db):
    try:
        db.conn.execute("detach database stage")
    except sqlite3.Error:
        pass


def stage_rows(db, rows, api=False):
    """Stage parsed rows; returns (new to the crawl, new to the current slice)."""
    conn = db.conn
    marks = ", ".join("?" for _ in STAGE_COLUMNS)
    records = [[json.dumps(r[c], ensure_ascii=False) if c in JSON_COLUMNS else r[c]
                for c in STAGE_COLUMNS] for r in rows]
    ids = list(dict.fromkeys(r["model_id"] for r in rows))
    conn.execute("begin")
    try:
        known = 0
        if ids:
            known = conn.execute(
                f"select count(*) from stage.items where model_id in ({', '.join('?' for _ in ids)})",
                ids).fetchone()[0]
        conn.executemany(f"insert or replace into stage.items values ({marks})", records)
        if api:
            conn.executemany("insert or ignore into stage.api values (?)", [[i] for i in ids])
        before = conn.total_changes
        conn.executemany("insert or ignore into stage.slice values (?)", [[i] for i in ids])
        new_to_slice = conn.total_changes - before
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return len(ids) - known, new_to_slice


def stage_listed(db, model_ids):
    conn = db.conn
    conn.executemany("insert or ignore into stage.listed values (?)", [[m] for m in model_ids])


def reset_slice(db):
    db.conn.execute("delete from stage.slice")


def stage_count(db, table="items"):
    return db.conn.execute(f"select count(*) from stage.{table}").fetchone()[0]


def stage_distinct(db, column):
    """Distinct owners (or other text column) staged so far, most models first."""
    return [row[0] for row in db.conn.execute(
        f"select {column} from stage.items group by {column} order by count(*) desc, {column}")]


def stage_tasks(db):
    return [row[0] for row in db.conn.execute(
        "select j.value from stage.items, json_each(stage.items.tasks) j "
        "group by j.value order by count(*) desc, j.value")]


def stage_owner_count(db, owner):
    return db.conn.execute("select count(*) from stage.items where owner = ?", [owner]).fetchone()[0]
