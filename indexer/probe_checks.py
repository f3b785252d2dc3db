"""The probe's checks as pure functions: parsed hub answers in, Check objects out.

No network and no database; `indexer.probe` makes the requests and hands the
answers here. A check says `changed` only when an assumption the crawler relies
on no longer holds; what is merely unknown upstream is `ok`, with what was seen.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from indexer import fetch, parse

OK, CHANGED, UNKNOWN = "ok", "changed", "unknown"
STATUSES = (OK, CHANGED, UNKNOWN)

LIST_PATH = "PUT /api/v1/dolphin/models"
EXPECTED_FIELDS = ("Path", "Name", "Downloads", "Stars", "Tasks")
ID_FIELDS = ("Path", "Name")
TIMESTAMP_FIELDS = ("CreatedTime", "LastUpdatedTime")
# A few quirky items are normal upstream (§2.3); more than this share is drift.
MISSING_SHARE = 0.05
# SortBy values (§2.1) and the item field each should order by, largest first.
SORT_FIELDS = (("DownloadsCount", "Downloads"), ("StarsCount", "Stars"),
               ("GmtModified", "LastUpdatedTime"))
# Fields `Default` might follow; it is only reported (see check_sorts).
DEFAULT_CANDIDATES = ("CreatedTime", "LastUpdatedTime", "Downloads", "Stars", "Id")

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


def exit_code(checks):
    """0 when every check is ok, 1 when any changed, 2 when some could not be told."""
    statuses = {check.status for check in checks}
    return 1 if CHANGED in statuses else 2 if UNKNOWN in statuses else 0


def check_envelope(answer):
    if answer.error is not None:
        return Check("envelope", _failed_status(answer), error_text(answer.error))
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


def check_fields(items):
    """Verdict on the keys the crawler reads; null Tasks and placeholder tasks are only reported."""
    if not items:
        return Check("fields", UNKNOWN, "no items on the first page to look at")
    # A key sent as null is normal upstream (`"Tasks": null`, docs/modelscope-api.md
    # §2.3, real capture); only a key the hub stopped sending is drift. Path and
    # Name are the ID, so null there loses the item too.
    lacking = {name: sum(1 for item in items if name not in item
                         or (name in ID_FIELDS and item.get(name) is None))
               for name in EXPECTED_FIELDS}
    n = len(items)
    gone = [name for name, count in lacking.items() if count > n * MISSING_SHARE]
    few = [name for name, count in lacking.items() if 0 < count <= n * MISSING_SHARE]

    def notes(names):
        return "; ".join(f"{lacking[name]} of {n:,} lack{'s' * (lacking[name] == 1)} {name}"
                         for name in names)

    seen = _no_task_notes(items)
    if gone:
        consequence = []
        if set(ID_FIELDS) & set(gone):
            consequence.append("the crawler skips items without an ID")
        if set(gone) - set(ID_FIELDS):
            consequence.append("their columns stay empty")
        detail = f"{notes(gone)} ({'; '.join(consequence)})"
        return Check("fields", CHANGED, detail + "".join(f"; {x}" for x in (notes(few), seen) if x))
    detail = f"items carry {', '.join(EXPECTED_FIELDS)} ({n:,} items looked at)"
    return Check("fields", OK, detail + "".join(f"; {x}" for x in (notes(few), seen) if x))


def _no_task_notes(items):
    """`4 with Tasks: null, 1 with a placeholder task (no task)`, or "" when every item has tasks."""
    null = sum(1 for item in items if "Tasks" in item and item["Tasks"] is None)
    placeholder = sum(1 for item in items if isinstance(item.get("Tasks"), list) and any(
        isinstance(task, dict) and not task.get("Name") for task in item["Tasks"]))
    parts = [f"{null:,} with Tasks: null"] if null else []
    if placeholder:
        parts.append(f"{placeholder:,} with a placeholder task")
    return ", ".join(parts) + " (no task)" if parts else ""


def check_timestamps(items):
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


def check_backend_support(answer, parsed, total):
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


def check_filed_agg(data):
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


def check_api_filter(answer, parsed, total):
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


def check_filter(name, category, value, answer, parsed, total, matches, what):
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


def check_sorts(answers, parsed, seen):
    """Verdict on the sorts the crawler pages by; `Default`'s order is only reported.

    `answers` and `parsed` map each SortBy value to its Answer and its (items, total)
    or None; `seen` holds every item any list answer carried. The real hub's
    `Default` follows no field's order (docs/modelscope-api.md §2.1, real capture),
    and the crawler needs it only as one more window, so it cannot be `changed`.
    """
    top = {}
    for _, field in SORT_FIELDS:
        values = [parse.parse_int(item.get(field)) for item in seen]
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
        elif _leads(keys, top[field]):
            # In order, and led by the largest value any answer showed: an
            # ignored sort that falls back to another order fails one of the two.
            honoured.append(sort)
        else:
            ignored.append(f"{sort} (not by {field})")
    default = _default_order(parsed.get("Default"))
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
        return Check("sorts", CHANGED, f"{detail} ({consequence}); {default}")
    if untold:
        return Check("sorts", UNKNOWN, f"not told: {', '.join(untold)}"
                     + (f"; honoured: {', '.join(honoured)}" if honoured else "") + f"; {default}")
    pairs = ", ".join(f"{sort} by {field}" for sort, field in SORT_FIELDS)
    return Check("sorts", OK, f"each orders largest first: {pairs}; {default}")


def _leads(keys, top):
    return all(a >= b for a, b in itertools.pairwise(keys)) and keys[0] >= top


def _default_order(result):
    """What `Default` was seen to follow: a field's order largest first, or none."""
    if result is None:
        return "Default not seen"
    items = result[0]
    for field in DEFAULT_CANDIDATES:
        keys = [parse.parse_int(item.get(field)) for item in items]
        if len(keys) >= 2 and None not in keys and all(
                a >= b for a, b in itertools.pairwise(keys)):
            return f"Default orders by {field}"
    return f"Default follows none of {', '.join(DEFAULT_CANDIDATES)}"


def check_depth_stopped(offset, how, total):
    return Check("depth", CHANGED,
                 f"items stop before offset {offset:,}: {how}, though TotalCount is "
                 f"{total:,} (full crawls slice around it, with more requests)")

# The inference list ----------------------------------------------------


def check_models_list(listed):
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
    return Check("models-list", status, error_text(listed))


def check_models_token(keyless, with_token):
    name = "models-token"
    if isinstance(with_token, ValueError):
        return Check(name, CHANGED, f"GET /models with MODELSCOPE_TOKEN: {with_token}")
    if isinstance(with_token, BudgetSpent):
        return Check(name, UNKNOWN, str(with_token))
    if not isinstance(with_token, list):
        status = CHANGED if Answer(error=with_token).refused else UNKNOWN
        return Check(name, status, "with MODELSCOPE_TOKEN: " + error_text(with_token))
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
        return error_text(answer.error)
    return "the answer has a shape the parser does not know"


def error_text(error):
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
    model = data.get("Model")
    return "; ".join([f"Data: {_keys(data)}"]
                     + ([f"Data.Model: {_keys(model)}"] if isinstance(model, dict) else []))


def _keys(mapping):
    names = sorted(_clip(str(key), 40) for key in list(mapping)[:12])
    more = ", …" if len(mapping) > 12 else ""
    return ", ".join(names) + more if names else "no keys"


PLURALS = {k: k + "s" for k in ("integer", "numeric string", "object", "JSON string", "unreadable value")}


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
    return {dict: "object", str: "JSON string"}.get(type(value), "unreadable value")
