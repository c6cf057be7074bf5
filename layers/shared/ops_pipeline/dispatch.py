"""Dispatcher: risk gates, then execution in simulation or through Alpaca.

Exactly once: every decision is first written to `dispatch_executions`, whose `recommendation_id`
and `client_order_id` are unique, with `ON CONFLICT DO NOTHING`; only the rows this run inserted
are executed. A broker order carries a `client_order_id` derived from the recommendation, and
Alpaca refuses a reused one, so an order whose claim was written but whose outcome was not (a
crash, a timeout) is sent again on the next run and answered with the order already placed.

Reconciliation: an order Alpaca has not filled yet is recorded `submitted`. Every non-simulated
run first reads the day's `submitted` rows (one query), their orders (one Alpaca call), and
records the final outcomes (one statement): `filled` at `filled_avg_price`, or `rejected` for a
canceled, expired or rejected order. Open and partially filled orders stay `submitted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from ops_pipeline import alpaca
from ops_pipeline.config import RiskLimits, TradingMode, TradingState
from ops_pipeline.db import Connection
from ops_pipeline.errors import TransientError
from ops_pipeline.observability import logger
from ops_pipeline.risk import Decision, PendingRecommendation, risk_gates

BACKLOG = timedelta(days=1)
DUPLICATE_CLIENT_ORDER_ID = 40010001
CLOCK_SKEW = timedelta(minutes=1)
MAX_ORDERS_PER_PAGE = 500
BROKER_REFUSED = frozenset({"canceled", "expired", "rejected"})


def client_order_id(rec: PendingRecommendation) -> str:
    """The order's idempotency key, from the recommendation's natural key (at most 48 characters)."""
    return f"ops-{rec.ticker}-{rec.ts:%Y%m%d%H%M}-{rec.action}"


@dataclass(frozen=True)
class Outcome:
    status: str  # filled | submitted | rejected | failed | pending
    price: Decimal | None = None
    broker_order_id: str | None = None
    reason: str | None = None


class Broker(Protocol):
    mode: TradingMode

    def positions(self, conn: Connection, minute: datetime) -> tuple[dict[str, Decimal], set[str]]:
        """Held quantity per ticker, and tickers with an open order."""
        ...

    def execute(self, decision: Decision) -> Outcome: ...

    def order_outcomes(
        self, client_order_ids: Sequence[str], since: datetime
    ) -> dict[str, Outcome]:
        """Final outcomes of these orders, placed after `since`, by `client_order_id`."""
        ...


class SimulatedBroker:
    """Fills at the close of the recommendation's bar; positions are the filled simulated orders."""

    mode = TradingMode.SIMULATION

    def positions(self, conn: Connection, minute: datetime) -> tuple[dict[str, Decimal], set[str]]:
        rows = conn.run(
            "SELECT ticker, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END)"
            " FROM dispatch_executions"
            " WHERE status = 'filled' AND mode = 'simulation' AND decided_at <= :minute"
            " GROUP BY ticker",
            minute=minute,
        )
        return {ticker: Decimal(qty) for ticker, qty in rows}, set()

    def execute(self, decision: Decision) -> Outcome:
        return Outcome("filled", price=decision.recommendation.price, broker_order_id=None)

    def order_outcomes(
        self, client_order_ids: Sequence[str], since: datetime
    ) -> dict[str, Outcome]:
        return {}  # simulated orders fill at once: nothing is ever left `submitted`


