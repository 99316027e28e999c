"""Comment analytics: language, lemmas, topics and sentiment of survey comments, offline.

Runs after each survey load (`analyse_comments`), on new and changed comments only, and stores
its results in `comment_analysis`; pages read those tables and never compute text at page time.
Everything runs on the CPU from data shipped inside the installed packages, so nothing is
downloaded at run time:

- language: `simplemma.langdetect` among the configured languages (CX_COMMENT_LANGUAGES),
  Cyrillic script deciding Russian outright; a comment too short to tell takes the language
  most comments of its batch have;
- lemmas: `simplemma` tokeniser and lemmatiser, minus yake's stopword list of the language;
- topics: NMF on TF-IDF (unigrams and bigrams of lemmas) per language; each comment gets its
  dominant topic. A topic keeps its id when the model is refitted (new topics are matched to
  the old ones on their term weights), so an admin's label or merge survives a refit;
- sentiment: a lexicon where one ships (VADER for English) and, where the survey has enough
  detractors and promoters with comments, a logistic regression trained on those weak labels.
  Stored scores of the training comments are cross-fitted (each predicted by a model that did
  not see it), so agreement with the score can be measured honestly.

A language's models are refitted when it has none yet or its comments have grown by half
since the last fit; in between, new comments are scored with the stored models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import pairwise

import numpy as np
from scipy import sparse
from scipy.optimize import nnls
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from etl.rollup import TOPIC_MONTH, bump_summary, settle_topic_months, topic_months_state
from queries import schema
from queries.settings import Settings, get_settings
from queries.sqlfuncs import month_of

log = logging.getLogger(__name__)

sr = schema.survey_response
ca = schema.comment_analysis
ct = schema.comment_topic
cm = schema.comment_model

MIN_TOPIC_DOCS = 20
"""A language needs this many analysed comments before topics are fitted."""
MIN_CLASS_DOCS = 10
"""...and this many detractor and promoter comments each before a sentiment model is."""
REFIT_GROWTH = 1.5
"""Refit a language's models when its comments have grown by this factor since the fit."""
MATCH_SIMILARITY = 0.3
"""A refitted topic keeps an old topic's id when their term weights are this similar."""
TOP_TERMS = 30
NEGATIVE, POSITIVE = -0.2, 0.2
"""Sentiment below NEGATIVE is 'negative', above POSITIVE 'positive', between 'neutral'."""
FOLDS = 5
LEXICONS = ("en",)
CHUNK_COMMENTS = 20_000
"""Comments read, analysed and scored per step (memory stays flat at any volume)."""
FIT_SAMPLE = 200_000
"""Models are fitted on at most this many comments of a language, the newest."""
"""Languages with a sentiment lexicon shipped in a package (VADER: English)."""

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_WORD = re.compile(r"^[^\W\d_](?:[^\W\d_]|['’-])*$", re.UNICODE)
_ELISION = re.compile(r"^(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu)['’](?=\w)")


# --------------------------------------------------------------------------- language, lemmas


def languages_of(settings: Settings) -> tuple[str, ...]:
    """The configured comment languages, in order."""
    return tuple(x.strip() for x in settings.cx_comment_languages.split(",") if x.strip())


def detect_language(text: str, languages: Sequence[str]) -> str | None:
    """The language of `text` among `languages` (ISO 639-1), or None when it cannot tell."""
    letters = _LETTERS.findall(text)
    if not letters:
        return None
    if "ru" in languages and sum(bool(_CYRILLIC.match(c)) for c in letters) > len(letters) / 2:
        return "ru"
    latin = tuple(lang for lang in languages if lang != "ru") or tuple(languages)
    import simplemma

    # simplemma's share of words its dictionary knows, averaged with the share of the
    # language's stopwords: dictionaries overlap on short words ("pas de pb" is all
    # English to simplemma), function words do not.
    known = dict(simplemma.langdetect(text, lang=latin))
    words = [_plain(w.lower()) for w in simplemma.simple_tokenizer(text) if _LETTERS.match(w)]
    scores = sorted(((known.get(lang, 0.0) + sum(w in stopwords(lang) for w in words)
                      / max(len(words), 1)) / 2, lang) for lang in latin)[::-1]
    best, top = scores[0][1], scores[0][0]
    if top <= 0 or (len(scores) > 1 and scores[1][0] == top):
        return None  # nothing known, or a tie: says nothing
    return best


