"""The catalog site under any file name, its facet kept to itself, its plugin entry points, the wheel."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

from datasette.app import Datasette
from datasette.plugins import pm

from indexer import facets, picker, serve, site

ROOT = Path(__file__).resolve().parent.parent


def get(ds, url):
    return asyncio.run(ds.client.get(url))


def test_a_catalog_of_another_file_name_serves_working_links(tmp_path):
    other = tmp_path / "other.db"
    shutil.copy(ROOT / "catalog.db", other)
    ds = site.build_datasette(other, immutable=True)
    assert list(ds.databases) == ["_internal", "catalog"]
    home = get(ds, "/")
    assert home.status_code == 200
    links = sorted(set(re.findall(r'href="(/catalog[^"#]*)"', home.text)))
    assert "/catalog" in links and "/catalog/models" in links
    assert {link: get(ds, link.replace("&amp;", "&")).status_code for link in links} == {
        link: 200 for link in links}
    assert "sample" in get(ds, "/catalog/models").text.lower()  # the banner


def test_a_plain_datasette_in_the_same_process_counts_array_facets_as_stock(tmp_path):
    site.build_datasette(ROOT / "catalog.db")  # our plugins are registered from here on
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("create table t (id integer primary key, tags text)")
    conn.execute("""insert into t (tags) values ('["a","a","b"]')""")
    conn.commit()
    conn.close()
    plain = Datasette([str(path)])
    data = get(plain, "/plain/t.json?_facet_array=tags").json()
    results = data["facet_results"]["tags"]
    assert [(r["value"], r["count"]) for r in results["results"]] == [("a", 1), ("b", 1)]
    assert results["type"] == "array"
    # ...and neither our banner nor the read-only guard touch it.
    assert "catalog-banner" not in get(plain, "/plain/t").text
    assert pm.get_plugin("datasette.facets") is not None and not pm.is_blocked("datasette.facets")


def test_the_catalog_facets_use_our_facet_type():
    ds = site.build_datasette(ROOT / "catalog.db", immutable=True)
    # The site facets models on status, kind, tasks, owner and license; tasks is the array.
    # All are ours, so each page counts them together in one pass (issue 16), while
    # `type` keeps Datasette's own names. A facet added by URL is removed by our type's name.
    url = f"/catalog/models.json?_facet_{facets.CatalogColumnFacet.type}=cost_tier"
    results = get(ds, url).json()["facet_results"]
    # The removal link drops only its own facet; the URL's facet stays on the others.
    kept = url
    assert {c: (r["type"], r["toggle_url"]) for c, r in results.items()} == {
        "status": ("column", kept), "kind": ("column", kept), "tasks": ("array", kept),
        "owner": ("column", kept), "license": ("column", kept),
        "cost_tier": ("column", "/catalog/models.json")}
    results = get(ds, "/catalog/api_models.json").json()["facet_results"]
    assert {c: r["type"] for c, r in results.items()} == {
        "kind": "column", "tasks": "array", "owner": "column"}


def test_the_facet_rail_headings_read_as_datasettes_own():
    # Datasette's template names any facet type but `column` in the heading. Ours report
    # Datasette's names, so the rail reads "status", not "status (catalog)"; an array
    # facet reads "tasks (array)", as on any Datasette.
    ds = site.build_datasette(ROOT / "catalog.db", immutable=True)
    page = get(ds, "/catalog/models").text
    headings = re.findall(r'data-column="(\w+)">\s*<p class="facet-info-name">\s*<strong>(.*?)<span',
                          page, re.S)
    assert {column: " ".join(h.split()) for column, h in headings} == {
        "status": "status", "kind": "kind", "tasks": "tasks (array)", "owner": "owner",
        "license": "license"}


def test_the_site_plugins_are_datasette_entry_points_registered_once():
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="datasette")
              if ep.value.startswith("indexer.")}
    assert points == {site.PLUGIN_NAME: "indexer.site:plugin",
                      facets.PLUGIN_NAME: "indexer.facets:plugin",
                      picker.PLUGIN_NAME: "indexer.picker:plugin"}
    site.register_plugin()
    site.register_plugin()
    ours = [p for p in pm.get_plugins() if p in (site.plugin, facets.plugin, picker.plugin)]
    assert sorted(pm.get_name(p) for p in ours) == [facets.PLUGIN_NAME, picker.PLUGIN_NAME,
                                                    site.PLUGIN_NAME]


def test_plain_datasette_loads_the_plugins_from_the_entry_points():
    code = ("from datasette.plugins import pm; "
            "print(sorted(n for n, _ in pm.list_name_plugin() if n.startswith('indexer')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted([facets.PLUGIN_NAME, picker.PLUGIN_NAME, site.PLUGIN_NAME]))


def test_the_wheel_ships_the_sample_catalog(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    str(ROOT), "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("indexer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"indexer/data/catalog.db", "indexer/metadata.yml", "indexer/templates/base.html"} <= names
        assert archive.read("indexer/data/catalog.db") == (ROOT / "catalog.db").read_bytes()
    assert serve.SAMPLE_PATH.resolve() == (ROOT / "catalog.db").resolve()
