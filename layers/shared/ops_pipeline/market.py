"""The market session: for a day, whether the market trades, and its open and close.

A pipeline run at minute T works on the bar that started at T-1 and closed at T. So the run at
09:30 New York time has nothing to do (the 09:29 bar is pre-market), and the run at 16:00 takes the
15:59 bar, the last of the day (13:00 and the 12:59 bar on an early close).

`MarketCalendar.session(day)` is the one answer to "does the market trade on this day, from when to
when": holidays, early closes and unscheduled closures all come from Alpaca's calendar
(`GET /v2/calendar`), fetched once per day (a range of days in one request) and kept. The market
check, the healthcheck and the telemetry ingestor ask it; the dispatcher reads the market check's
answer from the event (`accepting_orders`). No pandas-based calendar is imported here: locally the
Alpaca server answers `/v2/calendar` from exchange_calendars instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class TradingSession:
    day: date
    opens: datetime
    closes: datetime

    @classmethod
    def from_calendar_entry(cls, entry: Mapping[str, Any]) -> TradingSession:
        """Read one day of Alpaca's `/v2/calendar` (`date`, `open` and `close` in New York time)."""
        day = date.fromisoformat(str(entry["date"]))

        def at(clock: str) -> datetime:
            hour, minute = (int(part) for part in str(clock).split(":")[:2])
            return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)

        return cls(day, at(entry["open"]), at(entry["close"]))

    def session_of(self, bar_start: datetime) -> BarSession:
        """Which part of this day a bar (by its start) belongs to: 'pre', 'regular' or 'post'."""
        if bar_start < self.opens:
            return "pre"
        return "regular" if bar_start < self.closes else "post"


BarSession = Literal["pre", "regular", "post"]
CalendarFetch = Callable[[date, date], Iterable[Mapping[str, Any]]]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class MarketCalendar:
    """Trading sessions by New York date, from a calendar source, each day fetched once and kept.

    `fetch(first, last)` returns the calendar entries (`date`, `open`, `close`) of the trading days
    between two dates, inclusive; a day without an entry has no session. Days not yet known are
    fetched in one call covering them all.
    """

    def __init__(self, fetch: CalendarFetch) -> None:
        self._fetch = fetch
        self._known: dict[date, TradingSession | None] = {}

    def sessions(self, first: date, last: date) -> dict[date, TradingSession | None]:
        """Every day from `first` to `last` (inclusive) with its session, None on closed days."""
        missing = [d for d in _days(first, last) if d not in self._known]
        if missing:
            entries = [
                TradingSession.from_calendar_entry(e) for e in self._fetch(missing[0], missing[-1])
            ]
            found = {s.day: s for s in entries}
            for day in _days(missing[0], missing[-1]):
                self._known[day] = found.get(day)
        return {d: self._known[d] for d in _days(first, last)}

    def session(self, day: date) -> TradingSession | None:
        """The day's regular session, or None when the market does not trade that day."""
        return self.sessions(day, day)[day]


def alpaca_calendar(trading_client: Any) -> MarketCalendar:
    """Sessions from Alpaca's `GET /v2/calendar` through alpaca-py's TradingClient.

    `trading_client` is a TradingClient, or a function that returns the current one (a
    `ClientCache`'s `get`, so that rotated keys are picked up). A timeout, a dropped connection
    or a 5xx/429 reply surfaces as `TransientError`.
    """
    current = (
        trading_client
        if callable(trading_client) and not hasattr(trading_client, "get_calendar")
        else lambda: trading_client
    )

    def fetch(first: date, last: date) -> list[dict[str, Any]]:
        from alpaca.trading.requests import GetCalendarRequest

        from ops_pipeline import alpaca

        days = alpaca.call(
            "calendar",
            lambda: current().get_calendar(GetCalendarRequest(start=first, end=last)),
        )
        return list(days)  # the clients here are made with raw_data=True: plain dicts

    return MarketCalendar(fetch)


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
