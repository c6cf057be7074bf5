"""Simulated fills without look-ahead (issue 9), the new risk limits against recorded fills, and
each minute of a real session run twice leaving the same rows (issue 7, promise 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from recommendations import recommend

from ops_pipeline import alpaca, features, signals, telemetry
from ops_pipeline.config import AlpacaCredentials, RiskLimits, SimulationCosts, TradingState
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.dispatch import (
    DispatchMinute,
    SimulatedBroker,
    SimulatedLedger,
    dispatch,
    order_prefix,
    window_lock_key,
)
from ops_pipeline.errors import TransientError
from ops_pipeline.market import alpaca_calendar
from ops_pipeline_local.alpaca_server import LocalAlpaca

D = Decimal
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
CLOSE = datetime(2019, 2, 12, 21, 0, tzinfo=UTC)
MINUTE = OPEN + timedelta(minutes=60)
COSTS = SimulationCosts(slippage_bps=D("5"), commission_per_share=D("0.005"))
KW = dict(market_open=True, state=TradingState.ACTIVE, session_close=CLOSE)


def bar(conn, ticker, ts, open_, close=None):
    conn.run(
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume)"
        " VALUES (:t, :ts, :o, :h, :l, :c, 1000)",
        t=ticker,
        ts=ts,
        o=D(open_),
        c=D(close or open_),
        h=max(D(open_), D(close or open_)),
        l=min(D(open_), D(close or open_)),
    )


def rows(conn):
    return conn.run(
        "SELECT ticker, side, status, qty, price, commission, filled_at, reject_reason"
        " FROM dispatch_executions ORDER BY recommendation_id"
    )


def test_a_simulated_order_fills_at_the_next_bars_open_plus_costs_once_that_bar_closed(conn):
    broker = SimulatedBroker(COSTS)
    bar(conn, "AAPL", MINUTE - timedelta(minutes=1), "170")  # the signal's bar: close 170
    recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    first = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)
    assert first["outcomes"] == {"submitted": 1}
    bar(conn, "AAPL", MINUTE, "171", "172")  # the bar that starts at the decision minute
    again = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)
    assert again["reconciled"] == 0  # that bar has not closed at MINUTE: no look-ahead
    assert rows(conn)[0][2] == "submitted"
    nxt = dispatch(conn, broker, minute=MINUTE + timedelta(minutes=1), limits=RiskLimits(), **KW)
    assert nxt["reconciled_outcomes"] == {"filled": 1}
    assert rows(conn) == [
        ["AAPL", "buy", "filled", D(58), D("171.0855"), D("0.29"), MINUTE, None]
    ]  # 171 open + 5 bps, against the buyer; 58 x $0.005


def test_a_submitted_simulated_order_is_an_open_order_and_a_fill_starts_a_cooldown(conn):
    broker = SimulatedBroker(COSTS)
    limits = RiskLimits(cooldown_minutes_after_fill=5)
    recommend(conn, "AAPL", "BUY", MINUTE)
    dispatch(conn, broker, minute=MINUTE, limits=limits, **KW)
    later = MINUTE + timedelta(minutes=1)
    recommend(conn, "AAPL", "BUY", later)  # the first has no bar yet: still open
    dispatch(conn, broker, minute=later, limits=limits, **KW)
    assert rows(conn)[1][7] == "an order for AAPL is already open"
    bar(conn, "AAPL", later, "100")
    third = later + timedelta(minutes=2)
    recommend(conn, "AAPL", "BUY", third)
    dispatch(conn, broker, minute=third, limits=limits, **KW)
    assert rows(conn)[0][2] == "filled" and rows(conn)[0][6] == later
    assert rows(conn)[2][7] == "cooldown: AAPL filled 2 min ago, wait 5 min"


def test_the_daily_loss_limit_marks_the_days_fills_at_the_last_close(conn):
    broker = SimulatedBroker(SimulationCosts(D(0), D(0)))
    limits = RiskLimits(max_daily_loss=D("500"), cooldown_minutes_after_fill=0)
    recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    dispatch(conn, broker, minute=MINUTE, limits=limits, **KW)
    bar(conn, "AAPL", MINUTE, "170", "160")  # bought 58 at 170, now at 160: -580
    later = MINUTE + timedelta(minutes=2)
    recommend(conn, "MSFT", "BUY", later)
    dispatch(conn, broker, minute=later, limits=limits, **KW)
    assert rows(conn)[1][7] == "daily loss 580.00 reached the limit 500: only sells go through"
    sell = later + timedelta(minutes=1)
    recommend(conn, "AAPL", "SELL", sell, price="160")
    dispatch(conn, broker, minute=sell, limits=limits, **KW)
    assert rows(conn)[2][2] == "submitted" and rows(conn)[2][3] == D(58)


def test_a_position_carried_overnight_counts_against_the_next_days_loss_limit(conn):
    """Bought 58 AAPL at 170 on the 12th, which closed at 170 (an after-hours print at 150 is
    not the close); the 13th opens at 160: the day is 580 down before any fill of its own."""
    broker = SimulatedBroker(SimulationCosts(D(0), D(0)))
    limits = RiskLimits(max_daily_loss=D("500"), cooldown_minutes_after_fill=0)
    recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    dispatch(conn, broker, minute=MINUTE, limits=limits, **KW)
    bar(conn, "AAPL", MINUTE, "170")
    bar(conn, "AAPL", CLOSE - timedelta(minutes=1), "170")  # 15:59: the regular close
    conn.run(
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume, session)"
        " VALUES ('AAPL', :ts, 150, 150, 150, 150, 10, 'post')",
        ts=CLOSE + timedelta(minutes=30),
    )
    next_open = OPEN + timedelta(days=1)
    next_close = CLOSE + timedelta(days=1)
    bar(conn, "AAPL", next_open, "165", "160")
    buy = next_open + timedelta(minutes=2)
    recommend(conn, "MSFT", "BUY", buy)
    dispatch(
        conn,
        broker,
        minute=buy,
        limits=limits,
        market_open=True,
        state=TradingState.ACTIVE,
        session_close=next_close,
    )
    (verdict,) = [
        g
        for g in conn.run("SELECT gate_verdicts FROM dispatch_executions WHERE ticker = 'MSFT'")[0][
            0
        ]
        if g["gate"] == "daily_loss"
    ]
    assert verdict == {
        "gate": "daily_loss",
        "passed": False,
        "detail": "daily loss 580.00 reached the limit 500: only sells go through",
    }


def test_a_pending_paper_row_is_never_filled_by_a_simulation(conn):
    """A `pending` row a paper run left (its order may be at the broker, where a simulation
    cannot look) is decided again each minute but never sent or filled; expired, it is refused."""
    broker = SimulatedBroker(COSTS)
    rec_id = recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    conn.run(
        "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, price, mode,"
        " client_order_id, status, decided_at, updated_at)"
        " VALUES (:r, 'AAPL', 'buy', 58, 170, 'paper', 'opsabcdef-AAPL-201902121529-BUY',"
        " 'pending', :m, now() - interval '1 hour')",  # its run ended long ago: no lease
        r=rec_id,
        m=MINUTE,
    )
    bar(conn, "AAPL", MINUTE, "171")
    for m in range(3):
        dispatch(conn, broker, minute=MINUTE + timedelta(minutes=m), limits=RiskLimits(), **KW)
    assert [r[2] for r in rows(conn)] == ["pending"]
    late = MINUTE + timedelta(minutes=6)  # past the 5-minute expiry
    summary = dispatch(conn, broker, minute=late, limits=RiskLimits(), **KW)
    assert summary["outcomes"] == {"rejected": 1}
    ((status, reason, decided_at),) = conn.run(
        "SELECT status, reject_reason, decided_at FROM dispatch_executions"
    )
    assert (status, decided_at) == ("rejected", late) and reason.startswith("expired")


def test_a_simulated_run_finding_another_run_of_its_deployment_at_work_is_retried(
    conn, database_url
):
    broker = SimulatedBroker(COSTS)
    dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)  # the deployment's salt
    ((salt,),) = conn.run("SELECT salt FROM dispatch_deployment")
    recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    other = connect(parse_database_url(database_url))  # a run of the same deployment, at work
    try:
        other.run("SELECT pg_advisory_lock(:k)", k=window_lock_key(order_prefix("local", salt)))
        with pytest.raises(TransientError, match="another dispatcher run"):
            dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)
        assert rows(conn) == []  # nothing decided, nothing half-written
        other.run("SELECT pg_advisory_unlock_all()")
    finally:
        other.close()
    retried = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)
    assert retried["outcomes"] == {"submitted": 1}


def test_a_window_whose_claim_another_run_took_first_is_decided_again_not_half_written(
    conn, database_url
):
    """A paper run of the deployment (it takes no window lock) claims a recommendation while a
    simulated window, in its transaction, is deciding: the window's later minutes were decided
    against an order it does not own, so it raises for the retry and its transaction writes
    nothing (as `dispatch_window` runs it); the retry decides the window again."""
    broker = SimulatedBroker(COSTS)
    dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)  # the deployment's salt
    ((salt,),) = conn.run("SELECT salt FROM dispatch_deployment")
    prefix = order_prefix("local", salt)
    rec_id = recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    recommend(conn, "AAPL", "BUY", MINUTE + timedelta(minutes=1), price="170")
    at = [DispatchMinute(MINUTE + timedelta(minutes=m), True, CLOSE) for m in range(2)]
    conn.run("START TRANSACTION")
    ledger = SimulatedLedger(conn, broker, prefix, at[0].minute, at[-1].minute)
    for minute in at:
        ledger.dispatch(minute, TradingState.ACTIVE, RiskLimits())
    other = connect(parse_database_url(database_url))  # the paper run, committing its claim
    try:
        other.run(
            "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, price, mode,"
            " client_order_id, status, reject_reason, decided_at) VALUES (:r, 'AAPL', 'buy', 58,"
            " 170, 'paper', :coid, 'rejected', 'market is closed', :m)",
            r=rec_id,
            coid=f"{prefix}-AAPL-201902121529-BUY",  # rec_id's: its signal bar is 15:29
            m=MINUTE,
        )
    finally:
        other.close()
    with pytest.raises(TransientError, match="claimed by another run"):
        ledger.write(conn)
    conn.run("ROLLBACK")
    assert [r[2] for r in rows(conn)] == ["rejected"]  # the other run's row, nothing of ours
    retried = dispatch(conn, broker, minute=at[1].minute, limits=RiskLimits(), **KW)
    assert retried["outcomes"] == {"submitted": 1}  # the second, no longer behind an open order
    assert [r[2] for r in rows(conn)] == ["rejected", "submitted"]


def test_an_order_without_a_bar_before_the_close_is_rejected_once_the_session_is_over(conn):
    broker = SimulatedBroker(COSTS)
    last = CLOSE - timedelta(minutes=1)  # 15:59 New York: the last minute that takes orders
    recommend(conn, "AAPL", "BUY", last)
    dispatch(conn, broker, minute=last, limits=RiskLimits(), **KW)
    bar(conn, "AAPL", CLOSE, "100")  # an after-hours bar is no fill for a regular-session order
    closing = dispatch(
        conn,
        broker,
        minute=CLOSE,
        market_open=False,
        state=TradingState.ACTIVE,
        session_close=CLOSE,
        limits=RiskLimits(),
    )
    assert closing["reconciled_outcomes"] == {"rejected": 1}
    assert rows(conn)[0][2:] == [
        "rejected",
        D(0),  # nothing filled
        D(100),  # the recommendation's price
        D(0),
        None,
        "no bar to fill at before the close",
    ]


def test_fills_do_not_depend_on_how_far_the_bars_ran_ahead_of_the_dispatcher(conn):
    """A catch-up window (bars already stored up to its end) decides what minute-by-minute runs
    decide: fills only use bars closed by each decision minute."""
    broker = SimulatedBroker(COSTS)
    plan = {0: ("AAPL", "BUY"), 1: ("MSFT", "BUY"), 3: ("AAPL", "SELL"), 5: ("AAPL", "BUY")}
    prices = {m: D(100 + m) for m in range(-1, 12)}

    def run(bars_ahead: bool):
        conn.run("TRUNCATE lane_telemetry, dispatch_executions, dispatch_recommendations CASCADE")
        if bars_ahead:
            for m, p in prices.items():
                for t in ("AAPL", "MSFT"):
                    bar(conn, t, MINUTE + timedelta(minutes=m), p)
        for m in range(0, 12):
            minute = MINUTE + timedelta(minutes=m)
            if not bars_ahead:
                for t in ("AAPL", "MSFT"):
                    bar(conn, t, minute - timedelta(minutes=1), prices[m - 1])
            if m in plan:
                recommend(conn, *plan[m], minute, price=str(prices[m - 1]))
            dispatch(conn, broker, minute=minute, limits=RiskLimits(), **KW)
        return rows(conn)

    stepped, ahead = run(False), run(True)
    assert stepped == ahead
    assert [r[2] for r in stepped] == ["filled"] * 4


@pytest.fixture
def market(bundled_bars):
    creds = AlpacaCredentials("TESTKEY", "test-secret")
    with LocalAlpaca(bundled_bars, creds.key_id, creds.secret_key, now=OPEN) as server:
        yield server, creds


def test_each_minute_of_a_real_session_run_twice_leaves_the_same_rows(conn, market, monkeypatch):
    server, creds = market
    monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
    monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
    client = alpaca.data_client(creds, timeout=5)
    calendar = alpaca_calendar(alpaca.trading_client(creds, timeout=5))
    tickers = ("AAPL", "AMZN", "MSFT", "SPY", "TSLA")
    tables = {
        "lane_telemetry": "ticker, ts, open, high, low, close, volume",
        "lane_features": "ticker, ts, sma20, sma50, volume_ratio, volume_surge",
        "dispatch_recommendations": "ticker, ts, decided_at, action, price, confidence, reason",
        "dispatch_executions": "ticker, side, qty, price, status, reject_reason, decided_at,"
        " client_order_id, gate_verdicts, commission, filled_at",
    }

    def session(times: int) -> dict[str, list]:
        conn.run(
            "TRUNCATE lane_telemetry, lane_features, dispatch_executions,"
            " dispatch_recommendations, signal_evaluations CASCADE"
        )
        for m in range(1, 61):
            minute = OPEN + timedelta(minutes=m)
            server.set_time(minute)
            for _ in range(times):
                telemetry.ingest(conn, client, tickers, minute, calendar)
                features.compute(conn, minute)
                signals.run(conn, tickers, minute)
                dispatch(conn, SimulatedBroker(COSTS), minute=minute, limits=RiskLimits(), **KW)
        return {
            t: conn.run(f"SELECT {cols} FROM {t} ORDER BY 1, 2, 3")  # fixed names, not input
            for t, cols in tables.items()
        }

    once = session(1)
    assert once["dispatch_executions"], "real bars make decisions"
    assert session(2) == once


def test_without_the_days_close_an_order_still_fills_on_a_bar_late_in_its_new_york_day(conn):
    # No session close handed down (a run without the market check's bounds): the order may fill
    # until New York midnight, so a bar at 15:50 New York (20:50 UTC in February) still fills it.
    broker = SimulatedBroker(COSTS)
    decided = datetime(2019, 2, 12, 20, 49, tzinfo=UTC)  # 15:49 New York
    recommend(conn, "AAPL", "BUY", decided, price="170")
    dispatch(conn, broker, minute=decided, limits=RiskLimits(), **{**KW, "session_close": None})
    bar(conn, "AAPL", decided + timedelta(minutes=1), "171")
    later = decided + timedelta(minutes=3)
    dispatch(conn, broker, minute=later, limits=RiskLimits(), **{**KW, "session_close": None})
    assert rows(conn)[0][2] == "filled" and rows(conn)[0][6] == decided + timedelta(minutes=1)


def test_an_order_left_submitted_past_a_day_is_settled_and_frees_its_ticker(conn):
    # The runs after its decision never came (an outage over a night and a day): the next run
    # rejects it for want of a bar, instead of leaving the ticker "busy" for good.
    broker = SimulatedBroker(COSTS)
    recommend(conn, "AAPL", "BUY", MINUTE, price="170")
    dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **KW)
    two_days_on = MINUTE + timedelta(days=2)
    recommend(conn, "AAPL", "BUY", two_days_on, price="170")
    dispatch(conn, broker, minute=two_days_on, limits=RiskLimits(), **{**KW, "session_close": None})
    first, second = rows(conn)
    assert first[2] == "rejected" and first[7] == "no bar to fill at before the close"
    assert second[2] == "submitted"  # not refused as "an order for AAPL is already open"
