"""Alpaca paper or live, through alpaca-py's TradingClient: market DAY orders keyed by their
`client_order_id`.

Replies to an order:
- accepted: `submitted` (or `filled` when Alpaca fills at once);
- refused (any other APIError): `rejected`, with the broker's code in `broker_code` and its message
  in `reject_reason`; the rest of the batch goes on and the next run is not blocked;
- "client_order_id must be unique" (a duplicate, whatever the code), or a lost reply (connection
  error, timeout, 5xx: the order may have been accepted): the order is looked up by its
  `client_order_id`; found, it is recorded; not found, it is sent again once; if that also fails
  the row stays `pending` and the run raises `TransientError` for the state machine's retry;
- 429 (rate limited: refused before it was read): the same order is sent again at the window's
  reset (`X-RateLimit-Reset`) while the run's budget allows, else it stays `pending`
  (`RateLimited`) for the retry. Never looked up: it did not arrive.

Reconciliation asks for every order since the oldest of ours still open, 500 a page (pages
overlap by a second, repeats dropped), oldest first: `filled` at `filled_avg_price` with `qty` = the filled quantity (also after a
partial fill that was then canceled or expired: the reason notes the partial), `rejected` for an
order canceled, expired or rejected with nothing filled. A failure fails the run.
"""

from __future__ import annotations

import json
import time as monotonic_time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from ops_pipeline import alpaca
from ops_pipeline.config import TradingMode
from ops_pipeline.db import Connection
from ops_pipeline.dispatch.orders import (
    BROKER_REFUSED,
    Outcome,
    _order_time,
    order_outcome,
    prefix_pattern,
)
from ops_pipeline.errors import TransientError
from ops_pipeline.observability import logger
from ops_pipeline.risk import BrokerClock, Decision

CLOCK_SKEW = timedelta(minutes=1)
PAGE_OVERLAP = timedelta(seconds=1)
MAX_ORDERS_PER_PAGE = 500
DUPLICATE_MESSAGE = "client_order_id must be unique"
RATE_LIMITED = 429
# No order is sent later than this many seconds, plus the HTTP timeout, before the close by the
# broker's clock: a POST that left at 15:59:5x may reach Alpaca after 16:00, when a DAY market
# order waits for the next open.
CLOSE_MARGIN_SECONDS = 2.0
SEND_BUDGET = 60.0  # seconds a broker may spend waiting out rate limits (the dispatcher's
# handler sets the invocation's remaining time less a margin)

# Every order of ours the broker may still fill, however old (an order open at Friday's last
# run is reconciled on Monday, or after a holiday).
SUBMITTED = """
SELECT recommendation_id, client_order_id, decided_at
FROM dispatch_executions
WHERE status = 'submitted' AND mode = :mode AND client_order_id LIKE :pattern
"""


class RateLimited(TransientError):
    """The broker refused an order unread (429) and its window resets past the run's budget."""


class TooLate(Exception):
    """The order was not sent: the decision's age or the close came first (see `send_within`)."""


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


