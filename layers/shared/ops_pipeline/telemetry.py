"""Telemetry ingestor: closed 1-minute bars from Alpaca into `lane_telemetry`.

Each ticker is fetched from its last stored bar (within a bounded lookback, `LOOKBACK`: a run's
longest window, five days, plus the bar that closes at its first minute) up to the bar that
closed at the event minute, so missed minutes are backfilled. The last few minutes
are always asked again (`REFETCH`), because a bar can arrive or be corrected up to ~30 s after its
minute closes. Tickers that start at the same minute share one multi-symbol, paged request; a
thin ticker (IEX bars for quiet names have gaps of minutes) gets a request of its own from where
it is missing instead of making every ticker fetch its gap. At most `MAX_REQUESTS` requests per
run: beyond that the closest starts are merged (the later tickers fetch a little more).

Each bar is marked with its part of the trading day (`session`: 'pre', 'regular', 'post'), read
from the day's session (`ops_pipeline.market.MarketCalendar`: early closes included); IEX minute
bars cover 04:00-20:00 New York. A bar on a day without a session is 'pre'. Bars are upserted in
one statement; an unchanged bar is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ops_pipeline.db import Connection, json_records
from ops_pipeline.errors import InvalidEventError
from ops_pipeline.event_time import MAX_WINDOW, ONE_MINUTE, parse_minute
from ops_pipeline.market import BarSession, MarketCalendar, trading_day
from ops_pipeline.observability import logger

LOOKBACK = MAX_WINDOW + ONE_MINUTE  # a window's bars, from the one that closes at its start
REFETCH = timedelta(minutes=3)
MAX_REQUESTS = 4


@dataclass(frozen=True)
class Bar:
    ticker: str
    ts: datetime  # the bar's start, UTC
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trade_count: int | None = None
    vwap: Decimal | None = None
    session: BarSession = "regular"


class MalformedBar(ValueError):
    """A bar that cannot be stored: a missing field, a bad number, or prices that contradict."""


def _price(raw: Mapping[str, Any], field: str) -> Decimal:
    try:
        value = Decimal(str(raw[field]))
    except (KeyError, InvalidOperation) as exc:
        raise MalformedBar(f"{field}={raw.get(field)!r}") from exc
    if not value.is_finite() or value <= 0:
        raise MalformedBar(f"{field}={value} is not a positive price")
    return value


def parse_bar(ticker: str, raw: Mapping[str, Any]) -> Bar:
    """Read one bar of Alpaca's bars API (`t o h l c v n vw`)."""
    t = raw.get("t")
    try:
        ts = parse_minute(t)
    except InvalidEventError as exc:
        raise MalformedBar(f"t={t!r}") from exc
    exact = (
        t
        if isinstance(t, datetime)
        else datetime.fromisoformat(str(t).strip().replace("Z", "+00:00"))
    )
    if exact.second or exact.microsecond:
        raise MalformedBar(f"t={t!r} is not on a minute")
    o, h, low, c = (_price(raw, field) for field in "ohlc")
    try:
        volume = int(raw["v"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBar(f"v={raw.get('v')!r}") from exc
    if volume < 0:
        raise MalformedBar(f"v={volume} is negative")
    if h < max(o, c, low) or low > min(o, c):
        raise MalformedBar(f"high {h} / low {low} do not contain open {o} and close {c}")
    vwap = raw.get("vw")
    return Bar(
        ticker=ticker,
        ts=ts,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=volume,
        trade_count=int(raw["n"]) if raw.get("n") is not None else None,
        vwap=Decimal(str(vwap)) if vwap is not None else None,
    )


def closed_bars(
    raw_by_ticker: Mapping[str, Iterable[Mapping[str, Any]]],
    tickers: Sequence[str],
    minute: datetime,
) -> list[Bar]:
    """Valid bars of the asked tickers that closed by `minute`; malformed ones are logged and skipped."""
    bars: dict[tuple[str, datetime], Bar] = {}
    wanted = set(tickers)
    for ticker, raws in raw_by_ticker.items():
        if ticker not in wanted:
            continue
        for raw in raws:
            try:
                bar = parse_bar(ticker, raw)
            except MalformedBar as exc:
                logger.warning(
                    "skipping malformed bar",
                    extra={"ticker": ticker, "bar": raw, "problem": str(exc)},
                )
                continue
            if bar.ts > minute:  # the bar still open at `minute` (ts == minute) is normal
                logger.warning(
                    "skipping bar from the future",
                    extra={"ticker": ticker, "bar": raw, "minute": minute.isoformat()},
                )
                continue
            if bar.ts + ONE_MINUTE > minute:
                continue
            if (ticker, bar.ts) in bars:
                logger.warning(
                    "duplicate bar: keeping the last",
                    extra={"ticker": ticker, "bar": raw, "ts": bar.ts.isoformat()},
                )
            bars[(ticker, bar.ts)] = bar
    return sorted(bars.values(), key=lambda b: (b.ticker, b.ts))


@dataclass(frozen=True)
class FetchGroup:
    """One multi-symbol request: these tickers, from `start` to the bar that closed at the minute."""

    start: datetime
    tickers: tuple[str, ...]


def ticker_start(last_stored: datetime | None, minute: datetime) -> datetime:
    """Where a ticker's fetch starts: its next bar minus the refetch margin, within the lookback."""
    floor = minute - LOOKBACK
    if last_stored is None:
        return floor
    return max(floor, last_stored + ONE_MINUTE - REFETCH)


def fetch_plan(
    last_stored: Mapping[str, datetime],
    tickers: Sequence[str],
    minute: datetime,
    max_requests: int = MAX_REQUESTS,
) -> list[FetchGroup]:
    """Tickers grouped by where their fetch starts, at most `max_requests` groups, earliest first.

    With too many distinct starts, the two neighbouring groups whose merge costs the fewest extra
    bar-minutes (the later group's tickers times the gap between the starts) are merged, until few
    enough remain.
    """
    by_start: dict[datetime, list[str]] = {}
    for ticker in dict.fromkeys(tickers):
        by_start.setdefault(ticker_start(last_stored.get(ticker), minute), []).append(ticker)
    groups = sorted(by_start.items())
    while len(groups) > max(1, max_requests):
        costs = [
            (groups[i + 1][0] - groups[i][0]) * len(groups[i + 1][1])
            for i in range(len(groups) - 1)
        ]
        i = costs.index(min(costs))
        groups[i : i + 2] = [(groups[i][0], groups[i][1] + groups[i + 1][1])]
    return [FetchGroup(start, tuple(names)) for start, names in groups]


def mark_sessions(bars: Sequence[Bar], calendar: MarketCalendar) -> list[Bar]:
    """Each bar with its part of the trading day, from the sessions of the days the bars cover."""
    if not bars:
        return []
    days = [trading_day(b.ts) for b in bars]
    sessions = calendar.sessions(min(days), max(days))
    marked = []
    for bar, day in zip(bars, days):
        session = sessions[day]
        part: BarSession = session.session_of(bar.ts) if session is not None else "pre"
        marked.append(replace(bar, session=part))
    return marked


def last_stored_bars(
    conn: Connection, tickers: Sequence[str], minute: datetime
) -> dict[str, datetime]:
    rows = conn.run(
        "SELECT ticker, max(ts) FROM lane_telemetry"
        " WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts >= :floor AND ts < :minute"
        " GROUP BY ticker",
        tickers=list(tickers),
        floor=minute - LOOKBACK,
        minute=minute,
    )
    return {ticker: ts for ticker, ts in rows}


UPSERT_BARS = """
INSERT INTO lane_telemetry AS t
    (ticker, ts, open, high, low, close, volume, trade_count, vwap, session)
SELECT * FROM json_to_recordset(CAST(:rows AS json))
    AS b(ticker text, ts timestamptz, open numeric, high numeric, low numeric, close numeric,
         volume bigint, trade_count integer, vwap numeric, session text)
ON CONFLICT (ticker, ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, trade_count = excluded.trade_count, vwap = excluded.vwap,
    session = excluded.session, ingested_at = now()
WHERE (t.open, t.high, t.low, t.close, t.volume, t.session)
      IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                        excluded.session)
RETURNING (xmax = 0) AS inserted
"""


def upsert_bars(conn: Connection, bars: Sequence[Bar]) -> tuple[int, int]:
    """Store bars in one statement; return (inserted, corrected)."""
    if not bars:
        return 0, 0
    batch = [
        {
            "ticker": b.ticker,
            "ts": b.ts,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "trade_count": b.trade_count,
            "vwap": b.vwap,
            "session": b.session,
        }
        for b in bars
    ]
    rows = conn.run(UPSERT_BARS, rows=json_records(batch))
    inserted = sum(1 for (was_insert,) in rows if was_insert)
    return inserted, len(rows) - inserted


def request_bars(
    client: Any, tickers: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[dict[str, Any]]]:
    """One multi-symbol request (alpaca-py follows the pages) for 1-minute IEX bars, start and end inclusive."""
    from alpaca.data.enums import DataFeed
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    from ops_pipeline import alpaca

    request = StockBarsRequest(
        symbol_or_symbols=list(tickers),
        timeframe=TimeFrame.Minute,
        feed=DataFeed.IEX,
        start=start,
        end=end,
    )
    return alpaca.call("bars", lambda: client.get_stock_bars(request))


def ingest(
    conn: Connection,
    client: Any,
    tickers: Sequence[str],
    minute: datetime,
    calendar: MarketCalendar,
) -> dict[str, Any]:
    """Fetch and store every closed bar that is missing or changed, up to the bar that closed at `minute`.

    Two database round trips (last stored bars, one upsert) and one request per fetch group.
    """
    last = last_stored_bars(conn, tickers, minute)
    plan, end = fetch_plan(last, tickers, minute), minute - ONE_MINUTE
    raw: dict[str, list[dict[str, Any]]] = {}
    for group in plan:
        for ticker, ticker_bars in request_bars(client, group.tickers, group.start, end).items():
            raw.setdefault(ticker, []).extend(ticker_bars)
    received = sum(len(v) for v in raw.values())
    bars = mark_sessions(closed_bars(raw, tickers, minute), calendar)
    inserted, corrected = upsert_bars(conn, bars)
    return {
        "tickers": len(tickers),
        "from": plan[0].start.isoformat() if plan else end.isoformat(),
        "to": end.isoformat(),
        "requests": [{"from": g.start.isoformat(), "tickers": len(g.tickers)} for g in plan],
        "received": received,
        "stored": len(bars),
        "extended_hours": sum(1 for b in bars if b.session != "regular"),
        "inserted": inserted,
        "corrected": corrected,
        "tickers_without_bar": sorted(set(tickers) - {b.ticker for b in bars if b.ts == end}),
    }
