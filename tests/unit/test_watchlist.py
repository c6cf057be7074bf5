"""Watchlist scoring: the formula in `ops_pipeline.watchlist`'s docstring, on hand-made inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ops_pipeline.watchlist import WatchlistInput, recent_return, trend, watchlist_scores

NOW = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
D = Decimal


def features(ticker: str, **kw: object) -> WatchlistInput:
    base: dict[str, object] = {
        "ticker": ticker,
        "ts": NOW - timedelta(minutes=1),
        "close": D("100"),
        "sma20": D("100"),
        "sma50": D("100"),
        "volume_ratio": D("1.0"),
        "base_ts": NOW - timedelta(minutes=30),
        "base_close": D("100"),
    }
    return WatchlistInput(**(base | kw))  # type: ignore[arg-type]


def test_trend_is_relative_gap_of_the_averages() -> None:
    assert trend(D("100.42"), D("100")) == D("0.004200")
    assert trend(D("99"), D("100")) == D("-0.010000")
    assert trend(D("100"), None) is None


def test_recent_return_needs_two_bars() -> None:
    assert recent_return(features("AAPL", close=D("101"))) == D("0.01")
    assert recent_return(features("AAPL", base_ts=NOW - timedelta(minutes=1))) is None
    assert recent_return(WatchlistInput("AAPL")) is None


def test_score_formula_with_every_component() -> None:
    # trend 0.25% -> T = 0.5; return +0.5% -> R = 0.5; net +1.0 -> N = 0.5; ratio 2.0 -> W = 2.0
    # D = 0.5 + 0.25 + 0.75 = 1.5; score = 3.0
    f = features(
        "AAPL",
        sma20=D("100.25"),
        sma50=D("100"),
        close=D("100.5"),
        volume_ratio=D("2.0"),
        news_count=2,
        net_sentiment=D("1.0"),
    )
    (entry,) = watchlist_scores([f], top_n=3)
    assert entry.score == D("3.0000")
    assert entry.rank == 1 and entry.on_watchlist
    assert entry.trend == D("0.002500")
    assert "volume ratio 2.00 (NORMAL, weight 2.00)" in entry.reasons
    assert "uptrend: sma20 0.25% above sma50" in entry.reasons
    assert "up 0.50% over 29 min" in entry.reasons
    assert "2 headlines, net sentiment +1.00" in entry.reasons
    assert "score +3.0000, rank 1: on the watchlist (top 3)" in entry.reasons


def test_components_are_capped_and_volume_weight_clamped() -> None:
    f = features(
        "TSLA",
        sma20=D("90"),
        sma50=D("100"),
        close=D("80"),
        volume_ratio=D("10"),
        news_count=5,
        net_sentiment=D("-4.2"),
    )
    (entry,) = watchlist_scores([f])
    # every component at -1: D = -3.0, W = 3.0
    assert entry.score == D("-9.0000")
    assert "downtrend: sma20 10.00% below sma50" in entry.reasons
    assert "SURGE" in entry.reasons


def test_thin_volume_halves_and_missing_ratio_is_neutral() -> None:
    news = {"news_count": 1, "net_sentiment": D("1.0")}  # N = 0.5 -> D = 0.75
    thin = features("NVDA", volume_ratio=D("0.2"), **news)
    unknown = features("AMZN", volume_ratio=None, **news)
    by_ticker = {e.ticker: e for e in watchlist_scores([thin, unknown])}
    assert by_ticker["NVDA"].score == D("0.3750")
    assert "KILL" in by_ticker["NVDA"].reasons
    assert by_ticker["AMZN"].score == D("0.7500")
    assert "no volume ratio yet (weight 1.00)" in by_ticker["AMZN"].reasons
    assert "1 headline, net sentiment +1.00" in by_ticker["AMZN"].reasons


def test_news_alone_scores_a_ticker_without_features() -> None:
    (entry,) = watchlist_scores([WatchlistInput("META", news_count=3, net_sentiment=D("-1.72"))])
    assert entry.score == D("-1.2900")  # 1.5 * (-0.86)
    assert entry.volume_ratio is None and entry.trend is None
    assert "no features in the last 30 min" in entry.reasons
    assert "3 headlines, net sentiment -1.72" in entry.reasons


def test_ranked_by_magnitude_top_n_plus_strong_ones() -> None:
    inputs = [
        features("AAPL", news_count=1, net_sentiment=D("0.4")),  # 0.3
        features("MSFT", news_count=1, net_sentiment=D("-2")),  # -1.5 (strong)
        features("TSLA", news_count=1, net_sentiment=D("2"), volume_ratio=D("1.5")),  # 2.25
        features("GOOGL", news_count=1, net_sentiment=D("1.2")),  # 0.9
        features("AMZN"),  # 0
    ]
    entries = watchlist_scores(inputs, top_n=1)
    assert [e.ticker for e in entries] == ["TSLA", "MSFT", "GOOGL", "AAPL", "AMZN"]
    assert [e.rank for e in entries] == [1, 2, 3, 4, 5]
    assert [e.on_watchlist for e in entries] == [True, True, False, False, False]
    assert "on the watchlist (|score| >= 1.5)" in entries[1].reasons
    assert entries[2].reasons.endswith("rank 3: off the watchlist")


def test_zero_score_never_makes_the_top_n_and_ties_break_by_ticker() -> None:
    entries = watchlist_scores([features("MSFT"), features("AAPL")], top_n=5)
    assert [e.ticker for e in entries] == ["AAPL", "MSFT"]
    assert not any(e.on_watchlist for e in entries)
    assert all(e.score == 0 and str(e.score) == "0.0000" for e in entries)
    assert "flat: sma20 equals sma50" in entries[0].reasons
    assert "unchanged over 29 min" in entries[0].reasons
    assert "no headlines in the last 2 h" in entries[0].reasons


def test_no_trend_before_fifty_bars() -> None:
    (entry,) = watchlist_scores([features("AAPL", sma50=None)])
    assert "no trend yet (fewer than 50 bars)" in entry.reasons
    assert entry.trend is None
