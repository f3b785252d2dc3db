"""The command line: parse options, call one library function, print a summary."""

from __future__ import annotations

import logging
import sys

import click

from indexer import __version__
from indexer.cli_common import (
    build_fetcher,
    catalog_to_crawl,
    crawl_options,
    db_option,
    open_catalog,
    setup_logging,
)
from indexer.track import EVENTS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indexer")
def cli():
    """Crawl ModelScope's model catalog into SQLite and find the model IDs API-Inference serves."""


class Progress:
    """A progress bar on a terminal, a plain log line every few seconds elsewhere."""

    def __init__(self, enabled):
        self.bar = None
        self.enabled = enabled
        self.last_log = 0.0
        self.log = logging.getLogger("indexer.crawl")

    def __call__(self, models=0, expected=None):
        import time

        if self.enabled:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=expected, unit=" models", file=sys.stderr, leave=False)
            if expected and self.bar.total != expected:
                self.bar.total = expected
            self.bar.n = models
            self.bar.refresh()
        elif time.monotonic() - self.last_log > 10:
            self.last_log = time.monotonic()
            self.log.info("collected %s of %s models", f"{models:,}",
                          f"{expected:,}" if expected else "?")

    def close(self):
        if self.bar is not None:
            self.bar.close()


@cli.command()
@db_option
@click.option("--scope", type=click.Choice(["api", "full"]), default="api", show_default=True,
              help="api: the API-Inference set and the /models list (a few requests); "
                   "full: the whole hub.")
@crawl_options
def crawl(db_path, scope, hub_url, inference_url, delay, max_retries, timeout, confirm, verbose):
    """Crawl the ModelScope hub into the catalog, flagging the models API-Inference serves."""
    from indexer import crawl as crawling
    from indexer import store

    setup_logging(verbose)
    db_path = catalog_to_crawl(db_path)
    fetcher = build_fetcher(hub_url, inference_url, delay, max_retries, timeout)
    progress = Progress(enabled=sys.stderr.isatty())
    try:
        result = crawling.crawl(db_path, fetcher, scope=scope, confirm=confirm, progress=progress)
    except (crawling.CrawlError, store.CatalogError) as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        progress.close()
        click.echo("crawl interrupted; what it collected was saved as an incomplete run", err=True)
        sys.exit(130)
    progress.close()
    click.echo(result.summary())
    # Scripts can tell the outcomes apart: 0 complete, 3 incomplete, 1 failed.
    if result.status == "failed":
        sys.exit(1)
    if result.status == "incomplete":
        sys.exit(3)


@cli.command()
@db_option
@click.option("--since", help="Only events since a duration ago (7d, 12h, 30m, 2w) or a date "
                              "(2026-11-01).")
@click.option("--event", "event_names", multiple=True,
              type=click.Choice(list(EVENTS)),
              help="Only these events; repeat for several.")
@click.option("--task", help="Only models with this task, e.g. text-generation.")
@click.option("--owner", help="Only models of this owner (case-sensitive), e.g. Qwen.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              show_default=True, help="Output format.")
def changes(db_path, since, event_names, task, owner, limit, fmt):
    """List what changed in the catalog, newest first: models added, removed, API flips and more."""
    from indexer import changes as listing
    from indexer import store

    if since is not None:
        try:
            since = listing.parse_since(since, store.utc_now())
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="'--since'") from None
    with open_catalog(db_path) as db:
        records = listing.iter_events(db, since=since, events=event_names, task=task, owner=owner,
                                      limit=limit)
        listing.write_events(records, fmt, sys.stdout)


def _register_commands():
    # Commands grouped by concern live in their own modules (STYLE: split by concern).
    from indexer.cli_export import check_command, export_command
    from indexer.cli_probe import probe_command
    from indexer.cli_serve import schedule, serve, snapshot

    for command in (export_command, check_command, probe_command, serve, schedule, snapshot):
        cli.add_command(command)


_register_commands()
