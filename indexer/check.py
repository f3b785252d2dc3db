"""Read-only: check model IDs against the catalog and suggest close ones for unknown IDs."""

from __future__ import annotations

import difflib
import re

from indexer import status as status_rule
from indexer.export import MIN_FTS_CHARS, fts_phrase
from indexer.modelid import CONTROL_CHARS, MAX_ID_PART, split_model_id

SUGGEST_CUTOFF = 0.6
CANDIDATES_PER_QUERY = 200
NEIGHBOURS = 50
# Suggestions cost a few milliseconds per unknown ID (about 8.5 ms on the full
# catalog), so a long list of unknown IDs would take minutes: only the first
# SUGGEST_FOR distinct unknown IDs get them, the rest say so (issue 14).
SUGGEST_FOR = 100
MAX_ID_CHARS = 2 * MAX_ID_PART + 1
NOT_AN_ID = "not a model ID"


def classify(row):
    """(status, note) for a catalog row (None: no such model), read from the stored columns.

    The rule that sets them lives in indexer/status.py; this only reads its answer.
    """
    if row is None or not row.get("status"):
        return status_rule.UNKNOWN, None
    if row["status"] == "ok":
        return "ok", capability_note(row)
    return row["status"], row.get("status_reason")


def capability_note(row):
    """`chat, 131k context, tools, vision, 1 credit/call` for a model whose capabilities were read, else None.

    They describe what the model can do, which is not always what the service accepts.
    """
    if not (row.get("capabilities_at") or row.get("providers_at")):
        return None
    parts = [row["kind"]] if row.get("kind") else []
    if row.get("context_length"):
        parts.append(f"{_tokens(row['context_length'])} context")
    parts.extend(flag for flag in ("tools", "vision", "reasoning") if row.get(flag) == 1)
    cost = row.get("cost_per_call")
    if cost is not None:
        parts.append(f"{cost:g} credit{'' if cost == 1 else 's'}/call")
    return ", ".join(parts) or None


def _tokens(n):
    return f"{n // 1000}k" if n >= 1000 else str(n)


def why_not_an_id(given):
    """Why `given` cannot name any model (a note), or None when it may be one worth looking up."""
    if CONTROL_CHARS.search(given):
        return f"{NOT_AN_ID}: it holds a control character"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in given):
        # Bytes that are not UTF-8 reach us as lone surrogates (surrogateescape).
        return f"{NOT_AN_ID}: it is not valid UTF-8"
    if len(given) > MAX_ID_CHARS:
        return f"{NOT_AN_ID}: it is longer than any model ID ({MAX_ID_CHARS} characters)"
    return None


def find_model(db, model_id):
    """The catalog row `model_id` names exactly (as ModelScope compares IDs), or None."""
    return find_models(db, [model_id]).get(model_id)


def find_models(db, ids):
    """{given: row} for each of `ids` the catalog knows, exactly (by model_id) or by the callable ID."""
    conn = db.conn
    wanted = list(dict.fromkeys(ids))
    # A temp table keeps any number of IDs to two statements: a primary-key
    # join, then one pass over the API set (api_model_id has no index of its
    # own; the API set is small). It lives in the temp schema, so a read-only
    # catalog file is never written.
    conn.execute("create temp table if not exists check_wanted (id text primary key)")
    conn.execute("delete from temp.check_wanted")
    try:
        conn.executemany("insert or ignore into temp.check_wanted values (?)", ((i,) for i in wanted))
        found = {}
        cursor = conn.execute("select m.* from temp.check_wanted w join models m on m.model_id = w.id")
        columns = [d[0] for d in cursor.description]
        for values in cursor:
            row = dict(zip(columns, values))
            found[row["model_id"]] = row
        cursor = conn.execute(
            "select * from models where api_inference = 1 "
            "and api_model_id in (select id from temp.check_wanted) "
            "order by api_model_id, removed_at is not null, model_id")
        columns = [d[0] for d in cursor.description]
        for values in cursor:
            row = dict(zip(columns, values))
            # An exact model_id wins; among callable-ID matches, a live model first.
            found.setdefault(row["api_model_id"], row)
        return found
    finally:
        conn.execute("delete from temp.check_wanted")


def check_ids(db, ids, suggest_for=SUGGEST_FOR):
    """One result dict per ID, in order: id, status, model_id, note, suggestions.

    Suggestions go to the first `suggest_for` distinct unknown IDs only.
    """
    lookable = [given for given in ids if why_not_an_id(given) is None]
    found = find_models(db, lookable)
    suggested = {}
    results = []
    for given in ids:
        reason = why_not_an_id(given)
        if reason:
            results.append({"id": given, "status": "unknown", "model_id": None, "note": reason,
                            "suggestions": []})
            continue
        row = found.get(given)
        status, note = classify(row)
        # A kept callable ID names how to call a callable model only (issue 15): a
        # model that left the API set keeps its old api_model_id in the row.
        if row and status == "ok" and row["api_model_id"] and row["api_model_id"] != given:
            note = "; ".join(filter(None, [f"call it as {row['api_model_id']}", note]))
        suggestions = []
        if status in ("unknown", "removed"):
            if given not in suggested and len(suggested) < suggest_for:
                suggested[given] = suggest(db, given)
            if given in suggested:
                suggestions = suggested[given]
            elif suggest_for:
                limit_note = f"no suggestions past the first {suggest_for} unknown IDs"
                note = "; ".join(filter(None, [note, limit_note]))
        results.append({
            "id": given,
            "status": status,
            "model_id": row["model_id"] if row else None,
            "note": note,
            "suggestions": suggestions,
        })
    return results


def suggest(db, given, limit=3):
    """Existing model IDs close to `given`: a case-insensitive match first, then similar IDs.

    SQL narrows the field to a few hundred candidates (FTS on the ID and its name
    parts, and the same owner), so the work never grows with the catalog.
    """
    wanted = given.strip().lower()
    if not wanted or why_not_an_id(given):
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
                                [f"{{model_id}} : ({phrase})", CANDIDATES_PER_QUERY])
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
