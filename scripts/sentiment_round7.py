#!/usr/bin/env python
"""Round-7 experiments: lexicon scores and a small non-linear model beside headlines-v6 (v7 is
the VADER block found here).

Measured exactly as round 6's candidates (scripts/sentiment_candidates.py, whose cache and
evaluation this reuses): out-of-fold probabilities on the SemEval headlines under the grouped
and the plain stratified folds (the other sources always in training), and the model fitted
on every source for Twitter valid and the held-out written news. Each candidate is reported
under the shipped decision rule (neutral when p(neutral) >= 0.7, else the polarity's sign),
under the best band x p(neutral) rule that keeps the Twitter-valid floor, and with that rule
chosen nested (scripts/sentiment_rules.py). Candidates:

* ``vader...``: the shipped blocks plus VADER's scores (PyPI ``vaderSentiment`` 3.3.2, MIT:
  its lexicon and rules) as dense columns (compound split by sign, and the pos / neg shares),
  scaled by alpha;
* ``mlp...``: one hidden layer (ReLU) over the same sparse TF-IDF word + cue blocks,
  scikit-learn's MLPClassifier (adam, L2 ``alpha``, a fixed number of epochs, seed 0), the
  same per-source sample weights;
* ``avg:A+B@m``: the cached probabilities of A and B averaged (weight m on B), no refit;
* ``v7``: the shipped headlines-v7 recipe (the VADER block through the port, ``vader.py``);
  ``v7bins...``: plus a one-hot of VADER's compound in nine bins; ``vfin...``: VADER with the
  shipped Loughran-McDonald words added (or over VADER's values) instead of the VADER block;
  ``v7tb1``: plus TextBlob's Pattern scores (polarity by sign, subjectivity).

Throw-away research code, the record of the round; needs the ``train`` extra (which brings
``vaderSentiment``) and, for the TextBlob row, ``pip install textblob`` (not a dependency of
the project). Usage:
    PYTHONPATH=layers/shared:src python scripts/sentiment_round7.py CANDIDATE... [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from ops_pipeline.news import sentiment as S
from ops_pipeline.news import vader as V

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sentiment_candidates as X
import sentiment_rules as R
import train_sentiment as T
from sentiment_sources import Labelled

SHIPPED = {
    "semeval": 5.0,
    "twitter_train": 0.3,
    "written": 0.5,
}  # headlines-v6's (and v7's) weights
SHIPPED_RULE = "band 0.0 pneu 0.7"


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@cache
def vader_row(text: str) -> tuple[float, float, float, float]:
    s = _vader().polarity_scores(text)
    c = s["compound"]
    return max(c, 0.0), max(-c, 0.0), s["pos"], s["neg"]


def vader_dense(texts: Sequence[str]) -> csr_matrix:
    return csr_matrix(np.array([vader_row(t) for t in texts]))


def _xy(sources: Sequence[Labelled], weights: dict[str, float]):
    texts = [t for s in sources for t in s.texts]
    labels = [y for s in sources for y in s.labels]
    sw = np.concatenate([np.full(len(s), weights[s.name]) for s in sources])
    return texts, labels, sw


def vader_fit(alpha: float, c: float = 10.0) -> X.Fit:
    """The shipped blocks plus alpha x VADER's (compound+, compound-, pos, neg)."""

    def fit(sources: Sequence[Labelled]) -> Callable[[Sequence[str]], np.ndarray]:
        texts, labels, sw = _xy(sources, SHIPPED)
        vecs = T.make_vectorizers()
        x = hstack([*(v.fit_transform(texts) for v in vecs), alpha * vader_dense(texts)]).tocsr()
        clf = LogisticRegression(C=c, max_iter=5000, solver="lbfgs")
        with threadpool_limits(limits=1):
            clf.fit(x, labels, sample_weight=sw)
        cols = [list(clf.classes_).index(k) for k in S.LABELS]

        def proba(t: Sequence[str]) -> np.ndarray:
            xt = hstack([*(v.transform(list(t)) for v in vecs), alpha * vader_dense(t)]).tocsr()
            return clf.predict_proba(xt)[:, cols]

        return proba

    return fit


