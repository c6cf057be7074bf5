"""The day book, defined once: what the risk gates decide against at a minute, from the
deployment's own orders, whatever broker they went to.

`day_book` is pure: the deployment's own execution rows (`OwnOrder`: today's, and every one not
final yet), what its fills held before those (`held_before`), and two prices per ticker (the
mark: the last close before the minute; the previous regular close before the day) make

- its positions: its own fills (with what an order still open has filled so far), never the
  account's (a manual position, or another deployment's
  on the same account, is not its to sell or to count);
- its open orders, and among them its open BUYs (they count against `max_open_positions`);
- the day's orders per ticker (for `max_trades_per_ticker_per_day`; a `pending` row decided again
  now is not counted against itself), and each ticker's last fill (cooldown);
- the day's result (`risk.day_result`): today's fills marked at the last close, net of
  commission, plus the move since the previous regular close of what it held at the day's start.

A simulated window feeds it from its ledger in memory; a run through a broker reads the same rows
and prices from the database (`read_own_orders`, `read_marks`: two round trips).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ops_pipeline.config import TradingMode
from ops_pipeline.db import Connection, text_array
from ops_pipeline.dispatch.orders import _dec, prefix_pattern
from ops_pipeline.market import NEW_YORK
from ops_pipeline.risk import Book, day_result

MARK_LOOKBACK = timedelta(days=7)  # how far back a mark or a previous close may be


def new_york_day_start(minute: datetime) -> datetime:
    day = minute.astimezone(NEW_YORK).date()
    return datetime.combine(day, time(0), NEW_YORK)


@dataclass
class OwnOrder:
    """One of the deployment's execution rows, as the book sees it."""

    rec_id: int
    ticker: str
    side: str
    qty: Decimal
    price: Decimal | None
    commission: Decimal | None
    status: str
    decided_at: datetime
    filled_at: datetime | None = None
    requested: Decimal | None = None  # what was asked for (`qty`: what has filled)

    @property
    def signed(self) -> Decimal:
        return self.qty if self.side == "buy" else -self.qty


PriceAt = Callable[[str], Decimal | None]


def day_book(
    orders: Iterable[OwnOrder],
    held_before: Mapping[str, Decimal],
    minute: datetime,
    mark: PriceAt,
    previous_close: PriceAt,
    *,
    retried: Collection[int] = (),
) -> Book:
    """The deployment's own book at `minute` (see the module's docstring). `held_before`: its
    net fills decided before the earliest of `orders`' day; `retried`: recommendation ids of
    `pending` rows decided again now, not counted against themselves."""
    positions = dict(held_before)
    held_at_open = dict(held_before)
    open_orders: set[str] = set()
    open_buys: set[str] = set()
    trades: dict[str, int] = {}
    last_fill: dict[str, datetime] = {}
    fills_result = Decimal(0)
    day_start = new_york_day_start(minute)
    for o in orders:
        if o.decided_at > minute or o.rec_id in retried:
            continue
        # What has filled: a filled row's qty, and what an order still open has filled so far
        # (the same row: once it ends, its qty is the final fill, counted once).
        has_filled = o.status == "filled" or (o.status == "submitted" and o.qty > 0)
        if has_filled:
            positions[o.ticker] = positions.get(o.ticker, Decimal(0)) + o.signed
            if o.decided_at < day_start:
                held_at_open[o.ticker] = held_at_open.get(o.ticker, Decimal(0)) + o.signed
        if o.status in ("submitted", "pending"):
            open_orders.add(o.ticker)
            if o.side == "buy":
                open_buys.add(o.ticker)
        if o.decided_at < day_start or o.status not in ("filled", "submitted", "pending"):
            continue
        trades[o.ticker] = trades.get(o.ticker, 0) + 1
        if has_filled:
            if o.status == "filled":
                at = o.filled_at or o.decided_at
                last_fill[o.ticker] = max(at, last_fill.get(o.ticker, at))
            if o.price is not None and o.commission is not None:
                price = mark(o.ticker)
                fills_result += o.signed * ((price if price is not None else o.price) - o.price)
                fills_result -= o.commission
    marks, previous = {}, {}
    for ticker in {t for t, q in positions.items() if q} | {
        t for t, q in held_at_open.items() if q
    }:
        if (price := mark(ticker)) is not None:
            marks[ticker] = price
        if (close := previous_close(ticker)) is not None:
            previous[ticker] = close
    return Book(
        positions={t: q for t, q in positions.items() if q},
        open_orders=open_orders,
        open_buys=open_buys,
        trades_today=trades,
        last_fill=last_fill,
        day_result=day_result(held_at_open, fills_result, marks, previous),
    )


