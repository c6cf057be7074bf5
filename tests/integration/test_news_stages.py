"""Classifier, watchlist engine and healthcheck against a real PostgreSQL (and moto for AWS).

Each test starts from the empty tables of the session's migrated database (`conn` in
tests/conftest.py); rows are inserted directly, the stage runs, the rows are checked; a second
run must leave the same rows.
"""

from __future__ import annotations

import importlib.util
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pg8000.native
import pytest

from ops_pipeline import health, watchlist
from ops_pipeline.db import query
from ops_pipeline.market import NEW_YORK, TradingSession
from ops_pipeline.news import classifier_stage
from ops_pipeline.news.sentiment import MODEL_NAME

REPO = Path(__file__).resolve().parents[2]
UNIVERSE = ("AAPL", "MSFT", "TSLA", "GOOGL", "AMZN", "META", "NVDA")
MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 New York
MIN = timedelta(minutes=1)


def add_raw(
    conn: pg8000.native.Connection,
    title: str,
    summary: str | None = None,
    published: datetime | None = None,
    fetched: datetime = MINUTE - 5 * MIN,
) -> int:
    (row,) = conn.run(
        "INSERT INTO inbound_events_raw (feed_name, feed_url, item_key, title, summary, published_at,"
        " fetched_at) VALUES ('test', 'http://127.0.0.1/feed.xml', :key, :title, :summary, :published,"
        " :fetched) RETURNING id",
        key=uuid.uuid4().hex,
        title=title,
        summary=summary,
        published=published,
        fetched=fetched,
    )
    return row[0]


def add_classified(
    conn: pg8000.native.Connection,
    tickers: list[str],
    polarity: str,
    event_time: datetime,
    fetched: datetime | None = None,
) -> int:
    event_id = add_raw(
        conn, f"headline about {tickers}", published=event_time, fetched=fetched or event_time
    )
    conn.run(
        "INSERT INTO inbound_events_classified (event_id, label, score, polarity, tickers, model,"
        " event_time) VALUES (:id, 'neutral', 0.5, :polarity, CAST(:tickers AS text[]), 'test', :t)",
        id=event_id,
        polarity=polarity,
        tickers=tickers,
        t=event_time,
    )
    return event_id


def add_features(
    conn: pg8000.native.Connection,
    ticker: str,
    ts: datetime,
    close: str,
    sma20: str | None,
    sma50: str | None,
    volume_ratio: str | None,
) -> None:
    conn.run(
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume)"
        " VALUES (:ticker, :ts, :close, :close, :close, :close, 1000)",
        ticker=ticker,
        ts=ts,
        close=close,
    )
    conn.run(
        "INSERT INTO lane_features (ticker, ts, close, sma20, sma50, volume_current, volume_ratio,"
        " bars_in_window) VALUES (:ticker, :ts, :close, :sma20, :sma50, 1000, :ratio, 50)",
        ticker=ticker,
        ts=ts,
        close=close,
        sma20=sma20,
        sma50=sma50,
        ratio=volume_ratio,
    )


# --- classifier --------------------------------------------------------------------------------


