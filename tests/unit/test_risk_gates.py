from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ops_pipeline.config import RiskLimits, SimulationCosts, TradingState
from ops_pipeline.dispatch import (
    client_order_id,
    order_outcome,
    order_prefix,
    simulated_fill_price,
)
from ops_pipeline.errors import ConfigError
from ops_pipeline.risk import Book, BrokerClock, PendingRecommendation, day_result, risk_gates

D = Decimal
MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
LIMITS = RiskLimits(
    min_confidence=D("0.5"),
    max_notional_per_order=D("10000"),
    max_position_notional=D("25000"),
    recommendation_ttl_minutes=5,
)


def rec(id_=1, ticker="AAPL", action="BUY", price="170", confidence="0.6", age=0):
    decided = MINUTE - timedelta(minutes=age)
    return PendingRecommendation(
        id_, ticker, decided - timedelta(minutes=1), decided, action, D(price), D(confidence)
    )


def decide(
    recs,
    *,
    state=TradingState.ACTIVE,
    market_open=True,
    positions=None,
    open_orders=(),
    limits=LIMITS,
    book=None,
):
    return risk_gates(
        recs,
        minute=MINUTE,
        market_open=market_open,
        state=state,
        limits=limits,
        positions=positions or {},
        open_orders=open_orders,
        book=book,
    )


def test_a_fresh_confident_buy_is_sized_by_max_notional_in_whole_shares():
    (d,) = decide([rec()])
    assert d.approved and d.qty == D(58)  # floor(10000 / 170)


def test_each_gate_names_its_rejection():
    assert "halted" in decide([rec()], state=TradingState.HALTED)[0].rejected
    assert "only sells" in decide([rec()], state=TradingState.REDUCING)[0].rejected
    assert "closed" in decide([rec()], market_open=False)[0].rejected
    assert "expired" in decide([rec(age=6)])[0].rejected
    assert "below the minimum" in decide([rec(confidence="0.18")])[0].rejected
    assert "already open" in decide([rec()], open_orders={"AAPL"})[0].rejected
    assert "no AAPL position" in decide([rec(action="SELL")])[0].rejected
    assert "position limit" in decide([rec()], positions={"AAPL": D(147)})[0].rejected


def test_the_boundaries_pass():
    assert decide([rec(age=5, confidence="0.5")])[0].approved


def test_reducing_lets_sells_through_and_a_sell_closes_the_position():
    (d,) = decide([rec(action="SELL")], state=TradingState.REDUCING, positions={"AAPL": D(30)})
    assert d.approved and d.qty == D(30) and d.side == "sell"


def test_one_order_per_ticker_per_run_and_position_room_shrinks():
    first, second = decide([rec(1), rec(2, age=0)])
    assert first.approved and not second.approved
    (d,) = decide([rec()], positions={"AAPL": D(100)})
    assert d.qty == D(47)  # (25000 - 17000) / 170


def test_client_order_id_is_derived_from_the_recommendation_and_the_deployment():
    r = rec()
    prefix = order_prefix("ops-pipeline-prod", "a1b2c3")
    assert client_order_id(r, prefix) == client_order_id(rec(), prefix)
    assert client_order_id(r, prefix) == f"{prefix}-AAPL-201902121459-BUY"
    assert prefix.startswith("ops") and len(prefix) == 9
    # another stack, or a rebuilt database (a new salt), never shares an id
    assert order_prefix("ops-pipeline-dev", "a1b2c3") != prefix
    assert order_prefix("ops-pipeline-prod", "d4e5f6") != prefix
    longest = rec(ticker="BRK.B", action="SELL")
    assert len(client_order_id(longest, prefix)) <= 48


GATES = [
    "kill_switch",
    "market_open",
    "decision_age",
    "expiry",
    "confidence",
    "one_open_order",
    "daily_loss",
    "open_positions",
    "trades_per_ticker",
    "cooldown",
    "size",
]


def test_every_gate_is_evaluated_and_the_first_failure_names_the_rejection():
    (d,) = decide([rec(confidence="0.1", age=9)], market_open=False)
    assert [v.gate for v in d.verdicts] == GATES
    failed = [v.gate for v in d.verdicts if not v.passed]
    assert failed == ["market_open", "expiry", "confidence"]
    assert d.rejected == "market is closed" and d.qty == 0
    (ok,) = decide([rec()])
    assert all(v.passed for v in ok.verdicts) and ok.verdicts[-1].detail == "BUY 58 AAPL"


def test_expiry_is_measured_from_the_bars_close_not_the_decision():
    late = PendingRecommendation(
        1, "AAPL", MINUTE - timedelta(minutes=7), MINUTE, "BUY", D("170"), D("0.6")
    )  # a late bar evaluated now: decided this minute, but its bar closed 6 minutes ago
    (d,) = decide([late])
    assert d.rejected == "expired: bar closed 6 min ago, limit 5 min"


def test_daily_loss_lets_only_position_reducing_orders_through():
    book = Book(positions={"AAPL": D(10)}, day_result=D("-2500"))
    limits = RiskLimits(max_daily_loss=D("2500"))
    buy, sell = decide([rec(1), rec(2, action="SELL")], limits=limits, book=book)
    assert "daily loss 2500.00 reached the limit 2500" in buy.rejected
    assert sell.approved and sell.qty == D(10)
    (ok,) = decide([rec()], limits=limits, book=Book(day_result=D("-2499.99")))
    assert ok.approved


