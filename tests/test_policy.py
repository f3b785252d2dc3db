"""indexer.policy on its own: the drop rule, its streak, and which missing keys count as drift."""

import pytest

from indexer import policy

PREVIOUS = {"models_seen": 1000, "api_models": 100, "listed_models": 50}


def test_the_api_scope_watches_the_api_set_and_the_models_list():
    assert policy.drop_counts("api", PREVIOUS, models=10, api=90, listed=40) == [
        ("API-Inference set", 100, 90),
        ("inference service's /models list", 50, 40),
    ]


def test_the_full_scope_watches_the_model_count_first():
    assert policy.drop_counts("full", PREVIOUS, models=900, api=90, listed=40) == [
        ("model count", 1000, 900),
        ("API-Inference set", 100, 90),
        ("inference service's /models list", 50, 40),
    ]


@pytest.mark.parametrize("now, drop", [
    (80, None),  # exactly 20%: not more than the limit
    (79, policy.Drop("API-Inference set", 100, 79)),
    (0, policy.Drop("API-Inference set", 100, 0)),
    (150, None),  # growth is no drop
])
def test_a_drop_is_more_than_20_percent(now, drop):
    assert policy.find_drop([("API-Inference set", 100, now)]) == drop


def test_an_empty_models_list_is_a_drop():
    # An empty but valid /models answer must not unlist every model (issue 7).
    counts = policy.drop_counts("api", PREVIOUS, models=0, api=100, listed=0)
    assert policy.find_drop(counts) == policy.Drop("inference service's /models list", 50, 0)


def test_no_baseline_is_no_drop_and_the_first_drop_wins():
    assert policy.find_drop([("model count", 0, 0), ("API-Inference set", None, 5)]) is None
    assert policy.find_drop([("model count", 1000, 10), ("API-Inference set", 100, 1)]) == (
        policy.Drop("model count", 1000, 10))


def test_the_drop_message_names_the_count_and_the_limit():
    assert policy.Drop("model count", 1_000, 700).message() == (
        "drop: the model count fell from 1,000 to 700 (more than 20%); waiting for it to persist")


def test_the_streak_counts_runs_held_back_by_a_drop_newest_first():
    held = {"status": "incomplete", "error": "drop: the model count fell"}
    assert policy.drop_streak([]) == 0
    assert policy.drop_streak([held, held, {"status": "complete", "error": None}, held]) == 2
    # An incomplete run for another reason, or a failed one, ends the streak.
    assert policy.drop_streak([held, {"status": "incomplete", "error": "collected 5 of 9 models"},
                               held]) == 1
    assert policy.drop_streak([{"status": "incomplete", "error": None}, held]) == 0
    assert policy.drop_streak([{"status": "failed", "error": "drop: x"}, held]) == 0


@pytest.mark.parametrize("streak, confirm, verdict", [
    (0, 2, ("drop_suspected", "drop: the API-Inference set fell from 100 to 10 (more than 20%); "
                              "waiting for it to persist")),
    (1, 2, ("drop_accepted", None)),
    (1, 3, ("drop_suspected", "drop: the API-Inference set fell from 100 to 10 (more than 20%); "
                              "waiting for it to persist")),
    (2, 3, ("drop_accepted", None)),
    (0, 1, ("drop_accepted", None)),
])
def test_a_drop_is_accepted_once_seen_confirm_runs_in_a_row(streak, confirm, verdict):
    assert policy.judge_drop(policy.Drop("API-Inference set", 100, 10), streak, confirm) == verdict


@pytest.mark.parametrize("item, missing", [
    ({"Downloads": 1, "Stars": 2, "Tasks": []}, []),
    # A key sent as null is no drift: the real hub sends "Tasks": null (issue 15).
    ({"Downloads": None, "Stars": None, "Tasks": None}, []),
    ({"Downloads": 1, "Likes": 2, "Tasks": None}, []),  # Stars may come as Likes
    ({"Stars": 2}, ["missing_downloads", "missing_tasks"]),
    ({"Downloads": 1, "Tasks": None}, ["missing_stars"]),
    ({}, ["missing_downloads", "missing_stars", "missing_tasks"]),
    (["not", "a", "dict"], []),
    (None, []),
])
def test_only_a_key_the_item_lacks_counts_as_missing(item, missing):
    assert policy.missing_fields(item) == missing
