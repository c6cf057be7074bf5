"""Telemetry failover through the real parts: a `--step 1` replay of the bundled session (real
bars of 2019-02-12) in which the local Alpaca's market data fails for 45 minutes (errors, then
a feed that stops at its last bar), with a local Massive serving the same minutes at three times
the volume (the backup feed: a SIP feed carries many times IEX's volume).

Trimmed to what the switches need: two tickers, 09:30-11:15 New York, the outage 10:00-10:45;
that is more than the 20-bar (and 50-bar) history before the switch and after the switch back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta

import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.market import NEW_YORK
from ops_pipeline.massive import SOURCE as BACKUP
from ops_pipeline.telemetry import PRIMARY_SOURCE
from ops_pipeline_local.cli import status_report
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.faults import FaultPlan
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

TICKERS = ("AAPL", "SPY")
FIRST, LAST = time(9, 30), time(11, 15)
OUTAGE = (time(10, 0), time(10, 45))
VOLUME_FACTOR = 3
DAY = datetime(2019, 2, 12, tzinfo=NEW_YORK)


def _at(t: time) -> datetime:
    return datetime.combine(DAY.date(), t, NEW_YORK)


@pytest.fixture(scope="module")
def primary_bars(bundled_bars):
    return [
        b
        for b in bundled_bars
        if b.symbol in TICKERS and FIRST <= b.ts.astimezone(NEW_YORK).time() < LAST
    ]


@pytest.fixture(scope="module")
def backup_bars(primary_bars):
    """The backup feed: the same minutes and prices at three times the volume."""
    return [replace(b, volume=b.volume * VOLUME_FACTOR) for b in primary_bars]


def _rows(url: str) -> dict[str, list]:
    conn = connect(parse_database_url(url))
    try:
        return {
            "bars": conn.run(
                "SELECT ticker, ts, volume, source FROM lane_telemetry ORDER BY ticker, ts"
            ),
            "features": conn.run(
                "SELECT ticker, ts, sma20, sma50, volume_ratio FROM lane_features"
                " ORDER BY ticker, ts"
            ),
            "switches": conn.run(
                "SELECT minute, from_source, to_source, reason FROM market_data_switches"
                " ORDER BY minute"
            ),
            "state": conn.run("SELECT source, since FROM market_data_source"),
            # a minute's bar kept for windows beside the stored bar of the same provider
            "doubled": conn.run(
                "SELECT count(*) FROM lane_telemetry_history h"
                " JOIN lane_telemetry t ON t.ticker = h.ticker AND t.ts = h.ts AND t.source = h.source"
            )[0][0],
            "status": status_report(conn, _at(LAST))["market_data"],
        }
    finally:
        conn.close()


@pytest.fixture(scope="module")
def runs(primary_bars, backup_bars, database_server):
    """fault spec (None: no fault, no backup) -> the rows its replay leaves, in a fresh database."""
    results: dict[str | None, dict[str, list]] = {}

    def rows(spec: str | None) -> dict[str, list]:
        if spec not in results:
            with throwaway_database(database_server) as url:
                result = replay(
                    primary_bars,
                    database_url=url,
                    step=1 if spec else None,
                    faults=FaultPlan.parse(spec) if spec else None,
                    backup_bars=backup_bars if spec else None,
                )
                assert not result.failures, result.failures[0]
                results[spec] = _rows(url)
        return results[spec]

    return rows


WINDOW = f"{OUTAGE[0]:%H:%M}-{OUTAGE[1]:%H:%M}"


@pytest.mark.parametrize("spec", [f"data-outage={WINDOW}", f"data-stale={WINDOW}"])
def test_the_backup_carries_the_outage_and_features_never_mix_feeds(runs, primary_bars, spec):
    clean, failed = runs(None), runs(spec)

    # Every regular bar stored, once (the primary key), none lost.
    assert [(t, ts) for t, ts, _, _ in failed["bars"]] == sorted(
        (b.symbol, b.ts) for b in primary_bars
    )
    assert {source for *_, source in clean["bars"]} == {PRIMARY_SOURCE}
    assert failed["doubled"] == 0

    # One switch to the backup within two minutes of the outage, one back within five of its end.
    (away, back) = failed["switches"]
    assert (away[1], away[2], back[1], back[2]) == (PRIMARY_SOURCE, BACKUP, BACKUP, PRIMARY_SOURCE)
    assert _at(OUTAGE[0]) <= away[0] <= _at(OUTAGE[0]) + timedelta(minutes=2), away
    assert _at(OUTAGE[1]) < back[0] <= _at(OUTAGE[1]) + timedelta(minutes=5), back
    assert failed["state"] == [[PRIMARY_SOURCE, back[0]]]
    assert failed["status"]["source"] == PRIMARY_SOURCE
    assert (failed["status"]["since"], failed["status"]["failover"]) == (back[0], "on")
    assert clean["status"]["failover"] == "off" and clean["switches"] == []
    kind = "errors" if spec.startswith("data-outage") else "stale"
    assert away[3].startswith(f"primary {kind}"), away[3]

    # From the first bar the primary did not deliver (the one that closed at the switch after
    # errors; the first of the stale window) to the switch back, the bars came from the backup
    # (its volume), all others from the primary; the outage's minutes are among the backup's.
    first_missing = min(away[0] - timedelta(minutes=1), _at(OUTAGE[0]))
    volume = {(b.symbol, b.ts): b.volume for b in primary_bars}
    for ticker, ts, stored_volume, source in failed["bars"]:
        on_backup = first_missing <= ts and ts + timedelta(minutes=1) < back[0]
        assert source == (BACKUP if on_backup else PRIMARY_SOURCE), (ticker, ts, source)
        assert stored_volume == volume[(ticker, ts)] * (VOLUME_FACTOR if on_backup else 1)
        if _at(OUTAGE[0]) <= ts < _at(OUTAGE[1]):
            assert source == BACKUP

    # Features from one source each: the same averages and volume ratios as without an outage
    # (a volume scaled by a constant leaves a one-source ratio unchanged; a mixed window does not).
    assert failed["features"] == clean["features"]
    assert sum(1 for *_, ratio in failed["features"] if ratio is not None) >= 80
