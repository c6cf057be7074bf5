"""Watchlist engine: scores and ranks tickers from features and news into `lane_watchlist_state`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import config, watchlist
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.observability import metrics, stage_handler

DB = ConnectionCache()


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = watchlist.run(DB.get(), config.tickers(), event_minute(event))
    metrics.add_metric(name="WatchlistSize", unit="Count", value=len(summary["watchlist"]))
    return summary
