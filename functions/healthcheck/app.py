"""Healthcheck: data freshness, last-hour counts and the minute pipeline's executions as metrics."""

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config, health
from ops_pipeline.db import ConnectionCache
from ops_pipeline.errors import PipelineError, TransientError
from ops_pipeline.event_time import event_minute
from ops_pipeline.market import TradingSession, alpaca_calendar, trading_day
from ops_pipeline.observability import logger, metrics, stage_handler

DB = ConnectionCache()
MINUTE_STATE_MACHINE_ARN = "MINUTE_STATE_MACHINE_ARN"


def _stepfunctions() -> Any:
    # A new client each run (once per 5 minutes): a cached one would outlive a local moto session.
    return boto3.client("stepfunctions")


TRADING = alpaca.ClientCache(alpaca.trading_client)
CALENDAR = alpaca_calendar(TRADING.get)


def _session(minute: Any) -> TradingSession | None:
    """The day's session from the same calendar as the market check; any failure is transient."""
    try:
        return CALENDAR.session(trading_day(minute))
    except PipelineError:
        raise
    except Exception as exc:
        raise TransientError(f"could not read the market calendar: {exc}") from exc


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    minute = event_minute(event)
    snapshot = health.read_snapshot(DB.get(), config.tickers(), minute)
    problems: list[PipelineError] = []
    session, session_known = None, True
    try:
        session = _session(minute)
    except config.CredentialsMissingError as exc:
        # The market check's CredentialsMissing alarm already says it; the data metrics still
        # go out (without MarketOpen), and the five-minute pipeline is not failed for it.
        logger.warning("no market calendar: Alpaca credentials missing", extra={"error": str(exc)})
        metrics.add_metric(name="CredentialsMissing", unit="Count", value=1)
        session_known = False
    except PipelineError as exc:  # the data metrics still go out; the stage then fails
        problems.append(exc)
        session_known = False
    executions = None
    if arn := os.environ.get(MINUTE_STATE_MACHINE_ARN):
        try:
            executions = health.read_executions(_stepfunctions(), arn, minute)
        except PipelineError as exc:
            problems.append(exc)
    else:
        logger.info(
            f"{MINUTE_STATE_MACHINE_ARN} is not set: minute-pipeline executions not checked"
        )
    report = health.health_report(
        snapshot, minute, executions, session=session, session_known=session_known
    )
    for metric in report.metrics():
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    if problems:
        raise problems[0]
    return report.as_dict()
