"""The fault plan's market-data windows, `data-outage=HH:MM-HH:MM` and `data-stale=HH:MM-HH:MM`
(New York time), on the local Alpaca through alpaca-py: errors inside an outage, no new bars
inside a stale window, the trading API untouched; and the replay's flags that use them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient

from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.cli import build_parser
from ops_pipeline_local.faults import Fault, FaultPlan

KEY, SECRET = "outage-key", "outage-secret"
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)  # 09:30 New York
WINDOW_START = OPEN + timedelta(minutes=30)  # 10:00 New York


def _last_bar(data: StockHistoricalDataClient) -> datetime:
    request = StockBarsRequest(
        symbol_or_symbols=["AAPL"], timeframe=TimeFrame.Minute, feed=DataFeed.IEX, start=OPEN
    )
    return max(b.timestamp for b in data.get_stock_bars(request).data["AAPL"])


def _clients(server: LocalAlpaca) -> tuple[StockHistoricalDataClient, TradingClient]:
    data = StockHistoricalDataClient(KEY, SECRET, url_override=server.base_url)
    data._retry = 0  # alpaca-py's own 3 x 3 s retry of 5xx/429: not what is tested here
    trading = TradingClient(KEY, SECRET, paper=True, url_override=server.base_url)
    return data, trading


def test_an_outage_window_answers_market_data_with_errors_and_ends(bundled_bars):
    plan = FaultPlan.parse("data-outage=10:00-10:45")
    with LocalAlpaca(bundled_bars, KEY, SECRET, now=WINDOW_START, faults=plan) as server:
        data, trading = _clients(server)
        with pytest.raises(APIError) as refused:
            _last_bar(data)
        assert refused.value.status_code == 500
        assert trading.get_clock() is not None  # the trading API is not part of the outage
        server.set_time(WINDOW_START + timedelta(minutes=45))
        assert _last_bar(data) == WINDOW_START + timedelta(minutes=44)
        assert server.faults is not None and server.faults.counts() == {Fault.OUTAGE.value: 1}


def test_a_stale_window_serves_no_bar_after_its_start(bundled_bars):
    plan = FaultPlan.parse("data-stale=10:00-10:45")
    with LocalAlpaca(bundled_bars, KEY, SECRET, now=WINDOW_START, faults=plan) as server:
        data, _ = _clients(server)
        for minutes in (0, 1, 30, 44):
            server.set_time(WINDOW_START + timedelta(minutes=minutes))
            assert _last_bar(data) == WINDOW_START - timedelta(minutes=1), minutes
        server.set_time(WINDOW_START + timedelta(minutes=45))
        assert _last_bar(data) == WINDOW_START + timedelta(minutes=44)
        assert server.faults is not None and server.faults.counts() == {Fault.STALE.value: 4}


def test_windows_parse_repeat_and_refuse_nonsense():
    plan = FaultPlan.parse("data-outage=10:00-10:45,data-outage=14:00-14:05,data-stale=11:00-11:30")
    assert len(plan.data_outages) == 2 and len(plan.data_stale) == 1 and plan.active
    assert str(FaultPlan.parse(str(plan))) == str(plan)
    for bad in ("data-outage=10:45-10:00", "data-outage=10:00", "data-stale=ten-eleven"):
        with pytest.raises(ValueError, match="bad fault spec"):
            FaultPlan.parse(bad)


def test_the_replay_takes_backup_bars_and_outage_windows():
    args = build_parser().parse_args(
        ["replay", "--bars", "a", "--backup-bars", "b", "--faults", "data-stale=10:00-10:45"]
    )
    assert (args.backup_bars, args.faults) == ("b", "data-stale=10:00-10:45")
