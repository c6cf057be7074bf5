"""Feature computer: moving averages and volume analysis for every bar whose features are due.

All in one set-based statement. A bar is due (`lane_features_due`, migration 010) when it is
stored or changed, or when its features were deleted: triggers on the tables mark it, whoever
writes, and the statement clears the marks it read (a bar marked again meanwhile stays due). So a
minute's work is proportional to its new bars, not to the days of bars stored.

Only regular-session bars
(`lane_telemetry.session = 'regular'`) get features, and only they are in a window: pre-market and
after-hours bars trade at a fraction of the volume and would read as volume collapses and surges.
For a regular bar, the window is the 20 (50) most recent stored regular bars of its ticker up to
and including it (across days); gaps are not filled.

- `sma20`, `sma50`: mean close over the window; NULL until that many bars exist.
- `volume_current`: this bar's volume; `volume_avg_20`: mean volume of the same 20 bars.
- `volume_ratio = volume_current / volume_avg_20`, rounded to 4 places; NULL when the average is 0
  or fewer than 20 bars exist. `volume_surge = volume_ratio > 3.0`.

A due bar (new, corrected, or without features) is computed together with every later bar of its
ticker, since they share its window: when that is at most `FEW_BARS` bars (a minute's new bar), each
one's windows are two aggregates over its 20 and 50 newest bars, read backward from the index; with more (a
catch-up), one pass of window functions over the ticker's bars in time order.

Features never mix feeds (`lane_telemetry.source`: Alpaca's IEX feed carries a few percent of
the consolidated volume a SIP feed carries, so a mixed window makes a false surge): a bar's
windows hold only bars of its own source, the stored ones and, for minutes stored from another
provider, that source's bars kept in `lane_telemetry_history` (see `ops_pipeline.telemetry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ops_pipeline.db import Connection, query, text_array

SMA_SHORT = 20
SMA_LONG = 50
VOLUME_WINDOW = 20
SURGE_RATIO = Decimal("3.0")
# How far back a bar without features is looked for: anything the ingestor can write (it looks back
# telemetry.LOOKBACK, 5 days) with a day's room.
PENDING_LOOKBACK = timedelta(days=6)

# A ticker with at most this many bars to compute gets each bar's windows as two small aggregates
# over its 50 newest bars (the minute's case: one new bar); with more (a catch-up, a corrected bar
# early in the day), one pass of window functions over its bars in time order is cheaper.
FEW_BARS = 3

COMPUTE_FEATURES = """
WITH due AS MATERIALIZED (
    SELECT d.ticker, d.ts, d.source, d.mark FROM lane_features_due d WHERE d.ts < :until
),
pending AS MATERIALIZED (
    -- Each ticker's first due bar, per source (a bar that has gone since only widens the range).
    SELECT ticker, source, min(ts) AS first_ts FROM due WHERE ts >= :since
    GROUP BY ticker, source
),
targets AS MATERIALIZED (
    -- Every stored regular bar of that source from the first due one on: they share its window.
    SELECT p.ticker, p.source, p.first_ts, t.ts, t.close, t.volume,
           count(*) OVER (PARTITION BY p.ticker, p.source) AS n_targets
    FROM pending p
    JOIN lane_telemetry t ON t.ticker = p.ticker AND t.source = p.source
                         AND t.ts >= p.first_ts AND t.ts < :until AND t.session = 'regular'
),
few AS (
    -- A bar's windows: the 50 (20) newest regular bars of its source up to and including it
    -- (stored, or kept for windows in lane_telemetry_history), each an index-only scan backward.
    SELECT g.ticker, g.ts, g.close, g.volume, a20.sma20, a20.n20, a50.sma50, a50.n50,
           a20.volume_avg
    FROM targets g
    CROSS JOIN LATERAL (
        SELECT avg(u.close) AS sma50, count(*) AS n50 FROM (
            (SELECT t.ts, t.close FROM lane_telemetry t
             WHERE t.ticker = g.ticker AND t.source = g.source AND t.ts <= g.ts
               AND t.session = 'regular'
             ORDER BY t.ts DESC LIMIT 50)
            UNION ALL
            (SELECT h.ts, h.close FROM lane_telemetry_history h
             WHERE h.ticker = g.ticker AND h.source = g.source AND h.ts <= g.ts
               AND h.session = 'regular'
             ORDER BY h.ts DESC LIMIT 50)
            ORDER BY ts DESC LIMIT 50
        ) u
    ) a50
    CROSS JOIN LATERAL (
        SELECT avg(u.close) AS sma20, count(*) AS n20, avg(u.volume) AS volume_avg FROM (
            (SELECT t.ts, t.close, t.volume FROM lane_telemetry t
             WHERE t.ticker = g.ticker AND t.source = g.source AND t.ts <= g.ts
               AND t.session = 'regular'
             ORDER BY t.ts DESC LIMIT 20)
            UNION ALL
            (SELECT h.ts, h.close, h.volume FROM lane_telemetry_history h
             WHERE h.ticker = g.ticker AND h.source = g.source AND h.ts <= g.ts
               AND h.session = 'regular'
             ORDER BY h.ts DESC LIMIT 20)
            ORDER BY ts DESC LIMIT 20
        ) u
    ) a20
    WHERE g.n_targets <= :few_bars
),
many AS (
    -- A ticker with more bars to compute: its bars of one source from its first due bar on, and
    -- the 49 regular bars of that source before it (stored, or kept for windows in
    -- lane_telemetry_history; 49 of each table: more than the frames reach never changes a
    -- window, fewer would), through window functions.
    SELECT p.ticker, b.ts, b.close, b.volume, b.stored, p.first_ts,
           avg(b.close)  OVER w20 AS sma20, count(*) OVER w20 AS n20,
           avg(b.close)  OVER w50 AS sma50, count(*) OVER w50 AS n50,
           avg(b.volume) OVER w20 AS volume_avg
    FROM (SELECT DISTINCT ticker, source, first_ts FROM targets
          WHERE n_targets > :few_bars) p
    CROSS JOIN LATERAL (
        SELECT t.ts, t.close, t.volume, true AS stored FROM lane_telemetry t
        WHERE t.ticker = p.ticker AND t.source = p.source AND t.ts >= p.first_ts
          AND t.ts < :until AND t.session = 'regular'
        UNION ALL
        (SELECT t.ts, t.close, t.volume, true FROM lane_telemetry t
         WHERE t.ticker = p.ticker AND t.source = p.source AND t.ts < p.first_ts
           AND t.session = 'regular'
         ORDER BY t.ts DESC LIMIT 49)
        UNION ALL
        SELECT h.ts, h.close, h.volume, false FROM lane_telemetry_history h
        WHERE h.ticker = p.ticker AND h.source = p.source AND h.ts >= p.first_ts
          AND h.ts < :until AND h.session = 'regular'
        UNION ALL
        (SELECT h.ts, h.close, h.volume, false FROM lane_telemetry_history h
         WHERE h.ticker = p.ticker AND h.source = p.source AND h.ts < p.first_ts
           AND h.session = 'regular'
         ORDER BY h.ts DESC LIMIT 49)
    ) b
    WINDOW w20 AS (PARTITION BY p.ticker, p.source ORDER BY b.ts
                   ROWS BETWEEN 19 PRECEDING AND CURRENT ROW),
           w50 AS (PARTITION BY p.ticker, p.source ORDER BY b.ts
                   ROWS BETWEEN 49 PRECEDING AND CURRENT ROW)
),
windows AS (
    SELECT ticker, ts, close, volume, sma20, n20, sma50, n50, volume_avg FROM few
    UNION ALL
    SELECT ticker, ts, close, volume, sma20, n20, sma50, n50, volume_avg FROM many
    WHERE ts >= first_ts AND stored
),
computed AS (
    SELECT ticker, ts, close,
           CASE WHEN n20 >= 20 THEN round(sma20, 6) END AS sma20,
           CASE WHEN n50 >= 50 THEN round(sma50, 6) END AS sma50,
           volume AS volume_current,
           CASE WHEN n20 >= 20 THEN round(volume_avg, 2) END AS volume_avg_20,
           CASE WHEN n20 >= 20 AND volume_avg > 0 THEN round(volume / volume_avg, 4) END AS volume_ratio,
           n50 AS bars_in_window
    FROM windows
),
cleared AS (
    -- The markings read above, and only those: a bar marked again meanwhile stays due.
    DELETE FROM lane_features_due d USING due
    WHERE d.ticker = due.ticker AND d.ts = due.ts AND d.mark = due.mark
)
INSERT INTO lane_features AS f
    (ticker, ts, close, sma20, sma50, volume_current, volume_avg_20, volume_ratio, volume_surge,
     bars_in_window)
