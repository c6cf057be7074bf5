"""Dispatcher: risk gates, then execution in simulation or through Alpaca, for one decision minute.

`dispatch(conn, broker, minute=...)` acts on exactly one minute, everything derived from it and
the database (never the wall clock); a catch-up run calls it once per minute of its window, in
order.

Exactly once: every decision is first written to `dispatch_executions`, whose `recommendation_id`
and `client_order_id` are unique, with `ON CONFLICT DO NOTHING`; only the rows this run inserted
are executed. A row written `pending` was never known to reach the broker: the next run looks its
`client_order_id` up at the broker (`GET /v2/orders:by_client_order_id`) and records the order it
finds; if there is none (404) the decision passes every gate again, beside that run's fresh
decisions, and is sent or recorded `rejected` with the gate's reason. Every outcome of a run is
recorded in one statement, in a `finally`: no order is sent without its outcome stored.

Broker replies:
- accepted: `submitted` (or `filled` when Alpaca fills at once);
- refused (any other APIError): `rejected`, with the broker's code in `broker_code` and its message
  in `reject_reason`; the rest of the batch goes on and the next run is not blocked;
- any other failure of the send (a bug, a malformed reply): the order is looked up; found, it is
  recorded, else the row is `failed` with the error, and the rest of the batch goes on;
- "client_order_id must be unique" (a duplicate, whatever the code), or a lost reply (connection
  error, timeout, 5xx: the order may have been accepted): the order is looked up by its
  `client_order_id`; found, it is recorded; not found, it is sent again once; if that also fails
  the row stays `pending` and the run raises `TransientError` for the state machine's retry.

`client_order_id` is `ops<6 hex>-<TICKER>-<bar start %Y%m%d%H%M>-<ACTION>` (at most 48
characters); the 6 hex characters hash the deployment (the stack name) and a random salt stored
in the database (`dispatch_deployment`), so neither a second stack on the same account nor a
rebuilt database ever reads back an order it did not place. Reconciliation only looks at rows
and orders with this prefix.

Reconciliation, first thing in every run:
- Alpaca: the `submitted` rows (one query), their orders (one request), their final outcomes (one
  statement): `filled` at `filled_avg_price` with `qty` = the filled quantity (also after a
  partial fill that was then canceled or expired: the reason notes the partial), or `rejected`
  for an order canceled, expired or rejected with nothing filled;
- simulation: a simulated order decided at minute m fills at the OPEN of the first bar that
  starts at or after m (the first price an order sent at m can get), once that bar has closed by
  the run's minute, plus `slippage_bps` against the order and `commission_per_share`. An order
  with no such bar before its session's close is recorded `rejected` ("no bar to fill at before
  the close") once the session is over. Until it fills, a simulated order is `submitted` and
  counts as an open order.

In simulation nothing leaves the process, so a whole catch-up window is dispatched in memory
(`SimulatedLedger`, `dispatch_window`): the state is read once (executions, undispatched
recommendations, the bars to fill and mark at), each minute is reconciled and gated in order as
above, and the claims and outcomes are written in two statements: the same rows as a run per
minute, in a constant number of round trips whatever the window's length. The window is one
transaction under the deployment's advisory lock, so overlapping runs take turns (the one that
waits is retried by the state machine) and a window is written whole or not at all.

Each execution stores `gate_verdicts` (jsonb): the ordered list of every risk gate's verdict,
`[{"gate": "kill_switch" | "market_open" | "expiry" | "confidence" | "one_open_order" |
"daily_loss" | "open_positions" | "trades_per_ticker" | "cooldown" | "size", "passed": bool,
"detail": text}, ...]`, every gate evaluated even after the first failure; `reject_reason` is
the first failed gate's detail (or the broker's refusal). `requested_qty` is the quantity sent,
`qty` the quantity filled once known; `commission` and `filled_at` (event time) once filled.
"""

from __future__ import annotations

import hashlib
import json
import time as monotonic_time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from ops_pipeline import alpaca
from ops_pipeline.config import RiskLimits, SimulationCosts, TradingMode, TradingState
from ops_pipeline.db import Connection, json_records
from ops_pipeline.errors import TransientError
from ops_pipeline.market import NEW_YORK
from ops_pipeline.observability import logger
from ops_pipeline.risk import (
    Book,
    BrokerClock,
    Decision,
    PendingRecommendation,
    day_result,
    risk_gates,
)

BACKLOG = timedelta(days=1)
CLOCK_SKEW = timedelta(minutes=1)
MAX_ORDERS_PER_PAGE = 500
BROKER_FINISHED = frozenset({"canceled", "expired", "rejected"})
DUPLICATE_MESSAGE = "client_order_id must be unique"
MAX_CLIENT_ORDER_ID = 48
BROKER_REFUSED = "broker refused"
PRICE_QUANTUM = Decimal("0.000001")
QTY_QUANTUM = Decimal("0.000001")  # dispatch_executions.qty is numeric(18, 6)
BPS = Decimal("0.0001")
RATE_LIMITED = 429
SEND_BUDGET = 60.0  # seconds a broker may spend waiting out rate limits (the handler sets the
# run's remaining time less a margin)
FINAL_STATUSES = ("filled", "rejected", "failed")


