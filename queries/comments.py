"""Customers' own words: the newest survey comments of a selection, searchable.

Comments are read from the facts (the rollups hold no text) with the database doing the
filtering, ordering and paging: at most `limit` rows come back, with the total count of
matches so a page can say "showing 50 of 1,234".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, case, func, select
from sqlalchemy.sql import ColumnElement

from queries import schema
from queries.kpis import SURVEY_DIMS, Filters, in_scope
from queries.periods import whole_months

sr = schema.survey_response
ou = schema.org_unit
cust = schema.customer

GROUPS = ("promoter", "passive", "detractor")
COLUMNS = ["id", "submitted_at", "unit", "unit_name", "touchpoint", "channel", "device",
           "interaction", "segment", "nps", "csat", "ces", "nps_group", "comment",
           "topic_id", "topic", "sentiment", "sentiment_label"]
TONES = ("negative", "neutral", "positive")
ca = schema.comment_analysis
ct = schema.comment_topic
ESCAPE = "!"
MAX_SEARCH = 200
"""Longest search term (characters): SQLite refuses LIKE patterns over 50,000 bytes, and no
one searches comments for a paragraph."""


@dataclass(frozen=True, eq=False)
class Comments:
    """One page of comments (`rows`, newest first, columns `COLUMNS`) and `total`, the number
    of comments matching the selection and the search."""

    rows: pd.DataFrame
    total: int


def like_pattern(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, its `%`, `_` and the escape character taken
    literally (used with ``ESCAPE '!'``)."""
    body = (term.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%")
            .replace("_", ESCAPE + "_"))
    return f"%{body}%"


def nps_group() -> ColumnElement:
    """'promoter' (9-10), 'passive' (7-8), 'detractor' (0-6) or NULL without an NPS answer."""
    return case((sr.c.nps >= 9, "promoter"), (sr.c.nps >= 7, "passive"),
                (sr.c.nps.is_not(None), "detractor"), else_=None)


def selection(start: dt.datetime, end: dt.datetime, filters: Filters) -> list[
        ColumnElement[bool]]:
    """Conditions on `survey_response` (joined with `customer` for the segment) keeping the
    non-empty comments of answers submitted in [start, end) within `filters`."""
    return _conditions(start, end, filters, None, None)


def commented() -> list[ColumnElement[bool]]:
    """The answer has a non-empty comment: the one test of what counts as a comment (the
    ETL's topic sums use it too)."""
    return [sr.c.comment.is_not(None), func.length(func.trim(sr.c.comment)) > 0]


def _conditions(start: dt.datetime, end: dt.datetime, filters: Filters, search: str | None,
                group: str | None, topic: int | None = None,
                tone: str | None = None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        sr.c.submitted_at >= start, sr.c.submitted_at < end, *commented(),
        in_scope(sr.c.org_unit_id, filters.unit)]
    if filters.segment:
        conds.append(cust.c.segment == filters.segment)
    for name in ("channel", "device", "interaction", "touchpoint"):
        value = getattr(filters, name)
        if value:
            conds.append(sr.c[name] == value)
    term = (search or "").strip()
    if len(term) > MAX_SEARCH:
        raise ValueError(f"search: at most {MAX_SEARCH} characters, got {len(term):,}")
    if term:
        conds.append(sr.c.comment.ilike(like_pattern(term), escape=ESCAPE))
    if group:
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
        conds.append(nps_group() == group)
    if topic is not None:
        merged = func.coalesce(ct.c.merged_into, ct.c.id)
        conds.append(sr.c.id.in_(select(ca.c.response_pk).join(ct, ct.c.id == ca.c.topic_id)
                                 .where(merged == topic)))
    if tone:
        if tone not in TONES:
            raise ValueError(f"tone must be one of {TONES}, got {tone!r}")
        conds.append(sr.c.id.in_(select(ca.c.response_pk)
                                 .where(ca.c.sentiment_label == tone)))
    return conds


