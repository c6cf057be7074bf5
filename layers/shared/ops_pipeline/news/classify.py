"""News classification: sentiment plus the tickers a text is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ops_pipeline.news.sentiment import MODEL_NAME, Sentiment, classify_sentiments
from ops_pipeline.news.tickers import infer_tickers, parse_universe

__all__ = ["MODEL_NAME", "Classification", "classify", "classify_many"]


@dataclass(frozen=True)
class Classification:
    """Sentiment label, its probability ``score``, ``polarity`` (p_pos - p_neg) and tickers."""

    label: str
    score: float
    polarity: float
    tickers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"label", "score" (4 decimals), "tickers" (list)}``."""
        return {"label": self.label, "score": round(self.score, 4), "tickers": list(self.tickers)}


def _combine(text: str, sentiment: Sentiment, universe: frozenset[str] | None) -> Classification:
    tickers = tuple(infer_tickers(text, universe))
    return Classification(sentiment.label, sentiment.score, sentiment.polarity, tickers)


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
