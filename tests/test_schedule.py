"""The crawl scheduler: triggers, one crawl at a time, failures that leave the site up (issue 4)."""

import asyncio
import logging
import os
import signal
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner

from indexer import crawl, schedule, store
from indexer.cli_serve import schedule as schedule_command
from indexer.cli_serve import serve as serve_command
from tests.helpers import make_fetcher, rows, run_crawl

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
UNREACHABLE = "http://127.0.0.1:9"


class Unreachable:
    hub_url = UNREACHABLE
    inference_url = UNREACHABLE + "/v1"


def make_crawler(db_path, hub, max_retries=3):
    return schedule.Crawler(db_path, lambda: make_fetcher(hub, max_retries=max_retries))


def runs(db_path):
    return rows(db_path, "select id, scope, status from crawl_runs order by id")


def hold_the_hub(hub, until):
    """Park the crawl's first dolphin request until `until` is set; returns the 'entered' event."""
    entered = threading.Event()

    def hook(hub_, body):
        entered.set()
        until.wait(10)

    hub.before_dolphin = hook
    return entered


class LogSeen(logging.Handler, threading.Event):
    """An event set when a log line containing `text` is emitted."""

    def __init__(self, text):
        logging.Handler.__init__(self, logging.INFO)
        threading.Event.__init__(self)
        self.text = text

    def emit(self, record):
        if self.text in record.getMessage():
            self.set()


# Triggers -----------------------------------------------------------------


def test_the_jobs_and_their_triggers(tmp_path):
    crawler = make_crawler(tmp_path / "catalog.db", Unreachable)
    scheduler = schedule.build_scheduler(crawler, "1h", "0 3 * * *", now=NOW)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == ["crawl-api", "crawl-full"]

    api = jobs["crawl-api"]
    assert isinstance(api.trigger, IntervalTrigger)
    assert api.trigger.interval == timedelta(hours=1)
    assert api.trigger.jitter == 300
    assert (api.args, api.misfire_grace_time, api.max_instances, api.coalesce) == (
        ("api",), 3600, 1, True)
    assert api.func == crawler.run_async
    # No catalog yet, so the first API crawl is due at once.
    assert api.next_run_time == NOW

    full = jobs["crawl-full"]
    assert isinstance(full.trigger, CronTrigger)
    assert str(full.trigger.timezone) == "Asia/Shanghai"
    fields = {f.name: str(f) for f in full.trigger.fields}
    assert (fields["minute"], fields["hour"], fields["day"], fields["day_of_week"]) == (
        "0", "3", "*", "*")
    assert (full.args, full.misfire_grace_time, full.max_instances, full.coalesce) == (
        ("full",), 6 * 3600, 1, True)
    # 03:00 in UTC+8 is 19:00 UTC the day before, plus up to five minutes of jitter.
    fire = full.trigger.get_next_fire_time(None, NOW).astimezone(timezone.utc)
    assert datetime(2026, 11, 27, 19, 0, tzinfo=timezone.utc) <= fire <= datetime(
        2026, 11, 27, 19, 5, tzinfo=timezone.utc)


def test_a_short_interval_gets_a_tenth_as_jitter_and_as_grace(tmp_path):
    crawler = make_crawler(tmp_path / "catalog.db", Unreachable)
    api = schedule.build_scheduler(crawler, "30m", "off", now=NOW).get_job("crawl-api")
    assert (api.trigger.interval, api.trigger.jitter, api.misfire_grace_time) == (
        timedelta(minutes=30), 180, 1800)


def test_full_cron_off_means_no_full_job(tmp_path):
    crawler = make_crawler(tmp_path / "catalog.db", Unreachable)
    for value in ("off", "none", "OFF"):
        scheduler = schedule.build_scheduler(crawler, "1h", value, now=NOW)
        assert [job.id for job in scheduler.get_jobs()] == ["crawl-api"]


