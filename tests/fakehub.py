"""A fake ModelScope hub + API-Inference model list, served over real HTTP.

Behaviour follows docs/modelscope-api.md (§2.1-2.5, §6.1, §9), quirks
included; where that document is unsure, a switch picks the
behaviour. Standard library only; binds 127.0.0.1 on an ephemeral port.

    from tests.fixtures.catalog import build_catalog
    from tests.fakehub import FakeHub

    with FakeHub(build_catalog(), max_offset=1000, depth_style="short") as hub:
        requests.put(hub.hub_url + "/api/v1/dolphin/models", json={...})
        requests.get(hub.inference_url + "/models")

Endpoints
---------
- ``PUT /api/v1/dolphin/models[/]``: dolphin list (GET/POST -> 404).
- ``GET /api/v1/tasks[/]``: task taxonomy (``tasks_endpoint=False`` -> 404).
- ``GET /v1/models[/]``: OpenAI model list from ``catalog.listed_ids``.
- anything else: 404 with a small JSON body.

Switches (keyword arguments; also plain attributes, changeable at run time)
--------------------------------------------------------------------------
honoured_sorts, facets_tasks_orgs, filed_agg, max_offset, depth_style, layout,
ignore_inference_filter, ignore_task_filter, ignore_org_filter,
timestamps_as_strings, backend_support_as_string, tasks_endpoint,
token_listed_ids, real_shape (on by default: items and FiledAgg as the real hub
shapes them), placeholder_tasks, default_order, recorded. See ``DEFAULT_SWITCHES``.
"""

from __future__ import annotations

import functools
import gc
import gzip
import json
import socket
import struct
import threading
import time
import traceback
import uuid
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain
from typing import Any

from tests.fakehub_caps import CapsHub, models_for
from tests.fixtures.catalog import Catalog, model_id

DOLPHIN_PATH = "/api/v1/dolphin/models"
TASKS_PATH = "/api/v1/tasks"
V1_MODELS_PATH = "/v1/models"

SORTS = ("Default", "DownloadsCount", "StarsCount", "GmtModified")
DEPTH_STYLES = ("empty", "short", "error")
LAYOUTS = ("normal", "legacy", "renamed")
FAULT_KINDS = ("429", "500", "503", "slow", "truncated", "nonjson", "success_false", "reset")

DEFAULT_SWITCHES: dict[str, Any] = {
    # SortBy values honoured; any other value falls back to Default.
    "honoured_sorts": frozenset(SORTS),
    # FiledAgg also carries `tasks` and `organizations` (unknown upstream).
    "facets_tasks_orgs": False,
    # False drops Data.FiledAgg entirely.
    "filed_agg": True,
    # Depth limit on (PageNumber-1)*PageSize; None = no limit.
    "max_offset": None,
    # What a request past max_offset gets: "empty" | "short" | "error".
    "depth_style": "empty",
    # Envelope drift: "normal" | "legacy" (Data.Models) | "renamed" (Data.Model.ModelList).
    "layout": "normal",
    # Silently ignored filters (drift / the docs/modelscope-api.md §2.5 guard).
    "ignore_inference_filter": False,
    "ignore_task_filter": False,
    "ignore_org_filter": False,
    # Serve CreatedTime/LastUpdatedTime as numeric strings.
    "timestamps_as_strings": False,
    # Serve every BackendSupport as a JSON string.
    "backend_support_as_string": False,
    # False -> GET /api/v1/tasks answers 404.
    "tasks_endpoint": True,
    # When a list: requests to /v1/models with `Authorization: Bearer ...` get these IDs.
    "token_listed_ids": None,
    # Items and FiledAgg shaped as the real hub sends them (issue 15, §2.2-2.3 real
    # capture): sorted keys, `"_": null`, `Tasks: null` for no task, JSON-string
    # AigcAttributes/ApplyMeta, Go's zero CertificationCreatedTime, lower-cased
    # FiledAgg values. On by default so every test runs on real-shaped data;
    # False serves the catalog's items as they are (the shape before issue 15).
    "real_shape": True,
    # Taskless items send a placeholder task ({"Name": "", "Id": 0, ...}) instead
    # of `Tasks: null`; the real hub does both, the share is unknown (§2.3).
    "placeholder_tasks": False,
    # "created": Default sorts newest first; "given": the catalog's own order, as the
    # real hub's Default follows no field (§2.1, real capture).
    "default_order": "created",
    # Path of a recorded dolphin answer: its body is served byte for byte for the
    # request it answered (page 1 of `SortBy: Default`, `tags contains lora`), and
    # its FiledAgg for every other list request. Use with catalog_from_recording().
    "recorded": None,
}

