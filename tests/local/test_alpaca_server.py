import time as wall_time
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
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
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
)

from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import NEW_YORK, Bar, read_bars

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


def _long_only(server: LocalAlpaca) -> None:
    """What docs/deploy.md asks of the operator: the account in long-only mode."""
    trading = _trading(server)
    config = trading.get_account_configurations()
    assert config.no_shorting is False  # a paper account may sell short by default
    config.no_shorting = True
    assert trading.set_account_configurations(config).no_shorting is True


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


def test_market_order_fills_at_last_closed_bar_in_the_on_submit_mode(bars: list[Bar]) -> None:
    with LocalAlpaca(
        bars, KEY, SECRET, now=OPEN + timedelta(minutes=10), fill_market_orders="on_submit"
    ) as alpaca:
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
        assert [
            o.id for o in trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
        ] == [order.id]

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


def test_selling_more_than_held_is_403_on_a_long_only_account(alpaca: LocalAlpaca) -> None:
    _long_only(alpaca)
    trading = _trading(alpaca)
    assert trading.get_account().shorting_enabled is False
    with pytest.raises(APIError) as error:
        trading.submit_order(_market_order("TSLA", 1, OrderSide.SELL))
    assert error.value.status_code == 403
    assert "insufficient qty" in error.value.message


def test_a_sell_when_flat_opens_a_short_on_an_account_that_may_short(strict: LocalAlpaca) -> None:
    trading = _trading(strict)
    assert trading.get_account().shorting_enabled is True  # a paper account's default
    trading.submit_order(_market_order("AAPL", 3, OrderSide.SELL, "short"))
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.side) == ("-3", "short")
    assert float(trading.get_account().short_market_value) < 0
    trading.submit_order(_market_order("AAPL", 5, OrderSide.BUY, "cover"))
    assert trading.get_open_position("AAPL").qty == "2"  # covered, then long
    with pytest.raises(APIError) as error:  # beyond a long position: refused, shorting or not
        trading.submit_order(_market_order("AAPL", 4, OrderSide.SELL, "flip"))
    assert error.value.status_code == 403 and "insufficient qty" in error.value.message


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


# ---------------------------------------------------------------- as strict as Alpaca

ACME_DAY1 = date(2019, 2, 11)  # a Monday
ACME_DAY2 = date(2019, 2, 12)


def _ny(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK).astimezone(UTC)


def _acme(day: date, hh: int, mm: int, open_: str, volume: int = 100_000) -> Bar:
    price = Decimal(open_)
    return Bar(
        "ACME", _ny(day, hh, mm), price, price + 1, price - 1, price + Decimal("0.5"), volume
    )


@pytest.fixture
def strict(bars: list[Bar]) -> Iterator[LocalAlpaca]:
    """The server as replays use it: market orders fill at the next bar's open."""
    with LocalAlpaca(
        bars, KEY, SECRET, now=OPEN + timedelta(minutes=10), fill_market_orders="next_open"
    ) as server:
        yield server


def _post_order(server: LocalAlpaca, body: dict[str, object]) -> requests.Response:
    return requests.post(
        f"{server.base_url}/v2/orders",
        json=body,
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )


# Each refusal as Alpaca answers it: HTTP status, code, message.
REFUSALS = [
    (
        "unknown asset",
        dict(symbol="NOPE", qty=1, side="buy"),
        422,
        40010001,
        "asset not found: NOPE",
    ),
    (
        "negative quantity",
        dict(symbol="AAPL", qty=-5, side="buy"),
        422,
        40010001,
        "qty must be > 0",
    ),
    (
        "fractional quantity",
        dict(symbol="AAPL", qty=1.5, side="buy"),
        422,
        40010001,
        "fractional orders are not supported for qty 1.5",
    ),
    (
        "insufficient buying power",
        dict(symbol="AMZN", qty=1000, side="buy"),
        403,
        40310000,
        "insufficient buying power",
    ),
    (
        "no shorting",
        dict(symbol="TSLA", qty=3, side="sell"),
        403,
        40310000,
        "insufficient qty available for order (requested: 3, available: 0)",
    ),
    (
        "bad time in force",
        dict(symbol="AAPL", qty=1, side="buy", time_in_force="fok"),
        422,
        40010001,
        "invalid time_in_force: fok",
    ),
]


