"""Download growth per model over 7 and 30 days: the one rule, stored where `trending` reads it.

Growth is a model's downloads now minus its downloads on the newest stats day at or
before the window's start, counted back from the reference day (the crawl's day, or
the newest stats day for a catalog that stopped crawling). A model without a stats
row that old has no growth yet, and `trending` leaves it out.

Computing it while the page is open meant two lookups per model for every one of
254,000 models before the first row could be sorted (0.4 s a page, issue 16); each
merge now stores it in `model_growth`, rewriting only the rows whose values moved.
"""

from __future__ import annotations

WINDOWS = (7, 30)
# The reference day when the caller does not give one: the last finished crawl's day,
# else the newest stats day.
REFERENCE_DAY_SQL = """select coalesce(
    (select substr(max(finished_at), 1, 10) from crawl_runs where status in ('complete', 'incomplete')),
    (select max(day) from model_stats))"""


def _growth(days: int) -> str:
    return f"""m.downloads - (select s.downloads from model_stats s
                              where s.model_id = m.model_id and s.day <= date(:today, '-{days} days')
                              order by s.day desc limit 1)"""


def refresh(conn, today: str | None = None) -> int:
    """Bring `model_growth` to what the stats say as of `today` (YYYY-MM-DD); rows written."""
    if today is None:
        today = conn.execute(REFERENCE_DAY_SQL).fetchone()[0]
    before = conn.total_changes
    oldest_window = f"date(:today, '-{min(WINDOWS)} days')"
    history = today is not None and conn.execute(
        f"select 1 from model_stats where day <= {oldest_window} limit 1", {"today": today}
    ).fetchone() is not None
    if not history:
        # A catalog younger than the shortest window (every first week): nothing to compare.
        conn.execute("delete from model_growth")
        return conn.total_changes - before
    columns = ", ".join(f"downloads_{d}d" for d in WINDOWS)
    values = ", ".join(f"{_growth(d)} as downloads_{d}d" for d in WINDOWS)
    known = " or ".join(f"downloads_{d}d is not null" for d in WINDOWS)
    conn.execute("drop table if exists temp.growth_now")
    conn.execute(f"""create temp table growth_now as
        select model_id, {columns} from (
          select m.model_id, {values} from models m where m.removed_at is null)
        where {known}""", {"today": today})
    conn.execute("create unique index temp.growth_now_id on growth_now(model_id)")
    conn.execute("delete from model_growth where model_id not in (select model_id from temp.growth_now)")
    sets = ", ".join(f"downloads_{d}d = excluded.downloads_{d}d" for d in WINDOWS)
    moved = " or ".join(f"downloads_{d}d is not excluded.downloads_{d}d" for d in WINDOWS)
    conn.execute(f"""insert into model_growth (model_id, {columns})
        select model_id, {columns} from temp.growth_now where true
        on conflict (model_id) do update set {sets} where {moved}""")
    conn.execute("drop table temp.growth_now")
    return conn.total_changes - before
