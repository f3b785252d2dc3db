"""End to end in a real browser: `indexer serve` on the sample, driven by chromium (issue 4)."""

import csv
import io
import re
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.test_serve import SAMPLE, read_db, served

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def chromium_path():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        # Not a skip: CI installs it (.ci/run), and a browser test that quietly
        # does not run proves nothing.
        pytest.fail("chromium is not installed: apt-get install chromium (or run .ci/run)")
    return path


def first_dashboard():
    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    dashboards = metadata["plugins"]["datasette-dashboards"]
    slug = next(iter(dashboards))
    return slug, dashboards[slug]


@contextmanager
def chromium_context(**options):
    """A context of Debian's chromium, headless, with a 15 s default timeout."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            context = browser.new_context(**options)
            context.set_default_timeout(15_000)
            yield context
        finally:
            browser.close()


@pytest.fixture
def browser_page():

    with chromium_context(accept_downloads=True) as context:
        yield context.new_page()


class Steps:
    """Names the step under way, so a failure saves a screenshot called after it."""

    def __init__(self, page, test_name):
        self.page, self.test_name, self.name = page, test_name, "start"

    def __call__(self, name):
        self.name = name

    def screenshot(self):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{self.name}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True, timeout=30_000)
        except Exception:  # the page may be gone; the assertion is what matters
            return None
        return path


@pytest.fixture
def sample_site(tmp_path):
    """`indexer serve` on a copy of the sample; it starts while the browser does."""
    db_path = tmp_path / "catalog.db"
    shutil.copy(SAMPLE, db_path)
    with served("--db", db_path, "--port", 0, "--no-schedule") as process:
        yield process
        # Serving alone writes nothing, and SIGTERM ends it cleanly.
        code, seconds = process.terminate()
        assert (code, seconds < 5) == (0, True), "\n".join(process.lines)
        assert read_db(db_path) == read_db(SAMPLE)


def test_search_facet_row_check_csv_and_dashboard(sample_site, browser_page, request):
    from playwright.sync_api import expect

    page, process = browser_page, sample_site
    slug, dashboard = first_dashboard()
    step = Steps(page, request.node.name)
    base = process.url.rstrip("/")
    try:
        step("search")
        page.goto(f"{base}/catalog/models")
        expect(page.locator(".catalog-banner")).to_contain_text("Sample data")
        page.fill("input#_search", "wen2.5-7B")
        page.press("input#_search", "Enter")
        page.wait_for_url(re.compile(r"_search=wen2\.5-7B"))
        # The ID cell holds the link and a copy button; the link is the ID.
        ids = page.locator("td.col-model_id a").all_inner_texts()
        assert sorted(ids) == ["AI-ModelScope/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B",
                               "Qwen/Qwen2.5-7B-Instruct",
                               "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]

        step("facet")
        page.locator("#facet-status a", has_text=re.compile(r"^ok$")).click()
        page.wait_for_url(re.compile(r"status=ok"))
        assert "_search=wen2.5-7B" in page.url
        # The AWQ model is listed, but the fake hub gave it no provider: not-served.
        ids = page.locator("td.col-model_id a").all_inner_texts()
        assert sorted(ids) == ["Qwen/Qwen2.5-7B-Instruct",
                               "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]

        step("row")
        anchor = re.compile(r"^Qwen/Qwen2\.5-7B-Instruct$")
        page.locator("td.col-model_id a", has_text=anchor).click()
        page.wait_for_url(re.compile(r"/catalog/models/Qwen"))
        expect(page.locator("h1")).to_contain_text("Qwen/Qwen2.5-7B-Instruct")
        expect(page.locator("td.col-api_inference")).to_have_text("1")
        expect(page.locator("td.col-status")).to_have_text("ok")

        step("check_model_id")
        page.goto(f"{base}/catalog/check_model_id")
        page.fill("input[name=id]", "Qwen/Qwen2.5-7B-Instruct")
        page.locator("form.sql input[type=submit]").click()
        page.wait_for_url(re.compile(r"id=Qwen"))
        first = page.locator("table.rows-and-columns tbody tr").first
        expect(first.locator("td.col-match")).to_have_text("exact")
        expect(first.locator("td.col-status")).to_have_text("ok")

        step("csv")
        page.goto(f"{base}/catalog/api_models")
        export = page.locator("#export form")
        export.locator("input[name=_dl]").check()
        with page.expect_download() as download_info:
            export.locator("input[type=submit]").click()
        download = download_info.value
        assert download.suggested_filename == "api_models.csv"
        text = Path(download.path()).read_text(encoding="utf-8")
        table = list(csv.DictReader(io.StringIO(text)))
        assert list(table[0]) == ["model_id", "owner", "kind", "tasks", "downloads", "likes",
                                  "status_reason", "url"]
        assert len(table) == 30  # the sample's models whose status is ok
        assert "Qwen/Qwen2.5-7B-Instruct" in {row["model_id"] for row in table}

        step("dashboard")
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/-/dashboards/{slug}")
        expect(page.locator("h1")).to_have_text(dashboard["title"])
        for name, chart in dashboard["charts"].items():
            card = page.locator(f"#chart-{name}")
            expect(card).to_be_visible()
            if chart["library"] == "vega-lite":
                expect(card.locator("svg, canvas").first).to_be_visible()
        assert errors == []
    except Exception:
        path = step.screenshot()
        print(f"screenshot of the failed step: {path}")
        print("\n".join(process.lines[-40:]))
        raise


# First-screen budgets at 1366×900 (issue 13) ---------------------------------

VIEWPORT = {"width": 1366, "height": 900}
CANNED = ["find_api_models", "fallback_models", "fallback_ids", "check_model_id", "changes",
          "disagreements"]


@pytest.fixture
def screen():
    """A 1366×900 page that may read the clipboard; screenshots go to test-artifacts/."""
    with chromium_context(viewport=VIEWPORT) as context:
        yield context


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One `indexer serve` on a copy of the sample for the read-only page tests below."""
    db_path = tmp_path_factory.mktemp("site") / "catalog.db"
    shutil.copy(SAMPLE, db_path)
    with served("--db", db_path, "--port", 0, "--no-schedule") as process:
        yield process
        process.terminate()
        assert read_db(db_path) == read_db(SAMPLE)


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def no_horizontal_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def rows_in_first_screen(page, *columns):
    """How many table rows show every one of `columns` wholly inside the first viewport."""
    return page.evaluate("""(columns) => {
        const h = window.innerHeight, w = window.innerWidth;
        return [...document.querySelectorAll('table.rows-and-columns tbody tr')].filter(tr =>
            columns.every(c => { const td = tr.querySelector('td.col-' + c);
                if (!td) return false;
                const r = td.getBoundingClientRect();
                return r.top >= 0 && r.bottom <= h && r.left >= 0 && r.right <= w; })).length;
    }""", list(columns))


