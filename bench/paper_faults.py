#!/usr/bin/env python
"""Paper-mode replay with and without faults: what riding out a 10 % fault rate costs.

Replays the first N minutes of the bundled day (2019-02-12, AAPL AMZN MSFT SPY TSLA; Alpha Vantage
export kept in github.com/masonblier/eqker, ISC) through the real state machines in paper mode
(orders through alpaca-py's TradingClient to the local Alpaca), once clean and once with the
fault plan `data=0.1,orders=0.1` (429s honoured by their reset, 500s, replies stalled past the
1 s client timeout, order replies lost after acceptance), each on a throwaway database, and
prints both wall times, the faults injected, and whether both replays decided the same. The
risk gates' minimum confidence is lowered to 0.1 so that the first 90 minutes place orders.

Usage: PYTHONPATH=layers/shared:src python bench/paper_faults.py [--minutes N] [--faults SPEC]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "layers" / "shared", REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

BARS = REPO / "src" / "ops_pipeline_local" / "data" / "bars" / "2019-02-12.csv"
DEFAULT_MINUTES = 90
DEFAULT_FAULTS = "data=0.1,orders=0.1,seed=1"
RISK = {
    "RiskLimits": '{"min_confidence": 0.1, "max_notional_per_order": 10000,'
    ' "max_position_notional": 25000, "recommendation_ttl_minutes": 5}'
}
DECISIONS = (
    "SELECT r.ticker, r.ts, e.side, e.qty, e.price, e.status FROM dispatch_executions e"
    " JOIN dispatch_recommendations r ON r.id = e.recommendation_id ORDER BY 1, 2"
)


def _run(url: str, bars: list[Any], faults: Any) -> tuple[float, Any, list[Any]]:
    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline_local.embedded_db import throwaway_database
    from ops_pipeline_local.replay import replay

    with throwaway_database(url) as database_url:
        start = time.perf_counter()
        result = replay(
            bars, database_url=database_url, mode="paper", faults=faults, parameters=RISK
        )
        wall = time.perf_counter() - start
        conn = connect(parse_database_url(database_url))
        executions = conn.run(DECISIONS)
        conn.close()
    return wall, result, executions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=DEFAULT_MINUTES)
    parser.add_argument("--faults", default=DEFAULT_FAULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from ops_pipeline.event_time import ONE_MINUTE
    from ops_pipeline_local.bars import read_bars
    from ops_pipeline_local.embedded_db import server_or_embedded
    from ops_pipeline_local.faults import FaultPlan

    plan = FaultPlan.parse(args.faults)
    bars = read_bars(BARS)
    first = min(b.ts for b in bars)
    bars = [b for b in bars if b.ts < first + args.minutes * ONE_MINUTE]
    url = server_or_embedded()
    clean_wall, clean, clean_rows = _run(url, bars, None)
    fault_wall, faulty, fault_rows = _run(url, bars, plan)

    minutes = int((clean.last_minute - clean.first_minute) / ONE_MINUTE) + 1
    print("paper-mode replay, clean and under a fault plan (real state machines, local Alpaca)")
    print(
        f"data: the first {minutes} minutes of 2019-02-12, {len(bars)} bars of"
        f" {' '.join(sorted({b.symbol for b in bars}))}; {os.cpu_count()} cores;"
        f" {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print()
    print(f"{'':<36} {'wall s':>8} {'ms/minute':>10} {'failed runs':>12}")
    for label, wall, result in (
        ("clean", clean_wall, clean),
        (f"faults {plan}", fault_wall, faulty),
    ):
        print(f"{label:<36} {wall:>8.2f} {wall / minutes * 1000:>10.1f} {len(result.failures):>12}")
    print()
    injected = ", ".join(f"{k} {v}" for k, v in sorted(faulty.faults_injected.items())) or "none"
    print(f"faults injected: {injected}")
    print(f"overhead of the faults: {fault_wall - clean_wall:+.2f} s")
    same = clean_rows == fault_rows
    statuses: dict[str, int] = {}
    for *_, status in clean_rows:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"executions: {statuses}; the same decisions under faults: {same}")
    return 0 if same and not clean.failures and not faulty.failures else 1


if __name__ == "__main__":
    sys.exit(main())
