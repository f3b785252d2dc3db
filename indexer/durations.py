"""Pure: the one reading of durations such as 30m, 12h, 7d or 2w that every command and page uses."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXAMPLES = "7d, 12h, 30m, 2w"


def parse_duration(text: object) -> timedelta:
    """`45s`, `30m`, `12h`, `7d`, `2w` (any case, spaces allowed) as a timedelta; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text).lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like {EXAMPLES}")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])
