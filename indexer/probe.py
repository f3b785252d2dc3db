"""Probe the hub with a fixed handful of requests, checking each assumption the crawler makes (issue 7).

Touches the network through `indexer.fetch` only; no database. The list endpoint is
the website's own undocumented call (docs/modelscope-api.md §2), so this is how users, and we,
learn that it changed before a catalog silently goes wrong. The checks themselves
are pure functions in `indexer.probe_checks`; the CLI renders them.
"""

from __future__ import annotations

from collections import Counter

from indexer import fetch, parse, probe_checks
from indexer.probe_checks import (  # noqa: F401 - re-exported: the probe's public names
    CHANGED,
    CHECK_NAMES,
    OK,
    STATUSES,
    UNKNOWN,
    Answer,
    BudgetSpent,
    Check,
    exit_code,
)

# Every request counts, retries included; the probe never sends more than this.
BUDGET = 15
PROBE_RETRIES = 1
PROBE_TIMEOUT = 15.0
PROBE_BACKOFF = 0.5

PAGE = 100
SORT_PAGE = 20
# Search backends of this kind often cap from + size at 10,000 hits (§2.4).
DEEP_OFFSET = 10_000
# Sorts fetched besides the first page's DownloadsCount: the checked ones and Default.
OTHER_SORTS = tuple(sort for sort, _ in probe_checks.SORT_FIELDS[1:]) + ("Default",)


def build_fetchers(hub_url, inference_url, delay=0.5, token=None, timeout=PROBE_TIMEOUT):
    """(keyless fetcher, fetcher carrying the token or None) with the probe's few retries."""

    def make(secret):
        return fetch.Fetcher(fetch.build_session(secret), hub_url=hub_url,
                             inference_url=inference_url, delay=delay,
                             max_retries=PROBE_RETRIES, backoff=PROBE_BACKOFF, timeout=timeout)

    return make(None), (make(token) if token else None)


def run_probe(fetcher, token_fetcher=None):
    """Check each hub assumption with at most BUDGET requests; returns a list of Check."""
    return _Probe(fetcher, token_fetcher).run()


def requests_made(fetcher, token_fetcher=None):
    """Requests both fetchers have sent, retries included."""
    return fetcher.requests_made + (token_fetcher.requests_made if token_fetcher else 0)



