"""Run the issue 6 benchmark and write bench/RESULTS.md.

For each size: a hub process over a synthetic catalog; a full crawl into an
empty catalog; the plain baseline against the same hub; more first crawls and
baselines, back to back, so the ratio of the two is a median of pairs and not
one pair's luck on a shared host; a re-crawl after 10%
of the models changed; a re-crawl with nothing changed; Datasette in process;
`indexer export` and `indexer check`. Every crawler runs as its own process, so
its peak RSS (from wait4) is its own and not the hub's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import report, sitebench
from bench.peak import MARK as PEAK_MARK

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (254_000, 1_000_000)
QUICK_SIZE = 5_000
CHANGED_SHARE = 0.1
# First crawl and baseline pairs per size: the host's speed moves 10-30% between
# runs minutes apart (bench/findings.md), so one pair's ratio is mostly the host.
DEFAULT_PAIRS = 3
CHECK_IDS = ("Qwen/Qwen2.5-7B-Instruct", "moonshotai/Kimi-K2-Instruct", "Qwen/Qwen2.5-72B-Instruct",
             "nobody/no-such-model")


def run_child(args, log_path, cwd=ROOT):
    """Run one process to its end; (seconds, peak RSS in MB, exit code, its stdout, CPU seconds).

    A `python -m module` child runs under bench.peak, which reports the child's own peak
    (wait4's ru_maxrss carries the benchmark's own peak into every child).
    """
    if len(args) > 2 and args[0] == sys.executable and args[1] == "-m":
        args = [sys.executable, "-m", "bench.peak", *args[1:]]
    with open(log_path, "w") as log:
        started = time.perf_counter()
        child = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        # wait4 gives this child's own rusage (ru_maxrss in KB on Linux).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    output = Path(log_path).read_text()
    peak = usage.ru_maxrss / 1024
    for line in reversed(output.splitlines()):
        if line.startswith(PEAK_MARK):
            peak = int(line.split()[2]) / 1024
            break
    return seconds, peak, child.returncode, output, cpu


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in the output:\n{text[-2000:]}")


class Hub:
    """The hub process; commands go in on stdin, one JSON line comes back for each."""

    def __init__(self, models, log_path):
        started = time.perf_counter()
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.hubserver", "--models", str(models)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.info = self._answer()
        self.build_seconds = time.perf_counter() - started

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the hub process ended early; see its log")
        return json.loads(line)

    def mutate(self, share, seed):
        self.process.stdin.write(f"mutate {share} {seed}\n")
        self.process.stdin.flush()
        return self._answer()["mutated"]

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def db_size(path):
    """The file's size once the WAL is folded in, and bytes per table (dbstat)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("pragma wal_checkpoint(TRUNCATE)")
        tables = dict(conn.execute("select name, sum(pgsize) from dbstat group by name"))
        free = conn.execute("pragma freelist_count").fetchone()[0] * \
            conn.execute("pragma page_size").fetchone()[0]
    finally:
        conn.close()
    return {"bytes": os.path.getsize(path), "tables": tables, "free_bytes": free}


def catalog_counts(path):
    conn = sqlite3.connect(path)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {"models": one("select count(*) from models"),
                # What the api_models view lists: the IDs that will work (issue 11).
                "api_models": one("select count(*) from models where status = 'ok'"),
                "events": one("select count(*) from model_events"),
                "stats": one("select count(*) from model_stats"),
                "runs": [dict(zip(("id", "status", "error"), row)) for row in
                         conn.execute("select id, status, error from crawl_runs order by id")]}
    finally:
        conn.close()


# When a crawl last looked, not what it found: a re-crawl moves these by design
# (last_seen_at every crawl, the provider and capability reads once a day).
READ_TIMES = ("last_seen_at", "providers_at", "capabilities_at")


