"""Ticker inference: cashtags, exchange forms, company aliases, no hits on ordinary words."""

from __future__ import annotations

import pytest

from ops_pipeline.news.classify import Classification, classify, classify_many
from ops_pipeline.news.tickers import (
    AMBIGUOUS_GUARDS,
    COMPANY_ALIASES,
    DEFAULT_UNIVERSE,
    infer_tickers,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$AAPL and $MSFT rally into the close", ["AAPL", "MSFT"]),
        ("Buffett adds to $BRK.B stake", ["BRK.B"]),
        ("$TSLA.", ["TSLA"]),
        ("Watching $nvda and $5 calls, $TOOLONG too", []),
        ("US$5bn deal; $GOOGL$AMZN", ["GOOGL"]),
        ("Apple Inc. (NASDAQ: AAPL) announces dividend", ["AAPL"]),
        ("Tesla (NYSE:TSLA) rises", ["TSLA"]),
        ("Microsoft Corp (Nasdaq:MSFT) beats", ["MSFT"]),
        ("Acme Corp (NYSE American: ACU) files 10-K", ["ACU"]),
        ("Nasdaq: Stocks fall at the open", []),
    ],
)
def test_cashtags_and_exchange_forms(text: str, want: list[str]) -> None:
    assert infer_tickers(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Apple unveils new iPhone lineup", ["AAPL"]),
        ("Apple's services revenue hits a record", ["AAPL"]),
        ("APPLE, MICROSOFT LEAD TECH GAINS", ["AAPL", "MSFT"]),
        ("Google parent Alphabet beats estimates", ["GOOGL"]),
        ("YouTube ad sales slow", ["GOOGL"]),
        ("Meta Platforms shares jump", ["META"]),
        ("Facebook and Instagram outage hits Meta", ["META"]),
        ("Nvidia and NVIDIA and Nvidia's chips", ["NVDA"]),
        ("Amazon Web Services signs deal; Amazon.com shares up", ["AMZN"]),
        ("Tesla cuts prices in China", ["TSLA"]),
        ("S&P 500 closes at a record high", ["SPY"]),
        ("JPMorgan, J.P. Morgan and Goldman Sachs raise targets", ["GS", "JPM"]),
        ("Johnson & Johnson and P&G report", ["JNJ", "PG"]),
        ("Netflix, AMD and Intel slide", ["AMD", "INTC", "NFLX"]),
        ("Berkshire Hathaway trims stake in Bank of America", ["BAC", "BRK.B"]),
        ("Visa and Mastercard settle swipe-fee case", ["MA", "V"]),
        ("Paypal shares rise", ["PYPL"]),
    ],
)
def test_company_aliases(text: str, want: list[str]) -> None:
    assert infer_tickers(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "apple pie recipe",
        "Apple pie recipe for the holidays",
        "APPLE PIE RECIPE",
        "Fresh apple juice and Apple cider at the orchard",
        "Weekend in the Big Apple",
        "Applebee's opens new restaurants",
        "amazon rainforest loses trees",
        "Amazon rainforest deforestation rises",
        "Fires in the Brazilian Amazon",
        "A meta-analysis of 40 trials",
        "Meta-analysis finds no effect",
        "Meta data is stored in a header",
        "Metaverse hype fades",
        "How a Tesla coil works",
        "Nikola Tesla was born in 1856",
        "A 3 Tesla MRI scanner",
        "tesla and google are verbs now",
        "Alphabet soup of regulators",
        "Oracle of Omaha speaks at annual meeting",
        "Visa rules for students tighten",
        "Student Visa applications fall",
        "Uber-rich families move money",
        "Chevron deference overturned by the court",
    ],
)
def test_ordinary_words_do_not_hit(text: str) -> None:
    assert infer_tickers(text) == []


def test_universe_filters_every_source() -> None:
    text = "$XYZ and Apple (NASDAQ: AAPL); Netflix (NASDAQ: NFLX) and $SPY"
    assert infer_tickers(text) == ["AAPL", "NFLX", "SPY", "XYZ"]
    assert infer_tickers(text, DEFAULT_UNIVERSE) == ["AAPL"]
    assert infer_tickers(text, "aapl, spy") == ["AAPL", "SPY"]
    assert infer_tickers(text, []) == []


def test_alias_table_covers_universe_and_large_caps() -> None:
    assert set(DEFAULT_UNIVERSE) | {"SPY"} <= set(COMPANY_ALIASES)
    assert len(COMPANY_ALIASES) >= 28
    for ticker, aliases in COMPANY_ALIASES.items():
        assert ticker == ticker.upper() and aliases
        for alias in aliases:
            assert infer_tickers(f"News: {alias} reports results") == [ticker], alias
    table = {a for aliases in COMPANY_ALIASES.values() for a in aliases}
    assert set(AMBIGUOUS_GUARDS) <= table


def test_empty_text() -> None:
    assert infer_tickers("") == []


def test_classify_combines_sentiment_and_tickers() -> None:
    c = classify("Apple shares surge after record quarterly earnings beat estimates")
    assert isinstance(c, Classification)
    assert c.label == "positive" and c.tickers == ("AAPL",)
    assert 0.0 <= c.score <= 1.0 and -1.0 <= c.polarity <= 1.0
    assert c.to_json() == {"label": "positive", "score": round(c.score, 4), "tickers": ["AAPL"]}


def test_classify_universe_and_batch() -> None:
    texts = ["Netflix shares tumble after subscriber miss", "Tesla to hold meeting on Monday"]
    many = classify_many(texts, universe=DEFAULT_UNIVERSE)
    assert [c.tickers for c in many] == [(), ("TSLA",)]
    assert many == [classify(t, DEFAULT_UNIVERSE) for t in texts]
    assert classify(texts[0]).tickers == ("NFLX",)
