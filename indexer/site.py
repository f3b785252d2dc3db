"""Datasette wiring: the catalog's metadata, plugins, templates and settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import markupsafe
import yaml
from datasette import hookimpl
from datasette.app import Datasette
from datasette.database import QueryInterrupted
from datasette.plugins import pm
from datasette.utils.asgi import Response

from indexer import facets, picker

PACKAGE_DIR = Path(__file__).resolve().parent
METADATA_PATHS = (PACKAGE_DIR.parent / "metadata.yml", PACKAGE_DIR / "metadata.yml")
TEMPLATE_DIR = PACKAGE_DIR / "templates"
# The in-package plugin below acts only on a Datasette whose metadata carries
# this plugin entry, so other Datasette instances in the same process (tests,
# other tools) are left alone even though pluggy's registry is global.
PLUGIN_NAME = "indexer-site"
SETTINGS = {
    "sql_time_limit_ms": 2000,
    "facet_time_limit_ms": 1000,
    "max_returned_rows": 1000,
    # The catalog file is for the crawler; the site offers tables and exports.
    "allow_download": False,
    # /catalog/api_models.csv?_stream=on is the documented full export.
    "allow_csv_stream": True,
    # Suggested facets try every column of every table page; at 254,000 models
    # that is time spent on each view for suggestions that then time out.
    "suggest_facets": False,
}
READ_METHODS = ("GET", "HEAD", "OPTIONS")
MODELSCOPE_URL = "https://modelscope.cn/"
ERROR_CHARS = 300

BANNER_SQL = """
select
  (select value from catalog_info where key = 'sample') as sample,
  c.finished_at as refreshed_at, c.scope as refreshed_scope,
  l.status as last_status, l.finished_at as last_at, l.error as last_error
from (select 1)
left join (select finished_at, scope from crawl_runs
           where status = 'complete' order by id desc limit 1) c
left join (select status, finished_at, error from crawl_runs
           where status != 'running' order by id desc limit 1) l
"""


def load_metadata(db_name="catalog"):
    """metadata.yml, with its `catalog` database entry renamed for a catalog of another name."""
    for path in METADATA_PATHS:
        if path.exists():
            metadata = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            break
    else:
        metadata = {}
    databases = metadata.get("databases") or {}
    if db_name != "catalog" and "catalog" in databases:
        databases[db_name] = databases.pop("catalog")
    plugins = metadata.get("plugins") or {}
    if PLUGIN_NAME in plugins:
        plugins[PLUGIN_NAME] = {**(plugins[PLUGIN_NAME] or {}), "catalog": db_name}
    for dashboard in (plugins.get("datasette-dashboards") or {}).values():
        for part in (*(dashboard.get("charts") or {}).values(),
                     *(dashboard.get("filters") or {}).values()):
            if part.get("db") == "catalog":
                part["db"] = db_name
    return metadata


def build_datasette(db_path, immutable=False, settings=None):
    """A Datasette app serving the catalog at `db_path` read-only, with our metadata."""
    register_plugin()
    db_path = Path(db_path)
    files, immutables = ([], [str(db_path)]) if immutable else ([str(db_path)], [])
    settings = {**SETTINGS, **(settings or {})}
    metadata = load_metadata(db_path.stem)
    max_rows = settings["max_returned_rows"]
    # A page larger than the row cap is a 400 for tables, and for views it also
    # ends CSV streaming after the first page.
    settings["default_page_size"] = min(settings.get("default_page_size", 100), max_rows)
    fit_page_sizes(metadata, max_rows)
    return Datasette(files, immutables=immutables, metadata=metadata, settings=settings,
                     template_dir=str(TEMPLATE_DIR))


def fit_page_sizes(metadata, max_rows):
    """Lower any table `size` above max_rows, which would make every page of that table a 400."""
    for database in (metadata.get("databases") or {}).values():
        for table in (database.get("tables") or {}).values():
            if table and table.get("size", 0) > max_rows:
                table["size"] = max_rows


def register_plugin():
    """Register the site's hooks with Datasette once per process."""
    if pm.get_plugin(PLUGIN_NAME) is None:
        pm.register(SitePlugin(), name=PLUGIN_NAME)
    facets.register()
    picker.register()


def _catalog_name(datasette):
    """The served catalog's database name, or None for a Datasette that is not ours."""
    config = datasette.plugin_config(PLUGIN_NAME)
    if not config:
        return None
    return config.get("catalog") or "catalog"


async def read_banner(datasette, db_name):
    """What the freshness banner says: {"level", "text"} dicts, worst first; [] when unknown."""
    try:
        db = datasette.get_database(db_name)
        rows = (await db.execute(BANNER_SQL)).rows
    except (KeyError, sqlite3.Error, QueryInterrupted):
        # A catalog without the schema yet (or a slow disk) must not break a page.
        return []
    return banner_lines(dict(rows[0]) if rows else {})


def banner_lines(state):
    lines = []
    if state.get("last_status") in ("failed", "incomplete"):
        text = f"Last crawl {state['last_status']} at {state['last_at'] or 'an unknown time'}"
        error = (state.get("last_error") or "").strip()
        if error:
            text += f": {error[:ERROR_CHARS]}{'…' if len(error) > ERROR_CHARS else ''}"
        lines.append({"level": "error", "text": text})
    if state.get("sample") == "1":
        lines.insert(0, {"level": "warning", "text": (
            "Sample data: these are the bundled example models, not real ModelScope counts "
            "until the first live crawl.")})
    elif state.get("refreshed_at"):
        lines.append({"level": "info", "text": (
            f"Catalog last refreshed {state['refreshed_at']} ({state['refreshed_scope']})")})
    else:
        lines.append({"level": "warning", "text": "No crawl has completed yet: the catalog may be empty."})
    return lines


class SitePlugin:
    """Datasette hooks for the catalog site: freshness banner, model links, read-only guard."""

    # Datasette lists plugins by __name__ and looks for a package of that name
    # holding templates/ and static/; this name is no package, so the catalog's
    # templates reach only the Datasette given template_dir=TEMPLATE_DIR.
    __name__ = PLUGIN_NAME

    @hookimpl
    def extra_template_vars(self, datasette):
        db_name = _catalog_name(datasette)
        if db_name is None:
            return {}

        async def inner():
            return {"catalog_banner": await read_banner(datasette, db_name)}

        return inner

    @hookimpl
    def render_cell(self, row, value, column, table, database, datasette):
        # In views and canned queries the ID is plain text; link it to the
        # model's ModelScope page when the row carries that page. (In `models`
        # itself the ID links to the row and `url` is linked by Datasette.)
        if column != "model_id" or not isinstance(value, str) or _catalog_name(datasette) is None:
            return None
        try:
            url = row["url"]
        except (IndexError, KeyError):
            return None
        if not isinstance(url, str) or not url.startswith(MODELSCOPE_URL):
            return None
        return markupsafe.Markup('<a href="{}">{}</a>').format(url, value)

    @hookimpl
    def asgi_wrapper(self, datasette):
        def wrap(app):
            async def read_only(scope, receive, send):
                if (scope["type"] == "http" and scope.get("method", "GET") not in READ_METHODS
                        and _catalog_name(datasette) is not None):
                    response = Response.text("This catalog is read-only.", status=405,
                                             headers={"Allow": ", ".join(READ_METHODS)})
                    await response.asgi_send(send)
                    return
                await app(scope, receive, send)

            return read_only

        return wrap
