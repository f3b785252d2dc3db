"""The `probe` command: parse options, call indexer.probe, render its checks as text or JSON."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import asdict

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
    render = render_json if fmt == "json" else render_text
    click.echo(render(checks, requests), nl=False)
    sys.exit(probe.exit_code(checks))


def render_text(checks, requests):
    """One aligned line per check, then `N ok, N changed, N unknown (K requests)`."""
    width = max((len(check.name) for check in checks), default=0)
    lines = [f"{check.status:<8} {check.name:<{width}} {check.detail}" for check in checks]
    counts = Counter(check.status for check in checks)
    lines.append(f"{counts['ok']} ok, {counts['changed']} changed, {counts['unknown']} unknown "
                 f"({requests} requests)")
    return "\n".join(lines) + "\n"


def render_json(checks, requests):
    """The checks and the request count as one JSON object."""
    return json.dumps({"checks": [asdict(check) for check in checks], "requests": requests},
                      ensure_ascii=False, indent=2) + "\n"
