"""The daily loss limit counts a position carried overnight: its move since the previous regular
close is part of the day's result, through alpaca-py's TradingClient on the local Alpaca server,
over two real sessions (2019-02-12 and 2019-02-13; Alpha Vantage bars via masonblier/eqker, ISC).
The simulated ledger's side is in test_simulated_fills.py."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from paths import bundled_day
from recommendations import recommend

from ops_pipeline import alpaca, telemetry
from ops_pipeline.config import AlpacaCredentials, RiskLimits, TradingMode, TradingState
from ops_pipeline.dispatch import AlpacaBroker, dispatch
from ops_pipeline.market import NEW_YORK
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import read_bars

CREDS = AlpacaCredentials("TESTKEY", "test-secret")
DAYS = (date(2019, 2, 12), date(2019, 2, 13))
KW = dict(market_open=True, state=TradingState.ACTIVE)


def _new_york(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK)


@pytest.fixture(scope="module")
def two_days() -> list:
    return [b for day in DAYS for b in read_bars(bundled_day(day)) if b.symbol in ("AAPL", "MSFT")]


@pytest.mark.parametrize("manual_trade", [False, True], ids=["ours only", "with a manual trade"])
def test_a_paper_position_carried_overnight_counts_in_the_next_days_result(
    conn, two_days, monkeypatch, manual_trade
):
    """Only this deployment's own fills make its carried position: a manual order on the same
    account (another stack's, or a person's) moves the account's positions, not the result that
    this deployment's daily loss limit is about."""
    telemetry.upsert_bars(
        conn,
        [telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in two_days],
    )
    bought = _new_york(DAYS[0], 15, 0)
    next_day = _new_york(DAYS[1], 10, 0)
    aapl = sorted((b for b in two_days if b.symbol == "AAPL"), key=lambda b: b.ts)
    with LocalAlpaca(
        two_days,
        CREDS.key_id,
        CREDS.secret_key,
        now=bought,
        fill_market_orders="on_submit",
        no_shorting=True,
    ) as server:
        monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
        broker = AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)
        recommend(conn, "AAPL", "BUY", bought, price="170")
        assert dispatch(conn, broker, minute=bought, limits=RiskLimits(), **KW)["outcomes"] == {
            "filled": 1
        }
        if manual_trade:  # bought by hand on the same account, not by this deployment
            client = alpaca.trading_client(CREDS, timeout=5)
            client.submit_order(
                MarketOrderRequest(
                    symbol="MSFT", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
                )
            )
            assert broker.account()[0]["MSFT"] == Decimal(10)
        server.set_time(next_day)
        recommend(conn, "MSFT", "BUY", next_day, price="105")
        dispatch(conn, broker, minute=next_day, limits=RiskLimits(), **KW)
    ((held,),) = conn.run("SELECT qty FROM dispatch_executions WHERE ticker = 'AAPL'")
    previous_close = [b for b in aapl if b.ts < _new_york(DAYS[1], 0, 0)][-1].close
    mark = [b for b in aapl if b.ts < next_day][-1].close
    assert mark != previous_close
    expected = Decimal(held) * (mark - previous_close)
    ((verdicts,),) = conn.run("SELECT gate_verdicts FROM dispatch_executions WHERE ticker = 'MSFT'")
    (daily_loss,) = [v for v in verdicts if v["gate"] == "daily_loss"]
    assert daily_loss["detail"] == f"day result {expected:.2f}, loss limit 2500"
