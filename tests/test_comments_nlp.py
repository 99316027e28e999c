"""Comment analytics on fixed small corpora with known answers, in English, French and Russian.

Each corpus has three themes (the checkout queue, friendly staff, high prices), 12 comments
each, written from phrase combinations; queue and price comments come from detractors,
staff comments from promoters. Known answers: every comment's language; the three themes
found as three topics, each theme entirely in its own topic; comments that were never
labelled score negative (queue) and positive (staff). Results land in the tables through the
real ETL step on SQLite and PostgreSQL, only new and changed comments are analysed again,
and a topic keeps its id (and an admin's label) across a refit.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import func, insert, select, update

from etl.comments_nlp import (
    analyse_comments,
    detect_language,
    lemmas,
    sentiment_label,
)
from queries import schema
from queries.settings import load_settings
from reports.topics import merge_topics, rename_topic

NOW = dt.datetime(2026, 11, 30, 12, 0)

CORPORA = {
    "en": {
        "queue": (["The queue at the checkout", "Waiting at the till", "The checkout queue",
                   "Queue at the tills"],
                  ["was far too long", "took forever, a long wait", "is always long and slow"]),
        "staff": (["The staff", "The shop assistants", "Staff in the garden department",
                   "The assistant at the desk"],
                  ["were friendly and helpful", "gave friendly, helpful advice",
                   "were helpful and very friendly"]),
        "price": (["Prices", "The prices of plants", "Plant prices", "The prices"],
                  ["are too expensive", "are expensive compared to other shops",
                   "went up, too expensive now"]),
    },
    "fr": {
        "queue": (["L'attente en caisse", "La file d'attente à la caisse",
                   "L'attente aux caisses", "La queue en caisse"],
                  ["était beaucoup trop longue", "est toujours longue",
                   "a duré vingt minutes, trop longue"]),
        "staff": (["Le personnel", "Les vendeurs", "Le personnel du rayon jardin",
                   "Le vendeur"],
                  ["est aimable et compétent", "très aimable, de bons conseils",
                   "toujours aimable et disponible"]),
        "price": (["Les prix", "Les prix des plantes", "Le prix des plantes", "Les tarifs"],
                  ["sont trop élevés", "sont chers par rapport aux concurrents",
                   "ont augmenté, trop chers"]),
    },
    "ru": {
        "queue": (["Очередь на кассе", "Очередь в кассу", "Ожидание на кассе",
                   "Длинная очередь на кассе"],
                  ["была слишком длинной", "очень долгая", "заняла двадцать минут"]),
        "staff": (["Персонал", "Продавцы", "Консультант в отделе растений", "Продавец"],
                  ["вежливый и внимательный", "очень вежливые и помогли с выбором",
                   "всегда вежливый и приветливый"]),
        "price": (["Цены", "Цены на растения", "Цена растений", "Цены в магазине"],
                  ["слишком высокие", "дороже, чем у конкурентов", "выросли, слишком дорого"]),
    },
}
SCORES = {"queue": [2, 3, 4, 5, 6, 1], "staff": [9, 10], "price": [3, 5, 6, 4]}
# Never labelled (no NPS): their sentiment must come from what the words say.
UNLABELLED = {
    "en": {"negative": "Another long queue at the checkout, a slow wait",
           "positive": "Friendly staff, helpful advice"},
    "fr": {"negative": "Attente trop longue à la caisse",
           "positive": "Personnel aimable, bons conseils"},
    "ru": {"negative": "Слишком длинная очередь на кассе",
           "positive": "Вежливый персонал, помогли с выбором"},
}


def corpus(language: str) -> list[tuple[str, str, int]]:
    """(theme, comment, nps) for the language's 36 comments."""
    out = []
    for theme, (heads, tails) in CORPORA[language].items():
        for i, (h, t) in enumerate(itertools.product(heads, tails)):
            out.append((theme, f"{h} {t}.", SCORES[theme][i % len(SCORES[theme])]))
    return out


def _add_unit(conn) -> None:
    conn.execute(insert(schema.org_unit).values(id="S1", name="Store 1", kind="store",
                                                source="test", loaded_at=NOW))


def _add(conn, rid: str, comment: str | None, nps: int | None,
         loaded_at: dt.datetime = NOW) -> int:
    return int(conn.execute(insert(schema.survey_response).values(
        source="test", response_id=rid, submitted_at=dt.datetime(2026, 11, 3),
        org_unit_id="S1", survey_kind="transactional", nps=nps, comment=comment,
        loaded_at=loaded_at)).inserted_primary_key[0])


def _analyses(engine) -> dict[int, dict]:
    ca = schema.comment_analysis
    with engine.connect() as conn:
        return {r.response_pk: dict(r._mapping) for r in conn.execute(select(ca))}