@pytest.mark.parametrize("text, expected", [
    ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)), ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)), ("90s", timedelta(seconds=90)), (" 6H ", timedelta(hours=6)),
    # One duration parser for every command (issue 10): weeks read as they do for --since.
    ("1w", timedelta(weeks=1)),
])
def test_parse_every(text, expected):
    assert schedule.parse_every(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1.5h", "-1h", "30s", "every hour"])
def test_parse_every_rejects(text):
    with pytest.raises(ValueError):
        schedule.parse_every(text)


@pytest.mark.parametrize("dow, expected", [
    ("*", "*"), ("0", "sun"), ("7", "sun"), ("1", "mon"), ("1-5", "mon,tue,wed,thu,fri"),
    ("0,6", "sun,sat"), ("*/3", "sun,wed,sat"), ("sat", "sat"), ("mon-fri", "mon-fri"),
])
def test_crontab_weekdays_count_from_sunday(dow, expected):
    trigger = schedule.parse_full_cron(f"0 3 * * {dow}")
    fields = {f.name: str(f) for f in trigger.fields}
    assert fields["day_of_week"] == expected


def test_a_sunday_cron_fires_on_sunday_in_utc_plus_8():
    trigger = schedule.parse_full_cron("30 4 * * 0")
    fire = trigger.get_next_fire_time(None, NOW).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (fire.date().isoformat(), fire.strftime("%A"), fire.hour) == ("2026-11-29", "Sunday", 4)
    assert 30 <= fire.minute <= 35


@pytest.mark.parametrize("text", ["0 3 * *", "0 25 * * *", "0 3 * * 8", "banana"])
def test_parse_full_cron_rejects(text):
    with pytest.raises(ValueError):
        schedule.parse_full_cron(text)


@pytest.mark.parametrize("command", [serve_command, schedule_command])
@pytest.mark.parametrize("option, value, message", [
    ("--api-every", "5x", "Invalid value for '--api-every': '5x' is not a duration"),
    ("--full-cron", "0 3 * *", "Invalid value for '--full-cron': '0 3 * *' needs 5 fields"),
])
def test_bad_schedules_are_click_errors(command, option, value, message, tmp_path):
    result = CliRunner().invoke(command, ["--db", str(tmp_path / "c.db"), option, value])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "c.db").exists()


# The start-up check ----------------------------------------------------------


def crawl_at(db_path, hub, moment, scope="api", **kwargs):
    return run_crawl(db_path, hub, scope=scope, now=lambda: moment, **kwargs)


