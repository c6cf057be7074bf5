"""Signal engine: features and classified news into BUY/SELL recommendations."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import config, signals
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_window
from ops_pipeline.holdings import book_tickers
from ops_pipeline.observability import logger, metrics, stage_handler
from ops_pipeline.shards import event_tickers
from ops_pipeline.sweep import event_setting, setting_connection

DB = ConnectionCache()
SWEEP_DB = ConnectionCache()  # a backtest sweep's: its search_path names the setting's schema
# A catch-up window at thousands of tickers kills thousands of signals: its result (a state's
# input, at most 256 KB) and its log list the first ones, and count them all.
MAX_LISTED_KILLED = 50


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    since, minute = event_window(event)
    shard = event_tickers(event)  # a backtest shard names its own tickers
    setting = event_setting(event)  # a backtest sweep's: its rule, its schema
    conn = DB.get() if setting is None else setting_connection(SWEEP_DB, setting)
    volume = signals.SPEC_VOLUME_RULE if setting is None else setting.volume
    # A held ticker no longer listed is evaluated until sold: its SELLs, never a BUY.
    tickers, sell_only = (
        (shard, set()) if shard else book_tickers(conn, config.tickers(), config.trading_mode())
    )
    summary = signals.run(conn, tickers, minute, since=since, sell_only=sell_only, volume=volume)
    killed = summary["killed"]
    for why in killed[:MAX_LISTED_KILLED]:
        logger.info("signal killed by volume", extra={"why": why})
    if len(killed) > MAX_LISTED_KILLED:
        logger.info(
            "more signals killed by volume", extra={"more": len(killed) - MAX_LISTED_KILLED}
        )
    if summary["late"]:
        logger.warning("bars evaluated after their close", extra={"late": summary["late"]})
    metrics.add_metric(name="RecommendationsCreated", unit="Count", value=summary["created"])
    metrics.add_metric(name="SignalsKilled", unit="Count", value=len(killed))
    summary["killed"], summary["killed_total"] = killed[:MAX_LISTED_KILLED], len(killed)
    return summary