@pytest.mark.parametrize("language", ["en", "fr", "ru"])
def test_language_detected_for_every_comment(language: str) -> None:
    for _, text, _ in corpus(language):
        assert detect_language(text, ("en", "fr", "ru")) == language, text
    for text in UNLABELLED[language].values():
        assert detect_language(text, ("en", "fr", "ru")) == language, text


def test_lemmas_drop_stopwords_and_inflection() -> None:
    assert lemmas("The queues were slow", "en") == ["queue", "slow"]
    assert lemmas("L'attente aux caisses était longue", "fr") == ["attente", "caisse", "long"]
    assert lemmas("Очереди на кассах", "ru") == ["очередь", "касса"]


def test_sentiment_labels_cut_at_a_fifth() -> None:
    assert [sentiment_label(x) for x in (-0.5, -0.2, 0.0, 0.2, 0.21, None)] == [
        "negative", "neutral", "neutral", "neutral", "positive", None]


@pytest.mark.parametrize("language", ["en", "fr", "ru"])
def test_topics_and_sentiment_on_a_small_corpus(engine, language: str) -> None:
    rows = corpus(language)
    with engine.begin() as conn:
        _add_unit(conn)
        ids = {_add(conn, f"r{i}", text, nps): theme for i, (theme, text, nps)
               in enumerate(rows)}
        extra = {_add(conn, f"u-{k}", text, None): k
                 for k, text in UNLABELLED[language].items()}
    settings = load_settings(cx_comment_topics=3)
    result = analyse_comments(engine, settings, now=NOW)
    assert result.analysed == len(rows) + 2
    assert result.by_language == {language: len(rows) + 2}
    assert result.refitted == [language]

    got = _analyses(engine)
    assert {g["language"] for g in got.values()} == {language}
    # Each theme wholly in one topic, the three themes in three different topics.
    topic_of = {theme: {got[pk]["topic_id"] for pk, t in ids.items() if t == theme}
                for theme in CORPORA[language]}
    assert all(len(t) == 1 and None not in t for t in topic_of.values()), topic_of
    assert len({next(iter(t)) for t in topic_of.values()}) == 3
    # The unlabelled comments land in their theme's topic and say what they mean.
    for pk, kind in extra.items():
        theme = "queue" if kind == "negative" else "staff"
        assert got[pk]["topic_id"] == next(iter(topic_of[theme]))
        assert got[pk]["sentiment_label"] == kind, (kind, got[pk]["sentiment"])
    # Cross-fitted scores of the labelled comments still separate the themes.
    mean = {theme: sum(got[pk]["sentiment"] for pk, t in ids.items() if t == theme) / 12
            for theme in CORPORA[language]}
    assert mean["staff"] > 0.2 > -0.2 > mean["queue"]

    with engine.connect() as conn:
        topics = {r.id: r for r in conn.execute(select(schema.comment_topic))}
        models = conn.execute(select(schema.comment_model.c.kind, schema.comment_model.c.n_docs)
                              .order_by(schema.comment_model.c.kind)).all()
    assert [tuple(m) for m in models] == [("sentiment", 36), ("topics", 38)]
    words = {"en": "queue", "fr": "attente", "ru": "очередь"}[language]
    assert words in topics[next(iter(topic_of["queue"]))].terms


