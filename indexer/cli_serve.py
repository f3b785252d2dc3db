"""The `serve`, `schedule` and `snapshot` commands: parse options, call one function."""

from __future__ import annotations

import logging
import os

import click

from indexer.cli_common import build_fetcher, catalog_to_crawl, db_option, setup_logging
from indexer.cli_common import crawl_options as shared_crawl_options


def _checked_by(parser_name):
    """A click callback that rejects what `schedule.<parser_name>` cannot read."""

    def check(ctx, param, value):
        from indexer import schedule

        try:
            getattr(schedule, parser_name)(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        return value

    return check


def schedule_options(func):
    """When scheduled crawls run, then the options of every crawl (cli_common.crawl_options)."""
    options = [
        click.option("--api-every", default="1h", show_default=True,
                     callback=_checked_by("parse_every"),
                     help="How often to crawl the API-Inference set (30m, 1h, 6h, 1d); "
                          "at start too when the last complete crawl is older."),
        # Daily at 03:00 in UTC+8, the clock ModelScope counts its days by (issue 4).
        click.option("--full-cron", default="0 3 * * *", show_default=True,
                     callback=_checked_by("parse_full_cron"),
                     help="When to crawl the whole hub: a crontab line in UTC+8 "
                          "(ModelScope's day), or `off`."),
        shared_crawl_options,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def setup_scheduler_logging(verbose):
    setup_logging(verbose)
    if not verbose:
        # Our own lines say when a crawl starts and how it ended; APScheduler's
        # per-job INFO lines repeat that. Its warnings (a missed run) still show.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build_crawler(db_path, hub_url, inference_url, delay, max_retries, timeout, confirm):
    from indexer import schedule

    # A fresh fetcher per crawl: its counters belong to one run. The token is
    # read from MODELSCOPE_TOKEN inside build_fetcher and never logged.
    return schedule.Crawler(
        db_path, lambda: build_fetcher(hub_url, inference_url, delay, max_retries, timeout),
        confirm=confirm)


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 makes the site public.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8001, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--no-schedule", is_flag=True, help="Only serve; crawl nothing.")
@schedule_options
def serve(db_path, host, port, no_schedule, api_every, full_cron, hub_url, inference_url, delay,
          max_retries, timeout, confirm, verbose):
    """Serve the catalog with Datasette and keep it fresh with scheduled crawls, in one process."""
    from indexer import serve as serving
    from indexer import store

    setup_scheduler_logging(verbose)
    crawler = None if no_schedule else build_crawler(catalog_to_crawl(db_path), hub_url,
                                                     inference_url, delay, max_retries, timeout,
                                                     confirm)
    log = logging.getLogger("indexer.serve")
    # An installed wheel run with no catalog here yet serves the sample it ships
    # until a crawl completes; an explicit --db is taken at its word.
    default_db = click.get_current_context().get_parameter_source("db_path") in (
        click.core.ParameterSource.DEFAULT, None)
    sample = serving.SAMPLE_PATH if default_db and not os.path.exists(db_path) else None
    try:
        serving.run(db_path, host, port, crawler, api_every, full_cron, sample=sample,
                    on_ready=lambda url: log.info("serving %s at %s", db_path, url))
    except (serving.ServeError, store.CatalogError) as error:
        raise click.ClickException(str(error)) from None


@click.command()
@db_option
@schedule_options
def schedule(db_path, api_every, full_cron, hub_url, inference_url, delay, max_retries, timeout,
             confirm, verbose):
    """Only run the scheduled crawls, for a catalog served some other way."""
    import asyncio

    from indexer import schedule as scheduling

    setup_scheduler_logging(verbose)
    crawler = build_crawler(catalog_to_crawl(db_path), hub_url, inference_url, delay, max_retries,
                            timeout, confirm)
    asyncio.run(scheduling.run_scheduler(crawler, api_every, full_cron))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@db_option
def snapshot(path, db_path):
    """Write a consistent copy of the catalog to PATH, even while a crawl writes, for replicas."""
    from indexer import serve as serving
    from indexer import store

    try:
        size = serving.write_snapshot(store.catalog_for_reading(db_path), path)
    except store.CatalogError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"snapshot of {db_path} written to {path} ({size / 1e6:,.1f} MB)")
