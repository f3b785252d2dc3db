"""The picker at /-/pick and its .txt and .json twins, in process and in a real browser (issue 13)."""

import asyncio
import json
import re
import shutil
import sqlite3

import pytest
from datasette.app import Datasette

from indexer import picker, pickquery, site
from tests.helpers import set_capabilities
from tests.test_browser import ARTIFACTS, CHROMIUM_ARGS, Steps, chromium_path
from tests.test_serve import SAMPLE, read_db, served

# Every status-ok model of the sample once set_capabilities has run (GLM-4.6 drops
# out), most downloaded first (the default view).
OK_IDS = [
    "Qwen/Qwen3-235B-A22B-Instruct-2507", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen-Image",
    "Qwen/Qwen2.5-7B-Instruct", "Tongyi-MAI/Z-Image-Turbo", "deepseek-ai/DeepSeek-V4-Flash-0731",
    "AI-ModelScope/Z-Image-Turbo", "Qwen/Qwen3-Omni-30B-A3B-Instruct",
    "AI-ModelScope/DeepSeek-V3-0324", "Tongyi-MAI/Z-Image-Turbo-2",
    "mlx-community/Llama-3.1-8B-MLX-4bit", "AI-ModelScope/internlm2_5-20b-chat-1m",
    "AI-ModelScope/Emu3-Chat", "AI-ModelScope/Qwen-Image-Edit-2509",
    "AI-ModelScope/stable-diffusion-3.5-large-turbo", "mlx-community/Llama-3.1-70B-8bit",
    "moonshotai/Kimi-K2-Thinking", "LLM-Research/Llama-3.1-8B-Instruct",
    "LLM-Research/Llama-3.2-1B-Instruct", "moonshotai/Kimi-K2-Thinking-ft",
    "Shanghai_AI_Laboratory/internlm2_5-20b", "lmstudio-community/Phi-3.5-MoE-Q4_K_M-GGUF",
    "mlx-community/Llama-3.2-3B-8bit", "Kwai-Kolors/Kolors-diffusers",
    "damo/nlp_bert_large_backbone_chinese-chat", "Shanghai_AI_Laboratory/internlm2_5-1_8b",
    "AI-ModelScope/Qwen3-30B-A3B-Base", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
    "deepseek-ai/DeepSeek-V4-Flash",
]
QWEN_235B = {
    "id": "Qwen/Qwen3-235B-A22B-Instruct-2507", "model_id": "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "status": "ok", "status_reason": "the inference service's /v1/models list names it",
    "kind": "chat", "tasks": ["text-generation"], "downloads": 3495783, "likes": 1520,
    "updated_at": "2025-08-24T01:46:40+00:00", "created_at": "2025-07-20T08:26:40+00:00",
    "vision": 0, "tools": 1, "reasoning": 1, "context_length": 131072,
    "context_length_max": 262144, "cost_per_call": 1.0, "cost_tier": "standard",
    "params_b": 235.0, "providers": ["modelscope"],
}
DEEPSEEK_V3 = {
    "id": "deepseek-ai/DeepSeek-V3", "model_id": "deepseek-ai/DeepSeek-V3", "status": "ok",
    "status_reason": "the inference service's /v1/models list names it", "kind": "chat",
    "tasks": ["text-generation"], "downloads": 2367239, "likes": 3101,
    "updated_at": "2024-12-26T08:00:00+00:00", "created_at": "2024-12-25T04:13:20+00:00",
    "vision": 0, "tools": 1, "reasoning": 0, "context_length": 65536, "context_length_max": None,
    "cost_per_call": 2.0, "cost_tier": "premium", "params_b": 671.0, "providers": ["modelscope"],
}
HOSTILE_ID = 'evil/<script>alert("x")</script>'


def sample_tool_chat(model_id, downloads, likes, updated_at, created_at, reasoning=0):
    """A chat model whose capabilities the sample read from the fake hub: 262,144 tokens, tools, vision."""
    return {
        "id": model_id, "model_id": model_id, "status": "ok",
        "status_reason": "the inference service's /v1/models list names it", "kind": "chat",
        "tasks": ["text-generation"], "downloads": downloads, "likes": likes,
        "updated_at": updated_at, "created_at": created_at,
        "vision": 1, "tools": 1, "reasoning": reasoning, "context_length": 262144,
        "context_length_max": None, "cost_per_call": 1.0, "cost_tier": "standard",
        "params_b": 7.62, "providers": ["ModelScope"],
    }


