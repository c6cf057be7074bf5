"""The dispatcher's summary counts what the OrdersRejected alarm reads: refusals at submission
(`refused_by_broker`) and orders the broker accepted, then rejected (`rejected_after_acceptance`),
which a later run finds when it reconciles them. Canceled and expired orders are not refusals."""

from __future__ import annotations

from ops_pipeline.config import TradingMode
from ops_pipeline.dispatch.orders import add_summary, order_outcome, summary


def _reconciled(status: str):
    return order_outcome({"id": f"order-{status}", "status": status, "filled_qty": "0", "qty": "5"})


def test_an_order_rejected_after_acceptance_counts_as_a_broker_refusal():
    reconciled = {1: _reconciled("rejected"), 2: _reconciled("expired"), 3: _reconciled("canceled")}
    minute = summary(TradingMode.PAPER, 0, {}, [], reconciled, refused=1)
    assert minute["reconciled_outcomes"] == {"rejected": 3}
    assert minute["rejected_after_acceptance"] == 1
    assert minute["refused_by_broker"] == 1

    window: dict = {}
    add_summary(window, minute)
    add_summary(window, summary(TradingMode.PAPER, 0, {}, [], {4: _reconciled("rejected")}))
    assert window["rejected_after_acceptance"] == 2 and window["refused_by_broker"] == 1
