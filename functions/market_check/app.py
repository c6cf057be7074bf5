"""Market check: which minutes this run is about, and whether they hold trading-session minutes."""

from datetime import date, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config
from ops_pipeline.event_time import event_window, iso_minute
from ops_pipeline.market import TradingSession, alpaca_calendar, market_status, trading_day
from ops_pipeline.observability import logger, metrics, stage_handler

TRADING = alpaca.ClientCache(alpaca.trading_client)
CALENDAR = alpaca_calendar(TRADING.get)


def _sessions(first: date, last: date) -> tuple[TradingSession, ...]:
    """The trading sessions from `first` to `last` (New York dates), in one calendar request."""
    return tuple(s for s in CALENDAR.sessions(first, last).values() if s is not None)


def _window_market(since: datetime, minute: datetime) -> dict[str, Any]:
    """The market at `minute`, plus every session of the window so that later stages can judge
    each minute; `is_open` when some minute of the window closes a session bar."""
    sessions = _sessions(trading_day(since), trading_day(minute))
    by_day: dict[date, TradingSession] = {s.day: s for s in sessions}
    market = market_status(minute, by_day.get(trading_day(minute))).as_event()
    if since < minute:
        in_window = [s for s in sessions if since <= s.closes and minute > s.opens]
        market["is_open"] = bool(in_window)
        if in_window and not market_status(minute, by_day.get(trading_day(minute))).is_open:
            market["reason"] = "regular session minutes in the window"
    market["sessions"] = [
        {"session_open": s.opens.isoformat(), "session_close": s.closes.isoformat()}
        for s in sessions
    ]
    return market


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    since, minute = event_window(event)
    try:
        config.alpaca_credentials()
    except config.CredentialsMissingError as exc:
        return _credentials_missing(minute, event, exc)
    market = _window_market(since, minute)
    logger.info("market check", extra={"market": market, "since": iso_minute(since)})
    return {
        "time": iso_minute(minute),
        "since": iso_minute(since),
        "execution": event.get("execution"),
        "market": market,
    }


def _credentials_missing(
    minute: datetime, event: dict[str, Any], exc: config.CredentialsMissingError
) -> dict[str, Any]:
    """End the minute here, successfully, with a metric the CredentialsMissing alarm watches."""
    metrics.add_metric(name="CredentialsMissing", unit=MetricUnit.Count, value=1)
    logger.error("Alpaca credentials missing: the minute ends here", extra={"error": str(exc)})
    return {
        "time": iso_minute(minute),
        "execution": event.get("execution"),
        "market": {
            "is_open": False,
            "reason": f"Alpaca credentials missing: {exc}",
            "session_open": None,
            "session_close": None,
            "credentials_missing": True,
        },
    }