def test_models_first_screen_shows_search_and_ten_rows(site, screen):
    from playwright.sync_api import expect

    page = screen.new_page()
    page.goto(site.url.rstrip("/") + "/catalog/models?status=ok")
    shoot(page, "models-status-ok")
    expect(page.locator("input#_search")).to_be_in_viewport()
    assert rows_in_first_screen(page, "model_id", "status") >= 10
    assert no_horizontal_scroll(page)
    expect(page.locator("details.about-table dl.glossary")).to_be_hidden()
    first = page.locator("table.rows-and-columns tbody tr").first
    assert first.locator("td").nth(0).get_attribute("class").startswith("col-model_id")
    assert first.locator("td").nth(1).get_attribute("class").startswith("col-status")


@pytest.mark.parametrize("name", CANNED)
def test_canned_query_pages_read_like_forms(site, screen, name):
    from playwright.sync_api import expect

    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    query = metadata["databases"]["catalog"]["queries"][name]
    page = screen.new_page()
    page.goto(f"{site.url.rstrip('/')}/catalog/{name}")
    shoot(page, f"query-{name}")
    assert page.title() == f"{query['title']} · catalog"
    expect(page.locator("h1")).to_have_text(query["title"])
    form = page.locator("form.query-form")
    expect(form).to_be_in_viewport()
    expect(form.locator("input[type=submit]")).to_be_in_viewport()
    expect(form.locator("input[type=submit]")).to_have_value(query["submit"])
    for param in query.get("params", []):
        expect(form.locator(f"[name={param}]")).to_be_in_viewport()
    expect(page.locator("#sql-query")).to_have_count(0)
    assert "select" not in page.locator("body").inner_text().lower().split("show the sql")[0]
    assert no_horizontal_scroll(page)
    page.locator("a", has_text="Show the SQL").click()
    expect(page.locator("#sql-query")).to_contain_text("select")


def test_task_choices_come_from_the_data(site, screen):
    page = screen.new_page()
    page.goto(site.url.rstrip("/") + "/catalog/find_api_models")
    options = page.locator("datalist#qp-task-list option").evaluate_all(
        "os => os.map(o => o.value)")
    conn = sqlite3.connect(f"file:{SAMPLE}?immutable=1", uri=True)
    expected = {r[0] for r in conn.execute("select value from facet_counts where facet = 'tasks'")}
    event_names = {r[0] for r in conn.execute("select event from model_events")}
    conn.close()
    assert set(options) == expected and "text-generation" in options
    events = page.context.new_page()
    events.goto(site.url.rstrip("/") + "/catalog/changes")
    got = events.locator("select[name=event] option").evaluate_all("os => os.map(o => o.value)")
    assert got[:2] == ["", "became-callable"]
    assert set(got[2:]) == event_names


@pytest.mark.parametrize("url", ["/catalog/models?status=ok&kind=image",
                                 "/catalog/api_models?kind=chat", "/catalog/models?_search=qwen"])
def test_copy_these_ids_puts_the_filters_ids_on_the_clipboard(site, screen, url):
    base = site.url.rstrip("/")
    screen.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = screen.new_page()
    page.goto(base + url)
    table = url.split("?")[0]
    expected = page.request.get(f"{base}{table}.json?{url.split('?')[1]}&_shape=arrayfirst"
                                f"&_col=model_id&_size=max").json()
    page.locator("button.copy-ids").click()
    page.wait_for_function("() => document.querySelector('button.copy-ids').textContent === 'Copied'")
    shoot(page, "copy-ids-" + re.sub(r"\W+", "-", url).strip("-"))
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.split("\n") == expected
    assert len(expected) >= 2


def test_copy_button_by_an_id(site, screen):
    base = site.url.rstrip("/")
    screen.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = screen.new_page()
    page.goto(base + "/catalog/models?status=ok")
    row = page.locator("table.rows-and-columns tbody tr").nth(2)
    wanted = row.locator("td.col-model_id a").inner_text()
    row.locator("button.copy-id").click()
    assert page.evaluate("navigator.clipboard.readText()") == wanted


def test_home_page_says_what_became_callable(site, screen):
    page = screen.new_page()
    page.goto(site.url)
    shoot(page, "home")
    link = page.locator("p.this-week a").first
    from playwright.sync_api import expect

    expect(link).to_have_text(re.compile(r"^\d+ models? became callable this week$"))
    expect(page.locator(".catalog-banner")).to_contain_text("made up")
    link.click()
    page.wait_for_url(re.compile(r"event=became-callable&days=7"))
    shoot(page, "changes-became-callable")
