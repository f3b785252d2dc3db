"""Pure: hub answers (providers, config.json, chat template, model name) in, capability columns out.

No network, no database, no clock. Every parser takes what the hub sent, however
broken, and never raises: a value it cannot read is None. The facts come from
docs/capabilities.md (section numbers below); they describe what the *model* can
do, which is not always what the API-Inference service accepts (§4.3, §5).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

COLUMNS = ("providers", "cost_per_call", "cost_tier", "context_length", "context_length_max",
           "vision", "tools", "reasoning", "params_b")

# The provider that is ModelScope's own free API-Inference service; only it
# carries a 魔粒 price (docs/capabilities.md §3.2, §3.3).
MODELSCOPE_PROVIDER = "ModelScope"

# Keys only a model's own config.json has.
_MODEL_KEYS = ("architectures", "model_type", "hidden_size", "num_hidden_layers", "text_config", "llm_config",
               "vision_config")
# Hostile-input bounds: anything outside is treated as unreadable, not clamped.
MAX_TEXT = 20_000_000  # tokenizer_config.json files run to a few MB (added tokens)
MAX_PROVIDERS = 64
MAX_NAME = 100
MAX_COST = 10_000  # 魔粒 per call; the docs name 0.5, 1 and 2 (§5)
MAX_TOKENS = 100_000_000  # context lengths
MAX_DIM = 10_000_000  # hidden size, vocabulary, layers, experts
MAX_PARAMS_B = 100_000.0

# Vision-language classes name themselves (docs/capabilities.md §2, §4.2). Case
# matters: "vl" also occurs inside ordinary words.
_VISION_ARCH = re.compile(r"VL|Vision|Llava|MiniCPMV|Idefics|Pixtral|Mllama|Glm4v|Gemma3ForConditional")
# Jinja tags that branch on the `tools` or `tool_calls` variables (docs/capabilities.md §4.3).
_JINJA_TAG = re.compile(r"\{[%{](.*?)[%}]\}", re.DOTALL)
_TOOL_VAR = re.compile(r"\btools?_?calls?\b|\btools\b")
# Names that mark a model that thinks without a switch (docs/capabilities.md §4.3, caveat).
_REASONING_NAME = re.compile(r"(?:^|[-_.])(?:Thinking|R1|QwQ|Reasoning|Reasoner)(?:$|[-_.])", re.IGNORECASE)
_SIZE = r"(\d{1,5}(?:\.\d{1,3})?)"
_TOTAL_ACTIVE = re.compile(rf"(?:^|[-_. ]){_SIZE}B[-_]A{_SIZE}B(?:$|[-_. ])", re.IGNORECASE)
_EXPERTS_X = re.compile(rf"(?:^|[-_. ])(\d{{1,3}})x{_SIZE}B(?:$|[-_. ])", re.IGNORECASE)
_PLAIN = re.compile(rf"(?:^|[-_. ]){_SIZE}([BM])(?:$|[-_. ])", re.IGNORECASE)


def parse_providers(answer: Any) -> dict | None:
    """Who serves a model and what one call costs, from a `list_model_providers` answer.

    `answer` is the decoded JSON (or its text). Returns {"providers", "cost_per_call",
    "cost_tier"}, or None when the answer cannot tell (docs/capabilities.md §3.3).
    """
    answer = _as_json(answer)
    if not isinstance(answer, dict) or answer.get("Success") is False:
        return None
    data = answer.get("Data")
    if not isinstance(data, dict) or "Providers" not in data:
        return None
    raw = data["Providers"]
    # `Providers: null` is the hub saying nobody serves the model (docs/capabilities.md §3.3).
    if raw is None:
        raw = []
    if not isinstance(raw, list) or len(raw) > MAX_PROVIDERS:
        return None
    names: list[str] = []
    cost = tier = None
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        name = entry.get("Name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            continue
        name = name.strip()
        if name in names:
            continue
        names.append(name)
        if name == MODELSCOPE_PROVIDER:
            cost = _number(entry.get("EstimatedMagicGrainCost"), 0, MAX_COST)
            tier = _short_str(entry.get("CostTier"))
    return {"providers": names, "cost_per_call": cost, "cost_tier": tier}


def parse_config(text: Any) -> dict:
    """Context lengths, vision tower, experts and a size estimate from a config.json (§4.2)."""
    out: dict[str, Any] = {"context_length": None, "context_length_max": None, "vision": None,
                           "moe": None, "params_b": None}
    top = _as_json(text)
    if not isinstance(top, dict):
        return out
    lm = _language_block(top)
    native, extended = _context(lm, top)
    out.update(context_length=native, context_length_max=extended)
    # "No vision tower" and "not MoE" are claims only a real model config makes;
    # a file with none of these keys says nothing either way.
    if not any(key in top for key in _MODEL_KEYS):
        return out
    experts = _first_int(lm, ("num_experts", "n_routed_experts", "num_local_experts", "num_routed_experts"))
    out.update(vision=int(_has_vision(top)), moe=int(bool(experts and experts > 1)),
               params_b=_estimate_params_b(lm, experts))
    return out


def parse_chat_template(text: Any) -> dict:
    """Tools and thinking from a tokenizer_config.json or a chat_template.jinja (§4.3).

    Returns {"tools", "reasoning", "thinking_switch"} as 0/1, or None each when no
    template could be read.
    """
    template = _template_text(text)
    if template is None:
        return {"tools": None, "reasoning": None, "thinking_switch": None}
    tags = " ".join(_JINJA_TAG.findall(template))
    tools = bool(_TOOL_VAR.search(tags)) or "<tool_call>" in template
    switch = "enable_thinking" in template
    reasoning = switch or "<think>" in template or "reasoning_content" in template
    return {"tools": int(tools), "reasoning": int(reasoning), "thinking_switch": int(switch)}


def params_from_name(name: Any) -> dict:
    """Total and active parameters (billions) named in a model name: 235B-A22B, 7B, 1.5B, 500M, 8x7B.

    `NxMB` gives N × M, an upper bound: experts share attention, so Mixtral 8x7B
    is really 46.7B. The first size in the name wins.
    """
    out: dict[str, float | None] = {"total_b": None, "active_b": None}
    if not isinstance(name, str) or len(name) > 300:
        return out
    base = name.rsplit("/", 1)[-1]
    if m := _TOTAL_ACTIVE.search(base):
        total, active = _bounded(float(m.group(1))), _bounded(float(m.group(2)))
        if total is not None and active is not None and active <= total:
            out.update(total_b=total, active_b=active)
        return out
    if m := _EXPERTS_X.search(base):
        out["total_b"] = _bounded(int(m.group(1)) * float(m.group(2)))
        return out
    if m := _PLAIN.search(base):
        size = float(m.group(1)) / (1000 if m.group(2).upper() == "M" else 1)
        out["total_b"] = _bounded(size)
    return out


def build_capabilities(name: Any = None, *, providers: dict | None = None, config: dict | None = None,
                       template: dict | None = None, tasks: Any = ()) -> dict:
    """The capability columns of one model, from the parsers' results; None where unknown.

    `providers` is parse_providers' result (None: not asked, or no answer),
    `config` parse_config's, `template` parse_chat_template's, `tasks` the hub's
    task names. Which source wins for each column is said beside it.
    """
    config = config or {}
    template = template or {}
    task_names = _task_names(tasks)
    out = dict.fromkeys(COLUMNS)
    if providers is not None:
        out["providers"] = json.dumps(providers.get("providers") or [], ensure_ascii=False)
        out["cost_per_call"] = providers.get("cost_per_call")
        out["cost_tier"] = providers.get("cost_tier")
    out["context_length"] = config.get("context_length")
    out["context_length_max"] = config.get("context_length_max")
    # A vision task on the hub says so even when config.json is missing
    # (docs/capabilities.md §2, §10 row 2).
    if task_names & {"image-text-to-text", "visual-question-answering", "video-text-to-text"}:
        out["vision"] = 1
    else:
        out["vision"] = config.get("vision")
    out["tools"] = template.get("tools")
    # Thinking variants may have no switch in their template, so the name is a
    # second, positive-only hint (docs/capabilities.md §4.3 caveat).
    if _REASONING_NAME.search(name.rsplit("/", 1)[-1] if isinstance(name, str) else ""):
        out["reasoning"] = 1
    else:
        out["reasoning"] = template.get("reasoning")
    # The estimate from config.json reads the real shapes; the name is the fallback.
    out["params_b"] = config.get("params_b") or params_from_name(name)["total_b"]
    return out


# -- helpers -----------------------------------------------------------------------


def _as_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return value
    if len(value) > MAX_TEXT:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and integers past Python's digit limit.
        return None


def _template_text(text: Any) -> str | None:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    stripped = text.lstrip()
    if not stripped.startswith("{") or stripped.startswith(("{%", "{{", "{#")):
        return text  # a chat_template.jinja file
    doc = _as_json(text)
    if not isinstance(doc, dict):
        return None
    raw = doc.get("chat_template")
    if isinstance(raw, str):
        return raw or None
    # A list of named templates ("default", "tool_use", ...): read them all.
    if isinstance(raw, list):
        parts = [t["template"] for t in raw if isinstance(t, dict) and isinstance(t.get("template"), str)]
        return "\n".join(parts) or None
    return None


def _language_block(top: dict) -> dict:
    # Multimodal wrappers nest the language model; read it when the top level
    # lacks the shapes (docs/capabilities.md §4.2).
    if "num_hidden_layers" in top and "hidden_size" in top:
        return top
    for key in ("text_config", "llm_config"):
        inner = top.get(key)
        if isinstance(inner, dict):
            return inner
    return top


def _context(lm: dict, top: dict) -> tuple[int | None, int | None]:
    mpe = _int(lm.get("max_position_embeddings"), 1, MAX_TOKENS)
    if mpe is None and lm is not top:
        mpe = _int(top.get("max_position_embeddings"), 1, MAX_TOKENS)
    rope = None
    for block in (lm, top):
        for key in ("rope_scaling", "rope_parameters"):
            if isinstance(block.get(key), dict):
                rope = block[key]
                break
        if rope is not None:
            break
    original = _int(rope.get("original_max_position_embeddings"), 1, MAX_TOKENS) if rope else None
    if original is None:
        return mpe, None
    # With rope scaling the window before scaling is the native one, and the
    # extended one is the larger of the stated maximum and original × factor
    # (docs/capabilities.md §4.2).
    factor = _number(rope.get("factor"), 0, 1024) if rope else None
    scaled = int(original * factor) if factor is not None and factor > 1 else None
    extended = max(v for v in (mpe, scaled, 0) if v is not None)
    return original, (extended if original < extended <= MAX_TOKENS else None)


def _has_vision(top: dict) -> bool:
    # A text_config wrapper alone is not counted: audio models (Qwen2-Audio) use
    # one too, with audio_config instead of vision_config.
    if isinstance(top.get("vision_config"), dict):
        return True
    archs = top.get("architectures")
    if isinstance(archs, list):
        return any(isinstance(a, str) and len(a) < 200 and _VISION_ARCH.search(a) for a in archs)
    return False


def _estimate_params_b(lm: dict, experts: int | None) -> float | None:
    """A rough headline size of the language model in billions, ±5% (docs/capabilities.md §4.2).

    Per layer: attention 2·h·(H·d) + 2·h·(K·d) (q, o and k, v projections, with
    H heads, K key-value heads, d = head_dim or h/H), plus a gated MLP of three
    h × I matrices; an MoE layer has E experts and S shared experts of
    moe_intermediate_size and a router h·E, and the first `first_k_dense_replace`
    layers stay dense. Plus embeddings V·h, twice unless tie_word_embeddings.
    Norms, biases and any vision tower are left out.
    """
    h = _int(lm.get("hidden_size"), 1, MAX_DIM)
    layers = _int(lm.get("num_hidden_layers"), 1, 100_000)
    vocab = _int(lm.get("vocab_size"), 1, MAX_DIM)
    inter = _int(lm.get("intermediate_size"), 1, MAX_DIM)
    moe_inter = _int(lm.get("moe_intermediate_size"), 1, MAX_DIM) or inter
    dense_width = inter or moe_inter
    if h is None or layers is None or vocab is None or dense_width is None:
        return None
    heads = _int(lm.get("num_attention_heads"), 1, MAX_DIM)
    kv = _int(lm.get("num_key_value_heads"), 1, MAX_DIM) or heads
    head_dim = _int(lm.get("head_dim"), 1, MAX_DIM) or (h // heads if heads else None)
    attention = 4 * h * h
    if heads and kv and head_dim:
        attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    dense_mlp = 3 * h * dense_width
    if experts and experts > 1 and moe_inter:
        shared = _first_int(lm, ("n_shared_experts", "num_shared_experts")) or 0
        dense_layers = min(_int(lm.get("first_k_dense_replace"), 0, layers) or 0, layers)
        moe_mlp = (experts + shared) * 3 * h * moe_inter + h * experts
        blocks = dense_layers * (attention + dense_mlp) + (layers - dense_layers) * (attention + moe_mlp)
    else:
        blocks = layers * (attention + dense_mlp)
    tied = lm.get("tie_word_embeddings") is True
    total = blocks + vocab * h * (1 if tied else 2)
    return _bounded(_three_figures(total / 1e9))


def _first_int(block: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = _int(block.get(key), 0, MAX_DIM)
        if value is not None:
            return value
    return None


def _int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def _short_str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= MAX_NAME:
        return value.strip()
    return None


def _bounded(size: float) -> float | None:
    return size if 0 < size <= MAX_PARAMS_B else None


def _three_figures(x: float) -> float:
    if x <= 0:
        return 0.0
    return round(x, max(0, 2 - math.floor(math.log10(x))))


def _task_names(tasks: Any) -> set[str]:
    if isinstance(tasks, str):
        decoded = _as_json(tasks)
        tasks = decoded if isinstance(decoded, list) else [tasks]
    if not isinstance(tasks, (list, tuple, set, frozenset)):
        return set()
    names = set()
    for t in tasks:
        if isinstance(t, dict):
            t = t.get("Name")
        if isinstance(t, str) and t:
            names.add(t)
    return names
