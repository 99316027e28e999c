"""The topics section of Drivers & comments (callbacks against queries.comment_topics on the
demo data, whose comments the ETL analysed when it loaded them), and the topic and sentiment
filters of the comment list."""

from __future__ import annotations

import sys

import pytest
from dash import no_update
from sqlalchemy import func, select, text

from queries import schema
from queries.comment_topics import topic_summary
from queries.comments import comments
from queries.kpis import Filters, latest_full_month
from queries.links import key_drivers
from queries.periods import Month
from queries.scope import Scope


@pytest.fixture
def drv(dash_app):
    """The page module as Dash loaded it."""
    return sys.modules["pages.drivers"]


def test_the_demo_load_analysed_every_comment(demo_engine) -> None:
    sr, ca = schema.survey_response, schema.comment_analysis
    with demo_engine.connect() as conn:
        with_text = conn.execute(select(func.count()).select_from(sr).where(
            sr.c.comment.is_not(None), func.length(func.trim(sr.c.comment)) > 0)).scalar_one()
        analysed = conn.execute(select(func.count()).select_from(ca)).scalar_one()
        english = conn.execute(select(func.count()).select_from(ca).where(
            ca.c.language == "en")).scalar_one()
        french = conn.execute(select(func.count()).select_from(ca).where(
            ca.c.language == "fr")).scalar_one()
        topics = conn.execute(select(func.count()).select_from(schema.comment_topic)).scalar_one()
    assert analysed == with_text > 500
    # The demo company's customers write English, about one in eight French.
    assert english + french == with_text and 0.05 < french / with_text < 0.2
    assert 2 <= topics <= 24  # at most 12 per language (English and French here)


def test_topics_chart_table_and_options_are_the_topic_summary(in_app, drv, demo_engine) -> None:
    state = {"unit": "R-WEST", "months": "3"}
    fig, table, options = in_app(drv.render_topics, state)
    with demo_engine.connect() as conn:
        last = latest_full_month(conn)
        first = last.shift(-2)
        want = topic_summary(conn, start=first.start, end=last.end,
                             filters=Filters(unit="R-WEST"),
                             compare_start=last.shift(-3).start, compare_end=last.shift(-1).end)
    frame = want.frame
    assert not frame.empty
    bars = fig.data[0]
    top = frame.head(12).iloc[::-1]
    assert list(bars.x) == [int(v) for v in top["comments"]]
    assert list(bars.y) == list(top["label"])
    assert f"{want.comments:,} comments" in fig.layout.title.text
    assert [o["value"] for o in options] == [int(v) for v in frame["topic_id"]]
    rows = table.children.children[1].children
    assert [r.__dict__["data-topic"] for r in rows] == [str(int(v)) for v in frame["topic_id"]]
    # The demo's complaints are what detractors talk about: some topic is a driver.
    assert frame["drives_detractors"].any()
    downloaded = in_app(drv.topics_frame, state)
    assert list(downloaded["comments"]) == list(frame["comments"])


def test_comment_list_filters_by_topic_and_tone(in_app, drv, demo_engine) -> None:
    _, _, options = in_app(drv.render_topics, {"months": "3"})
    topic = options[0]["value"]
    state = {"months": "3", "topic": str(topic), "tone": "negative"}
    items, count, _, _ = in_app(drv.render_comments, state)
    with demo_engine.connect() as conn:
        last = latest_full_month(conn)
        want = comments(conn, start=last.shift(-2).start, end=last.end, filters=Filters(),
                        topic=topic, tone="negative", limit=10)
    assert want.total > 0
    assert str(want.total) in count.replace(",", "")
    assert set(want.rows["topic_id"]) == {topic}
    assert set(want.rows["sentiment_label"]) == {"negative"}
    assert len(items.children) == min(10, want.total)


def test_topic_and_tone_controls_write_the_url(drv) -> None:
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    def call(prop_id: str, topic, tone, search):
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": None}]))
        return drv.navigate_topics(topic, tone, search)

    assert call("drivers-topic.value", 7, None, "?unit=R-WEST&limit=30") == \
        "?unit=R-WEST&topic=7"
    assert call("drivers-tone.value", 7, "negative", "?topic=7") == "?tone=negative&topic=7"
    assert call("drivers-tone.value", None, "", "?tone=negative&topic=7") == "?topic=7"
    # A control redrawn with the URL's own value changes nothing (keeps "show more").
    assert call("drivers-topic.value", 7, None, "?topic=7&limit=30") is no_update


def test_one_pager_lists_what_detractors_talk_about(in_app, dash_app, demo_engine) -> None:
    report = sys.modules["pages.report"]
    with demo_engine.connect() as conn:
        period = latest_full_month(conn)
        want = topic_summary(conn, start=period.shift(-2).start, end=period.end,
                             filters=Filters(unit="R-WEST"))
    block = in_app(report.detractor_topics_block, Filters(unit="R-WEST"), period)
    assert block.id == "report-detractor-topics"
    items = block.children[1].children
    top = (want.frame[want.frame["detractor_comments"] > 0]
           .sort_values(["detractor_comments", "topic_id"], ascending=[False, True]).head(3))
    assert [i.children[0].children for i in items] == list(top["label"])
    first = top.iloc[0]
    share = 100 * first["detractor_comments"] / want.detractor_comments
    assert f": {share:.0f}% of detractors' comments" in items[0].children[1]
    assert f"{want.detractor_comments:,} detractor comments" in block.children[2].children


def test_one_pager_of_a_scope_too_small_for_a_driver_model(in_app, dash_app,
                                                           demo_engine) -> None:
    # A store's first month of answers: fewer complete answers than ratings + 2, so no
    # model (r_squared None). The benchmark's small company hit a TypeError here.
    from reports.token import ReportRequest

    report = sys.modules["pages.report"]
    with demo_engine.connect() as conn:
        first = Month.of(conn.execute(select(func.min(schema.survey_response.c.submitted_at))
                                      ).scalar_one())
        stores = conn.execute(text("SELECT id FROM org_unit WHERE kind = 'store' ORDER BY id")
                              ).scalars().all()
        small = [s for s in stores
                 if key_drivers(conn, start=first.shift(-2).start, end=first.end,
                                outcome="nps", unit=s).r_squared is None]
    assert small, "the check needs a store with too few answers in its first month"
    page = in_app(report.build, ReportRequest(scope=Scope((small[0],)), period=first))
    words = str(page)
    assert "Too few rated answers for a driver analysis." in words
    assert "nan%" not in words
