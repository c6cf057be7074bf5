"""Order ids and outcomes: what an order is called, what became of it, and how that is stored.

`client_order_id` is `ops<6 hex>-<TICKER>-<bar start %Y%m%d%H%M>-<ACTION>` (at most 48
characters); the 6 hex characters hash the deployment (the stack name) and a random salt stored
in the database (`dispatch_deployment`), so neither a second stack on the same account nor a
rebuilt database ever reads back an order it did not place. Reconciliation only looks at rows
and orders with this prefix.

Every decision is claimed once (`claim`: one INSERT, `ON CONFLICT DO NOTHING`, unique per
recommendation and per `client_order_id`), and every outcome of a run is written in one UPDATE
(`record`) that only moves a row from the status the run saw it in (`Record.prior`): a row that
an overlapping run has moved on meanwhile keeps what that run stored, so a final status (filled,
rejected, failed) never moves. `qty` is what filled (0 when nothing did; on an order still open,
what has filled so far); `requested_qty` what was asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ops_pipeline.config import TradingMode
from ops_pipeline.db import Connection, json_records
from ops_pipeline.risk import Decision, PendingRecommendation

MAX_CLIENT_ORDER_ID = 48
BROKER_FINISHED = frozenset({"canceled", "expired", "rejected"})
BROKER_REJECTED = "broker: rejected"  # an order the broker accepted, then rejected
BROKER_REFUSED = "broker refused"
FINAL_STATUSES = ("filled", "rejected", "failed")
PRICE_QUANTUM = Decimal("0.000001")
QTY_QUANTUM = Decimal("0.000001")  # dispatch_executions.qty is numeric(18, 6)


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


def prefix_pattern(prefix: str) -> str:
    """A LIKE pattern for the client order ids with this prefix."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"


SALT = """
WITH created AS (
    INSERT INTO dispatch_deployment DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING salt
)
SELECT salt FROM created UNION ALL SELECT salt FROM dispatch_deployment
"""


def deployment_prefix(conn: Connection, deployment: str) -> str:
    """This deployment's `client_order_id` prefix, with the database's salt (one round trip)."""
    return order_prefix(deployment, str(conn.run(SALT)[0][0]))


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
    for a finished order with nothing filled; `submitted` while it may still (partly) fill, with
    qty = what has filled so far (`partially_filled`: its shares count in the book at once).
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
    if filled > 0:
        reason = f"partial fill: {filled} of {order.get('qty')} so far"
        return Outcome("submitted", price, order_id, reason, qty=filled, filled_at=filled_at)
    return Outcome("submitted", broker_order_id=order_id, qty=Decimal(0))


@dataclass(frozen=True)
class Record:
    """An outcome to store over a row in status `prior` (see the module's docstring)."""

    outcome: Outcome
    decision: Decision | None = None  # set when the gates were (re-)evaluated in this run
    decided_at: datetime | None = None
    prior: str = "pending"  # `submitted` for a reconciled order


CLAIM = """
INSERT INTO dispatch_executions
    (recommendation_id, ticker, side, qty, requested_qty, price, mode, client_order_id, status,
     reject_reason, decided_at, gate_verdicts, leased_by)
SELECT u.rec_id, u.ticker, u.side, u.qty, u.qty, u.price, u.mode, u.coid, u.status, u.reason,
       u.decided_at, u.verdicts,
       CASE WHEN u.status = 'pending' THEN NULLIF(CAST(:run AS text), '') END
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
    leased_by = CASE WHEN u.status = 'pending' THEN e.leased_by END,  -- a lease ends with `pending`
    updated_at = now()
FROM json_to_recordset(CAST(:rows AS json))
    AS u(rec_id bigint, status text, price numeric, qty numeric, requested_qty numeric,
         order_id text, code integer, reason text, commission numeric, filled_at timestamptz,
         verdicts jsonb, decided_at timestamptz, prior text)
WHERE e.recommendation_id = u.rec_id AND e.status = u.prior
"""


def verdicts(decision: Decision) -> list[dict[str, Any]]:
    return [v.as_json() for v in decision.verdicts]


def claim(
    conn: Connection,
    decisions: Sequence[Decision],
    planned: dict[int, Outcome],
    mode: TradingMode,
    decided_at: Sequence[datetime],
    prefix: str,
    run: str | None = None,
) -> set[int]:
    """Write every decision once (each decided at its minute); return the recommendation ids
    this run now owns (its `pending` rows leased to `run`: see LEASE)."""
    if not decisions:
        return set()
    rows = conn.run(
        CLAIM,
        run=run,
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
                    "verdicts": verdicts(d),
                }
                for d, at in zip(decisions, decided_at, strict=True)
            ]
        ),
    )
    return {rec_id for (rec_id,) in rows}


def _filled_qty(record: Record) -> Decimal | None:
    o, d = record.outcome, record.decision
    if o.status in ("rejected", "failed"):
        return Decimal(0)  # refused, canceled or expired: nothing filled
    if o.qty is not None:
        return o.qty
    return d.qty if d else None