class AlpacaBroker:
    """Market orders through alpaca-py's TradingClient, keyed by `client_order_id`."""

    def __init__(self, client: Any, mode: TradingMode) -> None:
        self.client = client
        self.mode = mode

    def positions(self, conn: Connection, minute: datetime) -> tuple[dict[str, Decimal], set[str]]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        held = alpaca.call("positions", self.client.get_all_positions)
        orders = alpaca.call(
            "open orders",
            lambda: self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)),
        )
        return (
            {p["symbol"]: Decimal(str(p["qty"])) for p in held},
            {o["symbol"] for o in orders},
        )

    def _outcome(self, order: dict[str, Any]) -> Outcome:
        status = "filled" if order.get("status") == "filled" else "submitted"
        price = order.get("filled_avg_price")
        return Outcome(status, Decimal(str(price)) if price else None, str(order.get("id")))

    def order_outcomes(
        self, client_order_ids: Sequence[str], since: datetime
    ) -> dict[str, Outcome]:
        """One request for every order since `since`; the finished ones among those asked for."""
        from alpaca.common.enums import Sort
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL,
            after=since - CLOCK_SKEW,
            limit=MAX_ORDERS_PER_PAGE,
            direction=Sort.ASC,  # past the page limit the newest wait, not the oldest
        )
        orders = alpaca.call("order reconciliation", lambda: self.client.get_orders(request))
        wanted = set(client_order_ids)
        outcomes: dict[str, Outcome] = {}
        for order in orders:
            coid = order.get("client_order_id")
            outcome = _final_outcome(order)
            if coid in wanted and outcome is not None:
                outcomes[coid] = outcome
        return outcomes

    def execute(self, decision: Decision) -> Outcome:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        rec = decision.recommendation
        coid = client_order_id(rec)
        request = MarketOrderRequest(
            symbol=rec.ticker,
            qty=float(decision.qty),
            side=OrderSide.BUY if rec.action == "BUY" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=coid,
        )
        try:
            return self._outcome(alpaca.call("order", lambda: self.client.submit_order(request)))
        except APIError as exc:
            if _api_code(exc) == DUPLICATE_CLIENT_ORDER_ID:
                logger.info(
                    "order already placed; reading it back", extra={"client_order_id": coid}
                )
                return self._outcome(
                    alpaca.call("order lookup", lambda: self.client.get_order_by_client_id(coid))
                )
            return Outcome("rejected", reason=f"broker refused: {exc}")


def _final_outcome(order: dict[str, Any]) -> Outcome | None:
    """`filled` or `rejected` for a finished order; None while it may still (partly) fill."""
    status = str(order.get("status") or "")
    order_id = str(order.get("id"))
    if status == "filled":
        price = order.get("filled_avg_price")
        return Outcome("filled", Decimal(str(price)) if price else None, order_id)
    if status not in BROKER_REFUSED:
        return None
    reason = f"broker: {status}"
    filled_qty = Decimal(str(order.get("filled_qty") or 0))
    if filled_qty:
        reason += f" after filling {filled_qty} of {order.get('qty')}"
    return Outcome("rejected", broker_order_id=order_id, reason=reason)


def _api_code(exc: Exception) -> int | None:
    try:
        return int(getattr(exc, "code", None) or 0) or None
    except (TypeError, ValueError):
        return None


PENDING = """
SELECT r.id, r.ticker, r.ts, r.decided_at, r.action, r.price, r.confidence, e.qty AS claimed_qty
FROM dispatch_recommendations r
LEFT JOIN dispatch_executions e ON e.recommendation_id = r.id
WHERE r.decided_at > :since AND r.decided_at <= :minute
  AND (e.id IS NULL OR e.status = 'pending')
ORDER BY r.decided_at, r.ts, r.ticker
"""

CLAIM = """
INSERT INTO dispatch_executions
    (recommendation_id, ticker, side, qty, price, mode, client_order_id, status, reject_reason,
     decided_at)
SELECT * FROM unnest(
    CAST(:rec_id AS bigint[]), CAST(:ticker AS text[]), CAST(:side AS text[]),
    CAST(:qty AS numeric[]), CAST(:price AS numeric[]), CAST(:mode AS text[]),
    CAST(:coid AS text[]), CAST(:status AS text[]), CAST(:reason AS text[]),
    CAST(:decided_at AS timestamptz[]))
ON CONFLICT DO NOTHING
RETURNING recommendation_id
"""

SUBMITTED = """
SELECT recommendation_id, client_order_id, decided_at
FROM dispatch_executions
WHERE status = 'submitted' AND mode = :mode AND decided_at > :since
"""

RECORD_OUTCOMES = """
UPDATE dispatch_executions e
SET status = u.status, price = coalesce(u.price, e.price), broker_order_id = u.order_id,
    reject_reason = u.reason, updated_at = now()
FROM unnest(CAST(:rec_id AS bigint[]), CAST(:status AS text[]), CAST(:price AS numeric[]),
            CAST(:order_id AS text[]), CAST(:reason AS text[])) AS u(rec_id, status, price, order_id, reason)
WHERE e.recommendation_id = u.rec_id
"""


def _claim(
    conn: Connection,
    decisions: Sequence[Decision],
    outcomes: dict[int, Outcome],
    mode: TradingMode,
    minute: datetime,
) -> set[int]:
    """Write every decision once; return the recommendation ids this run now owns."""
    if not decisions:
        return set()
    rows = conn.run(
        CLAIM,
        rec_id=[d.recommendation.id for d in decisions],
        ticker=[d.recommendation.ticker for d in decisions],
        side=[d.side for d in decisions],
        qty=[d.qty for d in decisions],
        price=[_price(d, outcomes) for d in decisions],
        mode=[mode.value for _ in decisions],
        coid=[client_order_id(d.recommendation) for d in decisions],
        status=[outcomes[d.recommendation.id].status for d in decisions],
        reason=[outcomes[d.recommendation.id].reason for d in decisions],
        decided_at=[minute for _ in decisions],
    )
    return {rec_id for (rec_id,) in rows}


