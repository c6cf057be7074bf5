"""The fault plan: parsed, seeded, and injected where the real world injects it (the server's
reply, the connection); and the client half that rides it out (ops_pipeline.alpaca)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from ops_pipeline import alpaca
from ops_pipeline.config import AlpacaCredentials
from ops_pipeline.errors import TransientError
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import Bar, read_bars
from ops_pipeline_local.faults import Fault, FaultPlan

KEY, SECRET = "fault-key", "fault-secret"
CREDS = AlpacaCredentials(KEY, SECRET)
BUNDLED = Path(__file__).resolve().parents[2] / "src/ops_pipeline_local/data/bars/2019-02-12.csv"
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(BUNDLED)


def _server(bars: list[Bar], plan: FaultPlan) -> LocalAlpaca:
    return LocalAlpaca(
        bars,
        KEY,
        SECRET,
        now=OPEN + timedelta(minutes=30),
        fill_market_orders="next_open",
        faults=plan,
    )


def _bars_request() -> StockBarsRequest:
    return StockBarsRequest(
        symbol_or_symbols=["AAPL", "MSFT"],
        timeframe=TimeFrame.Minute,
        feed=DataFeed.IEX,
        start=OPEN,
        end=OPEN + timedelta(minutes=29),
    )


def _get_bars(server: LocalAlpaca, timeout: float = 5) -> requests.Response:
    return requests.get(
        f"{server.base_url}/v2/stocks/bars",
        params={"symbols": "AAPL", "timeframe": "1Min"},
        headers=HEADERS,
        timeout=timeout,
    )


def _seed_where(plan: FaultPlan, wanted: list[Fault | None]) -> int:
    """The first seed whose data faults begin with `wanted` (found with the plan itself)."""
    for seed in range(10_000):
        injector = FaultPlan(data=plan.data, seed=seed).injector()
        if [injector.for_data("/v2/stocks/bars") for _ in wanted] == wanted:
            return seed
    raise AssertionError("no such seed")


# ---------------------------------------------------------------- the plan


def test_a_spec_is_parsed_and_an_explicit_seed_wins() -> None:
    assert FaultPlan.parse("data=0.1,orders=0.2") == FaultPlan(data=0.1, orders=0.2, seed=0)
    assert FaultPlan.parse("data=0.1, orders=0.1, seed=7").seed == 7
    assert FaultPlan.parse("data=0.1,seed=7", seed=3) == FaultPlan(data=0.1, seed=3)
    assert str(FaultPlan.parse("orders=0.5,seed=2")) == "data=0,orders=0.5,seed=2"


def test_a_late_clock_and_unfilled_orders_are_part_of_the_plan() -> None:
    plan = FaultPlan.parse("orders=0.3,unfilled=0.2,late=30,seed=4")
    assert plan == FaultPlan(orders=0.3, unfilled=0.2, late=30, seed=4) and plan.active
    assert str(plan) == "data=0,orders=0.3,late=30,unfilled=0.2,seed=4"
    assert FaultPlan.parse(str(plan)) == plan


@pytest.mark.parametrize(
    "spec",
    ["data", "data=lots", "disk=0.1", "data=1.5", "orders=-0.1", "late=-1", "unfilled=2"],
)
def test_a_bad_spec_is_refused_clearly(spec: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        FaultPlan.parse(spec)


def test_the_same_seed_injects_the_same_faults_and_another_seed_others() -> None:
    def decisions(seed: int) -> list[tuple[Fault | None, Fault | None]]:
        injector = FaultPlan(data=0.1, orders=0.1, seed=seed).injector()
        return [(injector.for_data("d"), injector.for_order("o")) for _ in range(2000)]

    first = decisions(11)
    assert decisions(11) == first
    assert decisions(12) != first
    data = [d for d, _ in first if d is not None]
    orders = [o for _, o in first if o is not None]
    assert 120 <= len(data) <= 280 and 120 <= len(orders) <= 280  # about 10 % of 2,000
    assert set(data) == {Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.STALLED}
    assert set(orders) == {Fault.REPLY_LOST}


# ---------------------------------------------------------------- the server under the plan


def test_data_faults_are_a_429_with_reset_headers_a_500_or_a_reply_too_late(
    bars: list[Bar],
) -> None:
    wanted: list[Fault | None] = [Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.STALLED, None]
    plan = FaultPlan(data=0.5, seed=_seed_where(FaultPlan(data=0.5), wanted), stall_seconds=1.0)
    with _server(bars, plan) as server:
        limited = _get_bars(server)
        assert limited.status_code == 429
        assert limited.json() == {"code": 42910000, "message": "rate limit exceeded"}
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert int(limited.headers["X-RateLimit-Reset"]) >= int(datetime.now(UTC).timestamp())
        assert _get_bars(server).status_code == 500
        with pytest.raises(requests.ReadTimeout):
            _get_bars(server, timeout=0.3)
        assert _get_bars(server).status_code == 200
        assert server.faults is not None
        assert [f for _, f in server.faults.injected] == wanted[:3]


def test_a_lost_reply_leaves_the_order_at_the_server(bars: list[Bar]) -> None:
    with _server(bars, FaultPlan(orders=1.0)) as server:
        trading = TradingClient(KEY, SECRET, paper=True, url_override=server.base_url)
        order = MarketOrderRequest(
            symbol="AAPL",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="lost-1",
        )
        with pytest.raises(requests.ConnectionError):
            trading.submit_order(order)
        [kept] = server.orders
        assert (kept["client_order_id"], kept["status"], kept["filled_qty"]) == (
            "lost-1",
            "filled",
            "2",
        )
        found = trading.get_order_by_client_id("lost-1")
        assert str(found.id) == kept["id"]
        # Sent again, it is refused as a duplicate: answered, never dropped, never placed twice.
        with pytest.raises(APIError) as duplicate:
            trading.submit_order(order)
        assert duplicate.value.message == "client_order_id must be unique"
        assert len(server.orders) == 1
        assert server.faults is not None and server.faults.counts() == {"reply_lost": 1}


# ---------------------------------------------------------------- the client half


def test_the_stage_retry_waits_for_the_rate_limit_reset_and_succeeds(
    bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted: list[Fault | None] = [Fault.RATE_LIMITED, None]
    plan = FaultPlan(data=0.5, seed=_seed_where(FaultPlan(data=0.5), wanted))
    with _server(bars, plan) as server:
        monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
        client = alpaca.data_client(CREDS, timeout=2)
        with pytest.raises(APIError) as limited:  # alpaca-py's own retry is off
            client.get_stock_bars(_bars_request())
        reset = float(limited.value.response.headers["X-RateLimit-Reset"])
        assert alpaca.retry_wait(limited.value, 1, now=lambda: reset - 0.7) == pytest.approx(0.7)
        assert alpaca.retry_wait(limited.value, 1, now=lambda: reset - 60) == (
            alpaca.MAX_RATE_LIMIT_WAIT
        )

    with _server(bars, plan) as server:  # the same plan again: the same 429 first
        monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
        client = alpaca.data_client(CREDS, timeout=2)
        got = alpaca.call("bars", lambda: client.get_stock_bars(_bars_request()))
        assert len(got["AAPL"]) == len(got["MSFT"]) == 30  # 14:30 to 14:59 inclusive
        data_requests = [r for r in server.requests if r[1] == "/v2/stocks/bars"]
        assert len(data_requests) == 2


@pytest.mark.parametrize("fault_plan", ["data=0.1,seed=5"], indirect=True)
def test_retries_ride_out_a_ten_percent_fault_rate(
    bars: list[Bar], monkeypatch: pytest.MonkeyPatch, fault_plan: FaultPlan
) -> None:
    with _server(bars, fault_plan) as server:
        monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
        client = alpaca.data_client(CREDS, timeout=0.3)
        for _ in range(120):
            alpaca.call("bars", lambda: client.get_stock_bars(_bars_request()))
        assert server.faults is not None
        assert sum(server.faults.counts().values()) >= 5  # faults happened; no call failed


def test_a_fault_on_every_try_is_a_transient_error(
    bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted: list[Fault | None] = [Fault.SERVER_ERROR] * alpaca.ATTEMPTS
    plan = FaultPlan(data=0.5, seed=_seed_where(FaultPlan(data=0.5), wanted))
    with _server(bars, plan) as server:
        monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
        client = alpaca.data_client(CREDS, timeout=2)
        with pytest.raises(TransientError, match=f"bars failed {alpaca.ATTEMPTS} times"):
            alpaca.call("bars", lambda: client.get_stock_bars(_bars_request()))
