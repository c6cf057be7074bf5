#!/usr/bin/env python
"""The distributed backtest against the replay it must equal, and a parameter sweep, side by side.

Input: the bundled real 1-minute bars of the week 2019-02-11..15 (AAPL, AMZN, MSFT, SPY, TSLA;
Alpha Vantage export kept in github.com/masonblier/eqker, ISC; `src/ops_pipeline_local/data/bars/`).
Each run is its own process on a throwaway PostgreSQL database, timed from start to exit:

- `ops-pipeline replay` (the minute state machine, default step): the earlier way, and the figure
  every backtest row is compared with;
- `ops-pipeline backtest --shards N` (the backtest state machine: Distributed Maps with an S3
  ItemReader over ticker groups x date ranges, then the portfolio in event order), N = 1 and 4;
- the same with a two-setting sweep (`--sweep`): bars and features once, signals and portfolio
  per setting.

Printed per run: wall and CPU seconds, the summary's bars / features / executions / P&L, whether
they equal the replay's (a sweep: its `spec` setting, the SPEC's rule, must), and seconds per
session-ticker. Locally every child runs in this process one at a time (moto's interpreter), so a
backtest is not faster here than a replay: its point is AWS, where the children run at once. The
AWS cost per session-ticker is the estimate of docs/deploy.md#backtests (about $6 per million
session-tickers, about $1 more per million per sweep setting), not measured here.

Usage: python bench/backtest_vs_replay.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "layers" / "shared", REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

BARS = REPO / "src" / "ops_pipeline_local" / "data" / "bars"
SWEEP = ["--sweep", "spec", "--sweep", "weak09:weak_from=0.4,weak_multiplier=0.9"]
RUNS: dict[str, list[str]] = {
    "replay (earlier: one process, the minute machine)": ["replay"],
    "backtest --shards 1": ["backtest", "--shards", "1"],
    "backtest --shards 4": ["backtest", "--shards", "4"],
    "backtest --shards 4, sweep of 2 settings": ["backtest", "--shards", "4", *SWEEP],
}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], server_url: str) -> tuple[float, float, dict[str, Any]]:
    """One CLI run on a throwaway database: wall s, CPU s, its JSON summary."""
    from ops_pipeline_local.embedded_db import throwaway_database

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "layers" / "shared"), str(REPO / "src")])
    with throwaway_database(server_url) as url:
        argv = [sys.executable, "-m", "ops_pipeline_local.cli", *command]
        argv += ["--bars", str(BARS), "--database-url", url, "--json"]
        cpu, start = _child_cpu(), time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall, cpu = time.perf_counter() - start, _child_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, cpu, json.loads(done.stdout)


def rows(summary: dict[str, Any]) -> tuple[Any, ...]:
    """What a replay and a backtest must share: bars, features, executions by outcome, P&L."""
    features = summary.get("features") or {}
    return (
        summary.get("bars"),
        features.get("total"),
        summary.get("executions"),
        summary["simulated_pnl"]["realized_and_unrealized"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (the median)")
    args = parser.parse_args(argv)
    from ops_pipeline_local.bars import read_bars
    from ops_pipeline_local.embedded_db import server_or_embedded

    bars = read_bars(BARS)
    sessions = len({b.ts.date() for b in bars})
    tickers = len({b.symbol for b in bars})
    server = server_or_embedded()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("distributed backtest (backtest state machine) vs replay, and a sweep, on the same bars")
    print(
        f"bars: {BARS.relative_to(REPO)}: {len(bars)} bars, {sessions} sessions x {tickers}"
        f" tickers = {sessions * tickers} session-tickers; {os.cpu_count()} cores, load {load};"
        f" {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print(f"\n{'run':<50} {'wall s':>7} {'CPU s':>7} {'s/session-ticker':>17}  rows")
    reference = None
    for label, command in RUNS.items():
        results = [run(command, server) for _ in range(args.repeat)]
        wall = statistics.median(w for w, _, _ in results)
        cpu = statistics.median(c for _, c, _ in results)
        summary = results[-1][2]
        if "sweep" in summary:
            shown = {name: rows(s) for name, s in summary["sweep"].items()}
            same = reference is not None and shown["spec"] == reference
            text = "; ".join(
                f"{name}: {n} bars, {f} features, {e}, P&L {p}"
                for name, (n, f, e, p) in shown.items()
            )
            verdict = "spec = replay" if same else "spec DIFFERS from replay"
        else:
            found = rows(summary)
            reference = reference or found
            n, f, e, p = found
            text = f"{n} bars, {f} features, {e}, P&L {p}"
            verdict = "= replay" if found == reference else "DIFFERS from replay"
        per = wall / (sessions * tickers)
        print(f"{label:<50} {wall:7.2f} {cpu:7.2f} {per:17.3f}  {verdict}: {text}")
    print(
        "\nAWS: about $6 per million session-tickers, about $1 more per million per sweep setting"
        " (docs/deploy.md#backtests: an estimate from these stages' times, not measured in AWS)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