def models_digest(path):
    """{column: hash of that column over every models row}, for every column but READ_TIMES:
    what a no-change re-crawl must not move."""
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute("pragma table_info(models)")
                   if row[1] not in READ_TIMES]
        digests = {column: hashlib.sha256() for column in columns}
        for row in conn.execute(f"select {', '.join(columns)} from models order by model_id"):
            for column, value in zip(columns, row):
                digests[column].update(repr(value).encode())
        return {column: digest.hexdigest() for column, digest in digests.items()}
    finally:
        conn.close()


def crawl(work, hub, name, day_offset, db_name="catalog.db"):
    db_path = work / db_name
    before = db_size(db_path)["bytes"] if db_path.exists() else 0
    args = [sys.executable, "-m", "bench.crawler", "--db", str(db_path),
            "--hub-url", hub.info["url"], "--inference-url", hub.info["inference_url"],
            "--day-offset", str(day_offset)]
    seconds, rss, code, output, cpu = run_child(args, work / f"{name}.log")
    result = last_json(output)
    size = db_size(db_path)
    return {**result, "wall_seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss, "exit_code": code,
            "db_bytes": size["bytes"], "db_tables": size["tables"], "free_bytes": size["free_bytes"],
            "growth_bytes": size["bytes"] - before,
            "models_per_second": result["models_seen"] / seconds if seconds else 0.0}


def baseline(work, hub, list_only=False):
    name = "baseline-lists" if list_only else "baseline"
    db_path = work / f"{name}.db"
    for path in work.glob(f"{name}.db*"):
        path.unlink()
    args = [sys.executable, "-m", "bench.baseline", "--db", str(db_path), "--hub-url", hub.info["url"],
            "--inference-url", hub.info["inference_url"]] + (["--list-only"] if list_only else [])
    seconds, rss, code, output, cpu = run_child(args, work / f"{name}.log")
    result = last_json(output)
    return {**result, "wall_seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss, "exit_code": code,
            "db_bytes": os.path.getsize(db_path),
            "models_per_second": result["rows"] / seconds if seconds else 0.0}


def time_cli(work, name, *args):
    command = [sys.executable, "-m", "indexer", *args]
    seconds, rss, code, output, _ = run_child(command, work / f"{name}.log")
    return {"seconds": seconds, "peak_rss_mb": rss, "exit_code": code, "output": output[-500:]}


def export_and_check(work):
    db = str(work / "catalog.db")
    out = {}
    for name, extra in (("export", []), ("export_all", ["--all", "--format", "csv"])):
        target = work / f"{name}.out"
        result = time_cli(work, name, "export", "--db", db, "--output", str(target), *extra)
        result["lines"] = sum(1 for _ in open(target, encoding="utf-8")) if target.exists() else 0
        out[name] = result
    out["check"] = time_cli(work, "check", "check", "--db", db, *CHECK_IDS)
    return out


def pair(crawl_run, base):
    """One first crawl and the baseline run right after it."""
    return {"crawl_wall": crawl_run["wall_seconds"], "crawl_cpu": crawl_run["cpu_seconds"],
            "baseline_wall": base["wall_seconds"], "baseline_cpu": base["cpu_seconds"],
            "crawl_status": crawl_run["status"]}


def more_pairs(work, hub, count, log):
    """`count` more first crawls into an empty scratch catalog, each followed by a baseline."""
    pairs = []
    for number in range(2, count + 2):
        for path in work.glob("pair.db*"):
            path.unlink()
        again = crawl(work, hub, f"crawl-1-first-pair-{number}", 0, db_name="pair.db")
        base = baseline(work, hub)
        pairs.append(pair(again, base))
        log(f"pair {number}: first crawl {again['wall_seconds']:.1f}s, "
            f"baseline {base['wall_seconds']:.1f}s")
    for path in work.glob("pair.db*"):
        path.unlink()
    return pairs