# The deployment's rows of a mode decided from `start` on, and every one the broker may still
# fill; before them, its net fills per ticker (`held before`, rec id NULL).
OWN_ORDERS = """
SELECT recommendation_id, ticker, side, qty, price, commission, status, decided_at, filled_at,
       requested_qty
FROM dispatch_executions
WHERE mode = :mode AND client_order_id LIKE :pattern
  AND (decided_at >= :start OR status IN ('submitted', 'pending'))
UNION ALL
SELECT NULL, ticker, 'buy', sum(CASE side WHEN 'buy' THEN qty ELSE -qty END), NULL, NULL,
       'held before', NULL, NULL, NULL
FROM dispatch_executions
WHERE mode = :mode AND client_order_id LIKE :pattern AND status = 'filled'
  AND decided_at < :start
GROUP BY ticker
"""

MARKS = """
SELECT k.ticker,
       (SELECT t.close FROM lane_telemetry t
        WHERE t.ticker = k.ticker AND t.ts < :minute AND t.ts >= :since
        ORDER BY t.ts DESC LIMIT 1),
       (SELECT t.close FROM lane_telemetry t
        WHERE t.ticker = k.ticker AND t.ts < :day_start AND t.session = 'regular'
          AND t.ts >= :since
        ORDER BY t.ts DESC LIMIT 1)
FROM unnest(CAST(:tickers AS text[])) AS k(ticker)
"""


def read_own_orders(
    conn: Connection, mode: TradingMode, prefix: str, start: datetime
) -> tuple[dict[int, OwnOrder], dict[str, Decimal]]:
    """The deployment's rows from `start` (and every open one), and its net fills before."""
    orders: dict[int, OwnOrder] = {}
    held_before: dict[str, Decimal] = {}
    rows: Sequence[Sequence[Any]] = conn.run(
        OWN_ORDERS, mode=mode.value, pattern=prefix_pattern(prefix), start=start
    )
    for rec_id, ticker, side, qty, price, commission, status, decided_at, filled_at, asked in rows:
        if rec_id is None:
            held_before[ticker] = Decimal(qty)
            continue
        orders[rec_id] = OwnOrder(
            rec_id,
            ticker,
            side,
            Decimal(qty),
            _dec(price),
            _dec(commission),
            status,
            decided_at,
            filled_at,
            _dec(asked),
        )
    return orders, held_before


def read_marks(
    conn: Connection, tickers: Collection[str], minute: datetime
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Each ticker's mark at `minute` and its previous regular close before the day."""
    if not tickers:
        return {}, {}
    day_start = new_york_day_start(minute)
    rows = conn.run(
        MARKS,
        tickers=text_array(sorted(tickers)),
        minute=minute,
        day_start=day_start,
        since=day_start - MARK_LOOKBACK,
    )
    marks = {t: Decimal(m) for t, m, _ in rows if m is not None}
    previous = {t: Decimal(p) for t, _, p in rows if p is not None}
    return marks, previous


def read_day_book(
    conn: Connection,
    mode: TradingMode,
    prefix: str,
    minute: datetime,
    *,
    retried: Collection[int] = (),
) -> Book:
    """The deployment's own book at `minute`, from the database (two round trips)."""
    orders, held_before = read_own_orders(conn, mode, prefix, new_york_day_start(minute))
    tickers = {o.ticker for o in orders.values()} | set(held_before)
    marks, previous = read_marks(conn, tickers, minute)
    return day_book(orders.values(), held_before, minute, marks.get, previous.get, retried=retried)
