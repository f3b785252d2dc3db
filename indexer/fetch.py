"""HTTP only: one session, timeouts, retries with backoff, polite pauses, envelope checks."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from indexer import DEFAULT_HUB_URL, DEFAULT_INFERENCE_URL, __version__

log = logging.getLogger("indexer.fetch")

USER_AGENT = f"indexer/{__version__} (ModelScope catalog indexer; +https://github.com/indexer/indexer)"
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0
# Real answers nest a few levels; Python's json gives up (RecursionError) near
# 1,000, so one hostile item could sink its whole page on every crawl (issue 6).
MAX_JSON_DEPTH = 64
JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class HubError(Exception):
    """A request that still failed after its retries; the message is one line, without secrets."""


class EnvelopeError(HubError):
    """The hub answered, but not with the envelope we parse (`Success: false`, no JSON, ...)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


def build_session(token=None):
    """The one `requests.Session` of a crawl, naming this project in its User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def parse_retry_after(value, now=None):
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date.

    See docs/modelscope-api.md §6.3.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, min(when.timestamp() - now, MAX_RETRY_AFTER))


@dataclass
class Fetcher:
    """Requests to the hub and the inference service, with pauses, retries and counters."""

    session: requests.Session
    hub_url: str = DEFAULT_HUB_URL
    inference_url: str = DEFAULT_INFERENCE_URL
    delay: float = 0.5
    max_retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0
    sleep: object = time.sleep
    clock: object = time.monotonic
    requests_made: int = 0
    retries_made: int = 0
    pruned_answers: int = 0
    _last_at: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hub_url = self.hub_url.rstrip("/")
        self.inference_url = self.inference_url.rstrip("/")

    def _pause(self, url):
        # Politeness (docs/modelscope-api.md §8): keep `delay` between two requests to one host.
        host = urlsplit(url).netloc
        last = self._last_at.get(host)
        if last is not None and self.delay > 0:
            wait = self.delay - (self.clock() - last)
            if wait > 0:
                self.sleep(wait)
        self._last_at[host] = self.clock()

    def _backoff(self, attempt, retry_after=None):
        if retry_after is not None:
            return retry_after
        base = self.backoff * (2 ** attempt)
        return min(base, 60.0) * (0.5 + random.random() / 2)

    def request_json(self, method, url, body=None, envelope=True):
        """Send one request and return its JSON, retrying passing trouble; raise HubError when spent."""
        what = f"{method} {redact_url(url)}"
        last_problem = "no answer"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries_made += 1
            self._pause(url)
            self.requests_made += 1
            retry_after = None
            try:
                response = self.session.request(method, url, json=body, timeout=self.timeout)
            except requests.Timeout:
                last_problem = f"timed out after {self.timeout:g}s"
            except requests.RequestException as error:
                last_problem = f"could not connect ({type(error).__name__})"
            else:
                status = response.status_code
                if status in RETRY_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    last_problem = f"HTTP {status}"
                elif status >= 400:
                    raise HubError(f"{what} answered HTTP {status}")
                else:
                    try:
                        payload = self._decode(response, what)
                    except (ValueError, RecursionError, requests.RequestException):
                        last_problem = "an answer that is not JSON (or was cut short)"
                    else:
                        problem = check_envelope(payload) if envelope else None
                        if problem is None:
                            return payload
                        last_problem = problem
            if attempt < self.max_retries:
                wait = self._backoff(attempt, retry_after)
                log.info("%s: %s; retrying in %.1fs", what, last_problem, wait)
                self.sleep(wait)
        kind = "success_false" if last_problem.startswith("Success") else "transport"
        raise EnvelopeError(f"{what} failed after {self.max_retries + 1} tries: {last_problem}", kind)

    def _decode(self, response, what):
        try:
            return response.json()
        except RecursionError:
            payload = json.loads(prune_deep_json(response.text))
        self.pruned_answers += 1
        log.warning("%s: JSON nested deeper than %d levels; the deeper values were read as null",
                    what, MAX_JSON_DEPTH)
        return payload

    def fetch_models_page(self, body):
        """`Data` of one dolphin list page (endpoint A, PUT only)."""
        return self.request_json("PUT", f"{self.hub_url}/api/v1/dolphin/models", body)["Data"]

    def fetch_inference_list(self):
        """The OpenAI list the inference service answers at `/models` (endpoint F)."""
        return self.request_json("GET", f"{self.inference_url}/models", envelope=False)

    def fetch_task_list(self):
        """The task taxonomy (endpoint K)."""
        return self.request_json("GET", f"{self.hub_url}/api/v1/tasks")


def check_envelope(payload):
    """None when a hub answer is a success envelope, else a one-line reason.

    See docs/modelscope-api.md §12.
    """
    if not isinstance(payload, dict):
        return "an answer that is not a JSON object"
    success = payload.get("Success", payload.get("success"))
    code = payload.get("Code", payload.get("code"))
    if success is not True or code not in (200, "200", 0, "0", None):
        message = payload.get("Message") or payload.get("message") or ""
        message = json.dumps(str(message)[:120], ensure_ascii=False)
        return f"Success: false (Code {code!r}, Message {message})"
    if "Data" not in payload:
        return "an envelope without `Data`"
    return None


def prune_deep_json(text, limit=MAX_JSON_DEPTH):
    """JSON text with every array or object opened deeper than `limit` replaced by null."""
    out, depth, cut_from, last = [], 0, None, 0
    for match in JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit and cut_from is None:
                cut_from = match.start()
        elif token in ("]", "}"):
            if cut_from is not None and depth == limit + 1:
                out.append(text[last:cut_from])
                out.append("null")
                last, cut_from = match.end(), None
            depth -= 1
    out.append(text[last:])
    return "".join(out)


def redact_url(url):
    """A URL without credentials or query string, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def models_body(page=1, page_size=100, sort="DownloadsCount", tasks=None, orgs=None,
                api_only=False, name=None):
    """A dolphin request body: lower-case Criterion keys, `DateType` as spelled upstream.

    See docs/modelscope-api.md §2.1.
    """
    criterion = []
    if tasks:
        criterion.append({"category": "tasks", "predicate": "contains",
                          "values": list(tasks), "sub_values": []})
    if orgs:
        criterion.append({"category": "organizations", "predicate": "contains",
                          "values": list(orgs), "sub_values": []})
    single = []
    if api_only:
        single.append({"category": "inference_type", "DateType": "int",
                       "predicate": "equal", "IntValue": 1})
    body = {"PageSize": page_size, "PageNumber": page, "SortBy": sort, "Target": "",
            "Criterion": criterion, "SingleCriterion": single}
    if name:
        body["Name"] = name
    return body
