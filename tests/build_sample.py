"""Build the bundled sample catalog: six simulated weeks of crawls of the fixture hub.

    python -m tests.build_sample [PATH]     # default: catalog.db at the repository root

No network: a FakeHub on 127.0.0.1 serves `build_catalog(300, seed=7)`, and
between crawls the script changes it the way the real hub changes (downloads
grow, a few models arrive, one disappears, an API flag goes off and on, the
/v1/models list and a licence change). Every crawl keeps the catalog marked as
sample data, so the first live crawl replaces it without writing events for
it. The clock and the randomness are fixed: the same code writes the same rows,
which tests/test_serve.py checks against the committed file.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from indexer import crawl
from tests.fakehub import FakeHub
from tests.fixtures.catalog import ANCHOR_ID, LISTED_NOT_API_ID, build_catalog, make_item, model_id
from tests.helpers import Clock, make_fetcher

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "catalog.db"
SIZE, SEED = 300, 7
# Monday 5 October 2026, 03:00 in UTC+8: ModelScope's day boundary.
START = datetime(2026, 10, 4, 19, 0, tzinfo=timezone.utc)
DAYS = 42
FULL_EVERY = 7
HOT = 12  # models whose downloads climb fast, so `trending` has a top



def api_model(catalog, listed=None, skip=()):
    for mid in sorted(catalog.api_ids):
        if mid in skip or (listed is not None and (mid in catalog.listed_ids) != listed):
            continue
        return mid
    raise LookupError("no such API model in the fixture catalog")


def plain_model(catalog, skip=()):
    for mid in catalog.model_ids():
        if mid not in catalog.api_ids and mid not in catalog.listed_ids and mid not in skip:
            return mid
    raise LookupError("no such model in the fixture catalog")


def grow(catalog, rng, hot):
    """One day of downloads and likes; a few hot models take most of it."""
    for item in catalog.items:
        mid = model_id(item)
        downloads = item.get("Downloads")
        if not mid or not isinstance(downloads, int):
            continue
        if mid in hot:
            gain = 800 + downloads // 25 + rng.randrange(400)
        elif rng.random() < 0.3:
            gain = rng.randrange(1 + downloads // 500 + 5)
        else:
            continue
        item["Downloads"] = downloads + gain
        if rng.random() < 0.05 or (mid in hot and rng.random() < 0.5):
            item["Stars"] = (item.get("Stars") or 0) + 1
    catalog.touch()


def plan(catalog):
    """The day-by-day changes, keyed by simulated day; each is a function of the catalog."""
    gone = plain_model(catalog)
    flipped = api_model(catalog, listed=True, skip={ANCHOR_ID})
    unlisted = api_model(catalog, listed=True, skip={ANCHOR_ID, flipped})
    newly_listed = api_model(catalog, listed=False)
    relicensed = plain_model(catalog, skip={gone})
    renamed = plain_model(catalog, skip={gone, relicensed})
    day = 86_400
    created = int(START.timestamp())
    return {
        3: [lambda c: c.add(make_item("Qwen", "Qwen3-Omni-30B-A3B-Instruct", id=990_001,
                                      created=created + 3 * day, Downloads=1200, Stars=40,
                                      ChineseName="通义千问3-Next-80B-A3B-Instruct",
                                      Tags=["text-generation", "chat"]),
                            api=True, listed=True)],
        9: [lambda c: c.add(make_item("deepseek-ai", "DeepSeek-V3.2-Exp", id=990_002,
                                      created=created + 9 * day, Downloads=900, Stars=25))],
        10: [lambda c: c.remove(gone)],
        12: [lambda c: c.set_api(flipped, False)],
        16: [lambda c: c.set_listed(unlisted, False)],
        17: [lambda c: c.set_listed(newly_listed, True)],
        19: [lambda c: c.update(relicensed, License="CC-BY-NC-4.0")],
        24: [lambda c: c.set_api(flipped, True)],
        26: [lambda c: c.add(make_item("Tongyi-MAI", "Z-Image-Turbo-2", id=990_003,
                                       task="text-to-image-synthesis",
                                       created=created + 26 * day, Downloads=300, Stars=12,
                                       Libraries=["diffusers", "safetensors"],
                                       SupportInference="txt2img"),
                             api=True)],
        30: [lambda c: c.update(renamed, ChineseName="示例模型（改名）"),
             lambda c: c.set_listed(LISTED_NOT_API_ID, False)],
    }


def build(path):
    """Write the sample catalog to `path` (replacing it atomically); returns the crawl results."""
    path = Path(path)
    building = path.with_name(f".{path.name}.building")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    catalog = build_catalog(SIZE, seed=SEED)
    rng = random.Random(SEED)
    hot = set(rng.sample(sorted(catalog.model_ids()), HOT)) | {"Qwen/Qwen3-Omni-30B-A3B-Instruct"}
    changes = plan(catalog)
    results = []
    with FakeHub(catalog) as hub:
        def run(scope, at, seconds):
            results.append(crawl.crawl(building, make_fetcher(hub), scope=scope, keep_sample=True,
                                       now=Clock(at, timedelta(seconds=seconds))))

        for day in range(DAYS):
            for change in changes.get(day, ()):
                change(catalog)
            morning = START + timedelta(days=day)
            if day % FULL_EVERY == 0:
                run("full", morning, 1500)
            run("api", morning + timedelta(hours=7), 20)
            grow(catalog, rng, hot)
    failed = [r.summary() for r in results if r.status != "complete"]
    if failed:
        raise RuntimeError("a sample crawl did not complete: " + "; ".join(failed))
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("vacuum")
        # A committed file without a WAL: serving it read-only leaves no side files.
        conn.execute("pragma journal_mode = delete")
    finally:
        conn.close()
    os.replace(building, path)
    Path(f"{building}.lock").unlink(missing_ok=True)
    return results


def main(argv):
    path = Path(argv[0]) if argv else DEFAULT_PATH
    results = build(path)
    events = sum(r.events for r in results)
    print(f"wrote {path}: {len(results)} crawls, {events} events")


if __name__ == "__main__":
    main(sys.argv[1:])
