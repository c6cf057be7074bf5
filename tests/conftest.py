"""Shared fixtures: a real PostgreSQL database built by our migrations, and the real bars.

The database is the one on 127.0.0.1:5432 (user postgres, trust auth) when it answers, else the
project's embedded PostgreSQL. Each test session gets its own throwaway database; each test that
asks for `conn` starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pg8000.native
import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BUNDLED_BARS = ROOT / "src" / "ops_pipeline_local" / "data" / "bars" / "2019-02-12.csv"

TABLES = (
    "dispatch_executions, dispatch_recommendations, lane_features, lane_telemetry, "
    "inbound_events_classified, inbound_events_raw, feed_state, lane_watchlist_state"
)


def _server_url() -> str:
    url = os.environ.get("OPS_PIPELINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        connect(parse_database_url(url)).close()
        return url
    except Exception:  # noqa: BLE001 - no server here: use the embedded one
        from ops_pipeline_local.embedded_db import embedded_database_url

        return embedded_database_url()


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = _server_url()
    name = f"ops_test_{uuid.uuid4().hex[:10]}"
    admin = connect(parse_database_url(server))
    admin.run(f"CREATE DATABASE {name}")  # a name we made, never input
    url = _with_database(server, name)
    setup = connect(parse_database_url(url))
    migrate(setup)
    setup.close()
    yield url
    admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


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
