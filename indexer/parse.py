"""Pure parsing: hub JSON in, row dicts out. No network, no database, no clock."""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections import Counter

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

from indexer.modelid import (
    CONTROL_CHARS,
    MAX_ID_PART,
    id_part,
    replace_surrogates,
    split_model_id,
)

MODEL_PAGE = "https://modelscope.cn/models/"

# Hostile input from the hub must be stored safely, so every text field is
# capped and every list is bounded (issue 6: 10,000 tags on one model).
MAX_TEXT = {"description": 4000, "chinese_name": 300, "license": 200,
            "support_inference": 200, "api_model_id": 300}
MAX_LIST_ITEMS = 100
MAX_LIST_ITEM_LEN = 100
# SQLite stores integers in 64 bits; a larger count is no count (issue 14).
MAX_INT = 2**63 - 1
# "12,345": thousands separators, as the hub sometimes sends counts (issue 14).
GROUPED_INT = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+")
# 10000-01-01T00:00:00Z: no ISO-8601 year has five digits, so no timestamp goes further.
YEAR_10000 = 253402300800
# Re-exported: split_model_id lived here before modelid.py, and callers still use it.
__all__ = ["CONTROL_CHARS", "MAX_ID_PART", "split_model_id"]


class SkipItem(ValueError):
    """An item that cannot become a row; the reason is counted, not raised further."""


def clean_text(value, limit=None):
    """Return a safe str or None: no NUL bytes, no lone surrogates, capped in length."""
    if value is None:
        return None
    if value.__class__ is str and value.isascii():
        # Most of a crawl's strings: no surrogate can be in them, so only NULs and the cap.
        if "\x00" in value:
            value = value.replace("\x00", "")
        return value if limit is None or len(value) <= limit else value[:limit]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            return None
    value = value.replace("\x00", "")
    # Invalid UTF-8 reaches us as lone surrogates (json allows "\udcff");
    # SQLite would refuse to encode them.
    value = replace_surrogates(value)
    if limit is not None and len(value) > limit:
        value = value[:limit]
    return value


def strip_html(value):
    """Plain text from text that may carry HTML (docs/modelscope-api.md §2.3)."""
    text = clean_text(value)
    if not text:
        return text
    if "<" in text and ">" in text:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            text = BeautifulSoup(text, "html.parser").get_text(" ")
        text = " ".join(text.split())
    return text


def _number(value):
    """An int of any size from an int, a finite float or a numeric string (`12,345` too); else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if GROUPED_INT.fullmatch(text):
            text = text.replace(",", "")
        if len(text) > 400:
            return None  # int() of a huge digit string is slow, and no count is that long
        try:
            return int(text)
        except ValueError:
            try:
                return _number(float(text))
            except ValueError:
                return None
    return None


def parse_int(value):
    """An int from an int, a float, or a numeric string; None for anything else or beyond 64 bits."""
    number = _number(value)
    return number if number is not None and abs(number) <= MAX_INT else None


def parse_count(value):
    """(count, problem): a count is never negative nor beyond SQLite's range; either gives (None, why)."""
    number = _number(value)
    if number is None:
        return None, None
    if number < 0:
        return None, "negative"
    if number > MAX_INT:
        return None, "out_of_range"
    return number, None


def _likes(item):
    likes = item.get("Stars")
    return item.get("Likes") if likes is None else likes


def count_warnings(item):
    """Warning names for the counts of one item that were dropped, e.g. `negative_downloads`."""
    if not isinstance(item, dict):
        return []
    found = []
    for field, value in (("downloads", item.get("Downloads")), ("stars", _likes(item))):
        problem = parse_count(value)[1]
        if problem:
            found.append(f"{problem}_{field}")
    return found


def parse_timestamp(value):
    """ISO-8601 UTC text from unix seconds, which arrive as ints or numeric strings.

    See docs/modelscope-api.md §2.3.
    """
    seconds = parse_int(value)
    if seconds is None or seconds <= 0:
        return None
    if seconds > 10**11:  # milliseconds
        seconds //= 1000
    if seconds >= YEAR_10000:
        return None
    # datetime's isoformat text at half its cost: a crawl reads two per model.
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def parse_string_list(value, key=None):
    """A bounded list of clean strings; items may be strings or objects carrying `key`."""
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list):
        return []
    out = []
    for entry in value:
        if key is not None and isinstance(entry, dict):
            entry = entry.get(key)
        text = clean_text(entry, MAX_LIST_ITEM_LEN) if isinstance(entry, str) else None
        if text and text not in out:
            out.append(text)
            if len(out) >= MAX_LIST_ITEMS:
                break
    return out