def test_the_first_api_crawl_waits_for_the_interval_after_a_recent_run(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    every = timedelta(hours=1)
    assert schedule.first_api_run(db_path, every, NOW) == NOW  # no catalog at all
    crawl_at(db_path, fakehub, NOW - timedelta(minutes=10))
    assert schedule.first_api_run(db_path, every, NOW) == NOW + timedelta(minutes=50)
    crawler = make_crawler(db_path, fakehub)
    api = schedule.build_scheduler(crawler, every, "off", now=NOW).get_job("crawl-api")
    assert api.next_run_time == NOW + timedelta(minutes=50)


def test_an_old_newest_complete_run_means_an_api_crawl_at_once(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    crawl_at(db_path, fakehub, NOW - timedelta(hours=3), scope="full")
    crawl_at(db_path, fakehub, NOW - timedelta(minutes=61))
    assert schedule.first_api_run(db_path, timedelta(hours=1), NOW) == NOW
    # Any scope counts: a full crawl an hour ago is fresher than the interval of 2h.
    assert schedule.first_api_run(db_path, timedelta(hours=2), NOW) == NOW + timedelta(minutes=59)


def test_failed_runs_do_not_count_as_fresh(tmp_path, fakehub, make_hub):
    db_path = tmp_path / "catalog.db"
    crawl_at(db_path, fakehub, NOW - timedelta(hours=2))
    fakehub.add_fault("500", count=10)
    assert crawl_at(db_path, fakehub, NOW - timedelta(minutes=5)).status == "failed"
    assert schedule.first_api_run(db_path, timedelta(hours=1), NOW) == NOW


def test_the_bundled_sample_counts_as_never_crawled(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    crawl_at(db_path, fakehub, NOW - timedelta(minutes=5), keep_sample=True)
    assert schedule.first_api_run(db_path, timedelta(hours=1), NOW) == NOW


# Running crawls ------------------------------------------------------------------


def test_a_scheduled_crawl_runs_and_logs_its_summary(tmp_path, fakehub, caplog):
    db_path = tmp_path / "catalog.db"
    caplog.set_level(logging.INFO, logger="indexer.schedule")
    result = make_crawler(db_path, fakehub).run("api")
    assert result.status == "complete"
    assert runs(db_path) == [{"id": 1, "scope": "api", "status": "complete"}]
    assert result.summary() in caplog.messages


def test_a_second_job_while_one_crawls_is_skipped(tmp_path, fakehub, caplog):
    db_path = tmp_path / "catalog.db"
    crawler = make_crawler(db_path, fakehub)
    release = threading.Event()
    entered = hold_the_hub(fakehub, release)
    first = threading.Thread(target=crawler.run, args=("full",))
    first.start()
    try:
        assert entered.wait(10)
        caplog.set_level(logging.INFO, logger="indexer.schedule")
        assert crawler.run("api") is None
        assert "another crawl is running; skipped the api crawl" in caplog.messages
        assert runs(db_path) == [{"id": 1, "scope": "full", "status": "running"}]
    finally:
        release.set()
        first.join(10)
    assert runs(db_path) == [{"id": 1, "scope": "full", "status": "complete"}]


def test_a_crawl_held_by_another_process_is_skipped(tmp_path, fakehub, caplog):
    # Another process: a different Crawler, and only the lock file in common.
    db_path = tmp_path / "catalog.db"
    lock = crawl.acquire_lock(db_path)
    try:
        caplog.set_level(logging.INFO, logger="indexer.schedule")
        assert make_crawler(db_path, fakehub).run("api") is None
    finally:
        lock.close()
    assert "another crawl is running; skipped the api crawl" in caplog.messages
    assert not db_path.exists()
    assert fakehub.requests == []


def test_a_failed_crawl_is_recorded_and_the_job_returns(tmp_path, caplog):
    db_path = tmp_path / "catalog.db"
    crawler = make_crawler(db_path, Unreachable, max_retries=0)
    caplog.set_level(logging.INFO, logger="indexer.schedule")
    asyncio.run(crawler.run_async("api"))  # the scheduler's job function; it must not raise
    assert runs(db_path) == [{"id": 1, "scope": "api", "status": "failed"}]
    failure = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failure) == 1
    assert failure[0].getMessage().startswith("crawl #1 (api) failed: 0 models")
    assert "could not connect" in failure[0].getMessage()


def test_a_crash_outside_the_crawl_is_one_log_line(tmp_path, caplog):
    def broken_fetcher():
        raise RuntimeError("no session today")

    crawler = schedule.Crawler(tmp_path / "catalog.db", broken_fetcher)
    caplog.set_level(logging.INFO, logger="indexer.schedule")
    assert crawler.run("full") is None
    assert caplog.messages == ["the full crawl crashed: RuntimeError: no session today"]
    # The lock was released: the next job runs.
    assert crawler.wait_idle(0)


def test_a_catalog_that_cannot_be_opened_is_logged(tmp_path, fakehub, caplog):
    db_path = tmp_path / "catalog.db"
    db_path.write_bytes(b"this is not a database" * 100)
    caplog.set_level(logging.INFO, logger="indexer.schedule")
    assert make_crawler(db_path, fakehub).run("api") is None
    assert len(caplog.messages) == 2
    assert caplog.messages[1].startswith("the api crawl could not run: ")
    assert "not a usable SQLite catalog" in caplog.messages[1]


# Stale runs and stopping -------------------------------------------------------


def add_stale_run(db_path):
    db = store.open_db(db_path)
    try:
        store.start_run(db, "full", NOW - timedelta(days=1))
    finally:
        db.conn.close()


def test_a_run_left_running_is_marked_failed_at_start(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    crawl_at(db_path, fakehub, NOW - timedelta(days=2))
    add_stale_run(db_path)
    assert make_crawler(db_path, fakehub).clean_stale_runs() == 1
    assert rows(db_path, "select id, status, error from crawl_runs order by id") == [
        {"id": 1, "status": "complete", "error": None},
        {"id": 2, "status": "failed",
         "error": "interrupted: the crawling process ended before the run finished"}]


def test_a_running_run_of_a_live_crawl_is_left_alone(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    add_stale_run(db_path)
    lock = crawl.acquire_lock(db_path)  # that crawl is alive in another process
    try:
        assert make_crawler(db_path, fakehub).clean_stale_runs() == 0
    finally:
        lock.close()
    assert runs(db_path) == [{"id": 1, "scope": "full", "status": "running"}]


def test_stopping_ends_a_running_crawl_as_incomplete(tmp_path, fakehub):
    db_path = tmp_path / "catalog.db"
    crawler = make_crawler(db_path, fakehub)
    # The hub answers only once the process is stopping; the crawl must then
    # end between two requests, and the shutdown waits for it to say so.
    entered = hold_the_hub(fakehub, crawler.stop)

    async def serve_a_while():
        async with schedule.scheduling(crawler, "1h", "off"):
            assert await asyncio.to_thread(entered.wait, 10)

    asyncio.run(serve_a_while())
    assert crawler.wait_idle(0)
    assert rows(db_path, "select scope, status, error from crawl_runs") == [
        {"scope": "api", "status": "incomplete",
         "error": "interrupted: the process is shutting down"}]


def test_no_crawl_starts_once_stopping(tmp_path, fakehub):
    crawler = make_crawler(tmp_path / "catalog.db", fakehub)
    crawler.stop.set()
    assert crawler.run("api") is None
    assert fakehub.requests == []


def test_pauses_end_when_stopping(tmp_path, fakehub):
    # A 429 with a long Retry-After must not hold the shutdown for minutes.
    db_path = tmp_path / "catalog.db"
    fakehub.add_fault("429", count=1, retry_after=120)
    crawler = make_crawler(db_path, fakehub)
    timer = threading.Timer(0.3, crawler.stop.set)
    timer.start()
    result = crawler.run("api")
    timer.join()
    assert (result.status, result.error) == (
        "incomplete", "interrupted: the process is shutting down")
    assert len(fakehub.requests) == 1


def test_the_schedule_command_runs_until_sigterm(tmp_path, fakehub, caplog):
    # SIGTERM arrives while the start-up API crawl is on the wire; the command
    # must stop the scheduler, let the crawl record itself, and return.
    db_path = tmp_path / "catalog.db"
    signalled, waiting = threading.Event(), LogSeen("waiting up to 60s for the running crawl")

    def terminate_mid_crawl(hub, body):
        if not signalled.is_set():
            signalled.set()
            os.kill(os.getpid(), signal.SIGTERM)
            assert waiting.wait(10)  # the shutdown has begun and waits for this crawl

    fakehub.before_dolphin = terminate_mid_crawl
    caplog.set_level(logging.INFO, logger="indexer.schedule")
    logger = logging.getLogger("indexer.schedule")
    logger.addHandler(waiting)
    try:
        result = CliRunner().invoke(schedule_command, [
            "--db", str(db_path), "--hub-url", fakehub.hub_url,
            "--inference-url", fakehub.inference_url, "--delay", "0", "--full-cron", "off"])
    finally:
        logger.removeHandler(waiting)
    assert result.exit_code == 0, result.output
    assert rows(db_path, "select scope, status, error from crawl_runs") == [
        {"scope": "api", "status": "incomplete",
         "error": "interrupted: the process is shutting down"}]
    assert len(fakehub.dolphin_requests()) == 1
    assert fakehub.errors == []
