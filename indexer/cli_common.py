"""Options and set-up shared by every command module."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from contextlib import contextmanager

import click

from indexer import DEFAULT_HUB_URL, DEFAULT_INFERENCE_URL

DB_OPTION_HELP = "The catalog database (env INDEXER_DB)."


def db_option(func):
    return click.option("--db", "db_path", default="catalog.db", envvar="INDEXER_DB",
                        show_default=True, type=click.Path(dir_okay=False),
                        help=DB_OPTION_HELP)(func)


def setup_logging(verbose=False):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # urllib3 logs full URLs at DEBUG; our own lines are enough.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def hub_options(func):
    func = click.option("--inference-url", default=DEFAULT_INFERENCE_URL, show_default=True,
                        envvar="MODELSCOPE_INFERENCE_URL",
                        help="Base URL of the OpenAI-compatible inference service "
                             "(env MODELSCOPE_INFERENCE_URL).")(func)
    func = click.option("--hub-url", default=DEFAULT_HUB_URL, show_default=True,
                        envvar="MODELSCOPE_HUB_URL",
                        help="Base URL of the ModelScope hub (env MODELSCOPE_HUB_URL).")(func)
    return func


def crawl_options(func):
    """The options every crawl takes, whether run once (`crawl`) or on a schedule (`serve`, `schedule`)."""
    options = [
        hub_options,
        click.option("--delay", type=click.FloatRange(min=0), default=0.5, show_default=True,
                     help="Seconds to pause between two requests to one host."),
        click.option("--max-retries", type=click.IntRange(min=0), default=4, show_default=True,
                     help="Retries for a request that meets 429, 5xx, a timeout or a bad answer."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                     help="Seconds one answer may take in all: connecting, headers and body."),
        click.option("--confirm", type=click.IntRange(min=1), default=2, show_default=True,
                     envvar="INDEXER_CONFIRM",
                     help="Consecutive complete crawls a model must be missing from before "
                          "removed, api_disabled or unlisted is recorded (env INDEXER_CONFIRM)."),
        click.option("-v", "--verbose", is_flag=True, help="Log every retry and request detail."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def open_catalog(db_path):
    """The open catalog for a read-only command, every catalog or SQLite error one `Error:` line."""
    from indexer import store

    db_path = store.catalog_for_reading(db_path)
    try:
        db = store.open_db(db_path, create=False)
    except store.CatalogError as error:
        raise click.ClickException(str(error)) from None
    try:
        yield db
    except sqlite3.Error as error:
        raise click.ClickException(store.describe_db_error(db_path, error)) from None
    finally:
        db.conn.close()


def catalog_to_crawl(db_path):
    """The file a crawl writes for --db: the sample's live sibling when --db is the sample."""
    from indexer import store

    target = store.catalog_for_writing(db_path)
    if target != db_path:
        click.echo(f"{db_path} holds the embedded sample, which stays as it is: crawls write "
                   f"{target}, which every command reads instead once a crawl there completes",
                   err=True)
    return target


def build_fetcher(hub_url, inference_url, delay=0.5, max_retries=4, timeout=30.0):
    from indexer import fetch

    token = os.environ.get("MODELSCOPE_TOKEN") or None
    return fetch.Fetcher(fetch.build_session(token), hub_url=hub_url, inference_url=inference_url,
                         delay=delay, max_retries=max_retries, timeout=timeout)
