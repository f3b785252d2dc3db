"""Datasette at size, in process: median and 95th percentile per URL, facets that timed out."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import statistics
import time
from pathlib import Path
from urllib.parse import urlencode

from datasette.utils import tilde_encode

from indexer import site

# Values for canned-query parameters that need one to do real work; every
# other parameter is left empty, which the queries read as "no filter".
PARAM_VALUES = {"id": "Qwen/Qwen2.5-7B-Instruct"}
# A typo of a real ID: the check page then looks for close matches.
UNKNOWN_ID = "Qwen/Qwen2.5-7B-Instrutc"
SEARCHES = ("qwen2.5", "Kimi-K2")


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def canned_queries(metadata, db_name):
    """{name: url} for every canned query in metadata.yml, read at run time."""
    queries = ((metadata.get("databases") or {}).get(db_name) or {}).get("queries") or {}
    urls = {}
    for name, query in queries.items():
        sql = query["sql"] if isinstance(query, dict) else query
        params = (query.get("params") if isinstance(query, dict) else None) or \
            sorted(set(re.findall(r"(?<!:):(\w+)", sql)))
        args = urlencode({p: PARAM_VALUES.get(p, "") for p in params})
        urls[name] = f"/{db_name}/{name}.json" + (f"?{args}" if args else "")
    return urls, queries


def atom_feeds(queries, db_name):
    return {name: f"/{db_name}/{name}.atom" for name, query in queries.items()
            if isinstance(query, dict) and "atom_id" in query.get("sql", "")}


def build_urls(db_name, metadata):
    """(label, url, kind) for every URL the benchmark times: the pages a person opens, by name."""
    models = f"/{db_name}/models"
    urls = [("Home page `/`", "/", "page"),
            (f"Catalog page `/{db_name}`", f"/{db_name}", "page"),
            ("Models page with its facets (HTML)", models, "page"),
            ("Models page with its facets (.json)", f"{models}.json", "page")]
    for text in SEARCHES:
        urls.append((f"Search `{text}` with facets (HTML)", f"{models}?_search={text}", "search"))
        urls.append((f"Search `{text}` with facets (.json)", f"{models}.json?_search={text}",
                     "search"))
        urls.append((f"Search `{text}` without facets (.json)",
                     f"{models}.json?_search={text}&_nofacet=1", "search"))
    urls += [
        ("Filter `status=ok`, the callable models, with facets (HTML)", f"{models}?status=ok",
         "filter"),
        ("Filter `api_inference=1` with facets (.json)", f"{models}.json?api_inference=1", "filter"),
        ("Filter `kind=embedding` with facets (HTML)", f"{models}?kind=embedding", "filter"),
        ("Filter `status=not-api`, nearly every model, with facets (.json)",
         f"{models}.json?status=not-api", "filter"),
        ("A model's row page (HTML)", f"{models}/{tilde_encode(PARAM_VALUES['id'])}", "page"),
        ("View `api_models` (HTML)", f"/{db_name}/api_models", "page"),
        ("View `trending` (HTML)", f"/{db_name}/trending", "page"),
        ("Table `model_events` (HTML)", f"/{db_name}/model_events", "page"),
        ("Table `crawl_runs` (HTML)", f"/{db_name}/crawl_runs", "page"),
        ("Model picker `/-/pick` (HTML)", "/-/pick", "page"),
        ("Model picker, chat models with tools (HTML)", "/-/pick?kind=chat&tools=1", "page"),
        ("Model picker IDs `/-/pick.txt`", "/-/pick.txt", "page"),
        ("Check page, a known ID (HTML)",
         f"/{db_name}/check_model_id?{urlencode({'id': PARAM_VALUES['id']})}", "canned"),
        ("Check page, an unknown ID with close matches (HTML)",
         f"/{db_name}/check_model_id?{urlencode({'id': UNKNOWN_ID})}", "canned"),
    ]
    canned, queries = canned_queries(metadata, db_name)
    for name, url in canned.items():
        urls.append((f"Canned query `{name}` (.json)", url, "canned"))
    for name, url in atom_feeds(queries, db_name).items():
        urls.append((f"Atom feed `{name}.atom`", url, "atom"))
    return urls


def measure_site(db_path, reps=20):
    """{"urls": [...], "facets_timed_out": [...], "csv": {...}} for the catalog at db_path."""
    db_path = Path(db_path)
    db_name = site.CATALOG_NAME
    ds = site.build_datasette(db_path)
    metadata = site.load_metadata()
    loop = asyncio.new_event_loop()

    def get(url):
        return loop.run_until_complete(ds.client.get(url))

    results = []
    try:
        for label, url, kind in build_urls(db_name, metadata):
            times, statuses = [], set()
            for _ in range(reps + 1):  # the first request warms caches and is not counted
                started = time.perf_counter()
                response = get(url)
                times.append((time.perf_counter() - started) * 1000)
                statuses.add(response.status_code)
            times = times[1:]
            results.append({"label": label, "url": url, "kind": kind, "status": sorted(statuses),
                            "median_ms": statistics.median(times), "p95_ms": percentile(times, 0.95)})
        page = get(f"/{db_name}/models.json").json()
        search = get(f"/{db_name}/models.json?_search={SEARCHES[0]}").json()
        filtered = get(f"/{db_name}/models.json?api_inference=1").json()
        timed_out = sorted(set(page.get("facets_timed_out") or []) |
                           set(search.get("facets_timed_out") or []) |
                           set(filtered.get("facets_timed_out") or []))
        facets = sorted((page.get("facet_results") or {}).keys())
        configured = configured_facets(metadata, db_name)
        missing = sorted(set(configured) - set(facets) - set(timed_out))
        streamed = stream_csv(get, f"/{db_name}/api_models.csv?_stream=on")
    finally:
        loop.close()
    return {"urls": results, "facets": facets, "facets_timed_out": timed_out,
            "facets_missing": missing, "csv": streamed}


def configured_facets(metadata, db_name):
    """Column names of the facets metadata.yml sets on the models table."""
    tables = ((metadata.get("databases") or {}).get(db_name) or {}).get("tables") or {}
    names = []
    for facet in (tables.get("models") or {}).get("facets") or []:
        names.append(facet if isinstance(facet, str) else next(iter(facet.values())))
    return names


def stream_csv(get, url):
    started = time.perf_counter()
    response = get(url)
    seconds = time.perf_counter() - started
    lines = list(csv.reader(io.StringIO(response.text)))
    return {"url": url, "status": response.status_code, "seconds": seconds,
            "rows": max(0, len(lines) - 1), "bytes": len(response.content),
            "error": "" if response.status_code == 200 else response.text[:200]}