def test_only_new_and_changed_comments_are_analysed_and_topics_keep_their_ids(engine) -> None:
    rows = corpus("en")
    with engine.begin() as conn:
        _add_unit(conn)
        ids = {_add(conn, f"r{i}", text, nps): theme for i, (theme, text, nps)
               in enumerate(rows)}
    settings = load_settings(cx_comment_topics=3)
    analyse_comments(engine, settings, now=NOW)
    first = _analyses(engine)
    queue_topic = first[next(pk for pk, t in ids.items() if t == "queue")]["topic_id"]
    with engine.begin() as conn:
        rename_topic(conn, queue_topic, "Checkout queues")

    # Nothing new: nothing analysed. Reloaded with the same words: not analysed again.
    later = NOW + dt.timedelta(hours=1)
    assert analyse_comments(engine, settings, now=later).analysed == 0
    pk_same, pk_changed, pk_blank = list(ids)[:3]
    with engine.begin() as conn:
        sr = schema.survey_response
        conn.execute(update(sr).where(sr.c.id == pk_same).values(loaded_at=later))
        conn.execute(update(sr).where(sr.c.id == pk_changed).values(
            comment="The staff were friendly and helpful.", loaded_at=later))
        conn.execute(update(sr).where(sr.c.id == pk_blank).values(comment="  ",
                                                                   loaded_at=later))
    result = analyse_comments(engine, settings, now=later + dt.timedelta(minutes=1))
    assert (result.analysed, result.unchanged, result.removed) == (1, 1, 1)
    second = _analyses(engine)
    assert pk_blank not in second
    assert second[pk_same]["analysed_at"] == later + dt.timedelta(minutes=1)
    assert second[pk_same]["topic_id"] == first[pk_same]["topic_id"]
    again = analyse_comments(engine, settings, now=later + dt.timedelta(minutes=2))
    assert (again.analysed, again.unchanged) == (0, 0)
    staff_topic = first[next(pk for pk, t in ids.items() if t == "staff")]["topic_id"]
    assert second[pk_changed]["topic_id"] == staff_topic
    assert second[pk_changed]["sentiment_label"] == "positive"
    assert result.refitted == []

    # Over half as many comments again (35 + 21 >= 1.5 x 36): a refit, and every theme
    # keeps its topic's id and label.
    with engine.begin() as conn:
        for i, (_theme, text, nps) in enumerate(rows[::2] + rows[1:4]):
            _add(conn, f"again{i}", text.replace(".", " again."), nps, loaded_at=later)
    result = analyse_comments(engine, settings, now=later + dt.timedelta(hours=1))
    assert result.refitted == ["en"]
    third = _analyses(engine)
    for theme in CORPORA["en"]:
        kept = [pk for pk, t in ids.items() if t == theme and pk not in (pk_changed, pk_blank)]
        before = {first[pk]["topic_id"] for pk in kept}
        after = {third[pk]["topic_id"] for pk in kept}
        assert before == after
    with engine.connect() as conn:
        ct = schema.comment_topic
        assert conn.execute(select(ct.c.label).where(ct.c.id == queue_topic)).scalar_one() \
            == "Checkout queues"
        assert conn.execute(select(func.count()).select_from(ct)).scalar_one() == 3


def test_merging_topics_and_bad_edits(engine) -> None:
    with engine.begin() as conn:
        _add_unit(conn)
        for i, (_theme, text, nps) in enumerate(corpus("fr")):
            _add(conn, f"r{i}", text, nps)
    analyse_comments(engine, load_settings(cx_comment_topics=3), now=NOW)
    ct = schema.comment_topic
    with engine.begin() as conn:
        a, b, c = sorted(conn.execute(select(ct.c.id)).scalars())
        merge_topics(conn, [a], b)
        merge_topics(conn, [b], c)  # a follows b into c: one level, never a chain
        assert dict(conn.execute(select(ct.c.id, ct.c.merged_into)).all()) == {
            a: c, b: c, c: None}
        with pytest.raises(ValueError, match="into itself"):
            merge_topics(conn, [c], c)
        with pytest.raises(ValueError, match="is itself merged"):
            merge_topics(conn, [c], a)
        with pytest.raises(ValueError, match="no topic 999"):
            rename_topic(conn, 999, "x")
        with pytest.raises(ValueError, match="label: at most 200"):
            rename_topic(conn, a, "x" * 201)


def _load_corpora(engine) -> None:
    with engine.begin() as conn:
        _add_unit(conn)
        for language in ("en", "fr"):
            for i, (_, text, nps) in enumerate(corpus(language)):
                _add(conn, f"{language}{i}", text, nps)


def _stored(engine) -> dict[str, tuple]:
    """Each comment's analysis by response id (pks differ between databases)."""
    ca, sr = schema.comment_analysis, schema.survey_response
    with engine.connect() as conn:
        rows = conn.execute(select(sr.c.response_id, ca.c.language, ca.c.lemmas,
                                   ca.c.topic_id, ca.c.topic_weight, ca.c.sentiment,
                                   ca.c.sentiment_label)
                            .select_from(ca.join(sr, sr.c.id == ca.c.response_pk))).all()
    return {r[0]: tuple(round(v, 9) if isinstance(v, float) else v for v in r[1:])
            for r in rows}


def test_small_chunks_give_the_same_analysis_as_one(engine, tmp_path) -> None:
    """Read and analysed 7 comments at a time (11 chunks for 72 comments in two languages),
    the stored analysis is the one of a single pass, comment for comment."""
    from etl.migrate import upgrade
    from queries.db import make_engine

    settings = load_settings(cx_comment_topics=3)
    _load_corpora(engine)
    other = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    upgrade(other)
    _load_corpora(other)
    chunked = analyse_comments(engine, settings, now=NOW, chunk=7)
    whole = analyse_comments(other, settings, now=NOW)
    assert chunked.analysed == whole.analysed == 72
    assert chunked.refitted == whole.refitted == ["en", "fr"]
    got, want = _stored(engine), _stored(other)
    assert len(got) == 72 and got == want
    assert all(v[5] is not None for v in got.values())  # every comment has its label
    other.dispose()


