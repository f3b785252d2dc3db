"""SQLite only: merge a crawl's staged observations into the catalog, with events and stats.

Everything here runs inside the one transaction that also finishes the crawl run,
so a crash leaves the models, their events and their stats either all written or
none. The work is set-based SQL against the staging database, so it never holds
the catalog in memory.
"""

from __future__ import annotations

from contextlib import nullcontext

from indexer import growth, schema, stage, status, store

EVENTS = ("added", "removed", "returned", "api_enabled", "api_disabled", "listed",
          "unlisted", "changed", "status_changed")
TRACKED_FIELDS = ("license", "tasks", "chinese_name")
STAGE_META = stage.STAGE_COLUMNS[1:]


def merge(conn, run_id, scope, complete, now, confirm=2, keep_sample=False):
    """Write one crawl's observations; returns {"events": n, "stats_rows": n, "baseline": bool}."""
    at = store.iso(now)
    day = now.date().isoformat()
    wiped = False
    if not keep_sample and _get(conn, "sample") == "1":
        if not complete:
            # A live crawl that did not finish leaves the sample in place rather
            # than a partial catalog (issue 4).
            return {"events": 0, "stats_rows": 0, "baseline": False}
        _wipe_sample(conn, run_id)
        wiped = True
    if keep_sample:
        store.set_info(conn, "sample", "1")
    baseline = wiped or not conn.execute(
        "select 1 from crawl_runs where scope = ? and status = 'complete' and id != ? limit 1",
        [scope, run_id]).fetchone()
    stats_rows = _save_stats(conn, day)
    # An empty catalog (a first crawl, or the sample just wiped): every row is new.
    fresh = (conn.execute("select 1 from models limit 1").fetchone() is None
             and conn.execute("select 1 from model_tracking limit 1").fetchone() is None)
    events = _save_models_and_flags(conn, run_id, scope, complete, at, confirm, baseline, fresh)
    growth.refresh(conn, day)
    return {"events": events, "stats_rows": stats_rows, "baseline": bool(complete and baseline)}


def _save_models_and_flags(conn, run_id, scope, complete, at, confirm, baseline, fresh):
    # Into an empty catalog, building the indexes, the full-text index and the facet
    # counts once at the end is cheaper than keeping them up row by row (bench/findings.md).
    with schema.bulk_load(conn) if fresh else nullcontext() as index_now:
        _save_models(conn, at, fresh)
        if index_now is not None:
            index_now()  # the flag updates below are few and find their rows by index
        return _save_flags(conn, run_id, scope, complete, at, confirm, baseline, fresh)


def _save_flags(conn, run_id, scope, complete, at, confirm, baseline, fresh):
    events_before = _event_count(conn)
    if complete:
        emit = not baseline
        _track_set(conn, run_id, at, confirm, emit, "api", "stage.api", "api_enabled", "api_disabled")
        _track_set(conn, run_id, at, confirm, emit, "listed", "stage.listed", "listed", "unlisted")
        if scope == "full":
            _track_presence(conn, run_id, at, confirm, emit, fresh)
        _flags_from_tracking(conn)
        schema.derive_columns(conn)
        if scope == "full" and fresh:
            _start_presence(conn)
        _announce_status(conn, run_id, at, emit)
    else:
        # An incomplete crawl saves what it saw but never concludes that
        # something is gone: only positive flags move.
        conn.execute("update models set api_inference = 1 where api_inference is not 1 "
                     "and model_id in (select model_id from stage.api)")
        conn.execute("update models set in_inference_list = 1 where in_inference_list is not 1 "
                     "and model_id in (select model_id from stage.listed)")
        schema.derive_columns(conn)
    return _event_count(conn) - events_before


def _get(conn, key):
    row = conn.execute("select value from catalog_info where key = ?", [key]).fetchone()
    return row[0] if row else None


def _event_count(conn):
    return conn.execute("select coalesce(max(id), 0) from model_events").fetchone()[0]


def _wipe_sample(conn, run_id):
    # The first live crawl replaces the embedded sample: its rows were never
    # real, so they leave no events behind (issue 4).
    for table in ("models", "model_events", "model_stats", "model_tracking", "model_growth"):
        conn.execute(f"delete from {table}")
    conn.execute("delete from crawl_runs where id != ?", [run_id])
    conn.execute("delete from catalog_info where key = 'sample'")


