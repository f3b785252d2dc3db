"""The physical floor of a full ingest: plain `requests`, `json.loads`, one `executemany`.

    python -m bench.baseline --db baseline.db --hub-url URL

Reads the same pages a full crawl needs from the same hub (the whole list and
the API-Inference list, 100 a page, most downloaded first), keeps every item
in memory, and inserts them all with one `executemany` into a bare table.
Prints one JSON line: requests, rows, seconds.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

import requests

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--hub-url", required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    session = requests.Session()
    url = args.hub_url.rstrip("/") + "/api/v1/dolphin/models"
    counter = [0]
    rows = [(f"{item.get('Path')}/{item.get('Name')}", item.get("Downloads"), item.get("Stars"),
             json.dumps(item, ensure_ascii=False))
            for item in fetch_all(session, url, [], counter)]
    api = [(f"{item.get('Path')}/{item.get('Name')}",) for item in fetch_all(session, url, API_FILTER, counter)]
    conn = sqlite3.connect(args.db)
    conn.execute("create table models (model_id text, downloads integer, likes integer, item text)")
    conn.execute("create table api (model_id text)")
    conn.executemany("insert into models values (?, ?, ?, ?)", rows)
    conn.executemany("insert into api values (?)", api)
    conn.commit()
    conn.close()
    print(json.dumps({"requests": counter[0], "rows": len(rows), "api_rows": len(api),
                      "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
