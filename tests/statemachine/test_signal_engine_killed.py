"""The signal engine's handler over a catch-up window at many tickers: its result, a state's input
(at most 256 KB), lists the first killed signals and counts them all.

Bars: TSLA's real 2019-02-12 session (bundled, Alpha Vantage export kept in masonblier/eqker, ISC),
which has 8 trend crosses the volume rule kills, copied under 8 names: 64 killed signals.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from paths import bundled_day

from ops_pipeline import features, telemetry
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.bars import read_bars
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
CLOSE = datetime(2019, 2, 12, 21, 0, tzinfo=UTC)
NAMES = [f"TSL{letter}" for letter in "ABCDEFGH"]


def test_a_catch_up_at_many_tickers_lists_the_first_50_killed_signals_and_counts_them_all(
    database_server,
):
    tsla = [b for b in read_bars(bundled_day(date(2019, 2, 12))) if b.symbol == "TSLA"]
    clones = [replace(b, symbol=name) for name in NAMES for b in tsla]
    with throwaway_database(database_server) as url:
        conn = connect(parse_database_url(url))
        try:
            telemetry.upsert_bars(
                conn,
                [
                    telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
                    for b in clones
                    if OPEN <= b.ts < CLOSE
                ],
            )
            features.compute(conn, CLOSE)
        finally:
            conn.close()
        with local_stack(clones, database_url=url, parameters={"Tickers": ",".join(NAMES)}) as (
            runtime,
            _market,
        ):
            (engine,) = [
                lid
                for lid, spec in runtime.functions.items()
                if spec.code_dir.name == "signal_engine"
            ]
            result = runtime.invoke(
                engine,
                {
                    "time": CLOSE.isoformat().replace("+00:00", "Z"),
                    "since": (OPEN + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
                    "tickers": NAMES,
                },
            )
    assert result["killed_total"] == 8 * len(NAMES)
    assert len(result["killed"]) == 50
    assert all("is KILL" in why for why in result["killed"])
    assert len(json.dumps(result)) < 256 * 1024
