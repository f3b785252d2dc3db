"""Run the command line with ``python -m indexer``."""

from indexer.cli import cli

cli(prog_name="indexer")
