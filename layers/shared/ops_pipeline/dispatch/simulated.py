"""The simulated broker: no order leaves the process. An order decided at minute m fills at the
OPEN of the first bar that starts at or after m (the first price an order sent at m can get),
once that bar has closed by the run's minute, moved against the order by `slippage_bps`, with
`commission_per_share`. An order with no such bar before its session's close is recorded
`rejected` ("no bar to fill at before the close") once the session is over. Until it fills, a
simulated order is `submitted` and counts as an open order. A simulation keeps event time: it
has no broker clock.

So a whole catch-up window is dispatched in memory (`SimulatedLedger`): the state is read once
(the deployment's rows, the undispatched recommendations, the bars to fill and mark at), each
minute is filled, then gated against the day book of that moment, as a run per minute would
have, and the claims and outcomes are written in two statements: the same rows as a run per
minute, in a constant number of round trips whatever the window's length.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ops_pipeline.config import RiskLimits, SimulationCosts, TradingMode, TradingState
from ops_pipeline.db import Connection, text_array
from ops_pipeline.dispatch.book import (
    MARK_LOOKBACK,
    OwnOrder,
    day_book,
    new_york_day_start,
    read_own_orders,
)
from ops_pipeline.dispatch.orders import (
    BACKLOG,
    PRICE_QUANTUM,
    QTY_QUANTUM,
    Outcome,
    Record,
    claim,
    client_order_id,
    read_pending,
    record,
    release,
    summary,
)
from ops_pipeline.errors import TransientError
from ops_pipeline.market import NEW_YORK
from ops_pipeline.risk import Book, BrokerClock, Decision, PendingRecommendation, risk_gates

if TYPE_CHECKING:
    from ops_pipeline.dispatch.window import DispatchMinute

BPS = Decimal("0.0001")


def simulated_fill_price(side: str, bar_open: Decimal, costs: SimulationCosts) -> Decimal:
    """The bar's open moved against the order by the slippage."""
    factor = Decimal(1) + costs.slippage_bps * BPS * (1 if side == "buy" else -1)
    return (bar_open * factor).quantize(PRICE_QUANTUM)


@dataclass
class SimulatedBroker:
    """A broker in the process: it takes every order (`submitted`, to fill at the next bar's open
    plus costs, in its ledger), holds nothing but the deployment's own fills, and has no clock
    but the event's minute."""

    costs: SimulationCosts = field(default_factory=SimulationCosts)
    mode: TradingMode = TradingMode.SIMULATION

    def clock(self) -> BrokerClock | None:
        return None

    def account(self) -> tuple[dict[str, Decimal], set[str]]:
        return {}, set()  # nobody else trades here: the day book is the whole account

    def execute(self, decision: Decision, coid: str) -> Outcome:
        return Outcome("submitted", qty=Decimal(0))  # nothing filled yet: it fills whole

    def lookup(self, coid: str) -> Outcome | None:
        return None  # nothing ever left the process


# The window's bars from `start` (its first minute, or its oldest open order's decision), and
# before them what a mark or a previous close can still reach back to (`since`): the last bar,
# the last regular bar, and the last regular bar before the first minute's day (its previous
# close, when the window starts later in that day).
SIM_BARS = """
SELECT ticker, ts, open, close, session FROM lane_telemetry
WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts >= :start AND ts < :end
UNION ALL
SELECT b.ticker, b.ts, b.open, b.close, b.session
FROM unnest(CAST(:tickers AS text[])) AS u(ticker)
CROSS JOIN LATERAL (
    -- each one bar, read backward from an index: a ticker's newest, not its whole day sorted
    (SELECT t.ticker, t.ts, t.open, t.close, t.session FROM lane_telemetry t
     WHERE t.ticker = u.ticker AND t.ts < :start AND t.ts >= :since
     ORDER BY t.ts DESC LIMIT 1)
    UNION ALL
    (SELECT t.ticker, t.ts, t.open, t.close, t.session FROM lane_telemetry t
     WHERE t.ticker = u.ticker AND t.ts < :start AND t.ts >= :since AND t.session = 'regular'
     ORDER BY t.ts DESC LIMIT 1)
    UNION ALL
    (SELECT t.ticker, t.ts, t.open, t.close, t.session FROM lane_telemetry t
     WHERE t.ticker = u.ticker AND t.ts < :day_start AND t.ts >= :since
       AND t.session = 'regular' AND CAST(:day_start AS timestamptz) < :start
     ORDER BY t.ts DESC LIMIT 1)
) b
"""


