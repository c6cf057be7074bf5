"""Every function's `events/<function>.json` (the events `sam local invoke` uses) runs its real
handler, with the stack's parameters in moto, PostgreSQL and the local Alpaca server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops_pipeline.event_time import parse_minute
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

ROOT = Path(__file__).resolve().parents[2]
OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(database_url, bundled_bars):
    tickers = {"Tickers": "AAPL,AMZN,MSFT,SPY,TSLA"}
    with local_stack(bundled_bars, database_url=database_url, parameters=tickers, now=OPEN) as s:
        yield s


def _stage_functions(runtime) -> dict[str, str]:
    """Function logical id -> its events file, by the function's folder name."""
    return {
        logical_id: spec.code_dir.name
        for logical_id, spec in runtime.functions.items()
        if spec.code_dir.name
        != "db_migrate"  # a CloudFormation event: tests/integration/test_db_migrate.py
    }


def test_every_stage_function_has_a_sample_event(stack):
    runtime, _ = stack
    for stage in _stage_functions(runtime).values():
        assert (ROOT / "events" / f"{stage}.json").is_file(), stage


@pytest.mark.parametrize(
    "stage",
    [
        "market_check",
        "telemetry_ingestor",
        "feature_computer",
        "signal_engine",
        "dispatcher",
        "rss_ingest",
        "classifier",
        "watchlist_engine",
        "healthcheck",
    ],
)
def test_the_sample_event_runs_the_real_handler(stack, conn, stage):
    runtime, market = stack
    event = json.loads((ROOT / "events" / f"{stage}.json").read_text())
    market.set_time(parse_minute(event["time"]))
    logical_id = {folder: lid for lid, folder in _stage_functions(runtime).items()}[stage]
    result = runtime.invoke(logical_id, event)
    assert isinstance(result, dict)
    json.dumps(result)  # what a state machine can carry