@lru_cache(maxsize=64)
def stopwords(language: str) -> frozenset[str]:
    """yake's stopword list of `language` (empty when yake has none)."""
    name = {"cs": "cz"}.get(language, language)
    try:
        path = resources.files("yake") / "core" / "StopwordsList" / f"stopwords_{name}.txt"
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return frozenset()
    words = {w.strip().lower() for w in text.splitlines() if w.strip()}
    # Comments typed without accents ("tres" for "très") are common: drop those too.
    return frozenset(words | {_plain(w) for w in words})


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word)
                   if not unicodedata.combining(c))


def lemmas(text: str, language: str) -> list[str]:
    """The content lemmas of `text`: words lower-cased and lemmatised, stopwords removed."""
    import simplemma

    stop = stopwords(language)
    out = []
    for token in simplemma.simple_tokenizer(text):
        word = token.lower().strip("'’-")
        if language == "fr":  # elision: "l'attente" is "attente"
            word = _ELISION.sub("", word)
        if len(word) < 2 or not _WORD.match(word) or word in stop:
            continue
        lemma = simplemma.lemmatize(word, lang=language).lower()
        if len(lemma) >= 2 and lemma not in stop:
            out.append(lemma)
    return out


def features(lemma_text: str) -> list[str]:
    """Terms of a comment: its lemmas and the pairs of neighbouring lemmas."""
    words = lemma_text.split()
    return words + [f"{a}_{b}" for a, b in pairwise(words)]


def text_hash(text: str) -> str:
    """SHA-256 of a comment as analysed (whitespace-trimmed)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- tf-idf


@dataclass
class Vectors:
    """A fitted TF-IDF: vocabulary (term -> column) and idf; `transform` as scikit-learn's
    TfidfVectorizer(sublinear_tf=True) does, so a stored model scores new comments alike."""

    vocabulary: dict[str, int]
    idf: np.ndarray

    def transform(self, docs: Sequence[str]) -> sparse.csr_matrix:
        """Rows of l2-normalised TF-IDF of the lemma strings `docs`."""
        rows, cols, vals = [], [], []
        for i, doc in enumerate(docs):
            counts = Counter(t for t in features(doc) if t in self.vocabulary)
            for term, n in counts.items():
                j = self.vocabulary[term]
                rows.append(i)
                cols.append(j)
                vals.append((1 + math.log(n)) * self.idf[j])
        m = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(self.vocabulary)))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1
        return sparse.csr_matrix(sparse.diags(1 / norms) @ m)

    def to_json(self) -> dict:
        """The vectoriser as JSON-able data."""
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {"terms": terms, "idf": [round(float(x), 6) for x in self.idf]}

    @classmethod
    def from_json(cls, data: dict) -> Vectors:
        """The vectoriser stored by `to_json`."""
        return cls({t: i for i, t in enumerate(data["terms"])}, np.asarray(data["idf"]))


def fit_vectors(docs: Sequence[str], *, min_df: int = 2, max_df: float = 0.5) -> Vectors:
    """Fit TF-IDF on lemma strings (terms in at least `min_df` and at most `max_df` of them)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    max_df_eff = max_df if len(docs) * max_df >= min_df else 1.0
    vec = TfidfVectorizer(analyzer=features, min_df=min_df, max_df=max_df_eff,
                          sublinear_tf=True)
    vec.fit(list(docs))
    return Vectors({t: int(i) for t, i in vec.vocabulary_.items()}, vec.idf_)


# --------------------------------------------------------------------------- topics


def topic_count(n_docs: int, configured: int = 0) -> int:
    """Topics for a language with `n_docs` comments: the configured number, else about one
    per 40 comments between 2 and 12 (enough to read, few enough to compare)."""
    if configured:
        return configured
    return max(2, min(12, round(n_docs / 40) or 2))


