"""What comments are about: topics by volume, their sentiment and NPS, their change against a
comparison period, and which topics drive detractors.

Reads the analyses the ETL stored (`comment_analysis`, `comment_topic`, see
`etl/comments_nlp.py`); nothing is computed from text here. A topic an admin merged counts as
the topic it was merged into; its label is the admin's, else its top terms.

Definitions (all over the comments of survey answers in the window and selection):
- volume: comments on the topic; share = volume / comments with a topic;
- sentiment: mean stored sentiment (-1 to 1) and the share labelled negative;
- NPS of the topic's commenters, with n and the 95% margin (`queries.metrics.nps`);
- change: share of comments against the comparison window (two-proportion z-test) and NPS
  (`queries.metrics.change`);
- driver of detractors: the topic's share of detractor comments against its share of promoter
  comments (pooled two-proportion z-test); significant and higher among detractors means the
  topic is what detractors talk about more than promoters do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, case, func, select

from queries import metrics, schema
from queries.comments import nps_group, selection, summed_months
from queries.kpis import Filters, in_scope
from queries.stats import two_proportion_z

sr = schema.survey_response
ou = schema.org_unit
cust = schema.customer
ca = schema.comment_analysis
ct = schema.comment_topic

TONES = ("negative", "neutral", "positive")
COLUMNS = ["topic_id", "label", "terms", "language", "comments", "share_pct",
           "sentiment", "negative_pct", "nps", "nps_moe", "nps_n",
           "detractor_comments", "promoter_comments", "detractor_share_pct",
           "promoter_share_pct", "detractor_gap_pts", "detractor_p", "drives_detractors",
           "previous_comments", "previous_share_pct", "share_change_pts", "share_change_p",
           "share_change_significant", "previous_nps", "nps_change", "nps_change_significant"]


def topic_key():
    """The topic a comment counts under: the one its topic was merged into, else its own."""
    return func.coalesce(ct.c.merged_into, ct.c.id)


@dataclass(frozen=True, eq=False)
class TopicSummary:
    """Topics of a selection (`frame`, columns `COLUMNS`, most talked-about first) with the
    totals the shares are of: comments with a topic, detractor and promoter comments (now and
    in the comparison window)."""

    frame: pd.DataFrame
    comments: int
    detractor_comments: int
    promoter_comments: int
    previous_comments: int


COUNT_COLUMNS = ["topic_id", "comments", "sentiment", "neg", "toned", "nps_n", "promoters",
                 "detractors"]


def _counts(conn: Connection, start: dt.datetime, end: dt.datetime,
            filters: Filters, *, stored: bool = True) -> pd.DataFrame:
    months = summed_months(conn, start, end, filters) if stored else None
    if months is not None:
        tm = schema.agg_topic_month
        key = func.coalesce(ct.c.merged_into, ct.c.id)
        rows = conn.execute(
            select(key.label("topic_id"), func.sum(tm.c.comments).label("comments"),
                   (func.sum(tm.c.sentiment_sum)
                    / func.nullif(func.sum(tm.c.sentiment_n), 0)).label("sentiment"),
                   func.sum(tm.c.negative).label("neg"), func.sum(tm.c.toned).label("toned"),
                   func.sum(tm.c.nps_n).label("nps_n"),
                   func.sum(tm.c.promoters).label("promoters"),
                   func.sum(tm.c.detractors).label("detractors"))
            .select_from(tm.join(ct, ct.c.id == tm.c.topic_id))
            .where(tm.c.month.in_(months), in_scope(tm.c.org_unit_id, filters.unit))
            .group_by(key)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=COUNT_COLUMNS)
    group = nps_group()
    key = topic_key().label("topic_id")
    joined = (sr.join(ca, ca.c.response_pk == sr.c.id).join(ct, ct.c.id == ca.c.topic_id)
              .outerjoin(cust, cust.c.id == sr.c.customer_id))
    rows = conn.execute(
        select(key, func.count().label("comments"),
               func.avg(ca.c.sentiment).label("sentiment"),
               func.sum(case((ca.c.sentiment_label == "negative", 1), else_=0)).label("neg"),
               func.count(ca.c.sentiment_label).label("toned"),
               func.count(sr.c.nps).label("nps_n"),
               func.sum(case((group == "promoter", 1), else_=0)).label("promoters"),
               func.sum(case((group == "detractor", 1), else_=0)).label("detractors"))
        .select_from(joined).where(*selection(start, end, filters))
        .group_by(topic_key())).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=COUNT_COLUMNS)


def topic_summary(conn: Connection, *, start: dt.datetime, end: dt.datetime, filters: Filters,
                  compare_start: dt.datetime | None = None,
                  compare_end: dt.datetime | None = None, stored: bool = True) -> TopicSummary:
    """Topics of the comments of answers submitted in [start, end) within `filters`, with
    volume, sentiment, NPS (n, margin), the detractor-driver test, and, given a comparison
    window [compare_start, compare_end), the change of share and NPS with their tests.

    Windows of whole months without a dimension filter are summed from the ETL's
    `agg_topic_month` when the comment analysis left it current (`stored=False`: always
    counted from the comments)."""
    now = _counts(conn, start, end, filters, stored=stored)
    prev = (_counts(conn, compare_start, compare_end, filters, stored=stored)
            if compare_start is not None and compare_end is not None else None)
    names = {r.id: r for r in conn.execute(select(ct.c.id, ct.c.label, ct.c.terms,
                                                  ct.c.language))}
    total = int(now["comments"].sum())
    det_total = int(now["detractors"].sum())
    pro_total = int(now["promoters"].sum())
    prev_total = int(prev["comments"].sum()) if prev is not None else 0
    prev_by = ({int(r.topic_id): r for r in prev.itertuples()} if prev is not None else {})
    out = []
    for r in now.itertuples():
        tid = int(r.topic_id)
        est = metrics.nps(int(r.nps_n), int(r.promoters), int(r.detractors))
        det = two_proportion_z(int(r.detractors), det_total, int(r.promoters), pro_total)
        row = {
            "topic_id": tid, "label": names[tid].label or names[tid].terms,
            "terms": names[tid].terms, "language": names[tid].language,
            "comments": int(r.comments), "share_pct": 100 * r.comments / total,
            "sentiment": None if pd.isna(r.sentiment) else float(r.sentiment),
            "negative_pct": 100 * r.neg / r.toned if r.toned else None,
            "nps": est.value, "nps_moe": est.moe, "nps_n": est.n,
            "detractor_comments": int(r.detractors), "promoter_comments": int(r.promoters),
            "detractor_share_pct": 100 * r.detractors / det_total if det_total else None,
            "promoter_share_pct": 100 * r.promoters / pro_total if pro_total else None,
            "detractor_gap_pts": None if det.diff is None else 100 * det.diff,
            "detractor_p": det.p,
            "drives_detractors": bool(det.significant and (det.diff or 0) > 0),
        }
        if prev is not None:
            p = prev_by.get(tid)
            pc = int(p.comments) if p is not None else 0
            share = two_proportion_z(int(r.comments), total, pc, prev_total)
            pest = (metrics.nps(int(p.nps_n), int(p.promoters), int(p.detractors))
                    if p is not None else metrics.nps(0, 0, 0))
            chg = metrics.change(est, pest)
            row.update({
                "previous_comments": pc,
                "previous_share_pct": 100 * pc / prev_total if prev_total else None,
                "share_change_pts": None if share.diff is None else 100 * share.diff,
                "share_change_p": share.p, "share_change_significant": share.significant,
                "previous_nps": pest.value, "nps_change": chg.delta,
                "nps_change_significant": chg.significant,
            })
        out.append(row)
    frame = pd.DataFrame(out, columns=COLUMNS)
    if not frame.empty:
        frame = frame.sort_values(["comments", "topic_id"], ascending=[False, True],
                                  kind="stable").reset_index(drop=True)
    return TopicSummary(frame, total, det_total, pro_total, prev_total)


def topics(conn: Connection, *, language: str | None = None,
           include_merged: bool = True) -> pd.DataFrame:
    """Every topic (for the admin and the filter lists): id, language, label (the admin's or
    None), terms, merged_into, active, and the number of comments it holds itself."""
    counts = (select(ca.c.topic_id, func.count().label("n")).group_by(ca.c.topic_id)
              .subquery())
    query = (select(ct.c.id, ct.c.language, ct.c.label, ct.c.terms, ct.c.merged_into,
                    ct.c.active, func.coalesce(counts.c.n, 0).label("comments"))
             .select_from(ct.outerjoin(counts, counts.c.topic_id == ct.c.id))
             .order_by(ct.c.language, ct.c.id))
    if language:
        query = query.where(ct.c.language == language)
    if not include_merged:
        query = query.where(ct.c.merged_into.is_(None))
    rows = conn.execute(query).mappings().all()
    return pd.DataFrame([dict(r) for r in rows],
                        columns=["id", "language", "label", "terms", "merged_into", "active",
                                 "comments"])


__all__ = ["COLUMNS", "TONES", "TopicSummary", "topic_key", "topic_summary", "topics"]
