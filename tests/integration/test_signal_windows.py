"""The signal engine over catch-up windows, on real bars (2019-02-12, Alpha Vantage via
masonblier/eqker, ISC): one evaluation per ticker and bar, each decided at its close with the news
fetched by then, whatever the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ops_pipeline import features, signals, telemetry
from ops_pipeline.event_time import ONE_MINUTE

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
TICKERS = ["AAPL", "AMZN", "MSFT", "TSLA"]
EVALUATION_COLUMNS = (
    "ticker, ts, decided_at, close, sma20, sma50, prev_close, prev_sma20, volume_ratio, trend,"
    " news_net, news_event_ids, band, volume_multiplier, action, rule, confidence, reason"
)
RECOMMENDATION_COLUMNS = (
    "ticker, ts, decided_at, action, rule, price, base_confidence, volume_ratio,"
    " volume_multiplier, confidence, news_event_ids, reason"
)


def _store_bars(conn, bundled_bars, until):
    telemetry.upsert_bars(
        conn,
        [
            telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
            for b in bundled_bars
            if b.ts < until
        ],
    )
    features.compute(conn, until)


def _rows(conn, table, columns):
    return conn.run(f"SELECT {columns} FROM {table} ORDER BY ticker, ts")


def _add_news(conn, title, polarity, tickers, published, fetched):
    (event_id,) = conn.run(
        "INSERT INTO inbound_events_raw (feed_name, feed_url, item_key, title, published_at,"
        " fetched_at) VALUES ('wire', 'http://127.0.0.1/wire.xml', :k, :t, :p, :f) RETURNING id",
        k=title,
        t=title,
        p=published,
        f=fetched,
    )[0]
    conn.run(
        "INSERT INTO inbound_events_classified (event_id, label, score, polarity, tickers, model,"
        " event_time) VALUES (:e, 'positive', 0.9, :pol, CAST(:tickers AS text[]), 'test', :t)",
        e=event_id,
        pol=Decimal(polarity),
        tickers=tickers,
        t=published,
    )
    return event_id


def _per_minute(conn, first, last):
    minute = first
    while minute <= last:
        signals.run(conn, TICKERS, minute)
        minute += ONE_MINUTE


@pytest.fixture
def news(conn):
    """Strong headlines for AAPL, published before they were fetched by the 5-minute run."""
    return [
        _add_news(
            conn,
            f"Apple beats estimates {i}",
            "0.9",
            ["AAPL"],
            OPEN + timedelta(minutes=58 + 30 * i),
            OPEN + timedelta(minutes=60 + 30 * i),
        )
        for i in range(3)
    ]


def test_a_window_leaves_the_same_evaluations_and_recommendations_as_a_run_per_minute(
    conn, bundled_bars, news
):
    last = OPEN + timedelta(minutes=150)
    _store_bars(conn, bundled_bars, last)
    _per_minute(conn, OPEN + ONE_MINUTE, last)
    per_minute = (
        _rows(conn, "signal_evaluations", EVALUATION_COLUMNS),
        _rows(conn, "dispatch_recommendations", RECOMMENDATION_COLUMNS),
    )
    assert len(per_minute[0]) == 4 * 150  # every bar of every ticker, fired or not
    assert per_minute[1], "real bars and the news make recommendations within 150 minutes"
    assert any(r[4] == "news" for r in per_minute[1])  # the news rule itself is exercised

    conn.run("TRUNCATE signal_evaluations, dispatch_recommendations CASCADE")
    summary = signals.run(conn, TICKERS, OPEN + timedelta(minutes=40), since=OPEN)
    assert summary["evaluated"] == 4 * 40 and summary["late"] == 0
    signals.run(conn, TICKERS, last, since=OPEN + timedelta(minutes=41))
    assert (
        _rows(conn, "signal_evaluations", EVALUATION_COLUMNS),
        _rows(conn, "dispatch_recommendations", RECOMMENDATION_COLUMNS),
    ) == per_minute
    again = signals.run(conn, TICKERS, last, since=OPEN + timedelta(minutes=41))
    assert again["evaluated"] == 0 and again["created"] == 0


def test_news_counts_only_from_the_minute_after_it_was_fetched(conn, bundled_bars):
    fetched = OPEN + timedelta(minutes=65)
    event_id = _add_news(
        conn, "Apple soars", "0.9", ["AAPL"], OPEN + timedelta(minutes=50), fetched
    )
    _store_bars(conn, bundled_bars, OPEN + timedelta(minutes=70))
    signals.run(conn, ["AAPL"], OPEN + timedelta(minutes=70), since=OPEN + ONE_MINUTE)
    seen = dict(
        conn.run("SELECT decided_at, news_event_ids FROM signal_evaluations WHERE ticker = 'AAPL'")
    )
    assert seen[fetched] == []  # published 15 minutes earlier, fetched by the run racing this one
    assert seen[fetched + ONE_MINUTE] == [event_id]
    assert all(ids == [] for at, ids in seen.items() if at <= fetched)
    assert all(ids == [event_id] for at, ids in seen.items() if at > fetched)


def test_a_late_bar_is_decided_at_the_run_minute_and_explained_when_it_does_not_fire(
    conn, bundled_bars
):
    minute = OPEN + timedelta(minutes=90)
    _store_bars(conn, bundled_bars, minute)
    signals.run(conn, TICKERS, minute - timedelta(minutes=30))  # one run, then runs were lost
    summary = signals.run(conn, TICKERS, minute)  # a scheduled run: its window is its minute
    assert summary["evaluated"] == 4 * 30 and summary["late"] == 4 * 29
    rows = conn.run(
        "SELECT ts, decided_at, action, reason FROM signal_evaluations"
        " WHERE ts >= :since ORDER BY ts",
        since=minute - timedelta(minutes=30),
    )
    assert all(decided == minute for _, decided, _, _ in rows)
    quiet = [reason for _, _, action, reason in rows if action is None]
    assert quiet and all("no signal" in r or "killed" in r for r in quiet)
    recs = conn.run(
        "SELECT decided_at FROM dispatch_recommendations WHERE ts >= :s",
        s=minute - timedelta(minutes=30),
    )
    assert all(decided == minute for (decided,) in recs)
