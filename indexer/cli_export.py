"""The `export` and `check` commands: parse options, call indexer.export or indexer.check, print the result."""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import closing

import click

from indexer import check, export, formats, store
from indexer import status as status_rule
from indexer.cli_common import db_option, open_catalog
from indexer.modelid import visible


def warn_if_stale(db):
    warning = export.freshness_warning(db, store.utc_now())
    if warning:
        click.echo(f"warning: {warning}", err=True)


@click.command("export")
@db_option
@click.option("--status", "statuses", multiple=True, type=click.Choice(status_rule.STATUSES),
              metavar="STATUS", help="Keep models with this status: ok (the default: IDs that will "
                                     "work), not-served, not-api or removed (repeat for several).")
@click.option("--all", "all_models", is_flag=True,
              help="Export the whole catalog, whatever the status (removed models too).")
@click.option("--task", "tasks", multiple=True, metavar="TASK",
              help="Keep models with this task, e.g. text-generation (repeat for any of several).")
@click.option("--owner", "owners", multiple=True, metavar="OWNER",
              help="Keep models of this owner, spelled as on the hub (repeat for any of several).")
@click.option("--min-downloads", type=click.IntRange(min=0), metavar="N",
              help="Keep models with at least N downloads.")
@click.option("--listed", is_flag=True,
              help="Keep only IDs the inference service's /models list names.")
@click.option("--search", metavar="TEXT",
              help="Keep models whose ID, names, description or tags contain TEXT (any case).")
@click.option("--kind", type=click.Choice(status_rule.KINDS), metavar="KIND",
              help="Keep models called this way: chat, image, image-edit, video, embedding, speech, other.")
@click.option("--vision", is_flag=True, help="Keep models that take images (what the model can do, "
                                              "which is not always what the service accepts).")
@click.option("--tools", is_flag=True, help="Keep models whose chat template handles tool calls.")
@click.option("--reasoning", is_flag=True, help="Keep models that think (a thinking switch or a "
                                                 "thinking model).")
@click.option("--min-context", type=click.IntRange(min=1), metavar="TOKENS",
              help="Keep models with a native context of at least TOKENS.")
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="CREDITS",
              help="Keep models whose call costs at most CREDITS (魔粒) through ModelScope's provider.")
@click.option("--sort", type=click.Choice(list(export.SORTS)), default="downloads",
              show_default=True, help="Order: most downloads, most likes, newest update, or by ID.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Export at most N models.")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS + export.TOOL_FORMATS), default="txt",
              show_default=True,
              help="txt: one ID a line; comma: one comma-separated line; csv, json, jsonl: "
                   "ID, owner, kind, tasks, downloads, likes, status and URL; models-dev: a "
                   "models.dev provider tree in the --output folder; litellm: a LiteLLM model map; "
                   "lobechat: a MODELSCOPE_MODEL_LIST value; cherry: lines for Cherry Studio's "
                   "add-model box.")
@click.option("--raw-csv", is_flag=True,
              help="CSV: write cells as stored, without the ' that stops a spreadsheet running "
                   "=, +, -, @ cells as formulas (for scripts).")
@click.option("--output", type=click.Path(allow_dash=True), default="-",
              metavar="FILE", help="Write to FILE, replaced only once the export is complete "
                                   "(models-dev: the folder to write the tree in).")
def export_command(db_path, statuses, all_models, tasks, owners, min_downloads, listed, search, kind,
                   vision, tools, reasoning, min_context, max_cost, sort, limit, fmt, raw_csv, output):
    """Export the IDs that will work (status ok, most downloaded first) as a list, a table or a tool's file."""
    filters = export.Filters(all_models=all_models, statuses=tuple(statuses) or ("ok",), listed=listed,
                             tasks=tasks, owners=owners, min_downloads=min_downloads, search=search,
                             kind=kind, vision=vision, tools=tools, reasoning=reasoning,
                             min_context=min_context, max_cost=max_cost, sort=sort, limit=limit)
    if fmt == "models-dev" and output == "-":
        raise click.UsageError("--format models-dev writes a folder: give it with --output DIR")
    extra = (export.TOOL_KEYS,) if fmt in export.TOOL_FORMATS else ()
    # closing(): the query's cursor is released before the catalog is closed.
    with open_catalog(db_path) as db, closing(export.iter_export_rows(db, filters, *extra)) as rows:
        warn_if_stale(db)
        try:
            if fmt == "models-dev":
                count = _count(formats.write_models_dev(rows, output))
            elif output == "-":
                write_stdout(rows, fmt, raw_csv)
                return
            else:
                count = _count(export.export_to_file(rows, fmt, output, raw_csv))
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(f"exported {count} to {output}", err=True)


def _count(written):
    """'12 models' for a plain export; with '(3 left out)' for a tool format that skips some."""
    if isinstance(written, int):
        return f"{written:,} models"
    text = f"{written.written:,} models"
    return text + (f" ({len(written.skipped):,} left out)" if written.skipped else "")


def write_stdout(rows, fmt, raw_csv=False):
    stream = sys.stdout
    try:
        if fmt in export.TOOL_FORMATS:
            export.write_tool_export(rows, fmt, stream)
        else:
            export.write_export(rows, fmt, stream, raw_csv)
        stream.flush()
    except BrokenPipeError:
        # `indexer export | head` closed the pipe early: that is not an error,
        # but Python would complain on exit unless stdout points elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


@click.command("check")
@db_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: one aligned line per ID; json: a list of objects.")
@click.option("--suggest", "suggest_for", type=click.IntRange(min=0), default=check.SUGGEST_FOR,
              show_default=True, metavar="N",
              help="Suggest close IDs for the first N distinct unknown IDs (0: none).")
@click.argument("ids", nargs=-1, required=True, metavar="ID... | -")
def check_command(db_path, fmt, suggest_for, ids):
    """Check model IDs (or `-` to read them from stdin) and exit 0 only if every one is ok."""
    wanted = read_ids(ids, sys.stdin)
    if not wanted:
        raise click.UsageError("no model IDs given")
    with open_catalog(db_path) as db:
        warn_if_stale(db)
        results = check.check_ids(db, wanted, suggest_for=suggest_for)
    # Input that was not UTF-8 comes back as lone surrogates, and a terminal
    # may not take every character: never a UnicodeEncodeError (issue 14).
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    if fmt == "json":
        # Raw values for scripts; json.dumps escapes control characters itself.
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(format_check_line(result) for result in results))
    sys.exit(0 if all(r["status"] == "ok" for r in results) else 1)


def read_ids(args, stdin):
    """IDs from the arguments, `-` standing for stdin; commas and whitespace separate IDs.

    Stdin is read as bytes and decoded leniently, so no input can stop the run:
    bytes that are not UTF-8 become lone surrogates, which `check` reports as
    not a model ID while it answers every other line (issue 14).
    """
    ids = []
    for arg in args:
        if arg == "-":
            raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
            text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        else:
            text = arg
        # So that `indexer export --format comma | indexer check -` works too.
        ids.extend(part for part in re.split(r"[,\s]+", text) if part)
    return ids


def format_check_line(result):
    """One line for a person: hidden, reordering and control characters shown as <U+XXXX>."""
    line = f"{result['status']:<11}{result['id']}"
    if result["note"]:
        line += f"  {result['note']}"
    if result["suggestions"]:
        line += "  did you mean: " + ", ".join(result["suggestions"])
    return visible(line)
