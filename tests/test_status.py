"""The status rule, table-driven: every combination of the signals a crawl has (issue 11)."""

import sqlite3

import pytest

from indexer import status

OK_LISTED = ("ok", status.REASONS["listed"])
OK_BADGE = ("ok", status.REASONS["badge"])
NOT_SERVED = ("not-served", status.REASONS["unlisted"])
NO_PROVIDER = ("not-served", status.REASONS["no-provider"])
NOT_API = ("not-api", status.REASONS["not-api"])
REMOVED = ("removed", status.REASONS["removed"])

# (badge, listed, chat?) -> answer, for a model on the hub whose providers are
# not known to be empty: written out, not computed, so the test can disagree.
LIVE = {
    (False, False, False): NOT_API,
    (False, False, True): NOT_API,
    (False, True, False): OK_LISTED,
    (False, True, True): OK_LISTED,
    (True, False, False): OK_BADGE,
    (True, False, True): NOT_SERVED,
    (True, True, False): OK_LISTED,
    (True, True, True): OK_LISTED,
}
EXPECTED = {}
for (badge, listed, chat), answer in LIVE.items():
    EXPECTED[(False, badge, listed, chat, False)] = answer
    # Nobody serves it: not-served whatever the kind, unless it was never API at all.
    EXPECTED[(False, badge, listed, chat, True)] = NO_PROVIDER if badge or listed else NOT_API
    # Gone from the hub beats every other signal.
    EXPECTED[(True, badge, listed, chat, False)] = REMOVED
    EXPECTED[(True, badge, listed, chat, True)] = REMOVED
assert len(EXPECTED) == 32


@pytest.mark.parametrize("signals", sorted(EXPECTED))
def test_every_combination_of_signals(signals):
    removed, badge, listed, chat, no_provider = signals
    for kind in (["chat"] if chat else ["image", "image-edit", "video", "embedding", "speech", "other"]):
        assert status.decide(removed=removed, badge=badge, listed=listed, kind=kind,
                             no_provider=no_provider) == EXPECTED[signals]


def test_a_vision_language_chat_model_the_list_lacks_is_not_served():
    kind = status.kind_of(["image-text-to-text"])
    assert kind == "chat"
    assert status.decide(removed=False, badge=True, listed=False, kind=kind) == NOT_SERVED


@pytest.mark.parametrize("tasks, kind", [
    ([], "other"),
    (None, "other"),
    ([""], "other"),
    (["text-generation"], "chat"),
    (["visual-question-answering"], "chat"),
    (["multimodal-dialogue"], "chat"),
    (["text-to-image-synthesis"], "image"),
    (["image-to-image"], "image-edit"),
    (["image-to-video"], "video"),
    (["sentence-embedding"], "embedding"),
    (["text-to-speech"], "speech"),
    (["ocr-recognition"], "other"),
    # Several tasks: the first kind in the documented order, chat first.
    (["image-to-image", "text-to-image-synthesis"], "image"),
    (["text-to-image-synthesis", "image-text-to-text"], "chat"),
    (["Text-Generation"], "chat"),
])
def test_kind_of(tasks, kind):
    assert status.kind_of(tasks) == kind


def test_the_sql_functions_give_the_same_answers():
    conn = sqlite3.connect(":memory:")
    status.register_functions(conn)
    rows = conn.execute("""
        select model_kind(tasks), model_status(removed_at, api, listed, model_kind(tasks), providers),
               model_status_reason(removed_at, api, listed, model_kind(tasks), providers)
        from (select '["text-generation"]' as tasks, null as removed_at, 1 as api, 0 as listed, null as providers
              union all select '["text-to-image-synthesis"]', null, 1, 0, null
              union all select 'not json', null, 0, 1, '[]'
              union all select null, '2026-11-01T00:00:00+00:00', 1, 1, null
              union all select '["text-generation"]', null, 0, 0, '["ModelScope"]')""").fetchall()
    assert rows == [
        ("chat", "not-served", status.REASONS["unlisted"]),
        ("image", "ok", status.REASONS["badge"]),
        ("other", "not-served", status.REASONS["no-provider"]),
        ("other", "removed", "it is gone from the hub (since 2026-11-01)"),
        ("chat", "not-api", status.REASONS["not-api"]),
    ]
