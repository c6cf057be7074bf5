"""The dispatcher under faults, through alpaca-py's TradingClient and the local Alpaca server.

Faults are injected where the real world puts them: an HTTP proxy between the client and the
server loses a request or a reply (after the server took the order), and a second database
connection terminates the dispatcher's (`pg_terminate_backend`) while an order is in flight.
Issue 7's promises 2 (no order twice), 3 (a refusal is an outcome), 4 (every decision passes
the gates when it is sent), 5 (the database can go away) and 6 (a minute run twice leaves the
same rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fault_proxy import FaultProxy
from recommendations import recommend as recommend_at

from ops_pipeline import alpaca
from ops_pipeline.config import AlpacaCredentials, RiskLimits, TradingMode, TradingState
from ops_pipeline.db import ConnectionCache, is_connection_lost, parse_database_url
from ops_pipeline.dispatch import AlpacaBroker, dispatch
from ops_pipeline.errors import DatabaseUnavailable, TransientError
from ops_pipeline.market import accepting_orders
from ops_pipeline.observability import stage_handler
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.runtime import LocalContext

CREDS = AlpacaCredentials("TESTKEY", "test-secret")
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MINUTE = OPEN + timedelta(minutes=60)
ORDERS = "/v2/orders"
LOOKUP = "/v2/orders:by_client_order_id"
KW = dict(market_open=True, state=TradingState.ACTIVE, limits=RiskLimits())


@pytest.fixture
def market(bundled_bars) -> Iterator[LocalAlpaca]:
    # Orders fill as they are placed (at the last closed bar's close), as Alpaca's paper account
    # fills a market order in a liquid session within a second: these tests are about the
    # replies, not the fill price (the default, next_open, is tested in test_alpaca_server.py).
    with LocalAlpaca(
        bundled_bars,
        CREDS.key_id,
        CREDS.secret_key,
        now=MINUTE,
        fill_market_orders="on_submit",
        no_shorting=True,
    ) as server:
        yield server


@pytest.fixture
def proxy(market) -> Iterator[FaultProxy]:
    p = FaultProxy(market.base_url)
    yield p
    p.close()


@pytest.fixture
def broker(proxy, monkeypatch) -> AlpacaBroker:
    monkeypatch.setenv("ALPACA_TRADING_URL", proxy.base_url)
    return AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)


def recommend(conn, ticker, action, minute=MINUTE, price="100", confidence="0.6"):
    return recommend_at(conn, ticker, action, minute, price, confidence)


def posts(market) -> list:
    return [r for r in market.requests if r[0] == "POST" and r[1] == ORDERS]


def executions(conn) -> list[list]:
    return conn.run(
        "SELECT ticker, status, qty, reject_reason, broker_code, client_order_id"
        " FROM dispatch_executions ORDER BY ticker"
    )


def broker_orders(broker) -> dict[str, dict]:
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    orders = broker.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    return {o["client_order_id"]: o for o in orders}


# -- promise 2: no order twice ---------------------------------------------------------------


def test_a_reply_lost_after_acceptance_is_found_by_client_order_id_and_never_sent_again(
    conn, market, proxy, broker
):
    recommend(conn, "AAPL", "BUY", price="170")
    proxy.fault("POST", ORDERS, "drop_reply")  # the server takes the order; the reply is lost
    summary = dispatch(conn, broker, minute=MINUTE, **KW)
    assert summary["outcomes"] == {"filled": 1}
    assert len(posts(market)) == 1
    (row,) = executions(conn)
    assert row[:3] == ["AAPL", "filled", Decimal(58)]
    orders = broker_orders(broker)
    assert list(orders) == [row[5]] and orders[row[5]]["status"] == "filled"
    assert dispatch(conn, broker, minute=MINUTE, **KW)["outcomes"] == {}  # run again: nothing
    assert len(posts(market)) == 1


def test_a_decision_left_pending_is_looked_up_on_the_retry_and_recorded_not_resent(
    conn, market, proxy, broker
):
    recommend(conn, "AAPL", "BUY", price="170")
    proxy.fault("POST", ORDERS, "drop_reply")
    # and every try of the lookup (the stage retries it) fails too: the run gives up
    proxy.fault("GET", LOOKUP, "drop_request", times=alpaca.ATTEMPTS)
    with pytest.raises(TransientError, match="left pending"):
        dispatch(conn, broker, minute=MINUTE, **KW)
    assert [r[1] for r in executions(conn)] == ["pending"]
    retried = dispatch(conn, broker, minute=MINUTE, **KW)  # the state machine's retry
    assert retried["outcomes"] == {"filled": 1}
    assert len(posts(market)) == 1
    assert len(broker_orders(broker)) == len(executions(conn)) == 1
    positions = broker.client.get_all_positions()
    assert [(p["symbol"], p["qty"]) for p in positions] == [("AAPL", "58")]


def test_the_database_lost_while_an_order_is_in_flight_costs_no_second_order(
    database_url, conn, market, proxy, broker
):
    target = parse_database_url(database_url)
    cache = ConnectionCache(target)
    stage_conn = cache.get()
    (pid,) = stage_conn.run("SELECT pg_backend_pid()")[0]
    recommend(conn, "AAPL", "BUY", price="170")

    def kill_the_dispatchers_connection() -> None:
        conn.run("SELECT pg_terminate_backend(:pid)", pid=pid)

    proxy.fault("POST", ORDERS, "forward", hook=kill_the_dispatchers_connection)

    @stage_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dispatch(cache.get(), broker, minute=MINUTE, run=event["execution"], **KW)

    context = LocalContext("DispatcherFunction", "arn:aws:lambda:us-east-1:0:function:d")
    run = {"time": MINUTE.isoformat(), "execution": "arn:aws:states:us-east-1:0:execution:m:run"}
    other = {**run, "execution": "arn:aws:states:us-east-1:0:execution:m:other"}
    with pytest.raises(DatabaseUnavailable) as raised:
        handler(run, context)
    assert is_connection_lost(raised.value.__cause__)
    assert cache._conn is None  # dropped: the retry connects anew
    assert [r[1] for r in executions(conn)] == ["pending"]  # the claim was committed before
    # The lost attempt could not hand its lease back. Another run (a second execution of the
    # minute) leaves the row alone while the lease holds: the lost attempt may have been sending.
    assert handler(other, context)["considered"] == 0
    # The state machine's retry of the same run takes its own row at once, finds the order by
    # its client order id and records it: nothing sent twice.
    retried = handler(run, context)
    assert retried["considered"] == 1 and retried["outcomes"] == {"filled": 1}
    assert [r[1] for r in executions(conn)] == ["filled"]
    assert conn.run("SELECT leased_by FROM dispatch_executions") == [[None]]  # the lease ended
    assert len(posts(market)) == 1 and len(broker_orders(broker)) == 1
    assert handler(other, context)["considered"] == 0  # and nothing is left for anyone
    cache.close()


def test_a_lost_runs_lease_runs_out_for_the_other_runs(database_url, conn, market, proxy, broker):
    """A run that ends without a word (its retries spent, the execution failed) leaves its
    `pending` row to the next scheduled run once the lease is LEASE old (the database's clock)."""
    recommend(conn, "AAPL", "BUY", price="170")
    proxy.fault("POST", ORDERS, "drop_reply")
    proxy.fault("GET", LOOKUP, "drop_request", times=alpaca.ATTEMPTS)
    lost = "arn:aws:states:us-east-1:0:execution:m:lost"
    with pytest.raises(TransientError, match="left pending"):
        dispatch(conn, broker, minute=MINUTE, run=lost, **KW)
    # A run that leaves a row pending hands its lease back: simulate one that could not.
    conn.run("UPDATE dispatch_executions SET updated_at = now(), leased_by = :run", run=lost)
    later = MINUTE + timedelta(minutes=1)
    assert dispatch(conn, broker, minute=later, run="next", **KW)["considered"] == 0
    conn.run("UPDATE dispatch_executions SET updated_at = updated_at - interval '2 minutes'")
    retried = dispatch(conn, broker, minute=later, run="next", **KW)
    assert retried["outcomes"] == {"filled": 1}
    assert len(posts(market)) == 1 and len(broker_orders(broker)) == 1


# -- partial fills ----------------------------------------------------------------------------


def test_a_partial_fill_then_cancel_is_recorded_filled_with_the_filled_quantity(
    conn, bundled_bars, monkeypatch
):
    """The deployment's order fills in parts; the operator cancels it. Alpaca answers
    `pending_cancel`: still open, and a run that reconciles it then keeps the row `submitted`
    with what has filled. The venue fills part of the bar in progress before the cancel lands,
    then the order is `canceled`: the row is `filled` with all that filled."""
    later, last = MINUTE + timedelta(minutes=1), MINUTE + timedelta(minutes=2)
    first, second = (
        next(b for b in bundled_bars if b.symbol == "AAPL" and b.ts == ts) for ts in (MINUTE, later)
    )
    participation = Decimal("20.5") / max(first.volume, second.volume)  # 20 shares a bar at most
    parts = [int(b.volume * participation) for b in (first, second)]
    with LocalAlpaca(
        bundled_bars,
        CREDS.key_id,
        CREDS.secret_key,
        now=MINUTE,
        fill_market_orders="next_minute",
        no_shorting=True,
        participation=participation,
    ) as server:
        monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
        paper = AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)
        recommend(conn, "AAPL", "BUY", price="170")
        assert dispatch(conn, paper, minute=MINUTE, **KW)["outcomes"] == {"submitted": 1}
        server.set_time(later)
        dispatch(conn, paper, minute=later, **KW)
        ((order_id, so_far),) = conn.run("SELECT broker_order_id, qty FROM dispatch_executions")
        paper.client.cancel_order_by_id(order_id)
        server.advance(timedelta(seconds=30))  # a redrive of the same minute
        again = dispatch(conn, paper, minute=later, **KW)
        asked = server.orders[0]["status"]
        server.set_time(last)
        summary = dispatch(conn, paper, minute=last, **KW)
        final = server.orders[0]["status"]
    assert so_far == parts[0] and (asked, final) == ("pending_cancel", "canceled")
    assert again["reconciled_outcomes"] == {"submitted": 1}
    assert summary["reconciled_outcomes"] == {"filled": 1}
    ((status, qty, requested, price, reason),) = conn.run(
        "SELECT status, qty, requested_qty, price, reject_reason FROM dispatch_executions"
    )
    assert (status, qty, requested) == ("filled", sum(parts), 58)
    assert reason == f"partial fill: {sum(parts)} of 58, then canceled"
    assert min(first.close, second.close) <= price <= max(first.close, second.close)


