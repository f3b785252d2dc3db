"""indexer: a ModelScope model catalog crawled into SQLite and served with Datasette."""

__version__ = "0.1.0"
