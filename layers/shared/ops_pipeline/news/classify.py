"""News classification: sentiment plus the tickers a text is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ops_pipeline.news.sentiment import (
    MODEL_NAME,
    SCORE_BAND,
    Driver,
    Sentiment,
    classify_sentiments,
    explain,
)
from ops_pipeline.news.tickers import infer_tickers, parse_universe

__all__ = ["MODEL_NAME", "Classification", "Driver", "classify", "classify_many", "explain"]


@dataclass(frozen=True)
class Classification:
    """Sentiment label, its probability ``score``, ``polarity`` (p_pos - p_neg), tickers, and
    ``signed_score``: the polarity rescaled so that the label is its band at +-0.05."""

    label: str
    score: float
    polarity: float
    tickers: tuple[str, ...]
    signed_score: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"label", "score", "tickers" (list)}``.

        ``score`` is the signed score (4 decimals, -1..1): above 0.05 exactly when the label is
        positive, below -0.05 exactly when it is negative.
        """
        score = round(self.signed_score, 4)
        # Rounding must not move a score just outside the band into it.
        if self.label == "positive":
            score = max(score, round(SCORE_BAND + 0.0001, 4))
        elif self.label == "negative":
            score = min(score, round(-SCORE_BAND - 0.0001, 4))
        return {"label": self.label, "score": score, "tickers": list(self.tickers)}


def _combine(text: str, sentiment: Sentiment, universe: frozenset[str] | None) -> Classification:
    tickers = tuple(infer_tickers(text, universe))
    return Classification(
        sentiment.label, sentiment.score, sentiment.polarity, tickers, sentiment.signed_score
    )


def classify(text: str, universe: Iterable[str] | str | None = None) -> Classification:
    """Classify one news text: sentiment of the text and tickers it mentions.

    ``universe`` (iterable or comma-separated string) restricts the tickers returned.
    """
    return classify_many([text], universe)[0]


def classify_many(
    texts: Iterable[str],
    universe: Iterable[str] | str | None = None,
) -> list[Classification]:
    """``classify`` over many texts (one model load, one universe parse)."""
    items = list(texts)
    allowed = None if universe is None else parse_universe(universe)
    return [_combine(t, s, allowed) for t, s in zip(items, classify_sentiments(items))]
