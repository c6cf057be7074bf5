"""The NYSE's trading sessions for local runs, from exchange_calendars (XNYS).

The local Alpaca server answers `/v2/calendar` and `/v2/clock` from these sessions, so a replay
knows holidays, early closes (13:00 New York) and unscheduled closures (2012-10-29/30 for Sandy,
2018-12-05 and 2025-01-09 for national days of mourning) as Alpaca's own calendar does.
exchange_calendars needs pandas: it belongs to the local extra and never to the Lambda layer.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from ops_pipeline.market import NEW_YORK

EXCHANGE = "XNYS"
FIRST_DAY = date(2000, 1, 3)
LAST_DAY = date(2035, 12, 31)
# Alpaca's calendar also gives the extended day its IEX bars cover: 04:00 to 20:00 New York.
EXTENDED_OPEN = "0400"
EXTENDED_CLOSE = "2000"


@dataclass(frozen=True, slots=True)
class Session:
    """One regular session; `opens`/`closes` are tz-aware New York times."""

    day: date
    opens: datetime
    closes: datetime

    def calendar_entry(self) -> dict[str, str]:
        """The session as an entry of Alpaca's `GET /v2/calendar`."""
        return {
            "date": self.day.isoformat(),
            "open": f"{self.opens:%H:%M}",
            "close": f"{self.closes:%H:%M}",
            "session_open": EXTENDED_OPEN,
            "session_close": EXTENDED_CLOSE,
            "settlement_date": self.day.isoformat(),
        }


class NyseCalendar:
    """Every XNYS session between two dates, looked up by day or by range."""

    def __init__(self, sessions: list[Session]) -> None:
        self._sessions = sorted(sessions, key=lambda s: s.day)
        self._days = [s.day for s in self._sessions]
        self._by_day = {s.day: s for s in self._sessions}

    @property
    def first_day(self) -> date:
        return self._days[0]

    @property
    def last_day(self) -> date:
        return self._days[-1]

    def session(self, day: date) -> Session | None:
        """The day's session; None on weekends, holidays and closures."""
        if not self._days[0] <= day <= self._days[-1]:
            raise ValueError(f"{day} is outside the calendar ({self.first_day}..{self.last_day})")
        return self._by_day.get(day)

    def between(self, first: date, last: date) -> list[Session]:
        """The sessions from `first` to `last`, inclusive, in date order."""
        lo = bisect.bisect_left(self._days, first)
        hi = bisect.bisect_right(self._days, last)
        return self._sessions[lo:hi]


@cache
def nyse_calendar(first: date = FIRST_DAY, last: date = LAST_DAY) -> NyseCalendar:
    """XNYS from exchange_calendars, built once per process and kept on disk between processes.

    Building it (importing exchange_calendars and pandas, computing 35 years of sessions) takes
    about two seconds; the sessions it gives are written beside the embedded database, keyed by
    the exchange_calendars version, and read back in milliseconds by the next local run.
    """
    cached = _cache_file(first, last)
    if cached is not None and cached.is_file():
        try:
            return NyseCalendar([_session_from_json(e) for e in json.loads(cached.read_text())])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    calendar = NyseCalendar(_build_sessions(first, last))
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            scratch = cached.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_text(
                json.dumps([_session_to_json(s) for s in calendar.between(first, last)])
            )
            scratch.replace(cached)
        except OSError:
            pass  # no writable cache folder: build it again next time
    return calendar


def _cache_file(first: date, last: date) -> Path | None:
    from importlib.metadata import PackageNotFoundError, version

    from ops_pipeline_local.embedded_db import ops_pipeline_home

    try:
        release = version("exchange-calendars")
    except PackageNotFoundError:
        return None
    return ops_pipeline_home() / "calendars" / f"{EXCHANGE}-{release}-{first}-{last}.json"


def _session_to_json(session: Session) -> list[str]:
    return [session.day.isoformat(), session.opens.isoformat(), session.closes.isoformat()]


def _session_from_json(entry: list[str]) -> Session:
    day, opens, closes = entry
    return Session(
        day=date.fromisoformat(day),
        opens=datetime.fromisoformat(opens).astimezone(NEW_YORK),
        closes=datetime.fromisoformat(closes).astimezone(NEW_YORK),
    )


def _build_sessions(first: date, last: date) -> list[Session]:
    import exchange_calendars

    xnys = exchange_calendars.get_calendar(EXCHANGE, start=first.isoformat(), end=last.isoformat())
    schedule = xnys.schedule
    return [
        Session(
            day=label.date(),
            opens=opens.to_pydatetime().astimezone(UTC).astimezone(NEW_YORK),
            closes=closes.to_pydatetime().astimezone(UTC).astimezone(NEW_YORK),
        )
        for label, opens, closes in zip(schedule.index, schedule["open"], schedule["close"])
    ]
