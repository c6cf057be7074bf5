"""Classifier stage: sentiment and tickers for every raw event that has no classification yet.

Pending events are the raw events fetched in the 2 days up to the event minute
(`minute - 2 days < fetched_at <= minute`) without a row in `inbound_events_classified`, newest
first, at most 2000 a run (a backlog drains over the next runs). Each is classified on
`title + "\\n" + summary`; tickers come only from the configured universe (a cashtag of a symbol
outside it is ignored, since nothing downstream trades it). `event_time` is the published time,
else the fetch minute. A text that fails to classify is logged with its event id and skipped.

Two round trips whatever the count: one read, one multi-row insert that skips events already
classified (a rerun, or a concurrent run), so the stage is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ops_pipeline.db import Connection
from ops_pipeline.news.classify import MODEL_NAME, Classification, classify, classify_many
from ops_pipeline.observability import logger

LOOKBACK = timedelta(days=2)
MAX_PER_RUN = 2000

PENDING_EVENTS = """
SELECT r.id, r.title, r.summary, coalesce(r.published_at, r.fetched_at) AS event_time
FROM inbound_events_raw r
WHERE r.fetched_at > :since AND r.fetched_at <= :minute
  AND NOT EXISTS (SELECT 1 FROM inbound_events_classified c WHERE c.event_id = r.id)
ORDER BY r.fetched_at DESC, r.id DESC
LIMIT :limit
"""

INSERT_CLASSIFIED = """
INSERT INTO inbound_events_classified (event_id, label, score, polarity, tickers, model, event_time)
SELECT e.event_id, e.label, e.score, e.polarity, string_to_array(e.tickers, ','), :model,
       e.event_time
FROM unnest(
    CAST(:event_id AS bigint[]), CAST(:label AS text[]), CAST(:score AS numeric[]),
    CAST(:polarity AS numeric[]), CAST(:tickers AS text[]), CAST(:event_time AS timestamptz[]))
    AS e(event_id, label, score, polarity, tickers, event_time)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, label
"""

_FOUR_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class PendingEvent:
    event_id: int
    title: str
    summary: str | None
    event_time: datetime

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.summary}" if self.summary else self.title


@dataclass(frozen=True)
class ClassifiedEvent:
    event_id: int
    event_time: datetime
    classification: Classification


def pending_events(
    conn: Connection, minute: datetime, limit: int = MAX_PER_RUN
) -> list[PendingEvent]:
    rows = conn.run(PENDING_EVENTS, since=minute - LOOKBACK, minute=minute, limit=limit)
    return [PendingEvent(*row) for row in rows]


def classify_events(
    events: Sequence[PendingEvent], universe: Sequence[str]
) -> tuple[list[ClassifiedEvent], list[int]]:
    """Classify in one batch; if the batch fails, one by one, skipping (and logging) the texts that fail.

    Returns the classified events and the ids of those that failed.
    """
    try:
        results: list[Classification | None] = list(
            classify_many([e.text for e in events], universe)
        )
    except Exception:
        logger.exception("batch classification failed; classifying one by one")
        results = []
        for event in events:
            try:
                results.append(classify(event.text, universe))
            except Exception:
                logger.exception("could not classify event", extra={"event_id": event.event_id})
                results.append(None)
    done = [
        ClassifiedEvent(e.event_id, e.event_time, c)
        for e, c in zip(events, results)
        if c is not None
    ]
    failed = [e.event_id for e, c in zip(events, results) if c is None]
    return done, failed


def _four_places(value: float) -> str:
    return str(Decimal(repr(float(value))).quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP))


def store(conn: Connection, classified: Sequence[ClassifiedEvent]) -> dict[str, int]:
    """Insert in one statement; return the count per label of the rows actually inserted."""
    if not classified:
        return {}
    rows = conn.run(
        INSERT_CLASSIFIED,
        model=MODEL_NAME,
        event_id=[c.event_id for c in classified],
        label=[c.classification.label for c in classified],
        score=[_four_places(c.classification.score) for c in classified],
        polarity=[_four_places(c.classification.polarity) for c in classified],
        tickers=[",".join(c.classification.tickers) for c in classified],
        event_time=[c.event_time for c in classified],
    )
    by_label: dict[str, int] = {}
    for _event_id, label in rows:
        by_label[label] = by_label.get(label, 0) + 1
    return by_label


def run(
    conn: Connection, universe: Sequence[str], minute: datetime, limit: int = MAX_PER_RUN
) -> dict[str, Any]:
    """Classify the pending raw events at `minute`; one read and one write."""
    events = pending_events(conn, minute, limit)
    classified, failed = classify_events(events, universe) if events else ([], [])
    by_label = store(conn, classified)
    with_tickers = sum(1 for c in classified if c.classification.tickers)
    return {
        "pending": len(events),
        "classified": sum(by_label.values()),
        "by_label": by_label,
        "with_tickers": with_tickers,
        "failed_event_ids": failed,
        "backlog_capped": len(events) >= limit,
        "model": MODEL_NAME,
    }
