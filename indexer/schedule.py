"""APScheduler wiring: when crawls run, never two at once, and a clean stop; no crawl logic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from indexer import crawl, freshness, store
from indexer.durations import parse_duration

log = logging.getLogger("indexer.schedule")

# ModelScope counts its days in UTC+8, so the daily full crawl follows that clock.
FULL_TIMEZONE = "Asia/Shanghai"
# A full crawl takes hours at a polite pace; one that starts late still runs.
FULL_GRACE = timedelta(hours=6)
FULL_JITTER = 300
# How long a stopping process waits for a crawl to record itself as incomplete.
SHUTDOWN_WAIT = 60.0

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def parse_every(text):
    """`30m`, `1h`, `2h`, `1d` as a timedelta; ValueError for anything else or under a minute."""
    every = parse_duration(text)
    if every < timedelta(minutes=1):
        raise ValueError(f"{text!r} is shorter than a minute")
    return every


def parse_full_cron(text):
    """A crontab line (5 fields, in UTC+8) as a CronTrigger; None for `off` or `none`."""
    if str(text).strip().lower() in ("off", "none", ""):
        return None
    fields = str(text).split()
    if len(fields) != 5:
        raise ValueError(f"{text!r} needs 5 fields: minute hour day month day-of-week")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_crontab_days(day_of_week), timezone=FULL_TIMEZONE,
                       jitter=FULL_JITTER)


def _crontab_days(text):
    # APScheduler 3 counts weekdays from Monday = 0, crontab from Sunday = 0
    # (CronTrigger.from_crontab's warning, apscheduler issue 286), so numbers
    # become names and `0 3 * * 1` still means Monday.
    parts = []
    for part in text.lower().split(","):
        match = re.fullmatch(r"(\*|\d)(?:-(\d))?(?:/(\d+))?", part)
        if not match or part == "*":
            parts.append(part)
            continue
        first, last, step = match.groups()
        if first == "*":
            first, last = 0, 6
        else:
            first = int(first)
            last = int(last) if last is not None else (6 if step else first)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week {part!r} is out of 0-7")
        parts.extend(_CRON_DAYS[day % 7] for day in range(first, last + 1, int(step or 1)))
    return ",".join(dict.fromkeys(parts))


def api_jitter(every):
    """Up to a tenth of the interval, at most five minutes."""
    return int(min(300, every.total_seconds() / 10))


class Crawler:
    """Runs one crawl at a time for the scheduler, logs the outcome, and never raises."""

    def __init__(self, db_path, make_fetcher, confirm=2, now=store.utc_now):
        self.db_path = db_path
        self.make_fetcher = make_fetcher
        self.confirm = confirm
        self.now = now
        # Set when the process shuts down: the crawl ends between two requests
        # and records itself as incomplete.
        self.stop = threading.Event()
        self._busy = threading.Lock()
        # Called after each crawl that ran (serve uses it to swap in a live catalog).
        self.after_crawl = None

    def run(self, scope):
        """Crawl `scope` now; the CrawlResult, or None when skipped or it could not start."""
        if not self._busy.acquire(blocking=False):
            log.info("another crawl is running; skipped the %s crawl", scope)
            return None
        try:
            if self.stop.is_set():
                return None
            result = self._crawl(scope)
        finally:
            self._busy.release()
        if result is not None and self.after_crawl is not None:
            self.after_crawl()
        return result

    def _crawl(self, scope):
        try:
            fetcher = self.make_fetcher()
            # Its pauses wake and its next request refuses once the process stops.
            fetcher.stop = self.stop
            log.info("starting the %s crawl", scope)
            result = crawl.crawl(self.db_path, fetcher, scope=scope, confirm=self.confirm,
                                 now=self.now, stop=self.stop)
        except crawl.CrawlBusy:
            log.info("another crawl is running; skipped the %s crawl", scope)
            return None
        except (crawl.CrawlError, store.CatalogError) as error:
            log.error("the %s crawl could not run: %s", scope, error)
            return None
        except Exception as error:  # the site must outlive any crawl
            log.error("the %s crawl crashed: %s: %s", scope, type(error).__name__, error)
            log.debug("traceback of the crashed crawl", exc_info=True)
            return None
        level = logging.INFO if result.status == "complete" else logging.WARNING
        log.log(level, "%s", result.summary())
        return result

    async def run_async(self, scope):
        """The scheduler's job: a crawl in a daemon thread, so a hung request never blocks exit."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def target():
            try:
                self.run(scope)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed while we crawled
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=target, name=f"crawl-{scope}", daemon=True).start()
        await done.wait()

    def wait_idle(self, timeout=SHUTDOWN_WAIT):
        """Wait until no crawl runs; False when one still runs after `timeout` seconds."""
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True

    def clean_stale_runs(self):
        """Mark runs a dead process left `running` as failed, unless a live crawl holds the lock."""
        try:
            lock = crawl.acquire_lock(self.db_path)
        except crawl.CrawlError:
            return 0
        try:
            db = store.open_db(self.db_path)
            try:
                cleaned = store.fail_stale_runs(db)
            finally:
                db.conn.close()
        except (store.CatalogError, sqlite3.Error) as error:
            log.error("cannot check %s for unfinished runs: %s", self.db_path, error)
            return 0
        finally:
            lock.close()
        if cleaned:
            log.warning("marked %d run(s) left running by an earlier process as failed", cleaned)
        return cleaned