class AlpacaBroker:
    """Market orders through alpaca-py's TradingClient, keyed by `client_order_id`."""

    def __init__(self, client: Any, mode: TradingMode, budget_seconds: float = SEND_BUDGET) -> None:
        self.client = client
        self.mode = mode
        self.deadline = monotonic_time.monotonic() + budget_seconds
        self.send_deadline = self.deadline
        self.send_limit = "the run's budget"
        self._clock_asked = monotonic_time.monotonic()

    def account(self) -> tuple[dict[str, Decimal], set[str]]:
        """Each position's `qty_available` (what Alpaca lets a sell take: not the shares held for
        open orders), and the tickers of every open order, all pages of them."""
        from alpaca.trading.enums import QueryOrderStatus

        held = alpaca.call("positions", self.client.get_all_positions)
        return (
            {p["symbol"]: Decimal(str(p.get("qty_available", p["qty"]))) for p in held},
            {o["symbol"] for o in self._orders(QueryOrderStatus.OPEN, None, "open orders")},
        )

    def _orders(self, status: Any, after: datetime | None, what: str) -> Iterator[dict[str, Any]]:
        """Every order in `status` submitted after `after`, oldest first, `MAX_ORDERS_PER_PAGE`
        a page (Alpaca's default is 50). Each page starts `PAGE_OVERLAP` before the last one's
        newest order, so orders sharing its `submitted_at` are not skipped; repeats are dropped
        by id."""
        from alpaca.common.enums import Sort
        from alpaca.trading.requests import GetOrdersRequest

        seen: set[str] = set()
        while True:
            request = GetOrdersRequest(
                status=status, after=after, limit=MAX_ORDERS_PER_PAGE, direction=Sort.ASC
            )
            page = alpaca.call(what, partial(self.client.get_orders, request))
            new = [o for o in page if str(o.get("id")) not in seen]
            seen.update(str(o.get("id")) for o in new)
            yield from new
            if len(page) < MAX_ORDERS_PER_PAGE:
                return
            last = _order_time(page[-1].get("submitted_at"))
            if last is None or not new:
                raise TransientError(
                    f"Alpaca {what}: cannot page past {len(page)} orders submitted at {last}"
                )
            after = last - PAGE_OVERLAP

    def long_only(self) -> bool:
        """Is the account in Alpaca's long-only mode (`no_shorting` in its configuration)? Else
        a SELL sized from a position read before it is sent opens a short when that position
        is gone meanwhile (sold by hand, another stack's \"close all\")."""
        config = alpaca.call("account configuration", self.client.get_account_configurations)
        return bool(config.get("no_shorting"))

    def clock(self) -> BrokerClock:
        self._clock_asked = monotonic_time.monotonic()  # the clock said at least this late
        raw = alpaca.call("clock", self.client.get_clock)
        now = _order_time(raw["timestamp"])
        if now is None:
            raise TransientError(f"Alpaca clock without a time: {raw!r}"[:300])
        return BrokerClock(now, bool(raw["is_open"]), _order_time(raw.get("next_close")))

    def send_within(self, age_left: float, close_left: float | None) -> None:
        """The minute's orders go out within `age_left` seconds of the broker's clock (what is
        left of the decisions' age) and `CLOSE_MARGIN_SECONDS` plus the HTTP timeout before the
        close (`close_left` seconds away), or not at all: checked before every POST, the first,
        a resend after a lost reply, and one after a 429's reset."""
        margin = CLOSE_MARGIN_SECONDS + alpaca.http_timeout()
        self.send_limit = "the decision's age limit"
        seconds = age_left
        if close_left is not None and close_left - margin < seconds:
            seconds = close_left - margin
            self.send_limit = f"{margin:g} s before the close"
        self.send_deadline = self._clock_asked + max(seconds, 0.0)

    def lookup(self, coid: str) -> Outcome | None:
        from alpaca.common.exceptions import APIError

        try:
            order = alpaca.call("order lookup", lambda: self.client.get_order_by_client_id(coid))
        except APIError as exc:
            if getattr(exc, "status_code", None) == 404:
                return None
            raise TransientError(f"Alpaca order lookup failed: {exc}") from exc
        for _ in range(100):  # replaced: the order it ended in
            if order.get("status") != "replaced" or not order.get("replaced_by"):
                break
            order = alpaca.call(
                "order lookup",
                partial(self.client.get_order_by_id, str(order["replaced_by"])),
            )
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
            if monotonic_time.monotonic() >= self.send_deadline:
                raise TooLate(f"not sent: past {self.send_limit} by the broker's clock")
            try:
                return alpaca.call("order", lambda: self.client.submit_order(request), attempts=1)
            except TransientError as exc:
                cause = exc.__cause__
                if not isinstance(cause, APIError) or cause.status_code != RATE_LIMITED:
                    raise
                wait = alpaca.rate_limit_wait(cause)
                if monotonic_time.monotonic() + wait > min(self.deadline, self.send_deadline):
                    raise RateLimited(
                        f"order {coid} rate limited; the reset is past the run's budget"
                        " or the decision's age"
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
            except TooLate as exc:
                if attempt == 1:  # never sent: refused as the gates refuse a stale decision
                    logger.warning(str(exc), extra={"client_order_id": coid})
                    return Outcome("rejected", reason=str(exc))
                # The first POST's reply was lost and the order was not found: the row stays
                # pending; the next run looks it up again and, not found, decides it again.
                raise TransientError(f"order {coid} {exc}") from exc
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

    def reconcile(self, conn: Connection, prefix: str, minute: datetime) -> dict[int, Outcome]:
        rows = conn.run(SUBMITTED, mode=self.mode.value, pattern=prefix_pattern(prefix))
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
        """Every order since `since`, a page at a time until every one asked for (and every
        order that replaced one of them) is seen; the finished ones among those asked for. An
        order Alpaca `replaced` ends in its replacement (`replaced_by`, followed)."""
        from alpaca.trading.enums import QueryOrderStatus

        wanted = set(client_order_ids)
        mine: dict[str, dict[str, Any]] = {}  # by client order id
        by_id: dict[str, dict[str, Any]] = {}
        for order in self._orders(QueryOrderStatus.ALL, since - CLOCK_SKEW, "order reconciliation"):
            by_id[str(order.get("id"))] = order
            if order.get("client_order_id") in wanted:
                mine[str(order["client_order_id"])] = order
            if len(mine) == len(wanted) and all(
                _replacement(o, by_id) is not None for o in mine.values()
            ):
                break
        outcomes: dict[str, Outcome] = {}
        for coid, order in mine.items():
            final = _replacement(order, by_id)
            outcome = order_outcome(final) if final is not None else None
            # An open order is recorded too once part of it has filled (its shares are ours).
            if outcome is not None and (outcome.status != "submitted" or outcome.qty):
                outcomes[coid] = outcome
        return outcomes


def _replacement(order: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The order this one ended in: itself, or the last of the orders that replaced it; None
    while a replacement is not seen yet."""
    for _ in range(100):  # a chain of replacements, never a cycle
        if order.get("status") != "replaced" or not order.get("replaced_by"):
            return order
        next_order = by_id.get(str(order["replaced_by"]))
        if next_order is None:
            return None
        order = next_order
    return None