@pytest.mark.parametrize(
    ("case", "order", "status", "code", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusals_are_answered_as_alpaca_answers_them(
    strict: LocalAlpaca, case: str, order: dict, status: int, code: int, message: str
) -> None:
    body = {"type": "market", "time_in_force": "day", **order}
    if case == "no shorting":
        _long_only(strict)
    if case != "bad time in force":  # alpaca-py only knows valid times in force
        request = MarketOrderRequest(
            symbol=body["symbol"], qty=body["qty"], side=body["side"], time_in_force="day"
        )
        with pytest.raises(APIError) as error:
            _trading(strict).submit_order(request)
        assert (error.value.status_code, error.value.code, error.value.message) == (
            status,
            code,
            message,
        )
    response = _post_order(strict, body)
    assert response.status_code == status
    assert (response.json()["code"], response.json()["message"]) == (code, message)
    assert strict.orders == []  # nothing refused is recorded


def test_duplicate_and_unknown_orders_through_alpaca_py(strict: LocalAlpaca) -> None:
    trading = _trading(strict)
    trading.submit_order(_market_order("MSFT", 1, OrderSide.BUY, "dup-2"))
    with pytest.raises(APIError) as duplicate:
        trading.submit_order(_market_order("MSFT", 1, OrderSide.BUY, "dup-2"))
    assert (duplicate.value.status_code, duplicate.value.code) == (422, 40010001)
    assert duplicate.value.message == "client_order_id must be unique"
    for lookup in (
        lambda: trading.get_order_by_client_id("never-sent"),
        lambda: trading.get_order_by_id("7e1b0c36-2d6f-4a53-9a36-0d4c7c0e4e11"),
        lambda: trading.cancel_order_by_id("7e1b0c36-2d6f-4a53-9a36-0d4c7c0e4e11"),
    ):
        with pytest.raises(APIError) as missing:
            lookup()
        assert (missing.value.status_code, missing.value.code) == (404, 40410000)
        assert missing.value.message == "order not found"


def test_a_positions_qty_available_leaves_out_the_shares_held_for_open_sells(
    strict: LocalAlpaca,
) -> None:
    trading = _trading(strict)
    trading.submit_order(_market_order("AAPL", 5, OrderSide.BUY, "b1"))
    strict.advance(timedelta(minutes=1, seconds=20))
    trading.submit_order(_market_order("AAPL", 3, OrderSide.SELL, "s1"))  # open till 14:42
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.qty_available) == ("5", "2")
    strict.advance(timedelta(minutes=1))
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.qty_available) == ("2", "2")


def test_a_sell_beyond_what_is_held_is_refused_with_what_is_available(
    strict: LocalAlpaca,
) -> None:
    trading = _trading(strict)
    trading.submit_order(_market_order("AAPL", 5, OrderSide.BUY, "b1"))
    strict.advance(timedelta(minutes=1))
    trading.submit_order(_market_order("AAPL", 3, OrderSide.SELL, "s1"))
    strict.advance(timedelta(minutes=1))
    with pytest.raises(APIError) as error:
        trading.submit_order(_market_order("AAPL", 3, OrderSide.SELL, "s2"))
    assert error.value.status_code == 403
    assert (
        error.value.message == "insufficient qty available for order (requested: 3, available: 2)"
    )


def test_a_market_order_sent_within_a_minute_fills_at_its_bars_close_never_before_it_was_sent(
    strict: LocalAlpaca, bars: list[Bar]
) -> None:
    trading = _trading(strict)
    minute = strict.now  # 14:40:00; the 14:39 bar (the signal's) closed just now
    strict.set_time(minute + timedelta(seconds=20))
    reply = trading.submit_order(_market_order("AAPL", 10, OrderSide.BUY, "o1"))
    assert reply.status == OrderStatus.ACCEPTED  # the reply does not wait for the fill

    # Not at the 14:40 bar's open: that price is from before the order was sent.
    assert trading.get_order_by_client_id("o1").status == OrderStatus.NEW
    strict.set_time(minute + timedelta(minutes=1))
    order = trading.get_order_by_client_id("o1")
    bar = next(b for b in bars if b.symbol == "AAPL" and b.ts == minute)
    assert order.status == OrderStatus.FILLED
    assert Decimal(order.filled_avg_price) == bar.close != bar.open
    assert order.filled_at == minute + timedelta(minutes=1) > order.submitted_at
    assert Decimal(trading.get_account().cash) == Decimal("100000") - 10 * bar.close


def test_a_market_order_sent_on_the_minute_fills_at_that_bars_open(
    strict: LocalAlpaca, bars: list[Bar]
) -> None:
    trading = _trading(strict)
    minute = strict.now  # 14:40:00 exactly
    trading.submit_order(_market_order("AAPL", 10, OrderSide.BUY, "o1"))
    order = trading.get_order_by_client_id("o1")
    bar = next(b for b in bars if b.symbol == "AAPL" and b.ts == minute)
    assert order.status == OrderStatus.FILLED and Decimal(order.filled_avg_price) == bar.open
    assert order.filled_at == order.submitted_at == minute


