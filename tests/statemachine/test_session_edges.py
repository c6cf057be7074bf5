"""A real day, moved onto the early close of 2025-11-28 (13:00 New York), with extended hours,
run through the real state machines (moto's interpreter, the real handlers, the local Alpaca server).

Bars: 2019-02-12 from Alpha Vantage (masonblier/eqker, ISC), bundled in
src/ops_pipeline_local/data/bars. Its 09:30-12:59 bars are the regular session of 2025-11-28 (both
days are on Eastern Standard Time, so the UTC times move by whole days). IEX minute bars also cover
pre-market and after-hours at a fraction of the volume: the day's 14:30-15:59 bars become the
pre-market 08:00-09:29 and its 13:00-14:29 bars the after-hours 13:00-14:29, each at a twentieth
of its volume. The oracle for the features is pandas' rolling windows over the regular bars only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import pytest
from recommendations import recommend

from ops_pipeline.event_time import iso_minute
from ops_pipeline.market import NEW_YORK
from ops_pipeline.migrate import migrate
from ops_pipeline_local.bars import Bar
from ops_pipeline_local.replay import MINUTE_MACHINE, local_stack

pytestmark = pytest.mark.statemachine

REAL_DAY, EARLY_CLOSE = date(2019, 2, 12), date(2025, 11, 28)
TICKERS = ("AAPL", "MSFT", "TSLA")
OPENS = datetime.combine(EARLY_CLOSE, time(9, 30), NEW_YORK)
CLOSES = datetime.combine(EARLY_CLOSE, time(13, 0), NEW_YORK)
FRACTION = 20


def _ny(hh: int, mm: int) -> datetime:
    return datetime.combine(EARLY_CLOSE, time(hh, mm), NEW_YORK).astimezone(UTC)


# The minute pipeline runs at every fifth minute of the session, at every minute around its edges
# and at a few minutes of the pre-market and after-hours (each run ingests whatever is missing
# since the last stored bar, so every bar is still fetched).
RUNS = sorted(
    {_ny(9, 30) + timedelta(minutes=5 * i) for i in range(43)}
    | {_ny(9, 28) + timedelta(minutes=i) for i in range(5)}
    | {_ny(12, 57) + timedelta(minutes=i) for i in range(6)}
    | {_ny(8, 0), _ny(8, 45), _ny(9, 15), _ny(13, 30), _ny(14, 0), _ny(14, 30)}
)


def _moved(bar: Bar, was: time, becomes: time, volume: int | None = None) -> Bar:
    """The bar moved from `was` on the real day to `becomes` on the early-close day."""
    offset = bar.ts - datetime.combine(REAL_DAY, was, NEW_YORK)
    ts = datetime.combine(EARLY_CLOSE, becomes, NEW_YORK) + offset
    return replace(bar, ts=ts.astimezone(UTC), volume=bar.volume if volume is None else volume)


def early_close_day(bundled_bars: list[Bar]) -> tuple[list[Bar], list[Bar]]:
    """(every bar of the moved day, its regular-session bars)."""
    regular, extended = [], []
    for bar in bundled_bars:
        if bar.symbol not in TICKERS:
            continue
        wall = bar.ts.astimezone(NEW_YORK).time()
        thin = max(1, bar.volume // FRACTION)
        if wall < time(13, 0):
            regular.append(_moved(bar, time(9, 30), time(9, 30)))
        elif wall < time(14, 30):  # after-hours 13:00-14:29
            extended.append(_moved(bar, time(13, 0), time(13, 0), thin))
        else:  # 14:30-15:59 becomes the pre-market 08:00-09:29
            extended.append(_moved(bar, time(14, 30), time(8, 0), thin))
    return sorted(regular + extended, key=lambda b: (b.symbol, b.ts)), regular


def regular_only_rolling(bars: list[Bar]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(b.symbol, pd.Timestamp(b.ts), float(b.close), b.volume) for b in bars],
        columns=["ticker", "ts", "close", "volume"],
    ).sort_values(["ticker", "ts"])
    grouped = frame.groupby("ticker")
    frame["sma20"] = grouped["close"].transform(lambda s: s.rolling(20).mean())
    frame["sma50"] = grouped["close"].transform(lambda s: s.rolling(50).mean())
    avg20 = grouped["volume"].transform(lambda s: s.rolling(20).mean())
    frame["ratio"] = (frame["volume"] / avg20).where(avg20 > 0)
    frame["ts"] = frame["ts"].dt.tz_convert("UTC")
    return frame.set_index(["ticker", "ts"])


def test_extended_hours_on_an_early_close_stay_out_of_features_signals_and_orders(
    conn, database_url, bundled_bars
):
    bars, regular = early_close_day(bundled_bars)
    assert all(OPENS <= b.ts < CLOSES for b in regular) and len(regular) > 3 * 200
    assert {b.ts.astimezone(NEW_YORK).hour for b in bars} >= {8, 13, 14}

    migrate(conn)
    parameters = {"Tickers": ",".join(TICKERS), "TradingMode": "simulation", "Feeds": "[]"}
    with local_stack(bars, database_url=database_url, parameters=parameters) as (runtime, alpaca):
        for minute in RUNS:
            alpaca.set_time(minute)
            if minute == CLOSES:  # a BUY for the last bar, decided by the closing run
                recommend(conn, "AAPL", "BUY", CLOSES)
            outcome = runtime.execute(MINUTE_MACHINE, {"time": iso_minute(minute)})
            assert outcome.status == "SUCCEEDED", outcome

    # Every regular-session bar is stored as regular; the pre-market ones the first run fetched
    # are stored and marked; the after-hours bars are never fetched (no run after the close).
    stored = conn.run("SELECT ticker, ts, session FROM lane_telemetry")
    assert {(t, ts) for t, ts, s in stored if s == "regular"} == {(b.symbol, b.ts) for b in regular}
    assert {s for t, ts, s in stored if not OPENS <= ts < CLOSES} == {"pre"}
    assert sum(1 for *_, s in stored if s == "pre") == sum(1 for b in bars if b.ts < OPENS)

    # Features exist for regular bars only, equal to pandas over the regular bars alone.
    expected = regular_only_rolling(regular)
    rows = conn.run(
        "SELECT ticker, ts, sma20, sma50, volume_ratio, volume_surge FROM lane_features"
    )
    assert len(rows) == len(regular)
    for ticker, ts, sma20, sma50, ratio, surge in rows:
        want = expected.loc[(ticker, pd.Timestamp(ts))]
        for got, exp in ((sma20, want.sma20), (sma50, want.sma50), (ratio, want.ratio)):
            assert (got is None) == pd.isna(exp), (ticker, ts)
            if got is not None:
                assert float(got) == pytest.approx(exp, abs=1.01e-4), (ticker, ts)
        assert surge == (None if ratio is None else ratio > 3)

    # No recommendation for a bar outside the session, none decided outside it.
    recs = conn.run("SELECT ts, decided_at FROM dispatch_recommendations")
    assert recs, "the real day makes recommendations"
    assert all(OPENS <= ts < CLOSES and OPENS < decided <= CLOSES for ts, decided in recs)

    # No order decided at or after the close: the closing run ingests the last bar and may
    # recommend, but the dispatcher records it rejected (market closed).
    late = conn.run(
        "SELECT ticker, status, decided_at FROM dispatch_executions"
        " WHERE decided_at >= :closes AND status <> 'rejected'",
        closes=CLOSES,
    )
    assert late == []
    at_close = conn.run(
        "SELECT e.status, e.reject_reason FROM dispatch_recommendations r"
        " JOIN dispatch_executions e ON e.recommendation_id = r.id WHERE r.decided_at = :closes",
        closes=CLOSES,
    )
    assert at_close, "the closing run decides the last bar's recommendation"
    assert all(s == "rejected" and "market is closed" in reason for s, reason in at_close)


MARKET_CHECKS = [  # (minute, is_open, accepting orders, session in New York)
    (_ny(12, 59), True, True, ("09:30", "13:00")),
    (_ny(13, 0), True, False, ("09:30", "13:00")),  # the closing run: last bar, no order
    (_ny(13, 1), False, False, ("09:30", "13:00")),
    (datetime(2025, 1, 9, 16, 0, tzinfo=UTC), False, False, None),  # day of mourning
    (datetime(2012, 10, 30, 15, 0, tzinfo=UTC), False, False, None),  # Hurricane Sandy
    (datetime(2018, 12, 5, 15, 0, tzinfo=UTC), False, False, None),  # day of mourning
    (datetime(2025, 12, 1, 14, 31, tzinfo=UTC), True, True, ("09:30", "16:00")),
]


def test_the_market_check_handler_carries_the_days_session(database_url, bundled_bars):
    from ops_pipeline.market import accepting_orders

    with local_stack(bundled_bars[:1], database_url=database_url) as (runtime, alpaca):
        for minute, is_open, accepting, session in MARKET_CHECKS:
            alpaca.set_time(minute)
            market = runtime.invoke("MarketCheckFunction", {"time": iso_minute(minute)})["market"]
            assert market["is_open"] is is_open, minute
            assert accepting_orders(minute, market) is accepting, minute
            if session is None:
                assert market["session_open"] is None and market["session_close"] is None
            else:
                opens = datetime.fromisoformat(market["session_open"]).astimezone(NEW_YORK)
                closes = datetime.fromisoformat(market["session_close"]).astimezone(NEW_YORK)
                assert (f"{opens:%H:%M}", f"{closes:%H:%M}") == session, minute