class _Probe:
    def __init__(self, fetcher, token_fetcher=None):
        self.fetcher = fetcher
        self.token_fetcher = token_fetcher
        self.fetchers = [f for f in (fetcher, token_fetcher) if f is not None]
        self.start = sum(f.requests_made for f in self.fetchers)
        self.seen = []  # every item any list answer carried, for the sort checks

    # Requests ------------------------------------------------------------

    @property
    def requests(self):
        return sum(f.requests_made for f in self.fetchers) - self.start

    def _call(self, fetcher, method, *args):
        remaining = BUDGET - self.requests
        if remaining <= 0:
            raise BudgetSpent(f"not checked: the probe's budget of {BUDGET} requests is spent")
        # Retries may not take the probe past its budget either.
        fetcher.max_requests = fetcher.requests_made + remaining
        try:
            return method(*args)
        finally:
            fetcher.max_requests = None

    def _list(self, **body):
        try:
            data = self._call(self.fetcher, self.fetcher.fetch_models_page, fetch.models_body(**body))
        except (fetch.HubError, BudgetSpent) as error:
            return Answer(error=error)
        return Answer(data=data)

    def _items(self, answer):
        """The dict items of an answer the parser reads, else None."""
        if answer.data is None:
            return None
        try:
            items, total, _ = parse.parse_page(answer.data)
        except ValueError:
            return None
        items = [item for item in items if isinstance(item, dict)]
        self.seen.extend(items)
        return items, total

    # The run -------------------------------------------------------------

    def run(self):
        # The keyless /models list goes first and the token's last, so the
        # hub requests between them keep the pause on the inference host.
        listed = self._fetch_listed(self.fetcher)
        first = self._list(page=1, page_size=PAGE, sort="DownloadsCount")
        envelope = probe_checks.check_envelope(first)
        parsed = self._items(first)
        if parsed is None:
            if first.refused:
                reason = "not checked: the list endpoint refused the request"
            elif first.error is not None:
                reason = "not checked: the list endpoint did not answer"
            else:
                reason = "not checked: the list answer has a shape the parser does not know"
            hub = [Check(name, UNKNOWN, reason) for name in CHECK_NAMES[1:10]]
        else:
            hub = self._hub_checks(first, *parsed)
        checks = [envelope, *hub, probe_checks.check_models_list(listed)]
        if self.token_fetcher is not None:
            # Share the pause bookkeeping: both fetchers talk to one inference host.
            self.token_fetcher.pace_after(self.fetcher)
            checks.append(probe_checks.check_models_token(listed, self._fetch_listed(self.token_fetcher)))
        return checks

    def _hub_checks(self, first, items, total):
        api = self._list(page=1, page_size=PAGE, sort="DownloadsCount", api_only=True)
        task, org = _most_common_task(items), _most_common_org(items)
        by_task = self._list(page=1, page_size=1, sort="DownloadsCount", tasks=[task]) if task else None
        by_org = self._list(page=1, page_size=1, sort="DownloadsCount", orgs=[org]) if org else None
        sorted_pages = {"DownloadsCount": first}
        for sort in OTHER_SORTS:
            sorted_pages[sort] = self._list(page=1, page_size=SORT_PAGE, sort=sort)
        api_items = self._items(api)
        by_task_items = self._items(by_task) if by_task else None
        by_org_items = self._items(by_org) if by_org else None
        sort_items = {sort: self._items(answer) if sort != "DownloadsCount" else (items, total)
                      for sort, answer in sorted_pages.items()}
        depth = self._depth(items, total)
        return [
            probe_checks.check_fields(items),
            probe_checks.check_timestamps(items),
            probe_checks.check_backend_support(api, api_items, total),
            probe_checks.check_filed_agg(first.data),
            probe_checks.check_api_filter(api, api_items, total),
            probe_checks.check_filter("task-filter", "tasks", task, by_task, by_task_items, total,
                         lambda item: task in parse.parse_string_list(item.get("Tasks"), key="Name"),
                         "task"),
            probe_checks.check_filter("org-filter", "organizations", org, by_org, by_org_items, total,
                         lambda item: item.get("Path") == org, "organization"),
            probe_checks.check_sorts(sorted_pages, sort_items, self.seen),
            depth,
        ]

    # Checks --------------------------------------------------------------

    def _depth(self, first_items, total):
        last = ((total - 1) // PAGE) * PAGE if total > 0 else 0
        if last == 0:
            return Check("depth", OK, f"one page holds all {total:,} models; nothing deeper to try")
        offsets = [offset for offset in (DEEP_OFFSET, last) if offset <= last]
        offsets = sorted(set(offsets))
        first_ids = {_item_key(item) for item in first_items}
        reached = []
        for offset in offsets:
            answer = self._list(page=offset // PAGE + 1, page_size=PAGE, sort="DownloadsCount")
            if answer.error is not None:
                if isinstance(answer.error, fetch.EnvelopeError) and \
                        answer.error.kind == "success_false":
                    return probe_checks.check_depth_stopped(offset, "an error envelope (Success: false)", total)
                if isinstance(answer.error, BudgetSpent):
                    return Check("depth", UNKNOWN, str(answer.error))
                return Check("depth", UNKNOWN, f"offset {offset:,}: " + probe_checks.error_text(answer.error))
            parsed = self._items(answer)
            if parsed is None:
                return Check("depth", UNKNOWN, f"offset {offset:,}: the answer has a shape the "
                                               "parser does not know")
            items, now_total = parsed
            # The hub may have grown or shrunk since the first page: expect what
            # this answer's own TotalCount leaves for the page.
            expected = max(0, min(PAGE, now_total - offset))
            if not items and expected:
                return probe_checks.check_depth_stopped(offset, "an empty page", total)
            if all(_item_key(item) in first_ids for item in items):
                return probe_checks.check_depth_stopped(offset, f"a page of {len(items)} items the first page "
                                             "already had", total)
            if len(items) < expected:
                return probe_checks.check_depth_stopped(offset, f"a short page ({len(items)} of {expected} items)",
                                     total)
            reached.append(offset)
        where = " and ".join(f"{offset:,}" for offset in reached)
        return Check("depth", OK, f"paging reaches offset {where} (the last page of {total:,})")

    def _stopped(self, offset, how, total):
        return Check("depth", CHANGED,
                     f"items stop before offset {offset:,}: {how}, though TotalCount is "
                     f"{total:,} (full crawls slice around it, with more requests)")

    # The inference list ----------------------------------------------------

    def _fetch_listed(self, fetcher):
        try:
            return parse.parse_inference_list(self._call(fetcher, fetcher.fetch_inference_list))
        except (fetch.HubError, BudgetSpent, ValueError) as error:
            return error


def _item_key(item):
    return (item.get("Path"), item.get("Name"), parse.parse_int(item.get("Id")))


def _most_common_task(items):
    counts = Counter(task for item in items
                     for task in parse.parse_string_list(item.get("Tasks"), key="Name"))
    return _most_common(counts)


def _most_common_org(items):
    counts = Counter(item.get("Path") for item in items
                     if isinstance(item.get("Path"), str) and item.get("Path"))
    return _most_common(counts)


def _most_common(counts):
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
