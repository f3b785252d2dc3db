"""The `probe` command: parse options, call indexer.probe, print one line per check."""

from __future__ import annotations

import os
import sys

import click

from indexer.cli_common import hub_options


@click.command("probe")
@hub_options
@click.option("--delay", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds to pause between two requests to one host.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def probe_command(hub_url, inference_url, delay, fmt):
    """Check with at most 15 requests that the hub still answers as the crawler assumes.

    Prints one line per check: ok, changed (with what was seen) or unknown (could not
    tell). Exits 0 when every check is ok, 1 when any changed, 2 when none changed but
    some could not be told. With MODELSCOPE_TOKEN set it also compares the /models
    list seen with the token; it never calls a chat or image endpoint.
    """
    from indexer import probe

    token = os.environ.get("MODELSCOPE_TOKEN") or None
    fetcher, token_fetcher = probe.build_fetchers(hub_url, inference_url, delay=delay,
                                                  token=token)
    checks = probe.run_probe(fetcher, token_fetcher)
    requests = probe.requests_made(fetcher, token_fetcher)
    render = probe.render_json if fmt == "json" else probe.render_text
    click.echo(render(checks, requests), nl=False)
    sys.exit(probe.exit_code(checks))
