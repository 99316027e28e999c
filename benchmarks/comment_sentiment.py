"""Comment analytics on the real French survey (Botanic, 3,839 comments): prints figures.

    .venv/bin/python benchmarks/comment_sentiment.py [path/to/botanic_nps.csv]

- Language detection: the share of comments detected as French.
- Sentiment agrees with the score: AUC of the sentiment for promoter (9-10) against detractor
  (0-6), held out: (a) a stratified 70/30 split, the model fitted on 70% and scored on the
  other 30%; (b) the 5-fold cross-fitted scores the ETL stores for training comments.
  The survey has no French sentiment lexicon to compare (VADER is English), so the weak-label
  classifier is the only method; (c) VADER on the French text is printed as a baseline a
  lexicon in the wrong language gives.
- Topics: NMF topics fitted as the ETL does, with their size, NPS and two example comments.
Runs offline, on the CPU; timings are printed too.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.comments_nlp import (  # noqa: E402
    cross_fitted,
    detect_language,
    fit_sentiment,
    fit_topics,
    label_terms,
    lemmas,
    lexicon_sentiment,
    topic_count,
    weak_label,
)
from queries import metrics  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "public" / "botanic_nps.csv"


def main(path: Path) -> None:
    """Print the benchmark's figures."""
    df = pd.read_csv(path, encoding="latin-1")
    df = df[df["explication"].notna() & (df["explication"].str.strip() != "")].copy()
    t0 = time.perf_counter()
    langs = [detect_language(t, ("en", "fr", "ru")) for t in df["explication"]]
    t1 = time.perf_counter()
    counts = Counter(langs)
    print(f"comments: {len(df):,}  languages detected: {dict(counts.most_common())}  "
          f"({t1 - t0:.1f} s)")
    df["lemmas"] = [" ".join(lemmas(t, "fr")) for t in df["explication"]]
    t2 = time.perf_counter()
    print(f"lemmatised in {t2 - t1:.1f} s")
    df["y"] = [weak_label(None if pd.isna(v) else int(v)) for v in df["nps"]]
    lab = df[df["y"].notna()]
    y = lab["y"].astype(int).to_numpy()
    print(f"weak labels: {int((y == 1).sum()):,} promoters, {int((y == 0).sum()):,} "
          f"detractors (passives {int(df['y'].isna().sum()):,} not used)")
    tr, te = train_test_split(np.arange(len(lab)), test_size=0.3, stratify=y, random_state=0)
    docs = lab["lemmas"].tolist()
    model = fit_sentiment([docs[i] for i in tr], y[tr])
    assert model is not None
    held = model.score([docs[i] for i in te])
    print(f"AUC, 70/30 held-out split (n test = {len(te):,}): {roc_auc_score(y[te], held):.3f}")
    cf = cross_fitted(docs, y)
    assert cf is not None
    print(f"AUC, 5-fold cross-fitted (n = {len(y):,}): {roc_auc_score(y, cf):.3f}")
    vader = [lexicon_sentiment(t, "en") for t in lab["explication"]]
    print(f"AUC, VADER (English lexicon) on the French text: {roc_auc_score(y, vader):.3f}")
    t3 = time.perf_counter()
    print(f"sentiment fitted and evaluated in {t3 - t2:.1f} s")

    alldocs = df["lemmas"].tolist()
    topics = fit_topics(alldocs, topic_count(len(alldocs)))
    assert topics is not None
    assigned = topics.assign(alldocs)
    df["topic"] = [k for k, _ in assigned]
    t4 = time.perf_counter()
    print(f"\n{len(topics.components)} topics fitted in {t4 - t3:.1f} s "
          f"({int(df['topic'].isna().sum())} comments with no topic)\n")
    for k in range(len(topics.components)):
        part = df[df["topic"] == k]
        nps = part["nps"].dropna().astype(int)
        est = metrics.nps(len(nps), int((nps >= 9).sum()), int((nps <= 6).sum()))
        words = label_terms(topics.top_terms(k), n=6)
        print(f"[{k + 1}] {words}  ·  {len(part):,} comments  ·  NPS {est.value:+.0f} "
              f"± {est.moe:.0f} (n {est.n:,})")
        scored = part.dropna(subset=["nps"]).sort_values("nps")
        sample = scored.iloc[[0, -1]] if len(scored) > 1 else scored
        for _, r in sample.iterrows():
            text = " ".join(str(r["explication"]).split())
            print(f"      NPS {int(r['nps']) if not pd.isna(r['nps']) else '-'}: "
                  f"{text[:150]}{'…' if len(text) > 150 else ''}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
