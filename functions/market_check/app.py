"""Market check: which minute this run is about, and whether its bar is in a trading session."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca
from ops_pipeline.event_time import event_minute, iso_minute
from ops_pipeline.market import TradingSession, market_status, trading_day
from ops_pipeline.observability import logger, stage_handler

CLIENTS = alpaca.ClientCache(alpaca.trading_client)


@cache
def _session(day: str) -> TradingSession | None:
    from alpaca.trading.requests import GetCalendarRequest

    days = alpaca.call(
        "calendar", lambda: CLIENTS.get().get_calendar(GetCalendarRequest(start=day, end=day))
    )
    return next(
        (TradingSession.from_calendar_entry(d) for d in days if str(d["date"]) == day), None
    )


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    minute = event_minute(event)
    status = market_status(minute, _session(trading_day(minute).isoformat()))
    logger.info("market check", extra={"market": status.as_event()})
    return {
        "time": iso_minute(minute),
        "execution": event.get("execution"),
        "market": status.as_event(),
    }
