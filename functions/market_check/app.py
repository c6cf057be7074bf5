"""Market check: which minute this run is about, and whether its bar is in a trading session."""

from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import alpaca, config
from ops_pipeline.event_time import event_minute, iso_minute
from ops_pipeline.market import alpaca_calendar, market_status, trading_day
from ops_pipeline.observability import logger, metrics, stage_handler

TRADING = alpaca.ClientCache(alpaca.trading_client)
CALENDAR = alpaca_calendar(TRADING.get)


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    minute = event_minute(event)
    try:
        config.alpaca_credentials()
    except config.CredentialsMissingError as exc:
        return _credentials_missing(minute, event, exc)
    status = market_status(minute, CALENDAR.session(trading_day(minute)))
    logger.info("market check", extra={"market": status.as_event()})
    return {
        "time": iso_minute(minute),
        "execution": event.get("execution"),
        "market": status.as_event(),
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
