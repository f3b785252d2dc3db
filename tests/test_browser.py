"""End to end in a real browser: `indexer serve` on the sample, driven by chromium (issue 4)."""

import csv
import io
import re
import shutil
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


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            context = browser.new_context(accept_downloads=True)
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


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
        ids = page.locator("td.col-model_id").all_inner_texts()
        assert sorted(ids) == ["AI-ModelScope/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B",
                               "Qwen/Qwen2.5-7B-Instruct",
                               "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]

        step("facet")
        page.locator("#facet-status a", has_text=re.compile(r"^ok$")).click()
        page.wait_for_url(re.compile(r"status=ok"))
        assert "_search=wen2.5-7B" in page.url
        ids = page.locator("td.col-model_id").all_inner_texts()
        assert sorted(ids) == ["AI-ModelScope/Qwen2.5-7B-Instruct-AWQ",
                               "Qwen/Qwen2.5-7B-Instruct",
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
        assert len(table) == 37  # the sample's models whose status is ok
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
