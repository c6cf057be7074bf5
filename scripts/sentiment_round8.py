#!/usr/bin/env python
"""Round-8 experiments: how far the SemEval figures are from the goal, and what is left to try.

Two parts (docs/sentiment.md, "Round 8"):

* ``--curve``: a learning curve on the SemEval headlines. Plain stratified K-fold for K = 2, 3,
  5, 10, 20 (each headline predicted by a model trained on (K-1)/K of the others; two shuffles
  where K <= 5), for ``headlines-v7``'s recipe (the other sources always in training) and for
  the plain TF-IDF + LR reference (SemEval alone). The reference is the one figure known on the
  hidden headlines (0.74 accuracy, issue 19), so its curve says how much of that 0.74 is more
  training data and how much is the hidden set itself.
* candidates, measured as rounds 6 and 7 (``sentiment_candidates``' cache and folds,
  ``sentiment_round7.report``): the word block stemmed (Snowball, NLTK's port), stems beside
  the words, word trigrams, ``min_df`` 1, a "removal of a bad thing" cue ("lawsuit dismissed",
  "wins appeal against claims"), skip-bigrams, words tagged by clause, the SemEval neutral
  headlines weighed more, and a SemEval-only model averaged in. The round's CNN is in
  ``scripts/sentiment_cnn/`` (its own venv: torch).

Throw-away research code, the record of the round; needs the ``train`` extra (NLTK comes with
it). Usage:
    PYTHONPATH=layers/shared:src python scripts/sentiment_round8.py --curve
    PYTHONPATH=layers/shared:src python scripts/sentiment_round8.py CANDIDATE... [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from ops_pipeline.news import sentiment as S

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sentiment_candidates as X
import sentiment_round7 as R7
import train_sentiment as T
from sentiment_sources import Labelled, read_semeval, read_twitter, read_written


@cache
def _stem(word: str) -> str:
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english").stem(word)


def _words(text: str) -> list[str]:
    return S._WORD.findall(S.normalise(text))


def _grams(words: list[str], top: int) -> list[str]:
    return [
        " ".join(words[i : i + n]) for n in range(1, top + 1) for i in range(len(words) - n + 1)
    ]


def stemmed_words(text: str) -> list[str]:
    return _grams([_stem(w) for w in _words(text)], 2)


def stemmed_unigrams(text: str) -> list[str]:
    return [_stem(w) for w in _words(text)]


def word_trigrams(text: str) -> list[str]:
    return _grams(_words(text), 3)


_CLAUSE = frozenset(
    [
        "after",
        "as",
        "but",
        "despite",
        "while",
        "though",
        "although",
        "amid",
        "on",
        "since",
        "because",
        "yet",
    ]
)


def clause_words(text: str) -> list[str]:
    """Words tagged by clause: before the first clause marker ("after", "as", "but", "despite" ...)
    is the headline's main clause, after it the rest ("Profit falls after sales beat")."""
    out, part = [], "main"
    for w in _words(text):
        if part == "main" and w in _CLAUSE:
            part = "sub"
        out.append(f"{part}:{w}")
    return out


def skip_bigrams(text: str, gap: int = 3) -> list[str]:
    """Ordered word pairs one to ``gap`` words apart ("lawsuit ~ dismissed")."""
    ws = _words(text)
    return [
        f"{a} ~ {ws[j]}" for i, a in enumerate(ws) for j in range(i + 2, min(i + 2 + gap, len(ws)))
    ]


# "Removal of a bad thing": a verb that ends, escapes or wins against a bad noun, or the noun
# followed by its ending ("lawsuit ... dismissed").
_BAD_NOUN = (
    r"(?:lawsuits?|suit|case|claims?|charges?|probe|investigation|inquiry|fines?|penalty"
    r"|allegations?|fears?|concerns?|worries|risk|threat|prosecution|sanctions?|ban|strike"
    r"|dispute|accusations?|rumou?rs?)"
)
_REMOVES = (
    r"(?:dismiss\w*|drops?|dropped|escapes?|escaped|avoids?|avoided|wins?|won|settles?|settled"
    r"|clears?|cleared|rejects?|rejected|ends?|ended|resolves?|resolved|shrugs? off"
    r"|shrugged off|dispels?|dispelled|eases?|eased|allays?|allayed|overcomes?|fends? off"
    r"|fended off|beats?|quash\w*|lifts?|lifted)"
)
_REMOVAL = (
    re.compile(rf"\b{_REMOVES}\b(?:\s+\S+){{0,5}}?\s+{_BAD_NOUN}\b"),
    re.compile(
        rf"\b{_BAD_NOUN}\b(?:\s+\S+){{0,3}}?\s+(?:dismissed|dropped|cleared|settled|rejected"
        r"|ended|lifted|eased|quashed|thrown out)\b"
    ),
)


