# `make check`: everything CI runs (lint, types, generated README and docs, tests).
PY ?= .venv/bin/python

.PHONY: check lint types docs test

check: lint types docs test

lint:
	$(PY) -m ruff check .

types:
	$(PY) -m mypy

docs:
	$(PY) -m cogapp --check README.md $$(grep -l '\[\[\[cog' docs/*.md)

test:
	$(PY) -m pytest -q
