"""Market check: does the minute that just ended fall inside a trading session?

A pipeline run at minute T works on the bar that started at T-1 and closed at T. So the run at
09:30 New York time has nothing to do (the 09:29 bar is pre-market), and the run at 16:00 takes the
15:59 bar, the last of the day. Holidays and early closes come from Alpaca's calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class TradingSession:
    day: date
    opens: datetime
    closes: datetime

    @classmethod
    def from_calendar_entry(cls, entry: dict[str, Any]) -> TradingSession:
        """Read one day of Alpaca's `/v2/calendar` (`date`, `open` and `close` in New York time)."""
        day = date.fromisoformat(str(entry["date"]))

        def at(clock: str) -> datetime:
            hour, minute = (int(part) for part in str(clock).split(":")[:2])
            return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)

        return cls(day, at(entry["open"]), at(entry["close"]))


@dataclass(frozen=True)
class MarketStatus:
    is_open: bool
    reason: str
    session_open: str | None = None
    session_close: str | None = None

    def as_event(self) -> dict[str, Any]:
        return {
            "is_open": self.is_open,
            "reason": self.reason,
            "session_open": self.session_open,
            "session_close": self.session_close,
        }


def accepting_orders(minute: datetime, market: dict[str, Any]) -> bool:
    """Would a market DAY order sent at `minute` trade in this regular session?

    `market` is the market check's event (`session_open`/`session_close` ISO times, or None on a
    day without a session). True for open <= minute < close: the closing run (minute == close)
    ingests the day's last bar but sends no order, since Alpaca would queue a DAY order to the
    next open.
    """
    opens, closes = market.get("session_open"), market.get("session_close")
    if not opens or not closes:
        return False
    return datetime.fromisoformat(str(opens)) <= minute < datetime.fromisoformat(str(closes))


def trading_day(minute: datetime) -> date:
    """The New York date of the bar that closed at `minute`."""
    return (minute.astimezone(NEW_YORK)).date()


def market_status(minute: datetime, session: TradingSession | None) -> MarketStatus:
    """Is the bar that closed at `minute` a bar of the regular session?"""
    local = minute.astimezone(NEW_YORK)
    if session is None:
        return MarketStatus(False, f"{local:%Y-%m-%d} is not a trading day")
    bounds = {
        "session_open": session.opens.isoformat(),
        "session_close": session.closes.isoformat(),
    }
    if minute <= session.opens:
        return MarketStatus(False, f"before the open at {session.opens:%H:%M} New York", **bounds)
    if minute > session.closes:
        return MarketStatus(False, f"after the close at {session.closes:%H:%M} New York", **bounds)
    return MarketStatus(True, "regular session", **bounds)