@dataclass
class TopicModel:
    """NMF components over a vocabulary; topic i of the model is stored as `topic_ids[i]`."""

    vectors: Vectors
    components: np.ndarray
    topic_ids: list[int] = field(default_factory=list)

    def assign(self, docs: Sequence[str]) -> list[tuple[int | None, float | None]]:
        """Each comment's dominant topic (index) and its weight; None for a comment with
        no known term."""
        x = self.vectors.transform(docs).toarray()
        out: list[tuple[int | None, float | None]] = []
        h = self.components.T
        for row in x:
            if not row.any():
                out.append((None, None))
                continue
            w, _ = nnls(h, row)
            if not w.any():
                out.append((None, None))
            else:
                k = int(np.argmax(w))
                out.append((k, float(w[k] / w.sum())))
        return out

    def top_terms(self, k: int, n: int = TOP_TERMS) -> dict[str, float]:
        """Topic k's strongest terms with their weights (normalised to sum 1)."""
        row = self.components[k]
        terms = sorted(self.vectors.vocabulary, key=self.vectors.vocabulary.__getitem__)
        order = np.argsort(-row)[:n]
        total = float(row[order].sum()) or 1.0
        return {terms[j].replace("_", " "): round(float(row[j]) / total, 5)
                for j in order if row[j] > 0}

    def to_json(self) -> dict:
        """The model as JSON-able data."""
        return {"vectors": self.vectors.to_json(), "topic_ids": self.topic_ids,
                "components": [[round(float(v), 6) for v in r] for r in self.components]}

    @classmethod
    def from_json(cls, data: dict) -> TopicModel:
        """The model stored by `to_json`."""
        return cls(Vectors.from_json(data["vectors"]), np.asarray(data["components"]),
                   list(data["topic_ids"]))


def fit_topics(docs: Sequence[str], n_topics: int) -> TopicModel | None:
    """NMF topics of the lemma strings `docs`; None when too few terms recur to fit them."""
    from sklearn.decomposition import NMF

    try:
        vectors = fit_vectors(docs)
    except ValueError:  # no term in two comments
        return None
    x = vectors.transform(docs)
    k = min(n_topics, len(vectors.vocabulary), len(docs))
    if k < 1:
        return None
    nmf = NMF(n_components=k, init="nndsvd", random_state=0, max_iter=500)
    nmf.fit(x)
    keep = [i for i in range(k) if nmf.components_[i].any()]
    return TopicModel(vectors, nmf.components_[keep])


def similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """Cosine similarity of two topics' term weights."""
    dot = sum(w * b.get(t, 0.0) for t, w in a.items())
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def label_terms(weights: dict[str, float], n: int = 4) -> str:
    """A readable automatic label: the topic's top `n` terms, a word already shown inside
    a pair not repeated alone."""
    shown: list[str] = []
    for term in weights:
        if " " not in term and any(term in s.split() for s in shown):
            continue
        shown.append(term)
        if len(shown) == n:
            break
    return ", ".join(shown)


def _match_topics(conn: Connection, language: str, model: TopicModel, now: dt.datetime) -> None:
    """Give each topic of a new model an id: an old topic's where their terms agree (best
    pairs first), a new one otherwise; old topics left unmatched become inactive."""
    old = {r.id: json.loads(r.weights) for r in conn.execute(
        select(ct.c.id, ct.c.weights).where(ct.c.language == language, ct.c.active))}
    new = [model.top_terms(k) for k in range(len(model.components))]
    pairs = sorted(((similarity(w, ow), k, oid) for k, w in enumerate(new)
                    for oid, ow in old.items()), reverse=True)
    ids: dict[int, int] = {}
    used: set[int] = set()
    for sim, k, oid in pairs:
        if sim < MATCH_SIMILARITY:
            break
        if k in ids or oid in used:
            continue
        ids[k] = oid
        used.add(oid)
    for k, weights in enumerate(new):
        values = {"terms": label_terms(weights)[:500], "weights": json.dumps(weights),
                  "active": True, "updated_at": now}
        if k in ids:
            conn.execute(update(ct).where(ct.c.id == ids[k]).values(**values))
        else:
            ids[k] = int(conn.execute(insert(ct).values(language=language, created_at=now,
                                                        **values)).inserted_primary_key[0])
    gone = set(old) - used
    if gone:
        conn.execute(update(ct).where(ct.c.id.in_(gone)).values(active=False, updated_at=now))
    model.topic_ids = [ids[k] for k in range(len(new))]


# --------------------------------------------------------------------------- sentiment


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicon_sentiment(text: str, language: str) -> float | None:
    """The lexicon's score of `text` in [-1, 1] (VADER compound), None without a lexicon."""
    if language != "en":
        return None
    return float(_vader().polarity_scores(text)["compound"])


