"""Read-only catalog queries: export lists of callable model IDs (checking IDs is in check.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from indexer import store

FORMATS = ("txt", "comma", "csv", "json", "jsonl")
SORTS = {
    # Each leading key has an index, which a --limit export walks and stops early.
    # DESC puts NULLs last; ties go by model_id, so output is stable run to run.
    "downloads": ("downloads desc", "model_id"),
    "likes": ("likes desc", "model_id"),
    "updated": ("updated_at desc", "model_id"),
    "id": ("model_id",),
}
EXPORT_KEYS = ("model_id", "owner", "tasks", "downloads", "likes", "api_inference",
               "in_inference_list", "url")
STALE_AFTER = timedelta(days=2)
# A spreadsheet runs a cell that starts with one of these as a formula; OWASP's
# advice (CSV injection) is a leading `'`, which the spreadsheet hides (issue 14).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MIN_FTS_CHARS = 3  # the trigram tokenizer matches nothing shorter


@dataclass(frozen=True)
class Filters:
    """What `iter_export_rows` selects; an empty field filters nothing."""

    all_models: bool = False
    listed: bool = False
    tasks: tuple = ()
    owners: tuple = ()
    min_downloads: int | None = None
    search: str | None = None
    sort: str = "downloads"
    limit: int | None = None


def build_export_query(filters):
    """(sql, params) for one streaming SELECT; every user value is a bound parameter."""
    where, params = [], []
    if filters.listed:
        # Every ID the /models list names is callable, API badge or not.
        where.append("in_inference_list = 1")
    elif not filters.all_models:
        where.append("api_inference = 1")
    if not filters.all_models:
        # A model confirmed gone from the hub is not an ID that will work.
        where.append("removed_at is null")
    if filters.tasks:
        marks = ", ".join("?" for _ in filters.tasks)
        where.append(f"exists (select 1 from json_each(models.tasks) where value in ({marks}))")
        params.extend(filters.tasks)
    if filters.owners:
        where.append(f"owner in ({', '.join('?' for _ in filters.owners)})")
        params.extend(filters.owners)
    if filters.min_downloads is not None:
        where.append("downloads >= ?")
        params.append(filters.min_downloads)
    text = (filters.search or "").strip()
    if len(text) >= MIN_FTS_CHARS:
        # The full-text index leaves descriptions out (schema.FTS_COLUMNS); an
        # export can afford the scan.
        where.append("(rowid in (select rowid from models_fts where models_fts match ?) "
                     "or description like ? escape '\\')")
        params.extend([fts_phrase(text), like_pattern(text)])
    elif text:
        where.append("(model_id like ? escape '\\' or name like ? escape '\\' "
                     "or chinese_name like ? escape '\\')")
        params.extend([like_pattern(text)] * 3)
    # With --all, a model nobody can call keeps its hub ID: api_model_id outlives
    # the model's API badge in the row, so it is no sign of a callable ID (issue 15).
    sql = ("select case when api_inference = 1 or in_inference_list = 1 "
           "then coalesce(api_model_id, model_id) else model_id end as model_id, "
           "owner, tasks, downloads, likes, api_inference, in_inference_list, url from models")
    if where:
        sql += " where " + " and ".join(where)
    order = list(SORTS[filters.sort])
    if filters.limit is None:
        # Without a limit every row is read anyway, and one pass over the table
        # plus a sort beats a walk of the index that seeks for each row (2x on
        # the whole catalog). `+` stops SQLite using the index for the order.
        order[0] = "+" + order[0]
    sql += " order by " + ", ".join(order)
    if filters.limit is not None:
        sql += " limit ?"
        params.append(filters.limit)
    return sql, params


def iter_export_rows(db, filters=Filters()):
    """Yield one dict per exported model, in order, streamed from a single cursor."""
    sql, params = build_export_query(filters)
    # One statement is one read snapshot, so a crawl committing meanwhile cannot
    # tear the list; the cursor hands rows over one at a time.
    cursor = db.conn.execute(sql, params)
    try:
        for row in cursor:
            yield dict(zip(EXPORT_KEYS, row))
    finally:
        cursor.close()


def fts_phrase(text):
    """`text` as one FTS5 phrase, so quotes and operators in it are matched literally."""
    return '"' + text.replace('"', '""') + '"'


def like_pattern(text):
    """A LIKE pattern (with `escape '\\'`) matching `text` anywhere, `%` and `_` taken literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


# Writing -------------------------------------------------------------------


def csv_cell(value, raw=False):
    """A CSV cell: None as empty, and text a spreadsheet would run as a formula behind a `'`."""
    if value is None:
        return ""
    if not raw and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_export(rows, fmt, stream, raw_csv=False):
    """Write `rows` to the text `stream` in `fmt`, one row at a time; returns the count.

    CSV cells that a spreadsheet would run as formulas get a leading `'` unless `raw_csv`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    count = 0
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(EXPORT_KEYS)
    elif fmt == "json":
        stream.write("[")
    for row in rows:
        if fmt == "txt":
            stream.write(row["model_id"] + "\n")
        elif fmt == "comma":
            stream.write(("," if count else "") + row["model_id"])
        elif fmt == "csv":
            # `tasks` stays the JSON text the catalog stores.
            writer.writerow([csv_cell(row[k], raw_csv) for k in EXPORT_KEYS])
        else:
            text = json.dumps(_json_row(row), ensure_ascii=False)
            if fmt == "jsonl":
                stream.write(text + "\n")
            else:
                stream.write((",\n" if count else "\n") + text)
        count += 1
    if fmt == "comma" and count:
        stream.write("\n")
    elif fmt == "json":
        stream.write("\n]\n" if count else "]\n")
    return count


def _json_row(row):
    out = dict(row)
    out["tasks"] = json.loads(row["tasks"]) if row["tasks"] else []
    return out


def export_to_file(rows, fmt, path, raw_csv=False):
    """Write an export to `path` atomically: a temp file beside it, then a rename.

    On any error the temp file is removed and an existing file at `path` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never write through someone else's file; mode 0o666 lets the umask
    # decide the permissions, as for any file the user creates.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as stream:
            count = write_export(rows, fmt, stream, raw_csv)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return count


# Freshness -----------------------------------------------------------------


def freshness_warning(db, now):
    """A one-line warning when the catalog is a sample, never crawled completely, or stale; else None."""
    if store.is_sample(db):
        return ("this catalog holds the bundled sample, not a crawl: "
                "its IDs are examples; run `indexer crawl` for real ones")
    run = store.last_complete_run(db)
    finished = _parse_time(run["finished_at"]) if run else None
    if finished is None:
        return "this catalog has never had a complete crawl: run `indexer crawl` to refresh it"
    age = now - finished
    if age > STALE_AFTER:
        return (f"the newest complete crawl finished on {finished.date().isoformat()} "
                f"({age.days} days ago): run `indexer crawl` to refresh the catalog")
    return None


def _parse_time(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