def mlp_fit(hidden: int, l2: float, epochs: int, lr: float = 1e-3) -> X.Fit:
    """One hidden layer over the shipped TF-IDF blocks, the shipped sample weights."""

    def fit(sources: Sequence[Labelled]) -> Callable[[Sequence[str]], np.ndarray]:
        texts, labels, sw = _xy(sources, SHIPPED)
        vecs = T.make_vectorizers()
        x = hstack([v.fit_transform(texts) for v in vecs]).tocsr()
        clf = MLPClassifier(
            hidden_layer_sizes=(hidden,),
            alpha=l2,
            learning_rate_init=lr,
            max_iter=epochs,
            batch_size=64,
            random_state=0,
            shuffle=True,
            tol=0.0,
            n_iter_no_change=epochs + 1,
        )
        with threadpool_limits(limits=1):
            clf.fit(x, labels, sample_weight=sw / sw.mean())
        cols = [list(clf.classes_).index(k) for k in S.LABELS]
        # The TF-IDF blocks only (T.transform would add the VADER block since round 7).
        return lambda t: clf.predict_proba(hstack([v.transform(list(t)) for v in vecs]).tocsr())[
            :, cols
        ]

    return fit


BIN_EDGES = (-0.75, -0.5, -0.25, -0.05, 0.05, 0.25, 0.5, 0.75)


def vader_bins(texts: Sequence[str]) -> csr_matrix:
    """One-hot of VADER's compound among ``BIN_EDGES``' nine bins (from the port)."""
    rows = np.zeros((len(texts), len(BIN_EDGES) + 1))
    for i, t in enumerate(texts):
        c = V.polarity_scores(t)["compound"]
        rows[i, int(np.searchsorted(BIN_EDGES, c, side="right"))] = 1.0
    return csr_matrix(rows)


def extra_block_fit(
    block: Callable[[Sequence[str]], csr_matrix], alpha: float, c: float = 10.0
) -> X.Fit:
    """Round 7's shipped features (words, cues, VADER block) plus alpha x one more dense block."""

    def fit(sources: Sequence[Labelled]) -> Callable[[Sequence[str]], np.ndarray]:
        texts, labels, sw = _xy(sources, SHIPPED)
        vecs = T.make_vectorizers()
        x = hstack([T.fit_transform(vecs, texts), alpha * block(texts)]).tocsr()
        clf = LogisticRegression(C=c, max_iter=5000, solver="lbfgs")
        with threadpool_limits(limits=1):
            clf.fit(x, labels, sample_weight=sw)
        cols = [list(clf.classes_).index(k) for k in S.LABELS]
        return lambda t: clf.predict_proba(
            hstack([T.transform(vecs, t), alpha * block(t)]).tocsr()
        )[:, cols]

    return fit


def bins_fit(alpha: float, c: float = 10.0) -> X.Fit:
    """Round 7's shipped features plus alpha x the compound's bin."""
    return extra_block_fit(vader_bins, alpha, c)


@lru_cache(maxsize=4)
def fin_lexicon(valence: float, override: bool) -> dict[str, float]:
    """VADER's lexicon with the Loughran-McDonald words the model ships (finance_lexicon.json.gz)
    at +-``valence``: added where VADER lacks them, or over VADER's value (``override``)."""
    lm = {w: valence if c == "pos" else -valence for w, c in S._lexicon().items()}
    base = V.lexicon()
    return {**base, **lm} if override else {**lm, **base}