SELECT ticker, ts, close, sma20, sma50, volume_current, volume_avg_20, volume_ratio,
       volume_ratio > 3.0, bars_in_window
FROM computed
ON CONFLICT (ticker, ts) DO UPDATE SET
    close = excluded.close, sma20 = excluded.sma20, sma50 = excluded.sma50,
    volume_current = excluded.volume_current, volume_avg_20 = excluded.volume_avg_20,
    volume_ratio = excluded.volume_ratio, volume_surge = excluded.volume_surge,
    bars_in_window = excluded.bars_in_window, computed_at = now()
WHERE (f.close, f.sma20, f.sma50, f.volume_current, f.volume_avg_20, f.volume_ratio, f.bars_in_window)
      IS DISTINCT FROM (excluded.close, excluded.sma20, excluded.sma50, excluded.volume_current,
                        excluded.volume_avg_20, excluded.volume_ratio, excluded.bars_in_window)
RETURNING ticker
"""


def compute(conn: Connection, minute: datetime) -> dict[str, Any]:
    """Compute features for every pending bar that closed by `minute`, in one statement."""
    rows = conn.run(
        COMPUTE_FEATURES, since=minute - PENDING_LOOKBACK, until=minute, few_bars=FEW_BARS
    )
    per_ticker: dict[str, int] = {}
    for (ticker,) in rows:
        per_ticker[ticker] = per_ticker.get(ticker, 0) + 1
    return {"computed": len(rows), "by_ticker": per_ticker}


LATEST_FEATURES = """
SELECT ticker, ts, close, sma20, sma50, volume_ratio, prev_close, prev_sma20, base_ts, base_close
FROM (
    SELECT f.ticker, f.ts, f.close, f.sma20, f.sma50, f.volume_ratio,
           lag(f.close) OVER w AS prev_close, lag(f.sma20) OVER w AS prev_sma20,
           first_value(f.ts) OVER w AS base_ts, first_value(f.close) OVER w AS base_close,
           row_number() OVER (PARTITION BY f.ticker ORDER BY f.ts DESC) AS newest
    FROM lane_features f
    WHERE f.ticker = ANY(CAST(:tickers AS text[])) AND f.ts >= :since AND f.ts < :minute
    WINDOW w AS (PARTITION BY f.ticker ORDER BY f.ts)
) x
WHERE newest = 1
"""
LATEST_WINDOW = timedelta(minutes=30)


def latest_features(
    conn: Connection, tickers: Sequence[str], minute: datetime
) -> list[dict[str, Any]]:
    """Each ticker's newest features before `minute` (within 30 minutes), in one round trip.

    With the bar before it (`prev_close`, `prev_sma20`, for crosses) and the window's oldest bar
    (`base_ts`, `base_close`, for the return over the window).
    """
    return query(
        conn,
        LATEST_FEATURES,
        tickers=text_array(tickers),
        since=minute - LATEST_WINDOW,
        minute=minute,
    )


@dataclass(frozen=True)
class LaneFeatures:
    ticker: str
    ts: datetime
    close: Decimal
    sma20: Decimal | None
    sma50: Decimal | None
    volume_current: int
    volume_avg_20: Decimal | None
    volume_ratio: Decimal | None
    volume_surge: bool | None


def _mean(values: Sequence[Decimal | int]) -> Decimal:
    return sum((Decimal(v) for v in values), Decimal(0)) / len(values)


def _round(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def volume_ratio(volume_current: int, volume_avg_20: Decimal | None) -> Decimal | None:
    """`volume_current / volume_avg_20` to 4 places; None without an average or when it is 0."""
    if volume_avg_20 is None or volume_avg_20 == 0:
        return None
    return _round(Decimal(volume_current) / volume_avg_20, 4)


def lane_features(
    ticker: str,
    bars: Sequence[tuple[datetime, Decimal, int]],
    session_of: Callable[[datetime], str] | None = None,
) -> list[LaneFeatures]:
    """The same features in plain Python, over one ticker's (ts, close, volume) bars in time order.

    `session_of(ts)` says which part of its day a bar is ('pre', 'regular', 'post'); only regular
    bars get features and are in windows (without it every bar counts as regular).
    The SQL above is what runs; this is its specification, used by tests and by anyone checking a
    value by hand.
    """
    if session_of is not None:
        bars = [b for b in bars if session_of(b[0]) == "regular"]
    out = []
    for i, (ts, close, volume) in enumerate(bars):
        w20, w50 = bars[max(0, i - 19) : i + 1], bars[max(0, i - 49) : i + 1]
        avg20 = _mean([b[2] for b in w20]) if len(w20) == SMA_SHORT else None
        ratio = volume_ratio(volume, avg20)
        out.append(
            LaneFeatures(
                ticker=ticker,
                ts=ts,
                close=close,
                sma20=_round(_mean([b[1] for b in w20]), 6) if len(w20) == SMA_SHORT else None,
                sma50=_round(_mean([b[1] for b in w50]), 6) if len(w50) == SMA_LONG else None,
                volume_current=volume,
                volume_avg_20=_round(avg20, 2) if avg20 is not None else None,
                volume_ratio=ratio,
                volume_surge=ratio > SURGE_RATIO if ratio is not None else None,
            )
        )
    return out
