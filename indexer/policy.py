"""Crawl policy, pure: when a drop holds a run back, and which item fields count as drift.

No network, no database, no clock: `crawl.py` reads the numbers and applies the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

# A sudden drop of more than this share is more likely a hub hiccup than a real
# loss, so it must persist over `confirm` crawls before it counts (issue 7).
DROP_LIMIT = 0.20
DROP_PREFIX = "drop:"
# Fields every list item carried when the crawler was written (docs/modelscope-api.md
# §2.3): an item whose key is gone is the first sign the hub renamed or dropped it
# (issue 7). Items without Path or Name are already counted as skipped_missing_path/_name.
WATCHED_FIELDS = (("Downloads", "missing_downloads"), ("Stars", "missing_stars"),
                  ("Tasks", "missing_tasks"))
# Stars may come as Likes (§2.3).
ALIASES = {"Stars": ("Stars", "Likes")}


@dataclass(frozen=True)
class Drop:
    """One count that fell by more than DROP_LIMIT since the last complete run."""

    label: str
    before: int
    now: int

    def message(self):
        return (f"{DROP_PREFIX} the {self.label} fell from {self.before:,} to {self.now:,} "
                f"(more than {DROP_LIMIT:.0%}); waiting for it to persist")


def drop_counts(scope, previous, models, api, listed):
    """[(label, before, now)] the drop rule watches; `previous` is the last complete run's row."""
    counts = [("API-Inference set", previous["api_models"], api),
              # An empty but valid /models answer must not unlist every model.
              ("inference service's /models list", previous["listed_models"], listed)]
    if scope == "full":
        counts.insert(0, ("model count", previous["models_seen"], models))
    return counts


def find_drop(counts):
    """The first count that fell by more than DROP_LIMIT, else None."""
    for label, before, now in counts:
        if before and now < before * (1 - DROP_LIMIT):
            return Drop(label, before, now)
    return None


def drop_streak(runs):
    """How many of `runs` (newest first: dicts with status and error) were held back by a drop."""
    streak = 0
    for run in runs:
        if run["status"] != "incomplete" or not (run["error"] or "").startswith(DROP_PREFIX):
            break
        streak += 1
    return streak


def judge_drop(drop, streak, confirm):
    """(warning counter, error or None): a drop seen `confirm` runs in a row is accepted."""
    if streak + 1 >= confirm:
        return "drop_accepted", None
    return "drop_suspected", drop.message()


def missing_fields(item):
    """The counters of the watched fields whose key `item` lacks.

    A key sent as null is no drift: the real hub sends `"Tasks": null` on items
    without a task (§2.3, real capture: 4 of 30), so only a key the hub stopped
    sending counts.
    """
    if not isinstance(item, dict):
        return []
    return [counter for name, counter in WATCHED_FIELDS
            if not any(key in item for key in ALIASES.get(name, (name,)))]
