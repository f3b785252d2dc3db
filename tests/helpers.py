"""Shared test helpers: run crawls against the fake hub and read catalogs back."""

from __future__ import annotations

import json

from indexer import crawl, fetch, parse, schema, store


class Sleeps(list):
    """A sleep that records instead of waiting, so retry tests run instantly."""

    def __call__(self, seconds):
        self.append(round(seconds, 3))


def make_fetcher(hub, token=None, max_retries=3, timeout=5.0, sleep=None):
    return fetch.Fetcher(fetch.build_session(token), hub_url=hub.hub_url,
                         inference_url=hub.inference_url, delay=0, max_retries=max_retries,
                         backoff=0.01, timeout=timeout,
                         sleep=sleep if sleep is not None else Sleeps())


def run_crawl(db_path, hub, scope="api", confirm=2, **kwargs):
    fetcher = kwargs.pop("fetcher", None) or make_fetcher(hub)
    # Capability reads cost requests of their own; tests of them ask (tests/test_enrich.py).
    kwargs.setdefault("capabilities", False)
    return crawl.crawl(db_path, fetcher, scope=scope, confirm=confirm, **kwargs)


def rows(db_path, sql, params=()):
    db = store.open_db(db_path, create=False)
    try:
        return [dict(r) for r in db.query(sql, params)]
    finally:
        db.conn.close()


def models(db_path):
    """Every models row keyed by ID, with JSON columns decoded."""
    out = {}
    for row in rows(db_path, "select * from models order by model_id"):
        for column in schema.JSON_COLUMNS:
            if row[column] is not None:
                row[column] = json.loads(row[column])
        out[row["model_id"]] = row
    return out


def expected_row(item, api, listed, seen_at=None):
    """The models row a crawl must store for a hub item (without the seen-times)."""
    row = parse.parse_model(item, api=api or listed)
    row.update(api_inference=int(api), in_inference_list=int(listed), removed_at=None)
    return row


def without_times(row):
    return {k: v for k, v in row.items() if k not in ("first_seen_at", "last_seen_at")}


def valid_items(catalog):
    out = []
    for item in catalog.items:
        try:
            parse.parse_model(item)
        except parse.SkipItem:
            continue
        out.append(item)
    return out


def events(db_path):
    return [(r["model_id"], r["event"], json.loads(r["detail"]) if r["detail"] else None)
            for r in rows(db_path, "select * from model_events order by id")]
