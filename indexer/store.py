"""SQLite only: opening a catalog (shaped by indexer.schema), transactions, catalog info and crawl runs."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlite_utils

from indexer.schema import CatalogError, check_version, ensure_db_shape

__all__ = ["CatalogError", "ensure_db_shape"]  # re-exported: callers catch store.CatalogError


def utc_now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment):
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


# The embedded sample ------------------------------------------------------
# A catalog holding the sample is never written (it is a tracked file in the
# checkout, and package data in a wheel): crawls of it go to its live sibling,
# `catalog.live.db` beside `catalog.db`, and every reader switches to that file
# once it holds a complete crawl (issue 13).


def live_path(path):
    """Where crawls of the sample catalog at `path` write: `X.live.db` beside `X.db`."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.live{ext or '.db'}"


def _read_only(path):
    # mode=ro on a rollback-journal file writes nothing, not even a -wal or -shm.
    uri = "file:" + urllib.parse.quote(os.path.abspath(os.fspath(path))) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=5)


def holds_sample(path):
    """True when the file at `path` is the embedded sample (read without writing a byte)."""
    if not os.path.exists(path):
        return False
    try:
        conn = _read_only(path)
        try:
            row = conn.execute("select value from catalog_info where key = 'sample'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "1"


def _has_complete_run(path):
    try:
        conn = _read_only(path)
        try:
            return conn.execute("select 1 from crawl_runs where status = 'complete' limit 1").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def catalog_for_writing(path):
    """The file a crawl of `path` writes: its live sibling when `path` holds the sample."""
    return live_path(path) if holds_sample(path) else os.fspath(path)


def catalog_for_reading(path, sample=None):
    """The file to read for `path`: the sample's live sibling once a crawl there completed.

    With `sample` (the packaged sample, for an installed wheel), a `path` that has no
    complete crawl yet is read as that sample until it has one.
    """
    if holds_sample(path):
        live = live_path(path)
        if os.path.exists(live) and _has_complete_run(live):
            return live
    elif sample is not None and not _has_complete_run(path) and os.path.exists(sample):
        return os.fspath(sample)
    return os.fspath(path)


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
    except sqlite3.DatabaseError as error:
        raise CatalogError(describe_db_error(path, error)) from None
    try:
        conn.execute("pragma busy_timeout = 30000")
        conn.execute("select count(*) from sqlite_master").fetchone()
        db = sqlite_utils.Database(conn)
        check_version(db, path)
        if create:
            ensure_db_shape(db, path)
        elif not db.table("models").exists():
            raise CatalogError(f"{path} is not an indexer catalog (it has no `models` table)")
    except CatalogError:
        conn.close()
        raise
    except sqlite3.DatabaseError as error:
        conn.close()
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
