"""indexer: a ModelScope model catalog crawled into SQLite and served with Datasette."""

__version__ = "0.1.0"

# Defaults live here so the command line can show them without importing requests.
DEFAULT_HUB_URL = "https://www.modelscope.cn"
DEFAULT_INFERENCE_URL = "https://api-inference.modelscope.cn/v1"
