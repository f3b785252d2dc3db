"""Where fetch, parse and store meet: one crawl of the hub into the catalog."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from indexer import enrich, fetch, parse, policy, stage, store, track
from indexer.slices import Slicer

SCOPES = ("api", "full")
# The most a thread waits for the GIL while another runs Python: Python's 5 ms is
# paid by the prefetch thread after every socket read while staging parses,
# and the hub then waits on us (bench/findings.md: the collecting took 1.37-1.49x
# its CPU time at 5 ms, 1.18-1.19x at 1 ms).
SWITCH_INTERVAL = 0.001
# New uploads have no downloads yet, so under this order they land at the tail
# instead of shifting every page while we read (issue 2: stable paging order).
DEFAULT_SORT = "DownloadsCount"


class CrawlError(Exception):
    """A crawl that cannot start or must stop; the message is one line."""


class CrawlBusy(CrawlError):
    """Another crawl holds the catalog's lock."""


class GuardError(fetch.HubError):
    """The hub ignored a filter we rely on; saving its answer would flag the whole hub."""

    default_kind = "guard"


@dataclass
class CrawlResult:
    run_id: int
    scope: str
    status: str
    models_seen: int = 0
    expected_total: int | None = None
    api_models: int = 0
    listed_models: int = 0
    requests: int = 0
    pages: int = 0
    events: int = 0
    stats_rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: dict = field(default_factory=dict)
    capabilities_read: int | None = None

    def summary(self):
        """The one-line summary `indexer crawl` prints."""
        expected = f"/{self.expected_total:,}" if self.expected_total is not None else ""
        line = (f"crawl #{self.run_id} ({self.scope}) {self.status}: "
                f"{self.models_seen:,}{expected} models, {self.api_models:,} API-Inference, "
                f"{self.listed_models:,} listed; {self.events:,} events, "
                f"{self.stats_rows:,} stats rows; {self.requests:,} requests in {self.seconds:.1f}s")
        if self.capabilities_read is not None:
            line += f"; capabilities of {self.capabilities_read:,} models read"
        skipped = sum(v for k, v in self.warnings.items() if k.startswith("skipped_"))
        if skipped:
            line += f"; {skipped:,} items skipped"
        other = {k: v for k, v in self.warnings.items() if not k.startswith("skipped_")}
        if other:
            line += "; warnings: " + ", ".join(f"{k}={v}" for k, v in sorted(other.items()))
        if self.error:
            line += f" ({self.error})"
        return line


# The crawl was asked to stop (a scheduler shutting down); it ends as incomplete.
Stopped = fetch.Stopped


def acquire_lock(db_path):
    """An exclusive lock beside the catalog; the kernel drops it if the process dies."""
    lock_path = os.fspath(db_path) + ".lock"
    try:
        handle = open(lock_path, "a+")
    except OSError as error:
        raise CrawlError(f"cannot create the lock file {lock_path} ({error.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise CrawlBusy(f"another crawl is already running on {db_path}; "
                        "this one was not started") from None
    return handle