def fin_fit(valence: float, override: bool, c: float = 10.0) -> X.Fit:
    """The word and cue blocks plus VADER's four scores under ``fin_lexicon`` (instead of the
    shipped VADER block)."""
    lex = fin_lexicon(valence, override)

    def dense_fin(texts: Sequence[str]) -> csr_matrix:
        rows = []
        for t in texts:
            sc = V.polarity_scores(t, lex)
            cp = sc["compound"]
            rows.append((max(cp, 0.0), max(-cp, 0.0), sc["pos"], sc["neg"]))
        return csr_matrix(np.array(rows))

    def fit(sources: Sequence[Labelled]) -> Callable[[Sequence[str]], np.ndarray]:
        texts, labels, sw = _xy(sources, SHIPPED)
        vecs = T.make_vectorizers()
        x = hstack([*(v.fit_transform(texts) for v in vecs), dense_fin(texts)]).tocsr()
        clf = LogisticRegression(C=c, max_iter=5000, solver="lbfgs")
        with threadpool_limits(limits=1):
            clf.fit(x, labels, sample_weight=sw)
        cols = [list(clf.classes_).index(k) for k in S.LABELS]

        def proba(t: Sequence[str]) -> np.ndarray:
            xt = hstack([*(v.transform(list(t)) for v in vecs), dense_fin(t)]).tocsr()
            return clf.predict_proba(xt)[:, cols]

        return proba

    return fit


@lru_cache(maxsize=1)
def _pattern():
    from textblob.en.sentiments import PatternAnalyzer

    return PatternAnalyzer()


def textblob_dense(texts: Sequence[str]) -> csr_matrix:
    """TextBlob's Pattern scores (PyPI ``textblob``, MIT; Pattern's en-sentiment.xml, BSD):
    polarity split by sign, and subjectivity."""
    rows = []
    for t in texts:
        pol, subj = _pattern().analyze(t)
        rows.append((max(pol, 0.0), max(-pol, 0.0), subj))
    return csr_matrix(np.array(rows))


def textblob_fit(alpha: float, c: float = 10.0) -> X.Fit:
    """Round 7's shipped features plus alpha x TextBlob's three scores."""
    return extra_block_fit(textblob_dense, alpha, c)


X.CANDIDATES.update(
    {
        "vader1": vader_fit(1.0),
        "vader2": vader_fit(2.0),
        "vader0.5": vader_fit(0.5),
        "mlp64": mlp_fit(64, 1e-4, 8),
        "mlp64a3": mlp_fit(64, 1e-3, 8),
        "mlp32": mlp_fit(32, 1e-4, 8),
        "mlp64e4": mlp_fit(64, 1e-4, 4),
        "v7": X.lr_fit(10.0, weights=SHIPPED),  # headlines-v7 (T's features include VADER)
        "v7bins1": bins_fit(1.0),
        "v7bins0.5": bins_fit(0.5),
        "vfin1.5": fin_fit(1.5, False),
        "vfin1.5over": fin_fit(1.5, True),
        "vfin2.5": fin_fit(2.5, False),
        "v7tb1": textblob_fit(1.0),
    }
)


def probabilities(name: str, cache: Path) -> dict[str, np.ndarray]:
    if name.startswith("avg:"):  # avg:A+B@m
        pair, mix = name[4:].split("@")
        a, b = pair.split("+")
        pa, pb = probabilities(a, cache), probabilities(b, cache)
        return {k: (1 - float(mix)) * pa[k] + float(mix) * pb[k] for k in pa}
    return X.probabilities(name, cache)


def report(name: str, probs: dict[str, np.ndarray]) -> None:
    rows = X.evaluate(name, probs)
    shipped = next(r for r in rows if r["rule"] == SHIPPED_RULE)
    print(json.dumps({**shipped, "why": "shipped rule"}))
    ok = [r for r in rows if r["ok"] and "pneu" in r["rule"]]
    best = max(ok, key=lambda r: r["objective"])
    print(json.dumps({**best, "why": "best band x pneu rule (grouped)"}))
    nest = {s: R.nested(probs, s, "hybrid") for s in ("grouped", "plain")}
    print(json.dumps({"candidate": name, "why": "nested band x pneu", **nest}))
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="+")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/senti-cache"))
    args = ap.parse_args()
    for name in args.candidates:
        report(name, probabilities(name, args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
