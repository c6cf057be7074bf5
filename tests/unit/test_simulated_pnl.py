"""The replay summary's P&L: from the book held when the window opens to the last close."""

from decimal import Decimal as D

from ops_pipeline_local.replay import simulated_pnl


def fill(ticker, side, qty, price, commission=None):
    return {
        "ticker": ticker,
        "side": side,
        "qty": D(qty),
        "price": D(price),
        "commission": commission,
    }


def test_a_round_trip_inside_the_window_is_its_cash_less_commissions():
    pnl = simulated_pnl(
        [fill("AAPL", "buy", 10, "100", D("1.00")), fill("AAPL", "sell", 10, "103", D("1.00"))],
        {"AAPL": D("99")},
    )
    assert pnl["realized_and_unrealized"] == D("28.00")  # 10 x 3 - 2
    assert pnl["commissions"] == D("2.00")
    assert pnl["open_positions"] == {}


def test_a_position_held_when_the_window_opens_counts_only_its_move_inside_the_window():
    # 50 TSLA bought yesterday at 300; yesterday's last close 310; today sold at 312 and 10 more
    # bought at 311, marked at today's last close 315.
    pnl = simulated_pnl(
        [fill("TSLA", "sell", 50, "312"), fill("TSLA", "buy", 10, "311")],
        {"TSLA": D("315")},
        opening={"TSLA": D(50)},
        opening_close={"TSLA": D("310")},
    )
    # 50 x (312 - 310) + 10 x (315 - 311): nothing of yesterday's 300 -> 310 move
    assert pnl["realized_and_unrealized"] == D("140.00")
    assert pnl["opening_value"] == D("15500.00")
    assert pnl["closing_value"] == D("3150.00")
    assert pnl["open_positions"] == {"TSLA": D(10)}
    assert pnl["opening_positions"] == {"TSLA": D(50)}


def test_an_untouched_opening_position_is_marked_from_the_last_close_before_to_the_last_close():
    pnl = simulated_pnl([], {"MSFT": D("105.5")}, {"MSFT": D(20)}, {"MSFT": D("104")})
    assert pnl["realized_and_unrealized"] == D("30.00")
    assert pnl["open_positions"] == {"MSFT": D(20)}


def test_without_an_opening_book_it_is_cash_plus_positions_at_the_last_close():
    pnl = simulated_pnl([fill("AMZN", "buy", 3, "1600")], {"AMZN": D("1610")})
    assert pnl["realized_and_unrealized"] == D("30.00")
    assert pnl["unmarked"] == []


def test_a_position_without_any_close_is_reported_unmarked():
    pnl = simulated_pnl([fill("XYZ", "buy", 1, "10")], {})
    assert pnl["unmarked"] == ["XYZ"]