class Crawl:
    """One run: collect into the staging database, then merge in one transaction."""

    def __init__(self, db, fetcher, scope="api", confirm=2, progress=None,
                 keep_sample=False, sort=DEFAULT_SORT, clock=time.monotonic, now=store.utc_now,
                 stop=None, capabilities=True):
        if scope not in SCOPES:
            raise CrawlError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        self.db = db
        self.fetcher = fetcher
        self.scope = scope
        self.confirm = max(1, int(confirm))
        self.progress = progress or (lambda **_: None)
        self.keep_sample = keep_sample
        self.sort = sort
        self.clock = clock
        self.now = now
        self.stop = stop
        self.capabilities = capabilities
        self.warnings: Counter = Counter()
        self.pages = 0
        self.total_all: int | None = None
        self.api_total: int | None = None
        self.shortfalls: list[str] = []
        # Unique items (valid or skipped) staged so far; counting the staging
        # table each time would cost a scan per page at a million models.
        self.collected = 0
        self.slicer = Slicer(db, fetch_page=self._fetch_page, send_page=self._send_page,
                             stage_page=self._stage_page,
                             fetch_task_list=fetcher.fetch_task_list, warnings=self.warnings,
                             sort=sort, collected=lambda: self.collected,
                             expected=lambda: self.total_all, progress=self.progress)

    # Collecting ----------------------------------------------------------

    def _next_page(self):
        """Count a page about to be asked for; none is asked for once stop is set."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped()
        self.pages += 1

    def _send_page(self, body):
        """Ask for a page; `_fetch_page(body, sent)` decodes the answer (Slicer's read-ahead)."""
        self._next_page()
        return self.fetcher.send_models_page(body)

    def _fetch_page(self, body, sent=None):
        if sent is None:
            self._next_page()
        data = self.fetcher.fetch_models_page(body, sent=sent)
        try:
            return parse.parse_page(data)
        except ValueError as error:
            self.warnings["unknown_envelope"] += 1
            raise fetch.HubError(f"the hub's model list changed shape: {error}",
                                 kind="envelope") from None

    def _stage_page(self, items, api=False):
        """Stage one page; returns how many of its items are new to the current slice."""
        parsed, skipped = [], []
        for item in items:
            try:
                parsed.append((parse.parse_model(item, api=api), item))
            except parse.SkipItem as skip:
                skipped.append((str(skip), _skip_key(item)))
        if not api:
            self._keep_callable_ids(parsed)
        rows = [row for row, _ in parsed]
        new = 0
        if skipped:
            for reason, key in skipped:
                if stage.stage_key(self.db, "skipped", key):
                    self.warnings[f"skipped_{reason}"] += 1
                    self.collected += 1
                new += stage.stage_key(self.db, "slice", key)
        self._count_missing_fields(items)
        lacking = sum(1 for r in rows if not r["api_model_id"]) if api else 0
        if lacking:
            # Every API-Inference item should carry its callable ID (§2.5 step 4).
            self.warnings["api_items_without_backend_model_id"] += lacking
        new_to_crawl, new_to_slice = stage.stage_rows(self.db, rows, api=api)
        self.collected += new_to_crawl
        return new + new_to_slice

    def _keep_callable_ids(self, parsed):
        """Keep the callable ID of items already staged as API-Inference or listed by /models.

        The full sweep restages the API-Inference items; without this their
        callable ID, kept only inside that set (parse.parse_api_model_id), would be lost.
        """
        # Only an item that names a callable ID can have one kept: a few in a thousand
        # on our hub, so most pages skip the lookup (1 ms a page at 254,000 models).
        named = {}
        for row, item in parsed:
            if row["api_model_id"] is None:
                callable_id = parse.parse_api_model_id(item, api=True)
                if callable_id is not None:
                    named[row["model_id"]] = (row, callable_id)
        if not named:
            return
        ids = list(named)
        marks = ", ".join("?" for _ in ids)
        for (model_id,) in self.db.conn.execute(
                f"select model_id from stage.api where model_id in ({marks}) union "
                f"select model_id from stage.listed where model_id in ({marks})", ids + ids):
            row, callable_id = named[model_id]
            row["api_model_id"] = callable_id

    def _count_missing_fields(self, items):
        """Count, once per item, each watched field whose key it lacks (policy.missing_fields),
        and each count parse had to drop (negative, beyond 64 bits; issue 14)."""
        for item in items:
            counters = policy.missing_fields(item)
            if isinstance(item, dict):
                counters += parse.count_warnings(item)
            for counter in counters:
                if stage.stage_key(self.db, "lacking", f"{counter}:{_skip_key(item)}"):
                    self.warnings[counter] += 1

    def fetch_total(self):
        """The unfiltered TotalCount, from a one-item page."""
        _, total, facets = self._fetch_page(fetch.models_body(page_size=1, sort=self.sort))
        self.total_all = total
        return total, facets

    def collect_api(self):
        total_all, _ = self.fetch_total()
        _, api_total, _ = self._fetch_page(fetch.models_body(page_size=1, sort=self.sort,
                                                             api_only=True))
        self.api_total = api_total
        # The hub ignores filters it does not know and answers with everything
        # (docs/modelscope-api.md §2.5): a filtered total that is not smaller means the flag
        # would mark the whole hub, so stop before saving any of it.
        if total_all > 0 and api_total >= total_all:
            self.warnings["filter_guard_trips"] += 1
            raise GuardError(f"the hub ignored the API-Inference filter ({api_total:,} of "
                             f"{total_all:,} models came back); no flags were saved")
        covered, api_total, _ = self.slicer.read_slice(api=True)
        self.api_total = api_total
        if not covered:
            self.shortfalls.append(f"API-Inference set: {stage.stage_count(self.db, 'api'):,} "
                                   f"of {api_total:,}")

    def collect_listed(self):
        try:
            ids = parse.parse_inference_list(self.fetcher.fetch_inference_list())
        except (fetch.HubError, ValueError) as error:
            self.shortfalls.append(f"inference /models list unavailable: {error}")
            return
        stage.stage_listed(self.db, ids)

    def _decide(self):
        """complete or incomplete, with the reason; drift and shortfalls make a run incomplete."""
        if self.scope == "full":
            final_total, _ = self.fetch_total()
            collected = self.collected
            if collected < final_total:
                self.shortfalls.append(f"collected {collected:,} of {final_total:,} models")
        if self.shortfalls:
            return "incomplete", "; ".join(self.shortfalls)
        drop = self._drop()
        if drop:
            return "incomplete", drop
        return "complete", None

    def _drop(self):
        """The drop rule (policy.find_drop) on this run's staged counts; an error or None."""
        previous = store.last_complete_run(self.db, self.scope, before_id=self.run_id)
        if not previous:
            return None
        drop = policy.find_drop(policy.drop_counts(
            self.scope, previous, models=stage.stage_count(self.db),
            api=stage.stage_count(self.db, "api"), listed=stage.stage_count(self.db, "listed")))
        if drop is None:
            return None
        runs = self.db.query("select status, error from crawl_runs where scope = ? and id < ? "
                             "order by id desc limit ?", [self.scope, self.run_id, self.confirm])
        counter, error = policy.judge_drop(drop, policy.drop_streak(runs), self.confirm)
        self.warnings[counter] += 1
        return error

    def run(self):
        with quick_handoffs():
            return self._run()

    def _run(self):
        started = self.now()
        t0 = self.clock()
        self.shortfalls = []
        store.fail_stale_runs(self.db)
        self.run_id = store.start_run(self.db, self.scope, started)
        stage.attach_stage(self.db)
        status, error, interrupted = "failed", None, None
        try:
            self.collect_api()
            self.collect_listed()
            if self.scope == "full":
                self.slicer.collect_full()
            status, error = self._decide()
        except (KeyboardInterrupt, SystemExit) as stop:
            status, error, interrupted = "incomplete", "interrupted", stop
        except Stopped:
            status, error = "incomplete", "interrupted: the process is shutting down"
        except fetch.HubError as failure:
            status, error = "failed", str(failure)
        except sqlite3.Error as failure:
            status, error = "failed", store.describe_db_error("the catalog", failure)
        result = self._finish(status, error, started, t0)
        if interrupted is not None:
            raise interrupted
        return result

    def _enriches(self, status):
        """Whether a crawl ending in `status` reads capabilities: a live crawl that left the
        sample in place has nothing of its own to enrich."""
        return (self.capabilities and status != "failed"
                and (self.keep_sample or not store.is_sample(self.db)))

    def _finish(self, status, error, started, t0):
        result = CrawlResult(run_id=self.run_id, scope=self.scope, status=status, error=error)
        emit = False
        result.requests = self.fetcher.requests_made
        result.pages = self.pages
        result.expected_total = self.total_all if self.scope == "full" else self.api_total
        # A complete crawl replaces the sample, so it enriches what it merges.
        enriching = self._enriches(status) or (self.capabilities and status == "complete")
        ahead = None
        try:
            finished = self.now()
            if enriching:
                # The capability reads overlap the merge (enrich.ReadAhead).
                ahead = enrich.read_ahead(self.db.conn, self.fetcher, finished, self.stop)
            result.models_seen = stage.stage_count(self.db)
            result.api_models = stage.stage_count(self.db, "api")
            result.listed_models = stage.stage_count(self.db, "listed")
            # The merge rewrites indexes far larger than SQLite's 2 MB default
            # cache; 64 MB cut its CPU by a fifth at 1,000,000 models (bench/findings.md).
            self.db.conn.execute("pragma cache_size = -65536")
            with store.transaction(self.db) as conn:
                merged = track.merge(conn, self.run_id, self.scope, status == "complete",
                                     finished, confirm=self.confirm, keep_sample=self.keep_sample)
                result.events = merged["events"]
                emit = status == "complete" and not merged["baseline"]
                result.stats_rows = merged["stats_rows"]
                if getattr(self.fetcher, "pruned_answers", 0):
                    # Answers nested too deep to decode whole (fetch.prune_deep_json).
                    self.warnings["pruned_deep_json"] = self.fetcher.pruned_answers
                result.warnings = dict(self.warnings)
                result.seconds = self.clock() - t0
                store.update_run(conn, self.run_id, status=status, finished_at=store.iso(finished),
                                 requests=result.requests, pages=result.pages,
                                 models_seen=result.models_seen,
                                 expected_total=result.expected_total,
                                 api_models=result.api_models, listed_models=result.listed_models,
                                 events=result.events, stats_rows=result.stats_rows,
                                 warnings=json.dumps(result.warnings, sort_keys=True), error=error)
        except sqlite3.Error as failure:
            # Nothing of this run was written; record the failure if the
            # database still lets us.
            result.status = "failed"
            result.error = store.describe_db_error("the catalog", failure)
            result.events = result.stats_rows = 0
            try:
                with store.transaction(self.db) as conn:
                    store.update_run(conn, self.run_id, status="failed",
                                     finished_at=store.iso(self.now()), error=result.error)
            except sqlite3.Error:
                pass
        finally:
            stage.detach_stage(self.db)
            self.slicer.close()
        # After the merge, so the API set is the debounced one.
        if self._enriches(result.status):
            enrich.enrich_after_crawl(self.db, self.fetcher, result, self.now(), emit, self.stop,
                                      ahead)
        elif ahead is not None:  # a failed merge, say: the fetcher is the crawl's again
            ahead.cancel()
        result.seconds = self.clock() - t0
        return result


@contextmanager
def quick_handoffs() -> Iterator[None]:
    """For the crawl's length, hand the GIL to a waiting thread within SWITCH_INTERVAL.

    Process-wide, as Python has it: a server that runs the crawl beside its pages
    answers no slower for it.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _skip_key(item):
    """A malformed item still counts in TotalCount; key it so it is counted once."""
    if isinstance(item, dict) and parse.parse_int(item.get("Id")) is not None:
        return f"skip:id:{parse.parse_int(item.get('Id'))}"
    try:
        blob = json.dumps(item, sort_keys=True, default=str, ensure_ascii=True)
    except (RecursionError, ValueError):
        blob = repr(type(item)) + str(len(str(item)[:100000]))
    return "skip:sha1:" + hashlib.sha1(blob.encode()).hexdigest()


def crawl(db_path, fetcher, scope="api", confirm=2, progress=None, keep_sample=False,
          now=store.utc_now, stop=None, capabilities=True):
    """Crawl `scope` into the catalog at `db_path` under its lock; returns a CrawlResult."""
    lock = acquire_lock(db_path)
    try:
        db = store.open_db(db_path)
        try:
            return Crawl(db, fetcher, scope=scope, confirm=confirm, progress=progress,
                         keep_sample=keep_sample, now=now, stop=stop,
                         capabilities=capabilities).run()
        finally:
            db.conn.close()
    finally:
        lock.close()
