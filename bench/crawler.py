"""`indexer crawl --scope full --delay 0`, with the crawl's clock moved on by whole days.

    python -m bench.crawler --db catalog.db --hub-url URL --inference-url URL --day-offset 1

The same library call the CLI makes (`crawl.crawl` on `cli.build_fetcher`); the
only difference is the clock, so that crawls run minutes apart land on
different days, as daily crawls would, and the stats growth is real. Prints
the crawl's summary line, then one JSON line with its figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import crawl, store  # noqa: E402
from indexer.cli import build_fetcher  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--inference-url", required=True)
    parser.add_argument("--day-offset", type=int, default=0)
    parser.add_argument("--profile", help="write cProfile stats to this file")
    args = parser.parse_args(argv)
    offset = timedelta(days=args.day_offset)
    fetcher = build_fetcher(args.hub_url, args.inference_url, delay=0, max_retries=4, timeout=60)

    def run():
        return crawl.crawl(args.db, fetcher, scope="full", now=lambda: store.utc_now() + offset)

    if args.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run)
        profiler.dump_stats(args.profile)
    else:
        result = run()
    print(result.summary())
    print(json.dumps({"status": result.status, "models_seen": result.models_seen,
                      "requests": result.requests, "pages": result.pages,
                      "events": result.events, "stats_rows": result.stats_rows,
                      "seconds": result.seconds, "error": result.error}), flush=True)
    return 0 if result.status == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
