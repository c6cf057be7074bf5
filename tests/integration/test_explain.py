"""`ops-pipeline explain TICKER --at TIME` on real bars (2019-02-12, Alpha Vantage via
masonblier/eqker, ISC) run through the stages: a signal that fired and was executed, one that did
not fire, one killed by volume, and a minute with nothing stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from stages import run_minute

from ops_pipeline import telemetry
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.event_time import ONE_MINUTE, iso_minute
from ops_pipeline_local.cli import main
from ops_pipeline_local.embedded_db import throwaway_database

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
TICKERS = ["AAPL", "AMZN", "MSFT", "TSLA"]


@pytest.fixture(scope="module")
def explained(database_server, bundled_bars):
    """A database of its own: two hours of the session through ingest, features, signals and
    dispatch, minute by minute, with one strong AAPL headline fetched at 15:05."""
    with throwaway_database(database_server) as url:
        conn = connect(parse_database_url(url))
        _run_pipeline(conn, bundled_bars)
        yield url, conn
        conn.close()


def _run_pipeline(conn, bundled_bars):
    telemetry.upsert_bars(
        conn,
        [
            telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
            for b in bundled_bars
            if b.ts < OPEN + timedelta(minutes=120)
        ],
    )
    (event_id,) = conn.run(
        "INSERT INTO inbound_events_raw (feed_name, feed_url, item_key, title, published_at,"
        " fetched_at) VALUES ('wire', 'http://127.0.0.1/wire.xml', 'k1',"
        " 'Apple raises its dividend', :p, :f) RETURNING id",
        p=OPEN + timedelta(minutes=33),
        f=OPEN + timedelta(minutes=35),
    )[0]
    conn.run(
        "INSERT INTO inbound_events_classified (event_id, label, score, polarity, tickers, model,"
        " event_time) VALUES (:e, 'positive', 0.95, 0.91, '{AAPL}', 'test', :t)",
        e=event_id,
        t=OPEN + timedelta(minutes=33),
    )
    for m in range(1, 121):
        run_minute(conn, TICKERS, OPEN + m * ONE_MINUTE)


@pytest.fixture
def pipeline(explained):
    return explained[1]


@pytest.fixture
def database_url(explained):
    return explained[0]


def _explain(database_url, ticker, ts, capsys):
    code = main(["explain", ticker, "--at", iso_minute(ts), "--database-url", database_url])
    return code, capsys.readouterr().out


def test_explains_a_signal_that_fired_and_its_execution(pipeline, database_url, capsys):
    ticker, ts, status, ratio = pipeline.run(
        "SELECT r.ticker, r.ts, e.status, f.volume_ratio FROM dispatch_recommendations r"
        " JOIN dispatch_executions e ON e.recommendation_id = r.id"
        " JOIN lane_features f ON f.ticker = r.ticker AND f.ts = r.ts"
        " WHERE e.status = 'filled' ORDER BY r.ts LIMIT 1"
    )[0]
    code, out = _explain(database_url, ticker.lower(), ts, capsys)
    assert code == 0
    assert f"volume ratio {ratio:.4f}" in out  # to its stored 4 decimals
    assert "trend rule: FIRED" in out or "news" in out
    assert re.search(r"outcome: (BUY|SELL) by rule", out)
    assert f"execution: {status}" in out and "reject_reason -" in out
    assert "risk gates" in out


def test_explains_a_signal_that_did_not_fire(pipeline, database_url, capsys):
    ticker, ts, reason = pipeline.run(
        "SELECT ticker, ts, reason FROM signal_evaluations WHERE action IS NULL"
        " AND trend IS NULL AND sma50 IS NOT NULL ORDER BY ts LIMIT 1"
    )[0]
    code, out = _explain(database_url, ticker, ts, capsys)
    assert code == 0
    assert "trend rule: did not fire" in out and "outcome: no recommendation" in out
    assert reason in out and "recommendation: none" in out


def test_shows_the_headlines_that_counted_with_their_fetch_minute(pipeline, database_url, capsys):
    ts = OPEN + timedelta(minutes=40)
    code, out = _explain(database_url, "AAPL", ts, capsys)
    assert code == 0
    assert "news: net +0.9100 from 1 headline(s)" in out
    assert '"Apple raises its dividend"' in out and "fetched 2019-02-12T15:05:00Z" in out


def test_explains_a_rejected_execution_s_reason(pipeline, database_url, capsys):
    rows = pipeline.run(
        "SELECT r.ticker, r.ts, e.reject_reason FROM dispatch_recommendations r"
        " JOIN dispatch_executions e ON e.recommendation_id = r.id"
        " WHERE e.status = 'rejected' ORDER BY r.ts LIMIT 1"
    )
    assert rows, "the two hours make a rejection"
    ticker, ts, why = rows[0]
    code, out = _explain(database_url, ticker, ts, capsys)
    assert code == 0 and "execution: rejected" in out and why in out


def test_a_minute_without_a_bar_says_so(database_url, capsys):
    code, out = _explain(database_url, "AAPL", OPEN - ONE_MINUTE, capsys)
    assert code == 1 and "no bar and no features stored" in out


def test_a_bad_time_is_refused(database_url, capsys):
    assert main(["explain", "AAPL", "--at", "noon", "--database-url", database_url]) == 2
    assert "not ISO-8601" in capsys.readouterr().err


@pytest.mark.parametrize(
    "verdicts",
    [
        [
            {"gate": "market_open", "passed": True},
            {"gate": "min_confidence", "passed": False, "detail": "0.18 < 0.50"},
        ],
        {"market_open": {"passed": True}, "min_confidence": "0.18 < 0.50"},
    ],
)
def test_each_risk_gate_s_verdict_is_printed_whatever_its_stored_shape(verdicts):
    from ops_pipeline_local.explain import Explanation, render

    execution = {
        "status": "rejected",
        "side": "buy",
        "qty": 0,
        "price": "170.4",
        "mode": "simulation",
        "decided_at": "2019-02-12T15:06:00+00:00",
        "reject_reason": "confidence 0.1800 is below the minimum 0.5000",
        "gate_verdicts": verdicts,
    }
    recommendation = {
        "id": 1,
        "action": "BUY",
        "price": "170.4",
        "confidence": "0.18",
        "decided_at": OPEN,
        "reason": "r",
    }
    out = render(
        Explanation(
            "AAPL",
            OPEN,
            bar={"open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
            recommendation=recommendation,
            execution=execution,
        )
    )
    assert "    market_open: " in out and "    min_confidence: " in out and "0.18 < 0.50" in out
    assert "status rejected, reject_reason confidence 0.1800" in out


def test_a_cross_blocked_by_the_trend_filter_names_the_filter(pipeline, database_url, capsys):
    """The close crossed its sma20 but sma20 lay on the other side of sma50: not "no cross"."""
    blocked = pipeline.run(
        "SELECT ticker, ts, close, prev_close, sma20, prev_sma20, sma50 FROM signal_evaluations"
        " WHERE trend IS NULL AND sma50 IS NOT NULL AND prev_sma20 IS NOT NULL"
        " AND ((prev_close <= prev_sma20 AND close > sma20 AND sma20 < sma50)"
        "   OR (prev_close >= prev_sma20 AND close < sma20 AND sma20 > sma50))"
        " ORDER BY ts, ticker LIMIT 1"
    )
    assert blocked, "two hours of four tickers hold a cross against the trend"
    ticker, ts, close, prev_close, sma20, prev_sma20, sma50 = blocked[0]
    code, out = _explain(database_url, ticker, ts, capsys)
    assert code == 0
    action = "BUY" if close > sma20 else "SELL"
    assert f"but the trend filter blocked a {action}" in out, out
    assert "no cross" not in out and "no trend cross" not in out
    reason = pipeline.run(
        "SELECT reason FROM signal_evaluations WHERE ticker = :t AND ts = :ts", t=ticker, ts=ts
    )[0][0]
    assert f"the trend filter blocked a {action}" in reason
