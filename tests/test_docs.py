"""The README stays true: generated help is current, every command and option is documented."""

import re
import subprocess
import sys
from pathlib import Path

import click

from indexer.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_cog_blocks_are_current():
    result = subprocess.run([sys.executable, "-m", "cogapp", "--check", "README.md"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_command_and_option_is_in_the_readme():
    for name, command in cli.commands.items():
        assert f"indexer {name}" in README, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert any(opt in README for opt in param.opts), (name, param.opts)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, flags=re.S)
    assert len(commands) == 2
    assert "indexer serve" in commands[0]
    assert "make check" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
