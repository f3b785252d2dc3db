"""Read-only catalog queries: export lists of callable model IDs (checking IDs is in check.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
from dataclasses import dataclass

from indexer import capabilities, freshness

FORMATS = ("txt", "comma", "csv", "json", "jsonl")
# Files other tools read, written by indexer.formats from the capability columns.
TOOL_FORMATS = ("models-dev", "litellm", "lobechat", "cherry")
TOOL_KEYS = ("model_id", "name", "kind", "tasks", "created_at", "updated_at", *capabilities.COLUMNS)
SORTS = {
    # Each leading key has an index, which a --limit export walks and stops early.
    # DESC puts NULLs last; ties go by model_id, so output is stable run to run.
    "downloads": ("downloads desc", "model_id"),
    "likes": ("likes desc", "model_id"),
    "updated": ("updated_at desc", "model_id"),
    "id": ("model_id",),
}
EXPORT_KEYS = ("model_id", "owner", "kind", "tasks", "downloads", "likes", "status", "url")
STALE_AFTER = freshness.STALE_AFTER
# A spreadsheet runs a cell that starts with one of these as a formula; OWASP's
# advice (CSV injection) is a leading `'`, which the spreadsheet hides (issue 14).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MIN_FTS_CHARS = 3  # the trigram tokenizer matches nothing shorter


@dataclass(frozen=True)
class Filters:
    """What `iter_export_rows` selects; an empty field filters nothing."""

    all_models: bool = False
    statuses: tuple = ("ok",)
    listed: bool = False
    tasks: tuple = ()
    owners: tuple = ()
    min_downloads: int | None = None
    search: str | None = None
    kind: str | None = None
    # What the model can do (indexer/enrich.py), not always what the service accepts.
    vision: bool = False
    tools: bool = False
    reasoning: bool = False
    min_context: int | None = None
    max_cost: float | None = None
    sort: str = "downloads"
    limit: int | None = None


def build_export_query(filters, keys=EXPORT_KEYS):
    """(sql, params) for one streaming SELECT of `keys`; every user value is a bound parameter."""
    where, params = [], []
    if not filters.all_models:
        # The stored answer to "will this ID work?" (indexer/status.py); the
        # default, `ok`, is the IDs that will.
        where.append(f"status in ({', '.join('?' for _ in filters.statuses)})")
        params.extend(filters.statuses)
    if filters.listed:
        where.append("in_inference_list = 1")
    if filters.tasks:
        marks = ", ".join("?" for _ in filters.tasks)
        where.append(f"exists (select 1 from json_each(models.tasks) where value in ({marks}))")
        params.extend(filters.tasks)
    if filters.owners:
        where.append(f"owner in ({', '.join('?' for _ in filters.owners)})")
        params.extend(filters.owners)
    more, values = capability_conditions(filters)
    where.extend(more)
    params.extend(values)
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
    columns = ["case when status = 'ok' then coalesce(api_model_id, model_id) else model_id end "
               "as model_id" if k == "model_id" else k for k in keys]
    sql = f"select {', '.join(columns)} from models"
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


CAPABILITY_FLAGS = ("vision", "tools", "reasoning")


def capability_conditions(wanted):
    """(conditions, params) for the kind and capability filters of `wanted` (export.Filters, or
    the picker's filters): one reading of "has tools" or "at least this context" for every surface.

    The minimum context is the native one (`context_length`): a longer context through rope
    scaling is what the model can do, not what the service is known to accept.
    """
    where, params = [], []
    if getattr(wanted, "kind", None):
        where.append("kind = ?")
        params.append(wanted.kind)
    for flag in CAPABILITY_FLAGS:
        if getattr(wanted, flag, False):
            where.append(f"{flag} = 1")
    if getattr(wanted, "min_context", None) is not None:
        where.append("context_length >= ?")
        params.append(wanted.min_context)
    if getattr(wanted, "max_cost", None) is not None:
        where.append("cost_per_call <= ?")
        params.append(wanted.max_cost)
    return where, params


def iter_export_rows(db, filters=Filters(), keys=EXPORT_KEYS):
    """Yield one dict per exported model, in order, streamed from a single cursor."""
    sql, params = build_export_query(filters, keys)
    # One statement is one read snapshot, so a crawl committing meanwhile cannot
    # tear the list; the cursor hands rows over one at a time.
    cursor = db.conn.execute(sql, params)
    try:
        for row in cursor:
            yield dict(zip(keys, row))
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


def write_tool_export(rows, fmt, stream):
    """Write a litellm, lobechat or cherry export (indexer.formats); returns formats.Written."""
    from indexer import formats

    writer = {"litellm": formats.write_litellm, "lobechat": formats.write_lobechat,
              "cherry": formats.write_cherry}[fmt]
    return writer(rows, stream)


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
            if fmt in TOOL_FORMATS:
                count = write_tool_export(rows, fmt, stream)
            else:
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
    return freshness.stale_warning(freshness.read(db.conn), now)
