"""Time `track.merge` alone: a first merge into an empty catalog, then a merge of the same rows again.

    python -m bench.mergebench --source catalog.db [--models 50000] [--repeat 3]

Stages the models of an existing catalog (a first crawl's, say) into a fresh
catalog's staging database, as a crawl would have, and times the merge's CPU
and wall time, so merge variants can be compared without the hub or parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import stage, store, track  # noqa: E402


def stage_from(db, source, models):
    conn = db.conn
    conn.execute("attach database ? as src", [str(source)])
    cols = ", ".join(stage.STAGE_COLUMNS)
    limit = f" limit {int(models)}" if models else ""
    conn.execute(f"insert into stage.items select {cols} from src.models "
                 f"order by model_id{limit}")
    conn.execute("insert into stage.api select model_id from src.models where api_inference = 1")
    conn.execute("insert into stage.listed select model_id from src.models where in_inference_list = 1")
    conn.commit()
    conn.execute("detach database src")


def timed_merge(db, now):
    conn = db.conn
    conn.execute("pragma cache_size = -65536")
    run_id = store.start_run(db, "full", now)
    cpu, wall = time.process_time(), time.perf_counter()
    with store.transaction(db) as tx:
        merged = track.merge(tx, run_id, "full", True, now)
        store.update_run(tx, run_id, status="complete")
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, **merged}


def one(source, models, second):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "catalog.db")
        db = store.open_db(path)
        now = datetime(2026, 11, 28, tzinfo=timezone.utc)
        stage.attach_stage(db)
        stage_from(db, source, models)
        first = timed_merge(db, now)
        out = {"first": first}
        if second:
            out["second"] = timed_merge(db, now + timedelta(days=1))
        stage.detach_stage(db)
        db.conn.close()
        out["bytes"] = os.path.getsize(path)
        return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--models", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--second", action="store_true", help="also time an unchanged second merge")
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        print(json.dumps(one(args.source, args.models, args.second)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
