"""The minute stages against a real PostgreSQL and the local Alpaca server, on real bars.

Bars: 2019-02-12 from Alpha Vantage (masonblier/eqker, ISC), bundled in src/ops_pipeline_local/data/bars.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from recommendations import recommend

from ops_pipeline import alpaca, features, signals, telemetry
from ops_pipeline.config import AlpacaCredentials, RiskLimits, TradingMode, TradingState
from ops_pipeline.dispatch import AlpacaBroker, SimulatedBroker, dispatch
from ops_pipeline.errors import TransientError
from ops_pipeline.market import alpaca_calendar
from ops_pipeline_local.alpaca_server import LocalAlpaca

CREDS = AlpacaCredentials("TESTKEY", "test-secret")
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
TICKERS = ("AAPL", "AMZN", "MSFT", "SPY", "TSLA")


def _as_telemetry(bars):
    return [telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def _snapshot(conn, table, order="ticker, ts"):
    return conn.run(f"SELECT * FROM {table} ORDER BY {order}")  # fixed table names


@pytest.fixture
def market(bundled_bars):
    with LocalAlpaca(
        bundled_bars, CREDS.key_id, CREDS.secret_key, now=OPEN, no_shorting=True
    ) as server:
        yield server


@pytest.fixture
def data_client(market, monkeypatch):
    monkeypatch.setenv("ALPACA_DATA_URL", market.base_url)
    return alpaca.data_client(CREDS, timeout=5)


@pytest.fixture
def calendar(market, monkeypatch):
    """The market calendar the stages use, answered by the local server (NYSE sessions)."""
    monkeypatch.setenv("ALPACA_TRADING_URL", market.base_url)
    return alpaca_calendar(alpaca.trading_client(CREDS, timeout=5))


def independent_features(bars) -> pd.DataFrame:
    """pandas rolling windows over the stored rows, as the issue defines the features."""
    frame = pd.DataFrame(
        [(b.symbol, b.ts, float(b.close), b.volume) for b in bars],
        columns=["ticker", "ts", "close", "volume"],
    ).sort_values(["ticker", "ts"])
    grouped = frame.groupby("ticker")
    frame["sma20"] = grouped["close"].transform(lambda s: s.rolling(20).mean())
    frame["sma50"] = grouped["close"].transform(lambda s: s.rolling(50).mean())
    frame["avg20"] = grouped["volume"].transform(lambda s: s.rolling(20).mean())
    frame["ratio"] = (frame["volume"] / frame["avg20"]).where(frame["avg20"] > 0)
    return frame.set_index(["ticker", "ts"])


def test_features_match_an_independent_rolling_computation_on_real_bars(conn, bundled_bars):
    telemetry.upsert_bars(conn, _as_telemetry(bundled_bars))
    summary = features.compute(conn, OPEN + timedelta(hours=7))
    assert summary["computed"] == len(bundled_bars)
    expected = independent_features(bundled_bars)
    rows = conn.run(
        "SELECT ticker, ts, sma20, sma50, volume_avg_20, volume_ratio, volume_surge FROM lane_features"
    )
    assert len(rows) == len(expected)
    for ticker, ts, sma20, sma50, avg20, ratio, surge in rows:
        want = expected.loc[(ticker, pd.Timestamp(ts))]
        for got, exp in ((sma20, want.sma20), (sma50, want.sma50), (ratio, want.ratio)):
            if pd.isna(exp):
                assert got is None
            else:
                assert round(float(got), 4) == pytest.approx(round(exp, 4), abs=1.01e-4)
        assert (avg20 is None) == pd.isna(want.avg20)
        assert surge == (None if ratio is None else ratio > Decimal("3.0"))


def test_extended_hours_bars_get_no_features_and_stay_out_of_the_windows(conn, bundled_bars):
    # Real AAPL bars, and the same bars again as pre-market (08:00-09:29 New York) at 1/20th of
    # the volume, marked 'pre' as the ingestor marks them.
    regular = _as_telemetry([b for b in bundled_bars if b.symbol == "AAPL"][:120])
    pre = [
        replace(b, ts=b.ts - timedelta(minutes=90), volume=b.volume // 20, session="pre")
        for b in regular[:90]
    ]
    telemetry.upsert_bars(conn, pre + regular)
    features.compute(conn, regular[-1].ts + timedelta(minutes=1))

    rows = conn.run(
        "SELECT ts, sma20, sma50, volume_avg_20, volume_ratio FROM lane_features ORDER BY ts"
    )
    sessions = {b.ts: b.session for b in pre + regular}
    twin = features.lane_features(
        "AAPL",
        [(b.ts, b.close, b.volume) for b in sorted(pre + regular, key=lambda b: b.ts)],
        session_of=sessions.__getitem__,
    )
    assert [r[0] for r in rows] == [b.ts for b in regular]  # regular bars only
    assert rows == [[f.ts, f.sma20, f.sma50, f.volume_avg_20, f.volume_ratio] for f in twin]
    assert rows[18][1] is None and rows[19][1] is not None  # the 20th regular bar: 20 in window


def test_minute_by_minute_features_equal_the_batch_and_a_second_run_changes_nothing(
    conn, bundled_bars
):
    aapl = _as_telemetry([b for b in bundled_bars if b.symbol == "AAPL"][:90])
    for bar in aapl:
        telemetry.upsert_bars(conn, [bar])
        features.compute(conn, bar.ts + timedelta(minutes=1))
    incremental = _snapshot(conn, "lane_features")
    assert features.compute(conn, aapl[-1].ts + timedelta(minutes=1))["computed"] == 0
    conn.run("DELETE FROM lane_features")
    features.compute(conn, aapl[-1].ts + timedelta(minutes=1))
    batch = _snapshot(conn, "lane_features")
    strip = lambda rows: [r[:-1] for r in rows]
    assert strip(incremental) == strip(batch)


def test_a_corrected_bar_recomputes_its_features_and_the_later_ones(conn, bundled_bars):
    msft = _as_telemetry([b for b in bundled_bars if b.symbol == "MSFT"][:30])
    telemetry.upsert_bars(conn, msft)
    features.compute(conn, msft[-1].ts + timedelta(minutes=1))
    bar = msft[-5]
    corrected = telemetry.Bar(
        bar.ticker, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume * 10
    )
    assert telemetry.upsert_bars(conn, [corrected]) == (0, 1)
    assert features.compute(conn, msft[-1].ts + timedelta(minutes=1))["computed"] == 5


def test_a_bar_corrected_while_its_features_are_computed_stays_due(
    conn, database_url, bundled_bars
):
    """Two runs overlap: the computer reads a bar as due, then another run corrects the bar and
    commits before the computer clears it. The computer must clear only the marking it read, so the
    next run computes the corrected bar."""
    from ops_pipeline.db import connect, parse_database_url

    msft = _as_telemetry([b for b in bundled_bars if b.symbol == "MSFT"][:30])
    telemetry.upsert_bars(conn, msft)
    until = msft[-1].ts + timedelta(minutes=1)
    other = connect(parse_database_url(database_url))
    computed: list[dict] = []
    try:
        # The other run corrects the last bar in a transaction the computer's snapshot does not
        # see; the computer, clearing that bar's mark, waits for it to end.
        other.run("BEGIN")
        last = msft[-1]
        telemetry.upsert_bars(other, [replace(last, volume=last.volume * 10)])
        computer = threading.Thread(target=lambda: computed.append(features.compute(conn, until)))
        computer.start()
        for _ in range(500):  # until the computer waits on the other run's lock
            waiting = other.run(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting[0][0]:
                break
            time.sleep(0.01)
        other.run("COMMIT")
        computer.join(timeout=30)
    finally:
        other.close()
    assert (
        computed and computed[0]["computed"] == 30
    )  # the bars as the computer's snapshot saw them
    assert conn.run(
        "SELECT count(*) FROM lane_features_due WHERE ticker = 'MSFT' AND ts = :ts", ts=last.ts
    ) == [[1]]
    assert features.compute(conn, until)["computed"] == 1
    ((volume,),) = conn.run(
        "SELECT volume_current FROM lane_features WHERE ticker = 'MSFT' AND ts = :ts", ts=last.ts
    )
    assert volume == last.volume * 10
    assert conn.run("SELECT count(*) FROM lane_features_due") == [[0]]


def test_ingest_uses_one_multi_symbol_request_and_backfills_missed_minutes(
    conn, market, data_client, calendar
):
    market.set_time(OPEN + timedelta(minutes=10))
    first = telemetry.ingest(conn, data_client, TICKERS, OPEN + timedelta(minutes=10), calendar)
    assert first["inserted"] == 50
    bar_requests = [r for r in market.requests if r[1] == "/v2/stocks/bars"]
    assert len(bar_requests) == 1 and set(bar_requests[0][2]["symbols"].split(",")) == set(TICKERS)
    # The pipeline misses minutes 11 to 24; the run at 25 fills them in.
    market.set_time(OPEN + timedelta(minutes=25))
    second = telemetry.ingest(conn, data_client, TICKERS, OPEN + timedelta(minutes=25), calendar)
    assert second["inserted"] == 75
    stored = conn.run("SELECT count(*), max(ts) FROM lane_telemetry")[0]
    assert stored == [125, OPEN + timedelta(minutes=24)]


def test_a_thin_ticker_gets_its_own_request_from_where_it_is_missing(
    conn, bundled_bars, monkeypatch
):
    at = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))
    # TSLA has no trade (so no IEX bar) from 14:50 to 15:30 UTC: a thin name, for 40 minutes.
    quiet = (OPEN + timedelta(minutes=20), OPEN + timedelta(minutes=60))
    served = [b for b in bundled_bars if not (b.symbol == "TSLA" and quiet[0] <= b.ts < quiet[1])]
    with LocalAlpaca(served, CREDS.key_id, CREDS.secret_key, now=OPEN, no_shorting=True) as server:
        monkeypatch.setenv("ALPACA_DATA_URL", server.base_url)
        monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
        client = alpaca.data_client(CREDS, timeout=5)
        calendar = alpaca_calendar(alpaca.trading_client(CREDS, timeout=5))
        for m in range(20, 61):
            minute = OPEN + timedelta(minutes=m)
            server.set_time(minute)
            server.requests.clear()
            summary = telemetry.ingest(conn, client, TICKERS, minute, calendar)

        # The last run: the four busy tickers from their last bar (15:28) minus the 3-minute
        # refetch, in one request; TSLA alone from its last bar (14:49) minus the refetch.
        asked = sorted(
            (at(q["start"]), at(q["end"]), q["symbols"])
            for method, path, q in server.requests
            if path == "/v2/stocks/bars"
        )
        last_bar = OPEN + timedelta(minutes=59)
        assert asked == [
            (OPEN + timedelta(minutes=17), last_bar, "TSLA"),
            (OPEN + timedelta(minutes=56), last_bar, "AAPL,AMZN,MSFT,SPY"),
        ]
        assert [g["tickers"] for g in summary["requests"]] == [1, 4]
        assert summary["tickers_without_bar"] == ["TSLA"]
    stored = dict(conn.run("SELECT ticker, count(*) FROM lane_telemetry GROUP BY ticker"))
    assert stored == {t: 60 for t in TICKERS} | {"TSLA": 20}


def test_fetch_plan_groups_tickers_by_start_within_the_lookback_and_a_bounded_count():
    minute = OPEN + timedelta(hours=2)
    last = {
        "AAPL": minute - timedelta(minutes=1),
        "MSFT": minute - timedelta(minutes=1),
        "AMZN": minute - timedelta(minutes=10),
        "SPY": minute - timedelta(minutes=11),
        "TSLA": minute - timedelta(minutes=90),
        "IBM": minute - timedelta(days=30),  # older than the lookback
    }
    tickers = [*last, "NVDA"]  # NVDA: nothing stored
    floor = minute - telemetry.LOOKBACK
    assert timedelta(days=5, minutes=1) == telemetry.LOOKBACK  # a 5-day window and its first bar

    plan = telemetry.fetch_plan(last, tickers, minute, max_requests=10)
    assert [(g.start, g.tickers) for g in plan] == [
        (floor, ("IBM", "NVDA")),
        (minute - timedelta(minutes=92), ("TSLA",)),
        (minute - timedelta(minutes=13), ("SPY",)),
        (minute - timedelta(minutes=12), ("AMZN",)),
        (minute - timedelta(minutes=3), ("AAPL", "MSFT")),
    ]
    merged = telemetry.fetch_plan(last, tickers, minute, max_requests=3)
    assert [(g.start, g.tickers) for g in merged] == [
        (floor, ("IBM", "NVDA")),
        (minute - timedelta(minutes=92), ("TSLA",)),
        (minute - timedelta(minutes=13), ("SPY", "AMZN", "AAPL", "MSFT")),
    ]
    for group in merged:  # nobody starts later than it needs
        for ticker in group.tickers:
            assert group.start <= telemetry.ticker_start(last.get(ticker), minute)
    assert len(telemetry.fetch_plan(last, tickers, minute)) <= telemetry.MAX_REQUESTS


def test_only_closed_bars_are_stored_and_a_second_run_leaves_the_same_rows(
    conn, market, data_client, calendar
):
    minute = OPEN + timedelta(minutes=5)
    market.set_time(minute + timedelta(seconds=40))  # the 14:35 bar is still open
    telemetry.ingest(conn, data_client, TICKERS, minute, calendar)
    before = _snapshot(conn, "lane_telemetry")
    assert max(r[1] for r in before) == minute - timedelta(minutes=1)
    again = telemetry.ingest(conn, data_client, TICKERS, minute, calendar)
    assert (again["inserted"], again["corrected"]) == (0, 0)
    assert _snapshot(conn, "lane_telemetry") == before


def test_a_market_data_outage_is_a_transient_error(conn, market, data_client, calendar):
    market.fail_next(alpaca.ATTEMPTS, status=500)  # every try of the stage's own retry
    with pytest.raises(TransientError, match="bars"):
        telemetry.ingest(conn, data_client, TICKERS, OPEN + timedelta(minutes=5), calendar)


def test_malformed_bars_are_skipped_and_the_rest_stored():
    raw = {
        "AAPL": [
            {
                "t": "2019-02-12T14:30:00Z",
                "o": 170,
                "h": 171,
                "l": 169,
                "c": 170.5,
                "v": 1000,
                "n": None,
                "vw": None,
            },
            {"t": "2019-02-12T14:31:00Z", "o": 170, "h": 169, "l": 171, "c": 170.5, "v": 1000},
            {"t": "not a time", "o": 170, "h": 171, "l": 169, "c": 170.5, "v": 1000},
            {"t": "2019-02-12T14:32:00Z", "o": "NaN", "h": 171, "l": 169, "c": 170.5, "v": 1000},
        ],
        "EVIL'); DROP TABLE lane_telemetry;--": [{"t": "2019-02-12T14:30:00Z"}],
    }
    bars = telemetry.closed_bars(raw, ["AAPL"], OPEN + timedelta(minutes=5))
    assert [b.ts for b in bars] == [OPEN]


def _pipeline_through(conn, data_client, market, minute, calendar):
    market.set_time(minute)
    telemetry.ingest(conn, data_client, TICKERS, minute, calendar)
    features.compute(conn, minute)
    return signals.run(conn, TICKERS, minute)


def test_signal_engine_twice_for_the_same_minute_leaves_the_same_rows(
    conn, market, data_client, calendar
):
    created = 0
    for m in range(1, 240):
        created += _pipeline_through(
            conn, data_client, market, OPEN + timedelta(minutes=m), calendar
        )["created"]
        if created:
            break
    assert created, "real bars produce a recommendation within four hours"
    minute = OPEN + timedelta(minutes=m)
    before = _snapshot(conn, "dispatch_recommendations", "id")
    assert signals.run(conn, TICKERS, minute)["created"] == 0
    assert _snapshot(conn, "dispatch_recommendations", "id") == before
    (reason,) = conn.run("SELECT reason FROM dispatch_recommendations ORDER BY id LIMIT 1")[0]
    assert "volume ratio" in reason and " is " in reason and ": x" in reason


def _recommend(conn, ticker, action, minute, price="100", confidence="0.6"):
    conn.run(
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume)"
        " VALUES (:t, :ts, :p, :p, :p, :p, 1000) ON CONFLICT DO NOTHING",
        t=ticker,
        ts=minute - timedelta(minutes=1),
        p=price,
    )
    return recommend(conn, ticker, action, minute, price, confidence)


LIMITS = RiskLimits()


def test_a_recommendation_is_executed_once_however_often_the_dispatcher_runs(conn):
    minute = OPEN + timedelta(minutes=60)
    _recommend(conn, "AAPL", "BUY", minute, price="170")
    _recommend(conn, "MSFT", "BUY", minute, confidence="0.2")
    kwargs = dict(minute=minute, market_open=True, state=TradingState.ACTIVE, limits=LIMITS)
    first = dispatch(conn, SimulatedBroker(), **kwargs)
    assert first["outcomes"] == {"submitted": 1, "rejected": 1}  # fills at the next bar's open
    before = _snapshot(conn, "dispatch_executions", "id")
    for _ in range(3):
        assert dispatch(conn, SimulatedBroker(), **kwargs)["outcomes"] == {}
    assert _snapshot(conn, "dispatch_executions", "id") == before
    with pytest.raises(Exception, match="unique|duplicate"):
        conn.run(
            "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, mode, client_order_id,"
            " status, decided_at) SELECT recommendation_id, ticker, side, qty, mode, client_order_id || 'x',"
            " status, decided_at FROM dispatch_executions LIMIT 1"
        )


@pytest.fixture
def next_minute_broker(bundled_bars, monkeypatch):
    """The real TradingClient against a server that fills market orders a minute later."""
    with LocalAlpaca(
        bundled_bars,
        CREDS.key_id,
        CREDS.secret_key,
        now=OPEN,
        fill_market_orders="next_minute",
        no_shorting=True,
    ) as server:
        monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
        yield server, AlpacaBroker(alpaca.trading_client(CREDS, timeout=5), TradingMode.PAPER)


def _close(bars, ticker, ts):
    return next(b.close for b in bars if b.symbol == ticker and b.ts == ts)


def _executions(conn):
    return conn.run(
        "SELECT ticker, status, price, reject_reason, broker_order_id FROM dispatch_executions"
        " ORDER BY ticker"
    )


def test_a_submitted_order_is_reconciled_to_its_fill_on_the_next_run(
    conn, bundled_bars, next_minute_broker
):
    market, broker = next_minute_broker
    minute = OPEN + timedelta(minutes=60)
    market.set_time(minute)
    for ticker in ("AAPL", "MSFT"):
        _recommend(conn, ticker, "BUY", minute, price="100")
    kwargs = dict(market_open=True, state=TradingState.ACTIVE, limits=LIMITS)
    first = dispatch(conn, broker, minute=minute, **kwargs)
    assert first["outcomes"] == {"submitted": 2} and first["reconciled"] == 0
    assert [r[1] for r in _executions(conn)] == ["submitted", "submitted"]

    market.set_time(minute + timedelta(minutes=1))  # the bars that started at `minute` close
    seen = len(market.requests)
    second = dispatch(conn, broker, minute=minute + timedelta(minutes=1), **kwargs)
    assert second["reconciled"] == 2 and second["reconciled_outcomes"] == {"filled": 2}
    assert second["outcomes"] == {}
    (request,) = market.requests[seen:]  # one request for every order, whatever their number
    assert request[:2] == ("GET", "/v2/orders") and request[2]["status"] == "all"
    rows = _executions(conn)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (t, "filled", _close(bundled_bars, t, minute), None) for t in ("AAPL", "MSFT")
    ]
    assert all(r[4] for r in rows)
    third = dispatch(conn, broker, minute=minute + timedelta(minutes=2), **kwargs)
    assert third["reconciled"] == 0 and len(market.requests) == seen + 1  # nothing left to ask


def test_a_cancel_that_reaches_the_venue_after_the_fill_leaves_the_order_filled(
    conn, bundled_bars, next_minute_broker
):
    # The operator cancels the deployment's working market order within its minute: Alpaca
    # answers `pending_cancel`, and the venue fills it on the bar in progress before the cancel
    # lands. The row is `filled` at that bar's close and the shares are held. (A cancel that
    # wins, with nothing filled: test_money_path_edges, "broker: canceled".)
    market, broker = next_minute_broker
    minute = OPEN + timedelta(minutes=60)
    market.set_time(minute)
    rec_id = _recommend(conn, "AAPL", "BUY", minute, price="170")
    kwargs = dict(market_open=True, state=TradingState.ACTIVE, limits=LIMITS)
    assert dispatch(conn, broker, minute=minute, **kwargs)["outcomes"] == {"submitted": 1}
    ((order_id,),) = conn.run(
        "SELECT broker_order_id FROM dispatch_executions WHERE recommendation_id = :r", r=rec_id
    )
    broker.client.cancel_order_by_id(order_id)
    assert broker.client.get_order_by_id(order_id)["status"] == "pending_cancel"
    market.set_time(minute + timedelta(minutes=1))
    summary = dispatch(conn, broker, minute=minute + timedelta(minutes=1), **kwargs)
    assert summary["reconciled_outcomes"] == {"filled": 1}
    assert _executions(conn) == [
        ["AAPL", "filled", _close(bundled_bars, "AAPL", minute), None, order_id]
    ]
    assert [p["qty"] for p in broker.client.get_all_positions()] == ["58"]


def test_a_reconciliation_outage_fails_the_run_and_the_retry_reconciles_then_sends(
    conn, bundled_bars, next_minute_broker
):
    # No order goes out while the fate of our open ones is unknown: the gates would decide
    # against a book that misses them. The stage fails (retried, then alarmed), not a log line.
    market, broker = next_minute_broker
    minute = OPEN + timedelta(minutes=60)
    market.set_time(minute)
    _recommend(conn, "AAPL", "BUY", minute, price="170")
    kwargs = dict(market_open=True, state=TradingState.ACTIVE, limits=LIMITS)
    dispatch(conn, broker, minute=minute, **kwargs)
    later = minute + timedelta(minutes=1)
    market.set_time(later)
    _recommend(conn, "MSFT", "BUY", later, price="100")
    market.fail_next(alpaca.ATTEMPTS, status=503)  # the reconciliation request, every try
    with pytest.raises(TransientError, match="order reconciliation"):
        dispatch(conn, broker, minute=later, **kwargs)
    assert [r[1] for r in _executions(conn)] == ["submitted"]  # MSFT not decided yet
    market.set_time(later + timedelta(seconds=20))
    retried = dispatch(conn, broker, minute=later, **kwargs)  # the state machine's retry
    assert retried["reconciled_outcomes"] == {"filled": 1}
    assert retried["outcomes"] == {"submitted": 1}
    market.set_time(later + timedelta(minutes=1))
    dispatch(conn, broker, minute=later + timedelta(minutes=1), **kwargs)
    assert [(r[0], r[1], r[2]) for r in _executions(conn)] == [
        ("AAPL", "filled", _close(bundled_bars, "AAPL", minute)),
        ("MSFT", "filled", _close(bundled_bars, "MSFT", later)),
    ]