def summed_months(conn: Connection, start: dt.datetime, end: dt.datetime,
                   filters: Filters) -> list[str] | None:
    """The months of [start, end) when the ETL's comment sums (`agg_topic_month`) can answer
    for `filters` (whole months, no dimension filter, sums not left stale by a comment
    analysis), else None."""
    if any(getattr(filters, d) for d in SURVEY_DIMS) \
            or start.time() != dt.time() or end.time() != dt.time():
        return None
    months = whole_months(start.date(), end.date())
    if months is None:
        return None
    st = schema.summary_state
    state = conn.execute(select(st.c.version, st.c.done_version)
                         .where(st.c.name == "topic_month")).first()
    return months if state is not None and state.version == state.done_version else None


def comments(conn: Connection, *, start: dt.datetime, end: dt.datetime, filters: Filters,
             search: str | None = None, limit: int = 200, offset: int = 0,
             group: str | None = None, topic: int | None = None,
             tone: str | None = None) -> Comments:
    """The newest non-empty comments of responses submitted in [start, end) within
    `filters` (the unit with everything below it; segment is the customer's, so a segment
    filter keeps only known customers), optionally only those containing `search` (case
    insensitive, taken literally) or of one NPS `group`; `limit` rows from `offset`, with
    the unit's name, touchpoint, channel, scores and NPS group; `total` counts every match.
    `topic` (an id; merged topics count as their target) and `tone` (a sentiment label)
    keep only comments the ETL's analysis put there; each row carries its topic and
    sentiment (None until analysed). Without a search, topic or tone, `total` of a window
    of whole months comes from the ETL's comment sums when current (`summed_months`).
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    conds = _conditions(start, end, filters, search, group, topic, tone)
    joined = sr.join(ou, ou.c.id == sr.c.org_unit_id).outerjoin(
        cust, cust.c.id == sr.c.customer_id)
    months = (summed_months(conn, start, end, filters)
              if not (search or "").strip() and topic is None and tone is None else None)
    if months is not None:
        tm = schema.agg_topic_month
        counted = {None: func.sum(tm.c.comments), "promoter": func.sum(tm.c.promoters),
                   "detractor": func.sum(tm.c.detractors),
                   "passive": func.sum(tm.c.nps_n - tm.c.promoters - tm.c.detractors)}
        total = int(conn.execute(select(func.coalesce(counted[group], 0)).where(
            tm.c.month.in_(months), in_scope(tm.c.org_unit_id, filters.unit))).scalar_one())
    else:
        total = int(conn.execute(select(func.count()).select_from(joined).where(*conds))
                    .scalar_one())
    own = ct.alias("own_topic")
    shown = ct.alias("shown_topic")
    joined = (joined.outerjoin(ca, ca.c.response_pk == sr.c.id)
              .outerjoin(own, own.c.id == ca.c.topic_id)
              .outerjoin(shown, shown.c.id == func.coalesce(own.c.merged_into, own.c.id)))
    rows = conn.execute(
        select(sr.c.id, sr.c.submitted_at, sr.c.org_unit_id.label("unit"),
               ou.c.name.label("unit_name"), sr.c.touchpoint, sr.c.channel, sr.c.device,
               sr.c.interaction, cust.c.segment, sr.c.nps, sr.c.csat, sr.c.ces,
               nps_group().label("nps_group"), sr.c.comment,
               shown.c.id.label("topic_id"),
               func.coalesce(shown.c.label, shown.c.terms).label("topic"),
               ca.c.sentiment, ca.c.sentiment_label)
        .select_from(joined).where(*conds)
        .order_by(sr.c.submitted_at.desc(), sr.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=COLUMNS)
    for col in ("nps", "csat", "ces", "topic_id"):
        frame[col] = frame[col].astype("Int64")
    return Comments(frame, total)


__all__ = ["GROUPS", "MAX_SEARCH", "TONES", "Comments", "commented", "comments", "like_pattern",
           "selection"]