def test_open_positions_limit_blocks_a_new_ticker_but_not_adding_to_one_held():
    limits = RiskLimits(max_open_positions=2)
    book = Book(positions={"MSFT": D(5), "TSLA": D(3), "SPY": D(0)})
    new, held = decide([rec(1, "AAPL"), rec(2, "MSFT")], limits=limits, book=book)
    assert new.rejected == "2 open positions: the limit is 2"
    assert held.approved
    # approved buys in the same run count
    a, b = decide([rec(1, "AAPL"), rec(2, "AMZN")], limits=RiskLimits(max_open_positions=1))
    assert a.approved and b.rejected == "1 open positions: the limit is 1"


def test_trades_per_ticker_per_day_and_the_cooldown_after_a_fill():
    limits = RiskLimits(max_trades_per_ticker_per_day=3, cooldown_minutes_after_fill=5)
    (d,) = decide([rec()], limits=limits, book=Book(trades_today={"AAPL": 3}))
    assert d.rejected == "3 AAPL orders today: the limit is 3"
    (d,) = decide([rec()], limits=limits, book=Book(trades_today={"AAPL": 2}))
    assert d.approved
    recent = Book(last_fill={"AAPL": MINUTE - timedelta(minutes=4)})
    (d,) = decide([rec()], limits=limits, book=recent)
    assert d.rejected == "cooldown: AAPL filled 4 min ago, wait 5 min"
    (d,) = decide(
        [rec()], limits=limits, book=Book(last_fill={"AAPL": MINUTE - timedelta(minutes=5)})
    )
    assert d.approved
    # a sell that closes the position is never trapped by either
    held = Book(positions={"AAPL": D(4)}, trades_today={"AAPL": 9}, last_fill=recent.last_fill)
    (d,) = decide([rec(action="SELL")], limits=limits, book=held)
    assert d.approved


def test_risk_limits_from_the_parameter():
    limits = RiskLimits.from_mapping({"max_daily_loss": 100, "max_open_positions": 3})
    assert limits.max_daily_loss == D(100) and limits.max_open_positions == 3
    assert limits.cooldown_minutes_after_fill == RiskLimits().cooldown_minutes_after_fill
    for bad in (
        {"max_daily_loss": 0},
        {"max_open_positions": 0},
        {"max_open_positions": 1.5},
        {"cooldown_minutes_after_fill": -1},
        {"max_trades": 3},
    ):
        with pytest.raises(ConfigError):
            RiskLimits.from_mapping(bad)


def test_simulated_fill_price_moves_against_the_order():
    costs = SimulationCosts(slippage_bps=D("5"))
    assert simulated_fill_price("buy", D("100"), costs) == D("100.05")
    assert simulated_fill_price("sell", D("100"), costs) == D("99.95")
    assert SimulationCosts.from_mapping({}) == SimulationCosts(D("5"), D("0"))
    with pytest.raises(ConfigError):
        SimulationCosts.from_mapping({"slippage_bps": "NaN"})


def test_a_partial_fill_then_cancel_is_filled_with_the_filled_quantity():
    partial = {
        "id": "o1",
        "status": "canceled",
        "qty": "10",
        "filled_qty": "4",
        "filled_avg_price": "101.5",
    }
    outcome = order_outcome(partial)
    assert (outcome.status, outcome.qty, outcome.price) == ("filled", D(4), D("101.5"))
    assert outcome.reason == "partial fill: 4 of 10, then canceled"
    nothing = order_outcome({"id": "o2", "status": "expired", "qty": "10", "filled_qty": "0"})
    assert nothing.status == "rejected" and nothing.reason == "broker: expired"
    assert order_outcome({"id": "o3", "status": "partially_filled"}).status == "submitted"


@pytest.mark.parametrize(
    ("at_open", "fills_result", "expected"),
    [
        (D(10), D(0), D(-100)),  # 10 carried from a 100 close, marked at 90 (kept or sold at 90)
        (D(10), D(-20), D(-120)),  # carried, and sold lower than the mark: the fill adds its part
        (D(0), D(-100), D(-100)),  # opened today at 100: its fills carry it
        (D(-10), D(0), D(100)),  # a short carried from 100, marked at 90
    ],
)
def test_the_days_result_counts_the_positions_held_at_the_open(at_open, fills_result, expected):
    marks, previous = {"AAPL": D(90)}, {"AAPL": D(100)}
    assert day_result({"AAPL": at_open}, fills_result, marks, previous) == expected
    assert day_result({"AAPL": at_open}, fills_result, {}, previous) == fills_result  # no mark


def test_a_decision_a_fraction_of_a_second_past_its_age_limit_is_stale():
    def at(seconds):
        (d,) = risk_gates(
            [rec()],
            minute=MINUTE,
            market_open=True,
            state=TradingState.ACTIVE,
            limits=LIMITS,
            book=Book(),
            clock=BrokerClock(MINUTE + timedelta(seconds=seconds), True, None),
        )
        return d.rejected

    assert at(60) is None
    assert at(60.9) == (
        "stale: decided for 2019-02-12 15:00:00 UTC, the broker's clock is"
        " 2019-02-12 15:01:00 UTC, 60.9 s later (limit 60 s)"
    )