def _save_stats(conn, day):
    # One row per model per day on which downloads or likes moved since the
    # values `models` holds, which are the last ones recorded.
    before = conn.total_changes
    conn.execute("""
        insert into model_stats (model_id, day, downloads, likes)
        select s.model_id, ?, s.downloads, s.likes
        from stage.items s left join models m on m.model_id = s.model_id
        where (s.downloads is not null or s.likes is not null)
          and (m.model_id is null or m.downloads is not s.downloads or m.likes is not s.likes)
        on conflict (model_id, day) do update
          set downloads = excluded.downloads, likes = excluded.likes""", [day])
    return conn.total_changes - before


def _save_models(conn, at, fresh=False):
    cols = ", ".join(STAGE_META)
    # A new row gets its kind and status as it goes in, so a first crawl does not rewrite
    # every row twice more (schema.derive_columns then only moves the flagged ones); the
    # status is that of a row with no flag yet, whatever its kind (status.decide).
    status.register_functions(conn)
    derived = "model_kind(tasks), model_status(null, 0, 0, null), model_status_reason(null, 0, 0, null)"
    sets = ", ".join(["kind = case when tasks is not excluded.tasks then excluded.kind else kind end"]
                     + [f"{c} = excluded.{c}" for c in STAGE_META])
    differs = " or ".join(f"{c} is not excluded.{c}" for c in STAGE_META)
    # Rewrite a row only when its metadata moved: an unchanged re-crawl then
    # touches no index and no full-text entry, only `last_seen_at` below. In ID order:
    # the stage keeps the hub's order, and rows (and their rowids) go in by ID as before.
    conn.execute(f"""
        insert into models (model_id, {cols}, api_inference, in_inference_list,
                            first_seen_at, last_seen_at, kind, status, status_reason)
        select model_id, {cols}, 0, 0, ?, ?, {derived} from stage.items where true
        order by model_id
        on conflict (model_id) do update set {sets} where {differs}""", [at, at])
    if not fresh:  # every row of a fresh catalog was just inserted with `at`
        conn.execute("update models set last_seen_at = ? where last_seen_at is not ? "
                     "and model_id in (select model_id from stage.items)", [at, at])
    # IDs the inference service lists but the hub list lacks still get a row
    # (docs/modelscope-api.md §2.6).
    conn.execute("""
        insert into models (model_id, owner, name, url, api_inference, in_inference_list,
                            first_seen_at, last_seen_at)
        select l.model_id, substr(l.model_id, 1, instr(l.model_id, '/') - 1),
               substr(l.model_id, instr(l.model_id, '/') + 1),
               'https://modelscope.cn/models/' || l.model_id, 0, 0, ?, ?
        from stage.listed l
        where l.model_id not in (select model_id from stage.items)
        on conflict (model_id) do update set last_seen_at = excluded.last_seen_at""", [at, at])


def _events(conn, run_id, at, event, select_sql, params=()):
    conn.execute(f"""insert into model_events (run_id, model_id, event, at, detail)
                     select ?, model_id, ?, ?, detail from ({select_sql})""",
                 [run_id, event, at, *params])


def _track_set(conn, run_id, at, confirm, emit, column, stage_table, on_event, off_event):
    """Debounced membership of a set (the API-Inference set, the /models list)."""
    missing = f"{column}_missing"
    if emit:
        _events(conn, run_id, at, on_event, f"""
            select s.model_id, null as detail from {stage_table} s
            left join model_tracking t on t.model_id = s.model_id
            where t.{column} is not 1 order by s.model_id""")
    first = ", api_first_at" if column == "api" else ""
    first_value = ", ?" if column == "api" else ""
    first_update = ", api_first_at = coalesce(api_first_at, excluded.api_first_at)" if column == "api" else ""
    conn.execute(f"""
        insert into model_tracking (model_id, {column}, {missing}{first})
        select model_id, 1, 0{first_value} from {stage_table} where true
        on conflict (model_id) do update set {column} = 1, {missing} = 0{first_update}""",
                 [at] if column == "api" else [])
    conn.execute(f"""update model_tracking set {missing} = {missing} + 1
                     where {column} = 1 and model_id not in (select model_id from {stage_table})""")
    gone = f"select model_id, null as detail from model_tracking where {column} = 1 and {missing} >= ?"
    if emit:
        _events(conn, run_id, at, off_event, gone + " order by model_id", [confirm])
    conn.execute(f"update model_tracking set {column} = 0, {missing} = 0 "
                 f"where {column} = 1 and {missing} >= ?", [confirm])