@dataclass
class SentimentModel:
    """Logistic regression of promoter (1) vs detractor (0) on TF-IDF of the lemmas."""

    vectors: Vectors
    coef: np.ndarray
    intercept: float

    def score(self, docs: Sequence[str]) -> np.ndarray:
        """2 P(promoter) - 1 for each comment: -1 sounds like a detractor, 1 a promoter."""
        if not len(docs):
            return np.zeros(0)
        z = self.vectors.transform(docs) @ self.coef + self.intercept
        return 2 / (1 + np.exp(-np.asarray(z).ravel())) - 1

    def to_json(self) -> dict:
        """The model as JSON-able data."""
        return {"vectors": self.vectors.to_json(), "intercept": float(self.intercept),
                "coef": [round(float(v), 6) for v in self.coef]}

    @classmethod
    def from_json(cls, data: dict) -> SentimentModel:
        """The model stored by `to_json`."""
        return cls(Vectors.from_json(data["vectors"]), np.asarray(data["coef"]),
                   float(data["intercept"]))


def fit_sentiment(docs: Sequence[str], labels: Sequence[int]) -> SentimentModel | None:
    """A promoter (1) vs detractor (0) classifier of lemma strings; None when either class
    has fewer than MIN_CLASS_DOCS comments or no term recurs."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels)
    if min((y == 1).sum(), (y == 0).sum()) < MIN_CLASS_DOCS:
        return None
    try:
        vectors = fit_vectors(docs, max_df=0.9)
    except ValueError:
        return None
    clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
    clf.fit(vectors.transform(docs), y)
    return SentimentModel(vectors, clf.coef_[0], float(clf.intercept_[0]))


def cross_fitted(docs: Sequence[str], labels: Sequence[int],
                 folds: int = FOLDS) -> np.ndarray | None:
    """Each labelled comment's score from a model fitted on the other folds (stratified,
    fixed seed), so its stored sentiment never saw its own label."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    k = min(folds, int((y == 1).sum()), int((y == 0).sum()))
    if k < 2:
        return None
    out = np.full(len(docs), np.nan)
    for train, test in StratifiedKFold(k, shuffle=True, random_state=0).split(docs, y):
        model = fit_sentiment([docs[i] for i in train], y[train])
        if model is None:
            return None
        out[test] = model.score([docs[i] for i in test])
    return out


def combine(lexicon: float | None, model: float | None) -> float | None:
    """The stored sentiment: the mean of the lexicon's and the model's where both speak."""
    parts = [v for v in (lexicon, model) if v is not None and not math.isnan(v)]
    return float(np.mean(parts)) if parts else None


def sentiment_label(score: float | None) -> str | None:
    """'negative', 'neutral' or 'positive' (None without a score)."""
    if score is None:
        return None
    return "negative" if score < NEGATIVE else "positive" if score > POSITIVE else "neutral"


def weak_label(nps: int | None) -> int | None:
    """1 for a promoter (9-10), 0 for a detractor (0-6), None otherwise."""
    if nps is None:
        return None
    return 1 if nps >= 9 else 0 if nps <= 6 else None


# --------------------------------------------------------------------------- the ETL step


@dataclass
class AnalysisResult:
    """What one pass did: comments analysed, analyses removed, languages refitted."""

    analysed: int = 0
    unchanged: int = 0
    removed: int = 0
    refitted: list[str] = field(default_factory=list)
    by_language: dict[str, int] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def _load_model(conn: Connection, language: str, kind: str) -> tuple[int, dict] | None:
    row = conn.execute(select(cm.c.n_docs, cm.c.params).where(
        cm.c.language == language, cm.c.kind == kind)).first()
    return (int(row.n_docs), json.loads(row.params)) if row else None


def _save_model(conn: Connection, language: str, kind: str, n_docs: int, params: dict,
                now: dt.datetime) -> None:
    conn.execute(delete(cm).where(cm.c.language == language, cm.c.kind == kind))
    conn.execute(insert(cm).values(language=language, kind=kind, n_docs=n_docs, fitted_at=now,
                                   params=json.dumps(params, separators=(",", ":"))))