def removal_cues(text: str) -> list[str]:
    t = text.lower()
    return ["removal_pos" for p in _REMOVAL for _ in p.finditer(t)]


Block = tuple[Callable[[str], list[str]], int, dict[str, Any]]
WORDS: Block = (S.word_features, 2, {})
CUES: Block = (S.cue_features, 1, {})
REMOVAL: Block = (removal_cues, 1, {"use_idf": False})


def blocks_fit(blocks: Sequence[Block], c: float = 10.0, semeval_neutral: float = 1.0) -> X.Fit:
    """headlines-v7's recipe with other TF-IDF blocks (VADER's block after them, as shipped);
    ``semeval_neutral`` multiplies the weight of the SemEval headlines labelled neutral."""

    def fit(sources: Sequence[Labelled]) -> Callable[[Sequence[str]], np.ndarray]:
        texts, labels, sw = R7._xy(sources, R7.SHIPPED)
        names = [s.name for s in sources for _ in s.texts]
        sw = sw * np.array(
            [
                semeval_neutral if n == "semeval" and y == "neutral" else 1.0
                for n, y in zip(names, labels)
            ]
        )
        vecs = [
            TfidfVectorizer(analyzer=a, min_df=m, sublinear_tf=True, dtype=np.float64, **kw)
            for a, m, kw in blocks
        ]

        def features(t: Sequence[str], fitting: bool = False):
            t = list(t)
            parts = [v.fit_transform(t) if fitting else v.transform(t) for v in vecs]
            return hstack([*parts, *T.dense(t)]).tocsr()

        x = features(texts, fitting=True)
        clf = LogisticRegression(C=c, max_iter=5000, solver="lbfgs")
        with threadpool_limits(limits=1):
            clf.fit(x, labels, sample_weight=sw)
        cols = [list(clf.classes_).index(k) for k in S.LABELS]
        return lambda t: clf.predict_proba(features(t))[:, cols]

    return fit


def semeval_only(fit: X.Fit) -> X.Fit:
    return lambda sources: fit([s for s in sources if s.name == "semeval"])


X.CANDIDATES.update(
    {
        "r8base": blocks_fit([WORDS, CUES]),  # v7 rebuilt by this script
        "stemw": blocks_fit([(stemmed_words, 2, {}), CUES]),
        "stemadd": blocks_fit([WORDS, (stemmed_unigrams, 2, {}), CUES]),
        "w13": blocks_fit([(word_trigrams, 2, {}), CUES]),
        "wmin1": blocks_fit([(S.word_features, 1, {}), CUES]),
        "rev": blocks_fit([WORDS, CUES, REMOVAL]),
        "clause": blocks_fit([WORDS, (clause_words, 2, {}), CUES]),
        "skip": blocks_fit([WORDS, (skip_bigrams, 2, {}), CUES]),
        "w13rev": blocks_fit([(word_trigrams, 2, {}), CUES, REMOVAL]),
        "semneu2": blocks_fit([WORDS, CUES], semeval_neutral=2.0),
        "semneu3": blocks_fit([WORDS, CUES], semeval_neutral=3.0),
        "semonly": semeval_only(blocks_fit([WORDS, CUES])),
    }
)


def learning_curve() -> None:
    """One JSON line per (K, shuffle): v7's recipe and the reference, accuracy / macro-F1 /
    neutral F1 under the shipped rule (the reference: argmax)."""
    sem, tw, wr = read_semeval(), read_twitter(), read_written()
    fit = X.CANDIDATES["v7"]
    for k in (2, 3, 5, 10, 20):
        for seed in (0, 1) if k <= 5 else (0,):
            split = StratifiedKFold(k, shuffle=True, random_state=seed).split(sem.texts, sem.labels)
            folds = [(list(a), list(b)) for a, b in split]
            p = np.zeros((len(sem), 3))
            t0 = time.time()
            for tr, te in folds:
                p[te] = fit([T.subset(sem, tr), tw, wr])([sem.texts[i] for i in te])
            row = {
                "K": k,
                "seed": seed,
                "train_share": round((k - 1) / k, 3),
                "v7": X.score(sem.labels, X.rule_hybrid(p, 0.0, 0.7)),
                "reference": X.score(sem.labels, T.reference_predictions(sem, folds)),
                "seconds": round(time.time() - t0),
            }
            print(json.dumps(row), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="*")
    ap.add_argument("--curve", action="store_true", help="the learning curve (about 7 minutes)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/senti-cache"))
    args = ap.parse_args()
    if args.curve:
        learning_curve()
    for name in args.candidates:
        probs = R7.probabilities(name, args.cache)
        if name == "semonly":  # no rule keeps the Twitter floor: the shipped rule's row only
            print(
                json.dumps(next(r for r in X.evaluate(name, probs) if r["rule"] == R7.SHIPPED_RULE))
            )
        else:
            R7.report(name, probs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