def _track_presence(conn, run_id, at, confirm, emit, fresh=False):
    """Added, returned, changed and (debounced) removed, from a complete full crawl.

    `fresh`: the catalog was empty, so nothing can return, change, be missing or be
    removed; the scans that look for those are skipped, and the rows go in after the
    status is derived (`_start_presence`).
    """
    if emit:
        _events(conn, run_id, at, "added", """
            select s.model_id, null as detail from stage.items s
            left join model_tracking t on t.model_id = s.model_id
            where t.present is null order by s.model_id""")
        _events(conn, run_id, at, "returned", """
            select s.model_id, null as detail from stage.items s
            join model_tracking t on t.model_id = s.model_id
            where t.present = 0 order by s.model_id""")
        for field in TRACKED_FIELDS:
            value = "json({})" if field == "tasks" else "{}"
            _events(conn, run_id, at, "changed", f"""
                select s.model_id, json_object('field', '{field}',
                    'old', {value.format('t.' + field)}, 'new', {value.format('s.' + field)}) as detail
                from stage.items s join model_tracking t on t.model_id = s.model_id
                where t.present = 1 and t.{field} is not s.{field} order by s.model_id""")
    if fresh:
        return
    conn.execute("""update models set removed_at = null where removed_at is not null
                    and model_id in (select model_id from stage.items)""")
    conn.execute("""
        insert into model_tracking (model_id, present, missing, license, tasks, chinese_name)
        select model_id, 1, 0, license, tasks, chinese_name from stage.items where true
        on conflict (model_id) do update set present = 1, missing = 0,
          license = excluded.license, tasks = excluded.tasks, chinese_name = excluded.chinese_name
        where present is not 1 or missing != 0 or license is not excluded.license
          or tasks is not excluded.tasks or chinese_name is not excluded.chinese_name""")
    conn.execute("""update model_tracking set missing = missing + 1
                    where present = 1 and model_id not in (select model_id from stage.items)""")
    gone = "select model_id, null as detail from model_tracking where present = 1 and missing >= ?"
    if emit:
        _events(conn, run_id, at, "removed", gone + " order by model_id", [confirm])
    conn.execute(f"update models set removed_at = ? where model_id in ({gone.replace(', null as detail', '')})",
                 [at, confirm])
    conn.execute("update model_tracking set present = 0, missing = 0 where present = 1 and missing >= ?",
                 [confirm])


def _start_presence(conn):
    """The presence rows of a fresh catalog, with the status just derived.

    What `_track_presence` would have written, plus the status `_announce_status` would
    then have copied from `models` row by row (2.4 s at 1,000,000 models); no event
    follows from a status first written. The values are read from `models`, which the
    merge just filled from the stage, in ID order: the tracking table, keyed by ID,
    then takes appends instead of inserts in the hub's order. Only the IDs the
    inference service lists and the hub list lacks are not present (§2.6).
    """
    conn.execute("""
        insert into model_tracking (model_id, present, missing, license, tasks, chinese_name, status)
        select model_id, 1, 0, license, tasks, chinese_name, status from models
        where model_id not in (select l.model_id from stage.listed l
                               where l.model_id not in (select model_id from stage.items))
        order by model_id
        on conflict (model_id) do update set present = 1, missing = 0,
          license = excluded.license, tasks = excluded.tasks, chinese_name = excluded.chinese_name,
          status = excluded.status""")


def _announce_status(conn, run_id, at, emit):
    """`status_changed` for each model whose stored status moved since the event log last said.

    The status is derived from the debounced flags and removal, so it is debounced
    with them; an incomplete crawl never announces, and the next complete one
    catches up on whatever moved in between.
    """
    moved = """
        select m.model_id, json_object('old', t.status, 'new', m.status,
                                       'reason', m.status_reason) as detail
        from model_tracking t join models m on m.model_id = t.model_id
        where t.status is not null and t.status is not m.status order by m.model_id"""
    if emit:
        _events(conn, run_id, at, "status_changed", moved)
    # One join, not a lookup per tracked row and then another (SQLite 3.33's UPDATE ... FROM).
    conn.execute("""update model_tracking set status = m.status from models m
                    where m.model_id = model_tracking.model_id
                      and model_tracking.status is not m.status""")


def _flags_from_tracking(conn):
    # A complete crawl sets the user-facing flags from the debounced state, so a
    # model that drops out for one crawl stays exported until the drop is confirmed.
    for flag, column in (("api_inference", "api"), ("in_inference_list", "listed")):
        # `+` keeps the planner off the flag's index, where `= 0` is nearly every
        # row; the few flagged IDs then find their rows by primary key.
        conn.execute(f"""update models set {flag} = 1 where +{flag} = 0
                         and model_id in (select model_id from model_tracking where {column} = 1)""")
        conn.execute(f"""update models set {flag} = 0 where {flag} = 1
                         and model_id not in (select model_id from model_tracking where {column} = 1)""")

