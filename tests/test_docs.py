"""The README and docs/ stay true: generated blocks are current, every command and option is documented."""

import re
import subprocess
import sys
from pathlib import Path

import click

from indexer.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))
# The files with cog blocks: the README and the docs moved out of it (issue 10).
COGGED = ["README.md"] + [f"docs/{p.name}" for p in DOCS if "[[[cog" in p.read_text(encoding="utf-8")]


def test_the_readme_and_the_docs_moved_out_of_it_have_cog_blocks():
    assert COGGED == ["README.md", "docs/changes-export-check.md", "docs/crawl.md", "docs/schema.md",
                      "docs/serving.md"]


def test_cog_blocks_are_current():
    """Every generated block of the README and of docs/*.md matches what the code prints now."""
    result = subprocess.run([sys.executable, "-m", "cogapp", "--check", *COGGED], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 300


def test_every_command_and_option_is_in_the_readme_or_the_docs():
    """Each command is named in the README or a docs/*.md page, and so is each of its options."""
    text = "\n".join([README] + [p.read_text(encoding="utf-8") for p in DOCS])
    for name, command in cli.commands.items():
        assert f"indexer {name}" in text, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert any(opt in text for opt in param.opts), (name, param.opts)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, flags=re.S)
    assert len(commands) == 2
    assert "indexer serve" in commands[0]
    assert "make check" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
