"""Telemetry ingestor: closed 1-minute bars for every ticker, backfilling missed minutes, from
Alpaca or, while Alpaca fails or is stale, from the backup provider (Massive) when one is set."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config, massive, telemetry
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.holdings import book_tickers
from ops_pipeline.market import alpaca_calendar
from ops_pipeline.observability import metrics, stage_handler
from ops_pipeline.shards import event_tickers

DB = ConnectionCache()


CLIENTS = alpaca.ClientCache(alpaca.data_client)
TRADING = alpaca.ClientCache(alpaca.trading_client)
# The backup's client: None while its secret holds the placeholder (no failover).
BACKUP = massive.ClientCache()
# The sessions that mark each bar pre / regular / post (fetched once per day and kept).
CALENDAR = alpaca_calendar(TRADING.get)


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    backup_client = BACKUP.get()
    backup = telemetry.massive_provider(backup_client) if backup_client is not None else None
    # A backtest shard names its own tickers; else the list, and a ticker the pipeline holds keeps
    # its bars (its marks, its SELL) after it leaves the list.
    tickers = (
        event_tickers(event) or book_tickers(DB.get(), config.tickers(), config.trading_mode())[0]
    )
    summary = telemetry.ingest(
        DB.get(), CLIENTS.get(), tickers, event_minute(event), CALENDAR, backup
    )
    metrics.add_metric(name="BarsIngested", unit="Count", value=summary["inserted"])
    metrics.add_metric(
        name="TickersWithoutBar", unit="Count", value=len(summary["tickers_without_bar"])
    )
    source = summary["source"]
    on_backup = source["in_use"] != telemetry.PRIMARY_SOURCE
    metrics.add_metric(name="BackupSourceInUse", unit="Count", value=int(on_backup))
    if source["switched"]:
        metrics.add_metric(name="MarketDataSourceSwitches", unit="Count", value=1)
    return summary
