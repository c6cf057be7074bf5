"""Risk gates: which recommendations become orders, and how large.

Pure: recommendations, the book (positions, open orders, the day's trades and result) and limits
in, one decision per recommendation out. Every gate is evaluated for every recommendation, so
each verdict can be stored and explained; the first that fails names the rejection. In order:

1. kill_switch: `halted` sends nothing; `reducing` lets only sells through;
2. market_open: a market DAY order sent at this minute trades in the regular session, and, when
   a broker is asked (paper, live), its clock says the market is open as the order goes out;
3. decision_age: the broker's clock is at most `max_decision_age_seconds` past the decision's
   minute (a late run, a retry or a redrive decides on a stale minute: refused as stale; a
   simulation has no broker and keeps event time);
4. expiry: at most `recommendation_ttl_minutes` since the bar closed (`ts + 1 minute`, the first
   minute a live run could have decided it), whenever the decision is evaluated;
5. confidence: the adjusted confidence is at least `min_confidence`;
6. one_open_order: no other order for the ticker is open (or approved earlier in this run);
7. daily_loss: once the day's result (`day_result`: the day's fills and the overnight move of
   the positions carried into it) is at or below `-max_daily_loss`, only sells;
8. open_positions: a BUY opens no position beyond `max_open_positions` tickers (the
   deployment's own positions and its own open BUY orders count, not the account's);
9. trades_per_ticker: a BUY only while the ticker has had fewer than
   `max_trades_per_ticker_per_day` orders today (sells that close a position always pass);
10. cooldown: no BUY within `cooldown_minutes_after_fill` minutes of the ticker's last fill;
11. size: a BUY spends at most `max_notional_per_order`, and the position stays within
    `max_position_notional`, in whole shares; a SELL closes the deployment's own position (what
    its own fills bought, never more than the account holds); no position, no sell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ops_pipeline.config import RiskLimits, TradingState
from ops_pipeline.event_time import ONE_MINUTE


@dataclass(frozen=True)
class PendingRecommendation:
    id: int
    ticker: str
    ts: datetime
    decided_at: datetime
    action: str
    price: Decimal
    confidence: Decimal


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    passed: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Decision:
    recommendation: PendingRecommendation
    qty: Decimal
    rejected: str | None = None
    verdicts: tuple[GateVerdict, ...] = ()

    @property
    def approved(self) -> bool:
        return self.rejected is None

    @property
    def side(self) -> str:
        return "buy" if self.recommendation.action == "BUY" else "sell"


@dataclass(frozen=True)
class BrokerClock:
    """The broker's time and whether its market is open then (Alpaca's `GET /v2/clock`), read
    just before the orders of a minute go out."""

    now: datetime
    is_open: bool
    next_close: datetime | None = None


@dataclass
class Book:
    """What the gates check a decision against at its minute; approved decisions update it."""

    positions: dict[str, Decimal] = field(default_factory=dict)
    open_orders: set[str] = field(default_factory=set)
    trades_today: dict[str, int] = field(default_factory=dict)
    last_fill: dict[str, datetime] = field(default_factory=dict)
    day_result: Decimal = Decimal(0)
    open_buys: set[str] = field(default_factory=set)  # own BUY orders not filled yet

    def held(self, ticker: str) -> Decimal:
        return self.positions.get(ticker, Decimal(0))

    def open_position_count(self) -> int:
        """Tickers held, or with a BUY order of ours on its way."""
        return len({t for t, qty in self.positions.items() if qty > 0} | self.open_buys)


def day_result(
    held_at_open: Mapping[str, Decimal],
    fills_result: Decimal,
    marks: Mapping[str, Decimal],
    previous_closes: Mapping[str, Decimal],
) -> Decimal:
    """The day's result so far: today's fills marked at the last close (`fills_result`, net of
    commission), plus what the deployment's own positions at the day's start (its fills of
    orders decided before it) have moved since the previous session's close. A position carried
    overnight that falls counts against the daily loss limit as a new one does, also when it is
    sold today (the sale's fill carries the rest); a ticker without both prices counts nothing.
    Another deployment's or a manual position on the same account is not this one's to count."""
    carried = Decimal(0)
    for ticker, qty in held_at_open.items():
        mark, previous = marks.get(ticker), previous_closes.get(ticker)
        if qty and mark is not None and previous is not None:
            carried += qty * (mark - previous)
    return fills_result + carried


def _whole_shares(notional: Decimal, price: Decimal) -> Decimal:
    if notional <= 0 or price <= 0:
        return Decimal(0)
    return (notional / price).to_integral_value(rounding=ROUND_FLOOR)


def _size(
    rec: PendingRecommendation, held: Decimal, limits: RiskLimits
) -> tuple[Decimal, str | None]:
    if rec.action == "SELL":
        return (held, None) if held > 0 else (Decimal(0), f"no {rec.ticker} position to sell")
    room = limits.max_position_notional - held * rec.price
    qty = _whole_shares(min(limits.max_notional_per_order, room), rec.price)
    if qty < 1:
        return Decimal(0), (
            f"position limit reached: holding {held} {rec.ticker} "
            f"(max notional {limits.max_position_notional}) at {rec.price:.2f}"
        )
    return qty, None


def _at(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _verdicts(
    rec: PendingRecommendation,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    book: Book,
    clock: BrokerClock | None = None,
) -> tuple[list[GateVerdict], Decimal]:
    buy = rec.action == "BUY"
    out: list[GateVerdict] = []

    def gate(name: str, failure: str | None, ok: str) -> None:
        out.append(GateVerdict(name, failure is None, failure or ok))

    if state is TradingState.HALTED:
        gate("kill_switch", "trading is halted (kill switch)", "")
    elif state is TradingState.REDUCING and buy:
        gate("kill_switch", "trading is reducing: only sells go through", "")
    else:
        gate("kill_switch", None, f"trading is {state.value}")
    if not market_open:
        gate("market_open", "market is closed", "")
    elif clock is not None and not clock.is_open:
        gate("market_open", f"market is closed at the broker's clock ({_at(clock.now)})", "")
    else:
        gate("market_open", None, "market is open")
    max_age = limits.max_decision_age_seconds
    if clock is None:
        gate("decision_age", None, "event time (no broker)")
    else:
        late_s = (clock.now - minute).total_seconds()
        late = int(late_s)  # shown in whole seconds; judged exactly (60.9 s is past 60 s)
        gate(
            "decision_age",
            f"stale: decided for {_at(minute)}, the broker's clock is {_at(clock.now)},"
            f" {late_s:g} s later (limit {max_age} s)"
            if late_s > max_age
            else None,
            f"the broker's clock is {late} s past the minute, limit {max_age} s",
        )
    age = int((minute - (rec.ts + ONE_MINUTE)).total_seconds() // 60)
    ttl = limits.recommendation_ttl_minutes
    gate(
        "expiry",
        f"expired: bar closed {age} min ago, limit {ttl} min" if age > ttl else None,
        f"bar closed {age} min ago, limit {ttl} min",
    )
    gate(
        "confidence",
        f"confidence {rec.confidence:.4f} is below the minimum {limits.min_confidence:.4f}"
        if rec.confidence < limits.min_confidence
        else None,
        f"confidence {rec.confidence:.4f} >= {limits.min_confidence:.4f}",
    )
    gate(
        "one_open_order",
        f"an order for {rec.ticker} is already open" if rec.ticker in book.open_orders else None,
        f"no open order for {rec.ticker}",
    )
    lost = -book.day_result
    gate(
        "daily_loss",
        f"daily loss {lost:.2f} reached the limit {limits.max_daily_loss}: only sells go through"
        if buy and lost >= limits.max_daily_loss
        else None,
        f"day result {book.day_result:.2f}, loss limit {limits.max_daily_loss}",
    )
    positions = book.open_position_count()
    gate(
        "open_positions",
        f"{positions} open positions: the limit is {limits.max_open_positions}"
        if buy and book.held(rec.ticker) <= 0 and positions >= limits.max_open_positions
        else None,
        f"{positions} open positions, limit {limits.max_open_positions}",
    )
    trades = book.trades_today.get(rec.ticker, 0)
    gate(
        "trades_per_ticker",
        f"{trades} {rec.ticker} orders today: the limit is {limits.max_trades_per_ticker_per_day}"
        if buy and trades >= limits.max_trades_per_ticker_per_day
        else None,
        f"{trades} {rec.ticker} orders today, limit {limits.max_trades_per_ticker_per_day}",
    )
    last = book.last_fill.get(rec.ticker)
    cooldown = timedelta(minutes=limits.cooldown_minutes_after_fill)
    since = None if last is None else int((minute - last).total_seconds() // 60)
    gate(
        "cooldown",
        f"cooldown: {rec.ticker} filled {since} min ago, "
        f"wait {limits.cooldown_minutes_after_fill} min"
        if buy and last is not None and minute - last < cooldown
        else None,
        f"no {rec.ticker} fill in the last {limits.cooldown_minutes_after_fill} min",
    )
    qty, refused = _size(rec, book.held(rec.ticker), limits)
    gate("size", refused, f"{rec.action} {qty} {rec.ticker}")
    return out, qty


def risk_gates(
    recs: Sequence[PendingRecommendation],
    *,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    positions: Mapping[str, Decimal] | None = None,
    open_orders: Iterable[str] = (),
    book: Book | None = None,
    clock: BrokerClock | None = None,
) -> list[Decision]:
    """Decide every recommendation, oldest first; approved ones count against the later ones.

    `book` (positions, open orders, the day's trades, last fills and result) is copied, not
    changed; `positions` / `open_orders` are a shorthand for a book with only those. `clock`: the
    broker's clock as the orders go out (None in simulation, which keeps event time).
    """
    if book is None:
        book = Book(dict(positions or {}), set(open_orders))
    book = Book(
        dict(book.positions),
        set(book.open_orders),
        dict(book.trades_today),
        dict(book.last_fill),
        book.day_result,
        set(book.open_buys),
    )
    decisions = []
    for rec in sorted(recs, key=lambda r: (r.decided_at, r.ts, r.ticker)):
        verdicts, qty = _verdicts(rec, minute, market_open, state, limits, book, clock)
        failed = next((v.detail for v in verdicts if not v.passed), None)
        if failed is None:
            book.open_orders.add(rec.ticker)
            change = qty if rec.action == "BUY" else -qty
            book.positions[rec.ticker] = book.held(rec.ticker) + change
            book.trades_today[rec.ticker] = book.trades_today.get(rec.ticker, 0) + 1
        decisions.append(
            Decision(rec, qty if failed is None else Decimal(0), failed, tuple(verdicts))
        )
    return decisions
