"""Options and set-up shared by every command module."""

from __future__ import annotations

import logging
import os
import sys

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


def build_fetcher(hub_url, inference_url, delay=0.5, max_retries=4, timeout=30.0):
    from indexer import fetch

    token = os.environ.get("MODELSCOPE_TOKEN") or None
    return fetch.Fetcher(fetch.build_session(token), hub_url=hub_url, inference_url=inference_url,
                         delay=delay, max_retries=max_retries, timeout=timeout)
