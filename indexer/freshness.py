"""How fresh the catalog is, read from crawl_runs and catalog_info only: one answer for the site, exports and the scheduler."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

# One query, so the site (through Datasette's async execute) and the CLI (a plain
# connection) read the same thing (issues 10 and 13).
FRESHNESS_SQL = """
select
  (select value from catalog_info where key = 'sample') as sample,
  c.finished_at as refreshed_at, c.scope as refreshed_scope,
  l.status as last_status, l.finished_at as last_at, l.error as last_error
from (select 1)
left join (select finished_at, scope from crawl_runs
           where status = 'complete' and finished_at is not null
           order by finished_at desc, id desc limit 1) c
left join (select status, finished_at, error from crawl_runs
           where status != 'running' order by id desc limit 1) l
"""
STALE_AFTER = timedelta(days=2)
# `indexer serve` crawls the API subset hourly unless told otherwise (cli_serve --api-every).
DEFAULT_EVERY = timedelta(hours=1)
REACH_ERRORS = ("connection", "connect", "timed out", "timeout", "name or service", "resolve",
                "unreachable", "refused", "max retries", "network")


@dataclass(frozen=True)
class Freshness:
    sample: bool
    refreshed_at: datetime | None      # the newest complete crawl's end
    refreshed_scope: str | None
    last_status: str | None            # the newest finished run, complete or not
    last_at: datetime | None
    last_error: str | None

    @property
    def live_refreshed_at(self):
        """When live data was last refreshed; None for the bundled sample, whose runs are made up."""
        return None if self.sample else self.refreshed_at

    @property
    def last_failed(self):
        return self.last_status in ("failed", "incomplete")

    @property
    def could_not_reach(self):
        """True when the newest failure reads like the hub was out of reach (not a bad answer)."""
        error = (self.last_error or "").lower()
        return any(word in error for word in REACH_ERRORS)


def parse_time(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def from_row(row):
    """A Freshness from FRESHNESS_SQL's row as a dict ({} when the query gave nothing)."""
    return Freshness(sample=row.get("sample") == "1", refreshed_at=parse_time(row.get("refreshed_at")),
                     refreshed_scope=row.get("refreshed_scope"), last_status=row.get("last_status"),
                     last_at=parse_time(row.get("last_at")), last_error=row.get("last_error"))


def read(conn):
    """The catalog's Freshness from a sqlite3 connection; sqlite3.Error when it has no schema."""
    cursor = conn.execute(FRESHNESS_SQL)
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    return from_row(dict(zip(names, row)) if row else {})


def read_or_none(conn):
    try:
        return read(conn)
    except sqlite3.Error:
        return None


def stale_warning(fresh, now):
    """A one-line warning when the catalog is a sample, never crawled completely, or stale; else None."""
    if fresh.sample:
        return ("this catalog holds the bundled sample, not a crawl: "
                "its IDs are examples; run `indexer crawl` for real ones")
    if fresh.refreshed_at is None:
        return "this catalog has never had a complete crawl: run `indexer crawl` to refresh it"
    age = now - fresh.refreshed_at
    if age > STALE_AFTER:
        return (f"the newest complete crawl finished on {fresh.refreshed_at.date().isoformat()} "
                f"({age.days} days ago): run `indexer crawl` to refresh the catalog")
    return None


def human(moment):
    """2026-11-01 04:00 UTC: what a person reads, from an aware datetime."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")
