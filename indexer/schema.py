"""SQLite schema only: the catalog's tables, indexes, FTS, triggers and views, and the migrations
that bring an older catalog to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlite_utils

# The columns of the first releases; later ones come from migrations, so a fresh
# catalog and an upgraded one end with the same `create table` text.
MODELS_COLUMNS = {
    "model_id": str, "owner": str, "name": str, "chinese_name": str, "description": str,
    "tasks": str, "tags": str, "libraries": str, "license": str, "downloads": int,
    "likes": int, "created_at": str, "updated_at": str, "api_inference": int,
    "api_model_id": str, "in_inference_list": int, "support_inference": str, "url": str,
    "first_seen_at": str, "last_seen_at": str, "removed_at": str,
}
# Added by migration 4 (issue 11, 12): what each model is, whether its ID will
# work, and what it can do. NULL where unknown; every surface reads these
# instead of deciding again (indexer/status.py holds the rule).
STATUS_COLUMNS = {"kind": str, "status": str, "status_reason": str}
CAPABILITY_COLUMNS = {
    "providers": str, "cost_per_call": float, "cost_tier": str, "context_length": int,
    "context_length_max": int, "vision": int, "tools": int, "reasoning": int, "params_b": float,
    "capabilities_at": str, "providers_at": str,
}
JSON_COLUMNS = ("tasks", "tags", "libraries")
# What people search by name; descriptions would double the index and the crawl's
# time to build it (bench/findings.md), and stay searchable with `description__contains`.
# No `name`: it is the end of `model_id`, so every search it matches model_id matches too,
# and indexing it twice cost a quarter of the index and of its build (migration 9).
FTS_COLUMNS = ("model_id", "chinese_name", "tags")
FTS_TRIGGERS = ("models_ai", "models_ad", "models_au")
FACET_ARRAYS = ("tasks", "libraries")
# Plain columns whose whole-catalog counts facet_counts also keeps (migration 6,
# issue 16): the unfiltered models page reads its facets from there.
FACET_COLUMNS = ("status", "kind", "owner", "license")
VIEWS = {
    # Growth over 7 and 30 days, stored by each merge (indexer/growth.py holds the
    # rule): sorting by it reads an index instead of two lookups per model.
    "trending": """
        select g.model_id, m.owner, m.kind, m.tasks, m.status, m.downloads, m.likes,
          g.downloads_7d, g.downloads_30d, m.url
        from model_growth g left join models m on m.model_id = g.model_id
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
        select coalesce(api_model_id, model_id) as model_id, owner, kind, tasks, downloads, likes,
          status_reason, url
        from models
        where status = 'ok'
    """,
}


VIEWS_NEEDING_STATUS = ("api_models", "trending")
VIEWS_NEEDING_GROWTH = ("trending",)

# Partial: only the few hundred flagged models are ever looked up by flag.
TRACKING_INDEX_SQL = ("create index if not exists model_tracking_{column} "
                      "on model_tracking({column}) where {column} = 1")


def _create_tables(db: sqlite_utils.Database) -> None:
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
    for column in ("api", "listed"):
        conn.execute(TRACKING_INDEX_SQL.format(column=column))
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
    _create_views(db)


def _create_views(db: sqlite_utils.Database) -> None:
    # A view may name columns a later migration adds: those views wait for it.
    columns = set(db.table("models").columns_dict)
    for name, sql in VIEWS.items():
        if name in VIEWS_NEEDING_STATUS and "status" not in columns:
            continue
        if name in VIEWS_NEEDING_GROWTH and not db.table("model_growth").exists():
            continue
        db.create_view(name, sql.strip(), replace=True)


def _create_facet_counts(db: sqlite_utils.Database, columns: tuple[str, ...] = ()) -> None:
    # Facet counts over the whole models table, kept exact by triggers, so the
    # unfiltered models page need not unpack 254,000 JSON arrays or group 254,000
    # rows per facet (issue 6, issue 16). Version 2 counted the arrays only;
    # migration 6 adds the plain `columns`.
    conn = db.conn
    fresh = not db.table("facet_counts").exists()
    conn.execute("""create table if not exists facet_counts (
        facet text not null, value text not null, count integer not null,
        primary key (facet, value)) without rowid""")
    for sql in facet_trigger_sql(columns):
        conn.execute(sql)
    if fresh:
        rebuild_facet_counts(conn, columns)


FACET_TRIGGERS = ("models_facets_ai", "models_facets_ad", "models_facets_au")


def facet_trigger_sql(columns: tuple[str, ...]) -> list[str]:
    """The three `create trigger` statements that keep facet_counts exact."""

    def values(row, column):
        return f"json_each(case when json_valid({row}.{column}) then {row}.{column} end)"

    # `guard` is a condition on the update trigger's row: a facet whose value did
    # not change is left alone.
    def add(row, guard=lambda c: "true"):
        arrays = "".join(f"""
            insert into facet_counts (facet, value, count)
            select '{c}', value, 1 from {values(row, c)} where {guard(c)}
            on conflict (facet, value) do update set count = count + 1;""" for c in FACET_ARRAYS)
        plain = "".join(f"""
            insert into facet_counts (facet, value, count)
            select '{c}', {row}.{c}, 1 where {row}.{c} is not null and {guard(c)}
            on conflict (facet, value) do update set count = count + 1;""" for c in columns)
        return arrays + plain

    def remove(row, guard=lambda c: "true"):
        arrays = "".join(f"""
            update facet_counts set count = count - 1
            where {guard(c)} and facet = '{c}' and value in (select value from {values(row, c)});"""
                         for c in FACET_ARRAYS)
        plain = "".join(f"""
            update facet_counts set count = count - 1
            where {guard(c)} and facet = '{c}' and value = {row}.{c};""" for c in columns)
        return arrays + plain + "\n            delete from facet_counts where count <= 0;"

    facets = (*FACET_ARRAYS, *columns)
    changed = " or ".join(f"old.{c} is not new.{c}" for c in facets)
    moved = lambda c: f"old.{c} is not new.{c}"  # noqa: E731
    return [f"create trigger if not exists models_facets_ai after insert on models "
            f"begin {add('new')} end",
            f"create trigger if not exists models_facets_ad after delete on models "
            f"begin {remove('old')} end",
            f"create trigger if not exists models_facets_au after update on models "
            f"when {changed} begin {remove('old', moved)} {add('new', moved)} end"]


def rebuild_facet_counts(conn, columns: tuple[str, ...] = FACET_COLUMNS) -> None:
    """Count the facets over the whole models table in one GROUP BY per facet: the arrays,
    and the plain `columns` (all of FACET_COLUMNS from migration 6 on)."""
    conn.execute("delete from facet_counts")
    for c in FACET_ARRAYS:
        conn.execute(f"""insert into facet_counts (facet, value, count)
                         select '{c}', j.value, count(*) from models,
                           json_each(case when json_valid(models.{c}) then models.{c} end) j
                         group by j.value""")
    for c in columns:
        conn.execute(f"""insert into facet_counts (facet, value, count)
                         select '{c}', {c}, count(*) from models
                         where {c} is not null group by {c}""")


# Every model's facet values, as a number naming their combination (issue 16). A search
# or filter's facets then group the matches' numbers from a narrow table (a few bytes a
# model) instead of reading each match's whole row (about 1.4 KB): a tenth of the time
# for the 14,000 embedding models of a 254,000-model catalog.
GROUP_COLUMNS = ("status", "kind", "owner", "license", "tasks")
GROUP_TRIGGERS = ("models_groups_ai", "models_groups_ad", "models_groups_au")


def _group_key(row: str) -> str:
    return "json_array(" + ", ".join(f"{row}.{c}" for c in GROUP_COLUMNS) + ")"


def _create_facet_groups(db: sqlite_utils.Database) -> None:
    conn = db.conn
    fresh = not db.table("model_facet_groups").exists()
    values = ", ".join(GROUP_COLUMNS)
    conn.execute(f"""create table if not exists facet_groups (
        grp integer primary key, key text not null unique, {values})""")
    conn.execute("""create table if not exists model_facet_groups (
        id integer primary key, grp integer not null)""")
    for sql in group_trigger_sql():
        conn.execute(sql)
    if fresh:
        rebuild_facet_groups(conn)


def group_trigger_sql() -> list[str]:
    """The three `create trigger` statements that keep model_facet_groups exact. A combination
    no model has any more keeps its facet_groups row: nothing points at it, so no count sees it."""
    cols = ", ".join(GROUP_COLUMNS)

    def upsert(row):
        new = ", ".join(f"{row}.{c}" for c in GROUP_COLUMNS)
        # An upsert, not `insert or ignore`: the statement that fires a trigger imposes
        # its own conflict policy on the trigger's `or ignore`, and the merge's upsert aborts.
        return (f"insert into facet_groups (key, {cols}) "
                f"values ({_group_key(row)}, {new}) on conflict (key) do nothing;")

    grp = f"(select grp from facet_groups where key = {_group_key('new')})"
    changed = " or ".join(f"old.{c} is not new.{c}" for c in GROUP_COLUMNS)
    return [f"create trigger if not exists models_groups_ai after insert on models begin "
            f"{upsert('new')} insert into model_facet_groups (id, grp) values (new.rowid, {grp}); end",
            "create trigger if not exists models_groups_ad after delete on models begin "
            "delete from model_facet_groups where id = old.rowid; end",
            f"create trigger if not exists models_groups_au after update on models when {changed} "
            f"begin {upsert('new')} "
            f"update model_facet_groups set grp = {grp} where id = new.rowid; end"]


def rebuild_facet_groups(conn) -> None:
    """Number every model's combination of GROUP_COLUMNS in one pass over the table."""
    cols = ", ".join(GROUP_COLUMNS)
    conn.execute("delete from model_facet_groups")
    conn.execute(f"""insert or ignore into facet_groups (key, {cols})
                     select {_group_key('models')}, {cols} from models""")
    conn.execute(f"""insert into model_facet_groups (id, grp)
                     select models.rowid, g.grp from models
                     join facet_groups g on g.key = {_group_key('models')}""")