def last_live_run_at(db_path):
    """When the newest complete run (any scope) finished; None if none, or only the sample's."""
    try:
        db = store.open_db(db_path, create=False)
    except store.CatalogError:
        return None
    try:
        fresh = freshness.read_or_none(db.conn)
    finally:
        db.conn.close()
    return fresh.live_refreshed_at if fresh else None


def first_api_run(db_path, every, now):
    """Now if no live complete run finished within `every`, else when the newest is `every` old."""
    last = last_live_run_at(db_path)
    if last is None or now - last >= every:
        return now
    return min(last, now) + every


def build_scheduler(crawler, api_every, full_cron, now=None):
    """An AsyncIOScheduler (not started) with the `crawl-api` and `crawl-full` jobs."""
    every = parse_every(api_every) if isinstance(api_every, str) else api_every
    full = parse_full_cron(full_cron) if isinstance(full_cron, str) else full_cron
    now = now or datetime.now(timezone.utc)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(crawler.run_async, IntervalTrigger(seconds=int(every.total_seconds()),
                                                         jitter=api_jitter(every), timezone="UTC"),
                      args=["api"], id="crawl-api", name="api crawl", coalesce=True,
                      max_instances=1, misfire_grace_time=int(every.total_seconds()),
                      next_run_time=first_api_run(crawler.db_path, every, now))
    if full is not None:
        scheduler.add_job(crawler.run_async, full, args=["full"], id="crawl-full",
                          name="full crawl", coalesce=True, max_instances=1,
                          misfire_grace_time=int(FULL_GRACE.total_seconds()))
    return scheduler


@contextlib.asynccontextmanager
async def scheduling(crawler, api_every, full_cron):
    """Run the crawl jobs on the current loop for the duration of the block; stop them cleanly."""
    crawler.clean_stale_runs()
    scheduler = build_scheduler(crawler, api_every, full_cron)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("%s: next at %s", job.name, job.next_run_time.isoformat(timespec="seconds"))
    try:
        yield scheduler
    finally:
        await stop_scheduling(crawler, scheduler)


async def stop_scheduling(crawler, scheduler, timeout=SHUTDOWN_WAIT):
    crawler.stop.set()
    scheduler.shutdown(wait=False)
    if not await asyncio.to_thread(crawler.wait_idle, 0):
        log.info("waiting up to %.0fs for the running crawl to record itself", timeout)
        if not await asyncio.to_thread(crawler.wait_idle, timeout):
            log.warning("the crawl did not stop in time; the next start marks its run failed")


async def run_scheduler(crawler, api_every, full_cron):
    """Only the scheduler, until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        async with scheduling(crawler, api_every, full_cron):
            await stopping.wait()
            log.info("stopping the scheduler")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
