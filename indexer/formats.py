"""Pure writers: catalog rows in, the files models.dev, LiteLLM, LobeChat and Cherry Studio read out.

They touch only the stream or folder they are given. Each row is a dict with
model_id, name, kind, the capability columns (indexer.capabilities.COLUMNS),
created_at, updated_at and tasks. The capabilities describe the model, not what
the service accepts (docs/capabilities.md §4.3, §5).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

PROVIDER = "modelscope"
CHERRY_MAX = 200  # the add-model box's maxLength (docs/capabilities.md §7.4)
# A path segment we are willing to turn into a folder or file name.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LITELLM_MODES = {"chat": "chat", "image": "image_generation", "image-edit": "image_generation",
                  "embedding": "embedding"}


@dataclass
class Written:
    """What a writer wrote, and each model it left out with the reason."""

    written: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


def split_model_id(model_id: Any) -> tuple[str, str] | None:
    """(Owner, Name) when the ID is two safe path segments, else None."""
    if not isinstance(model_id, str):
        return None
    parts = model_id.split("/")
    if len(parts) != 2 or not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        return None
    return parts[0], parts[1]


def write_models_dev(rows: Iterable[dict], out_dir: str | os.PathLike) -> Written:
    """One models.dev provider-model TOML per chat model under providers/modelscope/models/ (§7.1).

    Required fields models.dev defines are always written; optional ones only
    when known. A model without a context length or a date is left out, since
    `limit.context`, `release_date` and `last_updated` are required.
    """
    result = Written()
    base = os.path.join(os.fspath(out_dir), "providers", PROVIDER, "models")
    for row in rows:
        mid = str(row.get("model_id"))
        doc = _models_dev_fields(row, result)
        if doc is None:
            continue
        owner, name = split_model_id(mid)  # type: ignore[misc]  # checked in _models_dev_fields
        folder = os.path.join(base, owner)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name + ".toml"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(doc)
        result.written += 1
    return result


def _models_dev_fields(row: dict, result: Written) -> str | None:
    mid = str(row.get("model_id"))
    parts = split_model_id(row.get("model_id"))
    if parts is None:
        result.skipped[mid] = "model ID is not a safe Owner/Name path"
        return None
    if row.get("kind") != "chat":
        result.skipped[mid] = "not a chat model"
        return None
    context = _positive_int(row.get("context_length"))
    if context is None:
        result.skipped[mid] = "context length unknown"
        return None
    released = _date(row.get("created_at"))
    updated = _date(row.get("updated_at")) or released
    if released is None or updated is None:
        result.skipped[mid] = "dates unknown"
        return None
    reasoning = row.get("reasoning") == 1
    vision = row.get("vision") == 1
    # Required booleans: an unknown is written false ("not known to support"),
    # the safe reading for a client deciding what to send.
    lines = [
        f"name = {toml_string(_display_name(row, parts[1]))}",
        f"release_date = {toml_string(released)}",
        f"last_updated = {toml_string(updated)}",
        f"attachment = {_toml_bool(vision)}",
        f"reasoning = {_toml_bool(reasoning)}",
    ]
    if reasoning:
        # Required when reasoning = true. Whether the service takes a switch is
        # not known, so no option is claimed (what models.dev writes for the
        # always-thinking ModelScope models, §7.1).
        lines.append("reasoning_options = []")
    lines += [
        f"tool_call = {_toml_bool(row.get('tools') == 1)}",
        "open_weights = true",
        "",
        # Free within the daily allowance; models.dev prices are USD per million
        # tokens and ModelScope's 魔粒 per call has no field there (docs/capabilities.md §8).
        "[cost]",
        "input = 0",
        "output = 0",
        "",
        "[limit]",
        f"context = {context:_}",
        # limit.output is required and not published by ModelScope; models.dev's
        # own sync falls back to the context in that case (docs/capabilities.md §7.1).
        f"output = {context:_}",
        "",
        "[modalities]",
        f"input = {toml_array(['text', 'image'] if vision else ['text'])}",
        f"output = {toml_array(['text'])}",
    ]
    return "\n".join(lines) + "\n"


def write_litellm(rows: Iterable[dict], stream: IO[str]) -> Written:
    """A LiteLLM model-map JSON object keyed modelscope/{Owner}/{Name} (§7.2)."""
    result = Written()
    entries: dict[str, dict] = {}
    for row in rows:
        mid = str(row.get("model_id"))
        mode = _LITELLM_MODES.get(str(row.get("kind")))
        if split_model_id(row.get("model_id")) is None:
            result.skipped[mid] = "model ID is not a safe Owner/Name path"
            continue
        if mode is None:
            result.skipped[mid] = "no LiteLLM mode for this kind"
            continue
        entry: dict[str, Any] = {"litellm_provider": PROVIDER, "mode": mode}
        context = _positive_int(row.get("context_length"))
        if context is not None:
            entry["max_input_tokens"] = context
        # Free within the daily allowance, in LiteLLM's USD per token (docs/capabilities.md §8).
        entry["input_cost_per_token"] = 0
        entry["output_cost_per_token"] = 0
        # Unknown flags are left out: LiteLLM reads a missing flag as "no claim".
        for column, key in (("vision", "supports_vision"), ("tools", "supports_function_calling"),
                            ("reasoning", "supports_reasoning")):
            if row.get(column) in (0, 1):
                entry[key] = row[column] == 1
        entries[f"{PROVIDER}/{mid}"] = entry
        result.written += 1
    json.dump(entries, stream, indent=2, ensure_ascii=False)
    stream.write("\n")
    return result


def write_lobechat(rows: Iterable[dict], stream: IO[str]) -> Written:
    """The MODELSCOPE_MODEL_LIST value: -all,+id=Name<context:vision:reasoning:fc>,... (§7.3).

    The first value inside <…> is the context window, so abilities are written
    only with a known context length.
    """
    result = Written()
    items = ["-all"]
    for row in rows:
        mid = str(row.get("model_id"))
        parts = split_model_id(row.get("model_id"))
        if parts is None:
            result.skipped[mid] = "model ID is not a safe Owner/Name path"
            continue
        if row.get("kind") != "chat":
            result.skipped[mid] = "not a chat model"
            continue
        # `,` separates items and `=`, `<`, `>` delimit the parts, so a display
        # name loses them.
        item = f"+{mid}"
        display = re.sub(r"[,=<>\s]+", " ", _display_name(row, parts[1])).strip()
        if display:
            item += f"={display}"
        context = _positive_int(row.get("context_length"))
        if context is not None:
            flags = [str(context)] + [word for column, word in (("vision", "vision"), ("reasoning", "reasoning"),
                                                                 ("tools", "fc")) if row.get(column) == 1]
            item += "<" + ":".join(flags) + ">"
        items.append(item)
        result.written += 1
    stream.write(",".join(items) + "\n")
    return result


def write_cherry(rows: Iterable[dict], stream: IO[str]) -> Written:
    """Comma-separated model IDs, one line per paste, each at most 200 characters (§7.4)."""
    result = Written()
    line = ""
    for row in rows:
        mid = row.get("model_id")
        if not isinstance(mid, str) or not mid or len(mid) > CHERRY_MAX or re.search(r"[,，\s]", mid):
            result.skipped[str(mid)] = "ID cannot be pasted into the add-model box"
            continue
        if line and len(line) + 1 + len(mid) > CHERRY_MAX:
            stream.write(line + "\n")
            line = ""
        line = f"{line},{mid}" if line else mid
        result.written += 1
    if line:
        stream.write(line + "\n")
    return result


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\uFFFD")  # a lone surrogate is not valid TOML (or UTF-8)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_array(values: list[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


def _display_name(row: dict, fallback: str) -> str:
    name = row.get("name")
    return name.strip() if isinstance(name, str) and name.strip() else fallback


def _date(value: Any) -> str | None:
    # Timestamps are ISO-8601 with an offset; the UTC day is the first ten characters.
    if isinstance(value, str) and _DATE.match(value):
        return value[:10]
    return None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 < value <= 100_000_000 else None