def test_a_pass_cut_short_is_scored_by_the_next(engine) -> None:
    """A pass that stored its chunks but stopped before scoring (the process died) leaves
    comments without a label; the next pass scores them, and reads none again."""
    from etl.comments_nlp import (
        AnalysisResult,
        _analyse_chunk,
        _pending,
        _Touched,
        languages_of,
    )
    from etl.rollup import topic_months_state

    settings = load_settings(cx_comment_topics=3)
    _load_corpora(engine)
    with engine.begin() as conn:
        rows = _pending(conn)
        _analyse_chunk(conn, rows, languages_of(settings), NOW, AnalysisResult(),
                       _Touched(topic_months_state(conn)))
    assert {v[5] for v in _stored(engine).values()} == {None}
    result = analyse_comments(engine, settings, now=NOW)
    assert result.analysed == 0  # already read: only scored
    assert result.refitted == ["en", "fr"]
    labels = {k: v[5] for k, v in _stored(engine).items()}
    assert None not in labels.values() and len(labels) == 72


def test_models_fit_on_the_newest_comments_and_score_every_one(engine, monkeypatch) -> None:
    """Past FIT_SAMPLE comments the models learn from the newest FIT_SAMPLE only (the fit's
    cost stays bounded); every comment is still given a topic and a sentiment."""
    import etl.comments_nlp as nlp

    monkeypatch.setattr(nlp, "FIT_SAMPLE", 30)
    settings = load_settings(cx_comment_topics=3)
    with engine.begin() as conn:
        _add_unit(conn)
        for i, (_, text, nps) in enumerate(corpus("en")):
            _add(conn, f"en{i}", text, nps)
    result = analyse_comments(engine, settings, now=NOW, chunk=10)
    assert result.refitted == ["en"]
    cm = schema.comment_model
    with engine.connect() as conn:
        models = dict(conn.execute(select(cm.c.kind, cm.c.n_docs)).all())
    # Topics record the comments they describe (all 36); the sentiment model the labelled
    # answers of the sample it learnt from: the newest 30, all labelled.
    assert models == {"topics": 36, "sentiment": 30}
    stored = _stored(engine)
    assert len(stored) == 36 and all(v[5] is not None for v in stored.values())


def _comment_sums(engine) -> dict[str, int]:
    tm = schema.agg_topic_month
    with engine.connect() as conn:
        return dict(conn.execute(select(tm.c.month, func.sum(tm.c.comments))
                                 .group_by(tm.c.month)).all())


def test_the_comment_sums_of_the_months_an_analysis_touched_are_rebuilt_and_only_those(
        engine) -> None:
    """A day's comments change a month or two: the analysis rebuilds those months' sums,
    not ten years of them; when someone else marked the sums stale meanwhile (or they were
    stale before), it rebuilds them all."""
    from etl.rollup import TOPIC_MONTH, bump_summary

    tm, sr = schema.agg_topic_month, schema.survey_response
    settings = load_settings(cx_comment_topics=3)
    _load_corpora(engine)
    analyse_comments(engine, settings, now=NOW)
    assert _comment_sums(engine) == {"2026-11": 72}

    def add(rid: str, day: dt.date) -> None:
        with engine.begin() as conn:
            conn.execute(insert(sr).values(
                source="test", response_id=rid, submitted_at=day, org_unit_id="S1",
                survey_kind="transactional", nps=3, comment=corpus("en")[0][1],
                loaded_at=NOW))

    # November's sums made wrong by hand while marked current: a rebuild would mend them.
    with engine.begin() as conn:
        rows = conn.execute(update(tm).where(tm.c.month == "2026-11")
                            .values(comments=tm.c.comments + 1000),
                            execution_options={"preserve_rowcount": True}).rowcount
    assert rows >= 1
    add("oct-1", dt.datetime(2026, 10, 14, 9, 30))
    result = analyse_comments(engine, settings, now=NOW)
    assert result.analysed == 1 and result.refitted == []
    # October counted; November, untouched by this analysis, not rebuilt.
    assert _comment_sums(engine) == {"2026-10": 1, "2026-11": 72 + 1000 * rows}

    # Marked stale by another writer meanwhile: every month is rebuilt.
    with engine.begin() as conn:
        bump_summary(conn, TOPIC_MONTH)
    add("sep-1", dt.datetime(2026, 9, 2, 18, 0))
    analyse_comments(engine, settings, now=NOW)
    assert _comment_sums(engine) == {"2026-09": 1, "2026-10": 1, "2026-11": 72}
    st = schema.summary_state
    with engine.connect() as conn:
        state = conn.execute(select(st.c.version, st.c.done_version)
                             .where(st.c.name == TOPIC_MONTH)).one()
    assert state.version == state.done_version

