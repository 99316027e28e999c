"""An admin's edits of comment topics (found by the ETL, `etl/comments_nlp.py`): a readable
label, merges of topics that say the same thing. A topic keeps its id across the ETL's refits,
so these survive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, or_, select, update

from queries import schema

ct = schema.comment_topic


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def rename_topic(conn: Connection, topic_id: int, label: str | None,
                 *, now: dt.datetime | None = None) -> None:
    """Set a topic's label (None or blank: back to its top terms); ValueError naming the
    field for an unknown topic or a label over 200 characters."""
    text = (label or "").strip() or None
    if text is not None and len(text) > 200:
        raise ValueError("label: at most 200 characters")
    done = conn.execute(update(ct).where(ct.c.id == topic_id).values(
        label=text, updated_at=now or _now())).rowcount
    if not done:
        raise ValueError(f"topic: no topic {topic_id}")


def merge_topics(conn: Connection, source_ids: Iterable[int], target_id: int,
                 *, now: dt.datetime | None = None) -> None:
    """Count the `source_ids` topics as `target_id` from now on (and what was merged into
    them); ValueError for unknown topics, a target that is itself merged, mixed languages or
    merging a topic into itself."""
    sources = set(source_ids)
    rows = {r.id: r for r in conn.execute(select(ct).where(ct.c.id.in_(sources | {target_id})))}
    missing = (sources | {target_id}) - set(rows)
    if missing:
        raise ValueError(f"topic: no topic {', '.join(map(str, sorted(missing)))}")
    if target_id in sources:
        raise ValueError("topic: a topic cannot be merged into itself")
    if rows[target_id].merged_into is not None:
        raise ValueError(f"topic: {target_id} is itself merged into "
                         f"{rows[target_id].merged_into}; merge into that one")
    if {rows[i].language for i in rows} != {rows[target_id].language}:
        raise ValueError("topic: topics of different languages cannot be merged")
    stamp = now or _now()
    conn.execute(update(ct).where(or_(ct.c.id.in_(sources), ct.c.merged_into.in_(sources)))
                 .values(merged_into=target_id, updated_at=stamp))


def unmerge_topic(conn: Connection, topic_id: int, *, now: dt.datetime | None = None) -> None:
    """Count a merged topic on its own again."""
    conn.execute(update(ct).where(ct.c.id == topic_id).values(merged_into=None,
                                                              updated_at=now or _now()))


__all__ = ["merge_topics", "rename_topic", "unmerge_topic"]