def test_classifier_stores_each_pending_event_once(
    conn: pg8000.native.Connection,
) -> None:
    apple = add_raw(
        conn,
        "Apple shares surge after record iPhone sales beat estimates",
        "Analysts raise targets.",
        published=MINUTE - timedelta(hours=3),
    )
    tesla = add_raw(conn, "Tesla recalls 300,000 vehicles; shares fall 5%")  # no published time
    pie = add_raw(conn, "Grandma's apple pie recipe", published=MINUTE - timedelta(hours=1))
    outside = add_raw(conn, "$XYZ jumps 40% on buyout talk", published=MINUTE - timedelta(hours=1))
    stale = add_raw(conn, "Microsoft beats", fetched=MINUTE - timedelta(days=3))
    future = add_raw(conn, "Nvidia beats", fetched=MINUTE + 5 * MIN)

    first = classifier_stage.run(conn, UNIVERSE, MINUTE)
    assert first["pending"] == first["classified"] == 4
    assert first["failed_event_ids"] == [] and not first["backlog_capped"]
    assert first["model"] == MODEL_NAME

    stored = {r["event_id"]: r for r in query(conn, "SELECT * FROM inbound_events_classified")}
    assert set(stored) == {apple, tesla, pie, outside}  # not the stale one, not the future one
    assert stale not in stored and future not in stored
    assert stored[apple]["tickers"] == ["AAPL"]
    assert stored[tesla]["tickers"] == ["TSLA"]
    assert stored[pie]["tickers"] == []  # an apple pie is not AAPL
    assert stored[outside]["tickers"] == []  # outside the universe
    assert stored[apple]["event_time"] == MINUTE - timedelta(hours=3)  # published
    assert stored[tesla]["event_time"] == MINUTE - 5 * MIN  # fetched
    assert stored[apple]["label"] == "positive" and stored[tesla]["label"] == "negative"
    for r in stored.values():
        assert r["model"] == MODEL_NAME
        assert r["label"] in ("positive", "negative", "neutral")
        assert Decimal(0) <= r["score"] <= Decimal(1) and Decimal(-1) <= r["polarity"] <= Decimal(1)
        assert r["score"] == r["score"].quantize(Decimal("0.0001"))

    before = query(conn, "SELECT * FROM inbound_events_classified ORDER BY event_id")
    second = classifier_stage.run(conn, UNIVERSE, MINUTE)
    assert (second["pending"], second["classified"]) == (0, 0)
    assert query(conn, "SELECT * FROM inbound_events_classified ORDER BY event_id") == before

    # A later minute sees the one fetched after the first.
    third = classifier_stage.run(conn, UNIVERSE, MINUTE + 5 * MIN)
    assert third["classified"] == 1
    assert query(
        conn, "SELECT tickers FROM inbound_events_classified WHERE event_id = :i", i=future
    ) == [{"tickers": ["NVDA"]}]


