"""Probe the hub with a fixed handful of requests, checking each assumption the crawler makes (issue 7).

Touches the network through `indexer.fetch` only; no database. The list endpoint is
the website's own undocumented call (reference §2), so this is how users, and we,
learn that it changed before a catalog silently goes wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass

from indexer import fetch, parse

OK, CHANGED, UNKNOWN = "ok", "changed", "unknown"
STATUSES = (OK, CHANGED, UNKNOWN)

# Every request counts, retries included; the probe never sends more than this.
BUDGET = 15
PROBE_RETRIES = 1
PROBE_TIMEOUT = 15.0
PROBE_BACKOFF = 0.5

PAGE = 100
SORT_PAGE = 20
# Search backends of this kind often cap from + size at 10,000 hits (§2.4).
DEEP_OFFSET = 10_000
LIST_PATH = "PUT /api/v1/dolphin/models"
EXPECTED_FIELDS = ("Path", "Name", "Downloads", "Stars", "Tasks")
TIMESTAMP_FIELDS = ("CreatedTime", "LastUpdatedTime")
# A few quirky items are normal upstream (§2.3); more than this share is drift.
MISSING_SHARE = 0.05
# SortBy values (§2.1) and the item field each should order by, largest first.
SORT_FIELDS = (("DownloadsCount", "Downloads"), ("StarsCount", "Stars"),
               ("GmtModified", "LastUpdatedTime"), ("Default", "CreatedTime"))

CHECK_NAMES = ("envelope", "fields", "timestamps", "backend-support", "filed-agg", "api-filter",
               "task-filter", "org-filter", "sorts", "depth", "models-list", "models-token")


@dataclass(frozen=True)
class Check:
    """One assumption and what the hub showed: status is ok, changed or unknown."""

    name: str
    status: str
    detail: str


class BudgetSpent(Exception):
    """The probe has made all the requests it allows itself."""


@dataclass
class Answer:
    """One list request: its `Data`, or the error that ended it."""

    data: dict | None = None
    error: Exception | None = None

    @property
    def refused(self):
        # An HTTP 4xx is the hub telling us the request itself is wrong now;
        # timeouts, 5xx and 429 only say that it could not answer this time.
        return isinstance(self.error, fetch.HubError) and not isinstance(
            self.error, fetch.EnvelopeError)


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


def exit_code(checks):
    """0 when every check is ok, 1 when any changed, 2 when some could not be told."""
    statuses = {check.status for check in checks}
    if CHANGED in statuses:
        return 1
    if UNKNOWN in statuses:
        return 2
    return 0


def render_text(checks, requests):
    """One aligned line per check, then `N ok, N changed, N unknown (K requests)`."""
    width = max((len(check.name) for check in checks), default=0)
    lines = [f"{check.status:<8} {check.name:<{width}} {check.detail}" for check in checks]
    counts = Counter(check.status for check in checks)
    lines.append(f"{counts[OK]} ok, {counts[CHANGED]} changed, {counts[UNKNOWN]} unknown "
                 f"({requests} requests)")
    return "\n".join(lines) + "\n"


def render_json(checks, requests):
    return json.dumps({"checks": [asdict(check) for check in checks], "requests": requests},
                      ensure_ascii=False, indent=2) + "\n"


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
        envelope = self._envelope(first)
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
        checks = [envelope, *hub, self._listed_check(listed)]
        if self.token_fetcher is not None:
            # Share the pause bookkeeping: both fetchers talk to one inference host.
            self.token_fetcher.pace_after(self.fetcher)
            checks.append(self._token_check(listed, self._fetch_listed(self.token_fetcher)))
        return checks

    def _hub_checks(self, first, items, total):
        api = self._list(page=1, page_size=PAGE, sort="DownloadsCount", api_only=True)
        task, org = _most_common_task(items), _most_common_org(items)
        by_task = self._list(page=1, page_size=1, sort="DownloadsCount", tasks=[task]) if task else None
        by_org = self._list(page=1, page_size=1, sort="DownloadsCount", orgs=[org]) if org else None
        sorted_pages = {"DownloadsCount": first}
        for sort, _ in SORT_FIELDS[1:]:
            sorted_pages[sort] = self._list(page=1, page_size=SORT_PAGE, sort=sort)
        api_items = self._items(api)
        by_task_items = self._items(by_task) if by_task else None
        by_org_items = self._items(by_org) if by_org else None
        sort_items = {sort: self._items(answer) if sort != "DownloadsCount" else (items, total)
                      for sort, answer in sorted_pages.items()}
        depth = self._depth(items, total)
        return [
            self._fields(items),
            self._timestamps(items),
            self._backend_support(api, api_items, total),
            self._filed_agg(first.data),
            self._api_filter(api, api_items, total),
            self._filter("task-filter", "tasks", task, by_task, by_task_items, total,
                         lambda item: task in parse.parse_string_list(item.get("Tasks"), key="Name"),
                         "task"),
            self._filter("org-filter", "organizations", org, by_org, by_org_items, total,
                         lambda item: item.get("Path") == org, "organization"),
            self._sorts(sorted_pages, sort_items),
            depth,
        ]

    # Checks --------------------------------------------------------------

    def _envelope(self, answer):
        if answer.error is not None:
            return Check("envelope", _failed_status(answer), _error_text(answer.error))
        data = answer.data
        try:
            _, total, _ = parse.parse_page(data)
        except ValueError:
            return Check("envelope", CHANGED,
                         f"{LIST_PATH} answers a shape the parser does not know ({_shape(data)}): "
                         "crawls fail until the parser learns it")
        if total == 0:
            return Check("envelope", CHANGED, f"{LIST_PATH} answers, but TotalCount is 0 "
                                              "(a crawl would see every model vanish)")
        if isinstance(data.get("Model"), dict):
            return Check("envelope", OK, f"{LIST_PATH} answers {{Code, Success, Data.Model.Models, "
                                         f"TotalCount}}; {total:,} models")
        return Check("envelope", CHANGED,
                     f"{LIST_PATH} answers the legacy layout {{Data.Models, Data.TotalCount}}; "
                     f"{total:,} models (the parser copes)")

    def _fields(self, items):
        if not items:
            return Check("fields", UNKNOWN, "no items on the first page to look at")
        lacking = {name: sum(1 for item in items if item.get(name) is None)
                   for name in EXPECTED_FIELDS}
        n = len(items)
        gone = [name for name, count in lacking.items() if count > n * MISSING_SHARE]
        few = [name for name, count in lacking.items() if 0 < count <= n * MISSING_SHARE]

        def notes(names):
            return "; ".join(f"{lacking[name]} of {n:,} lack{'s' * (lacking[name] == 1)} {name}"
                             for name in names)

        if gone:
            consequence = []
            if {"Path", "Name"} & set(gone):
                consequence.append("the crawler skips items without an ID")
            if set(gone) - {"Path", "Name"}:
                consequence.append("their columns stay empty")
            detail = f"{notes(gone)} ({'; '.join(consequence)})"
            return Check("fields", CHANGED, detail + (f"; {notes(few)}" if few else ""))
        detail = f"items carry {', '.join(EXPECTED_FIELDS)} ({n:,} items looked at)"
        if few:
            detail += f"; {notes(few)}"
        return Check("fields", OK, detail)

    def _timestamps(self, items):
        if not items:
            return Check("timestamps", UNKNOWN, "no items on the first page to look at")
        kinds = {field: Counter(_timestamp_kind(item.get(field)) for item in items)
                 for field in TIMESTAMP_FIELDS}
        detail = "; ".join(f"{field}: {_describe(kinds[field])}" for field in TIMESTAMP_FIELDS)
        mostly_int = all(kinds[field]["integer"] * 2 > len(items) for field in TIMESTAMP_FIELDS)
        if mostly_int:
            return Check("timestamps", OK, detail)
        copes = all(set(kinds[field]) <= {"integer", "numeric string"} for field in TIMESTAMP_FIELDS)
        suffix = " (the parser copes)" if copes else " (dates the parser cannot read stay empty)"
        return Check("timestamps", CHANGED, detail + suffix)

    def _backend_support(self, answer, parsed, total):
        if answer.error is not None or parsed is None:
            return Check("backend-support", UNKNOWN, "not checked: " + _why(answer))
        items, api_total = parsed
        if not items:
            return Check("backend-support", UNKNOWN, "the API-Inference filter gave no items")
        if total > 0 and api_total >= total:
            return Check("backend-support", UNKNOWN, "not checked: the API-Inference filter "
                                                     "is ignored, so its items are any models")
        kinds = Counter(_backend_kind(item.get("BackendSupport")) for item in items)
        detail = f"BackendSupport on API-Inference items: {_describe(kinds)}"
        if kinds["object"] * 2 > len(items):
            return Check("backend-support", OK, detail)
        copes = set(kinds) <= {"object", "JSON string"}
        suffix = (" (the parser copes)" if copes
                  else " (the crawler loses the callable IDs it cannot read)")
        return Check("backend-support", CHANGED, detail + suffix)

    def _filed_agg(self, data):
        facets = data.get("FiledAgg")
        if not isinstance(facets, dict):
            return Check("filed-agg", CHANGED, "Data.FiledAgg is missing "
                                               "(the crawler takes task names from the task list)")
        if not facets:
            return Check("filed-agg", CHANGED, "Data.FiledAgg is empty "
                                               "(the crawler takes task names from the task list)")
        names = sorted(_clip(str(name), 40) for name in list(facets)[:20])
        carries = f"Data.FiledAgg carries {', '.join(names)}"
        both = [c for c in ("tasks", "organizations") if parse.parse_facet_values(facets, c)]
        if len(both) == 2:
            return Check("filed-agg", OK, carries + " (task and organization counts: "
                                                    "full crawls slice with them)")
        return Check("filed-agg", OK, carries + " (no task and organization counts: "
                                                "full crawls use the task list)")

    def _api_filter(self, answer, parsed, total):
        if answer.error is not None or parsed is None:
            return Check("api-filter", _failed_status(answer), "not checked: " + _why(answer))
        items, api_total = parsed
        said = f"inference_type = 1 gives {api_total:,} of {total:,} models"
        if total > 0 and api_total >= total:
            return Check("api-filter", CHANGED, f"{said}: the hub ignores the filter "
                                                "(crawls stop at the guard and save no flags)")
        if api_total == 0:
            return Check("api-filter", CHANGED, f"{said}: the filter matches nothing "
                                                "(a crawl would see the whole set vanish)")
        lacking = sum(1 for item in items
                      if not parse.parse_backend_model_id(item.get("BackendSupport")))
        which = "each" if len(items) >= api_total else f"each of the first {len(items):,}"
        if lacking:
            return Check("api-filter", CHANGED,
                         f"{said}, but {lacking} of {len(items):,} lack BackendSupport.model_id "
                         "(counted as api_items_without_backend_model_id in crawls)")
        return Check("api-filter", OK, f"{said}, {which} with BackendSupport.model_id")

    def _filter(self, name, category, value, answer, parsed, total, matches, what):
        if value is None:
            return Check(name, UNKNOWN, f"no item on the first page has a {what} to filter by")
        if answer.error is not None or parsed is None:
            return Check(name, _failed_status(answer), "not checked: " + _why(answer))
        items, count = parsed
        said = f"{category} contains {_clip(value, 60)} gives {count:,} of {total:,} models"
        if total > 0 and count >= total:
            return Check(name, CHANGED, f"{said}: the hub ignores the filter "
                                        f"(full crawls cannot slice by {what})")
        if items and not matches(items[0]):
            return Check(name, CHANGED, f"{said}, but its first item lacks that {what}")
        if count == 0:
            return Check(name, CHANGED, f"{said}: the filter matches nothing, though the first "
                                        f"page shows such models")
        return Check(name, OK, said)

    def _sorts(self, answers, parsed):
        top = {}
        for _, field in SORT_FIELDS:
            values = [parse.parse_int(item.get(field)) for item in self.seen]
            top[field] = max((v for v in values if v is not None), default=None)
        honoured, ignored, untold = [], [], []
        for sort, field in SORT_FIELDS:
            result = parsed.get(sort)
            if result is None:
                untold.append(f"{sort} ({_why(answers[sort])})")
                continue
            keys = [parse.parse_int(item.get(field)) for item in result[0]]
            if len(keys) < 2 or None in keys or top[field] is None:
                untold.append(f"{sort} (no readable {field})")
            elif all(a >= b for a, b in zip(keys, keys[1:])) and keys[0] >= top[field]:
                # In order, and led by the largest value any answer showed: an
                # ignored sort that falls back to another order fails one of the two.
                honoured.append(sort)
            else:
                ignored.append(f"{sort} (not by {field})")
        if ignored:
            detail = f"not honoured: {', '.join(ignored)}"
            if honoured:
                detail += f"; honoured: {', '.join(honoured)}"
            if untold:
                detail += f"; not told: {', '.join(untold)}"
            if any(entry.startswith("DownloadsCount ") for entry in ignored):
                consequence = "crawls page in an order new uploads can shift"
            else:
                consequence = "full crawls lose the deep windows other orders reach"
            return Check("sorts", CHANGED, f"{detail} ({consequence})")
        if untold:
            return Check("sorts", UNKNOWN, f"not told: {', '.join(untold)}"
                         + (f"; honoured: {', '.join(honoured)}" if honoured else ""))
        pairs = ", ".join(f"{sort} by {field}" for sort, field in SORT_FIELDS)
        return Check("sorts", OK, f"each orders largest first: {pairs}")

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
                    return self._stopped(offset, "an error envelope (Success: false)", total)
                if isinstance(answer.error, BudgetSpent):
                    return Check("depth", UNKNOWN, str(answer.error))
                return Check("depth", UNKNOWN, f"offset {offset:,}: " + _error_text(answer.error))
            parsed = self._items(answer)
            if parsed is None:
                return Check("depth", UNKNOWN, f"offset {offset:,}: the answer has a shape the "
                                               "parser does not know")
            items, now_total = parsed
            # The hub may have grown or shrunk since the first page: expect what
            # this answer's own TotalCount leaves for the page.
            expected = max(0, min(PAGE, now_total - offset))
            if not items and expected:
                return self._stopped(offset, "an empty page", total)
            if all(_item_key(item) in first_ids for item in items):
                return self._stopped(offset, f"a page of {len(items)} items the first page "
                                             "already had", total)
            if len(items) < expected:
                return self._stopped(offset, f"a short page ({len(items)} of {expected} items)",
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

    def _listed_check(self, listed):
        if isinstance(listed, list):
            if not listed:
                return Check("models-list", CHANGED, "GET /models answers without a token, but "
                                                     "lists no IDs")
            return Check("models-list", OK, f"GET /models answers without a token: "
                                            f"{_ids(len(listed))}")
        if isinstance(listed, ValueError):
            return Check("models-list", CHANGED, f"GET /models without a token: {listed} "
                                                 "(crawls record the list as unavailable)")
        status = CHANGED if Answer(error=listed).refused else UNKNOWN
        return Check("models-list", status, _error_text(listed))

    def _token_check(self, keyless, with_token):
        name = "models-token"
        if isinstance(with_token, ValueError):
            return Check(name, CHANGED, f"GET /models with MODELSCOPE_TOKEN: {with_token}")
        if isinstance(with_token, BudgetSpent):
            return Check(name, UNKNOWN, str(with_token))
        if not isinstance(with_token, list):
            status = CHANGED if Answer(error=with_token).refused else UNKNOWN
            return Check(name, status, "with MODELSCOPE_TOKEN: " + _error_text(with_token))
        if not isinstance(keyless, list):
            return Check(name, UNKNOWN, f"GET /models lists {_ids(len(with_token))} with "
                                        "MODELSCOPE_TOKEN; nothing to compare them with")
        if set(with_token) == set(keyless):
            return Check(name, OK, f"GET /models lists the same {_ids(len(keyless))} with "
                                   "MODELSCOPE_TOKEN")
        only_token = len(set(with_token) - set(keyless))
        only_keyless = len(set(keyless) - set(with_token))
        return Check(name, CHANGED,
                     f"GET /models lists {_ids(len(with_token))} with MODELSCOPE_TOKEN and "
                     f"{_ids(len(keyless))} without ({only_token} only with it, {only_keyless} only "
                     "without): a crawl's listed flags depend on the token")


def _ids(count):
    return f"{count:,} ID" + ("" if count == 1 else "s")


def _failed_status(answer):
    return CHANGED if answer.refused else UNKNOWN


def _why(answer):
    if answer is None:
        return "no request"
    if answer.error is not None:
        return _error_text(answer.error)
    return "the answer has a shape the parser does not know"


def _error_text(error):
    # fetch's messages are one line and carry no query string or token.
    text = str(error)
    if text.startswith("not checked:"):
        return text
    return _clip(text, 200)


def _clip(text, limit):
    # Text the hub chose ends up on the user's terminal: one line, no control codes.
    text = parse.clean_text(text) or ""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _shape(data):
    """The keys of `Data` and `Data.Model`, so a user can tell us what the hub answers now."""
    if not isinstance(data, dict):
        return f"Data is {type(data).__name__}"
    parts = [f"Data: {_keys(data)}"]
    model = data.get("Model")
    if isinstance(model, dict):
        parts.append(f"Data.Model: {_keys(model)}")
    return "; ".join(parts)


def _keys(mapping):
    names = sorted(_clip(str(key), 40) for key in list(mapping)[:12])
    more = ", …" if len(mapping) > 12 else ""
    return ", ".join(names) + more if names else "no keys"


PLURALS = {"integer": "integers", "numeric string": "numeric strings", "object": "objects",
           "JSON string": "JSON strings", "unreadable value": "unreadable values"}


def _describe(kinds):
    """`98 integers, 2 numeric strings`: most common first."""
    return ", ".join(f"{count:,} {kind if count == 1 else PLURALS.get(kind, kind)}"
                     for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))


def _timestamp_kind(value):
    if value is None:
        return "missing"
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    if isinstance(value, str) and parse.parse_int(value) is not None:
        return "numeric string"
    return "unreadable value"


def _backend_kind(value):
    if value is None:
        return "absent"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "JSON string"
    return "unreadable value"


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
