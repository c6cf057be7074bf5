"""A window of minutes dispatched in order, as runs of their own would have: the dispatcher's one
entry point (`dispatch_window`; `dispatch` is one minute of it).

Each minute, through a broker outside the process (paper, live):
1. reconcile: every order of ours the broker may still fill, however old, with one paged query
   (a failure fails the run: the gates never decide against orders whose fate is unknown);
2. read the recommendations to dispatch: fresh ones, and `pending` rows (never known to reach
   the broker) whose lease is free (`orders.LEASE`: a row another run has claimed and may be
   sending is left alone), each looked up by its `client_order_id` first (found: recorded; not
   found: decided again beside the fresh ones);
3. the day book (`book.day_book`: the deployment's own positions, never more than the account
   holds, its open BUYs, the day's orders and result) and the broker's clock;
4. the risk gates, and the account's configuration: nothing is sent unless the account is
   long-only (`no_shorting`: a SELL must never open a short); every fresh decision is claimed
   (written) before its order is sent;
5. the approved orders are sent; every outcome of the minute is written in one statement, in a
   `finally`: no order is sent without its outcome stored.
Two runs of the same minute (a redrive beside the scheduled run) may overlap: the claim makes
each fresh decision one run's, and leases it to that run until its order is sent or the lease
runs out (a run that may still send never has its row refused by another); the
`client_order_id` makes a resend a duplicate that is read back, and an outcome only moves a row
from the status its run saw (`orders.record`).

In simulation the window is dispatched in memory (`simulated.SimulatedLedger`) in one
transaction under the deployment's advisory lock, so overlapping runs take turns (the one that
waits is retried by the state machine) and a window is written whole or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ops_pipeline.config import RiskLimits, TradingState
from ops_pipeline.db import Connection
from ops_pipeline.dispatch.book import read_day_book
from ops_pipeline.dispatch.broker import RemoteBroker
from ops_pipeline.dispatch.orders import (
    BACKLOG,
    BROKER_REFUSED,
    Outcome,
    Record,
    add_summary,
    claim,
    client_order_id,
    deployment_prefix,
    read_pending,
    record,
    release,
    summary,
)
from ops_pipeline.dispatch.simulated import SimulatedBroker, SimulatedLedger
from ops_pipeline.errors import TransientError
from ops_pipeline.observability import logger
from ops_pipeline.risk import Book, Decision, GateVerdict, PendingRecommendation, risk_gates


@dataclass(frozen=True)
class DispatchMinute:
    """A minute to dispatch at: would a market order sent then trade in the regular session, and
    that day's close (after which a simulated order without a bar to fill at is rejected)."""

    minute: datetime
    market_open: bool
    session_close: datetime | None = None


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
    broker: RemoteBroker | SimulatedBroker,
    minutes: Sequence[DispatchMinute],
    *,
    state: TradingState,
    limits: RiskLimits,
    deployment: str = "local",
    run: str | None = None,
) -> dict[str, Any]:
    """Dispatch each minute of a window in order, as runs of their own would have: in
    simulation in memory (`SimulatedLedger`), through a broker one minute at a time. `run` names
    the run (the Step Functions execution) that the `pending` rows it takes are leased to
    (`orders.LEASE`)."""
    total: dict[str, Any] = {"mode": broker.mode.value, "minutes": len(minutes)}
    if not minutes:
        return total
    prefix = deployment_prefix(conn, deployment)
    if isinstance(broker, SimulatedBroker):
        with _one_run_at_a_time(conn, prefix):
            ledger = SimulatedLedger(conn, broker, prefix, minutes[0].minute, minutes[-1].minute)
            for at in minutes:
                add_summary(total, ledger.dispatch(at, state, limits))
            ledger.write(conn)
        return total
    for at in minutes:
        add_summary(total, _broker_minute(conn, broker, at, state, limits, prefix, run))
    return total


