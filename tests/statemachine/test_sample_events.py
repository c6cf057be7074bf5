"""Every function's `events/<function>.json` (the events `sam local invoke` uses) runs its real
handler, with the stack's parameters in moto, PostgreSQL, the local Alpaca server and the sample
feeds, and returns what that stage should for 10:00 New York on 2019-02-12.

The stages run once, in the order the two pipelines run them for that minute (news first, then
the minute pipeline, then the watchlist and the healthcheck), on a database of their own; each
test then checks one stage's result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ops_pipeline.event_time import parse_minute
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.feed_server import SAMPLE_FEEDS_DIR, FeedServer
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

ROOT = Path(__file__).resolve().parents[2]
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
TICKERS = ["AAPL", "AMZN", "MSFT", "SPY", "TSLA"]
# The order the pipelines run in for the sample events' minute (15:00 UTC, a 5-minute mark).
STAGES = [
    "rss_ingest",
    "classifier",
    "market_check",
    "telemetry_ingestor",
    "feature_computer",
    "signal_engine",
    "dispatcher",
    "watchlist_engine",
    "healthcheck",
]


def _stage_functions(runtime) -> dict[str, str]:
    """Function logical id -> its events file, by the function's folder name."""
    return {
        logical_id: spec.code_dir.name
        for logical_id, spec in runtime.functions.items()
        if spec.code_dir.name
        != "db_migrate"  # a CloudFormation event: tests/integration/test_db_migrate.py
    }


def _event(stage: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{stage}.json").read_text())


@pytest.fixture(scope="module")
def results(database_server, bundled_bars) -> Iterator[dict[str, Any]]:
    """Stage -> what its handler returned for its sample event."""
    with (
        throwaway_database(database_server) as url,
        FeedServer(SAMPLE_FEEDS_DIR) as feeds,
    ):
        parameters = {
            "Tickers": ",".join(TICKERS),
            "Feeds": json.dumps([{"name": f.name, "url": f.url} for f in feeds.feeds("*.xml")]),
        }
        with local_stack(bundled_bars, database_url=url, parameters=parameters, now=OPEN) as (
            runtime,
            market,
        ):
            assert set(_stage_functions(runtime).values()) == set(STAGES)
            logical_ids = {folder: lid for lid, folder in _stage_functions(runtime).items()}
            out = {}
            for stage in STAGES:
                event = _event(stage)
                market.set_time(parse_minute(event["time"]))
                out[stage] = runtime.invoke(logical_ids[stage], event)
                json.dumps(out[stage])  # what a state machine can carry
            yield out


def test_every_stage_function_has_a_sample_event():
    for stage in STAGES:
        event = _event(stage)
        assert event["time"] == "2019-02-12T15:00:00Z", stage


def test_rss_ingest_stores_the_sample_feeds_items(results):
    assert results["rss_ingest"] == {
        "feeds": 3,
        "fetched": 3,
        "not_modified": 0,
        "failed": 0,
        "items_seen": 15,
        "inserted": 15,
    }


def test_classifier_labels_every_new_item(results):
    result = results["classifier"]
    assert result["pending"] == result["classified"] == 15
    assert sum(result["by_label"].values()) == 15
    assert set(result["by_label"]) <= {"positive", "negative", "neutral"}
    assert result["with_tickers"] > 0
    assert result["failed_event_ids"] == [] and result["backlog_capped"] is False


def test_market_check_finds_the_regular_session(results):
    result = results["market_check"]
    assert result["time"] == "2019-02-12T15:00:00Z"
    assert result["execution"] == _event("market_check")["execution"]
    market = result["market"]
    assert market["is_open"] is True
    assert market["session_open"] == "2019-02-12T09:30:00-05:00"
    assert market["session_close"] == "2019-02-12T16:00:00-05:00"
    assert "credentials_missing" not in market


def test_telemetry_ingestor_stores_the_session_s_first_half_hour(results):
    result = results["telemetry_ingestor"]
    assert result["tickers"] == len(TICKERS)
    assert result["to"] == "2019-02-12T14:59:00+00:00"  # the bar that closed at 15:00
    # 09:30-09:59 New York: 30 bars for each of the 5 tickers, all new.
    assert result["received"] == result["stored"] == result["inserted"] == 150
    assert result["corrected"] == 0
    assert result["tickers_without_bar"] == []


def test_feature_computer_computes_every_new_bar(results):
    assert results["feature_computer"] == {
        "computed": 150,
        "by_ticker": dict.fromkeys(TICKERS, 30),
    }


def test_signal_engine_evaluates_every_ticker(results):
    result = results["signal_engine"]
    assert result["evaluated"] == 150  # every bar with features, each once (30 a ticker)
    # The sample headlines were fetched at 15:00, by the run of the same minute: a live signal
    # engine sees them from 15:01 on (no look-ahead), so at 15:00 only trend crosses can fire,
    # and on these bars none does.
    assert result["created"] == 0
    assert sum(result["by_band"].values()) == result["created"]
    assert result["killed"] == []


def test_dispatcher_simulates_every_recommendation(results):
    result = results["dispatcher"]
    assert result["mode"] == "simulation"
    assert result["considered"] == results["signal_engine"]["created"]
    assert sum(result["outcomes"].values()) == result["considered"]
    # A simulated order fills at the open of the next bar, on a later run: never at once.
    assert "filled" not in result["outcomes"]
    assert result["refused_by_broker"] == 0
    assert result["blocked_by_risk_gates"] == len(result["rejections"])
    for rejection in result["rejections"]:
        assert rejection["ticker"] in TICKERS and rejection["reason"]


def test_watchlist_engine_ranks_the_tickers(results):
    result = results["watchlist_engine"]
    assert result["scored"] == result["written"] == len(TICKERS)
    ranked = result["watchlist"]
    assert ranked and [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))
    assert {row["ticker"] for row in ranked} <= set(TICKERS)


def test_healthcheck_sees_fresh_data_in_the_session(results):
    result = results["healthcheck"]
    assert result["minute"] == "2019-02-12T15:00:00Z"
    assert result["market_open"] is True
    assert result["bar_age_seconds"] == result["feature_age_seconds"] == 0
    assert set(result["missing"]) <= {"recommendations"}  # none decided in this hour (see above)
    assert result["bars_last_hour"] == result["features_last_hour"] == 150
    assert result["recommendations_last_hour"] == results["signal_engine"]["created"]
    assert result["executions_last_hour"] == results["dispatcher"]["outcomes"]
