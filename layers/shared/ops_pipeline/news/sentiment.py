"""Financial-news sentiment: a TF-IDF + logistic-regression model run in pure Python.

The weights are trained offline by ``scripts/train_sentiment.py`` (scikit-learn) and exported
to ``sentiment_model.json.gz`` beside this module. Inference here uses only the standard
library, so it runs inside the Lambda layer with no numpy/scikit-learn and no network.

The text normalisation and the feature analyzers below are the *same functions* the training
script hands to scikit-learn, so training and inference cannot drift apart.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "finlogreg-v1"
MODEL_PATH = Path(__file__).with_name("sentiment_model.json.gz")
# Bump when normalise()/analyzers change; the weights file records the version it was built with.
PREPROCESS_VERSION = 1
LABELS = ("negative", "positive", "neutral")

_URL = re.compile(r"https?://\S*|www\.\S+", re.IGNORECASE)
_CASHTAG = re.compile(r"\$[A-Za-z]{1,6}(?:\.[A-Za-z])?(?![A-Za-z0-9])")
_MONEY = re.compile(
    r"[$€£]\s?\d[\d,]*(?:\.\d+)?\s?(?:[kmbt]n?|bn|mln|million|billion|trillion)?\b", re.IGNORECASE
)
_PCT_UP = re.compile(r"\+\s?\d[\d,]*(?:\.\d+)?\s?%")
_PCT_DOWN = re.compile(r"(?<![\w])[-−–]\s?\d[\d,]*(?:\.\d+)?\s?%")
_PCT = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:%|percent\b|pct\b)", re.IGNORECASE)
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NEGATION = re.compile(r"n['’]t\b", re.IGNORECASE)
_TRUNCATION = re.compile(r"…|\.\.\.+")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\b\w\w+\b")


@dataclass(frozen=True)
class Sentiment:
    """Sentiment of one text.

    ``label`` is ``positive``, ``negative`` or ``neutral``; ``score`` is the model's
    probability for that label (0..1); ``polarity`` is ``p(positive) - p(negative)`` (-1..1).
    """

    label: str
    score: float
    polarity: float


def normalise(text: str) -> str:
    """Lower-cased text with URLs, cashtags, money, percentages and numbers as tokens."""
    t = html.unescape(text or "")
    t = _URL.sub(" urltok ", t)
    t = _CASHTAG.sub(" cashtag ", t)
    t = _MONEY.sub(" moneytok ", t)
    t = _PCT_UP.sub(" pctup ", t)
    t = _PCT_DOWN.sub(" pctdown ", t)
    t = _PCT.sub(" pcttok ", t)
    t = _NUM.sub(" numtok ", t)
    t = _NEGATION.sub(" not", t)
    t = _TRUNCATION.sub(" ", t)
    return _SPACE.sub(" ", t).strip().lower()


def word_features(text: str) -> list[str]:
    """Word unigrams and bigrams of the normalised text."""
    words = _WORD.findall(normalise(text))
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def char_features(text: str, low: int = 2, high: int = 5) -> list[str]:
    """Character n-grams (low..high) inside space-padded words of the normalised text."""
    grams: list[str] = []
    for word in normalise(text).split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return grams


ANALYZERS: dict[str, Callable[..., list[str]]] = {
    "word": word_features,
    "char": char_features,
}


def make_analyzer(name: str, params: dict[str, Any] | None = None) -> Callable[[str], list[str]]:
    """The feature function ``name`` with its parameters bound (as recorded in the weights)."""
    return functools.partial(ANALYZERS[name], **(params or {}))


@dataclass(frozen=True)
class _Block:
    analyzer: Callable[[str], list[str]]
    sublinear_tf: bool
    # term -> (idf, weight per class)
    table: dict[str, tuple[float, tuple[float, ...]]]


@dataclass(frozen=True)
class _Model:
    name: str
    classes: tuple[str, ...]
    intercepts: tuple[float, ...]
    blocks: tuple[_Block, ...]


_MODEL: _Model | None = None


def _build_block(spec: dict[str, Any], n_classes: int) -> _Block:
    terms: list[str] = spec["terms"]
    idf: list[float] = spec["idf"]
    flat: list[float] = spec["weights"]  # row-major: len(terms) x n_classes
    table = {
        term: (idf[i], tuple(flat[i * n_classes : (i + 1) * n_classes]))
        for i, term in enumerate(terms)
    }
    analyzer = make_analyzer(spec["analyzer"], spec.get("params"))
    return _Block(analyzer, bool(spec["sublinear_tf"]), table)


def load_model(path: Path = MODEL_PATH) -> _Model:
    """Read a weights file (not cached; use ``classify_sentiment`` for the cached model)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    if data["preprocess_version"] != PREPROCESS_VERSION:
        raise ValueError(
            f"{path} was built with preprocess_version {data['preprocess_version']}, "
            f"code has {PREPROCESS_VERSION}: retrain with scripts/train_sentiment.py"
        )
    classes = tuple(data["classes"])
    blocks = tuple(_build_block(b, len(classes)) for b in data["blocks"])
    return _Model(data["name"], classes, tuple(data["intercepts"]), blocks)


def _model() -> _Model:
    global _MODEL
    if _MODEL is None:
        _MODEL = load_model()
    return _MODEL


def _block_scores(block: _Block, text: str, n_classes: int) -> list[float]:
    """Dot product of the block's L2-normalised TF-IDF vector with its class weights."""
    counts = Counter(g for g in block.analyzer(text) if g in block.table)
    scores = [0.0] * n_classes
    norm_sq = 0.0
    for term, tf in counts.items():
        idf, weights = block.table[term]
        value = (1.0 + math.log(tf) if block.sublinear_tf else float(tf)) * idf
        norm_sq += value * value
        for k in range(n_classes):
            scores[k] += value * weights[k]
    if norm_sq > 0.0:
        inv = 1.0 / math.sqrt(norm_sq)
        scores = [s * inv for s in scores]
    return scores


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def predict_proba(text: str, model: _Model | None = None) -> dict[str, float]:
    """Class probabilities for one text, keyed by label."""
    m = model or _model()
    n = len(m.classes)
    logits = list(m.intercepts)
    for block in m.blocks:
        for k, s in enumerate(_block_scores(block, text, n)):
            logits[k] += s
    return dict(zip(m.classes, _softmax(logits)))


def _to_sentiment(proba: dict[str, float]) -> Sentiment:
    label = max(proba, key=proba.__getitem__)
    polarity = proba.get("positive", 0.0) - proba.get("negative", 0.0)
    return Sentiment(label=label, score=proba[label], polarity=polarity)


def classify_sentiment(text: str) -> Sentiment:
    """Classify one financial headline (or short text) as positive, negative or neutral."""
    return _to_sentiment(predict_proba(text))


def classify_sentiments(texts: Iterable[str]) -> list[Sentiment]:
    """Classify many texts; same results as ``classify_sentiment`` on each."""
    model = _model()
    return [_to_sentiment(predict_proba(t, model)) for t in texts]
