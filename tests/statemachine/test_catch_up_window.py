"""The minute state machine with a catch-up window `{"time": T, "since": S}`: the real ASL in
moto's interpreter, our handlers, PostgreSQL, the local Alpaca server with the real bars of
2019-02-12 (Alpha Vantage via masonblier/eqker, ISC)."""

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
    tickers = {"Tickers": "AAPL,AMZN,MSFT,TSLA"}
    with local_stack(bundled_bars, database_url=database_url, parameters=tickers, now=OPEN) as s:
        yield s


def run_window(runtime, market, since, minute):
    market.set_time(minute)
    return runtime.execute(MACHINE, {"time": iso_minute(minute), "since": iso_minute(since)})


def test_one_run_catches_up_an_hour_minute_by_minute(stack, conn):
    runtime, market = stack
    since, minute = OPEN + timedelta(minutes=1), OPEN + timedelta(minutes=60)
    result = run_window(runtime, market, since, minute)
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    assert out["since"] == iso_minute(since) and out["time"] == iso_minute(minute)
    assert out["market"]["is_open"] is True
    assert out["market"]["sessions"] == [
        {"session_open": "2019-02-12T09:30:00-05:00", "session_close": "2019-02-12T16:00:00-05:00"}
    ]
    assert out["signals"]["evaluated"] == 4 * 60 and out["signals"]["late"] == 0
    assert out["dispatch"]["minutes"] == 60
    windowed = ("MarketCheckFunction", "SignalEngineFunction", "DispatcherFunction")
    for logical_id, event in runtime.invocations:
        if logical_id in windowed:
            assert event["since"] == iso_minute(since), logical_id
    decided = conn.run("SELECT decided_at - ts FROM signal_evaluations")
    assert {d for (d,) in decided} == {timedelta(minutes=1)}  # every bar at its own close


def test_a_window_without_a_session_minute_ends_as_market_closed(stack, conn):
    runtime, market = stack
    result = run_window(runtime, market, OPEN - timedelta(hours=3), OPEN)
    assert result.status == "SUCCEEDED"
    assert result.output["market"]["is_open"] is False
    assert {logical_id for logical_id, _ in runtime.invocations} == {"MarketCheckFunction"}


@pytest.mark.parametrize(
    ("since", "message"),
    [(OPEN + timedelta(minutes=1), "is after time"), (OPEN - timedelta(days=6), "5 days")],
)
def test_a_bad_window_fails_the_execution_with_a_named_error(stack, since, message):
    runtime, market = stack
    result = run_window(runtime, market, since, OPEN)
    assert result.status == "FAILED"
    assert result.error == "InvalidEventError" and message in result.cause


def test_a_window_over_the_night_hands_down_each_day_s_session(stack, conn):
    runtime, market = stack
    since = OPEN + timedelta(hours=6, minutes=28)  # 15:58 New York
    result = run_window(runtime, market, since, since + timedelta(hours=17, minutes=34))
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    assert out["market"]["is_open"] is True  # 15:58 .. 16:00 of the first day
    # The NYSE calendar (exchange_calendars) trades both days: each session is handed down.
    assert [s["session_open"] for s in out["market"]["sessions"]] == [
        "2019-02-12T09:30:00-05:00",
        "2019-02-13T09:30:00-05:00",
    ]
    # 15:58, 15:59 and 16:00 of the first day, 09:31 and 09:32 of the next: not the night.
    assert out["dispatch"]["minutes"] == 5
