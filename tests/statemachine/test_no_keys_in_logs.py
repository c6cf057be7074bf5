"""Credentials never reach the logs (issue 7): a local run in paper mode, with Alpaca keys set,
orders sent and failures logged, leaves neither key in any log record or printed line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from ops_pipeline.event_time import iso_minute
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)


def test_a_paper_run_with_keys_set_logs_neither_key(
    conn, database_url, bundled_bars, caplog, capfd
):
    caplog.set_level(logging.INFO)  # the level the functions log at (botocore DEBUG is never on)
    parameters = {"Tickers": "AAPL,AMZN,MSFT,SPY,TSLA", "TradingMode": "paper"}
    with local_stack(bundled_bars, database_url=database_url, parameters=parameters, now=OPEN) as (
        runtime,
        market,
    ):
        keys = (runtime.alpaca_key_id, runtime.alpaca_secret_key)
        statuses = []
        for m in range(55, 66):
            minute = OPEN + timedelta(minutes=m)
            market.set_time(minute)
            if m == 60:
                market.fail_next(1, status=500)  # a failure, logged and retried
            result = runtime.execute("MinutePipelineStateMachine", {"time": iso_minute(minute)})
            statuses.append(result.status)
        # a refused order is logged with the broker's words
        conn.run(
            "INSERT INTO dispatch_recommendations (ticker, ts, decided_at, action, rule, price,"
            " base_confidence, volume_ratio, volume_multiplier, confidence, reason)"
            " VALUES ('ZZZZ', :ts, :d, 'BUY', 'trend_cross', 10, 0.6, 1.5, 1.0, 0.9, 'test')",
            ts=OPEN + timedelta(minutes=65),
            d=OPEN + timedelta(minutes=66),
        )
        market.set_time(OPEN + timedelta(minutes=66))
        runtime.execute(
            "MinutePipelineStateMachine", {"time": iso_minute(OPEN + timedelta(minutes=66))}
        )
    assert set(statuses) == {"SUCCEEDED"}
    refused = conn.run("SELECT reject_reason FROM dispatch_executions WHERE ticker = 'ZZZZ'")
    assert refused and "broker refused" in refused[0][0]
    printed = capfd.readouterr()
    records = [
        f"{r.getMessage()} {vars(r)} {logging.Formatter().formatException(r.exc_info) if r.exc_info else ''}"
        for r in caplog.records
    ]
    assert any("order refused by the broker" in line for line in records)
    for key in keys:
        assert len(key) >= 16
        assert key not in printed.out and key not in printed.err
        assert not [line for line in records if key in line]
