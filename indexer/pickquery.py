"""Pure: the picker's filters from URL parameters, the SQL they select with, and its lists as text.

No database, no Datasette: indexer/picker.py runs what this builds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from urllib.parse import urlencode

from indexer import export, status
from indexer.export import MIN_FTS_CHARS, fts_phrase, like_pattern

# Cherry Studio's "add model" box takes at most 200 characters (issue 13).
CHERRY_CHARS = 200
WINDOWS = (1, 7, 30)
STATUS_CHOICES = (*status.STATUSES, "any")
SORTS = {
    # downloads and likes have indexes (store.py); ties go by ID so pages are stable.
    "downloads": "downloads desc, model_id",
    "likes": "likes desc, model_id",
    "newest": "coalesce(created_at, first_seen_at) desc, model_id",
}
FLAGS = export.CAPABILITY_FLAGS
FLAG_TITLES = {"vision": "takes images as input", "tools": "can call tools (functions)",
               "reasoning": "thinks before it answers"}
ROW_COLUMNS = ("model_id", "coalesce(api_model_id, model_id) as call_id", "status",
               "status_reason", "kind", "tasks", "downloads", "likes", "updated_at",
               "created_at", "vision", "tools", "reasoning", "context_length",
               "context_length_max", "cost_per_call", "cost_tier", "params_b", "providers")
JSON_KEYS = ("id", "model_id", "status", "status_reason", "kind", "tasks", "downloads",
             "likes", "updated_at", "created_at", "vision", "tools", "reasoning",
             "context_length", "context_length_max", "cost_per_call", "cost_tier",
             "params_b", "providers")


@dataclass(frozen=True)
class Pick:
    """What the picker shows; every field is a URL parameter of the same name."""

    q: str = ""
    status: str = "ok"
    kind: str = ""
    task: str = ""
    vision: bool = False
    tools: bool = False
    reasoning: bool = False
    min_context: int | None = None
    max_cost: float | None = None
    new: int | None = None
    sort: str = "downloads"
    page: int = 1


def parse_pick(args):
    """(Pick, errors) from URL parameters; a bad value is reported and left at its default."""
    values, errors = {}, []

    def text(name):
        return (args.get(name) or "").strip()

    values["q"] = text("q")
    values["task"] = text("task")
    for name, choices in (("status", STATUS_CHOICES), ("kind", status.KINDS), ("sort", SORTS)):
        value = text(name)
        if value and value not in choices:
            errors.append(f"{name} must be one of: {', '.join(choices)}")
        elif value:
            values[name] = value
    for flag in FLAGS:
        values[flag] = text(flag) in ("1", "on", "true")
    for name, kind, check, message in (
            ("min_context", int, lambda v: v > 0, "a whole number of tokens above 0"),
            ("max_cost", float, lambda v: v >= 0 and math.isfinite(v),
             "a number of credits, 0 or more"),
            ("new", int, lambda v: v in WINDOWS,
             "one of " + ", ".join(map(str, WINDOWS)) + " (days)"),
            ("page", int, lambda v: 0 < v < 1_000_000, "a page number from 1")):
        raw = text(name)
        if not raw:
            continue
        try:
            value = kind(raw)
            if not check(value):
                raise ValueError
        except ValueError:
            errors.append(f"{name} must be {message}")
            continue
        values[name] = value
    return Pick(**values), errors


def pick_args(pick, **override):
    """The URL parameters that say `pick`, defaults left out, in a stable order."""
    chosen = {**asdict(pick), **override}
    out = []
    for item in fields(Pick):
        value = chosen[item.name]
        # status=ok is the default too, but it is said out loud so that a shared
        # link keeps meaning "callable" whatever the default becomes.
        if value in (None, "", False) or (item.name, value) in (("page", 1), ("sort", "downloads")):
            continue
        out.append((item.name, "1" if value is True else f"{value:g}" if isinstance(value, float)
                    else str(value)))
    return out


def pick_url(path, pick, extra=(), **override):
    args = pick_args(pick, **override) + list(extra)
    return path + ("?" + urlencode(args) if args else "")


def build_where(pick, since=None):
    """(" where ...", params) for `pick`; every user value is a bound parameter."""
    where, params = [], []
    if pick.status != "any":
        where.append("status = ?")
        params.append(pick.status)
    more, values = export.capability_conditions(pick)
    where.extend(more)
    params.extend(values)
    if pick.task:
        where.append("exists (select 1 from json_each(models.tasks) where value = ?)")
        params.append(pick.task)
    if pick.new is not None and since is not None:
        where.append("coalesce(created_at, first_seen_at) >= ?")
        params.append(since)
    if len(pick.q) >= MIN_FTS_CHARS:
        # The trigram index, limited to the ID (which ends in the name) and the Chinese name.
        where.append("rowid in (select rowid from models_fts where models_fts match ?)")
        params.append("{model_id chinese_name} : " + fts_phrase(pick.q))
    elif pick.q:
        where.append("model_id like ? escape '\\'")
        params.append(like_pattern(pick.q))
    return (" where " + " and ".join(where) if where else ""), params


def cherry_lines(ids, limit=CHERRY_CHARS):
    """IDs joined by commas into lines of at most `limit` characters (a longer ID stands alone)."""
    line = ""
    for model_id in ids:
        if line and len(line) + 1 + len(model_id) > limit:
            yield line
            line = ""
        line = f"{line},{model_id}" if line else model_id
    if line:
        yield line


def text_chunks(lines, size=64 * 1024):
    """Lines joined into chunks of about `size` characters, each line ending in a newline."""
    chunk, length = [], 0
    for line in lines:
        chunk.append(line + "\n")
        length += len(line) + 1
        if length >= size:
            yield "".join(chunk)
            chunk, length = [], 0
    if chunk:
        yield "".join(chunk)


def json_lines(rows, filters):
    """The .json answer as lines: an object whose `count` follows the models it counts."""
    yield json.dumps({"ok": True, "filters": filters})[:-1] + ', "models": ['
    count = 0
    for row in rows:
        item = {key: row[key] for key in JSON_KEYS if key != "id"}
        item = {"id": row["call_id"], **item, "tasks": json_list(row["tasks"]),
                "providers": None if row["providers"] is None else json_list(row["providers"])}
        yield ("," if count else "") + json.dumps(item, ensure_ascii=False)
        count += 1
    yield f'], "count": {count}}}'


def chips(row):
    """(label, explanation) pairs for what is known of a model's capabilities, unknowns left out.

    The labels are short so that the chips of one model fit on its row.
    """
    out = [(flag, FLAG_TITLES[flag]) for flag in FLAGS if row[flag] == 1]
    context = row["context_length_max"] or row["context_length"]
    if context:
        label = f"{context // 1024}K ctx" if context >= 1024 else f"{context} ctx"
        out.append((label, f"context window up to {context:,} tokens"))
    if row["params_b"] is not None:
        out.append((f"{row['params_b']:g}B", f"{row['params_b']:g} billion parameters"))
    if row["cost_per_call"] is not None:
        cost = row["cost_per_call"]
        out.append((f"{cost:g} cr/call", f"{cost:g} credits per call"))
    elif row["cost_tier"]:
        out.append((row["cost_tier"], "cost tier"))
    return out


def json_list(text):
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []
