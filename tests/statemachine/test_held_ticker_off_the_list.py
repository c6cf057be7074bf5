"""A ticker taken off the list while the pipeline holds it stays in the book until it is sold:
its bars are still ingested (marks for the daily result), its SELL signal still recommended and
dispatched, never a BUY. Two replays of the bundled day through the real state machines, in
simulation: AAPL and AMZN until 15:10 New York (both bought), then only AMZN listed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

CUT = datetime(2019, 2, 12, 20, 10, tzinfo=UTC)


def test_a_held_ticker_taken_off_the_list_keeps_its_bars_and_is_sold_not_bought(
    conn, database_url, bundled_bars
):
    bars = [b for b in bundled_bars if b.symbol in ("AAPL", "AMZN")]
    before = replay([b for b in bars if b.ts < CUT], database_url=database_url)
    assert before.summary["own_positions"] == {"AAPL": Decimal(58), "AMZN": Decimal(6)}
    after = replay([b for b in bars if b.ts >= CUT], database_url=database_url, tickers=["AMZN"])
    assert not after.failures
    ((aapl_bars,),) = conn.run(
        "SELECT count(*) FROM lane_telemetry WHERE ticker = 'AAPL' AND ts >= :cut", cut=CUT
    )
    assert aapl_bars == len([b for b in bars if b.symbol == "AAPL" and b.ts >= CUT])
    recs = conn.run(
        "SELECT action, count(*) FROM dispatch_recommendations"
        " WHERE ticker = 'AAPL' AND decided_at > :cut GROUP BY action",
        cut=CUT,
    )
    assert recs == [["SELL", 1]]
    assert "AAPL" not in after.summary["own_positions"]  # sold