def _create_fts(db: sqlite_utils.Database) -> None:
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
def bulk_load(conn) -> Iterator[Callable[[], None]]:
    """Inside the caller's transaction: load `models` with its triggers and secondary indexes
    dropped, then rebuild them, the full-text index and facet_counts in one pass each.

    For a load into an empty catalog, where one sorted pass beats row-by-row upkeep
    (bench/findings.md). The objects come back from their own stored DDL, so the schema
    ends exactly as it began; readers see the old state until the transaction commits.
    It yields a function that brings the indexes back early, for the few updates after
    the load that would otherwise scan the table; the triggers still wait for the end.
    """
    saved = conn.execute("select type, name, sql from sqlite_master where tbl_name = 'models' "
                         "and type in ('trigger', 'index') and sql is not null "
                         "order by type = 'trigger', name").fetchall()
    for kind, name, _ in saved:
        conn.execute(f'drop {kind} "{name}"')
    indexes = [sql for kind, _, sql in saved if kind == "index"]

    def index_now() -> None:
        while indexes:
            conn.execute(indexes.pop(0))

    yield index_now
    index_now()
    for kind, _, sql in saved:
        if kind == "trigger":
            conn.execute(sql)
    conn.execute("insert into models_fts(models_fts) values ('rebuild')")
    rebuild_facet_counts(conn)
    rebuild_facet_groups(conn)


