"""Model-ID text helpers: split and validate IDs, make hidden characters visible. Pure; imports nothing heavy."""

from __future__ import annotations

import re
import unicodedata

MAX_ID_PART = 300
# A model ID with a control character (a NUL, say) names nothing anyone can
# call; cleaning it would store an ID that does not exist on the hub (issue 6).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Characters a person cannot see, or that reorder what they see (bidi controls
# such as U+202E turn `invoice-\u202egpj.exe` into "invoice-exe.jpg"), plus the
# ones XML 1.0 forbids outright (issue 14). Categories: Cc controls, Cf format
# (bidi, zero-width, BOM), Cs lone surrogates, Zl/Zp line and paragraph separators.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
KEPT_WHITESPACE = frozenset("\t\n\r")


def replace_surrogates(text):
    """`text` with lone surrogates (invalid UTF-8 as Python decodes it) replaced by `?`; SQLite refuses them."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def id_part(value):
    """The owner or name part of an ID, cleaned, or None when it cannot be one."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_ID_PART or "/" in text or CONTROL_CHARS.search(text):
        return None
    return replace_surrogates(text)


def split_model_id(model_id):
    """(owner, name) of an `Owner/Name` ID, or None when it has another shape."""
    if not isinstance(model_id, str):
        return None
    owner, sep, name = model_id.strip().partition("/")
    if not sep or not id_part(owner) or not id_part(name):
        return None
    return owner, name


def _hidden(char):
    code = ord(char)
    # Noncharacters (U+FFFE, U+FFFF, U+FDD0..U+FDEF and the last two of each
    # plane) are unassigned, not a category of their own, and XML forbids some.
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return True
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def _mark(char):
    return f"<U+{ord(char):04X}>"


def visible(text, keep_whitespace=False):
    """`text` for a person to read: every hidden, reordering or XML-forbidden character as `<U+XXXX>`.

    Used wherever the CLI or the site shows a model ID or name, so that what a
    reader copies is what they saw; stored and exported values stay raw.
    `keep_whitespace` leaves tab, newline and CR alone (for descriptions).
    """
    if not isinstance(text, str):
        return text
    if text.isascii() and text.isprintable():
        return text  # the common case, without a look at each character
    return "".join(_mark(c) if _hidden(c) and not (keep_whitespace and c in KEPT_WHITESPACE) else c
                   for c in text)


def xml_safe(text):
    """`text` with what XML 1.0 forbids, hidden or reordering characters made visible; tab/newline/CR kept."""
    return visible(text, keep_whitespace=True)
