"""The real `statemachines/minute_pipeline.asl.json`, executed by moto's ASL interpreter with our
real handlers, the real template's parameters, PostgreSQL and the local Alpaca server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops_pipeline.event_time import iso_minute
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MACHINE = "MinutePipelineStateMachine"


@pytest.fixture
def stack(conn, database_url, bundled_bars):
    tickers = {"Tickers": "AAPL,AMZN,MSFT,SPY,TSLA"}
    with local_stack(bundled_bars, database_url=database_url, parameters=tickers, now=OPEN) as s:
        yield s


def run_minute(runtime, market, minute, name=None):
    market.set_time(minute)
    return runtime.execute(MACHINE, {"time": iso_minute(minute)}, name=name)


def test_a_trading_hour_runs_through_every_stage(stack, conn):
    runtime, market = stack
    results = [run_minute(runtime, market, OPEN + timedelta(minutes=m)) for m in range(0, 61)]
    assert {r.status for r in results} == {"SUCCEEDED"}
    assert results[0].output["market"]["is_open"] is False  # 09:30: the 09:29 bar is pre-market
    last = results[-1].output
    assert last["market"]["is_open"] is True
    assert set(last) >= {
        "time",
        "execution",
        "market",
        "telemetry",
        "features",
        "signals",
        "dispatch",
    }
    assert last["telemetry"]["to"] == (OPEN + timedelta(minutes=59)).isoformat()
    assert conn.run("SELECT count(*) FROM lane_telemetry")[0][0] == 300
    assert conn.run("SELECT count(*) FROM lane_features WHERE sma50 IS NOT NULL")[0][0] == 5 * 11
    invoked = {logical_id for logical_id, _ in runtime.invocations}
    assert invoked == {
        "MarketCheckFunction",
        "TelemetryIngestorFunction",
        "FeatureComputerFunction",
        "SignalEngineFunction",
        "DispatcherFunction",
    }


def test_every_stage_receives_the_scheduled_minute_not_the_wall_clock(stack):
    runtime, market = stack
    run_minute(runtime, market, OPEN + timedelta(minutes=5))
    assert {event["time"] for _, event in runtime.invocations} == {"2019-02-12T14:35:00Z"}
    assert len({event["execution"] for _, event in runtime.invocations}) == 1


def test_running_a_minute_twice_leaves_the_same_rows(stack, conn):
    runtime, market = stack
    for m in range(1, 40):
        run_minute(runtime, market, OPEN + timedelta(minutes=m))
    tables = ("lane_telemetry", "lane_features", "dispatch_recommendations", "dispatch_executions")
    before = {t: conn.run(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}  # fixed names
    again = run_minute(runtime, market, OPEN + timedelta(minutes=39))
    assert again.status == "SUCCEEDED"
    after = {t: conn.run(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    assert after == before


def test_a_console_execution_with_empty_input_uses_its_start_time(stack):
    runtime, _ = stack
    result = runtime.execute(MACHINE, {})
    assert result.status == "SUCCEEDED"
    started = datetime.fromisoformat(result.output["time"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=2)
    assert started.second == 0
    assert result.output["market"]["is_open"] is False  # today is not in the bundled calendar


def test_a_transient_market_data_failure_is_retried(stack, conn):
    runtime, market = stack
    minute = OPEN + timedelta(minutes=10)
    market.set_time(minute)
    market.fail_next(2, status=500)  # calendar and bars fail once each
    result = runtime.execute(MACHINE, {"time": iso_minute(minute)})
    assert result.status == "SUCCEEDED"
    assert conn.run("SELECT count(*) FROM lane_telemetry")[0][0] == 50


def test_a_bad_parameter_fails_the_execution_with_a_named_error(conn, database_url, bundled_bars):
    bad = {"RiskLimits": '{"min_confidence": "lots"}'}
    with local_stack(bundled_bars, database_url=database_url, parameters=bad, now=OPEN) as s:
        result = run_minute(*s, OPEN + timedelta(minutes=3))
    assert result.status == "FAILED"
    assert result.error == "ConfigError"
    assert "risk limits" in result.cause