def run_size(models, work_root, reps, log=print, pairs=DEFAULT_PAIRS):
    """Every measurement at one size; the figures so far are saved after each step."""
    work = work_root / str(models)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    saved = work_root / f"results-{models}.json"
    out = {"models": models, "reps": reps, "pairs_asked": pairs,
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}

    def step(key, value, note):
        out[key] = value
        saved.write_text(json.dumps(out, indent=1, default=str))
        log(f"[{models:,}] {note}")

    log(f"[{models:,}] building the hub")
    hub = Hub(models, work / "hub.log")
    try:
        out["hub"] = hub.info
        step("hub_build_seconds", hub.build_seconds, f"hub ready in {hub.build_seconds:.1f}s")
        first = crawl(work, hub, "crawl-1-first", 0)
        step("first", first, f"first crawl {first['wall_seconds']:.1f}s")
        base = baseline(work, hub)
        step("baseline", base, f"baseline {base['wall_seconds']:.1f}s")
        lists = baseline(work, hub, list_only=True)
        step("baseline_lists", lists, f"list-only baseline {lists['wall_seconds']:.1f}s")
        out["pairs"] = [pair(first, base)]
        out["pairs"] += more_pairs(work, hub, pairs - 1, lambda text: log(f"[{models:,}] {text}"))
        step("pairs", out["pairs"], f"{len(out['pairs'])} first crawl / baseline pairs")
        out["mutated"] = hub.mutate(CHANGED_SHARE, 11)
        changed = crawl(work, hub, "crawl-2-changed", 1)
        step("changed", changed, f"changed re-crawl {changed['wall_seconds']:.1f}s")
        digest = models_digest(work / "catalog.db")
        counts = catalog_counts(work / "catalog.db")
        unchanged = crawl(work, hub, "crawl-3-unchanged", 2)
        after = catalog_counts(work / "catalog.db")
        after_digest = models_digest(work / "catalog.db")
        unchanged["models_columns_moved"] = sorted(c for c in digest if digest[c] != after_digest.get(c))
        unchanged["events_added"] = after["events"] - counts["events"]
        unchanged["stats_added"] = after["stats"] - counts["stats"]
        step("unchanged", unchanged, f"unchanged re-crawl {unchanged['wall_seconds']:.1f}s")
        # A second day of change: the first re-crawl after a bulk load also splits the pages
        # of the indexes it built packed full (downloads, likes), once; this day is every day
        # after.
        out["mutated_again"] = hub.mutate(CHANGED_SHARE, 12)
        again = crawl(work, hub, "crawl-4-changed-again", 3)
        out["catalog"] = catalog_counts(work / "catalog.db")
        step("changed_again", again, f"second changed re-crawl {again['wall_seconds']:.1f}s")
    finally:
        hub.close()
    step("site", sitebench.measure_site(work / "catalog.db", reps=reps),
         f"Datasette, {reps} requests per URL")
    step("cli", export_and_check(work), "export and check")
    return out


def parse_sizes(text):
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                        help="comma-separated catalog sizes (default 254000,1000000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run at {QUICK_SIZE:,} models (overrides --sizes)")
    parser.add_argument("--reps", type=int, default=20,
                        help="timed requests per Datasette URL (default 20)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS,
                        help="first crawl / baseline pairs per size, back to back; the ratio is "
                             f"their median (default {DEFAULT_PAIRS})")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md",
                        help="the Markdown report to write (default bench/RESULTS.md)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work",
                        help="scratch folder for catalogs and logs")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild --out from the saved results of --sizes without running")
    args = parser.parse_args(argv)
    sizes = [QUICK_SIZE] if args.quick else args.sizes
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in sizes:
        if args.report_only:
            results.append(json.loads((args.work / f"results-{size}.json").read_text()))
        else:
            results.append(run_size(size, args.work, args.reps,
                                    log=lambda text: print(text, file=sys.stderr, flush=True),
                                    pairs=max(1, args.pairs)))
    args.out.write_text(report.render(results), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
