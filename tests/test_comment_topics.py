"""Topics of a selection (queries.comment_topics) against pandas and statsmodels on the raw rows,
and the comment list filtered by topic and sentiment, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import insert, select
from statsmodels.stats.proportion import proportions_ztest

from etl.comments_nlp import analyse_comments
from queries import schema
from queries.comment_topics import topic_summary, topics
from queries.comments import comments
from queries.kpis import Filters
from queries.settings import load_settings
from reports.topics import merge_topics, rename_topic
from tests.test_comments_nlp import UNLABELLED, corpus

NOW = dt.datetime(2026, 12, 1, 8, 0)
NOV = (dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1))
OCT = (dt.datetime(2026, 10, 1), dt.datetime(2026, 11, 1))


def _load(engine) -> None:
    """November: the English corpus in store S1 (36 comments), queue comments again in S2
    (12); October: the staff comments only, in S1 (12, all promoters)."""
    sr = schema.survey_response
    rows = []
    for i, (theme, text, nps) in enumerate(corpus("en")):
        rows.append(("S1", f"n{i}", dt.datetime(2026, 11, 2 + i % 20), text, nps))
        if theme == "queue":
            rows.append(("S2", f"q{i}", dt.datetime(2026, 11, 5), text, nps))
        if theme == "staff":
            rows.append(("S1", f"o{i}", dt.datetime(2026, 10, 9), text, nps))
    rows.append(("S1", "u1", dt.datetime(2026, 11, 20), UNLABELLED["en"]["negative"], None))
    rows.append(("S1", "blank", dt.datetime(2026, 11, 20), None, 3))
    with engine.begin() as conn:
        for uid, kind, parent in (("C", "company", None), ("S1", "store", "C"),
                                  ("S2", "store", "C")):
            conn.execute(insert(schema.org_unit).values(id=uid, name=uid, kind=kind,
                                                        parent_id=parent, source="t",
                                                        loaded_at=NOW))
        for unit, rid, when, text, nps in rows:
            conn.execute(insert(sr).values(source="t", response_id=rid, submitted_at=when,
                                           org_unit_id=unit, nps=nps, comment=text,
                                           loaded_at=NOW))
    analyse_comments(engine, load_settings(cx_comment_topics=3), now=NOW)


def _raw(engine) -> pd.DataFrame:
    sr, ca = schema.survey_response, schema.comment_analysis
    with engine.connect() as conn:
        rows = conn.execute(select(sr.c.id, sr.c.org_unit_id, sr.c.submitted_at, sr.c.nps,
                                   ca.c.topic_id, ca.c.sentiment, ca.c.sentiment_label)
                            .select_from(sr.join(ca, ca.c.response_pk == sr.c.id))).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[
        "id", "unit", "at", "nps", "topic", "sentiment", "label"])


def _expected(raw: pd.DataFrame, start: dt.datetime, end: dt.datetime,
              units: set[str]) -> pd.DataFrame:
    part = raw[(raw["at"] >= start) & (raw["at"] < end) & raw["unit"].isin(units)
               & raw["topic"].notna()]
    out = {}
    for topic, g in part.groupby("topic"):
        scored = g["nps"].dropna()
        pro, det = int((scored >= 9).sum()), int((scored <= 6).sum())
        out[int(topic)] = {"comments": len(g), "nps_n": len(scored),
                           "nps": 100 * (pro - det) / len(scored) if len(scored) else None,
                           "promoters": pro, "detractors": det,
                           "sentiment": g["sentiment"].mean(),
                           "negative_pct": 100 * (g["label"] == "negative").mean()}
    return pd.DataFrame(out).T


def test_topic_summary_matches_pandas_and_statsmodels(engine) -> None:
    _load(engine)
    raw = _raw(engine)
    with engine.connect() as conn:
        got = topic_summary(conn, start=NOV[0], end=NOV[1], filters=Filters(unit="S1"),
                            compare_start=OCT[0], compare_end=OCT[1])
        whole = topic_summary(conn, start=NOV[0], end=NOV[1], filters=Filters())
    want = _expected(raw, *NOV, {"S1"})
    assert got.comments == 37 == int(want["comments"].sum())
    assert whole.comments == 37 + 12
    frame = got.frame.set_index("topic_id")
    assert sorted(frame.index) == sorted(int(t) for t in want.index)
    det_total, pro_total = int(want["detractors"].sum()), int(want["promoters"].sum())
    assert (got.detractor_comments, got.promoter_comments) == (det_total, pro_total) == (24, 12)
    for tid, w in want.iterrows():
        g = frame.loc[int(tid)]
        assert g["comments"] == w["comments"]
        assert g["share_pct"] == pytest.approx(100 * w["comments"] / 37)
        assert g["nps"] == pytest.approx(w["nps"])
        assert g["nps_n"] == w["nps_n"]
        # The adjusted Wald interval (Rocks 2016) of METRICS.md, by hand: half its width.
        n, pro, det = w["nps_n"], w["promoters"], w["detractors"]
        tp, td = (pro + 0.75) / (n + 3), (det + 0.75) / (n + 3)
        half = 1.959964 * ((tp + td - (tp - td) ** 2) / (n + 3)) ** 0.5
        low = min(max(-1, tp - td - half), (pro - det) / n)
        high = max(min(1, tp - td + half), (pro - det) / n)
        assert g["nps_moe"] == pytest.approx(100 * (high - low) / 2, abs=1e-4)
        assert g["sentiment"] == pytest.approx(w["sentiment"])
        assert g["negative_pct"] == pytest.approx(w["negative_pct"])
        # Driver of detractors: the same test by statsmodels.
        _z, p = proportions_ztest([w["detractors"], w["promoters"]], [det_total, pro_total])
        assert g["detractor_p"] == pytest.approx(p)
        assert g["detractor_gap_pts"] == pytest.approx(
            100 * (w["detractors"] / det_total - w["promoters"] / pro_total))
    # The staff topic: all promoters, no detractor: NPS 100, a driver of nothing.
    staff = frame[frame["promoter_comments"] == 12].iloc[0]
    assert staff["nps"] == 100 and not staff["drives_detractors"]
    # October held only staff comments: its share fell from 100% to 12/37, significantly.
    assert staff["previous_comments"] == 12 and staff["previous_share_pct"] == 100
    _z, p = proportions_ztest([12, 12], [37, 12])
    assert staff["share_change_p"] == pytest.approx(p)
    assert staff["share_change_significant"]
    assert staff["previous_nps"] == 100 and staff["nps_change"] == 0
    queue = frame[frame["terms"].str.contains("queue")].iloc[0]
    assert queue["previous_comments"] == 0 and queue["share_change_pts"] > 0
    assert pd.isna(queue["previous_nps"])


def test_comments_filter_by_topic_and_tone_and_merges_count_together(engine) -> None:
    _load(engine)
    raw = _raw(engine)
    with engine.connect() as conn:
        summary = topic_summary(conn, start=NOV[0], end=NOV[1], filters=Filters(unit="S1"))
    queue = int(summary.frame[summary.frame["terms"].str.contains("queue")]["topic_id"].iloc[0])
    with engine.connect() as conn:
        got = comments(conn, start=NOV[0], end=NOV[1], filters=Filters(unit="S1"),
                       topic=queue, limit=100)
        neg = comments(conn, start=NOV[0], end=NOV[1], filters=Filters(), tone="negative",
                       limit=100)
    nov = raw[(raw["at"] >= NOV[0]) & (raw["at"] < NOV[1])]
    assert got.total == int(((nov["topic"] == queue) & (nov["unit"] == "S1")).sum()) == 13
    assert set(got.rows["topic_id"]) == {queue}
    assert neg.total == int((nov["label"] == "negative").sum())
    assert set(neg.rows["sentiment_label"]) == {"negative"}
    with pytest.raises(ValueError, match="tone must be one of"), engine.connect() as conn:
        comments(conn, start=NOV[0], end=NOV[1], filters=Filters(), tone="angry")

    # An admin names the queue topic and merges the price topic into it.
    price = int(summary.frame[summary.frame["terms"].str.contains("price")]["topic_id"].iloc[0])
    with engine.begin() as conn:
        rename_topic(conn, queue, "Waiting to pay")
        merge_topics(conn, [price], queue)
    with engine.connect() as conn:
        after = topic_summary(conn, start=NOV[0], end=NOV[1], filters=Filters(unit="S1"))
        merged = comments(conn, start=NOV[0], end=NOV[1], filters=Filters(unit="S1"),
                          topic=queue, limit=100)
        listing = topics(conn, include_merged=False)
    frame = after.frame.set_index("topic_id")
    assert price not in frame.index
    assert frame.loc[queue, "label"] == "Waiting to pay"
    assert frame.loc[queue, "comments"] == 13 + 12
    assert merged.total == 25 and set(merged.rows["topic"]) == {"Waiting to pay"}
    assert price not in set(listing["id"])
