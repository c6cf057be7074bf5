"""Watchlist engine: score every ticker from its recent features and news, rank, and keep the best.

Inputs per ticker, as of the event minute (bars labelled by their start, so "by the minute" means
bars that closed by it, `ts < minute`):

- the newest feature row of the last 30 minutes: volume ratio, sma20, sma50, close, and the
  oldest close of the same 30 minutes (for the recent return);
- classified headlines that name the ticker with `minute - 2 h < event_time <= minute`: their
  count and net sentiment (the sum of their polarities, p(positive) - p(negative)); only
  headlines fetched by the minute (`fetched_at <= minute`): a replay sees what a live run saw.

The score is signed: above 0 leans bullish, below 0 bearish.

    trend      T = clamp(((sma20 - sma50) / sma50) / 0.5%, -1, 1)     0 without sma50
    return     R = clamp((close / close_30min_ago - 1) / 1%, -1, 1)   0 with a single bar
    news       N = clamp(net_sentiment / 2, -1, 1)                    0 without headlines
    direction  D = 1.0 T + 0.5 R + 1.5 N                              in [-3, 3]
    volume     W = clamp(volume_ratio, 0.5, 3.0)                      1.0 without a ratio yet
    score      = D x W, rounded to 4 places                           in [-9, 9]

So heavy volume (up to 3x average) amplifies whatever direction the trend, the tape and the news
give, and thin volume halves it; volume alone, with no direction, scores 0.

Ranking is by |score|, largest first, ties by ticker. A ticker is on the watchlist when its rank
is within the top N and its score is not 0, or whenever |score| >= 1.5 (a strong case is never
crowded out). Every configured ticker gets a row each run, on the watchlist or not, with its
reasons in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ops_pipeline import features as lane_features
from ops_pipeline.db import Connection, json_records
from ops_pipeline.signals import volume_band

TOP_N = 3
STRONG_SCORE = Decimal("1.5")
NEWS_WINDOW = timedelta(hours=2)

TREND_FULL = Decimal("0.005")  # sma20 0.5% away from sma50 counts fully
RETURN_FULL = Decimal("0.01")  # a 1% move over the feature window counts fully
NEWS_FULL = Decimal(2)  # net sentiment of 2 (two clearly positive headlines) counts fully
TREND_WEIGHT = Decimal("1.0")
RETURN_WEIGHT = Decimal("0.5")
NEWS_WEIGHT = Decimal("1.5")
MIN_VOLUME_WEIGHT = Decimal("0.5")
MAX_VOLUME_WEIGHT = Decimal("3.0")

_ONE = Decimal(1)


@dataclass(frozen=True)
class WatchlistInput:
    """What the engine knows about one ticker at the event minute (None: not known yet)."""

    ticker: str
    ts: datetime | None = None  # the newest feature bar
    close: Decimal | None = None
    sma20: Decimal | None = None
    sma50: Decimal | None = None
    volume_ratio: Decimal | None = None
    base_ts: datetime | None = None  # the oldest feature bar of the window, for the return
    base_close: Decimal | None = None
    news_count: int = 0
    net_sentiment: Decimal = Decimal(0)


@dataclass(frozen=True)
class WatchlistEntry:
    """One ticker's row of `lane_watchlist_state` for the minute."""

    ticker: str
    score: Decimal
    rank: int
    on_watchlist: bool
    reasons: str
    volume_ratio: Decimal | None
    trend: Decimal | None
    news_count: int
    net_sentiment: Decimal


def _clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return max(low, min(high, value))


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def trend(sma20: Decimal | None, sma50: Decimal | None) -> Decimal | None:
    """(sma20 - sma50) / sma50 to 6 places; None until both averages exist."""
    if sma20 is None or sma50 is None or sma50 == 0:
        return None
    return _q((sma20 - sma50) / sma50, 6)


def recent_return(f: WatchlistInput) -> Decimal | None:
    """close / base_close - 1 over the feature window; None with fewer than two bars."""
    if f.close is None or f.base_close is None or not f.base_close or f.ts is None:
        return None
    if f.base_ts is None or f.base_ts >= f.ts:
        return None
    return f.close / f.base_close - _ONE