def record(conn: Connection, records: dict[int, Record]) -> None:
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
                "qty": _filled_qty(r),
                "requested_qty": d.qty if d else None,
                "order_id": o.broker_order_id,
                "code": o.broker_code,
                "reason": o.reason,
                "commission": o.commission,
                "filled_at": o.filled_at,
                "verdicts": verdicts(d) if d else None,
                "decided_at": r.decided_at,
                "prior": r.prior,
            }
        )
    conn.run(RECORD_OUTCOMES, rows=json_records(rows))


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for outcome in outcomes:
        tally[outcome.status] = tally.get(outcome.status, 0) + 1
    return tally


def summary(
    mode: TradingMode,
    considered: int,
    final: dict[int, Outcome],
    decisions: Sequence[Decision],
    reconciled: dict[int, Outcome],
    refused: int = 0,
) -> dict[str, Any]:
    """A minute's dispatch summary: what was considered, decided, refused and reconciled."""
    rejections = [
        {"ticker": d.recommendation.ticker, "action": d.recommendation.action, "reason": d.rejected}
        for d in decisions
        if not d.approved and d.recommendation.id in final
    ]
    return {
        "mode": mode.value,
        "considered": considered,
        "outcomes": counts(final.values()),
        "blocked_by_risk_gates": len(rejections),
        "refused_by_broker": refused,
        "rejections": rejections,
        "reconciled": len(reconciled),
        "reconciled_outcomes": counts(reconciled.values()),
        # Accepted, then rejected by the broker (not canceled, not expired): a refusal too.
        "rejected_after_acceptance": sum(
            1 for o in reconciled.values() if o.status == "rejected" and o.reason == BROKER_REJECTED
        ),
    }


def add_summary(total: dict[str, Any], minute_summary: dict[str, Any]) -> None:
    """Add one minute's dispatch summary to a window's."""
    for key, value in minute_summary.items():
        if isinstance(value, bool) or key == "mode":
            total[key] = value
        elif isinstance(value, int):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, list):
            total.setdefault(key, []).extend(value)
        elif isinstance(value, dict):
            tally = total.setdefault(key, {})
            for name, n in value.items():
                tally[name] = tally.get(name, 0) + n


# A `pending` row is leased to the run that claimed it (or took it back) until its `updated_at`
# is LEASE old: no other run looks it up or decides it again meanwhile, so an overlapping run
# (a second execution beside the scheduled one) never refuses an order another run is about to
# send. LEASE is longer than any run (the dispatcher's Lambda timeout is 40 s, and no order is
# sent past the run's budget); a run that leaves a row pending for the retry hands the lease back
# (`release`), so the state machine's retry takes it at once. The lease names its run
# (`leased_by`, the Step Functions execution, the same across the retries of a stage): a retry
# takes its own run's rows at once even when the attempt before it lost its connection before it
# could hand them back. The attempt has ended by then: the dispatcher runs one invocation at a
# time (reserved concurrency 1), and a simulated window's lease is rolled back with its
# transaction.
LEASE = timedelta(minutes=2)

# Recommendations decided in (since, minute] without an execution, and every `pending` execution
# (never known to reach the broker), however old, whose lease is free: taken by this run, in
# decision order. A fresh recommendation is dispatched within BACKLOG of its decision (later,
# nothing would pass the expiry gate anyway); an old `pending` row is looked up and, not found,
# refused as expired.
BACKLOG = timedelta(days=1)
PENDING = """
WITH taken AS (
    UPDATE dispatch_executions SET updated_at = now(), leased_by = NULLIF(CAST(:run AS text), '')
    WHERE status = 'pending'
      AND (updated_at <= now() - CAST(:lease AS interval)
           OR leased_by = NULLIF(CAST(:run AS text), ''))
    RETURNING recommendation_id, client_order_id
)
(SELECT r.id, r.ticker, r.ts, r.decided_at, r.action, r.price, r.confidence,
        CAST(NULL AS text)
 FROM dispatch_recommendations r
 LEFT JOIN dispatch_executions e ON e.recommendation_id = r.id
 WHERE r.decided_at > :since AND r.decided_at <= :minute AND e.id IS NULL)
UNION ALL
(SELECT r.id, r.ticker, r.ts, r.decided_at, r.action, r.price, r.confidence, t.client_order_id
 FROM taken t
 JOIN dispatch_recommendations r ON r.id = t.recommendation_id)
ORDER BY 4, 3, 2
"""

RELEASE = """
UPDATE dispatch_executions SET updated_at = now() - CAST(:lease AS interval), leased_by = NULL
WHERE status = 'pending'
  AND recommendation_id IN (SELECT unnest(CAST(:ids AS bigint[])))
"""


def read_pending(
    conn: Connection, since: datetime, minute: datetime, run: str | None = None
) -> list[tuple[PendingRecommendation, str | None]]:
    """The recommendations to dispatch by `minute`, each with its `pending` row's client order id
    (None for a fresh one); the `pending` rows returned are leased to `run` (see LEASE)."""
    return [
        (PendingRecommendation(rid, t, ts, at, action, Decimal(p), Decimal(c)), coid)
        for rid, t, ts, at, action, p, c, coid in conn.run(
            PENDING, since=since, minute=minute, lease=_interval(LEASE), run=run
        )
    ]


def release(conn: Connection, rec_ids: Collection[int]) -> None:
    """Hand back the lease of these rows where they are still `pending` (left for the retry)."""
    if rec_ids:
        conn.run(RELEASE, ids=sorted(rec_ids), lease=_interval(LEASE))


def _interval(span: timedelta) -> str:
    return f"{span.total_seconds()} seconds"
