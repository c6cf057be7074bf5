"""The backtest state machine (Distributed Maps over shards read from moto's S3, then the
portfolio in event order) leaves the rows `replay` leaves, on the same input, in simulation.

The input: real bars of four tickers from three sessions (the afternoon of 2019-02-12, the first
90 minutes of 2019-02-13 and of 2019-02-15; Alpha Vantage via masonblier/eqker, ISC): two date
ranges (the 12th and 13th are consecutive sessions, one range; the 14th is left out, so the 15th
starts another), two ticker groups, four shards. The 15th's features reach back into the 13th's
bars, another range's; positions carry over the nights.
"""

from __future__ import annotations

import json
from datetime import date, time

import pytest
from paths import BUNDLED_BARS_DIR

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.market import NEW_YORK
from ops_pipeline_local.backtest import BACKTEST_MACHINE, BacktestPlan, backtest
from ops_pipeline_local.bars import read_bars
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

DATA = BUNDLED_BARS_DIR  # the same Alpha Vantage export, one file a session
TICKERS = ("AAPL", "AMZN", "MSFT", "TSLA")
SESSIONS = {  # New York day: the bars (by their start, New York time) backtested of it
    date(2019, 2, 12): (time(13, 30), time(16, 0)),
    date(2019, 2, 13): (time(9, 30), time(11, 0)),
    date(2019, 2, 15): (time(9, 30), time(11, 0)),
}
DAYS = tuple(SESSIONS)
# Each table's rows, minus surrogate ids and wall-clock stamps (as tests/statemachine/
# test_replay_identity.py compares them).
TABLES = {
    "lane_telemetry": "ticker, ts, open, high, low, close, volume, trade_count, vwap, session, source",
    "lane_features": "ticker, ts, close, sma20, sma50, volume_current, volume_avg_20,"
    " volume_ratio, volume_surge, bars_in_window",
    "signal_evaluations": "ticker, ts, decided_at, close, sma20, sma50, prev_close, prev_sma20,"
    " volume_ratio, trend, news_net, news_event_ids, band, volume_multiplier, action, rule,"
    " confidence, reason",
    "dispatch_recommendations": "ticker, ts, decided_at, action, rule, price, base_confidence,"
    " volume_ratio, volume_multiplier, confidence, news_event_ids, reason",
    "dispatch_executions e JOIN dispatch_recommendations r ON r.id = e.recommendation_id": (
        # client_order_id less its deployment prefix, which hashes each database's own salt
        "r.ticker, r.ts, e.side, e.qty, e.requested_qty, e.price, e.mode,"
        " regexp_replace(e.client_order_id, '^ops[0-9a-f]+-', ''), e.status,"
        " e.reject_reason, e.broker_order_id, e.decided_at, e.commission, e.filled_at,"
        " e.gate_verdicts::text"
    ),
}


@pytest.fixture(scope="module")
def bars():
    return [
        bar
        for bar in read_bars(DATA)
        if bar.symbol in TICKERS
        and (local := bar.ts.astimezone(NEW_YORK)).date() in SESSIONS
        and SESSIONS[local.date()][0] <= local.time() < SESSIONS[local.date()][1]
    ]


def _rows(url: str) -> dict[str, list]:
    conn = connect(parse_database_url(url))
    try:
        return {
            table: conn.run(f"SELECT {columns} FROM {table} ORDER BY {columns}")
            for table, columns in TABLES.items()
        }
    finally:
        conn.close()


def test_the_backtest_leaves_the_rows_replay_leaves(bars, database_server):
    with throwaway_database(database_server) as url:
        replayed = replay(bars, database_url=url)
        assert not replayed.failures, replayed.failures[0]
        expected = _rows(url)
    with throwaway_database(database_server) as url:
        result = backtest(bars, database_url=url, shards=2)
        assert not result.failures, (result.error, result.cause)
        got = _rows(url)

    assert result.executions == {BACKTEST_MACHINE: {"SUCCEEDED": 1}}
    plan = result.plan
    assert [(s.date(), t.date()) for s, t in plan.ranges] == [
        (date(2019, 2, 12), date(2019, 2, 13)),
        (date(2019, 2, 15), date(2019, 2, 15)),
    ]
    assert len(plan.shards) == 4 and {s.tickers for s in plan.shards} == {
        ("AAPL", "AMZN"),
        ("MSFT", "TSLA"),
    }
    # Each shard's stages ran as their own invocations (children of the Distributed Maps).
    assert result.invocations["TelemetryIngestorFunction"] == 4
    assert result.invocations["FeatureComputerFunction"] == 2
    assert result.invocations["SignalEngineFunction"] == 4
    assert result.invocations["DispatcherFunction"] >= 1

    # Not empty: every session's bars, the 15th's features warm from the 13th, some orders.
    assert len(expected["lane_telemetry"]) == len(bars)
    assert expected["dispatch_recommendations"], "the input makes no recommendation"
    assert any(row[8] == "filled" for row in expected[next(reversed(TABLES))])
    for table in TABLES:
        assert got[table] == expected[table], table

    # The shards in any order: the later range's, one at a time, before the earlier's.
    backwards = BacktestPlan(plan.ranges[::-1], plan.shards[::-1], plan.windows)
    with throwaway_database(database_server) as url:
        result = backtest(bars, database_url=url, shards=2, plan=backwards, concurrency=1)
        assert not result.failures, (result.error, result.cause)
        assert _rows(url) == expected


def test_a_backtest_refuses_a_stack_that_does_not_simulate(bars, database_server):
    """The backtest dispatches through the stack's dispatcher: not in a paper (or live) stack."""
    day = [b for b in bars if b.ts.astimezone(NEW_YORK).date() == DAYS[-1] and b.symbol == "AAPL"]
    with throwaway_database(database_server) as url:
        result = backtest(day[:30], database_url=url, shards=1, parameters={"TradingMode": "paper"})
        assert result.executions == {BACKTEST_MACHINE: {"FAILED": 1}}
        assert result.error == "BacktestNeedsSimulation"
        assert result.invocations == {}
        conn = connect(parse_database_url(url))
        try:
            assert conn.run("SELECT count(*) FROM lane_telemetry") == [[0]]
        finally:
            conn.close()


def test_the_command_runs_a_backtest_and_prints_its_summary(conn, database_url, tmp_path, capsys):
    from ops_pipeline_local.bars import read_bars, write_bars
    from ops_pipeline_local.cli import BUNDLED_BARS, main

    first = min(b.ts for b in read_bars(BUNDLED_BARS))
    chosen = [
        b
        for b in read_bars(BUNDLED_BARS)
        if b.symbol in ("AAPL", "MSFT", "TSLA") and (b.ts - first).total_seconds() < 60 * 60
    ]
    path = tmp_path / "bars.csv"
    write_bars(chosen, path)
    args = ["backtest", "--bars", str(path), "--database-url", database_url]

    code = main([*args, "--shards", "2", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out[out.out.index("{\n") :])  # after the handlers' log lines
    assert summary["bars"] == len(chosen) and summary["features"]["total"] == len(chosen)
    assert (
        "backtest succeeded: 2 shards (2 ticker groups x 1 date ranges), 1 portfolio windows"
        in out.err
    )

    assert main([*args, "--shards", "0"]) == 2
    assert "shards must be at least 1" in capsys.readouterr().err
