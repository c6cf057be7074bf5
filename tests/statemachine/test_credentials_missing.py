"""A stack whose Alpaca secret still holds the placeholder `template.yaml` creates it with.

The real minute state machine runs in moto with the real handlers; the secret is set to the
template's own `SecretString`, as it is in AWS between the first deploy and the operator's
`put-secret-value`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from ops_pipeline.event_time import iso_minute
from ops_pipeline.observability import metrics
from ops_pipeline_local.replay import local_stack
from ops_pipeline_local.template import REGION

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MACHINE = "MinutePipelineStateMachine"


def put_secret(secret_string: str) -> None:
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    secretsmanager.put_secret_value(
        SecretId=os.environ["ALPACA_SECRET_ARN"], SecretString=secret_string
    )


@pytest.fixture
def placeholder_stack(conn, database_url, bundled_bars) -> Iterator[tuple[Any, Any]]:
    with local_stack(bundled_bars, database_url=database_url, now=OPEN) as (runtime, market):
        secret = runtime.stack.resources("AWS::SecretsManager::Secret")["AlpacaSecret"]
        put_secret(secret["Properties"]["SecretString"])
        yield runtime, market


def run_minute(runtime: Any, market: Any, minute: datetime) -> Any:
    market.set_time(minute)
    return runtime.execute(MACHINE, {"time": iso_minute(minute)})


def emitted_metrics(stdout: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric documents Powertools printed."""
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def test_a_placeholder_secret_ends_each_minute_after_the_market_check_until_keys_are_in(
    placeholder_stack, conn, capsys, monkeypatch
):
    runtime, market = placeholder_stack
    capsys.readouterr()
    # Powertools reads its namespace and service when ops_pipeline.observability is first
    # imported: in Lambda under the function's environment, in this test process perhaps earlier,
    # by another test. Give it what the stack's environment says, as a cold start would.
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setattr(metrics, "service", os.environ["POWERTOOLS_SERVICE_NAME"])
    # Let Powertools print its metrics, as it does in Lambda (the local runtime turns them off).
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    try:
        results = [run_minute(runtime, market, OPEN + timedelta(minutes=m)) for m in (5, 6)]
    finally:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    stdout = capsys.readouterr().out

    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    for result in results:
        status = result.output["market"]
        assert status["credentials_missing"] is True
        assert status["is_open"] is False
        assert status["reason"].startswith("Alpaca credentials missing")
        assert set(result.output) == {"time", "execution", "market"}  # nothing ran after it
    assert {logical_id for logical_id, _ in runtime.invocations} == {"MarketCheckFunction"}
    assert market.requests == []  # Alpaca was never called with the placeholder
    assert conn.run("SELECT count(*) FROM lane_telemetry")[0][0] == 0

    counted = [
        doc
        for doc in emitted_metrics(stdout)
        if doc.get("CredentialsMissing") == [1.0]
        and doc.get("service") == "ops-pipeline"
        and doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OpsPipeline"
    ]
    assert len(counted) == 2  # one per minute: what CredentialsMissingAlarm watches
    assert "REPLACE_ME" not in stdout  # the secret's content is not logged

    # The operator puts the keys in; once the secret's 5-minute cache has run out, minutes run.
    put_secret(
        json.dumps({"key_id": runtime.alpaca_key_id, "secret_key": runtime.alpaca_secret_key})
    )
    parameters.clear_caches()
    after = run_minute(runtime, market, OPEN + timedelta(minutes=7))
    assert after.status == "SUCCEEDED"
    assert after.output["market"]["is_open"] is True
    assert "credentials_missing" not in after.output["market"]
    assert "dispatch" in after.output
    assert conn.run("SELECT count(*) FROM lane_telemetry")[0][0] > 0


def test_the_healthcheck_still_reports_data_without_credentials(placeholder_stack, conn):
    runtime, market = placeholder_stack
    report = runtime.invoke("HealthcheckFunction", {"time": iso_minute(OPEN + timedelta(hours=1))})
    assert report["market_open"] is None  # no calendar without keys: unknown, not "closed"
    assert market.requests == []