GO_ZERO_TIME = -62135596800
PLACEHOLDER_TASK = {"ChineseName": "", "Description": "", "DomainName": "", "Id": 0,
                    "IsExhibition": False, "IsHot": 0, "IsLeaf": False, "IsLoginRequired": False,
                    "IsRetrieval": False, "Level": 0, "Name": "", "ParentId": 0, "ParentTask": None,
                    "Sorting": 0, "SupportWidgets": False, "TaskAlias": "", "WidgetConfig": "",
                    "WidgetType": ""}

# Task -> domain for GET /api/v1/tasks.
_NLP = {"text-generation", "text-classification", "translation", "sentence-embedding", "text-ranking",
        "feature-extraction", "fill-mask", "token-classification"}
_AUDIO = {"auto-speech-recognition", "text-to-speech"}
_MULTI = {"visual-question-answering", "image-to-text", "text-to-image-synthesis", "image-to-video",
          "text-to-video-synthesis"}
DOMAINS = ("nlp", "cv", "audio", "multi-modal")

TOO_DEEP = object()  # sentinel for the "error" depth style


def _domain_of(task: str) -> str:
    if task in _NLP:
        return "nlp"
    if task in _AUDIO:
        return "audio"
    if task in _MULTI:
        return "multi-modal"
    return "cv"


