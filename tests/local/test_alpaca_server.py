from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, MarketOrderRequest

from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import Bar, read_bars

KEY, SECRET = "test-key", "test-secret"
BUNDLED = Path(__file__).resolve().parents[2] / "src/ops_pipeline_local/data/bars/2019-02-12.csv"
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(BUNDLED)


@pytest.fixture
def alpaca(bars: list[Bar]) -> Iterator[LocalAlpaca]:
    with LocalAlpaca(bars, KEY, SECRET, now=OPEN + timedelta(minutes=10), page_size=7) as server:
        yield server


def _data(server: LocalAlpaca, key: str = KEY) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(key, SECRET, url_override=server.base_url)


def _trading(server: LocalAlpaca, key: str = KEY) -> TradingClient:
    return TradingClient(key, SECRET, paper=True, url_override=server.base_url)


def _bars_request(symbols: list[str], **kw: object) -> StockBarsRequest:
    return StockBarsRequest(
        symbol_or_symbols=symbols, timeframe=TimeFrame.Minute, feed=DataFeed.IEX, **kw
    )


def _market_order(
    symbol: str, qty: int, side: OrderSide, client_order_id: str | None = None
) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol,
        qty=qty,
        side=side,
        time_in_force=TimeInForce.DAY,
        client_order_id=client_order_id,
    )


def test_multi_symbol_bars_follow_pages(alpaca: LocalAlpaca, bars: list[Bar]) -> None:
    symbols = ["MSFT", "AAPL", "NOPE"]
    request = _bars_request(symbols, start=OPEN, end=OPEN + timedelta(hours=1))
    result = _data(alpaca).get_stock_bars(request)

    assert set(result.data) == {"AAPL", "MSFT"}  # unknown symbols just have no bars
    for symbol in ("AAPL", "MSFT"):
        got = result.data[symbol]
        expected = [b for b in bars if b.symbol == symbol][:10]  # 14:30..14:39 closed by 14:40
        assert [b.timestamp for b in got] == [b.ts for b in expected]
        assert [b.close for b in got] == [float(b.close) for b in expected]
        assert [b.volume for b in got] == [b.volume for b in expected]

    data_requests = [r for r in alpaca.requests if r[1] == "/v2/stocks/bars"]
    assert len(data_requests) == 3  # 20 bars, server pages of 7
    assert all(q["symbols"] == "MSFT,AAPL,NOPE" for _, _, q in data_requests)
    assert data_requests[0][2]["timeframe"] == "1Min" and data_requests[0][2]["feed"] == "iex"
    assert "page_token" not in data_requests[0][2] and data_requests[1][2]["page_token"]


def test_limit_is_a_total_across_symbols(alpaca: LocalAlpaca) -> None:
    request = _bars_request(["AAPL", "MSFT"], start=OPEN, limit=12)
    result = _data(alpaca).get_stock_bars(request)
    assert len(result.data["AAPL"]) == 10 and len(result.data["MSFT"]) == 2


def test_unclosed_bars_are_invisible(alpaca: LocalAlpaca) -> None:
    alpaca.set_time(OPEN + timedelta(minutes=1, seconds=59))  # 14:31:59: only 14:30 has closed
    client = _data(alpaca)
    got = client.get_stock_bars(_bars_request(["SPY"], start=OPEN)).data["SPY"]
    assert [b.timestamp for b in got] == [OPEN]

    alpaca.set_time(OPEN + timedelta(minutes=2))  # the 14:31 bar closes at 14:32:00
    got = client.get_stock_bars(_bars_request(["SPY"], start=OPEN)).data["SPY"]
    assert [b.timestamp for b in got] == [OPEN, OPEN + timedelta(minutes=1)]

    alpaca.set_time(OPEN - timedelta(minutes=1))
    assert client.get_stock_bars(_bars_request(["SPY"], start=OPEN)).data == {}


def test_single_symbol_endpoint_and_desc_sort(alpaca: LocalAlpaca) -> None:
    response = requests.get(
        f"{alpaca.base_url}/v2/stocks/AAPL/bars",
        params={"timeframe": "1Min", "start": "2019-02-12T14:30:00Z", "limit": 3, "sort": "desc"},
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )
    body = response.json()
    assert body["symbol"] == "AAPL"
    assert [b["t"] for b in body["bars"]] == [
        "2019-02-12T14:39:00Z",
        "2019-02-12T14:38:00Z",
        "2019-02-12T14:37:00Z",
    ]
    assert set(body["bars"][0]) == {"t", "o", "h", "l", "c", "v", "n", "vw"}
    assert body["next_page_token"]


