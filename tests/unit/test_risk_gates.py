from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ops_pipeline.config import RiskLimits, TradingState
from ops_pipeline.dispatch import client_order_id
from ops_pipeline.risk import PendingRecommendation, risk_gates

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


def decide(recs, *, state=TradingState.ACTIVE, market_open=True, positions=None, open_orders=()):
    return risk_gates(
        recs,
        minute=MINUTE,
        market_open=market_open,
        state=state,
        limits=LIMITS,
        positions=positions or {},
        open_orders=open_orders,
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


def test_client_order_id_is_derived_from_the_recommendation():
    r = rec()
    assert client_order_id(r) == client_order_id(rec()) == "ops-AAPL-201902121459-BUY"
    assert len(client_order_id(r)) <= 48