def test_an_order_outside_the_session_is_queued_and_fills_at_the_next_open() -> None:
    bars = [_acme(ACME_DAY1, 15, 59, "10")]
    bars += [_acme(ACME_DAY2, 9, 31, "12"), _acme(ACME_DAY2, 9, 32, "13")]  # no 09:30 trade
    with LocalAlpaca(
        bars, KEY, SECRET, now=_ny(ACME_DAY1, 17, 5), fill_market_orders="next_open"
    ) as server:
        trading = _trading(server)
        reply = trading.submit_order(_market_order("ACME", 7, OrderSide.BUY, "late"))
        assert reply.status == OrderStatus.ACCEPTED
        server.set_time(_ny(ACME_DAY2, 9, 29))
        assert trading.get_order_by_client_id("late").status == OrderStatus.ACCEPTED
        server.set_time(_ny(ACME_DAY2, 9, 30))
        assert trading.get_order_by_client_id("late").status == OrderStatus.NEW
        server.set_time(_ny(ACME_DAY2, 9, 31))
        order = trading.get_order_by_client_id("late")
        assert order.status == OrderStatus.FILLED and Decimal(order.filled_avg_price) == 12
        assert order.filled_at == _ny(ACME_DAY2, 9, 31)


def test_a_large_order_fills_in_parts_over_successive_bars_then_expires_at_the_close() -> None:
    bars = [
        _acme(ACME_DAY2, 15, 50, "9"),  # the last price before the order
        _acme(ACME_DAY2, 15, 57, "10", volume=100),
        _acme(ACME_DAY2, 15, 58, "11", volume=50),
        _acme(ACME_DAY2, 15, 59, "12", volume=30),
    ]
    with LocalAlpaca(
        bars,
        KEY,
        SECRET,
        now=_ny(ACME_DAY2, 15, 57),
        fill_market_orders="next_open",
        participation=Decimal("0.1"),
    ) as server:
        trading = _trading(server)
        trading.submit_order(_market_order("ACME", 20, OrderSide.BUY, "big"))
        first = trading.get_order_by_client_id("big")
        assert first.status == OrderStatus.PARTIALLY_FILLED
        assert (Decimal(first.filled_qty), Decimal(first.filled_avg_price)) == (10, 10)
        server.set_time(_ny(ACME_DAY2, 15, 59))
        order = trading.get_order_by_client_id("big")
        assert Decimal(order.filled_qty) == 10 + 5 + 3
        assert Decimal(order.filled_avg_price) == (
            (10 * Decimal(10) + 5 * Decimal(11) + 3 * Decimal(12)) / 18
        ).quantize(Decimal("0.000000001"))
        assert order.status == OrderStatus.PARTIALLY_FILLED
        server.set_time(_ny(ACME_DAY2, 16, 0))
        expired = trading.get_order_by_client_id("big")
        assert expired.status == OrderStatus.EXPIRED and Decimal(expired.filled_qty) == 18
        [position] = trading.get_all_positions()
        assert Decimal(position.qty) == 18


@pytest.fixture
def before_open() -> Iterator[LocalAlpaca]:
    """ACME's last bar of a day and the next day's first, the clock half an hour before that
    open: an order sent now is queued (`accepted`) for the open."""
    bars = [_acme(ACME_DAY1, 15, 59, "9"), _acme(ACME_DAY2, 9, 30, "10")]
    with LocalAlpaca(
        bars, KEY, SECRET, now=_ny(ACME_DAY2, 9, 0), fill_market_orders="next_open"
    ) as server:
        yield server


