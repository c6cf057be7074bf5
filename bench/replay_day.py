#!/usr/bin/env python
"""Replay throughput: the bundled day through the real state machines, as `ops-pipeline run` does.

Runs `ops_pipeline_local.replay.replay` (moto's ASL interpreter executing the minute state machine
every minute and the 5-minute one every fifth, each Lambda handler in-process) on a throwaway
database with the bundled feeds, and prints minutes per second, executions per second, peak RSS,
and where an execution's time goes: inside the Lambda handlers (the stages themselves, with
Powertools) and outside them (the local Step Functions interpreter, moto's AWS, the replay loop), which
is the per-execution overhead of the local runtime.

Data: the bundled 1-minute bars of 2019-02-12 (AAPL, AMZN, MSFT, SPY, TSLA; Alpha Vantage export
kept in github.com/masonblier/eqker, ISC) and the bundled RSS feeds. The database is PostgreSQL on
127.0.0.1:5432 when it answers, else the embedded one.

Usage: PYTHONPATH=layers/shared:src python bench/replay_day.py [--minutes N]   (0: the whole day)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "layers" / "shared", REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

BARS = REPO / "src" / "ops_pipeline_local" / "data" / "bars" / "2019-02-12.csv"
FEEDS = REPO / "src" / "ops_pipeline_local" / "data" / "feeds"
DEFAULT_MINUTES = 120


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class HandlerClock:
    """Times every Lambda invoke the local runtime hands to a handler, per function."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first: dict[str, float] = {}

    def install(self) -> None:
        from ops_pipeline_local.runtime import LocalRuntime

        original = LocalRuntime._invoke
        clock = self

        def timed(runtime: Any, params: dict[str, Any], **kwargs: Any) -> Any:
            target = (
                unquote(params["url_path"]).split("/functions/", 1)[-1].rsplit("/invocations", 1)[0]
            )
            name = target.rsplit(":", 1)[-1]
            start = time.perf_counter()
            try:
                return original(runtime, params, **kwargs)
            finally:
                took = time.perf_counter() - start
                clock.seconds[name] = clock.seconds.get(name, 0.0) + took
                clock.calls[name] = clock.calls.get(name, 0) + 1
                clock.first.setdefault(name, took)

        LocalRuntime._invoke = timed  # this process only; the runtime is ours to measure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes",
        type=int,
        default=DEFAULT_MINUTES,
        help=f"replay only the first N minutes of the day (default {DEFAULT_MINUTES}; 0 = the whole day, 390)",
    )
    args = parser.parse_args(argv)
    if args.minutes < 0:
        parser.error("--minutes must be >= 0")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline.event_time import ONE_MINUTE
    from ops_pipeline_local.bars import read_bars
    from ops_pipeline_local.embedded_db import server_or_embedded, throwaway_database
    from ops_pipeline_local.replay import replay

    rss_start = _rss_mib()
    bars = read_bars(BARS)
    if args.minutes:
        first = min(b.ts for b in bars)
        bars = [b for b in bars if b.ts < first + args.minutes * ONE_MINUTE]
    url = server_or_embedded()
    admin = connect(parse_database_url(url))
    pg_version = admin.run("SHOW server_version")[0][0]
    admin.close()
    clock = HandlerClock()
    clock.install()
    with throwaway_database(url) as database_url:
        rss_before = _rss_mib()
        start, cpu_start = time.perf_counter(), time.process_time()
        result = replay(bars, database_url=database_url, feeds_dir=FEEDS)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    minutes = int((result.last_minute - result.first_minute) / ONE_MINUTE) + 1
    executions = sum(sum(t.values()) for t in result.executions.values())
    statuses = {m: dict(t) for m, t in result.executions.items()}
    in_handlers = sum(clock.seconds.values())
    invokes = sum(clock.calls.values())
    outside = wall - in_handlers

    print(
        "ops-pipeline replay through the real state machines (moto ASL interpreter, handlers in-process)"
    )
    print(
        "data: real 1-minute bars of 2019-02-12, AAPL AMZN MSFT SPY TSLA (Alpha Vantage export kept in"
        " github.com/masonblier/eqker, ISC), the bundled RSS feeds"
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()},"
        f" PostgreSQL {pg_version} at {parse_database_url(url).describe().rsplit('/', 1)[0]};"
        f" {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print(
        f"replayed: {minutes} minutes ({result.first_minute:%H:%M}-{result.last_minute:%H:%M} UTC), {len(bars)} bars;"
        f" executions {statuses}; failed {len(result.failures)}"
    )
    print()
    print(
        f"wall time                 {wall:8.2f} s   (setup of moto, servers and the first imports included)"
    )
    print(
        f"CPU time of this process  {cpu:8.2f} s   (every thread; PostgreSQL's own time not included)"
    )
    print(f"minutes per second        {minutes / wall:8.2f}")
    print(
        f"executions per second     {executions / wall:8.2f}   ({executions} executions, {invokes} Lambda invokes)"
    )
    print(f"ms per execution          {wall / executions * 1000:8.1f}")
    print(
        f"  inside the handlers     {in_handlers / executions * 1000:8.1f}   (the stages, Powertools, connections;"
        f" {in_handlers / invokes * 1000:.1f} ms per invoke)"
    )
    print(
        f"  outside: overhead       {outside / executions * 1000:8.1f}   (ASL interpreter, moto, replay loop;"
        f" {outside / wall:.0%} of the wall time)"
    )
    print(
        f"peak RSS                  {_rss_mib():8.1f} MiB (after imports {rss_start:.1f} MiB, before the replay {rss_before:.1f} MiB)"
    )
    print()
    print(f"{'function':<28} {'invokes':>7} {'total s':>8} {'ms/invoke':>9} {'first ms':>9}")
    for fn in sorted(clock.seconds, key=lambda f: -clock.seconds[f]):
        calls = clock.calls[fn]
        print(
            f"{fn:<28} {calls:>7} {clock.seconds[fn]:>8.2f} {clock.seconds[fn] / calls * 1000:>9.1f}"
            f" {clock.first[fn] * 1000:>9.1f}"
        )
    summary = result.summary
    print()
    print(
        f"result: {summary['bars']} bars, {summary['features']['total']} features,"
        f" recommendations {summary['recommendations_by_band']}, executions {summary['executions']},"
        f" simulated P&L {summary['simulated_pnl']['realized_and_unrealized']}"
    )
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
