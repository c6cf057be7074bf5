"""A recommendation written straight into `dispatch_recommendations`, for dispatcher tests.

It stands for the signal engine's output: decided at `minute`, for the bar that started a minute
before, by the trend rule with a NORMAL volume band.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def recommend(
    conn: Any,
    ticker: str,
    action: str,
    minute: datetime,
    price: str = "100",
    confidence: str = "0.6",
) -> int:
    return conn.run(
        "INSERT INTO dispatch_recommendations (ticker, ts, decided_at, action, rule, price,"
        " base_confidence, volume_ratio, volume_multiplier, confidence, reason)"
        " VALUES (:t, :ts, :d, :a, 'trend_cross', :p, 0.6, 1.5, 1.0, :c, 'test') RETURNING id",
        t=ticker,
        ts=minute - timedelta(minutes=1),
        d=minute,
        a=action,
        p=price,
        c=confidence,
    )[0][0]