def test_classifier_skips_a_text_that_fails_and_keeps_the_rest(
    conn: pg8000.native.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = add_raw(conn, "Microsoft and Nvidia extend AI partnership")
    bad = add_raw(conn, "POISON headline")
    real_classify = classifier_stage.classify

    def fail_batch(texts: Any, universe: Any = None) -> Any:
        raise RuntimeError("batch failed")

    def fail_poison(text: str, universe: Any = None) -> Any:
        if "POISON" in text:
            raise ValueError("cannot classify this")
        return real_classify(text, universe)

    monkeypatch.setattr(classifier_stage, "classify_many", fail_batch)
    monkeypatch.setattr(classifier_stage, "classify", fail_poison)
    summary = classifier_stage.run(conn, UNIVERSE, MINUTE)
    assert summary["classified"] == 1 and summary["failed_event_ids"] == [bad]
    assert [
        r["event_id"] for r in query(conn, "SELECT event_id FROM inbound_events_classified")
    ] == [good]


def test_classifier_bounds_a_run(conn: pg8000.native.Connection) -> None:
    ids = [add_raw(conn, f"Apple headline {i}", fetched=MINUTE - i * MIN) for i in range(1, 6)]
    summary = classifier_stage.run(conn, UNIVERSE, MINUTE, limit=3)
    assert summary["classified"] == 3 and summary["backlog_capped"]
    done = {r["event_id"] for r in query(conn, "SELECT event_id FROM inbound_events_classified")}
    assert done == set(ids[:3])  # newest first
    classifier_stage.run(conn, UNIVERSE, MINUTE, limit=3)
    assert conn.run("SELECT count(*) FROM inbound_events_classified")[0][0] == 5


# --- watchlist ---------------------------------------------------------------------------------


def test_watchlist_counts_a_headline_only_once_it_was_fetched(
    conn: pg8000.native.Connection,
) -> None:
    # Published 10 minutes before the minute, but the feed only showed it after: a live run
    # at the minute could not have seen it, so a replay must not either.
    add_classified(conn, ["NVDA"], "0.9", MINUTE - 10 * MIN, fetched=MINUTE + 5 * MIN)
    add_classified(conn, ["MSFT"], "0.9", MINUTE - 10 * MIN, fetched=MINUTE)
    watchlist.run(conn, UNIVERSE, MINUTE, top_n=2)
    counts = dict(
        conn.run("SELECT ticker, news_count FROM lane_watchlist_state WHERE ts = :m", m=MINUTE)
    )
    assert counts["NVDA"] == 0 and counts["MSFT"] == 1


def test_watchlist_scores_ranks_and_upserts_idempotently(
    conn: pg8000.native.Connection,
) -> None:
    # AAPL: uptrend 0.25%, +0.5% over the window, ratio 2.0, good news -> +3.0
    add_features(conn, "AAPL", MINUTE - 20 * MIN, "100", "100.2", "100", "1.5")
    add_features(conn, "AAPL", MINUTE - MIN, "100.5", "100.25", "100", "2.0")
    add_classified(conn, ["AAPL"], "0.6", MINUTE - 30 * MIN)
    add_classified(conn, ["AAPL", "MSFT"], "0.4", MINUTE - 90 * MIN)
    # not counted: older than 2 h, after the minute
    add_classified(conn, ["AAPL"], "-0.9", MINUTE - 121 * MIN)
    add_classified(conn, ["AAPL"], "-0.9", MINUTE + MIN)
    # TSLA: downtrend, no news, features of a bar after the minute ignored
    add_features(conn, "TSLA", MINUTE - 2 * MIN, "200", "199", "200", "1.0")
    add_features(conn, "TSLA", MINUTE, "300", "300", "200", "9.0")
    # NVDA: features too old (> 30 min): news only
    add_features(conn, "NVDA", MINUTE - 45 * MIN, "50", "60", "50", "3.0")
    add_classified(conn, ["NVDA"], "-0.8", MINUTE - 10 * MIN)

    first = watchlist.run(conn, UNIVERSE, MINUTE, top_n=2)
    assert first["scored"] == first["written"] == len(UNIVERSE)
    state = {
        r["ticker"]: r
        for r in query(conn, "SELECT * FROM lane_watchlist_state WHERE ts = :m", m=MINUTE)
    }
    assert set(state) == set(UNIVERSE)

    aapl = state["AAPL"]
    assert aapl["score"] == Decimal("3.0000") and aapl["rank"] == 1 and aapl["on_watchlist"]
    assert (aapl["news_count"], aapl["net_sentiment"]) == (2, Decimal("1.0000"))
    assert aapl["volume_ratio"] == Decimal("2.0000") and aapl["trend"] == Decimal("0.002500")
    assert "uptrend: sma20 0.25% above sma50" in aapl["reasons"]
    assert "up 0.50% over 19 min" in aapl["reasons"]
    assert "2 headlines, net sentiment +1.00" in aapl["reasons"]

    nvda = state["NVDA"]  # 1.5 * (-0.4) = -0.6
    assert nvda["score"] == Decimal("-0.6000") and nvda["volume_ratio"] is None
    assert "no features in the last 30 min" in nvda["reasons"]

    tsla = state["TSLA"]  # trend -0.5% -> -1.0, a single bar: no return, ratio 1.0
    assert tsla["score"] == Decimal("-1.0000") and tsla["rank"] == 2 and tsla["on_watchlist"]
    msft = state["MSFT"]  # 1.5 * 0.2 = 0.3
    assert msft["score"] == Decimal("0.3000") and not msft["on_watchlist"]
    assert [t for t, r in sorted(state.items(), key=lambda kv: kv[1]["rank"])][:4] == [
        "AAPL",
        "TSLA",
        "NVDA",
        "MSFT",
    ]
    assert [w["ticker"] for w in first["watchlist"]] == ["AAPL", "TSLA"]

    before = query(conn, "SELECT * FROM lane_watchlist_state ORDER BY ticker, ts")
    second = watchlist.run(conn, UNIVERSE, MINUTE, top_n=2)
    assert second["written"] == 0
    assert query(conn, "SELECT * FROM lane_watchlist_state ORDER BY ticker, ts") == before

    # A change in the inputs updates the minute's row in place.
    add_classified(conn, ["MSFT"], "-1.0", MINUTE - 5 * MIN)
    third = watchlist.run(conn, UNIVERSE, MINUTE, top_n=2)
    assert third["written"] >= 1
    assert conn.run("SELECT count(*) FROM lane_watchlist_state")[0][0] == len(UNIVERSE)


# --- healthcheck -------------------------------------------------------------------------------


def _add_recommendation(
    conn: pg8000.native.Connection, ticker: str, decided: datetime, status: str | None
) -> None:
    (row,) = conn.run(
        "INSERT INTO dispatch_recommendations (ticker, ts, decided_at, action, rule, price,"
        " base_confidence, volume_multiplier, confidence, reason) VALUES (:t, :ts, :d, 'BUY', 'test',"
        " 100, 0.6, 1.0, 0.6, 'test') RETURNING id",
        t=ticker,
        ts=decided - MIN,
        d=decided,
    )
    if status:
        conn.run(
            "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, mode,"
            " client_order_id, status, decided_at) VALUES (:r, :t, 'buy', 1, 'simulation', :c, :s, :d)",
            r=row[0],
            t=ticker,
            c=uuid.uuid4().hex,
            s=status,
            d=decided,
        )


def test_snapshot_reads_freshness_and_counts_in_one_query(
    conn: pg8000.native.Connection,
) -> None:
    empty = health.freshness(health.read_snapshot(conn, UNIVERSE, MINUTE), MINUTE)
    assert empty.bar_age == empty.feature_age == empty.raw_event_age == health.MISSING_AGE_SECONDS

    for i in range(3, 8):  # AAPL bars 14:53..14:57 with features
        add_features(conn, "AAPL", MINUTE - i * MIN, "100", None, None, None)
    add_features(conn, "MSFT", MINUTE - 2 * MIN, "100", None, None, None)
    conn.run(  # a bar without features yet, one after the minute, one of a ticker outside the universe
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume) VALUES"
        " ('MSFT', :a, 1, 1, 1, 1, 1), ('MSFT', :b, 1, 1, 1, 1, 1), ('IBM', :c, 1, 1, 1, 1, 1)",
        a=MINUTE - MIN,
        b=MINUTE,
        c=MINUTE - 2 * MIN,
    )
    add_features(conn, "AAPL", MINUTE - 90 * MIN, "100", None, None, None)  # outside the hour
    add_classified(conn, ["AAPL"], "0.5", MINUTE - 40 * MIN)  # raw fetched at the same time
    add_raw(conn, "newer raw", fetched=MINUTE - 10 * MIN)  # not classified yet
    add_raw(conn, "from the future", fetched=MINUTE + 10 * MIN)
    _add_recommendation(conn, "AAPL", MINUTE - 4 * MIN, "filled")
    _add_recommendation(conn, "MSFT", MINUTE - 3 * MIN, "filled")
    _add_recommendation(conn, "TSLA", MINUTE - 2 * MIN, "rejected")
    _add_recommendation(conn, "NVDA", MINUTE - 70 * MIN, "filled")

    snapshot = health.read_snapshot(conn, UNIVERSE, MINUTE)
    assert snapshot.newest_bar == MINUTE - MIN
    assert snapshot.newest_feature == MINUTE - 2 * MIN
    assert snapshot.newest_raw_event == MINUTE - 10 * MIN
    assert snapshot.newest_classified_event == MINUTE - 40 * MIN
    assert snapshot.newest_recommendation == MINUTE - 2 * MIN
    assert snapshot.bars_last_hour == 7  # 5 AAPL + 2 MSFT; not 14:00 (30 min), IBM or 15:00
    assert snapshot.features_last_hour == 6
    assert snapshot.recommendations_last_hour == 3
    assert snapshot.executions_last_hour == {"filled": 2, "rejected": 1}
    assert snapshot.unclassified_events == 1

    session = TradingSession.from_calendar_entry(
        {"date": f"{MINUTE.astimezone(NEW_YORK):%Y-%m-%d}", "open": "09:30", "close": "16:00"}
    )
    report = health.health_report(snapshot, MINUTE, session=session).as_dict()
    assert report["bar_age_seconds"] == 0.0
    assert report["feature_age_seconds"] == 60.0
    assert report["news_age_seconds"] == 600.0
    assert report["classified_event_age_seconds"] == 2400.0
    assert report["recommendation_age_seconds"] == 120.0
    assert report["market_open"] is True and report["missing"] == []


