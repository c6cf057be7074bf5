"""The database goes away mid-stage (issue 7, promise 5), through the real minute state machine:
the telemetry stage's connection is terminated while it waits for Alpaca's bars, the stage fails
with `DatabaseUnavailable`, the Task state's Retry runs it again on a new connection, and the
minute succeeds with every bar stored once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fault_proxy import FaultProxy

from ops_pipeline.event_time import iso_minute
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.runtime import LocalRuntime

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
TELEMETRY = "TelemetryIngestorFunction"


def test_a_connection_killed_mid_stage_is_retried_and_the_minute_succeeds(
    conn, database_url, bundled_bars
):
    runtime = LocalRuntime(database_url=database_url, parameters={"Tickers": "AAPL,MSFT,TSLA"})
    with LocalAlpaca(
        bundled_bars, runtime.alpaca_key_id, runtime.alpaca_secret_key, now=OPEN, no_shorting=True
    ) as market:
        proxy = FaultProxy(market.base_url)
        runtime.extra_env = {
            "ALPACA_DATA_URL": proxy.base_url,
            "ALPACA_TRADING_URL": proxy.base_url,
        }
        with runtime:
            minute = OPEN + timedelta(minutes=10)
            market.set_time(minute)
            first = runtime.execute("MinutePipelineStateMachine", {"time": iso_minute(minute)})
            assert first.status == "SUCCEEDED"

            def kill_the_stages_connections() -> None:
                killed = conn.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND application_name = 'ops-pipeline'"
                )
                assert killed

            proxy.fault("GET", "/v2/stocks/bars", "forward", hook=kill_the_stages_connections)
            minute += timedelta(minutes=1)
            market.set_time(minute)
            before = len([i for i in runtime.invocations if i[0] == TELEMETRY])
            result = runtime.execute("MinutePipelineStateMachine", {"time": iso_minute(minute)})
            after = len([i for i in runtime.invocations if i[0] == TELEMETRY])
        proxy.close()
    assert result.status == "SUCCEEDED", result.cause
    assert after - before == 2  # failed with DatabaseUnavailable, retried, succeeded
    assert result.output["telemetry"]["inserted"] == 3
    assert conn.run("SELECT count(*), count(DISTINCT (ticker, ts)) FROM lane_telemetry")[0] == [
        33,
        33,
    ]