class RateLimited(TransientError):
    """The broker refused an order unread (429) and its window resets past the run's budget."""


def order_prefix(deployment: str, salt: str) -> str:
    """`ops` and 6 hex characters of the deployment and the database's salt."""
    digest = hashlib.sha256(f"{deployment}\n{salt}".encode()).hexdigest()
    return f"ops{digest[:6]}"


def client_order_id(rec: PendingRecommendation, prefix: str = "ops") -> str:
    """The order's idempotency key, from the recommendation's natural key (at most 48 characters)."""
    coid = f"{prefix}-{rec.ticker}-{rec.ts:%Y%m%d%H%M}-{rec.action}"
    if len(coid) > MAX_CLIENT_ORDER_ID:
        raise ValueError(f"client_order_id {coid!r} is longer than {MAX_CLIENT_ORDER_ID}")
    return coid


@dataclass(frozen=True)
class Outcome:
    status: str  # filled | submitted | rejected | failed | pending
    price: Decimal | None = None
    broker_order_id: str | None = None
    reason: str | None = None
    qty: Decimal | None = None  # the filled quantity, when the broker says it
    broker_code: int | None = None
    commission: Decimal | None = None
    filled_at: datetime | None = None


class Broker(Protocol):
    mode: TradingMode

    def positions(
        self, conn: Connection, minute: datetime, prefix: str
    ) -> tuple[dict[str, Decimal], set[str]]:
        """Held quantity per ticker, and tickers with an open order."""
        ...

    def clock(self) -> BrokerClock | None:
        """The broker's time and whether the market is open, as the minute's orders go out."""
        ...

    def execute(self, decision: Decision, coid: str) -> Outcome: ...

    def lookup(self, coid: str) -> Outcome | None:
        """The order placed with this `client_order_id`, or None if the broker has none."""
        ...

    def reconcile(
        self, conn: Connection, minute: datetime, prefix: str, session_close: datetime | None
    ) -> dict[int, Outcome]:
        """Final outcomes of this deployment's `submitted` orders, however old, by recommendation
        id; raises `TransientError` when the broker cannot say (a failed stage, retried)."""
        ...


# -- simulation ------------------------------------------------------------------------------