# --- the three handlers, as Lambda runs them (moto for SSM and Step Functions) -------------------


def _load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"ops_fn_test_{name}", REPO / "functions" / name / "app.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Context:
    function_name = "test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    memory_limit_in_mb = 512
    aws_request_id = "test"
    log_group_name = "test"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _emf_metrics(stdout: str) -> dict[str, tuple[list[list[str]], Any]]:
    """Metric name -> (dimension sets, value) from the EMF lines a handler printed."""
    found: dict[str, tuple[list[list[str]], Any]] = {}
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(blob, dict):
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == "OpsPipeline"
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                if isinstance(value, list) and len(value) == 1:  # Powertools writes [1.0]
                    value = value[0]
                found[metric["Name"]] = (directive["Dimensions"], value)
                assert blob["service"] == "ops-pipeline"
    return found


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Any]:
    pytest.importorskip("moto")
    import boto3
    from moto import mock_aws

    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "ops-pipeline",
        "POWERTOOLS_METRICS_NAMESPACE": "OpsPipeline",
        "TICKERS_PARAM": "/ops-pipeline-test/tickers",
        "DATABASE_URL": database_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    # The shared Metrics object read its settings when first imported; give it the template's.
    from ops_pipeline.observability import metrics

    monkeypatch.setattr(metrics, "namespace", "OpsPipeline")
    monkeypatch.setattr(metrics, "service", "ops-pipeline")
    monkeypatch.delenv("MINUTE_STATE_MACHINE_ARN", raising=False)
    with mock_aws():
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        boto3.client("ssm").put_parameter(
            Name=env["TICKERS_PARAM"], Value=",".join(UNIVERSE), Type="String"
        )
        yield boto3
        parameters.clear_caches()


