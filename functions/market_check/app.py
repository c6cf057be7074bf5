"""Market check: which minutes this run is about, and whether they hold trading-session minutes."""

from datetime import date, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config
from ops_pipeline.event_time import event_window, iso_minute
from ops_pipeline.market import TradingSession, market_status, trading_day
from ops_pipeline.observability import logger, stage_handler


@cache
def _client() -> Any:
    return alpaca.trading_client(config.alpaca_credentials())


@cache
def _sessions(first: str, last: str) -> tuple[TradingSession, ...]:
    """The trading sessions from `first` to `last` (New York dates), in one calendar request."""
    from alpaca.trading.requests import GetCalendarRequest

    days = alpaca.call(
        "calendar", lambda: _client().get_calendar(GetCalendarRequest(start=first, end=last))
    )
    return tuple(
        TradingSession.from_calendar_entry(d) for d in days if first <= str(d["date"]) <= last
    )


def _window_market(since: datetime, minute: datetime) -> dict[str, Any]:
    """The market at `minute`, plus every session of the window so that later stages can judge
    each minute; `is_open` when some minute of the window closes a session bar."""
    first, last = trading_day(since).isoformat(), trading_day(minute).isoformat()
    sessions = _sessions(first, last)
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
    market = _window_market(since, minute)
    logger.info("market check", extra={"market": market, "since": iso_minute(since)})
    return {
        "time": iso_minute(minute),
        "since": iso_minute(since),
        "execution": event.get("execution"),
        "market": market,
    }
