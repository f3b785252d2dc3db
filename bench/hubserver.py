"""A FakeHub over a synthetic catalog, in its own process, so the crawler's memory is its own.

    python -m bench.hubserver --models 254000 [--seed 7] [--mutate 0.1]

It prints one JSON line (`url`, `models`, `api`, `listed`) once it serves, then
reads commands on stdin, one a line, answering each with one JSON line:

    mutate FRACTION SEED   change downloads (and, for half of them, likes) of
                           that share of the models, deterministically
    quit                   stop (so does end of input)

The hub adds no latency. Its sort orders and facet counts are built before it
reports ready (and again after a mutation), so no crawl pays for them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import fetch  # noqa: E402
from tests.fakehub import FakeHub  # noqa: E402
from tests.fixtures.catalog import build_catalog, model_id  # noqa: E402


def mutate(catalog, fraction, seed):
    """Move downloads of `fraction` of the models (likes too for half of them); returns the count."""
    rng = random.Random(seed)
    with catalog._lock:
        items = catalog.items
        picked = rng.sample(range(len(items)), int(len(items) * fraction))
        for index in picked:
            item = items[index]
            item["Downloads"] = (item.get("Downloads") or 0) + 1 + rng.randrange(1000)
            if rng.random() < 0.5:
                item["Stars"] = (item.get("Stars") or 0) + 1
        catalog.touch()
    return len(picked)


def warm(hub):
    """Build the hub's sort order and facet caches for the queries a full crawl makes."""
    for api in (False, True):
        hub.dolphin_response(fetch.models_body(page=1, page_size=100, api_only=api))
        hub.dolphin_response(fetch.models_body(page=1, page_size=1, api_only=api))


def describe(hub):
    catalog = hub.catalog
    return {"url": hub.hub_url, "inference_url": hub.inference_url,
            "models": sum(1 for item in catalog.items if model_id(item)),
            "api": len(catalog.api_ids), "listed": len(catalog.listed_ids)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mutate", type=float, default=0.0)
    # The hub's API-Inference set is "well under 1,000" of 254,000 models
    # (docs/modelscope-api.md §10); the test fixtures' 10% would make every API query 50x
    # larger than real.
    parser.add_argument("--api-fraction", type=float, default=0.002)
    args = parser.parse_args(argv)
    catalog = build_catalog(args.models, seed=args.seed, api_fraction=args.api_fraction)
    if args.mutate:
        mutate(catalog, args.mutate, args.seed)
    with FakeHub(catalog) as hub:
        warm(hub)
        print(json.dumps(describe(hub)), flush=True)
        for line in sys.stdin:
            command = line.split()
            if not command or command[0] == "quit":
                break
            if command[0] == "mutate":
                changed = mutate(catalog, float(command[1]), int(command[2]))
                warm(hub)
                print(json.dumps({"mutated": changed}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command[0]!r}"}), flush=True)
            # The request log is the hub's only growing state; a benchmark never reads it.
            hub.reset_log()


if __name__ == "__main__":
    main()
