"""The fetcher against hostile answers: a whole-answer deadline, a size cap, a stop event,
a request budget, and errors that carry their kind and status (issues 10 and 14)."""

import email.utils
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer import fetch
from tests.fakehub import DOLPHIN_PATH
from tests.helpers import Sleeps, make_fetcher, rows, run_crawl

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def crawl_subprocess(hub, tmp_path, *extra):
    """`indexer crawl` in a child process: (exit code, stdout, stderr, seconds, peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if k != "MODELSCOPE_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "indexer", "crawl", "--db", str(tmp_path / "catalog.db"),
             "--hub-url", hub.hub_url, "--inference-url", hub.inference_url, "--delay", "0",
             *extra], cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        # A crawler that hangs (as before issue 14) is killed, and the test then fails.
        watchdog = threading.Timer(60, process.kill)
        watchdog.start()
        try:
            # wait4 gives this child's own peak RSS (ru_maxrss, in KB on Linux).
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
            process.returncode = 0  # reaped by wait4; keep Popen from waiting again
    seconds = time.monotonic() - started
    return (os.waitstatus_to_exitcode(status), out.read_text(), err.read_text(), seconds,
            usage.ru_maxrss / 1024)


def test_a_dripping_answer_fails_the_crawl_within_a_few_timeouts(tmp_path, make_hub):
    # Issue 14: headers, then one byte every 0.5 s never tripped a per-read timeout.
    hub = make_hub()
    hub.add_fault("drip", count=10, path=DOLPHIN_PATH)
    code, out, err, seconds, _ = crawl_subprocess(hub, tmp_path, "--timeout", "2",
                                                  "--max-retries", "1")
    assert code == 1
    assert re.fullmatch(rf"\S+ \S+ INFO indexer.fetch: PUT {hub.hub_url}/api/v1/dolphin/models: "
                        r"answer took longer than 2s; retrying in \d+\.\ds\n", err), err
    assert out.startswith("crawl #1 (api) failed: 0 models, 0 API-Inference, 0 listed; ")
    assert out.endswith(f"(PUT {hub.hub_url}/api/v1/dolphin/models failed after 2 tries: "
                        "answer took longer than 2s)\n")
    assert out.count("\n") == 1
    # Two tries of at most 2 s plus one drip interval each, one backoff, and start-up.
    print(f"drip: failed after {seconds:.1f}s")
    assert seconds < 4 * 2 + 3
    assert len(hub.dolphin_requests()) == 2
    assert rows(tmp_path / "catalog.db", "select status from crawl_runs") == [
        {"status": "failed"}]


@pytest.mark.parametrize("fault", ["gzip_bomb", "endless"])
def test_a_huge_answer_fails_the_crawl_in_little_memory(tmp_path, make_hub, fault):
    # Issue 14: response.json() read a 1 GB inflated body, or an endless one, whole.
    hub = make_hub()
    hub.add_fault(fault, count=10, path=DOLPHIN_PATH)
    code, out, err, seconds, peak_mb = crawl_subprocess(hub, tmp_path, "--timeout", "30",
                                                        "--max-retries", "3")
    assert (code, err) == (1, "")
    assert out.startswith("crawl #1 (api) failed: 0 models, 0 API-Inference, 0 listed; ")
    assert out.endswith(f"(PUT {hub.hub_url}/api/v1/dolphin/models: answer too large "
                        f"(over {fetch.MAX_ANSWER_BYTES:,} bytes))\n")
    # Too large is not retried: the same request would get the same answer.
    assert len(hub.dolphin_requests()) == 1
    print(f"{fault}: peak RSS {peak_mb:.0f} MB in {seconds:.1f}s")
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    assert seconds < 30


def test_the_size_cap_counts_inflated_bytes(make_hub):
    hub = make_hub()
    hub.add_fault("gzip_bomb", count=1, path=DOLPHIN_PATH)
    fetcher = make_fetcher(hub)
    fetcher.max_answer_bytes = 4 * MB
    with pytest.raises(fetch.HubError) as caught:
        fetcher.fetch_models_page(fetch.models_body())
    assert (caught.value.kind, caught.value.status, str(caught.value)) == (
        "too_large", 200, (f"PUT {hub.hub_url}/api/v1/dolphin/models: answer too large "
                          "(over 4,194,304 bytes)"))


def test_setting_the_stop_event_mid_crawl_ends_it_incomplete_without_more_requests(
        tmp_path, make_hub):
    hub = make_hub()
    stop = threading.Event()
    fetcher = make_fetcher(hub)
    fetcher.stop = stop
    hub.before_dolphin = lambda hub_, body: stop.set()
    result = run_crawl(tmp_path / "catalog.db", hub, fetcher=fetcher)
    assert (result.status, result.error) == (
        "incomplete", "interrupted: the process is shutting down")
    assert len(hub.requests) == 1


def test_a_stop_event_wakes_a_long_retry_pause(make_hub):
    hub = make_hub()
    hub.add_fault("429", count=1, retry_after=120)
    fetcher = make_fetcher(hub)
    fetcher.stop = threading.Event()
    threading.Timer(0.3, fetcher.stop.set).start()
    started = time.monotonic()
    with pytest.raises(fetch.Stopped) as caught:
        fetcher.fetch_task_list()
    assert time.monotonic() - started < 5
    assert (caught.value.kind, caught.value.status) == ("stopped", None)
    assert len(hub.requests) == 1


def test_the_request_budget_cuts_retries_short_and_then_refuses(make_hub):
    hub = make_hub()
    hub.add_fault("503", count=10)
    fetcher = make_fetcher(hub, max_retries=4)
    fetcher.max_requests = 2
    with pytest.raises(fetch.HubError) as first:
        fetcher.fetch_task_list()
    assert (type(first.value), first.value.kind, first.value.status, str(first.value)) == (
        fetch.EnvelopeError, "http", 503,
        f"GET {hub.hub_url}/api/v1/tasks failed after 2 tries: HTTP 503")
    with pytest.raises(fetch.BudgetSpent) as second:
        fetcher.fetch_task_list()
    assert (second.value.kind, second.value.status, str(second.value)) == (
        "budget", None, (f"GET {hub.hub_url}/api/v1/tasks not sent: the budget of 2 requests "
                        "is spent"))
    assert (fetcher.requests_made, len(hub.requests)) == (2, 2)


@pytest.mark.parametrize(("fault", "kind", "status", "problem"), [
    ("503", "http", 503, "failed after 2 tries: HTTP 503"),
    ("success_false", "success_false", None,
     'failed after 2 tries: Success: false (Code 10010101, Message "system busy")'),
    ("nonjson", "envelope", 200, ("failed after 2 tries: an answer that is not JSON "
                                 "(or was cut short)")),
    ("truncated", "network", 200, ("failed after 2 tries: the answer was cut short "
                                  "(ProtocolError)")),
    ("drip", "timeout", 200, "failed after 2 tries: answer took longer than 1s"),
])
def test_errors_carry_their_kind_and_status(make_hub, fault, kind, status, problem):
    hub = make_hub()
    hub.add_fault(fault, count=2, path="/api/v1/tasks")
    fetcher = make_fetcher(hub, max_retries=1, timeout=1.0)
    with pytest.raises(fetch.HubError) as caught:
        fetcher.fetch_task_list()
    assert (caught.value.kind, caught.value.status, str(caught.value)) == (
        kind, status, f"GET {hub.hub_url}/api/v1/tasks {problem}")


def test_a_client_error_is_not_retried_and_carries_its_status(make_hub):
    hub = make_hub(tasks_endpoint=False)
    fetcher = make_fetcher(hub)
    with pytest.raises(fetch.HubError) as caught:
        fetcher.fetch_task_list()
    assert (caught.value.kind, caught.value.status, str(caught.value)) == (
        "http", 404, f"GET {hub.hub_url}/api/v1/tasks answered HTTP 404")
    assert len(hub.requests) == 1


def test_a_slow_first_byte_times_out(make_hub):
    hub = make_hub()
    hub.add_fault("slow", count=1, seconds=3)
    fetcher = make_fetcher(hub, max_retries=0, timeout=0.5)
    with pytest.raises(fetch.HubError) as caught:
        fetcher.fetch_task_list()
    assert (caught.value.kind, str(caught.value)) == (
        "timeout", f"GET {hub.hub_url}/api/v1/tasks failed after 1 try: timed out after 0.5s")


def test_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 42, usegmt=True)
    assert fetch.parse_retry_after(when, now=now) == 42.0
    assert fetch.parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert fetch.parse_retry_after(email.utils.formatdate(now + 9999, usegmt=True),
                                   now=now) == fetch.MAX_RETRY_AFTER
    assert fetch.parse_retry_after("not a date", now=now) is None


def test_a_429_with_an_http_date_waits_until_then(make_hub):
    hub = make_hub()
    hub.add_fault("429", count=1, retry_after=email.utils.formatdate(time.time() + 30,
                                                                     usegmt=True))
    sleeps = Sleeps()
    fetcher = make_fetcher(hub, sleep=sleeps)
    fetcher.fetch_task_list()
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30, sleeps


@pytest.mark.parametrize("fault", ["503", "nonjson", "success_false"])
def test_a_first_try_sent_ahead_is_decoded_later_and_retried_like_any(make_hub, fault):
    hub = make_hub()
    hub.add_fault(fault, count=1, path=DOLPHIN_PATH)
    sleeps = Sleeps()
    fetcher = make_fetcher(hub, max_retries=2, sleep=sleeps)
    body = fetch.models_body(page=1, page_size=5)
    sent = fetcher.send_models_page(body)
    assert (fetcher.requests_made, fetcher.retries_made, len(hub.requests)) == (1, 0, 1)
    data = fetcher.fetch_models_page(body, sent=sent)
    assert data == fetcher.fetch_models_page(body)
    # The first try, its retry, and the request for comparison: nothing sent twice.
    assert (fetcher.requests_made, fetcher.retries_made, len(hub.requests)) == (3, 1, 3)
    assert len(sleeps) == 1


def test_a_first_try_sent_ahead_counts_against_the_budget(make_hub):
    hub = make_hub()
    hub.add_fault("503", count=10)
    fetcher = make_fetcher(hub, max_retries=4)
    fetcher.max_requests = 2
    body = fetch.models_body(page=1, page_size=5)
    sent = fetcher.send_models_page(body)
    with pytest.raises(fetch.EnvelopeError) as spent:
        fetcher.fetch_models_page(body, sent=sent)
    assert str(spent.value) == (f"PUT {hub.hub_url}{DOLPHIN_PATH} failed after 2 tries: HTTP 503")
    with pytest.raises(fetch.BudgetSpent):
        fetcher.send_models_page(body)
    assert (fetcher.requests_made, len(hub.requests)) == (2, 2)
