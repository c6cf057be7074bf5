from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ops_pipeline.features import volume_ratio
from ops_pipeline.signals import (
    Headline,
    NewsSummary,
    SignalInput,
    evaluate,
    volume_band,
    volume_multiplier,
)

D = Decimal


@pytest.mark.parametrize(
    ("ratio", "multiplier", "band"),
    [
        (None, D("0.0"), "KILL"),
        (D("0"), D("0.0"), "KILL"),
        (D("0.4999"), D("0.0"), "KILL"),
        (D("0.5"), D("0.3"), "WEAK"),
        (D("1.04"), D("0.3"), "WEAK"),  # the SPEC's TSLA example: WEAK, not "normal"
        (D("1.1999"), D("0.3"), "WEAK"),
        (D("1.2"), D("1.0"), "NORMAL"),
        (D("3.0"), D("1.0"), "NORMAL"),
        (D("3.0001"), D("1.3"), "SURGE"),
    ],
)
def test_volume_rule_at_its_boundaries(ratio, multiplier, band):
    assert volume_multiplier(ratio) == multiplier
    assert volume_band(ratio).name == band


def test_ratio_is_none_when_the_average_is_zero_or_missing():
    assert volume_ratio(1000, D("0")) is None
    assert volume_ratio(1000, None) is None
    assert volume_ratio(1500, D("1000.00")) == D("1.5000")
    assert volume_ratio(1, D("3")) == D("0.3333")


def _cross_up(ratio):
    return SignalInput(
        ticker="MSFT",
        ts=datetime(2019, 2, 12, 15, 0, tzinfo=UTC),
        close=D("106.50"),
        sma20=D("106.40"),
        sma50=D("106.20"),
        prev_close=D("106.30"),
        prev_sma20=D("106.35"),
        volume_ratio=ratio,
    )


def test_a_cross_up_with_normal_volume_is_a_buy_whose_reason_shows_ratio_and_multiplier():
    rec = evaluate(_cross_up(D("1.31")))
    assert rec is not None
    assert (rec.action, rec.base_confidence, rec.volume_multiplier, rec.confidence) == (
        "BUY",
        D("0.60"),
        D("1.0"),
        D("0.6000"),
    )
    assert "volume ratio 1.3100 is NORMAL: x1.0" in rec.reason


def test_weak_volume_scales_confidence_and_low_volume_kills():
    assert evaluate(_cross_up(D("0.58"))).confidence == D("0.1800")
    assert evaluate(_cross_up(D("0.45"))) is None  # the SPEC's MSFT example: killed
    assert evaluate(_cross_up(None)) is None


def test_surge_multiplies_by_1_3():
    assert evaluate(_cross_up(D("3.5"))).confidence == D("0.7800")


def test_no_cross_no_signal():
    flat = _cross_up(D("1.5"))
    still_above = SignalInput(
        **{**flat.__dict__, "prev_close": D("106.45"), "prev_sma20": D("106.40")}
    )
    assert evaluate(still_above) is None


def test_agreeing_news_raises_and_contradicting_news_lowers_the_base():
    good = NewsSummary((Headline(7, "Microsoft beats estimates", D("0.9")),))
    bad = NewsSummary((Headline(8, "Microsoft misses estimates", D("-0.9")),))
    up = evaluate(_cross_up(D("1.5")), good)
    down = evaluate(_cross_up(D("1.5")), bad)
    assert up.base_confidence == D("0.75") and up.news_event_ids == (7,)
    assert "Microsoft beats estimates" in up.reason and "agrees" in up.reason
    assert down.base_confidence == D("0.40") and "contradicts" in down.reason


def test_strong_news_alone_creates_a_recommendation_and_volume_still_applies_last():
    quiet = SignalInput(
        **{**_cross_up(D("0.8")).__dict__, "prev_close": D("106.45"), "prev_sma20": D("106.40")}
    )
    news = NewsSummary((Headline(1, "Microsoft wins a huge contract", D("0.95")),))
    rec = evaluate(quiet, news)
    assert (rec.rule, rec.action, rec.base_confidence, rec.confidence) == (
        "news",
        "BUY",
        D("0.55"),
        D("0.1650"),
    )
    against_trend = SignalInput(**{**quiet.__dict__, "sma20": D("106.0"), "sma50": D("106.2")})
    assert evaluate(against_trend, news) is None


def test_a_headline_makes_at_most_one_news_only_recommendation():
    quiet = SignalInput(
        **{**_cross_up(D("1.5")).__dict__, "prev_close": D("106.45"), "prev_sma20": D("106.40")}
    )
    acted = NewsSummary((Headline(1, "Microsoft wins a huge contract", D("0.95"), acted_on=True),))
    assert evaluate(quiet, acted) is None
    # ... but it still counts for a trend signal.
    assert evaluate(_cross_up(D("1.5")), acted).base_confidence == D("0.75")
