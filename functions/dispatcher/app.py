"""Dispatcher: risk gates, then simulated fills or Alpaca orders, each recommendation at most once.

A catch-up window is dispatched minute by minute, in order, each minute as a run of its own would
have been: only the minutes whose bar is a session bar, the market taking orders per
`market.accepting_orders` with that day's session from the market check. In simulation the whole
window is dispatched in memory (`dispatch.simulated.SimulatedLedger`): the same rows, in a handful
of queries. In paper and live the broker's clock also says whether an order may still go out.
"""

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config
from ops_pipeline.config import TradingMode
from ops_pipeline.db import ConnectionCache
from ops_pipeline.dispatch import (
    AlpacaBroker,
    DispatchMinute,
    RemoteBroker,
    SimulatedBroker,
    dispatch_window,
)
from ops_pipeline.errors import ConfigError
from ops_pipeline.event_time import event_window, window_minutes
from ops_pipeline.market import (
    NEW_YORK,
    TradingSession,
    accepting_orders,
    market_status,
    trading_day,
)
from ops_pipeline.observability import metrics, stage_handler
from ops_pipeline.sweep import event_setting, setting_connection

DB = ConnectionCache()
SWEEP_DB = ConnectionCache()  # a backtest sweep's: its search_path names the setting's schema
MAX_LISTED_REJECTIONS = 50  # a catch-up window's summary stays well under a state's 256 KB


CLIENTS = alpaca.ClientCache(alpaca.trading_client)
# Time kept back from the invocation's budget when waiting out a rate limit on an order: the
# outcomes are still written, and the run ends before Lambda's timeout.
BUDGET_MARGIN_SECONDS = 10.0


def _broker(mode: TradingMode, budget_seconds: float) -> RemoteBroker | SimulatedBroker:
    if mode is TradingMode.SIMULATION:
        return SimulatedBroker(config.simulation_costs())
    client = CLIENTS.get(paper=mode is TradingMode.PAPER)
    return AlpacaBroker(client, mode, budget_seconds=max(budget_seconds, 0.0))


def _session_close(market: dict[str, Any] | None) -> datetime | None:
    close = (market or {}).get("session_close")
    return datetime.fromisoformat(str(close)) if close else None


def _market_at(minute: datetime, market: dict[str, Any]) -> dict[str, Any] | None:
    """The session of `minute`'s New York day from the market check's event, or None."""
    day = trading_day(minute)
    for session in market.get("sessions") or [market]:
        opens = session.get("session_open")
        if opens and datetime.fromisoformat(str(opens)).astimezone(NEW_YORK).date() == day:
            return dict(session)
    return None


def _dispatch_minutes(event: dict[str, Any]) -> list[DispatchMinute]:
    """Each minute of the window a run of its own would have dispatched at (its bar was a session
    bar), with whether the market takes orders then, and that day's close."""
    since, minute = event_window(event)
    market = event.get("market", {})
    out: list[DispatchMinute] = []
    for m in window_minutes(since, minute):
        session = _market_at(m, market)
        if session is None:
            if since == minute:  # no session bounds handed down: the market check's verdict
                out.append(DispatchMinute(m, bool(market.get("is_open"))))
            continue
        if since == minute or market_status(m, _session(session)).is_open:
            out.append(DispatchMinute(m, accepting_orders(m, session), _session_close(session)))
    return out


def _session(market: dict[str, Any]) -> TradingSession:
    opens = datetime.fromisoformat(str(market["session_open"]))
    closes = datetime.fromisoformat(str(market["session_close"]))
    return TradingSession(opens.astimezone(NEW_YORK).date(), opens, closes)


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    setting = event_setting(event)  # a backtest sweep's: its risk limits, its schema
    mode = config.trading_mode()
    if setting is not None and mode is not TradingMode.SIMULATION:
        raise ConfigError(f"a sweep's setting is dispatched in simulation only, not {mode.value}")
    budget = context.get_remaining_time_in_millis() / 1000 - BUDGET_MARGIN_SECONDS
    broker, state, limits = _broker(mode, budget), config.trading_state(), config.risk_limits()
    deployment = config.deployment_id()
    minutes = _dispatch_minutes(event)
    run = str(event.get("execution") or "") or None  # the Step Functions execution: leases name it
    if setting is None:
        conn = DB.get()
    else:
        limits, conn = setting.risk_limits(limits), setting_connection(SWEEP_DB, setting)
    summary = dispatch_window(
        conn,
        broker,
        minutes,
        state=state,
        limits=limits,
        deployment=deployment,
        run=run,
    )
    summary["rejections"] = summary.get("rejections", [])[:MAX_LISTED_REJECTIONS]
    metrics.add_dimension(name="mode", value=mode.value)
    outcomes = summary.get("outcomes", {})
    filled = outcomes.get("filled", 0) + summary.get("reconciled_outcomes", {}).get("filled", 0)
    metrics.add_metric(name="OrdersFilled", unit="Count", value=filled)
    metrics.add_metric(name="OrdersSubmitted", unit="Count", value=outcomes.get("submitted", 0))
    # Broker refusals, at submission or after acceptance, are the alarm's concern; risk-gate
    # blocks are the gates doing their job.
    refused = summary.get("refused_by_broker", 0) + summary.get("rejected_after_acceptance", 0)
    metrics.add_metric(name="OrdersRejected", unit="Count", value=refused)
    metrics.add_metric(
        name="RiskGateRejections", unit="Count", value=summary.get("blocked_by_risk_gates", 0)
    )
    return summary
