"""Read-only: list catalog events for `indexer changes`, newest first, streamed."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime, timezone

from indexer.durations import EXAMPLES, parse_duration
from indexer.status import headline
from indexer.track import EVENTS

FIELDS = ("id", "run_id", "at", "event", "model_id", "detail")


def parse_since(text, now):
    """An aware UTC datetime from `7d`, `12h`, `30m`, `2w`, `2026-11-01` or an ISO timestamp."""
    value = (text or "").strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration like {EXAMPLES} "
                         "nor a date like 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iter_events(db, since=None, events=(), task=None, owner=None, limit=None):
    """Event rows as dicts, newest first; `detail` decoded to an object."""
    where, params = [], []
    if since is not None:
        where.append("e.at >= ?")
        params.append(since.astimezone(timezone.utc).isoformat(timespec="seconds"))
    if events:
        where.append(f"e.event in ({', '.join('?' for _ in events)})")
        params.extend(events)
    if owner:
        where.append("m.owner = ?")
        params.append(owner)
    if task:
        where.append("exists (select 1 from json_each(m.tasks) where value = ?)")
        params.append(task)
    sql = ("select e.id, e.run_id, e.at, e.event, e.model_id, e.detail from model_events e "
           "left join models m on m.model_id = e.model_id")
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by e.at desc, e.id desc"
    if limit:
        sql += " limit ?"
        params.append(int(limit))
    for row in db.conn.execute(sql, params):
        record = dict(zip(FIELDS, row))
        record["detail"] = json.loads(record["detail"]) if record["detail"] else None
        yield record


def describe(detail):
    """A short human reading of an event's detail for the text format."""
    if not detail:
        return ""
    if "reason" in detail and "new" in detail:
        return f"{headline(detail['new'])} ({detail.get('old')} -> {detail['new']}: {detail['reason']})"
    if "field" in detail:
        old, new = (json.dumps(detail.get(k), ensure_ascii=False) for k in ("old", "new"))
        return f"{detail['field']}: {old} -> {new}"
    return json.dumps(detail, ensure_ascii=False, sort_keys=True)


def write_events(records, fmt, out):
    """Write records as text (aligned lines), json (one list) or csv (with a header)."""
    if fmt == "json":
        written = 0
        out.write("[")
        for record in records:
            out.write(("," if written else "") + "\n  " + json.dumps(record, ensure_ascii=False))
            written += 1
        out.write("\n]\n" if written else "]\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for record in records:
            detail = json.dumps(record["detail"], ensure_ascii=False) if record["detail"] else ""
            writer.writerow([record["id"], record["run_id"], record["at"], record["event"],
                             record["model_id"], detail])
        return
    width = max(len(e) for e in EVENTS)
    for record in records:
        line = f"{record['at']}  {record['event']:<{width}}  {record['model_id']}"
        extra = describe(record["detail"])
        out.write((f"{line}  {extra}" if extra else line) + "\n")