def test_a_malformed_reply_is_looked_up_recorded_and_the_batch_goes_on(conn, market, proxy, broker):
    recommend(conn, "AAPL", "BUY", price="170")
    recommend(conn, "MSFT", "BUY", price="100")
    proxy.fault("POST", ORDERS, "rewrite", rewrite=lambda order: ["not", "an", "order"])
    summary = dispatch(conn, broker, minute=MINUTE, **KW)
    assert summary["outcomes"] == {"filled": 2}
    assert len(posts(market)) == 2 and len(broker_orders(broker)) == 2


# -- promise 3: a refusal is an outcome, not a jam ---------------------------------------------


def test_a_refused_order_is_recorded_with_the_brokers_code_and_the_batch_goes_on(
    conn, market, broker
):
    for ticker in ("AAPL", "MSFT", "ZZZZ"):  # ZZZZ: an asset the broker does not know
        recommend(conn, ticker, "BUY", price="100")
    summary = dispatch(conn, broker, minute=MINUTE, **KW)
    assert summary["outcomes"] == {"filled": 2, "rejected": 1}
    assert summary["refused_by_broker"] == 1
    rows = {r[0]: r for r in executions(conn)}
    assert rows["AAPL"][1] == rows["MSFT"][1] == "filled"
    assert rows["ZZZZ"][1] == "rejected" and rows["ZZZZ"][4] == 40010001
    assert rows["ZZZZ"][3] == "broker refused (40010001): asset not found: ZZZZ"
    later = MINUTE + timedelta(minutes=1)
    market.set_time(later)
    recommend(conn, "TSLA", "BUY", minute=later, price="300")
    assert dispatch(conn, broker, minute=later, **KW)["outcomes"] == {"filled": 1}
    assert len(posts(market)) == 4  # each decision sent once, the refused one never again