def _baseline(db: sqlite_utils.Database) -> None:
    """Version 2, the schema of the first releases: an empty file or a version 1 catalog gains
    every object it lacks (version 1 lacked `facet_counts`)."""
    _create_tables(db)


def _repair_pre_07c010f(db: sqlite_utils.Database) -> None:
    """Version 3: mend what `create ... if not exists` never changed in catalogs created before
    commit 07c010f: full indexes on the tracked flags, a stats-day index, FTS column sizes."""
    conn = db.conn
    conn.execute("drop index if exists idx_model_stats_day")
    for column in ("api", "listed"):
        name = f"model_tracking_{column}"
        row = conn.execute("select sql from sqlite_master where type = 'index' and name = ?",
                           [name]).fetchone()
        if row is None or f"where {column} = 1" not in row[0]:
            conn.execute(f"drop index if exists {name}")
            conn.execute(TRACKING_INDEX_SQL.format(column=column))
    row = conn.execute("select sql from sqlite_master where name = 'models_fts'").fetchone()
    if row is None or "columnsize=0" not in row[0]:
        _recreate_fts(db)


def _recreate_fts(db: sqlite_utils.Database) -> None:
    # The triggers list the indexed columns, so they go and come back with the table.
    for name in FTS_TRIGGERS:
        db.conn.execute(f"drop trigger if exists {name}")
    db.conn.execute("drop table if exists models_fts")
    _create_fts(db)


def _fts_without_description(db: sqlite_utils.Database) -> None:
    """Version 5 (issue 16): the full-text index covers FTS_COLUMNS, no longer `description`,
    which doubled it and the first crawl's time to build it."""
    row = db.conn.execute("select sql from sqlite_master where name = 'models_fts'").fetchone()
    if row is None or "description" in row[0]:
        _recreate_fts(db)


def _fts_of_ids(db: sqlite_utils.Database) -> None:
    """Version 9 (issue 16): the full-text index covers FTS_COLUMNS, no longer `name`, which
    only repeated the end of `model_id`: the same matches from a smaller index, built faster."""
    indexed = [row[1] for row in db.conn.execute("pragma table_info(models_fts)")]
    if indexed != list(FTS_COLUMNS):
        _recreate_fts(db)


def _facets_of_columns(db: sqlite_utils.Database) -> None:
    """Version 6 (issue 16): facet_counts also counts FACET_COLUMNS, so the unfiltered models
    page reads every facet from it instead of grouping the whole table once per facet."""
    for name in FACET_TRIGGERS:
        db.conn.execute(f"drop trigger if exists {name}")
    for sql in facet_trigger_sql(FACET_COLUMNS):
        db.conn.execute(sql)
    rebuild_facet_counts(db.conn, FACET_COLUMNS)