def test_bad_keys_get_401(alpaca: LocalAlpaca) -> None:
    with pytest.raises(APIError) as data_error:
        _data(alpaca, key="wrong").get_stock_bars(_bars_request(["AAPL"], start=OPEN))
    assert data_error.value.status_code == 401
    assert data_error.value.code == 40110000
    with pytest.raises(APIError) as trading_error:
        _trading(alpaca, key="wrong").get_account()
    assert trading_error.value.status_code == 401


def test_calendar_clock_and_account(alpaca: LocalAlpaca) -> None:
    trading = _trading(alpaca)
    days = trading.get_calendar(GetCalendarRequest(start=date(2019, 2, 1), end=date(2019, 2, 28)))
    assert len(days) == 19  # the NYSE's February 2019: 20 weekdays, Presidents' Day closed
    assert date(2019, 2, 12) in [d.date for d in days]
    assert date(2019, 2, 18) not in [d.date for d in days]
    assert (days[0].open.hour, days[0].open.minute, days[0].close.hour) == (9, 30, 16)

    clock = trading.get_clock()
    assert clock.is_open
    assert clock.next_close == datetime(2019, 2, 12, 21, 0, tzinfo=UTC)
    alpaca.set_time(datetime(2019, 2, 12, 22, 0, tzinfo=UTC))
    assert not trading.get_clock().is_open

    account = trading.get_account()
    assert Decimal(account.cash) == Decimal(account.equity) == Decimal("100000")


def test_market_order_fills_at_last_closed_bar(alpaca: LocalAlpaca, bars: list[Bar]) -> None:
    trading = _trading(alpaca)
    last_closed = [b for b in bars if b.symbol == "AAPL"][9]  # 14:39 bar closed at 14:40 = now
    order = trading.submit_order(_market_order("AAPL", 10, OrderSide.BUY, "run1-AAPL-1"))
    assert order.status == OrderStatus.FILLED
    assert Decimal(order.filled_avg_price) == last_closed.close
    assert Decimal(order.filled_qty) == 10

    [position] = trading.get_all_positions()
    assert (position.symbol, Decimal(position.qty)) == ("AAPL", Decimal(10))
    cash = Decimal(trading.get_account().cash)
    assert cash == Decimal("100000") - 10 * last_closed.close

    again = trading.get_order_by_client_id("run1-AAPL-1")
    assert again.id == order.id
    assert trading.get_order_by_id(order.id).client_order_id == "run1-AAPL-1"
    assert trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    assert [o.id for o in trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))] == [
        order.id
    ]

    trading.submit_order(_market_order("AAPL", 10, OrderSide.SELL, "run1-AAPL-2"))
    assert trading.get_all_positions() == []
    assert Decimal(trading.get_account().cash) == Decimal("100000")


def test_duplicate_client_order_id_is_422(alpaca: LocalAlpaca) -> None:
    trading = _trading(alpaca)
    request = _market_order("MSFT", 1, OrderSide.BUY, "dup-1")
    trading.submit_order(request)
    with pytest.raises(APIError) as error:
        trading.submit_order(request)
    assert error.value.status_code == 422
    assert error.value.code == 40010001
    assert error.value.message == "client_order_id must be unique"
    assert len(trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 1


def test_selling_more_than_held_is_403(alpaca: LocalAlpaca) -> None:
    trading = _trading(alpaca)
    with pytest.raises(APIError) as error:
        trading.submit_order(_market_order("TSLA", 1, OrderSide.SELL))
    assert error.value.status_code == 403
    assert "insufficient qty" in error.value.message


def test_unknown_order_is_404_and_fail_next_injects_errors(alpaca: LocalAlpaca) -> None:
    trading = _trading(alpaca)
    with pytest.raises(APIError) as missing:
        trading.get_order_by_client_id("never-sent")
    assert missing.value.status_code == 404

    alpaca.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(APIError) as failed:
            trading.get_account()
        assert failed.value.status_code == 500
    assert trading.get_account().status == "ACTIVE"