def _pending(conn: Connection, *, after: int | None = None, limit: int | None = None) -> list:
    """Responses whose comment is new or loaded again since it was analysed, by id: the
    first `limit` after response id `after`."""
    has_text = and_(sr.c.comment.is_not(None), func.length(func.trim(sr.c.comment)) > 0)
    query = (select(sr.c.id, sr.c.comment, sr.c.nps, ca.c.text_hash)
             .select_from(sr.outerjoin(ca, ca.c.response_pk == sr.c.id))
             .where(has_text, or_(ca.c.response_pk.is_(None),
                                  sr.c.loaded_at > ca.c.analysed_at))
             .order_by(sr.c.id))
    if after is not None:
        query = query.where(sr.c.id > after)
    return conn.execute(query.limit(limit)).all()


def _remove_blank(conn: Connection) -> list[int]:
    """Drop the analyses of responses whose comment has since been emptied; their ids."""
    blank = select(sr.c.id).where(or_(sr.c.comment.is_(None),
                                      func.length(func.trim(sr.c.comment)) == 0))
    ids = list(conn.execute(select(ca.c.response_pk).where(ca.c.response_pk.in_(blank)))
               .scalars())
    for start in range(0, len(ids), 1000):
        conn.execute(delete(ca).where(ca.c.response_pk.in_(ids[start:start + 1000])))
    return ids


class _Touched:
    """What this analysis changed in the comment sums' inputs: the months of the answers
    whose analyses it wrote, or everything (a refit rescored a whole language), and how
    often it marked the sums stale. With the mark where it found it (sums current) and only
    its own marks since, rebuilding those months is exact."""

    def __init__(self, state: tuple[int, int | None] | None) -> None:
        self.everything = state is None or state[0] != state[1]
        self.start = 0 if state is None else state[0]
        self.months: set[str] = set()
        self.marks = 0

    def mark(self, conn: Connection, ids: Sequence[int] | None) -> None:
        """Mark the sums stale in `conn`'s transaction for the answers `ids` (None: all)."""
        bump_summary(conn, TOPIC_MONTH)
        self.marks += 1
        if ids is None:
            self.everything = True
            return
        for start in range(0, len(ids), 1000):
            self.months.update(conn.execute(
                select(month_of(sr.c.submitted_at)).distinct()
                .where(sr.c.id.in_(list(ids[start:start + 1000])))).scalars())

    def settle(self, conn: Connection) -> bool:
        """Rebuild the sums: the months touched when that is exact, else all of them."""
        if self.everything:
            return settle_topic_months(conn)
        return settle_topic_months(conn, months=self.months,
                                   if_version=self.start + self.marks)


def _docs_query(language: str):
    return (select(ca.c.response_pk, ca.c.lemmas, sr.c.nps, sr.c.comment)
            .select_from(ca.join(sr, sr.c.id == ca.c.response_pk))
            .where(ca.c.language == language).order_by(ca.c.response_pk))


def _doc_chunks(conn: Connection, language: str, *, unscored: bool = False,
                size: int = CHUNK_COMMENTS) -> Iterator[list]:
    """The language's analysed comments, `size` at a time by response id (all of them, or
    only those without a sentiment label): a million comments never sit in memory."""
    query = _docs_query(language)
    if unscored:
        query = query.where(ca.c.sentiment_label.is_(None))
    after = None
    while True:
        page = query if after is None else query.where(ca.c.response_pk > after)
        rows = conn.execute(page.limit(size)).all()
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = rows[-1].response_pk


def _fit_sample(conn: Connection, language: str, total: int) -> list:
    """The comments models are fitted on: all of them, or the newest FIT_SAMPLE (in id
    order) when there are more: a fit's cost grows with its documents, its topics and
    words hardly change past a few hundred thousand."""
    if total <= FIT_SAMPLE:
        return conn.execute(_docs_query(language)).all()
    newest = (select(ca.c.response_pk).where(ca.c.language == language)
              .order_by(ca.c.response_pk.desc()).limit(FIT_SAMPLE).subquery())
    return conn.execute(_docs_query(language).where(
        ca.c.response_pk.in_(select(newest.c.response_pk)))).all()


def _write(conn: Connection, values: list[dict]) -> None:
    """Update analyses by response (executemany)."""
    if not values:
        return
    from sqlalchemy import bindparam

    cols = {k: bindparam(k) for k in values[0] if k != "pk"}
    conn.execute(update(ca).where(ca.c.response_pk == bindparam("pk")).values(**cols), values)