def parse_backend_model_id(value):
    """The callable ID in `BackendSupport`: an object, a JSON string, `{}` or absent.

    See docs/modelscope-api.md §2.3.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except (ValueError, RecursionError):
            return None
    if isinstance(value, dict):
        model_id = value.get("model_id")
        if isinstance(model_id, str) and model_id.strip():
            return clean_text(model_id.strip(), MAX_TEXT["api_model_id"])
    return None


def parse_api_model_id(item, api=False):
    """The callable ID of an API-Inference model, else None.

    The hub fills `BackendSupport.model_id` on LoRAs and other models nobody can
    call (docs/modelscope-api.md §2.3, real capture: 11 of 30), so it names a
    callable ID only on items of the API-Inference set or flagged
    `SupportApiInference`; anywhere else it would show a "callable ID" for nothing.
    """
    if not api and item.get("SupportApiInference") is not True:
        return None
    return parse_backend_model_id(item.get("BackendSupport"))


def parse_model(item, api=False):
    """One dolphin list item to a `models` row (without flags and seen-times); raises SkipItem.

    `api` says the item came from the API-Inference set (the `inference_type` filter).
    """
    if not isinstance(item, dict):
        raise SkipItem("not_an_object")
    for key in ("Path", "Name"):
        value = item.get(key)
        if isinstance(value, str) and CONTROL_CHARS.search(value.strip()):
            raise SkipItem("invalid_id")
    for key, reason in (("Path", "long_path"), ("Name", "long_name")):
        # Counted apart from a missing part: it is there, only far too long (issue 14).
        value = item.get(key)
        if isinstance(value, str) and len(value.strip()) > MAX_ID_PART:
            raise SkipItem(reason)
    owner = id_part(item.get("Path"))
    if owner is None:
        raise SkipItem("missing_path")
    name = id_part(item.get("Name"))
    if name is None:
        raise SkipItem("missing_name")
    model_id = f"{owner}/{name}"
    return {
        "model_id": model_id,
        "owner": owner,
        "name": name,
        "chinese_name": clean_text(item.get("ChineseName"), MAX_TEXT["chinese_name"]) or None,
        "description": (strip_html(item.get("Description")) or "")[:MAX_TEXT["description"]] or None,
        "tasks": parse_string_list(item.get("Tasks"), key="Name"),
        "tags": parse_string_list(item.get("Tags")),
        "libraries": parse_string_list(item.get("Libraries")),
        "license": clean_text(item.get("License"), MAX_TEXT["license"]) or None,
        "downloads": parse_count(item.get("Downloads"))[0],
        "likes": parse_count(_likes(item))[0],
        "created_at": parse_timestamp(item.get("CreatedTime")),
        "updated_at": parse_timestamp(item.get("LastUpdatedTime")),
        "api_model_id": parse_api_model_id(item, api),
        "support_inference": clean_text(item.get("SupportInference"), MAX_TEXT["support_inference"]),
        "url": MODEL_PAGE + model_id,
    }


def parse_models(items, api=False):
    """Rows for the items that parse, and a Counter of skip reasons for those that don't."""
    rows, skipped = [], Counter()
    for item in items if isinstance(items, list) else []:
        try:
            rows.append(parse_model(item, api=api))
        except SkipItem as skip:
            skipped[str(skip)] += 1
    return rows, skipped


def parse_inference_list(body):
    """The model IDs of an OpenAI `/models` list (`{"object":"list","data":[{"id":...}]}`)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("the /models answer has no `data` list")
    ids = []
    for entry in data:
        model_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(model_id, str):
            model_id = clean_text(model_id.strip(), MAX_ID_PART * 2)
            if split_model_id(model_id) and model_id not in ids:
                ids.append(model_id)
    return ids


def parse_page(data):
    """(items, total, facets) from a dolphin envelope's `Data`, tolerating the legacy layout."""
    if not isinstance(data, dict):
        raise ValueError("the answer has no `Data` object")
    holder = data.get("Model") if isinstance(data.get("Model"), dict) else data
    items = holder.get("Models")
    total = parse_int(holder.get("TotalCount"))
    if not isinstance(items, list) or total is None:
        raise ValueError("the answer has no `Data.Model.Models` list and `TotalCount`")
    facets = data.get("FiledAgg") if isinstance(data.get("FiledAgg"), dict) else {}
    return items, total, facets


def parse_facet_values(facets, category):
    """[(value, count), ...] for one `FiledAgg` category, or [] when the hub gives none."""
    out = []
    for entry in facets.get(category) or [] if isinstance(facets, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("Value"), str):
            out.append((entry["Value"], parse_int(entry.get("Count"))))
    return out


def parse_task_list(body):
    """Task names from the task taxonomy endpoint, `Data.Domains[].Tasks[].Name`.

    See docs/modelscope-api.md §1, endpoint K.
    """
    names = []
    data = body.get("Data") if isinstance(body, dict) else None
    domains = data.get("Domains") if isinstance(data, dict) else None
    for domain in domains if isinstance(domains, list) else []:
        tasks = domain.get("Tasks") if isinstance(domain, dict) else None
        for name in parse_string_list(tasks, key="Name"):
            if name not in names:
                names.append(name)
    return names
