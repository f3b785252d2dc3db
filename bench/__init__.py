"""The by-hand benchmark of issue 6: crawl, re-crawl, baseline, Datasette, export (not run in CI)."""
