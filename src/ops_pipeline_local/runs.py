"""What a database already holds before a replay, and the record of the replays made into it.

A replay into a database that holds data either continues from it (`--continue`: the book there
is the replay's opening book, and the costs must be the stored run's) or starts clean
(`--fresh`: every table's rows go, the schema stays). The record is local-only bookkeeping, one
row per replay in `local_replay_runs`; the deployed stack never reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS local_replay_runs (
    id          bigserial PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    first_minute timestamptz NOT NULL,
    last_minute  timestamptz NOT NULL,
    mode        text NOT NULL,
    costs       jsonb NOT NULL
)
"""


@dataclass(frozen=True)
class Holdings:
    """What the database holds: its bars' span, its executions and its last replay's costs."""

    bars: int
    first_bar: datetime | None
    last_bar: datetime | None
    executions: int
    costs: dict[str, Any] | None  # the last recorded replay's, None when none was recorded
    mode: str | None  # the last recorded replay's trading mode

    @property
    def empty(self) -> bool:
        return self.bars == 0 and self.executions == 0

    def describe(self) -> str:
        span = (
            f"bars {self.first_bar:%Y-%m-%d %H:%M} to {self.last_bar:%Y-%m-%d %H:%M} UTC"
            if self.first_bar and self.last_bar
            else "no bars"
        )
        return f"{span}, {self.executions} executions"


def holdings(conn: Any) -> Holdings:
    """Read in one statement (the tables exist: the caller has migrated)."""
    conn.run(RUNS_TABLE)
    bars, first, last, executions, costs, mode = conn.run(
        "WITH last_run AS (SELECT costs, mode FROM local_replay_runs ORDER BY id DESC LIMIT 1)"
        " SELECT (SELECT count(*) FROM lane_telemetry), (SELECT min(ts) FROM lane_telemetry),"
        " (SELECT max(ts) FROM lane_telemetry), (SELECT count(*) FROM dispatch_executions),"
        " (SELECT costs FROM last_run), (SELECT mode FROM last_run)"
    )[0]
    if isinstance(costs, str):
        costs = json.loads(costs)
    return Holdings(bars, first, last, executions, costs, mode)


def start_clean(conn: Any) -> None:
    """Empty every table of the schema but the migrations' ledger, in one statement, and drop the
    sweep settings' schemas."""
    conn.run(RUNS_TABLE)
    (names,) = conn.run(
        "SELECT string_agg(format('%I', table_name), ', ') FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        " AND table_name <> 'schema_migrations'"
    )[0]
    if names:  # quoted names read from the catalogue, never input
        conn.run(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    # A backtest sweep's settings keep their rows in schemas of their own (`ops_pipeline.sweep`):
    # a clean start drops them with the rest, or their evaluations would outlive these bars.
    from ops_pipeline.sweep import SCHEMA_PREFIX

    ((schemas,),) = conn.run(
        "SELECT string_agg(format('%I', nspname), ', ') FROM pg_namespace"
        " WHERE starts_with(nspname, :prefix)",
        prefix=SCHEMA_PREFIX,
    )
    if schemas:  # quoted names read from the catalogue, never input
        conn.run(f"DROP SCHEMA {schemas} CASCADE")


def record(conn: Any, first: datetime, last: datetime, mode: str, costs: dict[str, Any]) -> None:
    conn.run(RUNS_TABLE)
    conn.run(
        "INSERT INTO local_replay_runs (first_minute, last_minute, mode, costs)"
        " VALUES (:first, :last, :mode, CAST(:costs AS jsonb))",
        first=first,
        last=last,
        mode=mode,
        costs=json.dumps(costs, sort_keys=True),
    )
