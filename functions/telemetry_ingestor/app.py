"""Telemetry ingestor: closed 1-minute bars for every ticker, backfilling missed minutes."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config, telemetry
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.market import MarketCalendar, alpaca_calendar
from ops_pipeline.observability import metrics, stage_handler

DB = ConnectionCache()


@cache
def _client() -> Any:
    return alpaca.data_client(config.alpaca_credentials())


@cache
def _calendar() -> MarketCalendar:
    """The sessions that mark each bar pre / regular / post (fetched once per day and kept)."""
    return alpaca_calendar(alpaca.trading_client(config.alpaca_credentials()))


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = telemetry.ingest(
        DB.get(), _client(), config.tickers(), event_minute(event), _calendar()
    )
    metrics.add_metric(name="BarsIngested", unit="Count", value=summary["inserted"])
    metrics.add_metric(
        name="TickersWithoutBar", unit="Count", value=len(summary["tickers_without_bar"])
    )
    return summary
