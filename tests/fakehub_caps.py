"""Fake hub endpoints for capabilities: list_model_providers and raw repository files.

Behaviour follows docs/capabilities.md §3 and §4.1; where that is unsure a
switch picks it. Standard library only. `CapsHub.respond` answers one request
and is what tests/fakehub.py mounts; `CapsServer` serves it alone on 127.0.0.1
for tests that need nothing else.

    caps = CapsHub(default_models())
    with CapsServer(caps) as server:
        requests.get(server.hub_url + PROVIDERS_PATH, params={"ModelId": "Qwen/Qwen3-8B"})
    caps.counts["providers"]  # requests per endpoint, and per file as "repo:config.json"

Switches (keyword arguments; also plain attributes, changeable at run time)
--------------------------------------------------------------------------
null_providers   every providers answer is `Providers: null` (nobody serves it)
providers_500    True, or a set of model IDs, answered HTTP 500
repo_500         True, or a set of model IDs, whose file requests answer HTTP 500
missing_files    file paths answered 404 for every model
unknown_id_500   an ID with no entry answers 500 (reported, §3.3) instead of `Providers: null`
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

PROVIDERS_PATH = "/api/v1/inference/list_model_providers"
_REPO = re.compile(r"^/api/v1/models/([^/]+)/([^/]+)/repo/?$")

DEFAULT_SWITCHES: dict[str, Any] = {
    "null_providers": False,
    "providers_500": False,
    "repo_500": False,
    "missing_files": frozenset(),
    "unknown_id_500": True,
}


def modelscope_provider(cost: float = 1, tier: str = "standard") -> dict:
    """The ModelScope provider entry as the 2026-08 report shows it (§3.1, §3.2)."""
    return {"ChineseName": "魔搭社区", "Name": "ModelScope", "Hosted": True, "Logo": "",
            "EstimatedMagicGrainCost": cost, "CostTier": tier}


def third_party(name: str) -> dict:
    return {"ChineseName": name, "Name": name, "Hosted": False, "Logo": ""}


def dense_config(**extra: Any) -> dict:
    """A Qwen2.5-7B-shaped config.json (7.6B parameters, 32,768 positions)."""
    cfg: dict[str, Any] = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
                           "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                           "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
                           "tie_word_embeddings": False}
    cfg.update(extra)
    return cfg


def moe_config(**extra: Any) -> dict:
    """A Qwen3-235B-A22B-shaped config.json with yarn rope scaling (§4.2's Qwen3-MoE example)."""
    cfg: dict[str, Any] = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
                           "hidden_size": 4096, "intermediate_size": 12288, "moe_intermediate_size": 1536,
                           "num_hidden_layers": 94, "num_attention_heads": 64, "num_key_value_heads": 4,
                           "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936,
                           "max_position_embeddings": 40960, "tie_word_embeddings": False,
                           "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                            "original_max_position_embeddings": 32768}}
    cfg.update(extra)
    return cfg


def text_config_wrapper(inner: dict) -> dict:
    """Qwen3-VL style: the language model under text_config, a vision tower beside it (§4.2)."""
    return {"architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
            "text_config": inner, "vision_config": {"depth": 27, "hidden_size": 1152}}


def llm_config_wrapper(inner: dict) -> dict:
    """InternVL style: the language model under llm_config (§4.2)."""
    return {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
            "llm_config": inner, "vision_config": {"hidden_size": 1024}}


# Trimmed Qwen-style templates (§4.3): with tools and the thinking switch, with
# tools only, and with neither.
TEMPLATE_TOOLS_THINKING = (
    "{%- if tools %}{{- '<|im_start|>system\\n# Tools\\n<tools>' }}{%- for tool in tools %}"
    "{{- tool | tojson }}{%- endfor %}{{- '</tools>\\n<tool_call>...</tool_call>' }}{%- endif %}"
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)
TEMPLATE_TOOLS = (
    "{%- if tools %}{{- '<|im_start|>system\\n<tools>' }}{%- for tool in tools %}{{- tool | tojson }}"
    "{%- endfor %}{{- '</tools>' }}{%- endif %}{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content }}{%- endfor %}"
)
TEMPLATE_PLAIN = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tokenizer_config(template: Any) -> str:
    return json.dumps({"model_max_length": 131072, "chat_template": template, "eos_token": "<|im_end|>"})


def default_models() -> dict[str, dict]:
    """Model ID -> {"providers": list | None, "files": {path: text}}, one per quirk."""
    return {
        # Plain dense LLM, template in tokenizer_config.json, no tools, no thinking.
        "Qwen/Qwen2.5-7B-Instruct": {
            "providers": [modelscope_provider(1, "standard"), third_party("DashScope")],
            "files": {"config.json": json.dumps(dense_config()),
                      "tokenizer_config.json": tokenizer_config(TEMPLATE_PLAIN)}},
        # MoE with rope scaling; tools and thinking; template as chat_template.jinja.
        "Qwen/Qwen3-235B-A22B": {
            "providers": [modelscope_provider(2, "ultra")],
            "files": {"config.json": json.dumps(moe_config()),
                      "tokenizer_config.json": json.dumps({"model_max_length": 131072}),
                      "chat_template.jinja": TEMPLATE_TOOLS_THINKING}},
        # Vision-language, text_config wrapper; template as a named list.
        "Qwen/Qwen3-VL-8B-Instruct": {
            "providers": [modelscope_provider(1, "standard")],
            "files": {"config.json": json.dumps(text_config_wrapper(dense_config(max_position_embeddings=262144))),
                      "tokenizer_config.json": tokenizer_config(
                          [{"name": "default", "template": TEMPLATE_PLAIN},
                           {"name": "tool_use", "template": TEMPLATE_TOOLS}])}},
        # InternVL wrapper; served by third parties only.
        "OpenGVLab/InternVL3-8B": {
            "providers": [third_party("DashScope")],
            "files": {"config.json": json.dumps(llm_config_wrapper(dense_config())),
                      "tokenizer_config.json": tokenizer_config(TEMPLATE_PLAIN)}},
        # Nobody serves it, and its repository lacks every file we read.
        "Qwen/Qwen3.6-35B-A3B": {"providers": None, "files": {}},
    }


def models_for(model_ids: Any) -> dict[str, dict]:
    """Give each ID (a catalog's API models, say) one of default_models()' quirks, in turn, sorted by ID."""
    quirks = list(default_models().values())
    return {mid: copy.deepcopy(quirks[i % len(quirks)]) for i, mid in enumerate(sorted(model_ids))}


class CapsHub:
    """The two capability endpoints over a table of models; counts requests per endpoint."""

    null_providers: bool
    providers_500: bool | set
    repo_500: bool | set
    missing_files: frozenset | set
    unknown_id_500: bool

    def __init__(self, models: dict[str, dict] | None = None, **switches: Any):
        unknown = set(switches) - set(DEFAULT_SWITCHES)
        if unknown:
            raise TypeError(f"unknown CapsHub switches: {sorted(unknown)}")
        self.models = copy.deepcopy(models) if models is not None else default_models()
        for key, value in DEFAULT_SWITCHES.items():
            setattr(self, key, switches.get(key, value))
        self.counts: Counter = Counter()
        self.log: list[tuple[str, str, str | None]] = []  # (endpoint, model ID, file path)
        self._lock = threading.Lock()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def respond(self, method: str, raw_path: str) -> tuple[int, Any, str] | None:
        """(status, body, content type) for a request this mounts, else None for the caller to route."""
        path, _, query = raw_path.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if method == "GET" and path.rstrip("/") == PROVIDERS_PATH:
            return self._providers(params.get("ModelId", ""))
        m = _REPO.match(path)
        if method == "GET" and m:
            return self._file(f"{m.group(1)}/{m.group(2)}", params.get("FilePath", ""))
        return None

    def _count(self, endpoint: str, model_id: str, file_path: str | None = None) -> None:
        with self._lock:
            self.counts[endpoint] += 1
            if file_path is not None:
                self.counts[f"{endpoint}:{file_path}"] += 1
            self.log.append((endpoint, model_id, file_path))

    @staticmethod
    def _hit(switch: Any, model_id: str) -> bool:
        return switch is True or (isinstance(switch, (set, frozenset, list, tuple)) and model_id in switch)

    def _providers(self, model_id: str) -> tuple[int, Any, str]:
        self._count("providers", model_id)
        model = self.models.get(model_id)
        if self._hit(self.providers_500, model_id) or (model is None and self.unknown_id_500):
            return 500, _envelope_error(500, "Internal Server Error"), _JSON
        providers = None if model is None or self.null_providers else model.get("providers")
        data = {"Providers": copy.deepcopy(providers), "TotalCount": len(providers or [])}
        return 200, {"Code": 200, "Data": data, "Message": "success", "RequestId": str(uuid.uuid4()),
                     "Success": True}, _JSON

    def _file(self, model_id: str, file_path: str) -> tuple[int, Any, str]:
        self._count("repo", model_id, file_path)
        model = self.models.get(model_id)
        if self._hit(self.repo_500, model_id):
            return 500, _envelope_error(500, "Internal Server Error"), _JSON
        if model is None:
            # The same envelope the detail endpoint sends for a missing repository (§4.1).
            return 404, _envelope_error(10010205001, "获取模型信息失败，信息：record not found"), _JSON
        text = model.get("files", {}).get(file_path)
        if text is None or file_path in self.missing_files:
            return 404, _envelope_error(10010205001, f"file {file_path} not found"), _JSON
        kind = _JSON if file_path.endswith(".json") else "text/plain;charset=UTF-8"
        return 200, text, kind


_JSON = "application/json;charset=UTF-8"


def _envelope_error(code: int, message: str) -> dict:
    return {"Code": code, "Data": None, "Message": message, "RequestId": str(uuid.uuid4()), "Success": False}


class CapsServer:
    """CapsHub alone over real HTTP on 127.0.0.1 (an ephemeral port); a context manager."""

    def __init__(self, caps: CapsHub):
        self.caps = caps
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def hub_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CapsServer:
        handler = type("_BoundCapsHandler", (_CapsHandler,), {"caps": self.caps})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _CapsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    caps: CapsHub

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        answer = self.caps.respond(self.command, self.path)
        status, payload, content_type = answer if answer is not None else (404, {"Code": 404}, _JSON)
        data = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
