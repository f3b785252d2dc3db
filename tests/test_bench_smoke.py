"""bench/run still runs end to end and writes every row of its table (issue 6)."""

import re
import subprocess
import sys
from pathlib import Path

from bench import report, sitebench
from indexer import site

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_at_a_tiny_size_and_reports_every_row(tmp_path):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--sizes", "1500", "--reps", "2", "--pairs", "2",
         "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only the results table: the findings below it have tables of their own.
    text = out.read_text().split("\n## Findings")[0]
    assert "| Measure | 1,500 models | Target | |" in text
    for heading in ("- Date: ", "- Machine: ", "- Python "):
        assert heading in text
    table = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and not cells[0].startswith("**"):
            table[cells[0]] = cells[1:]
    expected = [label for label, *_ in report.crawl_rows() + report.cli_rows()]
    # Every page the site benchmark opens, each under its own name (canned queries and
    # feeds read from metadata.yml).
    expected += [f"{label}: median / p95 (ms)" for label, _, _ in
                 sitebench.build_urls("catalog", site.load_metadata())]
    assert "Search `qwen2.5` with facets (HTML): median / p95 (ms)" in expected
    assert "Canned query `check_model_id` (.json): median / p95 (ms)" in expected
    expected += ["Datasette facets timed out",
                 "API-models CSV (`api_models.csv?_stream=on`): rows streamed / API models"]
    missing = [label for label in expected if label not in table]
    assert missing == []
    # Every row has a value, and the run itself is sound at this size.
    assert [label for label, (value, _, _) in table.items() if value in ("", "—")] == []
    assert table["First crawl, empty catalog: status"][0] == "complete"
    assert table["Re-crawl, nothing changed: events written"] == ["0", "0", "met"]
    assert table["Datasette facets timed out"][0] == "none"
    # Two first crawl / baseline pairs, as asked, and the ratio is their median.
    pairs = next(v for k, v in table.items() if k.startswith("… each pair"))[0].split("; ")
    ratios = [float(re.fullmatch(r"[\d.]+ / [\d.]+ = ([\d.]+)×", p).group(1)) for p in pairs]
    assert len(ratios) == 2
    median = float(table["First crawl / baseline, wall time (the median of the pairs below)"][0][:-1])
    assert abs(median - sum(ratios) / 2) <= 0.01
    streamed, api = re.fullmatch(r"([\d,]+) / ([\d,]+)", table[
        "API-models CSV (`api_models.csv?_stream=on`): rows streamed / API models"][0]).groups()
    assert streamed == api != "0"
