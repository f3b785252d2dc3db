"""Read-only catalog queries: export lists of callable model IDs and check IDs against the catalog."""

from __future__ import annotations

import csv
import difflib
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
# The inference service's /models list names chat models only
# (docs/modelscope-api.md §1, endpoint F), so only these can be "unlisted".
LISTED_TASKS = frozenset({"text-generation"})
MIN_FTS_CHARS = 3  # the trigram tokenizer matches nothing shorter
SUGGEST_CUTOFF = 0.6
CANDIDATES_PER_QUERY = 200
NEIGHBOURS = 50


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
        where.append("rowid in (select rowid from models_fts where models_fts match ?)")
        params.append(fts_phrase(text))
    elif text:
        where.append("(model_id like ? escape '\\' or name like ? escape '\\' "
                     "or chinese_name like ? escape '\\')")
        params.extend([like_pattern(text)] * 3)
    sql = ("select coalesce(api_model_id, model_id) as model_id, owner, tasks, downloads, likes, "
           "api_inference, in_inference_list, url from models")
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


def write_export(rows, fmt, stream):
    """Write `rows` to the text `stream` in `fmt`, one row at a time; returns the count."""
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
            writer.writerow(["" if row[k] is None else row[k] for k in EXPORT_KEYS])
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


def export_to_file(rows, fmt, path):
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
            count = write_export(rows, fmt, stream)
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


# Checking ------------------------------------------------------------------


def classify(row):
    """(status, note) for a catalog row (None: no such model), as a call would see it.

    - unknown: no such model, or the hub removed it.
    - ok: the /models list names it (callable even without the hub's API badge), or it
      is API-capable and not a chat model, since /models lists chat models only.
    - unlisted: an API-capable chat (text-generation) model the /models list lacks.
    - not-api: on the hub, but not served by API-Inference.
    """
    if row is None:
        return "unknown", None
    if row["removed_at"]:
        return "unknown", f"removed from the hub on {row['removed_at'][:10]}"
    if row["in_inference_list"]:
        return "ok", None
    if row["api_inference"]:
        tasks = set(json.loads(row["tasks"]) if row["tasks"] else [])
        if tasks & LISTED_TASKS:
            return "unlisted", "API-capable on the hub, but the inference service's /models list lacks it"
        return "ok", None
    return "not-api", None


def find_model(db, model_id):
    """The catalog row `model_id` names exactly (as ModelScope compares IDs), or None."""
    for sql in ("select * from models where model_id = ?",
                # The callable ID only matters on API models, and their index keeps
                # this lookup to the API set instead of a scan of the whole catalog.
                "select * from models where api_inference = 1 and api_model_id = ? "
                "order by removed_at is not null, model_id limit 1"):
        cursor = db.conn.execute(sql, [model_id])
        row = cursor.fetchone()
        if row is not None:
            return dict(zip([d[0] for d in cursor.description], row))
    return None


def check_ids(db, ids):
    """One result dict per ID, in order: id, status, model_id, note, suggestions."""
    results = []
    for given in ids:
        row = find_model(db, given)
        status, note = classify(row)
        if row and status != "unknown" and row["api_model_id"] and row["api_model_id"] != given:
            note = "; ".join(filter(None, [f"call it as {row['api_model_id']}", note]))
        results.append({
            "id": given,
            "status": status,
            "model_id": row["model_id"] if row else None,
            "note": note,
            "suggestions": suggest(db, given) if status == "unknown" else [],
        })
    return results


def suggest(db, given, limit=3):
    """Existing model IDs close to `given`: a case-insensitive match first, then similar IDs.

    SQL narrows the field to a few hundred candidates (FTS on the ID and its name
    parts, and the same owner), so the work never grows with the catalog.
    """
    # Imported here: parse pulls in BeautifulSoup, a fifth of a second that
    # `export` and a `check` of good IDs never need.
    from indexer.parse import split_model_id

    wanted = given.strip().lower()
    if not wanted:
        return []
    parts = split_model_id(given)
    owner, name = parts if parts else (None, given.strip())
    candidates = {}
    for model_id, downloads in _candidates(db, wanted, owner, name):
        candidates[model_id] = downloads
    candidates.pop(given, None)
    scored = []
    for model_id, downloads in candidates.items():
        score = _similarity(wanted, name.lower(), model_id.lower())
        if score >= SUGGEST_CUTOFF:
            scored.append((-score, -(downloads or 0), model_id))
    return [model_id for _, _, model_id in sorted(scored)[:limit]]


def _similarity(wanted, wanted_name, candidate):
    """difflib's ratio against the whole ID or the name alone, whichever is higher."""
    if candidate == wanted:
        return 2.0  # the right ID in another casing always comes first
    return max(difflib.SequenceMatcher(None, wanted, candidate).ratio(),
               difflib.SequenceMatcher(None, wanted_name, candidate.partition("/")[2]).ratio())


def _candidates(db, wanted, owner, name):
    """(model_id, downloads) pairs worth ranking, a few hundred at most, repeats allowed."""
    conn = db.conn
    alive = "removed_at is null"
    fts_join = ("select m.model_id, m.downloads from models_fts f join models m on m.rowid = f.rowid "
                f"where models_fts match ? and m.{alive}")
    if len(wanted) >= MIN_FTS_CHARS:
        # The right ID in another casing: the trigram index ignores case, and
        # only IDs holding all of `wanted` match, so this needs no limit and is
        # never crowded out.
        yield from conn.execute(fts_join + " and lower(m.model_id) = lower(?)",
                                ["{model_id} : " + fts_phrase(wanted), wanted])
    # IDs that extend it, the same name under other owners, and names holding
    # all the same parts.
    phrases = [fts_phrase(text) for text in dict.fromkeys([wanted, name.lower()])
               if len(text) >= MIN_FTS_CHARS]
    fragments = [p for p in re.split(r"[-_./\s]+", name) if len(p) >= MIN_FTS_CHARS]
    if len(fragments) > 1:
        phrases.append(" AND ".join(fts_phrase(p) for p in fragments))
    for phrase in phrases:
        yield from conn.execute(fts_join + " limit ?",
                                [f"{{model_id name}} : ({phrase})", CANDIDATES_PER_QUERY])
    if owner:
        # A typo in the name: the IDs next to it in primary-key order, under each
        # casing of the owner the FTS index knows.
        owners = {owner}
        for (model_id,) in conn.execute(
                "select model_id from models_fts where models_fts match ? limit ?",
                ["{model_id} : " + fts_phrase(owner + "/"), CANDIDATES_PER_QUERY]):
            found = model_id.partition("/")[0]
            if found.lower() == owner.lower():
                owners.add(found)
        for found in sorted(owners):
            # Both probes stay inside the owner's stretch of the index: "/" sorts
            # just before "0".
            probe = f"{found}/{name}"
            yield from conn.execute(
                f"select model_id, downloads from models where model_id >= ? and model_id < ? "
                f"and {alive} order by model_id limit ?", [probe, found + "0", NEIGHBOURS])
            yield from conn.execute(
                f"select model_id, downloads from models where model_id < ? and model_id > ? "
                f"and {alive} order by model_id desc limit ?", [probe, found + "/", NEIGHBOURS])