# -- promise 4: every decision passes the gates when it is sent ---------------------------------


def _leave_pending(conn, broker, proxy, minute=MINUTE):
    """A decision written `pending` whose order never reached the broker."""
    proxy.fault("POST", ORDERS, "drop_request", times=2)
    proxy.fault("GET", LOOKUP, "drop_request")
    with pytest.raises(TransientError):
        dispatch(conn, broker, minute=minute, **KW)
    assert [r[1] for r in executions(conn)] == ["pending"]


def test_a_retried_decision_is_refused_by_a_gate_that_now_fails(conn, market, proxy, broker):
    rec_id = recommend(conn, "AAPL", "BUY", price="170")
    _leave_pending(conn, broker, proxy)
    kw = {**KW, "state": TradingState.REDUCING}
    summary = dispatch(conn, broker, minute=MINUTE + timedelta(minutes=1), **kw)
    assert summary["outcomes"] == {"rejected": 1} and not posts(market)
    status, reason, verdicts = conn.run(
        "SELECT status, reject_reason, gate_verdicts FROM dispatch_executions"
        " WHERE recommendation_id = :r",
        r=rec_id,
    )[0]
    assert (status, reason) == ("rejected", "trading is reducing: only sells go through")
    assert verdicts[0] == {
        "gate": "kill_switch",
        "passed": False,
        "detail": "trading is reducing: only sells go through",
    }