def _refit(conn: Connection, language: str, settings: Settings, now: dt.datetime,
           total: int) -> None:
    """Fit the language's topics and sentiment model on its comments (`_fit_sample`) and
    rescore all `total` of them, a chunk at a time."""
    sample = _fit_sample(conn, language, total)
    docs = [r.lemmas or "" for r in sample]
    topics = fit_topics(docs, topic_count(len(docs), settings.cx_comment_topics))
    if topics is not None and len(topics.components):
        _match_topics(conn, language, topics, now)
        _save_model(conn, language, "topics", total, topics.to_json(), now)
    else:
        topics = None
    labels = [weak_label(r.nps) for r in sample]
    train = [i for i, y in enumerate(labels) if y is not None]
    model = fit_sentiment([docs[i] for i in train], [labels[i] for i in train])
    # A comment the model was trained on gets its held-out score (cross-fitted), so its
    # stored sentiment never saw its own label.
    held_out: dict[int, float] = {}
    if model is not None:
        _save_model(conn, language, "sentiment", len(train), model.to_json(), now)
        held = cross_fitted([docs[i] for i in train], [labels[i] for i in train])
        if held is not None:
            held_out = {sample[i].response_pk: float(v) for i, v in zip(train, held,
                                                                           strict=True)}
    else:
        conn.execute(delete(cm).where(cm.c.language == language, cm.c.kind == "sentiment"))
    del sample, docs
    for rows in _doc_chunks(conn, language):
        _write(conn, _scores(rows, language, topics, model, held_out))


def _scores(rows: list, language: str, topics: TopicModel | None,
            model: SentimentModel | None, held_out: dict[int, float] | None = None
            ) -> list[dict]:
    """The stored topic and sentiment of each comment of `rows` under these models."""
    docs = [r.lemmas or "" for r in rows]
    values: list[dict] = [{"pk": r.response_pk} for r in rows]
    if topics is not None:
        for v, (k, w) in zip(values, topics.assign(docs), strict=True):
            v["topic_id"] = topics.topic_ids[k] if k is not None else None
            v["topic_weight"] = w
    else:
        for v in values:
            v["topic_id"] = v["topic_weight"] = None
    model_scores = model.score(docs) if model is not None else [None] * len(rows)
    held_out = held_out or {}
    for v, r, s in zip(values, rows, model_scores, strict=True):
        s = held_out.get(r.response_pk, s)
        score = combine(lexicon_sentiment(r.comment, language),
                        None if s is None else float(s))
        v["sentiment"] = score
        v["sentiment_label"] = sentiment_label(score)
    return values


def _score_new(conn: Connection, language: str, rows: list) -> None:
    """Score new comments of a language with its stored models."""
    stored = _load_model(conn, language, "topics")
    topics = TopicModel.from_json(stored[1]) if stored else None
    stored = _load_model(conn, language, "sentiment")
    model = SentimentModel.from_json(stored[1]) if stored else None
    _write(conn, _scores(rows, language, topics, model))


