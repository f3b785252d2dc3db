"""HTTP only: one session, timeouts, retries with backoff, polite pauses, envelope checks."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from indexer import DEFAULT_HUB_URL, DEFAULT_INFERENCE_URL, __version__

log = logging.getLogger("indexer.fetch")

USER_AGENT = f"indexer/{__version__} (ModelScope catalog indexer; +https://github.com/indexer/indexer)"
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0
# Real answers nest a few levels; Python's json gives up (RecursionError) near
# 1,000, so one hostile item could sink its whole page on every crawl (issue 6).
MAX_JSON_DEPTH = 64
JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# A real page of 100 items is well under 1 MB (docs/modelscope-api.md §2.3); 16 MB
# leaves room for a hub that grows its items tenfold, and bounds what one
# hostile answer (a gzip bomb, a body that never ends) can make us hold.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
READ_CHUNK = 64 * 1024


class HubError(Exception):
    """A request that failed; the message is one line, without secrets.

    `kind` says what went wrong (timeout, too_large, http, success_false,
    envelope, network, stopped, budget, ...) and `status` the HTTP status, or None.
    """

    default_kind = "hub"

    def __init__(self, message, kind=None, status=None):
        super().__init__(message)
        self.kind = kind or self.default_kind
        self.status = status


class EnvelopeError(HubError):
    """Still failing after every retry: a transient fault, or an answer without our envelope."""


class Stopped(HubError):
    """The fetcher's stop event is set (a scheduler shutting down); no more requests."""

    default_kind = "stopped"

    def __init__(self, message="stopped: the process is shutting down", **kwargs):
        super().__init__(message, **kwargs)


class BudgetSpent(HubError):
    """The fetcher has sent all the requests its `max_requests` allows."""

    default_kind = "budget"