def test_a_retried_decision_expires_like_a_fresh_one(conn, market, proxy, broker):
    recommend(conn, "AAPL", "BUY", price="170")
    _leave_pending(conn, broker, proxy)
    later = MINUTE + timedelta(minutes=10)
    market.set_time(later)
    dispatch(conn, broker, minute=later, **KW)
    assert executions(conn)[0][1:4] == [
        "rejected",
        Decimal(0),
        "expired: bar closed 10 min ago, limit 5 min",
    ]
    assert not posts(market)


def test_a_retried_decision_counts_against_the_fresh_ones_of_the_same_run(
    conn, market, proxy, broker
):
    recommend(conn, "AAPL", "BUY", price="170")
    _leave_pending(conn, broker, proxy)
    later = MINUTE + timedelta(minutes=1)
    market.set_time(later)
    recommend(conn, "AAPL", "BUY", minute=later, price="170")
    summary = dispatch(conn, broker, minute=later, **KW)
    assert summary["outcomes"] == {"filled": 1, "rejected": 1}
    first, second = conn.run(
        "SELECT status, reject_reason FROM dispatch_executions ORDER BY recommendation_id"
    )
    assert first == ["filled", None]
    assert second == ["rejected", "an order for AAPL is already open"]
    assert len(posts(market)) == 1


# -- market closed -----------------------------------------------------------------------------


def test_the_closing_run_sends_no_order_and_records_why(conn, market, broker):
    close = datetime(2019, 2, 12, 21, 0, tzinfo=UTC)
    market.set_time(close)
    recommend(conn, "AAPL", "BUY", minute=close, price="170")
    event_market = {
        "is_open": True,  # the 15:59 bar is a session bar, so the market check says open
        "session_open": "2019-02-12T09:30:00-05:00",
        "session_close": "2019-02-12T16:00:00-05:00",
    }
    open_ = accepting_orders(close, event_market)
    summary = dispatch(
        conn,
        broker,
        minute=close,
        market_open=open_,
        state=TradingState.ACTIVE,
        limits=KW["limits"],
    )
    assert summary["outcomes"] == {"rejected": 1} and not posts(market)
    assert executions(conn)[0][3] == "market is closed"


# -- promise 6: each minute executed twice leaves the same rows --------------------------------


def test_paper_dispatch_run_twice_per_minute_leaves_the_same_rows(conn, bundled_bars, monkeypatch):
    plan = [("AAPL", "BUY"), ("MSFT", "BUY"), ("AAPL", "SELL"), ("TSLA", "BUY")]

    def run(times: int) -> tuple[list[list], int]:
        conn.run("TRUNCATE dispatch_executions, dispatch_recommendations RESTART IDENTITY CASCADE")
        with LocalAlpaca(
            bundled_bars, CREDS.key_id, CREDS.secret_key, now=MINUTE, no_shorting=True
        ) as server:
            monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
            paper = AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)
            for m, (ticker, action) in enumerate(plan):
                minute = MINUTE + timedelta(minutes=m)
                server.set_time(minute)
                recommend(conn, ticker, action, minute)
                for _ in range(times):
                    dispatch(conn, paper, minute=minute, **KW)
            # A market order fills at the open of the bar after it (as Alpaca's): the next
            # minute's run reconciles the last one.
            after = MINUTE + timedelta(minutes=len(plan) + 1)
            server.set_time(after)
            for _ in range(times):
                dispatch(conn, paper, minute=after, **KW)
            rows = conn.run(
                "SELECT ticker, side, qty, price, status, reject_reason, decided_at,"
                " client_order_id, gate_verdicts FROM dispatch_executions ORDER BY id"
            )
            return rows, len(broker_orders(paper))

    once, orders_once = run(1)
    assert [r[4] for r in once] == ["filled"] * 4 and orders_once == 4
    twice, orders_twice = run(2)
    assert twice == once and orders_twice == 4