class _Bars:
    """Each ticker's bars (start, open, close) in time order, for fills and marks, and its
    regular-session bars apart, for the previous session's close."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        every: dict[str, dict[datetime, tuple[datetime, Decimal, Decimal]]] = {}
        regular: dict[str, dict[datetime, tuple[datetime, Decimal, Decimal]]] = {}
        for ticker, ts, open_, close, session in rows:
            bar = (ts, Decimal(open_), Decimal(close))
            every.setdefault(ticker, {})[ts] = bar
            if session == "regular":
                regular.setdefault(ticker, {})[ts] = bar
        self._bars = {t: sorted(b.values()) for t, b in every.items()}
        self._regular = {t: sorted(b.values()) for t, b in regular.items()}

    def first_open(
        self, ticker: str, at_or_after: datetime, before: datetime
    ) -> tuple[datetime, Decimal] | None:
        bars = self._bars.get(ticker, [])
        i = bisect_left(bars, (at_or_after,))
        if i < len(bars) and bars[i][0] < before:
            ts, open_, _ = bars[i]
            return ts, open_
        return None

    def last_close(
        self, ticker: str, before: datetime, not_before: datetime, regular: bool = False
    ) -> Decimal | None:
        bars = (self._regular if regular else self._bars).get(ticker, [])
        i = bisect_left(bars, (before,)) - 1
        if i >= 0 and bars[i][0] >= not_before:
            return bars[i][2]
        return None


class SimulatedLedger:
    """A simulated window dispatched in memory, minute by minute, with exactly the semantics of
    a run per minute: at each minute the orders placed earlier fill at the open of their first
    bar that has closed by then (or are rejected once their day's session is over), then every
    recommendation decided by then and not dispatched yet passes the risk gates against the book
    of that moment (positions, open orders, the day's trades, fills and result marked at the last
    close). The state is read in three queries and the outcomes written in two, whatever the
    window's length."""

    def __init__(
        self,
        conn: Connection,
        broker: SimulatedBroker,
        prefix: str,
        first: datetime,
        last: datetime,
    ) -> None:
        self.broker, self.prefix = broker, prefix
        start = min(new_york_day_start(first), first - BACKLOG)
        self.orders, self.held_before = read_own_orders(conn, broker.mode, prefix, start)
        self.changed: dict[int, Record] = {}
        self.claims: list[tuple[Decision, Outcome, datetime]] = []
        self.pending = deque(read_pending(conn, first - BACKLOG, last))
        self.leased = {r.id for r, coid in self.pending if coid is not None}
        tickers = sorted(
            {o.ticker for o in self.orders.values()}
            | {r.ticker for r, _ in self.pending}
            | set(self.held_before)
        )
        open_since = min(
            (o.decided_at for o in self.orders.values() if o.status == "submitted"), default=first
        )
        day_start = new_york_day_start(first)
        self.bars = _Bars(
            conn.run(
                SIM_BARS,
                tickers=text_array(tickers),
                start=min(first, open_since),
                end=last,
                day_start=day_start,
                since=day_start - MARK_LOOKBACK,
            )
            if tickers
            else []
        )

    # -- each minute, as `dispatch` would have seen it --

    def _reconcile(self, minute: datetime, session_close: datetime | None) -> dict[int, Outcome]:
        today = minute.astimezone(NEW_YORK).date()
        out: dict[int, Outcome] = {}
        for order in [o for o in self.orders.values() if o.status == "submitted"]:
            if order.decided_at >= minute:
                continue
            order_day = order.decided_at.astimezone(NEW_YORK).date()
            if session_close is not None and order_day == today:
                limit = min(minute, session_close)
            else:
                midnight = datetime.combine(order_day + timedelta(days=1), time(0), NEW_YORK)
                limit = min(minute, midnight)
            bar = self.bars.first_open(order.ticker, order.decided_at, limit)
            if bar is not None:
                costs = self.broker.costs
                price = simulated_fill_price(order.side, bar[1], costs)
                qty = order.requested if order.requested is not None else order.qty
                commission = (qty * costs.commission_per_share).quantize(PRICE_QUANTUM)
                out[order.rec_id] = Outcome(
                    "filled", price=price, qty=qty, commission=commission, filled_at=bar[0]
                )
                order.status, order.price, order.qty = "filled", price, qty
                order.commission, order.filled_at = commission, bar[0]
            elif order_day < today or (
                session_close is not None and order_day == today and minute >= session_close
            ):
                out[order.rec_id] = Outcome("rejected", reason="no bar to fill at before the close")
                order.status = "rejected"
        for rec_id, outcome in out.items():
            self.changed[rec_id] = Record(outcome, prior="submitted")
        return out

    def _book(self, minute: datetime) -> Book:
        since = new_york_day_start(minute) - MARK_LOOKBACK
        return day_book(
            self.orders.values(),
            self.held_before,
            minute,
            mark=lambda ticker: self.bars.last_close(ticker, minute, since),
            previous_close=lambda ticker: self.bars.last_close(
                ticker, new_york_day_start(minute), since, regular=True
            ),
        )

    def dispatch(
        self, at: DispatchMinute, state: TradingState, limits: RiskLimits
    ) -> dict[str, Any]:
        minute = at.minute
        reconciled = self._reconcile(minute, at.session_close)
        # the recommendations come in decision order: the due ones lead, the expired are dropped
        while self.pending and self.pending[0][0].decided_at <= minute - BACKLOG:
            self.pending.popleft()
        due = []
        for rec, coid in self.pending:
            if rec.decided_at > minute:
                break
            due.append((rec, coid))
        if not due:
            return summary(self.broker.mode, 0, {}, [], reconciled)
        for _ in due:  # the leading ones
            self.pending.popleft()
        candidates = [rec for rec, _ in due]
        decisions = risk_gates(
            candidates,
            minute=minute,
            market_open=at.market_open,
            state=state,
            limits=limits,
            book=self._book(minute),
            clock=self.broker.clock(),
        )
        coids = {rec.id: coid for rec, coid in due}  # a coid: a `pending` row being retried
        final: dict[int, Outcome] = {}
        kept: list[tuple[PendingRecommendation, str | None]] = []
        for d in decisions:
            rec = d.recommendation
            if coids[rec.id] is not None:
                # A `pending` row (left by a paper or live run): its order may be at the broker,
                # where a simulation cannot look. A refusal is recorded, decided now; an approval
                # leaves it pending, decided again next minute until a gate (expiry) refuses it.
                if d.approved:
                    kept.append((rec, coids[rec.id]))
                else:
                    final[rec.id] = Outcome("rejected", reason=d.rejected)
                    self.changed[rec.id] = Record(final[rec.id], d, minute)
                continue
            coid = client_order_id(rec, self.prefix)
            outcome = (
                self.broker.execute(d, coid)
                if d.approved
                else Outcome("rejected", reason=d.rejected)
            )
            final[rec.id] = outcome
            self.claims.append((d, outcome, minute))
            qty = d.qty.quantize(QTY_QUANTUM)  # as the column stores it, and so reads it back
            self.orders[rec.id] = OwnOrder(
                rec.id,
                rec.ticker,
                d.side,
                Decimal(0) if outcome.status == "submitted" else qty,  # nothing filled yet
                rec.price,
                None,
                outcome.status,
                minute,
                requested=qty,
            )
        self.pending.extendleft(reversed(kept))
        return summary(self.broker.mode, len(due), final, decisions, reconciled)

    def write(self, conn: Connection) -> None:
        """The window's claims in one statement, then every later change in one more.

        A claim that another run inserted first means the window's later minutes were decided
        against an order this run does not own: it raises `TransientError`, the window's
        transaction rolls back whole and the retry decides it again from the rows as they are.
        """
        if self.claims:
            owned = claim(
                conn,
                [d for d, _, _ in self.claims],
                {d.recommendation.id: o for d, o, _ in self.claims},
                self.broker.mode,
                [m for _, _, m in self.claims],
                self.prefix,
            )
            lost = {d.recommendation.id for d, _, _ in self.claims} - owned
            if lost:
                raise TransientError(
                    f"{len(lost)} recommendation(s) claimed by another run: window decided again"
                )
        record(conn, self.changed)
        release(conn, self.leased)  # the `pending` rows left so: their lease handed back
