"""SQLite only: one crawl's staging area, a private scratch database attached as `stage`.

Nothing here touches the catalog's own tables; indexer.track merges the staged rows.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Iterable

import sqlite_utils

from indexer.schema import JSON_COLUMNS

STAGE_COLUMNS = (
    "model_id", "owner", "name", "chinese_name", "description", "tasks", "tags",
    "libraries", "license", "downloads", "likes", "created_at", "updated_at",
    "api_model_id", "support_inference", "url",
)
# Key-only tables: items:      parsed rows, by model ID
#                  api/listed: IDs in the API-Inference set / the inference /models list
#                  slice:      keys seen in the slice being paged now (reset per slice)
#                  skipped:    keys of items parse.SkipItem refused, counted once a crawl
#                  lacking:    "<counter>:<key>" for watched fields an item lacked, once a crawl
KEY_TABLES = ("api", "listed", "slice", "skipped", "lacking")
_COLUMNS_OF = operator.itemgetter(*STAGE_COLUMNS)
_JSON_AT = tuple(i for i, c in enumerate(STAGE_COLUMNS) if c in JSON_COLUMNS)
# One encoder for every call: json.dumps with any option builds a new one each
# time, which was a third of staging's CPU (bench/findings.md).
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def attach_stage(db: sqlite_utils.Database) -> None:
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
    # A rowid table: rows arrive in the hub's order, not by ID, and appending whole rows
    # while only the small ID index takes the scattered inserts cost 4.8 s at 254,000
    # models where a table clustered by ID (WITHOUT ROWID) cost 6.7 s (bench/findings.md).
    conn.execute(f"create table stage.items (model_id text primary key, {cols})")
    for table in KEY_TABLES:
        conn.execute(f"create table stage.{table} (model_id text primary key) without rowid")


def detach_stage(db: sqlite_utils.Database) -> None:
    try:
        db.conn.execute("detach database stage")
    except sqlite3.Error:
        pass


def stage_rows(db: sqlite_utils.Database, rows: list[dict], api: bool = False) -> tuple[int, int]:
    """Stage parsed rows; returns (new to the crawl, new to the current slice)."""
    conn = db.conn
    marks = ", ".join("?" for _ in STAGE_COLUMNS)
    records = []
    for row in rows:
        record = list(_COLUMNS_OF(row))
        for i in _JSON_AT:
            value = record[i]
            record[i] = "[]" if value == [] else _to_json(value)  # most lists are empty
        records.append(record)
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


def stage_key(db: sqlite_utils.Database, table: str, key: str) -> bool:
    """Add `key` to a key-only stage table; True when it was not there yet."""
    conn = db.conn
    before = conn.total_changes
    conn.execute(f"insert or ignore into stage.{table} values (?)", [key])
    return conn.total_changes > before


def stage_listed(db: sqlite_utils.Database, model_ids: Iterable[str]) -> None:
    conn = db.conn
    conn.executemany("insert or ignore into stage.listed values (?)", [[m] for m in model_ids])


def reset_slice(db: sqlite_utils.Database) -> None:
    db.conn.execute("delete from stage.slice")


def stage_count(db: sqlite_utils.Database, table: str = "items") -> int:
    return db.conn.execute(f"select count(*) from stage.{table}").fetchone()[0]


def stage_distinct(db: sqlite_utils.Database, column: str) -> list[str]:
    """Distinct owners (or other text column) staged so far, most models first."""
    return [row[0] for row in db.conn.execute(
        f"select {column} from stage.items group by {column} order by count(*) desc, {column}")]


def stage_tasks(db: sqlite_utils.Database) -> list[str]:
    return [row[0] for row in db.conn.execute(
        "select j.value from stage.items, json_each(stage.items.tasks) j "
        "group by j.value order by count(*) desc, j.value")]


def stage_owner_count(db: sqlite_utils.Database, owner: str) -> int:
    return db.conn.execute("select count(*) from stage.items where owner = ?", [owner]).fetchone()[0]


def stage_task_owners(db: sqlite_utils.Database, task: str) -> list[str]:
    """Owners of the staged models with `task`, most models first."""
    return [row[0] for row in db.conn.execute(
        "select owner from stage.items s where exists (select 1 from json_each(s.tasks) "
        "where value = ?) group by owner order by count(*) desc", [task])]


def stage_matching(db: sqlite_utils.Database, task: str, owner: str) -> int:
    """Staged models of `owner` with `task`."""
    return db.conn.execute(
        "select count(*) from stage.items s where owner = ? and exists "
        "(select 1 from json_each(s.tasks) where value = ?)", [owner, task]).fetchone()[0]
