"""Shared fixtures: a real PostgreSQL database built by our migrations, and the real bars.

The database is the one on 127.0.0.1:5432 (user postgres, trust auth) when it answers, else the
project's embedded PostgreSQL. Each test session gets its own throwaway database; each test that
asks for `conn` starts from empty tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import pg8000.native
import pytest
from paths import BUNDLED_BARS

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.embedded_db import server_or_embedded, throwaway_database
from ops_pipeline_local.faults import FaultPlan

TABLES = (  # every table of layers/shared/ops_pipeline/migrations/ but schema_migrations
    "dispatch_executions, dispatch_recommendations, lane_features, lane_telemetry, "
    "inbound_events_classified, inbound_events_raw, feed_state, lane_watchlist_state, "
    "dispatch_deployment, signal_evaluations, lane_telemetry_history, market_data_source, "
    "market_data_switches, lane_features_due, signal_evaluations_due"
)


@pytest.fixture(scope="session")
def database_server() -> str:
    """The URL of a PostgreSQL server that answers: the local one, else the embedded one."""
    return server_or_embedded()


@pytest.fixture(scope="session")
def database_url(database_server: str) -> Iterator[str]:
    with throwaway_database(database_server) as url:
        yield url


@pytest.fixture
def conn(database_url: str) -> Iterator[pg8000.native.Connection]:
    connection = connect(parse_database_url(database_url))
    connection.run(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def bundled_bars() -> list:
    from ops_pipeline_local.bars import read_bars

    return read_bars(BUNDLED_BARS)


@pytest.fixture
def fault_plan(request: pytest.FixtureRequest) -> FaultPlan:
    """The local Alpaca's fault plan: `data=0.1,orders=0.1` (seed 0), or the spec given with
    `@pytest.mark.parametrize("fault_plan", ["data=0.2,seed=3"], indirect=True)`. Hand it to
    `LocalAlpaca(..., faults=fault_plan)` or `local_stack(..., faults=fault_plan)`."""
    return FaultPlan.parse(getattr(request, "param", "data=0.1,orders=0.1"))
