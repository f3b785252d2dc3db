"""The one duration parser every command uses (issue 10)."""

from datetime import timedelta

import pytest

from indexer.durations import parse_duration


@pytest.mark.parametrize("text, expected", [
    ("45s", timedelta(seconds=45)), ("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)),
    ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), (" 3 D ", timedelta(days=3)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "1.5h", "-1h", "7y", "last tuesday", None])
def test_parse_duration_rejects_with_one_line(text):
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    assert str(error.value) == f"{text!r} is not a duration like 7d, 12h, 30m, 2w"