def _price(decision: Decision, outcomes: dict[int, Outcome]) -> Decimal:
    return outcomes[decision.recommendation.id].price or decision.recommendation.price


def _record(conn: Connection, outcomes: dict[int, Outcome]) -> None:
    if not outcomes:
        return
    ids = list(outcomes)
    conn.run(
        RECORD_OUTCOMES,
        rec_id=ids,
        status=[outcomes[i].status for i in ids],
        price=[outcomes[i].price for i in ids],
        order_id=[outcomes[i].broker_order_id for i in ids],
        reason=[outcomes[i].reason for i in ids],
    )


def _reconcile(conn: Connection, broker: Broker, minute: datetime) -> dict[str, int]:
    """Record the final outcome of the orders left `submitted`; counts by new status."""
    rows = conn.run(SUBMITTED, mode=broker.mode.value, since=minute - BACKLOG)
    if not rows:
        return {}
    by_coid = {coid: rec_id for rec_id, coid, _ in rows}
    since = min(decided_at for _, _, decided_at in rows)
    try:
        finished = broker.order_outcomes(list(by_coid), since)
    except TransientError as exc:
        logger.warning(
            "order reconciliation failed; retried on the next run",
            extra={"submitted": len(rows), "error": str(exc)},
        )
        return {}
    outcomes = {by_coid[coid]: outcome for coid, outcome in finished.items()}
    _record(conn, outcomes)
    return _counts(outcomes.values())


def _counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def dispatch(
    conn: Connection,
    broker: Broker,
    *,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
) -> dict[str, Any]:
    """Reconcile submitted orders, then decide and execute every recommendation not yet
    dispatched, each at most once."""
    simulated = broker.mode is TradingMode.SIMULATION
    reconciled = {} if simulated else _reconcile(conn, broker, minute)
    rows = conn.run(PENDING, since=minute - BACKLOG, minute=minute)
    fresh, reclaimed = [], []
    for rec_id, ticker, ts, decided_at, action, price, confidence, claimed_qty in rows:
        rec = PendingRecommendation(
            rec_id, ticker, ts, decided_at, action, Decimal(price), Decimal(confidence)
        )
        if claimed_qty is None:
            fresh.append(rec)
        else:
            reclaimed.append(Decision(rec, Decimal(claimed_qty)))
    held, open_orders = broker.positions(conn, minute) if fresh else ({}, set())
    decisions = risk_gates(
        fresh,
        minute=minute,
        market_open=market_open,
        state=state,
        limits=limits,
        positions=held,
        open_orders=open_orders,
    )
    planned: dict[int, Outcome] = {}
    for d in decisions:
        if not d.approved:
            planned[d.recommendation.id] = Outcome("rejected", reason=d.rejected)
        elif simulated:
            planned[d.recommendation.id] = broker.execute(d)
        else:
            planned[d.recommendation.id] = Outcome("pending")
    owned = _claim(conn, decisions, planned, broker.mode, minute)

    to_send = [
        d for d in decisions if d.approved and not simulated and d.recommendation.id in owned
    ]
    to_send += reclaimed if state is not TradingState.HALTED else []
    sent: dict[int, Outcome] = {}
    transient: list[str] = []
    for d in to_send:
        try:
            sent[d.recommendation.id] = broker.execute(d)
        except TransientError as exc:
            transient.append(str(exc))
    _record(conn, sent)

    final = {**{i: planned[i] for i in owned}, **sent}
    counts = _counts(final.values())
    rejections = [
        {"ticker": d.recommendation.ticker, "action": d.recommendation.action, "reason": d.rejected}
        for d in decisions
        if not d.approved and d.recommendation.id in owned
    ]
    if transient:
        raise TransientError(
            f"{len(transient)} order(s) left pending for the retry: {transient[0]}"
        )
    return {
        "mode": broker.mode.value,
        "considered": len(rows),
        "outcomes": counts,
        "blocked_by_risk_gates": len(rejections),
        "refused_by_broker": sum(1 for o in sent.values() if o.status == "rejected"),
        "rejections": rejections,
        "reconciled": sum(reconciled.values()),
        "reconciled_outcomes": reconciled,
    }