def _create_growth(db: sqlite_utils.Database) -> None:
    conn = db.conn
    conn.execute("""create table if not exists model_growth (
        model_id text primary key, downloads_7d integer, downloads_30d integer) without rowid""")
    db.table("model_growth").create_index(["downloads_7d"], if_not_exists=True)
    db.table("model_growth").create_index(["downloads_30d"], if_not_exists=True)


def _stored_growth(db: sqlite_utils.Database) -> None:
    """Version 7 (issue 16): download growth stored in `model_growth` by each merge, which
    `trending` reads, instead of computed for every model whenever the view was read."""
    from indexer import growth

    _create_growth(db)
    _create_views(db)
    growth.refresh(db.conn)


def _facet_groups(db: sqlite_utils.Database) -> None:
    """Version 8 (issue 16): model_facet_groups, which a search's or filter's facets group
    instead of the matches' whole rows."""
    _create_facet_groups(db)


def _status_and_capabilities(db: sqlite_utils.Database) -> None:
    """Version 4: `kind`, `status` and `status_reason` on every model, stored by the merge
    (issue 11), the capability columns of API models (issue 12), and the status the event
    log last announced, on `model_tracking`."""
    models = db.table("models")
    have = set(models.columns_dict)
    for name, kind in {**STATUS_COLUMNS, **CAPABILITY_COLUMNS}.items():
        if name not in have:
            models.add_column(name, kind)
    # How many models a crawl read capabilities for (indexer/enrich.py).
    if "capabilities_read" not in db.table("crawl_runs").columns_dict:
        db.table("crawl_runs").add_column("capabilities_read", int)
    if "status" not in db.table("model_tracking").columns_dict:
        db.conn.execute("alter table model_tracking add column status text")
    # The status facet and the `status = 'ok'` lists; kind is faceted within them.
    models.create_index(["status", "downloads"], if_not_exists=True)
    models.create_index(["kind", "downloads"], if_not_exists=True)
    # Views depending on `status` could not exist before this step.
    _create_views(db)
    derive_columns(db.conn)
    # The status the event log starts from: without it the first status change
    # after an upgrade would go unannounced (track._announce_status skips NULL).
    db.conn.execute("update model_tracking set status = (select m.status from models m "
                    "where m.model_id = model_tracking.model_id)")


def derive_columns(conn) -> int:
    """Store kind, status and status_reason where they differ from what the rule says now.

    The rule is indexer/status.py, run through its SQLite functions. Only rows whose
    status can be other than `not-api` are passed to it beyond the kind, so the cost
    stays with the API set and the removed models, not the whole catalog.
    """
    from indexer import status

    status.register_functions(conn)
    before = conn.total_changes
    # The merge clears `kind` when a model's tasks change, so only those rows are read.
    conn.execute("update models set kind = model_kind(tasks) where kind is null")
    args = "removed_at, api_inference, in_inference_list, kind, providers"
    conn.execute(f"""
        update models set status = model_status({args}), status_reason = model_status_reason({args})
        where (status is null or status != 'not-api' or api_inference = 1 or in_inference_list = 1
               or removed_at is not null)
          and (status is not model_status({args}) or status_reason is not model_status_reason({args}))""")
    return conn.total_changes - before


Migration = Callable[[sqlite_utils.Database], None]
# (version reached, step), in order. A change to the schema appends one step here
# (and changes the DDL above, so a fresh catalog is born at the newest version);
# tests/test_store.py checks an upgraded catalog equals a fresh one.
MIGRATIONS: tuple[tuple[int, Migration], ...] = (
    (2, _baseline),
    (3, _repair_pre_07c010f),
    (4, _status_and_capabilities),
    (5, _fts_without_description),
    (6, _facets_of_columns),
    (7, _stored_growth),
    (8, _facet_groups),
    (9, _fts_of_ids),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class CatalogError(Exception):
    """A catalog that cannot be opened or written; the message is one line."""


def schema_version(db: sqlite_utils.Database) -> int:
    return db.conn.execute("pragma user_version").fetchone()[0]


def check_version(db: sqlite_utils.Database, path: str) -> int:
    """The catalog's schema version; CatalogError when a newer indexer wrote it."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise CatalogError(f"{path} has schema version {version}, newer than this indexer knows "
                           f"({SCHEMA_VERSION}): upgrade indexer to open it")
    return version


def ensure_db_shape(db: sqlite_utils.Database, path: str = "the catalog") -> None:
    """Bring the catalog to SCHEMA_VERSION, one migration per transaction; calling it twice
    changes nothing."""
    conn = db.conn
    version = check_version(db, path)
    if db.journal_mode != "wal":
        db.enable_wal()
    for target, step in MIGRATIONS:
        if target <= version:
            continue
        conn.execute("begin immediate")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            if check_version(db, path) < target:
                step(db)
                conn.execute(f"pragma user_version = {int(target)}")
        except BaseException:
            conn.execute("rollback")
            raise
        conn.execute("commit")