def _pattern(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"


def new_york_day_start(minute: datetime) -> datetime:
    day = minute.astimezone(NEW_YORK).date()
    return datetime.combine(day, time(0), NEW_YORK)


def simulated_fill_price(side: str, bar_open: Decimal, costs: SimulationCosts) -> Decimal:
    """The bar's open moved against the order by the slippage."""
    factor = Decimal(1) + costs.slippage_bps * BPS * (1 if side == "buy" else -1)
    return (bar_open * factor).quantize(PRICE_QUANTUM)


@dataclass
class SimulatedBroker:
    """Fills at the next bar's open plus costs; positions are the filled simulated orders.

    Nothing leaves the process, so a simulated window is dispatched in memory
    (`SimulatedLedger`): one read of the state, every minute in order, one write."""

    costs: SimulationCosts = field(default_factory=SimulationCosts)
    mode: TradingMode = TradingMode.SIMULATION

    def clock(self) -> None:
        """No broker: a simulation keeps event time."""
        return None


# -- Alpaca ----------------------------------------------------------------------------------


def _api_code(exc: Exception) -> int | None:
    try:
        return int(getattr(exc, "code", None) or 0) or None
    except (TypeError, ValueError, json.JSONDecodeError):
        return None


def _api_message(exc: Exception) -> str:
    try:
        return str(getattr(exc, "message", None) or exc)
    except (TypeError, ValueError, KeyError, json.JSONDecodeError):
        return str(exc)


def _dec(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value not in (None, "") else None


def _order_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def order_outcome(order: dict[str, Any]) -> Outcome:
    """What an Alpaca order (raw JSON) means for its execution row.

    `filled` (qty = filled_qty), also for a partial fill then canceled or expired; `rejected`
    for a finished order with nothing filled; `submitted` while it may still (partly) fill.
    """
    status = str(order.get("status") or "")
    order_id = str(order.get("id")) if order.get("id") else None
    filled = _dec(order.get("filled_qty")) or Decimal(0)
    price = _dec(order.get("filled_avg_price"))
    filled_at = _order_time(order.get("filled_at"))
    if status == "filled":
        return Outcome("filled", price, order_id, qty=filled or None, filled_at=filled_at)
    if status in BROKER_FINISHED and filled > 0:
        reason = f"partial fill: {filled} of {order.get('qty')}, then {status}"
        return Outcome("filled", price, order_id, reason, qty=filled, filled_at=filled_at)
    if status in BROKER_FINISHED:
        return Outcome("rejected", broker_order_id=order_id, reason=f"broker: {status}")
    return Outcome("submitted", broker_order_id=order_id)


class AlpacaBroker:
    """Market orders through alpaca-py's TradingClient, keyed by `client_order_id`."""

    def __init__(self, client: Any, mode: TradingMode, budget_seconds: float = SEND_BUDGET) -> None:
        self.client = client
        self.mode = mode
        self.deadline = monotonic_time.monotonic() + budget_seconds

    def positions(
        self, conn: Connection, minute: datetime, prefix: str
    ) -> tuple[dict[str, Decimal], set[str]]:
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

    def clock(self) -> BrokerClock:
        raw = alpaca.call("clock", self.client.get_clock)
        now = datetime.fromisoformat(str(raw["timestamp"]).replace("Z", "+00:00"))
        return BrokerClock(now, bool(raw["is_open"]))

    def lookup(self, coid: str) -> Outcome | None:
        from alpaca.common.exceptions import APIError

        try:
            order = alpaca.call("order lookup", lambda: self.client.get_order_by_client_id(coid))
        except APIError as exc:
            if getattr(exc, "status_code", None) == 404:
                return None
            raise TransientError(f"Alpaca order lookup failed: {exc}") from exc
        return order_outcome(order)

    def _submit(self, decision: Decision, coid: str) -> dict[str, Any]:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        rec = decision.recommendation
        request = MarketOrderRequest(
            symbol=rec.ticker,
            qty=float(decision.qty),
            side=OrderSide.BUY if rec.action == "BUY" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=coid,
        )
        # One try: a lost reply is the dispatcher's to resolve (a lookup by client_order_id),
        # never a blind resend. A 429 is a refusal before the order was read: the same order
        # (same client_order_id) goes again once the broker's window resets, if the run's budget
        # allows; else the row stays pending for the state machine's retry.
        from alpaca.common.exceptions import APIError

        while True:
            try:
                return alpaca.call("order", lambda: self.client.submit_order(request), attempts=1)
            except TransientError as exc:
                cause = exc.__cause__
                if not isinstance(cause, APIError) or cause.status_code != RATE_LIMITED:
                    raise
                wait = alpaca.rate_limit_wait(cause)
                if monotonic_time.monotonic() + wait > self.deadline:
                    raise RateLimited(
                        f"order {coid} rate limited; the reset is past the run's budget"
                    ) from cause
                logger.info(
                    "order rate limited; sending it again at the reset",
                    extra={"client_order_id": coid, "wait_s": round(wait, 2)},
                )
                monotonic_time.sleep(wait)

    def execute(self, decision: Decision, coid: str) -> Outcome:
        """Send once; on a duplicate or a lost reply, look the order up, and send again at most once."""
        from alpaca.common.exceptions import APIError

        for attempt in (1, 2):
            try:
                return order_outcome(self._submit(decision, coid))
            except APIError as exc:
                message = _api_message(exc)
                if DUPLICATE_MESSAGE not in message:
                    code = _api_code(exc)
                    logger.warning(
                        "order refused by the broker",
                        extra={"client_order_id": coid, "code": code, "broker_message": message},
                    )
                    return Outcome(
                        "rejected", reason=f"{BROKER_REFUSED} ({code}): {message}", broker_code=code
                    )
                logger.info(
                    "order already placed; reading it back", extra={"client_order_id": coid}
                )
            except RateLimited:
                raise  # refused unread: nothing to look up; the row stays pending
            except TransientError as exc:
                if attempt == 2:
                    raise
                logger.warning(
                    "order reply lost; looking the order up",
                    extra={"client_order_id": coid, "error": str(exc)},
                )
            found = self.lookup(coid)  # a TransientError here leaves the row pending
            if found is not None:
                return found
        raise TransientError(f"order {coid} could not be placed or found")

    def reconcile(
        self, conn: Connection, minute: datetime, prefix: str, session_close: datetime | None
    ) -> dict[int, Outcome]:
        rows = conn.run(SUBMITTED, mode=self.mode.value, pattern=_pattern(prefix))
        if not rows:
            return {}
        by_coid = {coid: rec_id for rec_id, coid, _ in rows}
        since = min(decided_at for _, _, decided_at in rows)
        # A failure here fails the stage (the state machine retries, then alarms): the gates must
        # not decide against orders whose fate is unknown.
        finished = self.order_outcomes(list(by_coid), since)
        return {by_coid[coid]: outcome for coid, outcome in finished.items()}

    def order_outcomes(
        self, client_order_ids: Sequence[str], since: datetime
    ) -> dict[str, Outcome]:
        """One request for every order since `since`; the finished ones among those asked for."""
        from alpaca.common.enums import Sort
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        wanted = set(client_order_ids)
        seen: set[str] = set()
        outcomes: dict[str, Outcome] = {}
        after = since - CLOCK_SKEW
        while True:  # oldest first, a page at a time, until every order asked for is seen
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                after=after,
                limit=MAX_ORDERS_PER_PAGE,
                direction=Sort.ASC,
            )
            orders = alpaca.call(
                "order reconciliation", lambda r=request: self.client.get_orders(r)
            )
            for order in orders:
                coid = order.get("client_order_id")
                if coid not in wanted:
                    continue
                seen.add(coid)
                outcome = order_outcome(order)
                if outcome.status != "submitted":
                    outcomes[coid] = outcome
            last = _order_time(orders[-1].get("submitted_at")) if orders else None
            if len(orders) < MAX_ORDERS_PER_PAGE or seen >= wanted or last is None or last <= after:
                return outcomes
            after = last


# -- the run ---------------------------------------------------------------------------------

SALT = """
WITH created AS (
    INSERT INTO dispatch_deployment DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING salt
)
SELECT salt FROM created UNION ALL SELECT salt FROM dispatch_deployment
"""

PENDING = """
SELECT r.id, r.ticker, r.ts, r.decided_at, r.action, r.price, r.confidence, e.client_order_id
FROM dispatch_recommendations r
LEFT JOIN dispatch_executions e ON e.recommendation_id = r.id
WHERE r.decided_at > :since AND r.decided_at <= :minute
  AND (e.id IS NULL OR e.status = 'pending')
ORDER BY r.decided_at, r.ts, r.ticker
"""

# The deployment's own book at a minute: per ticker, today's orders (a `pending` row being
# decided again in this run, `:retried`, is not counted against itself), today's fills marked at
# the last close, what its own fills held at the day's start (carried) and hold now (own), and
# whether a BUY of its own is still open.
DAY_BOOK = """
WITH ours AS (
    SELECT ticker, side, qty, price, commission, status, decided_at,
           coalesce(filled_at, decided_at) AS at,
           CASE side WHEN 'buy' THEN qty ELSE -qty END AS signed
    FROM dispatch_executions
    WHERE mode = :mode AND client_order_id LIKE :pattern AND decided_at <= :minute
      AND status IN ('filled', 'submitted', 'pending')
      AND client_order_id <> ALL(CAST(:retried AS text[]))
), mine AS (
    SELECT * FROM ours WHERE decided_at >= :day_start
), carried AS (
    SELECT ticker,
           coalesce(sum(signed) FILTER (WHERE status = 'filled' AND decided_at < :day_start), 0)
               AS qty,
           coalesce(sum(signed) FILTER (WHERE status = 'filled'), 0) AS own,
           bool_or(side = 'buy' AND status <> 'filled') AS buying
    FROM ours
    GROUP BY ticker
), tickers AS (
    SELECT ticker FROM mine UNION SELECT ticker FROM carried WHERE qty <> 0 OR own <> 0
), prices AS (
    SELECT k.ticker,
           (SELECT t.close FROM lane_telemetry t
            WHERE t.ticker = k.ticker AND t.ts < :minute AND t.ts >= :since
            ORDER BY t.ts DESC LIMIT 1) AS mark,
           (SELECT t.close FROM lane_telemetry t
            WHERE t.ticker = k.ticker AND t.ts < :day_start AND t.session = 'regular'
              AND t.ts >= :since
            ORDER BY t.ts DESC LIMIT 1) AS previous_close
    FROM tickers k
)
SELECT p.ticker, count(m.ticker), max(m.at) FILTER (WHERE m.status = 'filled'),
       coalesce(sum(CASE WHEN m.status = 'filled' THEN
           (CASE m.side WHEN 'buy' THEN 1 ELSE -1 END) * m.qty * (coalesce(p.mark, m.price) - m.price)
           - m.commission END), 0),
       coalesce((SELECT c.qty FROM carried c WHERE c.ticker = p.ticker), 0),
       p.mark, p.previous_close,
       coalesce((SELECT c.own FROM carried c WHERE c.ticker = p.ticker), 0),
       coalesce((SELECT c.buying FROM carried c WHERE c.ticker = p.ticker), false)
FROM prices p LEFT JOIN mine m USING (ticker)
GROUP BY p.ticker, p.mark, p.previous_close
"""

# Every order of ours the broker may still fill, however old (an order open at Friday's last
# run is reconciled on Monday, or after a holiday).
SUBMITTED = """
SELECT recommendation_id, client_order_id, decided_at
FROM dispatch_executions
WHERE status = 'submitted' AND mode = :mode AND client_order_id LIKE :pattern
"""

CLAIM = """
INSERT INTO dispatch_executions
    (recommendation_id, ticker, side, qty, requested_qty, price, mode, client_order_id, status,
     reject_reason, decided_at, gate_verdicts)
SELECT u.rec_id, u.ticker, u.side, u.qty, u.qty, u.price, u.mode, u.coid, u.status, u.reason,
       u.decided_at, u.verdicts
FROM json_to_recordset(CAST(:rows AS json))
    AS u(rec_id bigint, ticker text, side text, qty numeric, price numeric, mode text, coid text,
         status text, reason text, decided_at timestamptz, verdicts jsonb)
ON CONFLICT DO NOTHING
RETURNING recommendation_id
"""

RECORD_OUTCOMES = """
UPDATE dispatch_executions e
SET status = u.status,
    price = coalesce(u.price, e.price),
    qty = coalesce(u.qty, e.qty),
    requested_qty = coalesce(u.requested_qty, e.requested_qty),
    broker_order_id = coalesce(u.order_id, e.broker_order_id),
    broker_code = coalesce(u.code, e.broker_code),
    reject_reason = u.reason,
    commission = coalesce(u.commission, e.commission),
    filled_at = coalesce(u.filled_at, e.filled_at),
    gate_verdicts = coalesce(u.verdicts, e.gate_verdicts),
    decided_at = coalesce(u.decided_at, e.decided_at),
    updated_at = now()
FROM json_to_recordset(CAST(:rows AS json))
    AS u(rec_id bigint, status text, price numeric, qty numeric, requested_qty numeric,
         order_id text, code integer, reason text, commission numeric, filled_at timestamptz,
         verdicts jsonb, decided_at timestamptz, prior text)
WHERE e.recommendation_id = u.rec_id AND e.status = u.prior
"""


@dataclass(frozen=True)
class _Record:
    """An outcome to store over a row in status `prior`: a row that another run has moved on
    meanwhile (an overlapping run of the same minute, a redrive) keeps what that run stored, so a
    final status (filled, rejected, failed) never moves."""

    outcome: Outcome
    decision: Decision | None = None  # set when the gates were (re-)evaluated in this run
    decided_at: datetime | None = None
    prior: str = "pending"  # `submitted` for a reconciled order


def _verdicts(decision: Decision) -> list[dict[str, Any]]:
    return [v.as_json() for v in decision.verdicts]


def _salt(conn: Connection) -> str:
    return str(conn.run(SALT)[0][0])


def _book(
    conn: Connection, broker: Broker, minute: datetime, prefix: str, retried: Sequence[str] = ()
) -> Book:
    """The book the gates decide against: the deployment's own positions (its fills, never more
    than the account holds: a manual position or another stack's on the same account is not
    ours to sell or to count), the account's open orders, and the day's own orders and result.
    `retried`: the `client_order_id`s of `pending` rows decided again now (not counted twice)."""
    account, open_orders = broker.positions(conn, minute, prefix)
    day_start = new_york_day_start(minute)
    rows = conn.run(
        DAY_BOOK,
        mode=broker.mode.value,
        pattern=_pattern(prefix),
        day_start=day_start,
        since=day_start - MARK_LOOKBACK,
        minute=minute,
        retried=list(retried),
    )
    own = {r[0]: Decimal(r[7]) for r in rows}
    held = {t: min(q, account.get(t, Decimal(0))) for t, q in own.items()}
    return Book(
        positions={t: q for t, q in held.items() if q > 0},
        open_buys={t for t, *_, buying in rows if buying},
        open_orders=open_orders,
        trades_today={t: int(n) for t, n, *_ in rows if n},
        last_fill={t: at for t, _, at, *_ in rows if at is not None},
        day_result=day_result(
            held_at_open={r[0]: Decimal(r[4]) for r in rows},
            fills_result=sum((Decimal(r[3]) for r in rows), Decimal(0)),
            marks={r[0]: Decimal(r[5]) for r in rows if r[5] is not None},
            previous_closes={r[0]: Decimal(r[6]) for r in rows if r[6] is not None},
        ),
    )


def _claim(
    conn: Connection,
    decisions: Sequence[Decision],
    planned: dict[int, Outcome],
    mode: TradingMode,
    decided_at: Sequence[datetime],
    prefix: str,
) -> set[int]:
    """Write every decision once (each decided at its minute); return the recommendation ids
    this run now owns."""
    if not decisions:
        return set()
    rows = conn.run(
        CLAIM,
        rows=json_records(
            [
                {
                    "rec_id": d.recommendation.id,
                    "ticker": d.recommendation.ticker,
                    "side": d.side,
                    "qty": d.qty,
                    "price": d.recommendation.price,
                    "mode": mode.value,
                    "coid": client_order_id(d.recommendation, prefix),
                    "status": planned[d.recommendation.id].status,
                    "reason": planned[d.recommendation.id].reason,
                    "decided_at": at,
                    "verdicts": _verdicts(d),
                }
                for d, at in zip(decisions, decided_at, strict=True)
            ]
        ),
    )
    return {rec_id for (rec_id,) in rows}


def _record(conn: Connection, records: dict[int, _Record]) -> None:
    """Every outcome of the run in one statement."""
    if not records:
        return
    rows = []
    for rec_id, r in records.items():
        o, d = r.outcome, r.decision
        rows.append(
            {
                "rec_id": rec_id,
                "status": o.status,
                "price": o.price,
                # qty is what filled: nothing when the order was refused, canceled or expired
                "qty": Decimal(0)
                if o.status in ("rejected", "failed")
                else o.qty
                if o.qty is not None
                else (d.qty if d else None),
                "requested_qty": d.qty if d else None,
                "order_id": o.broker_order_id,
                "code": o.broker_code,
                "reason": o.reason,
                "commission": o.commission,
                "filled_at": o.filled_at,
                "verdicts": _verdicts(d) if d else None,
                "decided_at": r.decided_at,
                "prior": r.prior,
            }
        )
    conn.run(RECORD_OUTCOMES, rows=json_records(rows))


def _counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


# -- a simulated window, in memory ----------------------------------------------------------

SIM_EXECUTIONS = """
SELECT recommendation_id, ticker, side, qty, price, commission, status, decided_at, filled_at
FROM dispatch_executions
WHERE mode = 'simulation' AND client_order_id LIKE :pattern
  AND (decided_at >= :start OR status = 'submitted')
UNION ALL
SELECT NULL, ticker, 'buy', sum(CASE side WHEN 'buy' THEN qty ELSE -qty END), NULL, NULL,
       'held before', NULL, NULL
FROM dispatch_executions
WHERE mode = 'simulation' AND client_order_id LIKE :pattern AND status = 'filled'
  AND decided_at < :start
GROUP BY ticker
"""

# The window's bars from `start` (its first minute, or its oldest open order's decision), and
# before them what a mark or a previous close can still reach back to (`since`): the last bar,
# the last regular bar, and the last regular bar before the first minute's day (its previous
# close, when the window starts later in that day).
SIM_BARS = """
SELECT ticker, ts, open, close, session FROM lane_telemetry
WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts >= :start AND ts < :end
UNION ALL
(SELECT DISTINCT ON (ticker) ticker, ts, open, close, session FROM lane_telemetry
 WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts < :start AND ts >= :since
 ORDER BY ticker, ts DESC)
UNION ALL
(SELECT DISTINCT ON (ticker) ticker, ts, open, close, session FROM lane_telemetry
 WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts < :start AND ts >= :since
   AND session = 'regular'
 ORDER BY ticker, ts DESC)
UNION ALL
(SELECT DISTINCT ON (ticker) ticker, ts, open, close, session FROM lane_telemetry
 WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts < :day_start AND ts >= :since
   AND session = 'regular' AND CAST(:day_start AS timestamptz) < :start
 ORDER BY ticker, ts DESC)
"""

MARK_LOOKBACK = timedelta(days=7)


@dataclass
class _SimOrder:
    """One simulated execution row as the ledger sees it."""

    rec_id: int
    ticker: str
    side: str
    qty: Decimal
    price: Decimal | None
    commission: Decimal | None
    status: str
    decided_at: datetime
    filled_at: datetime | None = None

    @property
    def signed(self) -> Decimal:
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True)
class DispatchMinute:
    """A minute to dispatch at: would a market order sent then trade in the regular session, and
    that day's close (after which a simulated order without a bar to fill at is rejected)."""

    minute: datetime
    market_open: bool
    session_close: datetime | None = None


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
        self.held_before: dict[str, Decimal] = {}
        self.orders: dict[int, _SimOrder] = {}
        self.changed: dict[int, _Record] = {}
        self.claims: list[tuple[Decision, Outcome, datetime]] = []
        for rec_id, ticker, side, qty, price, commission, status, decided_at, filled_at in conn.run(
            SIM_EXECUTIONS, pattern=_pattern(prefix), start=start
        ):
            if rec_id is None:
                self.held_before[ticker] = Decimal(qty)
                continue
            self.orders[rec_id] = _SimOrder(
                rec_id,
                ticker,
                side,
                Decimal(qty),
                _dec(price),
                _dec(commission),
                status,
                decided_at,
                filled_at,
            )
        self.pending = deque(
            (PendingRecommendation(rid, t, ts, at, action, Decimal(p), Decimal(c)), coid)
            for rid, t, ts, at, action, p, c, coid in conn.run(
                PENDING, since=first - BACKLOG, minute=last
            )
        )
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
                tickers=tickers,
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
                commission = (order.qty * costs.commission_per_share).quantize(PRICE_QUANTUM)
                out[order.rec_id] = Outcome(
                    "filled", price=price, qty=order.qty, commission=commission, filled_at=bar[0]
                )
                order.status, order.price = "filled", price
                order.commission, order.filled_at = commission, bar[0]
            elif order_day < today or (
                session_close is not None and order_day == today and minute >= session_close
            ):
                out[order.rec_id] = Outcome("rejected", reason="no bar to fill at before the close")
                order.status = "rejected"
        for rec_id, outcome in out.items():
            self.changed[rec_id] = _Record(outcome, prior="submitted")
        return out

    def _book(self, minute: datetime) -> Book:
        positions = dict(self.held_before)
        open_orders: set[str] = set()
        open_buys: set[str] = set()
        day_start = new_york_day_start(minute)
        trades: dict[str, int] = {}
        last_fill: dict[str, datetime] = {}
        held_at_open = dict(self.held_before)
        fills_result = Decimal(0)
        marks_since = day_start - MARK_LOOKBACK
        for o in self.orders.values():
            if o.decided_at > minute:
                continue
            if o.status == "filled":
                positions[o.ticker] = positions.get(o.ticker, Decimal(0)) + o.signed
                if o.decided_at < day_start:
                    held_at_open[o.ticker] = held_at_open.get(o.ticker, Decimal(0)) + o.signed
            elif o.status == "submitted":
                open_orders.add(o.ticker)
                if o.side == "buy":
                    open_buys.add(o.ticker)
            if o.decided_at < day_start or o.status not in ("filled", "submitted", "pending"):
                continue
            trades[o.ticker] = trades.get(o.ticker, 0) + 1
            if o.status == "filled":
                at = o.filled_at or o.decided_at
                last_fill[o.ticker] = max(at, last_fill.get(o.ticker, at))
                mark = self.bars.last_close(o.ticker, minute, marks_since)
                if o.price is not None and o.commission is not None:
                    fills_result += o.signed * ((mark if mark is not None else o.price) - o.price)
                    fills_result -= o.commission
        held = {t: q for t, q in positions.items() if q}
        marks, previous = {}, {}
        for ticker in set(held) | {t for t, q in held_at_open.items() if q}:
            if (mark := self.bars.last_close(ticker, minute, marks_since)) is not None:
                marks[ticker] = mark
            close = self.bars.last_close(ticker, day_start, marks_since, regular=True)
            if close is not None:
                previous[ticker] = close
        return Book(
            positions=held,
            open_orders=open_orders,
            open_buys=open_buys,
            trades_today=trades,
            last_fill=last_fill,
            day_result=day_result(held_at_open, fills_result, marks, previous),
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
            return _summary(self.broker.mode, 0, {}, [], reconciled)
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
                    self.changed[rec.id] = _Record(final[rec.id], d, minute)
                continue
            outcome = (
                Outcome("submitted", qty=d.qty)
                if d.approved
                else Outcome("rejected", reason=d.rejected)
            )
            final[rec.id] = outcome
            self.claims.append((d, outcome, minute))
            qty = d.qty.quantize(QTY_QUANTUM)  # as the column stores it, and so reads it back
            self.orders[rec.id] = _SimOrder(
                rec.id, rec.ticker, d.side, qty, rec.price, None, outcome.status, minute
            )
        self.pending.extendleft(reversed(kept))
        return _summary(self.broker.mode, len(due), final, decisions, reconciled)

    def write(self, conn: Connection) -> None:
        """The window's claims in one statement, then every later change in one more.

        A claim that another run inserted first means the window's later minutes were decided
        against an order this run does not own: it raises `TransientError`, the window's
        transaction rolls back whole and the retry decides it again from the rows as they are.
        """
        if self.claims:
            owned = _claim(
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
        _record(conn, self.changed)


def _summary(
    mode: TradingMode,
    considered: int,
    final: dict[int, Outcome],
    decisions: Sequence[Decision],
    reconciled: dict[int, Outcome],
    refused: int = 0,
) -> dict[str, Any]:
    rejections = [
        {"ticker": d.recommendation.ticker, "action": d.recommendation.action, "reason": d.rejected}
        for d in decisions
        if not d.approved and d.recommendation.id in final
    ]
    return {
        "mode": mode.value,
        "considered": considered,
        "outcomes": _counts(final.values()),
        "blocked_by_risk_gates": len(rejections),
        "refused_by_broker": refused,
        "rejections": rejections,
        "reconciled": len(reconciled),
        "reconciled_outcomes": _counts(reconciled.values()),
    }


def add_summary(total: dict[str, Any], summary: dict[str, Any]) -> None:
    """Add one minute's dispatch summary to a window's."""
    for key, value in summary.items():
        if isinstance(value, bool) or key == "mode":
            total[key] = value
        elif isinstance(value, int):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, list):
            total.setdefault(key, []).extend(value)
        elif isinstance(value, dict):
            counts = total.setdefault(key, {})
            for name, n in value.items():
                counts[name] = counts.get(name, 0) + n


def window_lock_key(prefix: str) -> int:
    """The deployment's advisory lock key (a signed 64-bit integer, as PostgreSQL takes it)."""
    return int.from_bytes(hashlib.sha256(prefix.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _one_run_at_a_time(conn: Connection, prefix: str) -> Iterator[None]:
    """A simulated window in one transaction, under the deployment's advisory lock: two runs that
    overlap (a slow minute and the next one) never decide against the same state, and a window
    is written whole or not at all. A run that finds the lock taken raises `TransientError`, which
    the state machine retries. (Paper and live runs cannot do this: a claim must be committed
    before its order is sent.)"""
    conn.run("START TRANSACTION")
    try:
        ((locked,),) = conn.run("SELECT pg_try_advisory_xact_lock(:k)", k=window_lock_key(prefix))
        if not locked:
            raise TransientError("another dispatcher run of this deployment is dispatching")
        yield
        conn.run("COMMIT")
    except BaseException:
        with suppress(Exception):  # a lost connection has rolled back already
            conn.run("ROLLBACK")
        raise


def dispatch_window(
    conn: Connection,
    broker: Broker | SimulatedBroker,
    minutes: Sequence[DispatchMinute],
    *,
    state: TradingState,
    limits: RiskLimits,
    deployment: str = "local",
) -> dict[str, Any]:
    """Dispatch each minute of a window in order, as runs of their own would have: in
    simulation in memory (`SimulatedLedger`), through a broker one minute at a time."""
    total: dict[str, Any] = {"mode": broker.mode.value, "minutes": len(minutes)}
    if not minutes:
        return total
    prefix = order_prefix(deployment, _salt(conn))
    if isinstance(broker, SimulatedBroker):
        with _one_run_at_a_time(conn, prefix):
            ledger = SimulatedLedger(conn, broker, prefix, minutes[0].minute, minutes[-1].minute)
            for at in minutes:
                add_summary(total, ledger.dispatch(at, state, limits))
            ledger.write(conn)
        return total
    for at in minutes:
        add_summary(
            total,
            dispatch(
                conn,
                broker,
                minute=at.minute,
                market_open=at.market_open,
                state=state,
                limits=limits,
                deployment=deployment,
                session_close=at.session_close,
                prefix=prefix,
            ),
        )
    return total


def dispatch(
    conn: Connection,
    broker: Broker | SimulatedBroker,
    *,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    deployment: str = "local",
    session_close: datetime | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """Reconcile this deployment's open orders, then decide and execute every recommendation not
    yet dispatched (and every `pending` one that never reached the broker), each at most once.

    `market_open`: would a market DAY order sent at `minute` trade in the regular session
    (`ops_pipeline.market.accepting_orders`); `session_close`: today's close, after which a
    simulated order without a bar to fill at is rejected; `prefix`: the deployment's
    `client_order_id` prefix, when the caller has read it already (once per window).
    """
    if isinstance(broker, SimulatedBroker):
        return dispatch_window(
            conn,
            broker,
            [DispatchMinute(minute, market_open, session_close)],
            state=state,
            limits=limits,
            deployment=deployment,
        )
    prefix = prefix or order_prefix(deployment, _salt(conn))
    reconciled = broker.reconcile(conn, minute, prefix, session_close)
    _record(conn, {i: _Record(o, prior="submitted") for i, o in reconciled.items()})

    rows = conn.run(PENDING, since=minute - BACKLOG, minute=minute)
    fresh: list[PendingRecommendation] = []
    retried: list[tuple[PendingRecommendation, str]] = []
    for rec_id, ticker, ts, decided_at, action, price, confidence, coid in rows:
        rec = PendingRecommendation(
            rec_id, ticker, ts, decided_at, action, Decimal(price), Decimal(confidence)
        )
        if coid is None:
            fresh.append(rec)
        else:
            retried.append((rec, coid))

    records: dict[int, _Record] = {}
    unsent: list[PendingRecommendation] = []
    transient: list[str] = []
    for rec, coid in retried:  # a pending row: did the order reach the broker?
        try:
            found = broker.lookup(coid)
        except TransientError as exc:
            transient.append(str(exc))
            continue
        if found is None:
            unsent.append(rec)
        else:
            logger.info("pending order found at the broker", extra={"client_order_id": coid})
            records[rec.id] = _Record(found)

    candidates = fresh + unsent
    retried_coids = [coid for rec, coid in retried if rec in unsent]
    book = _book(conn, broker, minute, prefix, retried_coids) if candidates else Book()
    # "May this order go out now" is the broker's to say: its clock, read once the book is, just
    # before the orders go out (a late run trades on a stale minute; see the decision_age gate).
    clock = broker.clock() if candidates else None
    decisions = risk_gates(
        candidates,
        minute=minute,
        market_open=market_open,
        state=state,
        limits=limits,
        book=book,
        clock=clock,
    )
    planned: dict[int, Outcome] = {}
    for d in decisions:
        if not d.approved:
            planned[d.recommendation.id] = Outcome("rejected", reason=d.rejected)
        else:
            planned[d.recommendation.id] = Outcome("pending")
    fresh_ids = {r.id for r in fresh}
    unsent_ids = {r.id for r in unsent}
    claims = [d for d in decisions if d.recommendation.id in fresh_ids]
    owned = _claim(conn, claims, planned, broker.mode, [minute] * len(claims), prefix)
    for d in decisions:
        rid = d.recommendation.id
        if rid in unsent_ids and not d.approved:
            records[rid] = _Record(planned[rid], d, minute)

    to_send = [
        d
        for d in decisions
        if d.approved and (d.recommendation.id in owned or d.recommendation.id in unsent_ids)
    ]
    try:
        for d in to_send:
            rid = d.recommendation.id
            coid = client_order_id(d.recommendation, prefix)
            decided = minute if rid in unsent_ids else None  # a retry is decided again now
            try:
                outcome = broker.execute(d, coid)
            except TransientError as exc:
                transient.append(str(exc))
                if rid in unsent_ids:  # re-gated now: keep the fresh verdicts and size
                    records[rid] = _Record(Outcome("pending"), d, minute)
                continue
            except Exception as exc:  # neither a refusal nor a lost reply: never a jam either
                logger.exception("order failed", extra={"client_order_id": coid})
                try:
                    found = broker.lookup(coid)
                except TransientError as lookup_error:
                    transient.append(str(lookup_error))
                    continue
                reason = f"order failed: {type(exc).__name__}: {exc}"[:500]
                outcome = found or Outcome("failed", reason=reason)
            records[rid] = _Record(outcome, d, decided)
    finally:
        _record(conn, records)

    final = {**{i: planned[i] for i in owned}, **{i: r.outcome for i, r in records.items()}}
    if transient:
        raise TransientError(
            f"{len(transient)} order(s) left pending for the retry: {transient[0]}"
        )
    refused = sum(
        1 for r in records.values() if (r.outcome.reason or "").startswith(BROKER_REFUSED)
    )
    return _summary(broker.mode, len(rows), final, decisions, reconciled, refused)
