"""Where orders go: the Broker protocol, which the simulated broker and Alpaca both implement.

A broker says what time it is and whether its market is open (`clock`; None: no broker, event
time), what the account holds and which of its tickers have an open order (`account`), takes an
order (`execute`, keyed by its `client_order_id`) and finds one (`lookup`). A broker outside the
process (`RemoteBroker`: Alpaca paper or live) also reports what became of the orders it was
sent (`reconcile`); the simulated broker's orders fill in its ledger, in memory.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ops_pipeline.config import TradingMode
from ops_pipeline.db import Connection
from ops_pipeline.dispatch.orders import Outcome
from ops_pipeline.risk import BrokerClock, Decision


class Broker(Protocol):
    mode: TradingMode

    def clock(self) -> BrokerClock | None:
        """The broker's time and whether its market is open, as the minute's orders go out."""
        ...

    def account(self) -> tuple[dict[str, Decimal], set[str]]:
        """The account's holdings per ticker (whoever bought them), and its tickers with an
        open order."""
        ...

    def execute(self, decision: Decision, coid: str) -> Outcome: ...

    def lookup(self, coid: str) -> Outcome | None:
        """The order placed with this `client_order_id`, or None if the broker has none."""
        ...


class RemoteBroker(Broker, Protocol):
    def long_only(self) -> bool:
        """Does the account refuse to sell short (Alpaca's `no_shorting`)? Orders go out only
        then."""
        ...

    def send_within(self, age_left: float, close_left: float | None) -> None:
        """The minute's orders go out while the decisions' age allows (`age_left` seconds) and
        with a margin before the close (`close_left` seconds away), by the broker's clock,
        checked before every order sent; later, an order is not sent."""
        ...

    def reconcile(self, conn: Connection, prefix: str, minute: datetime) -> dict[int, Outcome]:
        """Final outcomes of this deployment's `submitted` orders, however old, by recommendation
        id; raises `TransientError` when the broker cannot say (a failed stage, retried)."""
        ...
