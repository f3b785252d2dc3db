"""Reading the hub's list in slices: paging, depth limits, and partitioning a full crawl.

Touches the staging database (through `stage`) and the hub only through the
callables it is given. Its own concern because docs/modelscope-api.md §2.4 says
deep paging may stop before TotalCount; crawl.Crawl owns one and orchestrates.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlite_utils

from indexer import fetch, parse, stage

log = logging.getLogger("indexer.crawl")

PAGE_SIZE = 100
OTHER_SORTS = ("StarsCount", "GmtModified", "Default")


# One parsed page: (items, TotalCount, FiledAgg).
Page = tuple[list[Any], int, dict]


class Slicer:
    """Slices of the hub's list: one query paged to its end, or partitioned when too deep."""

    def __init__(self, db: sqlite_utils.Database, fetch_page: Callable[..., Page],
                 send_page: Callable[[dict], Any],
                 stage_page: Callable[..., int], fetch_task_list: Callable[[], Any],
                 warnings: Counter, sort: str, collected: Callable[[], int],
                 expected: Callable[[], int | None],
                 progress: Callable[..., None] = lambda **_: None) -> None:
        """`fetch_page(body)` asks the hub for one page, or decodes the answer to
        `send_page(body)` as `fetch_page(body, sent)`; `stage_page(items, api=)` stages it and
        returns how many items are new to the slice; `collected()` and `expected()` are the
        crawl's count of staged items and the hub's unfiltered TotalCount."""
        self.db = db
        self.fetch_page = fetch_page
        self.send_page = send_page
        self.stage_page = stage_page
        self.fetch_task_list = fetch_task_list
        self.warnings = warnings
        self.sort = sort
        self.collected = collected
        self.expected = expected
        self.progress = progress
        # Learnt while paging: the offset past which the hub returns nothing.
        self.depth_limit: int | None = None
        self.slice_hit_depth = False
        self.task_list: list[str] | None = None
        self.prefetch: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Let go of the prefetch thread."""
        if self.prefetch is not None:
            self.prefetch.shutdown(wait=False)

    def read_slice(self, tasks=None, orgs=None, api=False, sort=None, fresh=True):
        """Page one query to its end or the hub's depth limit; returns (covered, total, facets)."""
        if fresh:
            stage.reset_slice(self.db)
        sort = sort or self.sort
        total, facets, page = None, {}, 1
        self.slice_hit_depth = False

        def body(number):
            return fetch.models_body(page=number, page_size=PAGE_SIZE, sort=sort, tasks=tasks,
                                     orgs=orgs, api_only=api)

        # The next page, asked for while this one is decoded and staged: one request at
        # a time still, paced by --delay, and the hub's answer time overlaps our work.
        ahead: Future | None = None
        try:
            while True:
                offset = (page - 1) * PAGE_SIZE
                if self.depth_limit is not None and total is not None and offset >= self.depth_limit:
                    self.slice_hit_depth = True
                    break
                try:
                    if ahead is not None:
                        sent, ahead = ahead.result(), None
                        if self._more_after(offset, PAGE_SIZE, total):
                            # Judged by the page before (full, and more within reach), so the
                            # hub is asked before this answer is decoded; a page that turns
                            # out short costs one answer nobody reads.
                            ahead = self._pool().submit(self.send_page, body(page + 1))
                        items, page_total, page_facets = self.fetch_page(body(page), sent)
                    else:
                        items, page_total, page_facets = self.fetch_page(body(page))
                except fetch.EnvelopeError as error:
                    if page == 1 or error.kind != "success_false":
                        raise
                    self._hit_depth(offset)
                    break
                if page == 1:
                    facets = page_facets
                total = page_total
                if ahead is None and self._more_after(offset, len(items), total):
                    ahead = self._pool().submit(self.send_page, body(page + 1))
                new = self.stage_page(items, api=api)
                self.progress(models=self.collected(), expected=self.expected())
                if offset + len(items) >= total:
                    break
                if not items or len(items) < PAGE_SIZE or (new == 0 and page > 1):
                    # An empty, short or repeated page before TotalCount: the depth
                    # limit (docs/modelscope-api.md §2.4), whatever shape it takes.
                    self._hit_depth(offset + len(items) if new else offset)
                    break
                page += 1
        finally:
            if ahead is not None:
                # A page asked for but not needed: let it finish so the session
                # serves one request at a time, and drop its answer or error.
                try:
                    ahead.result()
                except BaseException:
                    pass
        seen = stage.stage_count(self.db, "slice")
        return seen >= (total or 0), total or 0, facets

    def _more_after(self, offset, count, total):
        """Whether a full page (`count` items) at `offset` leaves more of the slice within reach."""
        reach = offset + PAGE_SIZE
        return (count == PAGE_SIZE and reach < total
                and (self.depth_limit is None or reach < self.depth_limit))

    def _pool(self):
        if self.prefetch is None:
            self.prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        return self.prefetch

    def _hit_depth(self, offset):
        self.slice_hit_depth = True
        self.warnings["depth_limit_hits"] += 1
        if self.depth_limit is None or offset < self.depth_limit:
            self.depth_limit = max(offset, PAGE_SIZE)
            log.info("the hub stops returning items at offset %d; slicing the query", offset)

    def read_covered(self, tasks=None, orgs=None):
        """Read a slice; re-read it once when items shifted under us, then try other sorts."""
        covered, total, facets = self.read_slice(tasks=tasks, orgs=orgs)
        if covered or total == 0:
            return True, total, facets
        if self.slice_hit_depth:
            return False, total, facets
        # Full pages yet fewer items than TotalCount: the hub changed while we
        # paged and shifted items past us, so read the slice once more.
        self.warnings["refetched_slices"] += 1
        covered, total, _ = self.read_slice(tasks=tasks, orgs=orgs, fresh=False)
        if covered:
            return True, total, facets
        return False, total, facets

    def read_deep(self, tasks=None, orgs=None):
        """A slice too deep to page: other sort orders reach other windows of it."""
        for sort in OTHER_SORTS:
            if sort == self.sort:
                continue
            covered, _, _ = self.read_slice(tasks=tasks, orgs=orgs, sort=sort, fresh=False)
            if covered:
                return True
        return False

    def collect_full(self):
        covered, total, facets = self.read_covered()
        if covered:
            return
        done: set[str] = set()
        self._collect_tasks(facets, done)
        # Models with no task never appear under a task filter (§2.4): reach the
        # rest through organisation slices, most models first.
        for org in stage.stage_distinct(self.db, "owner"):
            if self._have_all():
                return
            self._collect_org(org)
        # Organisation slices may have shown tasks nothing else had.
        self._collect_tasks(facets, done)
        # Last resort: other sort orders show other windows of the whole hub.
        if not self._have_all():
            self.read_deep()

    def _collect_tasks(self, facets, done):
        while not self._have_all():
            pending = [task for task in self._tasks(facets) if task not in done]
            if not pending:
                return
            for task in pending:
                done.add(task)
                self._collect_task(task)
                if self._have_all():
                    return

    def _collect_task(self, task):
        covered, total, facets = self.read_covered(tasks=[task])
        if covered:
            return
        orgs = [value for value, _ in parse.parse_facet_values(facets, "organizations")]
        if not orgs:
            orgs = stage.stage_task_owners(self.db, task)
        for org in orgs:
            known = stage.stage_matching(self.db, task, org)
            covered, org_total, _ = self.read_covered_if_needed([task], [org], known)
            if not covered:
                self.read_deep(tasks=[task], orgs=[org])

    def _collect_org(self, org):
        known = stage.stage_owner_count(self.db, org)
        covered, _, _ = self.read_covered_if_needed(None, [org], known)
        if not covered:
            self.read_deep(orgs=[org])

    def read_covered_if_needed(self, tasks, orgs, known):
        """One page tells the slice's total; page on only when we lack some of it."""
        stage.reset_slice(self.db)
        body = fetch.models_body(page=1, page_size=PAGE_SIZE, sort=self.sort, tasks=tasks, orgs=orgs)
        items, total, facets = self.fetch_page(body)
        self.stage_page(items)
        if known >= total or len(items) >= total:
            return True, total, facets
        return self.read_covered(tasks=tasks, orgs=orgs)

    def _have_all(self):
        return self.collected() >= (self.expected() or 0)

    def _tasks(self, facets):
        """Task names: the hub's facet counts, else its task list, plus every task seen so far."""
        names = [value for value, _ in parse.parse_facet_values(facets, "tasks")]
        if not names:
            if self.task_list is None:
                self.task_list = []
                try:
                    self.task_list = parse.parse_task_list(self.fetch_task_list())
                except fetch.HubError as error:
                    self.warnings["task_list_unavailable"] += 1
                    log.info("no task list (%s); using the tasks seen so far", error)
            names = list(self.task_list)
        seen = stage.stage_tasks(self.db)
        return names + [t for t in seen if t not in names]