def _score(f: WatchlistInput) -> tuple[Decimal, Decimal | None, list[str]]:
    """The score, the trend, and the words that explain each component."""
    reasons: list[str] = []
    if f.volume_ratio is None:
        weight = _ONE
        reasons.append(
            "no volume ratio yet (weight 1.00)" if f.ts else "no features in the last 30 min"
        )
    else:
        weight = _clamp(f.volume_ratio, MIN_VOLUME_WEIGHT, MAX_VOLUME_WEIGHT)
        reasons.append(
            f"volume ratio {f.volume_ratio:.2f} ({volume_band(f.volume_ratio).name}, weight {weight:.2f})"
        )

    gap = trend(f.sma20, f.sma50)
    if gap is None:
        t = Decimal(0)
        if f.ts:
            reasons.append("no trend yet (fewer than 50 bars)")
    else:
        t = _clamp(gap / TREND_FULL, -_ONE, _ONE)
        pct = abs(gap) * 100
        if gap > 0:
            reasons.append(f"uptrend: sma20 {pct:.2f}% above sma50")
        elif gap < 0:
            reasons.append(f"downtrend: sma20 {pct:.2f}% below sma50")
        else:
            reasons.append("flat: sma20 equals sma50")

    move = recent_return(f)
    if move is None:
        r = Decimal(0)
    else:
        r = _clamp(move / RETURN_FULL, -_ONE, _ONE)
        minutes = int((f.ts - f.base_ts).total_seconds() // 60)  # type: ignore[operator]
        word = "up" if move > 0 else "down" if move < 0 else "unchanged"
        size = "" if move == 0 else f" {abs(move) * 100:.2f}%"
        reasons.append(f"{word}{size} over {minutes} min")

    if f.news_count:
        n = _clamp(f.net_sentiment / NEWS_FULL, -_ONE, _ONE)
        noun = "headline" if f.news_count == 1 else "headlines"
        reasons.append(f"{f.news_count} {noun}, net sentiment {f.net_sentiment:+.2f}")
    else:
        n = Decimal(0)
        reasons.append("no headlines in the last 2 h")

    direction = TREND_WEIGHT * t + RETURN_WEIGHT * r + NEWS_WEIGHT * n
    score = _q(direction * weight, 4)
    return (score if score else _q(Decimal(0), 4)), gap, reasons


def watchlist_scores(
    inputs: Sequence[WatchlistInput], top_n: int = TOP_N, strong: Decimal = STRONG_SCORE
) -> list[WatchlistEntry]:
    """Score, rank and select every ticker (formula in the module docstring); ranked order."""
    scored = []
    for f in inputs:
        score, gap, reasons = _score(f)
        scored.append((f, score, gap, reasons))
    scored.sort(key=lambda item: (-abs(item[1]), item[0].ticker))
    entries = []
    for rank, (f, score, gap, reasons) in enumerate(scored, start=1):
        in_top = rank <= top_n and score != 0
        is_strong = abs(score) >= strong
        on = in_top or is_strong
        if on:
            why = f"top {top_n}" if in_top else f"|score| >= {strong}"
            verdict = f"on the watchlist ({why})"
        else:
            verdict = "off the watchlist"
        text = "; ".join(reasons) + f" => score {score:+.4f}, rank {rank}: {verdict}"
        entries.append(
            WatchlistEntry(
                ticker=f.ticker,
                score=score,
                rank=rank,
                on_watchlist=on,
                reasons=text,
                volume_ratio=f.volume_ratio,
                trend=gap,
                news_count=f.news_count,
                net_sentiment=_q(f.net_sentiment, 4),
            )
        )
    return entries


NEWS_AGGREGATES = """
SELECT ticker, count(*) AS news_count, coalesce(sum(polarity), 0) AS net_sentiment FROM (
    SELECT DISTINCT t.ticker, c.event_id, c.polarity
    FROM inbound_events_classified c
    JOIN inbound_events_raw r ON r.id = c.event_id
    CROSS JOIN LATERAL unnest(c.tickers) AS t(ticker)
    WHERE t.ticker = ANY(CAST(:tickers AS text[]))
      AND c.event_time > :since AND c.event_time <= :minute
      AND r.fetched_at <= :minute  -- no look-ahead: only what had been fetched by then
) x
GROUP BY ticker
"""

UPSERT_WATCHLIST = """
INSERT INTO lane_watchlist_state AS w
    (ticker, ts, score, rank, on_watchlist, reasons, volume_ratio, trend, news_count, net_sentiment)
SELECT e.ticker, :minute, e.score, e.rank, e.on_watchlist, e.reasons, e.volume_ratio, e.trend,
       e.news_count, e.net_sentiment
FROM json_to_recordset(CAST(:rows AS json))
    AS e(ticker text, score numeric, rank integer, on_watchlist boolean, reasons text,
         volume_ratio numeric, trend numeric, news_count integer, net_sentiment numeric)
ON CONFLICT (ticker, ts) DO UPDATE SET
    score = excluded.score, rank = excluded.rank, on_watchlist = excluded.on_watchlist,
    reasons = excluded.reasons, volume_ratio = excluded.volume_ratio, trend = excluded.trend,
    news_count = excluded.news_count, net_sentiment = excluded.net_sentiment
WHERE (w.score, w.rank, w.on_watchlist, w.reasons, w.volume_ratio, w.trend, w.news_count,
       w.net_sentiment)
      IS DISTINCT FROM (excluded.score, excluded.rank, excluded.on_watchlist, excluded.reasons,
                        excluded.volume_ratio, excluded.trend, excluded.news_count,
                        excluded.net_sentiment)
RETURNING ticker
"""


def load_inputs(conn: Connection, tickers: Sequence[str], minute: datetime) -> list[WatchlistInput]:
    """Features and news aggregates for every ticker, in two round trips; tickers without either are included."""
    fields = WatchlistInput.__dataclass_fields__
    latest = {
        row["ticker"]: {k: v for k, v in row.items() if k in fields}
        for row in lane_features.latest_features(conn, tickers, minute)
    }
    news = {
        ticker: (count, Decimal(net))
        for ticker, count, net in conn.run(
            NEWS_AGGREGATES, tickers=list(tickers), since=minute - NEWS_WINDOW, minute=minute
        )
    }
    inputs = []
    for ticker in tickers:
        row: dict[str, Any] = latest.get(ticker, {"ticker": ticker})
        count, net = news.get(ticker, (0, Decimal(0)))
        inputs.append(WatchlistInput(**row, news_count=count, net_sentiment=net))
    return inputs


def store(conn: Connection, entries: Sequence[WatchlistEntry], minute: datetime) -> int:
    """Upsert the minute's rows in one statement; return how many were written or changed."""
    if not entries:
        return 0
    rows = conn.run(
        UPSERT_WATCHLIST,
        minute=minute,
        rows=json_records(
            [
                {
                    "ticker": e.ticker,
                    "score": e.score,
                    "rank": e.rank,
                    "on_watchlist": e.on_watchlist,
                    "reasons": e.reasons,
                    "volume_ratio": e.volume_ratio,
                    "trend": e.trend,
                    "news_count": e.news_count,
                    "net_sentiment": e.net_sentiment,
                }
                for e in entries
            ]
        ),
    )
    return len(rows)


def run(
    conn: Connection, tickers: Sequence[str], minute: datetime, top_n: int = TOP_N
) -> dict[str, Any]:
    """Score the universe at `minute` and keep `lane_watchlist_state`, in three round trips."""
    entries = watchlist_scores(load_inputs(conn, tickers, minute), top_n)
    written = store(conn, entries, minute)
    return {
        "scored": len(entries),
        "written": written,
        "watchlist": [
            {"ticker": e.ticker, "score": float(e.score), "rank": e.rank}
            for e in entries
            if e.on_watchlist
        ],
    }
