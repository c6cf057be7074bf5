"""Rotated Alpaca keys are picked up by the next run: the secret in moto and the keys the local
Alpaca accepts change together, and the stages read the secret again on the 401."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests

from ops_pipeline.event_time import iso_minute
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MACHINE = "MinutePipelineStateMachine"


def test_after_a_key_rotation_the_next_run_works(conn, database_url, bundled_bars):
    parameters = {"Tickers": "AAPL,MSFT", "TradingMode": "paper"}
    with local_stack(bundled_bars, database_url=database_url, parameters=parameters) as stack:
        runtime, market = stack

        def run(minute: datetime):
            market.set_time(minute)
            return runtime.execute(MACHINE, {"time": iso_minute(minute)})

        assert run(OPEN + timedelta(minutes=5)).status == "SUCCEEDED"
        old_key = runtime.alpaca_key_id

        new_key, new_secret = f"LOCAL{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
        secret_name = runtime.stack.secrets()["AlpacaSecret"]
        boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
            SecretId=secret_name,
            SecretString=json.dumps({"key_id": new_key, "secret_key": new_secret}),
        )
        market.set_keys(new_key, new_secret)
        refused = requests.get(
            f"{market.base_url}/v2/account",
            headers={"APCA-API-KEY-ID": old_key, "APCA-API-SECRET-KEY": "whatever"},
            timeout=5,
        )
        assert refused.status_code == 401

        after = run(OPEN + timedelta(minutes=6))  # the clients still hold the old keys
        assert after.status == "SUCCEEDED", after.cause
        assert after.output["telemetry"]["inserted"] == 2  # the 14:35 bars of AAPL and MSFT
        assert run(OPEN + timedelta(minutes=7)).status == "SUCCEEDED"
    assert conn.run("SELECT count(*) FROM lane_telemetry")[0][0] == 14