def analyse_comments(engine: Engine, settings: Settings | None = None, *,
                     refit: bool = False, now: dt.datetime | None = None,
                     chunk: int = CHUNK_COMMENTS) -> AnalysisResult:
    """Analyse new and changed survey comments and store the results.

    Comments whose text is unchanged since their analysis are left alone (their response was
    loaded again, the words were not). New ones are read, detected and lemmatised `chunk` at
    a time, each chunk in its own transaction (memory stays flat however many arrive); then
    each language they touched is scored in one transaction: refitted when it has no model,
    its comments have grown by REFIT_GROWTH since the fit, or `refit` asks for it, else its
    unscored comments scored with the stored models. A pass cut short leaves comments
    analysed but unscored; the next pass scores them.
    """
    settings = settings or get_settings()
    now = now or _now()
    languages = languages_of(settings)
    result = AnalysisResult()
    with engine.begin() as conn:
        sums = _Touched(topic_months_state(conn))
        removed = _remove_blank(conn)
        result.removed = len(removed)
        if removed:
            sums.mark(conn, removed)
    touched: set[str] = set()
    after = None
    while True:
        with engine.begin() as conn:
            rows = _pending(conn, after=after, limit=chunk)
            if not rows:
                break
            after = rows[-1].id
            touched |= _analyse_chunk(conn, rows, languages, now, result, sums)
        if len(rows) < chunk:
            break
    with engine.begin() as conn:
        # Languages with comments a cut-short pass left unscored.
        touched |= {x for (x,) in conn.execute(
            select(ca.c.language).where(ca.c.language.is_not(None),
                                        ca.c.sentiment_label.is_(None)).distinct())}
        if refit:
            touched |= {x for (x,) in conn.execute(
                select(ca.c.language).where(ca.c.language.is_not(None)).distinct())}
    for language in sorted(touched):
        with engine.begin() as conn:
            total = int(conn.execute(select(func.count()).select_from(ca).where(
                ca.c.language == language)).scalar_one())
            stored = _load_model(conn, language, "topics")
            if total >= MIN_TOPIC_DOCS and (refit or stored is None
                                            or total >= REFIT_GROWTH * stored[0]):
                sums.mark(conn, None)
                _refit(conn, language, settings, now, total)
                result.refitted.append(language)
            else:
                for rows in _doc_chunks(conn, language, unscored=True):
                    sums.mark(conn, [r.response_pk for r in rows])
                    _score_new(conn, language, rows)
    with engine.begin() as conn:
        # Once, after every chunk and language: the topics chart's month sums (stale since
        # the first write above) are rebuilt from what the analysis now holds: the months
        # it touched (a day's comments: a month or two, not ten years of them), or all.
        sums.settle(conn)
    log.info("comments: %d analysed, %d unchanged, %d removed, refitted %s", result.analysed,
             result.unchanged, result.removed, ",".join(result.refitted) or "none")
    return result


def _analyse_chunk(conn: Connection, rows: list, languages: list[str], now: dt.datetime,
                   result: AnalysisResult, sums: _Touched) -> set[str]:
    """Detect, lemmatise and store (unscored) one chunk of pending comments; the languages
    it holds."""
    fresh, same = [], []
    for r in rows:
        digest = text_hash(r.comment)
        if r.text_hash == digest:
            same.append(r.id)
            continue
        fresh.append((r, digest))
    result.unchanged += len(same)
    for start in range(0, len(same), 1000):  # reloaded, same words: not read again
        conn.execute(update(ca).where(ca.c.response_pk.in_(same[start:start + 1000]))
                     .values(analysed_at=now))
    detected = [detect_language(r.comment, languages) for r, _ in fresh]
    usual = Counter(x for x in detected if x).most_common(1)
    fallback = usual[0][0] if usual else (languages[0] if languages else None)
    if fresh:
        ids = [r.id for r, _ in fresh]
        sums.mark(conn, ids)
        for start in range(0, len(ids), 1000):
            conn.execute(delete(ca).where(ca.c.response_pk.in_(ids[start:start + 1000])))
    new_rows = []
    for (r, digest), lang in zip(fresh, detected, strict=True):
        lang = lang or fallback
        words = " ".join(lemmas(r.comment, lang)) if lang else ""
        new_rows.append({"response_pk": r.id, "text_hash": digest, "language": lang,
                         "lemmas": words, "analysed_at": now})
        result.by_language[lang or "?"] = result.by_language.get(lang or "?", 0) + 1
    for start in range(0, len(new_rows), 1000):
        conn.execute(insert(ca), new_rows[start:start + 1000])
    result.analysed += len(new_rows)
    return {row["language"] for row in new_rows if row["language"]}


def analyse_after_load(engine: Engine) -> AnalysisResult | None:
    """The ETL's step after a survey load: `analyse_comments`, its failure logged and not
    raised (the answers are loaded; their comments are analysed again at the next load)."""
    try:
        return analyse_comments(engine)
    except Exception:  # analytics must never undo or fail a load
        log.exception("comment analytics failed; retried after the next load")
        return None


def settle_after_load(engine: Engine) -> bool:
    """A survey run with nothing new: rebuild the comment sums if an earlier analysis (or
    the upgrade that added them) left them stale; failures logged, not raised."""
    try:
        with engine.begin() as conn:
            return settle_topic_months(conn)
    except Exception:  # the answers are loaded; the topics chart counts live meanwhile
        log.exception("comment sums could not be rebuilt; retried after the next load")
        return False


__all__ = ["AnalysisResult", "analyse_comments", "detect_language", "lemmas",
           "settle_after_load"]