def _invoke(
    name: str, minute: datetime
) -> tuple[dict[str, Any], dict[str, tuple[list[list[str]], Any]]]:
    module = _load_handler(name)
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            result = module.lambda_handler(
                {"time": minute.strftime("%Y-%m-%dT%H:%M:%SZ"), "execution": "arn:test"}, _Context()
            )
    finally:
        module.DB.close()
    json.dumps(result)  # what Step Functions receives must serialise
    return result, _emf_metrics(out.getvalue())


def test_news_handlers(aws: Any, conn: pg8000.native.Connection) -> None:
    add_raw(conn, "Apple shares surge after record iPhone sales beat estimates")
    classified, emitted = _invoke("classifier", MINUTE)
    assert classified["classified"] == 1
    assert emitted["EventsClassified"] == ([["service"]], 1.0)

    result, emitted = _invoke("watchlist_engine", MINUTE)
    assert result["scored"] == len(UNIVERSE)
    assert [w["ticker"] for w in result["watchlist"]] == ["AAPL"]
    assert "WatchlistSize" in emitted


@pytest.fixture
def local_alpaca(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local Alpaca server (its calendar is the NYSE's), with its keys in the stack's secret."""
    from ops_pipeline_local.alpaca_server import LocalAlpaca

    key_id, secret_key = "TESTKEY", "test-secret"
    arn = aws.client("secretsmanager").create_secret(
        Name="alpaca-test", SecretString=json.dumps({"key_id": key_id, "secret_key": secret_key})
    )["ARN"]
    monkeypatch.setenv("ALPACA_SECRET_ARN", arn)
    with LocalAlpaca([], key_id, secret_key) as server:
        monkeypatch.setenv("ALPACA_TRADING_URL", server.base_url)
        yield server


def test_healthcheck_handler_reads_the_minute_pipelines_executions(
    aws: Any,
    local_alpaca: Any,
    conn: pg8000.native.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Step Functions stamps executions with the wall clock: check at the current minute.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    add_features(conn, "AAPL", now - 3 * MIN, "100", None, None, None)

    result, emitted = _invoke("healthcheck", now)  # no state machine configured
    assert result["minute_executions"] is None
    assert "MinuteExecutionsLastHour" not in emitted and "LastMinuteExecutionFailed" not in emitted
    assert result["bar_age_seconds"] == 120.0

    sfn = aws.client("stepfunctions")
    iam_role = "arn:aws:iam::123456789012:role/test"
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = sfn.create_state_machine(name="minute-pipeline", definition=definition, roleArn=iam_role)[
        "stateMachineArn"
    ]
    monkeypatch.setenv("MINUTE_STATE_MACHINE_ARN", arn)
    result, emitted = _invoke("healthcheck", now)
    assert result["minute_executions"]["started_last_hour"] == 0
    assert emitted["MinuteExecutionsLastHour"][1] == 0.0
    assert emitted["LastMinuteExecutionFailed"][1] == 0.0

    executions = [
        sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"] for _ in range(3)
    ]
    sfn.stop_execution(executionArn=executions[1], error="Test", cause="stopped by the test")
    # Check at the minute the last one started: the wall clock may have crossed a minute since
    # `now`, and a run that starts after the checked minute is rightly not counted in it.
    started = sfn.describe_execution(executionArn=executions[-1])["startDate"]
    checked = started.astimezone(UTC).replace(second=0, microsecond=0)
    result, emitted = _invoke("healthcheck", checked)
    runs = result["minute_executions"]
    assert runs["started_last_hour"] == 3
    assert runs["last_finished_status"] == "ABORTED" and runs["last_failed"] is True
    assert emitted["MinuteExecutionsLastHour"] == ([["service"]], 3.0)
    assert emitted["LastMinuteExecutionFailed"][1] == 1.0
    for metric in (
        "BarAgeSeconds",
        "FeatureAgeSeconds",
        "NewsAgeSeconds",
        "MarketOpen",
        "BarsLastHour",
        "RecommendationsLastHour",
    ):
        assert emitted[metric][0] == [["service"]], metric
    assert emitted["BarAgeSeconds"][1] == 120.0 + (checked - now).total_seconds()
    assert emitted["NewsAgeSeconds"][1] == health.MISSING_AGE_SECONDS
    calendar = local_alpaca._calendar  # exchange_calendars XNYS, which the server answers from
    session = calendar.session(checked.astimezone(NEW_YORK).date())
    market_open = session is not None and session.opens < checked <= session.closes
    assert emitted["MarketOpen"][1] == (1.0 if market_open else 0.0)
    assert {r[1] for r in local_alpaca.requests} == {"/v2/calendar"}
    assert emitted["BarsLastHour"][1] == 1.0


def test_healthcheck_calendar_outage_is_transient_and_the_data_metrics_still_go_out(
    aws: Any, local_alpaca: Any, conn: pg8000.native.Connection
) -> None:
    from ops_pipeline import alpaca
    from ops_pipeline.errors import TransientError

    local_alpaca.fail_next(alpaca.ATTEMPTS, status=503)  # every try of the stage's own retry
    module = _load_handler("healthcheck")
    out = io.StringIO()
    try:
        with redirect_stdout(out), pytest.raises(TransientError, match="calendar"):
            module.lambda_handler(
                {"time": MINUTE.strftime("%Y-%m-%dT%H:%M:%SZ"), "execution": "arn:test"},
                _Context(),
            )
    finally:
        module.DB.close()
    emitted = _emf_metrics(out.getvalue())
    assert "BarAgeSeconds" in emitted and "MarketOpen" not in emitted
