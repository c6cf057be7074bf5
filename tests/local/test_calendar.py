"""Our trading sessions against exchange_calendars (XNYS), 2006-2030.

Two views are checked, each over the whole range at once: the local Alpaca server's
`GET /v2/calendar` read through alpaca-py's TradingClient (what a replay sees), and the market
calendar the Lambda stages use (`ops_pipeline.market.alpaca_calendar`, one request for the range).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import exchange_calendars
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest

from ops_pipeline import alpaca
from ops_pipeline.config import AlpacaCredentials
from ops_pipeline.market import (
    NEW_YORK,
    TradingSession,
    accepting_orders,
    alpaca_calendar,
    market_status,
)
from ops_pipeline_local.alpaca_server import LocalAlpaca

CREDS = AlpacaCredentials("TESTKEY", "test-secret")
FIRST, LAST = date(2006, 1, 1), date(2030, 12, 31)
EARLY_CLOSE = date(2025, 11, 28)
UNSCHEDULED_CLOSURES = [date(2012, 10, 29), date(2012, 10, 30), date(2018, 12, 5), date(2025, 1, 9)]


@pytest.fixture(scope="module")
def xnys() -> dict[date, tuple[datetime, datetime]]:
    """The oracle: exchange_calendars' XNYS schedule, as New York open and close by date."""
    schedule = exchange_calendars.get_calendar("XNYS", start=str(FIRST), end=str(LAST)).schedule
    return {
        label.date(): (
            opens.to_pydatetime().astimezone(NEW_YORK),
            closes.to_pydatetime().astimezone(NEW_YORK),
        )
        for label, opens, closes in zip(schedule.index, schedule["open"], schedule["close"])
    }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAlpaca]:
    now = datetime(2025, 11, 28, 17, 0, tzinfo=UTC)  # 12:00 New York
    with LocalAlpaca([], CREDS.key_id, CREDS.secret_key, now=now) as alpaca_server:
        monkeypatch.setenv("ALPACA_TRADING_URL", alpaca_server.base_url)
        yield alpaca_server


def test_the_oracle_knows_the_edges(xnys: dict[date, tuple[datetime, datetime]]) -> None:
    assert xnys[EARLY_CLOSE][1] == datetime(2025, 11, 28, 13, 0, tzinfo=NEW_YORK)
    assert all(day not in xnys for day in UNSCHEDULED_CLOSURES)


def test_local_alpaca_calendar_equals_xnys_2006_to_2030(
    server: LocalAlpaca, xnys: dict[date, tuple[datetime, datetime]]
) -> None:
    trading = TradingClient(CREDS.key_id, CREDS.secret_key, url_override=server.base_url)
    days = trading.get_calendar(GetCalendarRequest(start=FIRST, end=LAST))

    assert len([r for r in server.requests if r[1] == "/v2/calendar"]) == 1
    ours = {
        d.date: (d.open.replace(tzinfo=NEW_YORK), d.close.replace(tzinfo=NEW_YORK)) for d in days
    }
    assert ours == xnys
    assert len(ours) > 6000
    assert ours[EARLY_CLOSE][1].hour == 13
    assert all(day not in ours for day in UNSCHEDULED_CLOSURES)


def test_market_calendar_of_the_stages_equals_xnys_2006_to_2030(
    server: LocalAlpaca, xnys: dict[date, tuple[datetime, datetime]]
) -> None:
    calendar = alpaca_calendar(alpaca.trading_client(CREDS))
    sessions = calendar.sessions(FIRST, LAST)

    assert len([r for r in server.requests if r[1] == "/v2/calendar"]) == 1
    assert {d: (s.opens, s.closes) for d, s in sessions.items() if s is not None} == xnys
    assert [d for d, s in sessions.items() if s is None] == [
        FIRST + timedelta(days=i)
        for i in range((LAST - FIRST).days + 1)
        if FIRST + timedelta(days=i) not in xnys
    ]
    # Each day is fetched once and kept: asking again costs no request.
    assert calendar.session(EARLY_CLOSE) == sessions[EARLY_CLOSE]
    assert len([r for r in server.requests if r[1] == "/v2/calendar"]) == 1


def _utc(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NEW_YORK).astimezone(UTC)


def test_market_check_and_order_gate_at_the_early_close(server: LocalAlpaca) -> None:
    session = alpaca_calendar(alpaca.trading_client(CREDS)).session(EARLY_CLOSE)
    assert isinstance(session, TradingSession)

    def status(hh: int, mm: int) -> dict:
        return market_status(_utc(EARLY_CLOSE, hh, mm), session).as_event()

    assert not status(9, 30)["is_open"]  # the 09:29 bar is pre-market
    assert status(9, 31)["is_open"]
    closing = status(13, 0)  # the closing run ingests the 12:59 bar ...
    assert closing["is_open"]
    assert not accepting_orders(_utc(EARLY_CLOSE, 13, 0), closing)  # ... and sends no order
    assert accepting_orders(_utc(EARLY_CLOSE, 12, 59), status(12, 59))
    assert not status(13, 1)["is_open"] and "13:00" in status(13, 1)["reason"]
    assert session.session_of(_utc(EARLY_CLOSE, 9, 29)) == "pre"
    assert session.session_of(_utc(EARLY_CLOSE, 12, 59)) == "regular"
    assert session.session_of(_utc(EARLY_CLOSE, 13, 0)) == "post"


@pytest.mark.parametrize("day", UNSCHEDULED_CLOSURES)
def test_unscheduled_closures_have_no_session(server: LocalAlpaca, day: date) -> None:
    calendar = alpaca_calendar(alpaca.trading_client(CREDS))
    status = market_status(_utc(day, 11, 0), calendar.session(day))
    assert not status.is_open and status.session_open is None
    assert not accepting_orders(_utc(day, 11, 0), status.as_event())


def test_clock_knows_the_early_close_and_the_next_open(server: LocalAlpaca) -> None:
    trading = TradingClient(CREDS.key_id, CREDS.secret_key, url_override=server.base_url)
    server.set_time(_utc(EARLY_CLOSE, 12, 59))
    clock = trading.get_clock()
    assert clock.is_open and clock.next_close == _utc(EARLY_CLOSE, 13, 0)
    server.set_time(_utc(EARLY_CLOSE, 13, 0))
    clock = trading.get_clock()
    assert not clock.is_open
    assert clock.next_open == _utc(date(2025, 12, 1), 9, 30)  # Monday


def test_the_lambda_layer_never_imports_a_pandas_calendar() -> None:
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, ops_pipeline\n"
        "for m in pkgutil.walk_packages(ops_pipeline.__path__, 'ops_pipeline.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('exchange_calendars', 'pandas_market_calendars')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_calendar_kept_on_disk_gives_the_sessions_exchange_calendars_built(
    tmp_path, monkeypatch
):
    from ops_pipeline_local import calendar as local_calendar

    monkeypatch.setenv("OPS_PIPELINE_HOME", str(tmp_path))
    first, last = date(2024, 1, 1), date(2026, 12, 31)
    built = local_calendar.nyse_calendar.__wrapped__(first, last)  # builds and writes the file
    (kept,) = (tmp_path / "calendars").iterdir()
    read = local_calendar.nyse_calendar.__wrapped__(first, last)  # reads it back
    assert read.between(first, last) == built.between(first, last)
    assert read.session(EARLY_CLOSE).closes.hour == 13
    kept.write_text("not json")  # a damaged file is rebuilt, not trusted
    assert local_calendar.nyse_calendar.__wrapped__(first, last).between(first, last) == (
        built.between(first, last)
    )
