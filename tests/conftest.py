# ---------------------------------------------------------------------------
# Fake hub fixtures (tests/fakehub.py, tests/fixtures/catalog.py)
#   catalog   - a fresh build_catalog() per test (n=300, seed=7)
#   fakehub   - a started FakeHub over that catalog, stopped after the test
#   make_hub  - factory make_hub(catalog=None, **switches) -> started FakeHub;
#               every hub it made is stopped at teardown
# ---------------------------------------------------------------------------
import pytest
import sqlite_utils

from indexer import schema
from tests.fakehub import FakeHub
from tests.fixtures.catalog import build_catalog


@pytest.fixture
def catalog():
    return build_catalog()


@pytest.fixture
def fakehub(catalog):
    with FakeHub(catalog) as hub:
        yield hub


@pytest.fixture
def make_hub():
    hubs = []

    def _make(catalog=None, **switches):
        hub = FakeHub(catalog if catalog is not None else build_catalog(), **switches).start()
        hubs.append(hub)
        return hub

    yield _make
    for hub in hubs:
        hub.stop()


# ---------------------------------------------------------------------------
# (other fixtures below)
# ---------------------------------------------------------------------------


@pytest.fixture
def db():
    """An empty in-memory catalog, shaped by the current schema."""
    database = sqlite_utils.Database(memory=True)
    schema.ensure_db_shape(database)
    yield database
    database.conn.close()
