"""The minute stages after the ingest, run in-process for one minute as a run would: features,
signals, then the dispatcher in simulation with the default risk limits (a fixture's seed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ops_pipeline import features, signals
from ops_pipeline.config import RiskLimits, TradingState
from ops_pipeline.dispatch import SimulatedBroker, dispatch


def run_minute(conn: Any, tickers: Sequence[str], minute: datetime) -> None:
    features.compute(conn, minute)
    signals.run(conn, tickers, minute)
    dispatch(
        conn,
        SimulatedBroker(),
        minute=minute,
        market_open=True,
        state=TradingState.ACTIVE,
        limits=RiskLimits(),
    )