@pytest.fixture
def catalog_path(tmp_path):
    """The sample with some capabilities known, plus one callable model whose ID is an HTML attack."""
    path = tmp_path / "catalog.db"
    shutil.copy(SAMPLE, path)
    set_capabilities(path)
    return path


@pytest.fixture
def get(catalog_path):
    conn = sqlite3.connect(catalog_path)
    with conn:
        conn.execute("insert into models (model_id, tasks, downloads, likes, api_inference, "
                     "in_inference_list, kind, status, status_reason) values "
                     "(?, '[\"text-generation\"]', 0, 0, 1, 1, 'chat', 'ok', ?)",
                     [HOSTILE_ID, 'listed "<b>here</b>"'])
    conn.close()
    ds = site.build_datasette(catalog_path)

    def _get(url):
        return asyncio.run(ds.client.get(url))

    return _get


def lines(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return response.text.splitlines()


def test_txt_lists_every_callable_id_most_downloaded_first(get):
    assert lines(get("/-/pick.txt")) == OK_IDS[:28] + [HOSTILE_ID, OK_IDS[28]]
    assert get("/-/pick.txt").text.endswith("deepseek-ai/DeepSeek-V4-Flash\n")


@pytest.mark.parametrize("query, expected", [
    # Two characters: LIKE on the ID, so "qw" finds Qwen under any owner.
    ("q=qw&kind=chat", ["Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen2.5-7B-Instruct",
                        "Qwen/Qwen3-Omni-30B-A3B-Instruct", "AI-ModelScope/Qwen3-30B-A3B-Base",
                        "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"]),
    # Three or more: the trigram index; quotes and operators are matched literally.
    ("q=image-turbo", ["Tongyi-MAI/Z-Image-Turbo", "AI-ModelScope/Z-Image-Turbo",
                       "Tongyi-MAI/Z-Image-Turbo-2"]),
    ('q="OR', []),
    # Ties in likes go by ID.
    ("q=kimi&status=any&sort=likes", [
        "moonshotai/Kimi-K2-Instruct", "AI-ModelScope/Kimi-K2-Thinking",
        "AI-ModelScope/Kimi-K2-Base-v2", "moonshotai/Kimi-K2-Thinking",
        "moonshotai/Kimi-K2-Thinking-ft", "moonshotai/Kimi-VL-A3B-Thinking",
        "moonshotai/Kimi-VL-A3B-Thinking-2506", "AI-ModelScope/Kimi-K2-Base"]),
    # GLM-4.6 has the badge and is listed, but its providers list is empty; the
    # fake hub gives the others no provider either.
    ("status=not-served", ["moonshotai/Kimi-K2-Instruct", "ZhipuAI/GLM-4.6",
                           "Qwen/Qwen3-Next-80B-A3B-Instruct", "AI-ModelScope/Phi-3.5-mini-instruct",
                           "FireRedTeam/FireRed-Image-Edit-1.1", "damo/mplug_base_image-captioning_coco_en",
                           "AI-ModelScope/Qwen2.5-7B-Instruct-AWQ", "mlx-community/Qwen2.5-14B-3bit",
                           "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int4",
                           "lmstudio-community/Llama-3.2-1B-Q4_K_M-GGUF"]),
    ("status=removed", ["openmoss/MOSS-TTSD-v0.5"]),
    # The one image-edit model has no provider: not in the default (ok) view.
    ("kind=image-edit", []),
    ("kind=image-edit&status=not-served", ["FireRedTeam/FireRed-Image-Edit-1.1"]),
    ("task=text-to-image-synthesis&sort=newest",
     ["Tongyi-MAI/Z-Image-Turbo-2", "AI-ModelScope/Qwen-Image-Edit-2509",
      "AI-ModelScope/stable-diffusion-3.5-large-turbo", "Tongyi-MAI/Z-Image-Turbo",
      "Kwai-Kolors/Kolors-diffusers", "Qwen/Qwen-Image", "AI-ModelScope/Z-Image-Turbo",
      "AI-ModelScope/Emu3-Chat"]),
    # "New" counts back from the last complete crawl (2026-11-15), not from today.
    ("new=30&status=any", ["Tongyi-MAI/Z-Image-Turbo-2"]),
    ("vision=1", ["Tongyi-MAI/Z-Image-Turbo", "deepseek-ai/DeepSeek-V4-Flash-0731",
                  "Qwen/Qwen3-Omni-30B-A3B-Instruct", "mlx-community/Llama-3.1-8B-MLX-4bit",
                  "AI-ModelScope/internlm2_5-20b-chat-1m", "AI-ModelScope/Qwen-Image-Edit-2509",
                  "AI-ModelScope/stable-diffusion-3.5-large-turbo", "LLM-Research/Llama-3.2-1B-Instruct",
                  "moonshotai/Kimi-K2-Thinking-ft", "mlx-community/Llama-3.2-3B-8bit",
                  "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "deepseek-ai/DeepSeek-V4-Flash"]),
    ("tools=1&reasoning=1", ["Qwen/Qwen3-235B-A22B-Instruct-2507", "moonshotai/Kimi-K2-Thinking-ft"]),
    # The native context (context_length, as export --min-context reads it)
    # counts, not context_length_max: Qwen3-235B's 131,072 falls short.
    ("min_context=200000", ["Tongyi-MAI/Z-Image-Turbo", "mlx-community/Llama-3.1-8B-MLX-4bit",
                            "AI-ModelScope/internlm2_5-20b-chat-1m", "LLM-Research/Llama-3.2-1B-Instruct",
                            "moonshotai/Kimi-K2-Thinking-ft", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
                            "deepseek-ai/DeepSeek-V4-Flash"]),
    ("max_cost=0.5", ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-Omni-30B-A3B-Instruct"]),
    ("kind=video", []),
])
def test_txt_filters(get, query, expected):
    assert lines(get(f"/-/pick.txt?{query}")) == expected


def test_cherry_studio_lines_hold_every_id_in_200_characters(get):
    text = lines(get("/-/pick.txt?format=cherry"))
    ids = lines(get("/-/pick.txt"))
    assert [len(line) for line in text] == [187, 188, 177, 179, 178, 62]
    assert ",".join(text).split(",") == ids
    # Each line is as full as it can be: the next ID would not have fitted.
    starts = [sum(len(line.split(",")) for line in text[:n]) for n in range(1, len(text))]
    assert all(len(line) + 1 + len(ids[start]) > 200 for line, start in zip(text, starts))


def test_cherry_lines_break_before_the_id_that_would_overflow():
    def cherry(ids):
        return list(pickquery.cherry_lines(ids, limit=200))

    assert cherry(["a" * 99, "b" * 100, "c"]) == ["a" * 99 + "," + "b" * 100, "c"]
    assert cherry(["a" * 99, "b" * 101]) == ["a" * 99, "b" * 101]
    assert cherry(["a" * 250, "b"]) == ["a" * 250, "b"]
    assert cherry([]) == []


def test_json_gives_every_match_with_its_capabilities(get):
    response = get("/-/pick.json?tools=1&min_context=60000&q=")
    assert response.status_code == 200
    assert json.loads(response.text) == {
        "ok": True, "count": 7, "filters": {"status": "ok", "tools": "1", "min_context": "60000"},
        "models": [
            QWEN_235B, DEEPSEEK_V3,
            sample_tool_chat("mlx-community/Llama-3.1-8B-MLX-4bit", 236, 0,
                             "2024-12-05T14:03:47+00:00", "2024-11-12T03:16:36+00:00"),
            sample_tool_chat("AI-ModelScope/internlm2_5-20b-chat-1m", 212, 2,
                             "2026-02-21T09:53:08+00:00", "2026-02-07T08:15:57+00:00"),
            sample_tool_chat("LLM-Research/Llama-3.2-1B-Instruct", 53, 1,
                             "2025-07-28T12:00:37+00:00", "2025-07-28T12:00:37+00:00"),
            sample_tool_chat("moonshotai/Kimi-K2-Thinking-ft", 48, 1,
                             "2026-02-05T15:01:16+00:00", "2026-01-06T08:57:56+00:00", reasoning=1),
            sample_tool_chat("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", 28, 0,
                             "2025-10-11T06:35:40+00:00", "2025-10-11T06:35:40+00:00"),
        ]}


@pytest.mark.parametrize("query, message", [
    ("max_cost=abc", "max_cost must be a number of credits, 0 or more"),
    ("min_context=0", "min_context must be a whole number of tokens above 0"),
    ("new=3&status=fine", ("status must be one of: ok, not-served, not-api, removed, any; "
                           "new must be one of 1, 7, 30 (days)")),
])
def test_bad_filters_are_a_one_line_400(get, query, message):
    response = get(f"/-/pick.txt?{query}")
    assert (response.status_code, response.text) == (400, message + "\n")
    response = get(f"/-/pick.json?{query}")
    assert (response.status_code, json.loads(response.text)) == (
        400, {"ok": False, "errors": message.split("; ")})
    page = get(f"/-/pick?{query}")
    assert page.status_code == 200
    assert f"Ignored: {message}." in page.text.replace("&#39;", "'")


def row_ids(html):
    return re.findall(r'<a class="id" href="[^"]*">([^<]*)</a>', html)


def test_page_shows_the_banner_counts_copy_buttons_and_rows(get):
    html = get("/-/pick").text
    assert "<title>Pick a model</title>" in html
    assert "Sample data, made up: the bundled example models as of 2026-11-15" in html
    assert '<span class="count">30 models</span>' in html
    assert '<button type="button" data-copy-url="/-/pick.txt?status=ok">Copy 30 IDs</button>' in html
    assert 'data-copy-url="/-/pick.txt?status=ok&amp;format=cherry"' in html
    assert '<a href="/-/pick.json?status=ok">as JSON</a>' in html
    assert row_ids(html)[:3] == ["Qwen/Qwen3-235B-A22B-Instruct-2507", "deepseek-ai/DeepSeek-V3",
                                 "Qwen/Qwen-Image"]
    first = html[html.index("<tbody>"):html.index("</tr>", html.index("<tbody>"))]
    assert re.sub(r"\s+", " ", first).strip() == re.sub(r"\s+", " ", (
        '<tbody> <tr> <td class="col-id"><button type="button" class="copy" '
        'data-copy="Qwen/Qwen3-235B-A22B-Instruct-2507" aria-label="Copy '
        'Qwen/Qwen3-235B-A22B-Instruct-2507" title="Copy this ID">copy</button>'
        '<a class="id" href="/catalog/models/Qwen~2FQwen3-235B-A22B-Instruct-2507">'
        'Qwen/Qwen3-235B-A22B-Instruct-2507</a></td> '
        '<td class="col-status"><span class="badge status-ok" '
        'title="the inference service&#39;s /v1/models list names it">ok</span></td> '
        '<td class="col-kind">chat</td> '
        '<td class="col-tasks"><span class="task">text-generation</span></td> '
        '<td class="col-downloads num">3,495,783</td> <td class="col-likes num">1,520</td> '
        '<td class="col-updated">2025-08-24</td> '
        '<td class="col-caps"><span class="chip" title="can call tools (functions)">tools</span>'
        '<span class="chip" title="thinks before it answers">reasoning</span>'
        '<span class="chip" title="context window up to 262,144 tokens">256K ctx</span>'
        '<span class="chip" title="235 billion parameters">235B</span>'
        '<span class="chip" title="1 credits per call">1 cr/call</span></td>'))


def test_page_escapes_ids_and_reasons(get):
    html = get("/-/pick?q=evil").text
    assert "<script>alert" not in html
    assert ('data-copy="evil/&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in html)
    assert 'title="listed &#34;&lt;b&gt;here&lt;/b&gt;&#34;"' in html


def test_pages_of_50_while_counts_and_copies_cover_every_match(get):
    first = get("/-/pick?status=any").text
    assert '<span class="count">303 models</span>' in first
    assert len(row_ids(first)) == 50
    assert '<a href="/-/pick?status=any&amp;page=2" rel="next">next</a>' in first
    last = get("/-/pick?status=any&page=7").text
    assert len(row_ids(last)) == 3
    assert "Page 7 of 7" in last
    # A page past the end shows the last one.
    assert row_ids(get("/-/pick?status=any&page=99").text) == row_ids(last)
    assert len(lines(get("/-/pick.txt?status=any"))) == 303


def test_pages_stop_where_an_offset_gets_slow(get, monkeypatch):
    monkeypatch.setattr(picker, "MAX_PAGES", 3)
    html = get("/-/pick?status=any&page=7").text
    assert "Page 3 of 7, 50 a page." in html
    assert 'rel="next"' not in html
    assert ('Pages stop at 3: narrow the filters, or take every match '
            '<a href="/-/pick.txt?status=any">as text</a> or '
            '<a href="/-/pick.json?status=any">as JSON</a>.') in html
    assert row_ids(html) == lines(get("/-/pick.txt?status=any"))[100:150]


def test_choices_come_from_the_data(get):
    html = get("/-/pick?task=text-to-image-synthesis").text
    # 140 in the sample, and the fixture's hostile model.
    assert '<option value="text-generation">text-generation (141)</option>' in html
    assert ('<option value="text-to-image-synthesis" selected>text-to-image-synthesis (27)'
            '</option>') in html
    # A task no model has stays selected, so the view still says what it filters.
    assert '<option value="no-such-task" selected>no-such-task</option>' in \
        get("/-/pick?task=no-such-task").text


def test_home_page_and_menu_link_the_picker_first(get):
    html = get("/").text
    assert html.index('href="/-/pick"') < html.index('href="/catalog/models?status=ok"')
    assert '<li><a href="/-/pick">Pick a model</a></li>' in html


def test_a_datasette_that_is_not_the_catalog_has_no_picker(catalog_path):
    site.register_plugin()
    plain = Datasette([str(catalog_path)])
    assert asyncio.run(plain.client.get("/-/pick")).status_code == 404


# In a real browser ---------------------------------------------------------------


@pytest.fixture
def picker_site(catalog_path):
    before = read_db(catalog_path)
    with served("--db", catalog_path, "--port", 0, "--no-schedule") as process:
        yield process
        process.terminate()
        assert read_db(catalog_path) == before


@pytest.fixture
def picker_page(picker_site):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"],
                                      origin=picker_site.url.rstrip("/"))
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


def test_picker_first_screen_copy_and_reload(picker_site, picker_page, request):
    from playwright.sync_api import expect

    page, base = picker_page, picker_site.url.rstrip("/")
    step = Steps(page, request.node.name)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        step("first-screen")
        page.goto(f"{base}/")
        page.locator("section.content a[href='/-/pick']").click()
        page.wait_for_url(re.compile(r"/-/pick$"))
        expect(page.locator(".catalog-banner")).to_contain_text("Sample data")
        expect(page.locator("input[name=q]")).to_be_in_viewport()
        rows = page.locator("table.picks tbody tr")
        assert rows.count() >= 10
        for nth in range(10):
            expect(rows.nth(nth).locator("a.id")).to_be_in_viewport()
            expect(rows.nth(nth).locator(".badge")).to_be_in_viewport()
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        page.screenshot(path=str(ARTIFACTS / "picker-first-screen.png"))

        step("filter")
        page.select_option("select[name=kind]", "chat")
        page.fill("input[name=q]", "qwen")
        page.locator("form.pick input[type=submit]").click()
        page.wait_for_url(re.compile(r"kind=chat"))
        query = page.url.split("?", 1)[1]

        step("reload")
        page.reload()
        expect(page.locator("select[name=kind]")).to_have_value("chat")
        expect(page.locator("input[name=q]")).to_have_value("qwen")
        kinds = page.locator("table.picks td.col-kind").all_inner_texts()
        assert kinds and set(kinds) == {"chat"}

        step("copy")
        expected = page.request.get(f"{base}/-/pick.txt?{query}").text()
        count = len(expected.splitlines())
        button = page.locator("button", has_text=re.compile(r"^Copy \d+ IDs?$"))
        expect(button).to_have_text(f"Copy {count} IDs")
        button.click()
        expect(page.locator(".copied")).to_have_text(f"Copied {count} lines")
        assert page.evaluate("navigator.clipboard.readText()") == expected
        assert expected.splitlines() == [i for i in OK_IDS if "qwen" in i.lower()
                                         and i not in ("Qwen/Qwen-Image",
                                                       "AI-ModelScope/Qwen-Image-Edit-2509")]

        step("copy-one")
        first = page.locator("table.picks tbody tr").first
        first.locator("button.copy").click()
        expect(page.locator(".copied")).to_have_text(f"Copied {expected.splitlines()[0]}")
        assert page.evaluate("navigator.clipboard.readText()") == expected.splitlines()[0]
        page.screenshot(path=str(ARTIFACTS / "picker-filtered.png"))
    except Exception:
        path = step.screenshot()
        print(f"screenshot of the failed step: {path}")
        print("\n".join(picker_site.lines[-40:]))
        raise
