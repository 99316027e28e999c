"""The admin's Topics page: lists the topics the ETL found, refuses other roles (page and
forged callbacks), and its rename/merge go through etl.comments_nlp with an audit entry."""

from __future__ import annotations

import sys

from sqlalchemy import select

from auth.audit import entries
from queries import schema
from queries.comment_topics import topics
from tests.conftest import sign_in
from tests.test_access import dash_call, nav_visible, page_content


def test_topics_page_lists_every_topic(in_app, dash_app, demo_engine) -> None:
    page = sys.modules["pages.topics"]
    table = in_app(page.render, 0)
    with demo_engine.connect() as conn:
        want = topics(conn)
    rows = table.children[1].children
    assert [r.children[0].children for r in rows] == [int(i) for i in want["id"]]
    assert [r.children[3].children for r in rows] == list(want["terms"])


def test_only_admins_reach_the_topics_page(served_demo: str) -> None:
    for who, allowed in (("admin", True), ("executive", False), ("store", False)):
        http = sign_in(served_demo, who)
        body = page_content(http, served_demo, "/topics").text
        assert ("This page is for" in body) == (not allowed), who
        layout = http.get(served_demo + "/_dash-layout", timeout=30).text
        assert nav_visible(layout, "/topics") == allowed, who
        if not allowed:
            forged = dash_call(http, served_demo, [("topics-table", "children")],
                               [{"id": "topics-version", "property": "data", "value": 1}])
            assert forged.status_code == 403


def test_rename_and_merge_are_audited(engine, dash_app, monkeypatch) -> None:
    """The page's change function on a database of its own (the demo one is read-only)."""
    import datetime as dt

    from etl.comments_nlp import analyse_comments
    from queries.settings import load_settings
    from tests.test_comments_nlp import _add, _add_unit, corpus

    with engine.begin() as conn:
        _add_unit(conn)
        for i, (_t, text, nps) in enumerate(corpus("en")):
            _add(conn, f"r{i}", text, nps)
    analyse_comments(engine, load_settings(cx_comment_topics=3),
                     now=dt.datetime(2026, 11, 30))
    page = sys.modules["pages.topics"]
    monkeypatch.setattr(page.context, "engine", lambda: engine)
    monkeypatch.setattr(page, "current_principal", lambda: None)
    ct = schema.comment_topic
    with engine.connect() as conn:
        a, b, _c = sorted(conn.execute(select(ct.c.id)).scalars())
    assert page.apply_change("rename", topic=a, label=" Queues ") == f"Topic #{a} renamed."
    assert page.apply_change("merge", topic=b, target=a) == f"Topic #{b} now counts as #{a}."
    with engine.connect() as conn:
        assert dict(conn.execute(select(ct.c.id, ct.c.label)).all())[a] == "Queues"
        assert conn.execute(select(ct.c.merged_into).where(ct.c.id == b)).scalar_one() == a
        log = entries(conn)
    assert set(log["action"]) >= {"topic_rename", "topic_merge"}
