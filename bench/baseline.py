"""The physical floor of a full ingest: plain `requests`, `json.loads`, one `executemany`.

    python -m bench.baseline --db baseline.db --hub-url URL --inference-url URL

Reads the same answers a full crawl needs from the same hub: the whole list and
the API-Inference list (100 a page, most downloaded first), the task list, the
inference service's `/models`, and for each API-Inference model what the crawl
reads of its capabilities (its providers, its config.json, and the tokenizer
config of a chat model; indexer/enrich.py). It keeps every answer in memory and
inserts each kind with one `executemany` into a bare table. `--list-only` reads the two
lists alone, as this baseline did before capabilities. Prints one JSON line:
requests, rows, seconds.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

import requests

from indexer import enrich, status

PAGE_SIZE = 100
API_FILTER = [{"category": "inference_type", "DateType": "int", "predicate": "equal",
               "IntValue": 1}]


def fetch_all(session, url, single, counter):
    page = 1
    while True:
        body = {"PageSize": PAGE_SIZE, "PageNumber": page, "SortBy": "DownloadsCount",
                "Target": "", "Criterion": [], "SingleCriterion": single}
        response = session.put(url, json=body, timeout=60)
        counter[0] += 1
        data = json.loads(response.content)["Data"]["Model"]
        yield from data["Models"]
        if page * PAGE_SIZE >= data["TotalCount"] or not data["Models"]:
            break
        page += 1


def fetch_reads(session, hub_url, inference_url, api_items, counter):
    """(url, body) of every answer beyond the model list a full crawl reads."""
    urls = [f"{hub_url}/api/v1/tasks", f"{inference_url}/models"]
    for item in api_items:
        model_id = f"{item.get('Path')}/{item.get('Name')}"
        urls += [enrich.providers_url(hub_url, model_id),
                 enrich.file_url(hub_url, model_id, enrich.CONFIG_FILE)]
        tasks = [t.get("Name") for t in item.get("Tasks") or [] if isinstance(t, dict)]
        if status.kind_of(tasks) == "chat":
            urls.append(enrich.file_url(hub_url, model_id, enrich.TEMPLATE_FILE))
    for url in urls:
        response = session.get(url, timeout=60)
        counter[0] += 1
        try:
            body = json.dumps(json.loads(response.content), ensure_ascii=False)
        except ValueError:
            body = None  # an answer that is not JSON is one the crawl does not keep either
        yield url, body


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--inference-url", required=True)
    parser.add_argument("--list-only", action="store_true",
                        help="read the model list and the API-Inference list only")
    args = parser.parse_args(argv)
    started = time.monotonic()
    session = requests.Session()
    hub_url = args.hub_url.rstrip("/")
    url = hub_url + "/api/v1/dolphin/models"
    counter = [0]
    rows = [(f"{item.get('Path')}/{item.get('Name')}", item.get("Downloads"), item.get("Stars"),
             json.dumps(item, ensure_ascii=False))
            for item in fetch_all(session, url, [], counter)]
    api_items = list(fetch_all(session, url, API_FILTER, counter))
    api = [(f"{item.get('Path')}/{item.get('Name')}",) for item in api_items]
    reads = [] if args.list_only else list(
        fetch_reads(session, hub_url, args.inference_url.rstrip("/"), api_items, counter))
    conn = sqlite3.connect(args.db)
    conn.execute("create table models (model_id text, downloads integer, likes integer, item text)")
    conn.execute("create table api (model_id text)")
    conn.executemany("insert into models values (?, ?, ?, ?)", rows)
    conn.executemany("insert into api values (?)", api)
    conn.execute("create table reads (url text, body text)")
    conn.executemany("insert into reads values (?, ?)", reads)
    conn.commit()
    conn.close()
    print(json.dumps({"requests": counter[0], "rows": len(rows), "api_rows": len(api),
                      "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