def dispatch(
    conn: Connection,
    broker: RemoteBroker | SimulatedBroker,
    *,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    deployment: str = "local",
    session_close: datetime | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """One minute: reconcile this deployment's open orders, then decide and execute every
    recommendation not yet dispatched (and every `pending` one that never reached the broker),
    each at most once.

    `market_open`: would a market DAY order sent at `minute` trade in the regular session
    (`ops_pipeline.market.accepting_orders`); `session_close`: today's close, after which a
    simulated order without a bar to fill at is rejected.
    """
    total = dispatch_window(
        conn,
        broker,
        [DispatchMinute(minute, market_open, session_close)],
        state=state,
        limits=limits,
        deployment=deployment,
        run=run,
    )
    total.pop("minutes")
    return total


def _book(
    conn: Connection, broker: RemoteBroker, minute: datetime, prefix: str, retried: Collection[int]
) -> Book:
    """The day book of the deployment's own orders, its positions never more than the account
    holds (what a manual sale left), and the account's open orders beside its own."""
    own = read_day_book(conn, broker.mode, prefix, minute, retried=retried)
    account, open_orders = broker.account()
    positions = {t: min(q, account.get(t, Decimal(0))) for t, q in own.positions.items()}
    own.positions = {t: q for t, q in positions.items() if q > 0}
    own.open_orders |= open_orders
    return own


NOT_LONG_ONLY = (
    "the account may sell short: set it long-only (Alpaca account configuration no_shorting)"
)


def _not_long_only(d: Decision) -> Decision:
    """An approved decision refused: the account may sell short, so a SELL sized from a position
    read before it is sent could open a short (docs/deploy.md: set the account long-only)."""
    logger.error(NOT_LONG_ONLY, extra={"ticker": d.recommendation.ticker})
    verdict = GateVerdict("long_only", False, NOT_LONG_ONLY)
    return replace(d, qty=Decimal(0), rejected=NOT_LONG_ONLY, verdicts=(*d.verdicts, verdict))


def _broker_minute(
    conn: Connection,
    broker: RemoteBroker,
    at: DispatchMinute,
    state: TradingState,
    limits: RiskLimits,
    prefix: str,
    run: str | None,
) -> dict[str, Any]:
    minute, market_open = at.minute, at.market_open
    reconciled = broker.reconcile(conn, prefix, minute)
    record(conn, {i: Record(o, prior="submitted") for i, o in reconciled.items()})

    rows = read_pending(conn, minute - BACKLOG, minute, run)
    fresh = [rec for rec, coid in rows if coid is None]
    retried: list[tuple[PendingRecommendation, str]] = [
        (rec, coid) for rec, coid in rows if coid is not None
    ]

    records: dict[int, Record] = {}
    to_send: list[Decision] = []
    try:
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
                records[rec.id] = Record(found)

        candidates = fresh + unsent
        book = _book(conn, broker, minute, prefix, {r.id for r in unsent}) if candidates else Book()
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
        if any(d.approved for d in decisions) and not broker.long_only():
            decisions = [_not_long_only(d) if d.approved else d for d in decisions]
        if clock is not None:
            broker.send_within(
                limits.max_decision_age_seconds - (clock.now - minute).total_seconds(),
                None
                if clock.next_close is None
                else (clock.next_close - clock.now).total_seconds(),
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
        owned = claim(conn, claims, planned, broker.mode, [minute] * len(claims), prefix, run)
        for d in decisions:
            rid = d.recommendation.id
            if rid in unsent_ids and not d.approved:
                records[rid] = Record(planned[rid], d, minute)

        to_send = [
            d
            for d in decisions
            if d.approved and (d.recommendation.id in owned or d.recommendation.id in unsent_ids)
        ]
        for d in to_send:
            rid = d.recommendation.id
            coid = client_order_id(d.recommendation, prefix)
            decided = minute if rid in unsent_ids else None  # a retry is decided again now
            try:
                outcome = broker.execute(d, coid)
            except TransientError as exc:
                transient.append(str(exc))
                if rid in unsent_ids:  # re-gated now: keep the fresh verdicts and size
                    records[rid] = Record(Outcome("pending"), d, minute)
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
            records[rid] = Record(outcome, d, decided)
    finally:  # every outcome stored; rows left `pending` hand their lease back (orders.LEASE)
        record(conn, records)
        leased = {r.id for r, _ in retried} | {d.recommendation.id for d in to_send}
        release(conn, leased - {i for i, r in records.items() if r.outcome.status != "pending"})

    final = {**{i: planned[i] for i in owned}, **{i: r.outcome for i, r in records.items()}}
    if transient:
        raise TransientError(
            f"{len(transient)} order(s) left pending for the retry: {transient[0]}"
        )
    refused = sum(
        1 for r in records.values() if (r.outcome.reason or "").startswith(BROKER_REFUSED)
    )
    return summary(broker.mode, len(rows), final, decisions, reconciled, refused)
