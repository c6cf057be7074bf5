"""Dispatcher: risk gates, then orders to a simulated broker or to Alpaca, each recommendation at
most once, minute by minute over a window.

Read it in this order:
- `window`: the one entry point, `dispatch_window` (and `dispatch`, one minute of it): what each
  minute does, and how two overlapping runs stay safe;
- `book`: the day book the gates decide against, defined once for every broker: the
  deployment's own positions, open orders, the day's orders and result;
- `orders`: order ids (`client_order_id`, the deployment's prefix) and outcomes: what an order's
  reply means, and how claims and outcomes are stored (a final status never moves);
- `broker`: the Broker protocol; `simulated` (in memory, fills at the next bar's open) and
  `alpaca_broker` (paper or live, through alpaca-py) implement it.

Every stage acts on the minutes in its input, never the wall clock; a broker outside the process
also has its own clock, which decides whether an order may still go out (`risk`'s decision_age
and market_open gates).

Each execution stores `gate_verdicts` (jsonb): the ordered list of every risk gate's verdict,
`[{"gate": "kill_switch" | "market_open" | "decision_age" | "expiry" | "confidence" |
"one_open_order" | "daily_loss" | "open_positions" | "trades_per_ticker" | "cooldown" | "size",
"passed": bool, "detail": text}, ...]`, every gate evaluated even after the first failure;
`reject_reason` is the first failed gate's detail (or the broker's refusal). `requested_qty` is
the quantity sent, `qty` the quantity filled (0 when nothing did; so far, on an order still
open); `commission` and `filled_at`
(event time) once filled.
"""

from ops_pipeline.dispatch.alpaca_broker import AlpacaBroker, RateLimited
from ops_pipeline.dispatch.book import OwnOrder, day_book, new_york_day_start, read_day_book
from ops_pipeline.dispatch.broker import Broker, RemoteBroker
from ops_pipeline.dispatch.orders import (
    Outcome,
    add_summary,
    client_order_id,
    order_outcome,
    order_prefix,
)
from ops_pipeline.dispatch.simulated import SimulatedBroker, SimulatedLedger, simulated_fill_price
from ops_pipeline.dispatch.window import (
    DispatchMinute,
    dispatch,
    dispatch_window,
    window_lock_key,
)

__all__ = [
    "AlpacaBroker",
    "Broker",
    "DispatchMinute",
    "Outcome",
    "OwnOrder",
    "RateLimited",
    "RemoteBroker",
    "SimulatedBroker",
    "SimulatedLedger",
    "add_summary",
    "client_order_id",
    "day_book",
    "dispatch",
    "dispatch_window",
    "new_york_day_start",
    "order_outcome",
    "order_prefix",
    "read_day_book",
    "simulated_fill_price",
    "window_lock_key",
]
