"""A replay leaves the same rows whatever its step: `--step 1` (a run of the minute state machine
per minute), `--step 30` and `--step 390` (catch-up windows) over real bars of two consecutive
sessions (2019-02-12 and 2019-02-13, the bundled Alpha Vantage bars, masonblier/eqker, ISC),
in simulation.

Trimmed so that the test stays short: the replay covers the last 15 minutes of the first session
and the first 42 of the second; each database is first seeded, the same way for every step, with
the first session's earlier bars run through the stages in-process (features warm, positions
held). Positions carry over the night, and the windows span it: at step 390 (and at the
default, five days) the whole replay is one window.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from paths import bundled_day
from rows import PIPELINE_TABLES, pipeline_rows
from stages import run_minute

from ops_pipeline import telemetry
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.event_time import ONE_MINUTE
from ops_pipeline.market import NEW_YORK
from ops_pipeline_local.bars import read_bars
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

TICKERS = ("AAPL", "AMZN", "TSLA")
SEED = (date(2019, 2, 12), time(14, 0), time(15, 45))  # run in-process before each replay
SESSIONS = {  # New York day: the bars (by their start, New York time) replayed of it
    date(2019, 2, 12): (time(15, 45), time(16, 0)),
    date(2019, 2, 13): (time(9, 30), time(10, 12)),
}
# Each table's rows, minus surrogate ids and wall-clock stamps (created_at, computed_at, ...).


def _bars_between(day: date, start: time, end: time) -> list:
    bars = []
    for bar in read_bars(bundled_day(day)):
        local = bar.ts.astimezone(NEW_YORK)
        if bar.symbol in TICKERS and start <= local.time() < end:
            bars.append(bar)
    return bars


@pytest.fixture(scope="module")
def two_sessions():
    return [b for day, (start, end) in SESSIONS.items() for b in _bars_between(day, start, end)]


@pytest.fixture(scope="module")
def seed_bars(two_sessions):
    return _bars_between(*SEED)


def _seed(url: str, bars: list) -> None:
    """The seed's bars through the stages in-process, minute by minute, as runs would have."""
    conn = connect(parse_database_url(url))
    try:
        telemetry.upsert_bars(
            conn,
            [telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        )
        first = min(b.ts for b in bars) + ONE_MINUTE
        last = max(b.ts for b in bars) + ONE_MINUTE
        minute: datetime = first
        while minute <= last:
            run_minute(conn, TICKERS, minute)
            minute += ONE_MINUTE
    finally:
        conn.close()


@pytest.fixture(scope="module")
def by_step(two_sessions, seed_bars, database_server):
    """step -> the rows a replay at that step leaves, each in a fresh database."""
    results: dict[int, dict[str, list]] = {}

    def rows(step: int) -> dict[str, list]:
        if step not in results:
            with throwaway_database(database_server) as url:
                _seed(url, seed_bars)
                result = replay(two_sessions, database_url=url, step=step)
                assert not result.failures, result.failures[0]
                results[step] = pipeline_rows(url)
        return results[step]

    return rows


def test_a_minute_by_minute_replay_trades_over_both_sessions(by_step, two_sessions, seed_bars):
    rows = by_step(1)
    stored = len(two_sessions) + len(seed_bars)
    assert len(rows["lane_telemetry"]) == stored
    assert len(rows["signal_evaluations"]) == len(rows["lane_features"]) == stored
    executions = rows[next(t for t in PIPELINE_TABLES if t.startswith("dispatch_executions"))]
    replayed = [e for e in executions if e[1] >= min(b.ts for b in two_sessions)]
    filled = {(e[1].astimezone(NEW_YORK).date(), e[2]) for e in replayed if e[8] == "filled"}
    assert {day for day, _ in filled} == set(SESSIONS), "both replayed sessions trade"
    assert {side for _, side in filled} == {"buy", "sell"}


@pytest.mark.parametrize("step", [30, 390])
def test_a_replay_in_windows_leaves_the_same_rows_as_one_by_the_minute(by_step, step):
    by_minute, windowed = by_step(1), by_step(step)
    for table in PIPELINE_TABLES:
        assert windowed[table] == by_minute[table], table
