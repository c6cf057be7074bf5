"""Dispatcher: risk gates, then simulated fills or Alpaca orders, each recommendation at most once."""

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config
from ops_pipeline.config import TradingMode
from ops_pipeline.db import ConnectionCache
from ops_pipeline.dispatch import AlpacaBroker, Broker, SimulatedBroker, dispatch
from ops_pipeline.event_time import event_minute
from ops_pipeline.market import accepting_orders
from ops_pipeline.observability import metrics, stage_handler

DB = ConnectionCache()


CLIENTS = alpaca.ClientCache(alpaca.trading_client)


def _broker(mode: TradingMode) -> Broker:
    if mode is TradingMode.SIMULATION:
        return SimulatedBroker(config.simulation_costs())
    return AlpacaBroker(CLIENTS.get(paper=mode is TradingMode.PAPER), mode)


def _session_close(market: dict[str, Any]) -> datetime | None:
    close = market.get("session_close")
    return datetime.fromisoformat(str(close)) if close else None


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    mode = config.trading_mode()
    minute = event_minute(event)
    market = event.get("market") or {}
    summary = dispatch(
        DB.get(),
        _broker(mode),
        minute=minute,
        market_open=accepting_orders(minute, market),
        state=config.trading_state(),
        limits=config.risk_limits(),
        deployment=config.deployment_id(),
        session_close=_session_close(market),
    )
    metrics.add_dimension(name="mode", value=mode.value)
    outcomes = summary["outcomes"]
    filled = outcomes.get("filled", 0) + summary["reconciled_outcomes"].get("filled", 0)
    metrics.add_metric(name="OrdersFilled", unit="Count", value=filled)
    metrics.add_metric(name="OrdersSubmitted", unit="Count", value=outcomes.get("submitted", 0))
    # Broker refusals are the alarm's concern; risk-gate blocks are the gates doing their job.
    metrics.add_metric(name="OrdersRejected", unit="Count", value=summary["refused_by_broker"])
    metrics.add_metric(
        name="RiskGateRejections", unit="Count", value=summary["blocked_by_risk_gates"]
    )
    return summary
