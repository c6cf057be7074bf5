"""Telemetry ingestor: closed 1-minute bars for every ticker, backfilling missed minutes."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config, telemetry
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.market import alpaca_calendar
from ops_pipeline.observability import metrics, stage_handler
from ops_pipeline.shards import event_tickers

DB = ConnectionCache()


CLIENTS = alpaca.ClientCache(alpaca.data_client)
TRADING = alpaca.ClientCache(alpaca.trading_client)
# The sessions that mark each bar pre / regular / post (fetched once per day and kept).
CALENDAR = alpaca_calendar(TRADING.get)


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tickers = event_tickers(event) or config.tickers()  # a backtest shard names its own
    summary = telemetry.ingest(DB.get(), CLIENTS.get(), tickers, event_minute(event), CALENDAR)
    metrics.add_metric(name="BarsIngested", unit="Count", value=summary["inserted"])
    metrics.add_metric(
        name="TickersWithoutBar", unit="Count", value=len(summary["tickers_without_bar"])
    )
    return summary