def _as_int(v: Any, default: int) -> int:
    if isinstance(v, bool):
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _ts(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _str_list(v: Any) -> list[str] | None:
    if not isinstance(v, list):
        return None
    return [x for x in v if isinstance(x, str)]


# --------------------------------------------------------------------------
# Index over one catalog version
# --------------------------------------------------------------------------
class _Index:
    """Snapshot of a catalog version: sort orders, inverted indexes, caches."""

    SORT_KEYS = {
        "Default": "CreatedTime",
        "GmtModified": "LastUpdatedTime",
        "DownloadsCount": "Downloads",
        "StarsCount": "Stars",
    }

    def __init__(self, catalog: Catalog, default_order: str = "created"):
        self.default_order = default_order
        self.items: list[dict] = list(catalog.items)
        self.n = len(self.items)
        api = catalog.api_ids
        self.api: set[int] = {i for i, it in enumerate(self.items) if model_id(it) in api} if api else set()
        self._orders: dict[str, list[int]] = {}
        self._ranks: dict[str, list[int]] = {}
        self._inv: dict[str, dict[str, set[int]]] = {}
        self.results: OrderedDict = OrderedDict()  # (filter_key, sort) -> list[int]
        self.matches: OrderedDict = OrderedDict()  # filter_key -> set[int] | None
        self.aggs: OrderedDict = OrderedDict()  # (filter_key, with_tasks_orgs) -> dict

    def order(self, sort: str) -> list[int]:
        o = self._orders.get(sort)
        if o is None and sort == "Default" and self.default_order == "given":
            o = self._orders[sort] = list(range(self.n))
        if o is None:
            field = self.SORT_KEYS[sort]
            keys = [(v if type(v) is int else _ts(v), i_ if type(i_) is int else _ts(i_))
                    for v, i_ in ((it.get(field), it.get("Id")) for it in self.items)]
            o = sorted(range(self.n), key=keys.__getitem__, reverse=True)
            self._orders[sort] = o
        return o

    def rank(self, sort: str) -> list[int]:
        r = self._ranks.get(sort)
        if r is None:
            r = [0] * self.n
            for pos, i in enumerate(self.order(sort)):
                r[i] = pos
            self._ranks[sort] = r
        return r

    def inverted(self, category: str) -> dict[str, set[int]]:
        inv = self._inv.get(category)
        if inv is None:
            inv = defaultdict(set)
            for i, it in enumerate(self.items):
                for v in self.values_of(it, category):
                    inv[v].add(i)
            self._inv[category] = inv
        return inv

    @staticmethod
    def values_of(item: dict, category: str) -> list[str]:
        if category == "tasks":
            return [t["Name"] for t in item.get("Tasks") or [] if isinstance(t, dict) and t.get("Name")]
        if category == "organizations":
            p = item.get("Path")
            return [p] if p else []
        if category == "libraries":
            return [x for x in item.get("Libraries") or [] if isinstance(x, str) and x]
        if category == "tags":
            return [x for x in item.get("Tags") or [] if isinstance(x, str) and x]
        if category == "license":
            lic = item.get("License")
            return [lic] if isinstance(lic, str) and lic else []
        return []


def _libs_of(it: dict):
    return it.get("Libraries") or ()


def _tags_of(it: dict):
    return it.get("Tags") or ()


def _license_of(it: dict):
    return it.get("License")


def _path_of(it: dict):
    return it.get("Path")


def _task_names_of(it: dict):
    return [t.get("Name") for t in it.get("Tasks") or () if isinstance(t, dict) and t.get("Name")]


def _agg_order(kv):
    return (-kv[1], kv[0])


class _NoGC:
    """Pause the cyclic GC while building big indexes (it dominates the cost)."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def _lru_put(d: OrderedDict, key, value, limit: int = 256) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > limit:
        d.popitem(last=False)


# --------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------
class FakeHub:
    """Fake ModelScope hub. Use as a context manager or call start()/stop()."""

    def __init__(self, catalog: Catalog, **switches):
        unknown = set(switches) - set(DEFAULT_SWITCHES)
        if unknown:
            raise TypeError(f"unknown FakeHub switches: {sorted(unknown)}")
        self.catalog = catalog
        # list_model_providers and repository files: one quirk each for the API models.
        self.caps = CapsHub(models_for(set(catalog.api_ids) | set(catalog.listed_ids)))
        for k, v in DEFAULT_SWITCHES.items():
            setattr(self, k, switches.get(k, v))
        if self.depth_style not in DEPTH_STYLES:
            raise ValueError(f"depth_style must be one of {DEPTH_STYLES}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.honoured_sorts = frozenset(self.honoured_sorts)
        self._recorded_body = self._recorded_raw = None
        if self.recorded and "default_order" not in switches:
            self.default_order = "given"
        self.requests: list[dict] = []
        self.errors: list[str] = []  # tracebacks of unexpected server-side errors
        self.before_dolphin: Callable[[FakeHub, dict], None] | None = None
        self._faults: list[dict] = []
        self._log_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._index: _Index | None = None
        self._index_key = None
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.port: int | None = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def dolphin_url(self) -> str:
        return self.hub_url + DOLPHIN_PATH

    def start(self) -> FakeHub:
        if self._server is not None:
            return self
        self._stop.clear()
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        server = _Server(("127.0.0.1", 0), handler)
        server.hub = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeHub:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()  # wakes "slow" faults
        server.shutdown()
        server.server_close()
        with self._log_lock:
            conns = list(self._conns)
        for c in conns:  # drop idle keep-alive connections
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults & logs ----------------------------------------------------------
    def add_fault(self, kind: str, count: int = 1, path: str | None = None,
                  retry_after: int | float | str | None = None, seconds: float | None = None) -> None:
        """Queue a fault for the next ``count`` requests whose path starts with ``path``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count < 1:
            return
        with self._fault_lock:
            self._faults.append({"kind": kind, "count": count, "path": path,
                                 "retry_after": retry_after, "seconds": 1.0 if seconds is None else seconds})

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[dict]:
        with self._fault_lock:
            return [dict(f) for f in self._faults]

    def _take_fault(self, path: str) -> dict | None:
        with self._fault_lock:
            for f in self._faults:
                if f["path"] is None or path.startswith(f["path"]):
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self._faults.remove(f)
                    return dict(f)
        return None

    def reset_log(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def _log(self, entry: dict) -> None:
        with self._log_lock:
            self.requests.append(entry)

    def dolphin_requests(self) -> list[dict]:
        """Logged dolphin requests (any method)."""
        with self._log_lock:
            return [r for r in self.requests if r["path"].rstrip("/") == DOLPHIN_PATH]

    # -- catalog index ------------------------------------------------------------
    def invalidate(self) -> None:
        """Drop caches (needed only after mutating catalog.items without its methods)."""
        with self.catalog._lock:
            self._index = None

    def _get_index(self) -> _Index:
        cat = self.catalog
        key = (id(cat), cat.version, id(cat.items), len(cat.items), len(cat.api_ids),
               self.default_order)
        if self._index is None or self._index_key != key:
            self._index = _Index(cat, self.default_order)
            self._index_key = key
        return self._index

    # -- dolphin ------------------------------------------------------------------
    def _parse_filters(self, body: dict) -> tuple:
        """Normalise the filters the server honours into a hashable key."""
        crits = []
        raw = body.get("Criterion")
        if isinstance(raw, list):
            for c in raw:
                if not isinstance(c, dict) or c.get("predicate") != "contains":
                    continue
                cat = c.get("category")
                if cat not in ("tasks", "organizations", "libraries", "tags", "license"):
                    continue
                if cat == "tasks" and self.ignore_task_filter:
                    continue
                if cat == "organizations" and self.ignore_org_filter:
                    continue
                values = _str_list(c.get("values"))
                if values is None:
                    continue
                if cat == "tasks":
                    values += _str_list(c.get("sub_values")) or []
                if not values:
                    continue
                crits.append((cat, frozenset(values)))
        api = False
        raw = body.get("SingleCriterion")
        if isinstance(raw, list) and not self.ignore_inference_filter:
            for s in raw:
                if (isinstance(s, dict) and s.get("category") == "inference_type"
                        and s.get("DateType") == "int" and s.get("predicate") == "equal"
                        and s.get("IntValue") == 1 and not isinstance(s.get("IntValue"), bool)):
                    api = True
        name = body.get("Name")
        name = name.lower() if isinstance(name, str) and name else None
        return (tuple(sorted(crits, key=lambda c: (c[0], sorted(c[1])))), api, name)

    def _match(self, idx: _Index, fkey: tuple) -> set[int] | None:
        if fkey in idx.matches:
            idx.matches.move_to_end(fkey)
            return idx.matches[fkey]
        crits, api, name = fkey
        sets: list[set[int]] = []
        for cat, values in crits:
            inv = idx.inverted(cat)
            u: set[int] = set()
            for v in values:
                u |= inv.get(v, set())
            sets.append(u)
        if api:
            sets.append(idx.api)
        if sets:
            sets.sort(key=len)
            m = set(sets[0])
            for s in sets[1:]:
                m &= s
        else:
            m = None
        if name is not None:
            items = idx.items
            cand = m if m is not None else range(idx.n)
            m = {i for i in cand
                 if name in f"{items[i].get('Path') or ''}/{items[i].get('Name') or ''}".lower()}
        _lru_put(idx.matches, fkey, m)
        return m

    def _result(self, idx: _Index, fkey: tuple, sort: str) -> list[int]:
        key = (fkey, sort)
        res = idx.results.get(key)
        if res is not None:
            idx.results.move_to_end(key)
            return res
        m = self._match(idx, fkey)
        if m is None:
            res = idx.order(sort)
        elif len(m) * 8 > idx.n:
            res = [i for i in idx.order(sort) if i in m]
        else:
            rank = idx.rank(sort)
            res = sorted(m, key=rank.__getitem__)
        _lru_put(idx.results, key, res)
        return res

    def _aggs(self, idx: _Index, fkey: tuple) -> dict:
        with_to = bool(self.facets_tasks_orgs)
        key = (fkey, with_to)
        agg = idx.aggs.get(key)
        if agg is not None:
            return agg
        m = self._match(idx, fkey)
        items = idx.items if m is None else [idx.items[i] for i in m]
        counters = {
            "libraries": Counter(chain.from_iterable(map(_libs_of, items))),
            "license": Counter(filter(None, map(_license_of, items))),
            "tags": Counter(chain.from_iterable(map(_tags_of, items))),
        }
        if with_to:
            counters["tasks"] = Counter(chain.from_iterable(map(_task_names_of, items)))
            counters["organizations"] = Counter(filter(None, map(_path_of, items)))
        agg = {}
        for c, cnt in counters.items():
            cnt.pop("", None)
            agg[c] = [{"Value": v, "Count": n} for v, n in sorted(cnt.items(), key=_agg_order)
                      if isinstance(v, str)]
        _lru_put(idx.aggs, key, agg, limit=64)
        return agg

    def _serve_item(self, item: dict) -> dict:
        if not (self.timestamps_as_strings or self.backend_support_as_string or self.real_shape):
            return item
        out = dict(item)
        if self.real_shape and "_" not in out:
            out = _real_shape(out, self.placeholder_tasks)
        if self.timestamps_as_strings:
            for f in ("CreatedTime", "LastUpdatedTime"):
                if f in out and out[f] is not None:
                    out[f] = str(_ts(out[f]))
        if self.backend_support_as_string and "BackendSupport" in out and not isinstance(out["BackendSupport"], str):
            out["BackendSupport"] = json.dumps(out["BackendSupport"])
        return out

    def dolphin_response(self, body: dict) -> dict:
        """The JSON envelope the dolphin endpoint answers for ``body``."""
        size = _as_int(body.get("PageSize"), 10)
        size = 10 if size < 1 else min(size, 100)
        page = max(1, _as_int(body.get("PageNumber"), 1))
        sort = body.get("SortBy")
        if not isinstance(sort, str) or sort not in SORTS or sort not in self.honoured_sorts:
            sort = "Default"
        fkey = self._parse_filters(body)
        with self.catalog._lock, _NoGC():
            idx = self._get_index()
            res = self._result(idx, fkey, sort)
            total = len(res)
            offset = (page - 1) * size
            end = offset + size
            mo = self.max_offset
            if mo is not None and offset >= mo:
                if self.depth_style == "error":
                    page_idx = TOO_DEEP
                elif self.depth_style == "short" and mo > 0:
                    last_off = ((mo - 1) // size) * size
                    page_idx = res[last_off:min(last_off + size, mo)][:3]
                else:
                    page_idx = []
            else:
                if mo is not None:
                    end = min(end, mo)
                page_idx = res[offset:end]
            if page_idx is TOO_DEEP:
                return error_envelope("page out of range")
            # serialise under the lock so concurrent update() calls can't tear items
            models = json.loads(json.dumps([self._serve_item(idx.items[i]) for i in page_idx]))
            agg = self._aggs(idx, fkey) if self.filed_agg else None
        if self.layout == "legacy":
            data: dict = {"Models": models, "TotalCount": total}
        elif self.layout == "renamed":
            data = {"Model": {"ModelList": models, "TotalCount": total}}
        else:
            data = {"Model": {"Models": models, "TotalCount": total}}
        if agg is not None:
            data["FiledAgg"] = self._recorded()["Data"]["FiledAgg"] if self.recorded else (
                _lower_agg(agg) if self.real_shape else agg)
        data["Source"] = ""
        data["Target"] = ""
        return {"Code": 200, "Data": data, "Message": "success", "RequestId": str(uuid.uuid4()), "Success": True}

    def _recorded(self) -> dict:
        if getattr(self, "_recorded_body", None) is None:
            with open(self.recorded, "rb") as f:
                self._recorded_raw = f.read()
            self._recorded_body = json.loads(self._recorded_raw)
        return self._recorded_body

    def recorded_answer(self, body: dict) -> bytes | None:
        """The recorded bytes when ``body`` is the request they answered, else None."""
        if not self.recorded:
            return None
        self._recorded()
        crit = body.get("Criterion")
        page = _as_int(body.get("PageNumber"), 1)
        size = _as_int(body.get("PageSize"), 10)
        models = self._recorded_body["Data"]["Model"]["Models"]
        if (body.get("SortBy") == "Default" and page == 1 and size >= len(models)
                and not body.get("SingleCriterion")
                and crit == [{"category": "tags", "predicate": "contains", "values": ["lora"]}]):
            return self._recorded_raw
        return None

    # -- other endpoints ------------------------------------------------------------
    def tasks_response(self) -> dict:
        with self.catalog._lock:
            names = self.catalog.tasks()
        by_dom: dict[str, list[str]] = defaultdict(list)
        for t in names:
            by_dom[_domain_of(t)].append(t)
        domains = [{"Name": d, "Tasks": [{"Name": t} for t in by_dom[d]]} for d in DOMAINS if by_dom.get(d)]
        return {"Code": 200, "Success": True, "Message": "success", "RequestId": str(uuid.uuid4()),
                "Data": {"Domains": domains}}

    def v1_models_response(self, headers: dict) -> dict:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if self.token_listed_ids is not None and auth.strip().lower().startswith("bearer "):
            ids = list(self.token_listed_ids)
        else:
            with self.catalog._lock:
                ids = list(self.catalog.listed_ids)
        return {"object": "list",
                "data": [{"id": i, "object": "model", "created": 1753000000, "owned_by": "system"} for i in ids]}


def _real_shape(item: dict, placeholder_tasks: bool) -> dict:
    """One item as the real hub shapes it (§2.3, real capture); parsing it gives the same row."""
    item.setdefault("_", None)
    if not item.get("Tasks") and isinstance(item.get("Tasks"), list):
        item["Tasks"] = [dict(PLACEHOLDER_TASK)] if placeholder_tasks else None
    item.setdefault("AigcAttributes", "{}")
    item.setdefault("ApplyMeta", "{}")
    item.setdefault("CertificationCreatedTime", GO_ZERO_TIME)
    for key in ("MuseInfo", "OfficialTags", "TriggerWords"):
        item.setdefault(key, None)
    return dict(sorted(item.items()))


def _lower_agg(agg: dict) -> dict:
    """FiledAgg values lower-cased, counts of equal values merged (§2.2, real capture)."""
    out = {}
    for cat, entries in agg.items():
        counts: Counter = Counter()
        for e in entries:
            counts[e["Value"].lower()] += e["Count"]
        out[cat] = [{"Value": v, "Count": n} for v, n in sorted(counts.items(), key=_agg_order)]
    return out


def catalog_from_recording(path, api_ids=(), listed_ids=()) -> Catalog:
    """A catalog of a recorded answer's items, byte-identical when served (``recorded=path``)."""
    with open(path, "rb") as f:
        items = json.load(f)["Data"]["Model"]["Models"]
    return Catalog(items=items, api_ids=set(api_ids), listed_ids=list(listed_ids))


def error_envelope(message: str, code: int = 10010101) -> dict:
    return {"Code": code, "Data": None, "Message": message, "RequestId": str(uuid.uuid4()), "Success": False}


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: FakeHub

    def handle_error(self, request, client_address):  # noqa: D401 - quiet on client hang-ups
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        self.hub.errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive
    wbufsize = -1  # buffer headers + body, flushed once per response
    server_version = "FakeModelScope/1.0"
    sys_version = ""
    timeout = 60
    hub: FakeHub

    def log_message(self, format, *args):  # noqa: A002 - silence stderr
        pass

    def setup(self):
        super().setup()
        with self.hub._log_lock:
            self.hub._conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.hub._log_lock:
            self.hub._conns.discard(self.connection)

    # every method goes through one dispatcher
    def do_GET(self):
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = _as_int(self.headers.get("Content-Length"), 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, payload: Any, headers: dict | None = None,
              content_type: str = "application/json;charset=UTF-8", truncate: bool = False) -> None:
        if isinstance(payload, (bytes, str)):
            data = payload.encode("utf-8") if isinstance(payload, str) else payload
        else:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        else:
            self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"Code": 404, "Message": "not found", "Success": False,
                         "RequestId": str(uuid.uuid4())})

    def _dispatch(self) -> None:
        hub = self.hub
        raw = self._read_body()
        path, _, query = self.path.partition("?")
        body = None
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                body = None
        hub._log({"method": self.command, "path": path, "query": query, "body": body,
                  "headers": dict(self.headers.items()), "time": time.monotonic()})
        try:
            fault = hub._take_fault(self.path)
            if fault is not None and fault["kind"] != "slow":
                self._fault(fault, path, body)
                return
            if fault is not None:  # slow: wait, then answer normally
                hub._stop.wait(fault["seconds"])
            self._route(path, body, raw)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True
        except Exception:  # pragma: no cover - a bug in the fake; surface it
            hub.errors.append(traceback.format_exc())
            try:
                self._send(500, {"Code": 500, "Message": "fakehub internal error", "Success": False})
            except OSError:
                pass

    def _route(self, path: str, body: Any, raw: bytes) -> None:
        hub = self.hub
        p = path.rstrip("/") or "/"
        if p == DOLPHIN_PATH and self.command == "PUT":
            if raw and not isinstance(body, dict):
                self._send(400, {"Code": 400, "Message": "invalid request body", "Success": False,
                                 "RequestId": str(uuid.uuid4())})
                return
            body = body if isinstance(body, dict) else {}
            hook = hub.before_dolphin
            if hook is not None:
                hook(hub, body)
            recorded = hub.recorded_answer(body)
            self._send(200, recorded if recorded is not None else hub.dolphin_response(body))
        elif p == TASKS_PATH and self.command == "GET" and hub.tasks_endpoint:
            self._send(200, hub.tasks_response())
        elif p == V1_MODELS_PATH and self.command == "GET":
            self._send(200, hub.v1_models_response(dict(self.headers.items())))
        elif (answer := hub.caps.respond(self.command, self.path)) is not None:
            self._send(answer[0], answer[1], content_type=answer[2])
        else:
            self._not_found()

    def _fault(self, fault: dict, path: str, body: Any) -> None:
        kind = fault["kind"]
        rid = str(uuid.uuid4())
        if kind == "429":
            headers = {}
            if fault["retry_after"] is not None:
                headers["Retry-After"] = fault["retry_after"]
            self._send(429, {"errors": {"message": "Request limit exceeded.", "request_id": rid}}, headers)
        elif kind in ("500", "503"):
            msg = "Internal Server Error" if kind == "500" else "Service Unavailable"
            self._send(int(kind), {"Code": int(kind), "Message": msg, "RequestId": rid, "Success": False})
        elif kind == "nonjson":
            html = ("<!DOCTYPE html><html><head><title>ModelScope</title></head>"
                    "<body><h1>502 Bad Gateway</h1><p>Tengine</p></body></html>")
            self._send(200, html, content_type="text/html;charset=UTF-8")
        elif kind == "success_false":
            self._send(200, error_envelope("system busy"))
        elif kind == "truncated":
            p = path.rstrip("/")
            if p == DOLPHIN_PATH and isinstance(body, dict):
                payload: Any = self.hub.dolphin_response(body)
            elif p == V1_MODELS_PATH:
                payload = self.hub.v1_models_response(dict(self.headers.items()))
            elif p == TASKS_PATH:
                payload = self.hub.tasks_response()
            else:
                payload = self.hub.dolphin_response({})
            self._send(200, payload, truncate=True)
        elif kind in WIRE_FAULTS:
            _send_wire_fault(self, kind)
        elif kind == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# Hostile wire faults (issue 14): answers that never end, or end far too big.
#   drip      - headers, then one byte of a 2 KB body every 0.5 s
#   gzip_bomb - a gzip body (~1 MB on the wire) that inflates to 1 GB of spaces
#   endless   - a chunked body of spaces that never ends
# --------------------------------------------------------------------------
WIRE_FAULTS = ("drip", "gzip_bomb", "endless")
FAULT_KINDS = FAULT_KINDS + WIRE_FAULTS
DRIP_INTERVAL = 0.5
BOMB_BYTES = 1024 ** 3


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """1 GB of spaces as 1,024 concatenated gzip members of 1 MB each (built once)."""
    member = gzip.compress(b" " * (1024 * 1024), compresslevel=9)
    return member * (BOMB_BYTES // (1024 * 1024))


def _send_wire_fault(handler: _Handler, kind: str) -> None:
    hub = handler.hub
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json;charset=UTF-8")
    if kind == "drip":
        body = json.dumps({"Code": 200, "Success": True, "Data": {"pad": " " * 2000}}).encode()
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for n in range(len(body)):
            handler.wfile.write(body[n:n + 1])
            handler.wfile.flush()
            if hub._stop.wait(DRIP_INTERVAL):
                return
    elif kind == "gzip_bomb":
        body = gzip_bomb()
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    else:  # endless
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b" " * 65536
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while not hub._stop.is_set():
            handler.wfile.write(frame)
            handler.wfile.flush()