class _Problem(Exception):
    """One try that failed in a way worth retrying."""

    def __init__(self, text, kind, status=None, retry_after=None):
        super().__init__(text)
        self.kind, self.status, self.retry_after = kind, status, retry_after


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
    """Requests to the hub and the inference service, with pauses, retries, limits and counters.

    Every try has `timeout` seconds for the whole answer (connect, headers and
    body together), and no single read waits longer than `timeout` either, so a
    try ends at most about 2 x `timeout` after it started, however slowly the
    hub drips. `stop` (an Event) ends pauses and requests at once; `max_requests`
    caps how many requests this fetcher may ever send, retries included.
    """

    session: requests.Session
    hub_url: str = DEFAULT_HUB_URL
    inference_url: str = DEFAULT_INFERENCE_URL
    delay: float = 0.5
    max_retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0
    sleep: object = time.sleep
    clock: object = time.monotonic
    stop: threading.Event | None = None
    max_requests: int | None = None
    max_answer_bytes: int = MAX_ANSWER_BYTES
    requests_made: int = 0
    retries_made: int = 0
    pruned_answers: int = 0
    _last_at: dict = field(default_factory=dict)
    _one_at_a_time: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                           compare=False)

    def __post_init__(self):
        self.hub_url = self.hub_url.rstrip("/")
        self.inference_url = self.inference_url.rstrip("/")

    def pace_after(self, other):
        """Keep the polite pause after `other`'s requests too: both talk to the same hosts."""
        self._last_at.update(other._last_at)

    def _wait(self, seconds):
        # Event.wait sleeps like time.sleep but wakes when the process shuts down.
        if self.stop is not None:
            if self.stop.wait(seconds):
                raise Stopped()
        else:
            self.sleep(seconds)

    def _check_stop(self):
        if self.stop is not None and self.stop.is_set():
            raise Stopped()

    def _pause(self, url):
        # Politeness (docs/modelscope-api.md §8): keep `delay` between two requests to one host.
        host = urlsplit(url).netloc
        last = self._last_at.get(host)
        if last is not None and self.delay > 0:
            wait = self.delay - (self.clock() - last)
            if wait > 0:
                self._wait(wait)
        self._last_at[host] = self.clock()

    def _backoff(self, attempt, retry_after=None):
        if retry_after is not None:
            return retry_after
        base = self.backoff * (2 ** attempt)
        return min(base, 60.0) * (0.5 + random.random() / 2)

    def _budget_spent(self):
        return self.max_requests is not None and self.requests_made >= self.max_requests

    def send(self, method, url, body=None):
        """The first try of `request_json(method, url, body, sent=...)`, read but not decoded.

        So that one thread can wait on the hub while another decodes the answer before:
        requests still go one at a time (a lock), whichever thread sends them, and keep
        the pause between them.
        """
        what = f"{method} {redact_url(url)}"
        self._check_stop()
        if self._budget_spent():
            raise self._unsent(what)
        return self._send(method, url, body, what)

    def _unsent(self, what):
        return BudgetSpent(f"{what} not sent: the budget of {self.max_requests} requests is spent")

    def request_json(self, method, url, body=None, envelope=True, sent=None):
        """Send one request and return its JSON, retrying passing trouble; raise HubError when spent.

        `sent`: the first try, already made by `send`; it is decoded here, and retried
        like any other.
        """
        what = f"{method} {redact_url(url)}"
        problem = _Problem("no answer", "network")
        tries = 0
        for attempt in range(self.max_retries + 1):
            if attempt == 0 and sent is not None:
                answer = sent
            else:
                self._check_stop()
                if self._budget_spent():
                    if not tries:
                        raise self._unsent(what)
                    break  # the budget cuts the retries short: report what the last try met
                if attempt:
                    self.retries_made += 1
                answer = self._send(method, url, body, what)
            tries += 1
            try:
                payload = self._decode(answer, what)
                kind, reason = envelope_problem(payload) if envelope else (None, None)
                if reason is None:
                    return payload
                problem = _Problem(reason, kind)
            except _Problem as failed:
                problem = failed
            if attempt < self.max_retries and not self._budget_spent():
                wait = self._backoff(attempt, problem.retry_after)
                log.info("%s: %s; retrying in %.1fs", what, problem, wait)
                self._wait(wait)
        plural = "try" if tries == 1 else "tries"
        raise EnvelopeError(f"{what} failed after {tries} {plural}: {problem}", kind=problem.kind,
                            status=problem.status)

    def _send(self, method, url, body, what):
        """One try, paced and counted: its read answer, or the _Problem worth retrying it for.

        HubError for a fault not worth it. One at a time, whichever thread asks.
        """
        with self._one_at_a_time:
            self._pause(url)
            self._check_stop()
            self.requests_made += 1
            try:
                return self._read(method, url, body, what)
            except _Problem as failed:
                return failed

    def _read(self, method, url, body, what):
        """One request's answer, read whole; _Problem for a fault worth retrying, HubError otherwise."""
        started = self.clock()
        try:
            # (connect, read): connecting and the first byte are each bounded by
            # `timeout`; the body is bounded as a whole in _read_body.
            response = self.session.request(method, url, json=body, stream=True,
                                            timeout=(self.timeout, self.timeout))
        except requests.Timeout:
            raise _Problem(f"timed out after {self.timeout:g}s", "timeout") from None
        except requests.RequestException as error:
            raise _Problem(f"could not connect ({type(error).__name__})", "network") from None
        with response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _Problem(f"HTTP {status}", "http", status,
                               parse_retry_after(response.headers.get("Retry-After")))
            if status >= 400:
                raise HubError(f"{what} answered HTTP {status}", kind="http", status=status)
            self._read_body(response, started, what)
        return response

    def _read_body(self, response, started, what):
        """Read the (decoded) body into the response, within the deadline and the size cap."""
        cap = self.max_answer_bytes
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if declared.isdigit() and int(declared) > cap and not encoded:
            raise self._too_large(what, response.status_code)
        buffer = bytearray()
        try:
            while True:
                # read1 returns as soon as any bytes arrive, and inflates at most
                # READ_CHUNK at a time, so a drip or a gzip bomb never holds us.
                chunk = response.raw.read1(READ_CHUNK, decode_content=True)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > cap:
                    raise self._too_large(what, response.status_code)
                if self.clock() - started > self.timeout:
                    raise _Problem(f"answer took longer than {self.timeout:g}s", "timeout",
                                   response.status_code)
                self._check_stop()
        except urllib3.exceptions.ReadTimeoutError:
            raise _Problem(f"timed out after {self.timeout:g}s", "timeout",
                           response.status_code) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _Problem(f"the answer was cut short ({type(error).__name__})", "network",
                           response.status_code) from None
        # Hand the bytes to requests so `.json()` and `.text` decode as before.
        response._content = bytes(buffer)
        response._content_consumed = True

    def _too_large(self, what, status):
        # Not retried: the same request would most likely get the same answer.
        return HubError(f"{what}: answer too large (over {self.max_answer_bytes:,} bytes)",
                        kind="too_large", status=status)

    def _decode(self, answer, what):
        """The JSON of a read answer; a _Problem (worth a retry) as it was, or for no JSON."""
        if isinstance(answer, _Problem):
            raise answer
        try:
            return self._json(answer, what)
        except (ValueError, RecursionError, requests.RequestException):
            raise _Problem("an answer that is not JSON (or was cut short)", "envelope",
                           answer.status_code) from None

    def _json(self, response, what):
        try:
            return response.json()
        except RecursionError:
            payload = json.loads(prune_deep_json(response.text))
        self.pruned_answers += 1
        log.warning("%s: JSON nested deeper than %d levels; the deeper values were read as null",
                    what, MAX_JSON_DEPTH)
        return payload

    def send_models_page(self, body):
        """The first try of `fetch_models_page(body, sent=...)` (see `send`)."""
        return self.send("PUT", f"{self.hub_url}/api/v1/dolphin/models", body)

    def fetch_models_page(self, body, sent=None):
        """`Data` of one dolphin list page (endpoint A, PUT only)."""
        return self.request_json("PUT", f"{self.hub_url}/api/v1/dolphin/models", body,
                                 sent=sent)["Data"]

    def fetch_inference_list(self):
        """The OpenAI list the inference service answers at `/models` (endpoint F)."""
        return self.request_json("GET", f"{self.inference_url}/models", envelope=False)

    def fetch_task_list(self):
        """The task taxonomy (endpoint K)."""
        return self.request_json("GET", f"{self.hub_url}/api/v1/tasks")


def check_envelope(payload):
    """None when a hub answer is a success envelope, else a one-line reason (docs/modelscope-api.md §12)."""
    return envelope_problem(payload)[1]


def envelope_problem(payload):
    """(kind, one-line reason) of an answer that is not a success envelope; (None, None) if it is."""
    if not isinstance(payload, dict):
        return "envelope", "an answer that is not a JSON object"
    success = payload.get("Success", payload.get("success"))
    code = payload.get("Code", payload.get("code"))
    if success is not True or code not in (200, "200", 0, "0", None):
        message = payload.get("Message") or payload.get("message") or ""
        message = json.dumps(str(message)[:120], ensure_ascii=False)
        return "success_false", f"Success: false (Code {code!r}, Message {message})"
    if "Data" not in payload:
        return "envelope", "an envelope without `Data`"
    return None, None


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