def test_an_open_order_can_be_canceled_once(before_open: LocalAlpaca) -> None:
    server = before_open
    trading = _trading(server)
    order = trading.submit_order(_market_order("ACME", 1, OrderSide.BUY, "c1"))
    trading.cancel_order_by_id(order.id)
    assert trading.get_order_by_id(order.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as again:
        trading.cancel_order_by_id(order.id)
    assert again.value.status_code == 422
    assert again.value.message == 'order is already in "canceled" state'
    server.set_time(_ny(ACME_DAY2, 9, 31))
    assert trading.get_all_positions() == []


def test_a_working_order_is_pending_cancel_until_the_next_minute_and_may_fill_meanwhile() -> None:
    # As Alpaca: a cancel of an order working in the session is asked of the venue, which may
    # still fill it on the bar in progress; the order is `pending_cancel` (open: not cancelable
    # again, not replaceable) until the cancel lands, then `canceled` with what filled.
    bars = [_acme(ACME_DAY1, 15, 59, "9")] + [
        _acme(ACME_DAY2, 9, m, "10", volume=100) for m in (30, 31, 32)
    ]
    with LocalAlpaca(
        bars, KEY, SECRET, now=_ny(ACME_DAY2, 9, 30) + timedelta(seconds=20)
    ) as server:  # next_open: sent within the 9:30 bar, it fills at that bar's close
        trading = _trading(server)
        order = trading.submit_order(_market_order("ACME", 50, OrderSide.BUY, "c1"))
        server.advance(timedelta(seconds=20))
        trading.cancel_order_by_id(order.id)
        assert trading.get_order_by_id(order.id).status == OrderStatus.PENDING_CANCEL
        with pytest.raises(APIError) as again:
            trading.cancel_order_by_id(order.id)
        assert again.value.message == 'order is already in "pending_cancel" state'
        with pytest.raises(APIError) as replace:
            trading.replace_order_by_id(order.id, ReplaceOrderRequest(qty=20))
        assert replace.value.message == 'order is not replaceable in "pending_cancel" state'
        assert [o.symbol for o in trading.get_orders()] == ["ACME"]  # still open
        server.set_time(_ny(ACME_DAY2, 9, 32))
        done = trading.get_order_by_id(order.id)
        assert (done.status, done.filled_qty) == (OrderStatus.CANCELED, "10")  # the 9:30 bar's
        assert [p.qty for p in trading.get_all_positions()] == ["10"]


def test_an_order_while_one_of_the_other_side_is_open_is_refused_as_a_wash_trade(
    before_open: LocalAlpaca,
) -> None:
    # Alpaca's wash-trade protection: whoever sent the open order (the operator, another
    # deployment), a market order of the other side for its symbol could fill against it.
    server = before_open
    trading = _trading(server)
    first = trading.submit_order(_market_order("ACME", 1, OrderSide.BUY, "b1"))
    trading.submit_order(_market_order("ACME", 1, OrderSide.BUY, "b2"))  # the same side
    with pytest.raises(APIError) as error:
        trading.submit_order(_market_order("ACME", 1, OrderSide.SELL, "s1"))
    assert (error.value.status_code, error.value.code, error.value.message) == (
        403,
        40310000,
        "potential wash trade detected. use complex orders",
    )
    with pytest.raises(APIError) as queued:  # Alpaca replaces no order still queued
        trading.replace_order_by_id(first.id, ReplaceOrderRequest(qty=2))
    assert queued.value.message == 'order is not replaceable in "accepted" state'
    trading.cancel_order_by_id(first.id)
    with pytest.raises(APIError):  # b2 is still open
        trading.submit_order(_market_order("ACME", 1, OrderSide.SELL, "s2"))
    server.set_time(_ny(ACME_DAY2, 9, 31))  # b2 filled at the open
    sold = trading.submit_order(_market_order("ACME", 1, OrderSide.SELL, "s3"))
    assert [o["client_order_id"] for o in server.orders] == ["b1", "b2", "s3"]
    assert sold.status == OrderStatus.ACCEPTED


def test_rate_limit_headers_on_every_reply_and_429_past_the_limit(bars: list[Bar]) -> None:
    with LocalAlpaca(bars, KEY, SECRET, now=OPEN + timedelta(minutes=10), rate_limit=3) as server:
        headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
        before = wall_time.time()
        replies = [
            requests.get(f"{server.base_url}/v2/account", headers=headers, timeout=5)
            for _ in range(4)
        ]
        after = wall_time.time()
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"3"}
        # As Alpaca's: wall-clock epoch seconds (what clients wait for), here the simulated
        # minute's end (14:41:00, 60 s after 14:40:00) from now, never a simulated 2019 time.
        for r in replies:
            assert before + 60 <= int(r.headers["X-RateLimit-Reset"]) <= after + 61
        assert replies[3].json() == {"code": 42910000, "message": "rate limit exceeded"}
        # data is counted apart from trading, and the next minute starts afresh
        data = requests.get(
            f"{server.base_url}/v2/stocks/bars",
            params={"symbols": "AAPL", "timeframe": "1Min"},
            headers=headers,
            timeout=5,
        )
        assert data.status_code == 200
        server.advance(timedelta(minutes=1))
        assert _trading(server).get_account().status == "ACTIVE"
