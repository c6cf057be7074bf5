"""The money path at the edges of time and ownership (issue 15), through alpaca-py's
TradingClient on the local Alpaca server and PostgreSQL: shares the deployment did not buy, a run
that reaches the broker late, an order still open at Friday's last run, two runs of one minute at
the same time, a retried BUY, open BUY orders, refused and canceled quantities, and a 429 on
submit. Faults are injected where the real world puts them: the account's holdings, the broker's
clock, an order the broker leaves unfilled, a proxy between the client and the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, ReplaceOrderRequest
from fault_proxy import FaultProxy
from paths import bundled_day
from recommendations import recommend

from ops_pipeline import alpaca, telemetry
from ops_pipeline.config import AlpacaCredentials, RiskLimits, TradingMode, TradingState
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.dispatch import AlpacaBroker, dispatch
from ops_pipeline.dispatch.book import read_day_book
from ops_pipeline.dispatch.orders import client_order_id, deployment_prefix
from ops_pipeline.errors import TransientError
from ops_pipeline.holdings import held_tickers
from ops_pipeline.market import NEW_YORK
from ops_pipeline.risk import PendingRecommendation
from ops_pipeline_local.alpaca_server import DEFAULT_PARTICIPATION, LocalAlpaca
from ops_pipeline_local.bars import read_bars
from ops_pipeline_local.faults import FaultPlan

D = Decimal
CREDS = AlpacaCredentials("TESTKEY", "test-secret")
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MINUTE = OPEN + timedelta(minutes=60)
LAST_MINUTE = datetime(2019, 2, 12, 20, 59, tzinfo=UTC)  # 15:59 New York, the session's last
ORDERS = "/v2/orders"
LOOKUP = "/v2/orders:by_client_order_id"
ACTIVE = dict(market_open=True, state=TradingState.ACTIVE)


@contextmanager
def paper(
    bars: list,
    monkeypatch: pytest.MonkeyPatch,
    *,
    now: datetime = MINUTE,
    fill: str = "on_submit",
    faults: FaultPlan | None = None,
    holdings: dict[str, Decimal] | None = None,
    long_only: bool = True,
    participation: Decimal = DEFAULT_PARTICIPATION,
) -> Iterator[tuple[LocalAlpaca, FaultProxy, AlpacaBroker]]:
    with LocalAlpaca(
        bars,
        CREDS.key_id,
        CREDS.secret_key,
        now=now,
        fill_market_orders=fill,
        faults=faults,
        holdings=holdings,
        no_shorting=long_only,  # as docs/deploy.md asks of the operator
        participation=participation,
    ) as server:
        proxy = FaultProxy(server.base_url)
        monkeypatch.setenv("ALPACA_TRADING_URL", proxy.base_url)
        try:
            yield (
                server,
                proxy,
                AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER),
            )
        finally:
            proxy.close()


def rows(conn) -> list[list]:
    return conn.run(
        "SELECT ticker, side, status, qty, requested_qty, reject_reason FROM dispatch_executions"
        " ORDER BY recommendation_id"
    )


def posts(server: LocalAlpaca) -> list:
    return [r for r in server.requests if r[0] == "POST" and r[1] == ORDERS]


def leave_pending(conn, broker: AlpacaBroker, proxy: FaultProxy, minute: datetime) -> None:
    """A run whose order never reached the broker and whose lookups all failed: `pending`."""
    proxy.fault("POST", ORDERS, "drop_request")
    proxy.fault("GET", LOOKUP, "drop_request", times=alpaca.ATTEMPTS)
    with pytest.raises(TransientError, match="left pending"):
        dispatch(conn, broker, minute=minute, limits=RiskLimits(), **ACTIVE)
    assert [r[2] for r in rows(conn)] == ["pending"]


# -- 1. shares the deployment did not buy ----------------------------------------------------


def test_a_sell_sells_only_what_the_deployments_own_fills_bought(conn, bundled_bars, monkeypatch):
    held = {"AAPL": D(100), "MSFT": D(20)}  # a manual position, another stack's
    with paper(bundled_bars, monkeypatch, holdings=held) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        assert dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)["outcomes"] == {
            "filled": 1
        }
        later = MINUTE + timedelta(minutes=5)
        server.set_time(later)
        recommend(conn, "AAPL", "SELL", later, price="170")
        recommend(conn, "MSFT", "SELL", later, price="106")
        dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
        account = server.positions
    assert [r[:5] for r in rows(conn)] == [
        ["AAPL", "buy", "filled", D(58), D(58)],
        ["AAPL", "sell", "filled", D(58), D(58)],  # not the account's 158
        ["MSFT", "sell", "rejected", D(0), D(0)],
    ]
    assert rows(conn)[2][5] == "no MSFT position to sell"
    assert account == held  # what the account held before, untouched
    assert len(posts(server)) == 2


def test_the_open_positions_limit_counts_the_deployments_positions_not_the_accounts(
    conn, bundled_bars, monkeypatch
):
    limits = RiskLimits(max_open_positions=1)
    with paper(bundled_bars, monkeypatch, holdings={"AAPL": D(100), "MSFT": D(20)}) as (
        _,
        _,
        broker,
    ):
        recommend(conn, "TSLA", "BUY", MINUTE, price="310")
        summary = dispatch(conn, broker, minute=MINUTE, limits=limits, **ACTIVE)
    assert summary["outcomes"] == {"filled": 1}, rows(conn)


def test_every_open_order_of_the_account_is_read_not_alpacas_default_fifty(
    conn, bundled_bars, monkeypatch
):
    # The operator's open AAPL order, then 55 newer open MSFT orders: Alpaca's default page (50,
    # newest first) would hide the AAPL one, and a second AAPL order would go out beside it.
    with paper(bundled_bars, monkeypatch, faults=FaultPlan(unfilled=1.0)) as (server, _, broker):
        for n, symbol in enumerate(["AAPL"] + ["MSFT"] * 55):
            broker.client.submit_order(
                MarketOrderRequest(
                    symbol=symbol,
                    qty=1,
                    side=OrderSide.BUY,
                    time_in_force=TimeInForce.DAY,
                    client_order_id=f"operator-{n}",
                )
            )
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        sent = len(posts(server))
    assert rows(conn)[0][2:] == ["rejected", D(0), D(0), "an order for AAPL is already open"]
    assert sent == 56


def test_a_sell_takes_at_most_what_the_broker_says_is_available(conn, bundled_bars, monkeypatch):
    # The deployment bought 58 AAPL on an earlier day; the account holds 158 (the operator's
    # 100 beside them). The broker says only 28 are available to sell (the rest held for an
    # order the account's open-order list does not show yet): the SELL asks for 28, not 58.
    earlier = MINUTE - timedelta(days=1)
    rec_id = recommend(conn, "AAPL", "BUY", earlier, price="170")
    conn.run(
        "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, requested_qty,"
        " price, mode, client_order_id, status, decided_at)"
        " SELECT id, ticker, 'buy', 58, 58, 170, 'paper', :prefix || '-AAPL-earlier-BUY',"
        " 'filled', decided_at FROM dispatch_recommendations WHERE id = :r",
        prefix=deployment_prefix(conn, "local"),
        r=rec_id,
    )

    def only_28_available(positions: list) -> list:
        return [{**p, "qty_available": "28"} if p["symbol"] == "AAPL" else p for p in positions]

    with paper(bundled_bars, monkeypatch, holdings={"AAPL": D(158)}) as (server, proxy, broker):
        proxy.fault("GET", "/v2/positions", "rewrite", rewrite=only_28_available)
        recommend(conn, "AAPL", "SELL", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        (order,) = server.orders
    assert order["side"] == "sell" and order["qty"] == "28"
    assert rows(conn)[1][:5] == ["AAPL", "sell", "filled", D(28), D(28)]


def test_nothing_is_sent_from_an_account_that_may_sell_short(conn, bundled_bars, monkeypatch):
    # A paper account may sell short by default: a SELL sized from a position read before it
    # is sent would open a short if the position went meanwhile (sold by hand, bug or race).
    with paper(bundled_bars, monkeypatch, holdings={"AAPL": D(100)}, long_only=False) as (
        server,
        _,
        broker,
    ):
        recommend(conn, "MSFT", "BUY", MINUTE, price="106")
        summary = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
    assert summary["outcomes"] == {"rejected": 1}
    assert rows(conn)[0][2:] == [
        "rejected",
        D(0),
        D(0),
        "the account may sell short: set it long-only (Alpaca account configuration no_shorting)",
    ]
    assert posts(server) == []


def test_an_operators_order_sent_just_before_ours_makes_alpaca_refuse_ours_as_a_wash_trade(
    conn, bundled_bars, monkeypatch
):
    # The gate reads the account's open orders, then the operator sells 10 of their own AAPL by
    # hand before the deployment's AAPL BUY reaches Alpaca, which refuses an order while one of
    # the other side is open for its symbol. The refusal is recorded with Alpaca's code, the
    # rest of the batch goes on, and the next minute's BUY waits behind the operator's order.
    with paper(
        bundled_bars, monkeypatch, faults=FaultPlan(unfilled=1.0), holdings={"AAPL": D(100)}
    ) as (server, proxy, broker):
        operator = TradingClient(
            CREDS.key_id, CREDS.secret_key, paper=True, url_override=server.base_url
        )
        sell = MarketOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id="operator-sell",
        )
        # Once, as the batch's first order (AAPL) reaches the proxy.
        proxy.fault("POST", ORDERS, "forward", hook=lambda: operator.submit_order(sell))
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        recommend(conn, "MSFT", "BUY", MINUTE, price="105")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        later = MINUTE + timedelta(minutes=1)
        server.set_time(later)
        recommend(conn, "AAPL", "BUY", later, price="170")
        dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
        orders = {o["client_order_id"]: o for o in server.orders}
    refused, msft, held = rows(conn)
    assert refused[:5] == ["AAPL", "buy", "rejected", D(0), D(58)]
    assert (
        refused[5] == "broker refused (40310000): potential wash trade detected. use complex orders"
    )
    assert msft[:3] == ["MSFT", "buy", "submitted"]
    assert held[2:] == ["rejected", D(0), D(0), "an order for AAPL is already open"]
    assert orders["operator-sell"]["status"] == "new"  # open, unfilled
    assert [o["symbol"] for o in orders.values()] == ["AAPL", "MSFT"]  # the refused one is not


# -- 2. a late run ---------------------------------------------------------------------------


def test_a_run_that_reaches_the_broker_late_is_refused_as_stale(conn, bundled_bars, monkeypatch):
    with paper(bundled_bars, monkeypatch, faults=FaultPlan(late=90)) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        summary = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
    assert summary["outcomes"] == {"rejected": 1}
    (row,) = rows(conn)
    assert row[5] == (
        "stale: decided for 2019-02-12 15:30:00 UTC, the broker's clock is"
        " 2019-02-12 15:31:30 UTC, 90 s later (limit 60 s)"
    )
    assert posts(server) == []


def test_a_late_run_at_the_close_sends_nothing_after_it(conn, bundled_bars, monkeypatch):
    # Within the decision age, but the broker's clock has passed the close: 15:59's run at 16:00:10.
    limits = RiskLimits(max_decision_age_seconds=120)
    with paper(bundled_bars, monkeypatch, now=LAST_MINUTE, faults=FaultPlan(late=70)) as (
        server,
        _,
        broker,
    ):
        recommend(conn, "AAPL", "BUY", LAST_MINUTE, price="170")
        dispatch(conn, broker, minute=LAST_MINUTE, limits=limits, **ACTIVE)
    assert rows(conn)[0][5] == "market is closed at the broker's clock (2019-02-12 21:00:10 UTC)"
    assert posts(server) == []


def test_a_run_thirty_seconds_late_still_trades_before_the_close(conn, bundled_bars, monkeypatch):
    with paper(
        bundled_bars, monkeypatch, now=LAST_MINUTE, fill="next_open", faults=FaultPlan(late=30)
    ) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", LAST_MINUTE, price="170")
        summary = dispatch(conn, broker, minute=LAST_MINUTE, limits=RiskLimits(), **ACTIVE)
        (order,) = server.orders
    assert summary["outcomes"] == {"submitted": 1}
    assert order["submitted_at"] == "2019-02-12T20:59:30Z"  # before the close


def test_no_order_is_sent_within_the_margin_before_the_close(conn, bundled_bars, monkeypatch):
    # 15:59's run reaches the broker at 15:59:55: open, fresh, but a POST that leaves now may
    # reach Alpaca after 16:00 (then a DAY market order waits for the next open). The margin is
    # 2 s plus the HTTP timeout.
    monkeypatch.setenv("ALPACA_HTTP_TIMEOUT", "5")
    with paper(bundled_bars, monkeypatch, now=LAST_MINUTE, faults=FaultPlan(late=55)) as (
        server,
        _,
        broker,
    ):
        recommend(conn, "AAPL", "BUY", LAST_MINUTE, price="170")
        summary = dispatch(conn, broker, minute=LAST_MINUTE, limits=RiskLimits(), **ACTIVE)
    assert summary["outcomes"] == {"rejected": 1}
    assert rows(conn)[0][2:] == [
        "rejected",
        D(0),
        D(58),
        "not sent: past 7 s before the close by the broker's clock",
    ]
    assert posts(server) == []


def test_the_send_deadline_is_checked_before_every_order_of_a_batch(
    conn, bundled_bars, monkeypatch
):
    # Two approved orders; the first one's reply is slow (the socket): by the time it is back,
    # the decisions are past their age limit, so the second is never sent.
    limits = RiskLimits(max_decision_age_seconds=2)
    with paper(bundled_bars, monkeypatch) as (server, proxy, broker):
        proxy.fault("POST", ORDERS, "forward", hook=lambda: threading.Event().wait(2.5))
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        recommend(conn, "MSFT", "BUY", MINUTE, price="106")
        summary = dispatch(conn, broker, minute=MINUTE, limits=limits, **ACTIVE)
    assert summary["outcomes"] == {"filled": 1, "rejected": 1}, rows(conn)
    assert rows(conn)[1][2:] == [
        "rejected",
        D(0),
        D(94),
        "not sent: past the decision's age limit by the broker's clock",
    ]
    assert len(posts(server)) == 1


# -- 3. an order open at Friday's last run ---------------------------------------------------

FRIDAY = date(2019, 2, 15)
TUESDAY = date(2019, 2, 19)  # Monday 2019-02-18 is Presidents' Day: the market is closed


def _new_york(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK)


@pytest.fixture(scope="module")
def over_a_long_weekend() -> list:
    """Friday 2019-02-15's AAPL and MSFT bars, and Monday 2019-02-11's relabelled as the Tuesday
    after the holiday (Alpha Vantage bars via masonblier/eqker, ISC)."""
    bars = []
    for b in read_bars(bundled_day(FRIDAY)) + read_bars(bundled_day(date(2019, 2, 11))):
        if b.symbol not in ("AAPL", "MSFT"):
            continue
        day = b.ts.astimezone(NEW_YORK).date()
        bars.append(b if day == FRIDAY else replace(b, ts=b.ts + timedelta(days=8)))
    return bars


def test_an_order_filled_after_fridays_last_run_is_reconciled_on_tuesday_and_counts_as_carried(
    conn, over_a_long_weekend, monkeypatch
):
    bars = over_a_long_weekend
    telemetry.upsert_bars(
        conn,
        [telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
    )
    friday, tuesday = _new_york(FRIDAY, 15, 58), _new_york(TUESDAY, 10, 0)
    with paper(bars, monkeypatch, now=friday, fill="next_minute") as (server, _, broker):
        recommend(conn, "AAPL", "BUY", friday, price="170")
        assert dispatch(conn, broker, minute=friday, limits=RiskLimits(), **ACTIVE)["outcomes"] == {
            "submitted": 1
        }
        # Friday's later runs are lost; the order fills at 15:58's close; the next run is Tuesday's.
        server.set_time(tuesday)
        recommend(conn, "MSFT", "BUY", tuesday, price="105")
        summary = dispatch(conn, broker, minute=tuesday, limits=RiskLimits(), **ACTIVE)
    assert summary["reconciled_outcomes"] == {"filled": 1}
    ((status, qty),) = conn.run(
        "SELECT status, qty FROM dispatch_executions WHERE side = 'buy' AND ticker = 'AAPL'"
    )
    assert (status, qty) == ("filled", D(58))
    aapl = sorted((b for b in bars if b.symbol == "AAPL"), key=lambda b: b.ts)
    friday_close = [b for b in aapl if b.ts < _new_york(FRIDAY, 16, 0)][-1].close
    mark = [b for b in aapl if b.ts < tuesday][-1].close
    ((verdicts,),) = conn.run("SELECT gate_verdicts FROM dispatch_executions WHERE ticker = 'MSFT'")
    (daily,) = [v for v in verdicts if v["gate"] == "daily_loss"]
    assert daily["detail"].startswith(f"day result {58 * (mark - friday_close):.2f},")


def test_an_order_left_unfilled_expires_at_fridays_close_and_is_reconciled_after_the_holiday(
    conn, over_a_long_weekend, monkeypatch
):
    friday, tuesday = _new_york(FRIDAY, 15, 58), _new_york(TUESDAY, 10, 0)
    with paper(over_a_long_weekend, monkeypatch, now=friday, faults=FaultPlan(unfilled=1.0)) as (
        server,
        _,
        broker,
    ):
        recommend(conn, "AAPL", "BUY", friday, price="170")
        dispatch(conn, broker, minute=friday, limits=RiskLimits(), **ACTIVE)
        server.set_time(tuesday)
        summary = dispatch(conn, broker, minute=tuesday, limits=RiskLimits(), **ACTIVE)
    assert summary["reconciled_outcomes"] == {"rejected": 1}
    assert rows(conn) == [["AAPL", "buy", "rejected", D(0), D(58), "broker: expired"]]


def test_a_decision_left_pending_on_friday_is_settled_after_the_holiday(
    conn, over_a_long_weekend, monkeypatch
):
    friday, tuesday = _new_york(FRIDAY, 15, 58), _new_york(TUESDAY, 10, 0)
    with paper(over_a_long_weekend, monkeypatch, now=friday) as (server, proxy, broker):
        recommend(conn, "AAPL", "BUY", friday, price="170")
        leave_pending(conn, broker, proxy, friday)  # and no later run on Friday
        server.set_time(tuesday)
        dispatch(conn, broker, minute=tuesday, limits=RiskLimits(), **ACTIVE)
    ((status, reason),) = conn.run("SELECT status, reject_reason FROM dispatch_executions")
    assert status == "rejected" and reason.startswith("expired: bar closed")
    assert server.orders == []


def test_an_order_replaced_at_the_broker_ends_in_its_replacement(conn, bundled_bars, monkeypatch):
    # The operator replaces the deployment's open order (PATCH /v2/orders/{id}, 10 shares):
    # Alpaca's `replaced` ends that order; what fills is the replacement (`replaced_by`).
    with paper(bundled_bars, monkeypatch, faults=FaultPlan(unfilled=1.0)) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        ((order_id,),) = conn.run("SELECT broker_order_id FROM dispatch_executions")
        new = broker.client.replace_order_by_id(order_id, ReplaceOrderRequest(qty=10))
        later = MINUTE + timedelta(minutes=2)
        server.set_time(later)
        summary = dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
    assert summary["reconciled_outcomes"] == {"filled": 1}
    ((status, qty, broker_order_id),) = conn.run(
        "SELECT status, qty, broker_order_id FROM dispatch_executions"
    )
    assert (status, qty, broker_order_id) == ("filled", D(10), new["id"])


# -- 4. two runs of one minute at the same time ----------------------------------------------


@pytest.mark.parametrize("retried", [False, True], ids=["fresh", "retried"])
def test_a_run_deciding_while_another_is_between_claim_and_send_leaves_its_order_alone(
    conn, database_url, bundled_bars, monkeypatch, retried
):
    """Two runs of one minute at the same time (a redrive beside the scheduled run): run B runs
    whole while run A has claimed the decision (fresh, or a `pending` row it took back) and is
    about to send it, and B would refuse it (the kill switch flipped meanwhile). B must leave A's
    row alone: A's order is sent and its outcome stored, never overwritten by B's refusal."""
    with paper(bundled_bars, monkeypatch) as (server, proxy, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        if retried:
            leave_pending(conn, broker, proxy, MINUTE)
        second = FaultProxy(server.base_url)
        monkeypatch.setenv("ALPACA_TRADING_URL", second.base_url)
        broker_b = AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)
        outcomes: dict[str, object] = {}

        def run(name: str, run_broker: AlpacaBroker, state: TradingState) -> None:
            own = connect(parse_database_url(database_url))
            try:
                outcomes[name] = dispatch(
                    own,
                    run_broker,
                    minute=MINUTE,
                    market_open=True,
                    state=state,
                    limits=RiskLimits(),
                )
            except Exception as exc:  # recorded for the assertion below
                outcomes[name] = exc
            finally:
                own.close()

        def b_runs_whole() -> None:  # A has claimed the row; its POST waits for B
            b = threading.Thread(target=run, args=("B", broker_b, TradingState.HALTED))
            b.start()
            b.join(30)

        proxy.fault("POST", ORDERS, "forward", hook=b_runs_whole)
        a = threading.Thread(target=run, args=("A", broker, TradingState.ACTIVE))
        a.start()
        a.join(60)
        second.close()
    assert "B" in outcomes, "B never ran while A was between claim and send"
    assert outcomes["A"]["outcomes"] == {"filled": 1}, outcomes  # type: ignore[index]
    assert outcomes["B"]["considered"] == 0, outcomes  # type: ignore[index]
    ((status, order_id, reason),) = conn.run(
        "SELECT status, broker_order_id, reject_reason FROM dispatch_executions"
    )
    assert (status, order_id, reason) == ("filled", server.orders[0]["id"], None)
    assert len(posts(server)) == 1


def test_a_pending_row_whose_run_died_is_taken_back_once_its_lease_runs_out(
    conn, bundled_bars, monkeypatch
):
    """A run that died between claim and send (Lambda's timeout) holds no lease for ever: once
    it runs out, the next run looks the order up and decides it again."""
    with paper(bundled_bars, monkeypatch) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        # The dead run's claim, as it left it: pending, leased now.
        conn.run(
            "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, mode,"
            " client_order_id, status, decided_at)"
            " SELECT id, ticker, 'buy', 0, 'paper', :coid, 'pending', decided_at"
            " FROM dispatch_recommendations",
            coid=client_order_id(
                *[
                    PendingRecommendation(i, t, ts, at, a, D(p), D(c))
                    for i, t, ts, at, a, p, c in conn.run(
                        "SELECT id, ticker, ts, decided_at, action, price, confidence"
                        " FROM dispatch_recommendations"
                    )
                ],
                deployment_prefix(conn, "local"),
            ),
        )
        early = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        assert early["considered"] == 0 and posts(server) == []  # leased: left alone
        conn.run("UPDATE dispatch_executions SET updated_at = now() - interval '2 minutes'")
        late = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
    assert late["outcomes"] == {"filled": 1}, rows(conn)
    assert len(posts(server)) == 1


# -- 5, 6: the day's limits count what they should -------------------------------------------


def test_a_retried_pending_buy_does_not_count_itself_against_the_trades_per_day_limit(
    conn, bundled_bars, monkeypatch
):
    limits = RiskLimits(max_trades_per_ticker_per_day=1)
    with paper(bundled_bars, monkeypatch) as (server, proxy, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        leave_pending(conn, broker, proxy, MINUTE)
        retried = dispatch(conn, broker, minute=MINUTE, limits=limits, **ACTIVE)
    assert retried["outcomes"] == {"filled": 1}, rows(conn)
    assert len(posts(server)) == 1


def test_an_open_buy_order_counts_against_the_open_positions_limit(conn, bundled_bars, monkeypatch):
    limits = RiskLimits(max_open_positions=1)
    with paper(bundled_bars, monkeypatch, faults=FaultPlan(unfilled=1.0)) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        assert dispatch(conn, broker, minute=MINUTE, limits=limits, **ACTIVE)["outcomes"] == {
            "submitted": 1
        }
        later = MINUTE + timedelta(minutes=5)
        server.set_time(later)
        recommend(conn, "MSFT", "BUY", later, price="106")
        dispatch(conn, broker, minute=later, limits=limits, **ACTIVE)
    assert rows(conn)[1][2:] == ["rejected", D(0), D(0), "1 open positions: the limit is 1"]
    assert len(posts(server)) == 1


# -- partial fills of an order still open ---------------------------------------------------


@pytest.mark.parametrize("end", ["filled", "canceled"])
def test_the_shares_an_open_order_has_filled_count_in_the_book_once(
    conn, bundled_bars, monkeypatch, end
):
    # A thin share of each bar's volume: the BUY fills in parts over several bars.
    with paper(bundled_bars, monkeypatch, fill="next_open", participation=D("0.0002")) as (
        server,
        _,
        broker,
    ):
        prefix = deployment_prefix(conn, "local")
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        assert rows(conn)[0][2:5] == ["submitted", D(0), D(58)]
        later = MINUTE + timedelta(minutes=3)
        server.set_time(later)
        assert server.orders[0]["status"] == "partially_filled"
        summary = dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
        assert summary["reconciled_outcomes"] == {"submitted": 1}
        (aapl,) = rows(conn)
        part = server.positions["AAPL"]
        assert D(0) < part < D(58)
        assert aapl[2:5] == ["submitted", part, D(58)]
        book = read_day_book(conn, TradingMode.PAPER, prefix, later)
        assert book.positions == {"AAPL": part}
        assert book.open_buys == {"AAPL"}
        if end == "canceled":
            broker.client.cancel_order_by_id(server.orders[0]["id"])  # by the operator
            final = part
        else:
            final = D(58)
        last = later + timedelta(minutes=60 if end == "filled" else 1)
        server.set_time(last)
        assert server.orders[0]["status"] == end
        dispatch(conn, broker, minute=last, limits=RiskLimits(), **ACTIVE)
        book = read_day_book(conn, TradingMode.PAPER, prefix, last)
    assert rows(conn)[0][2:4] == ["filled", final]
    assert book.positions == {"AAPL": final}  # the part filled while open, not counted again
    assert not book.open_orders


def test_the_held_tickers_are_the_deployments_in_its_own_mode(conn, bundled_bars, monkeypatch):
    # A simulation run earlier on this database left TSLA held: not the paper book's to keep.
    rec = recommend(conn, "TSLA", "BUY", MINUTE - timedelta(minutes=5), price="310")
    conn.run(
        "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, requested_qty,"
        " price, mode, client_order_id, status, decided_at)"
        " VALUES (:r, 'TSLA', 'buy', 10, 10, 310, 'simulation', 'opsabcdef-TSLA-x-BUY', 'filled',"
        " :d)",
        r=rec,
        d=MINUTE - timedelta(minutes=5),
    )
    with paper(bundled_bars, monkeypatch, fill="next_open", participation=D("0.0002")) as (
        server,
        _,
        broker,
    ):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        later = MINUTE + timedelta(minutes=3)
        server.set_time(later)
        dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
        assert server.orders[0]["status"] == "partially_filled"
    assert held_tickers(conn, TradingMode.PAPER) == {"AAPL"}  # bought so far, still open
    assert held_tickers(conn, TradingMode.SIMULATION) == {"TSLA"}


# -- 8. qty is what filled -------------------------------------------------------------------


def test_a_refused_or_canceled_order_records_nothing_filled(conn, bundled_bars, monkeypatch):
    with paper(bundled_bars, monkeypatch, faults=FaultPlan(unfilled=1.0)) as (server, _, broker):
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
        broker.client.cancel_order_by_id(server.orders[0]["id"])  # by the operator
        later = MINUTE + timedelta(minutes=1)
        server.set_time(later)
        recommend(conn, "ZZZZ", "BUY", later, price="20")  # the broker knows no such asset
        dispatch(conn, broker, minute=later, limits=RiskLimits(), **ACTIVE)
    (aapl, zzzz) = rows(conn)
    assert aapl == ["AAPL", "buy", "rejected", D(0), D(58), "broker: canceled"]
    assert zzzz[:5] == ["ZZZZ", "buy", "rejected", D(0), D(500)]
    assert zzzz[5].startswith("broker refused (40010001): asset not found")


# -- 9. a 429 on submit ----------------------------------------------------------------------


def test_a_rate_limited_order_is_sent_again_at_the_reset_with_its_client_order_id(
    conn, bundled_bars, monkeypatch
):
    with paper(bundled_bars, monkeypatch) as (server, proxy, broker):
        proxy.fault("POST", ORDERS, "forward", times=2, hook=lambda: server.fail_next(1, 429))
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        summary = dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
    assert summary["outcomes"] == {"filled": 1}
    sent = [q for q in server.requests if q[1] in (ORDERS, LOOKUP) and q[0] == "POST"]
    assert len(sent) == 3  # 429, 429, accepted: the same order each time
    assert not [q for q in server.requests if q[1] == LOOKUP]  # a 429 is no lost reply
    ((coid, status),) = conn.run("SELECT client_order_id, status FROM dispatch_executions")
    assert [o["client_order_id"] for o in server.orders] == [coid] and status == "filled"


def test_a_rate_limit_reset_past_the_runs_budget_leaves_the_decision_for_the_retry(
    conn, bundled_bars, monkeypatch
):
    with paper(bundled_bars, monkeypatch) as (server, proxy, _):
        broker = AlpacaBroker(
            alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER, budget_seconds=0
        )
        proxy.fault("POST", ORDERS, "forward", hook=lambda: server.fail_next(1, 429))
        recommend(conn, "AAPL", "BUY", MINUTE, price="170")
        with pytest.raises(TransientError, match="rate limited"):
            dispatch(conn, broker, minute=MINUTE, limits=RiskLimits(), **ACTIVE)
    assert [r[2] for r in rows(conn)] == ["pending"]
    assert len(posts(server)) == 1 and server.orders == []
