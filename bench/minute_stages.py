#!/usr/bin/env python
"""Cost of each minute stage for 7, 500 and 5,000 tickers: time, database round trips, HTTP, memory.

The README promises a cost that does not grow with the ticker count: every stage makes a fixed
number of database round trips per run and market data comes in multi-symbol requests. This
drives the four minute stages' plain functions directly, on real bars, and prints per stage and
ticker count:

- wall time per run: the median (and min-max) over the timed runs;
- database round trips per run: calls of the pg8000 connection's `run` method, counted by a
  small proxy handed to the stage functions; next to it the wire exchanges (socket flushes:
  pg8000 sends a parameterised statement as Parse / Describe / Bind+Execute, three waits);
- Alpaca HTTP requests per run, as the local Alpaca server recorded them;
- peak Python memory per run (tracemalloc, the peak above what was allocated before the stage),
  measured on separate runs, because tracing slows allocation-heavy code down.

Data: the bundled 1-minute bars of 2019-02-12 (AAPL, AMZN, MSFT, SPY, TSLA; Alpha Vantage export
kept in github.com/masonblier/eqker, ISC). N tickers are the 5 real series, then clones of them
under synthetic names (`T` + four letters), so every bar has a real shape. They are served by
the local Alpaca server (`LocalAlpaca`, in a child process so that its JSON encoding neither
shares the GIL with nor shows up in the memory of the stages) to the real alpaca-py client.

Per ticker count: a fresh throwaway database (PostgreSQL on 127.0.0.1:5432 when it answers,
else the embedded one), migrated; a warm-up at 15:30 UTC that ingests and computes the first 60
minutes in one catch-up run, then VACUUM ANALYZE (as autovacuum would), then signals and dispatch once;
then each measured run is one new minute: set the clock, ingest, compute, signals, dispatch.

Beside each figure: the earlier one ('earlier ms', the same script on the code before issue 18's
speed work, commit 833076a, measured on this machine; see EARLIER), and for the whole minute the
goal (500 tickers at most 150 ms, 5,000 at most 1,000 ms).

Usage: PYTHONPATH=layers/shared:src python bench/minute_stages.py [--tickers 7,500,5000] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "layers" / "shared", REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

BARS = REPO / "src" / "ops_pipeline_local" / "data" / "bars" / "2019-02-12.csv"
KEY, SECRET = "bench-key", "bench-secret"
WARMUP_MINUTES = 60
STAGES = ("ingest", "compute", "signals", "dispatch")
STAGE_FUNCTIONS = {
    "ingest": "telemetry.ingest",
    "compute": "features.compute",
    "signals": "signals.run",
    "dispatch": "dispatch.dispatch",
}
DEFAULT_RUNS = 30  # timed runs per ticker count; --runs overrides
DEFAULT_TICKERS = "7,500,5000"
WHOLE = "whole minute"
# Median wall ms per run of the code before issue 18's speed work (commit 833076a), this script,
# this machine (2 shared cores), 10 timed runs per ticker count; EARLIER_WHEN says when and the
# load average then. The issue's own figures (quieter machine): 5,000 tickers 1.3 / 1.2 / 1.1 /
# 0.2 s, 3.9 s the minute; 500 tickers 0.49 s the minute.
EARLIER_WHEN = (
    "earlier: commit 833076a, 2026-12-06 21:31-21:34 UTC, load average 3.2 falling to 2.7"
)
EARLIER: dict[tuple[str, int], float] = {
    ("ingest", 7): 13.2,
    ("ingest", 500): 136.1,
    ("ingest", 5000): 1821.4,
    ("compute", 7): 7.7,
    ("compute", 500): 132.0,
    ("compute", 5000): 2050.9,
    ("signals", 7): 7.1,
    ("signals", 500): 76.5,
    ("signals", 5000): 926.9,
    ("dispatch", 7): 5.8,
    ("dispatch", 500): 35.0,
    ("dispatch", 5000): 317.9,
    (WHOLE, 7): 36.8,
    (WHOLE, 500): 389.2,
    (WHOLE, 5000): 5123.9,
}
GOALS = {(WHOLE, 500): 150.0, (WHOLE, 5000): 1000.0}
MIB = 1024 * 1024


# ---------------------------------------------------------------- the ticker universe


def _letters(i: int, width: int = 4) -> str:
    out = []
    for _ in range(width):
        i, r = divmod(i, 26)
        out.append(chr(ord("A") + r))
    return "".join(reversed(out))


def universe(bases: Sequence[str], n: int) -> list[tuple[str, str]]:
    """(name, real series it copies): the real tickers first, then `TAAAA`, `TAAAB`, ..."""
    pairs = [(b, b) for b in bases[:n]]
    for i in range(n - len(pairs)):
        pairs.append(("T" + _letters(i), bases[i % len(bases)]))
    return pairs


def load_bars(n: int, until: datetime | None) -> tuple[list[str], list[Any], datetime]:
    """N tickers' bars that start before `until` (None: all), and the day's first bar start."""
    from ops_pipeline_local.bars import read_bars

    real = read_bars(BARS)
    first = min(b.ts for b in real)
    by_symbol: dict[str, list[Any]] = {}
    for bar in real:
        if until is None or bar.ts < until:
            by_symbol.setdefault(bar.symbol, []).append(bar)
    pairs = universe(sorted(by_symbol), n)
    bars = [
        bar if name == base else replace(bar, symbol=name)
        for name, base in pairs
        for bar in by_symbol[base]
    ]
    return [name for name, _ in pairs], bars, first


# ---------------------------------------------------------------- the local Alpaca, in a child process


def _serve_alpaca(n: int, until: datetime | None, pipe: Any) -> None:
    from ops_pipeline_local.alpaca_server import LocalAlpaca

    _, bars, first = load_bars(n, until)
    with LocalAlpaca(bars, KEY, SECRET, now=first) as market:
        del bars
        pipe.send(market.base_url)
        while True:
            command, arg = pipe.recv()
            if command == "set_time":
                market.set_time(arg)
                pipe.send(None)
            elif command == "requests":
                pipe.send(len(market.requests))
            else:
                pipe.send(None)
                return


class RemoteAlpaca:
    """`LocalAlpaca` in a child process: its clock and its `.requests` count, over a pipe."""

    def __init__(self, n: int, until: datetime) -> None:
        ctx = mp.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_alpaca, args=(n, until, child), daemon=True)
        self._process.start()
        child.close()  # the child's end lives in the child only: its death is an EOFError here
        self.base_url = self._pipe.recv()

    def _ask(self, command: str, arg: Any = None) -> Any:
        self._pipe.send((command, arg))
        return self._pipe.recv()

    def set_time(self, minute: datetime) -> None:
        self._ask("set_time", minute)

    def request_count(self) -> int:
        return self._ask("requests")

    def close(self) -> None:
        self._ask("close")
        self._process.join(timeout=10)


# ---------------------------------------------------------------- counting round trips


class _CountingSocket:
    """pg8000's buffered socket file, counting flushes (each one is a wait for the server)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        self._sock.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class CountingConnection:
    """Hands every `run` to the real pg8000 connection and counts it, with its statement's head."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        # pg8000 keeps its buffered socket in `_sock`; without one, wire waits read 0.
        self._socket = _CountingSocket(getattr(conn, "_sock", None))
        if self._socket._sock is not None:
            conn._sock = self._socket
        self.statements: list[str] = []

    def run(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(" ".join(sql.split())[:70])
        return self._conn.run(sql, *args, **kwargs)

    @property
    def flushes(self) -> int:
        return self._socket.flushes

    def __getattr__(self, name: str) -> Any:  # columns, close, ...
        return getattr(self._conn, name)


# ---------------------------------------------------------------- measuring


@dataclass
class StageRun:
    seconds: float
    statements: list[str]
    exchanges: int
    http: int
    peak_bytes: int | None
    work: int  # rows the stage handled: bars stored, features computed, recs created, decisions
    minute: datetime | None = None


@dataclass
class Series:
    runs: list[StageRun] = field(default_factory=list)
    traced: list[StageRun] = field(default_factory=list)


def _work(stage: str, out: dict[str, Any]) -> int:
    if stage == "ingest":
        return out["stored"]
    if stage == "compute":
        return out["computed"]
    if stage == "signals":
        return out["created"]
    return out["considered"]


def measure(
    stage: str,
    minute: datetime,
    fn: Callable[[], dict[str, Any]],
    conn: CountingConnection,
    market: RemoteAlpaca,
    traced: bool,
) -> StageRun:
    conn.statements = []
    flushes, http = conn.flushes, market.request_count()
    if traced:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - before if traced else None
    http = market.request_count() - http
    return StageRun(
        seconds, conn.statements, conn.flushes - flushes, http, peak, _work(stage, out), minute
    )


def bench_universe(
    n: int, runs: int, mem_runs: int, server_url: str
) -> tuple[dict[str, Series], list[datetime], dict[str, Any]]:
    from ops_pipeline import dispatch, features, signals, telemetry
    from ops_pipeline.alpaca import data_client, trading_client
    from ops_pipeline.config import AlpacaCredentials, RiskLimits, TradingState
    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline.event_time import ONE_MINUTE
    from ops_pipeline.market import alpaca_calendar
    from ops_pipeline_local.embedded_db import throwaway_database

    cleanup = contextlib.ExitStack()
    raw = None
    market = None
    try:
        raw = connect(parse_database_url(cleanup.enter_context(throwaway_database(server_url))))
        conn = CountingConnection(raw)
        tickers, _, day_start = load_bars(n, until=None)
        warm = day_start + WARMUP_MINUTES * ONE_MINUTE
        minutes = [warm + (i + 1) * ONE_MINUTE for i in range(runs + mem_runs)]
        market = RemoteAlpaca(n, until=minutes[-1] + ONE_MINUTE)
        os.environ["ALPACA_DATA_URL"] = market.base_url
        client = data_client(AlpacaCredentials(KEY, SECRET))
        os.environ["ALPACA_TRADING_URL"] = market.base_url
        calendar = alpaca_calendar(trading_client(AlpacaCredentials(KEY, SECRET)))
        broker, limits = dispatch.SimulatedBroker(), RiskLimits()

        def stage_calls(minute: datetime) -> dict[str, Callable[[], dict[str, Any]]]:
            return {
                "ingest": lambda: telemetry.ingest(conn, client, tickers, minute, calendar),
                "compute": lambda: features.compute(conn, minute),
                "signals": lambda: signals.run(conn, tickers, minute),
                "dispatch": lambda: dispatch.dispatch(
                    conn,
                    broker,
                    minute=minute,
                    market_open=True,
                    state=TradingState.ACTIVE,
                    limits=limits,
                ),
            }

        # The catch-up in four steps of 15 minutes: at 5,000 tickers one 60-minute upsert (or insert of
        # evaluations) nears the connection's 10 s socket timeout on a busy machine.
        warm_out: dict[str, Any] = {"ingest": {"stored": 0}, "compute": {"computed": 0}}
        for step in (WARMUP_MINUTES * 3 // 4, WARMUP_MINUTES // 2, WARMUP_MINUTES // 4, 0):
            market.set_time(warm - step * ONE_MINUTE)
            calls = stage_calls(warm - step * ONE_MINUTE)
            warm_out["ingest"]["stored"] += calls["ingest"]()["stored"]
            warm_out["compute"]["computed"] += calls["compute"]()["computed"]
            calls["signals"]()
        raw.run("VACUUM ANALYZE")
        warm_out["signals"], warm_out["dispatch"] = calls["signals"](), calls["dispatch"]()

        series = {stage: Series() for stage in STAGES}
        for i, minute in enumerate(minutes):
            traced = i >= runs
            if traced and not tracemalloc.is_tracing():
                tracemalloc.start()
            market.set_time(minute)
            for stage, fn in stage_calls(minute).items():
                result = measure(stage, minute, fn, conn, market, traced)
                (series[stage].traced if traced else series[stage].runs).append(result)
        tracemalloc.stop()
        info = {
            "warmup": {
                "bars": warm_out["ingest"]["stored"],
                "features": warm_out["compute"]["computed"],
                "http": market.request_count(),
            },
            "bars_per_ticker_stored": raw.run("SELECT count(*) FROM lane_telemetry")[0][0] / n,
        }
        return series, minutes, info
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        if market is not None:
            market.close()
        if raw is not None:
            raw.close()
        cleanup.close()


# ---------------------------------------------------------------- the database server


# ---------------------------------------------------------------- printing


def _range(values: Sequence[float | int], fmt: str = "{}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def _ms(seconds: Sequence[float]) -> str:
    return f"{statistics.median(seconds) * 1000:8.1f} ({min(seconds) * 1000:.1f}-{max(seconds) * 1000:.1f})"


HEADER = (
    f"{'tickers':>7}  {'runs':>4}  {'wall ms median (min-max)':>26}  {'earlier ms':>10}  {'goal ms':>7}"
    f"  {'DB round trips':>14}  {'wire waits':>10}  {'HTTP req':>8}  {'peak MiB':>8}  {'rows/run':>9}"
)


def _row(stage: str, n: int, runs: list[StageRun], traced: list[StageRun]) -> str:
    peak = max(r.peak_bytes for r in traced) / MIB if traced else float("nan")
    every = runs + traced
    earlier = EARLIER.get((stage, n))
    goal = GOALS.get((stage, n))
    return (
        f"{n:>7}  {len(runs):>4}  {_ms([r.seconds for r in runs]):>26}"
        f"  {'' if earlier is None else f'{earlier:.1f}':>10}  {'' if goal is None else f'{goal:.0f}':>7}"
        f"  {_range([len(r.statements) for r in every]):>14}  {_range([r.exchanges for r in every]):>10}"
        f"  {_range([r.http for r in every]):>8}  {peak:>8.2f}  {_range([r.work for r in every]):>9}"
    )


def _whole_minute(series: dict[str, Series]) -> tuple[list[StageRun], list[StageRun]]:
    def combine(index: int, kind: str) -> StageRun:
        parts = [getattr(series[s], kind)[index] for s in STAGES]
        peaks = [p.peak_bytes for p in parts]
        return StageRun(
            sum(p.seconds for p in parts),
            [st for p in parts for st in p.statements],
            sum(p.exchanges for p in parts),
            sum(p.http for p in parts),
            max(peaks) if None not in peaks else None,
            sum(p.work for p in parts),
            parts[0].minute,
        )

    first = series[STAGES[0]]
    return (
        [combine(i, "runs") for i in range(len(first.runs))],
        [combine(i, "traced") for i in range(len(first.traced))],
    )


# Alpaca's page limit for bars: 10,000 a response. A multi-symbol request for more is followed page
# by page, so "constant" HTTP means one request per page the minute's bars fill.
PAGE_LIMIT = 10_000


def pages(run: StageRun) -> int:
    """The requests a run's bars need at the provider's page limit (0 for a stage without HTTP)."""
    return max(1, -(-run.work // PAGE_LIMIT)) if run.http else 0


def verdict(stage: str, results: dict[int, dict[str, Series]]) -> str:
    """Do the same minutes make the same statements whatever the ticker count, and one request per
    page of bars?"""
    sizes = sorted(results)
    by_minute = {
        n: {r.minute: r for r in results[n][stage].runs + results[n][stage].traced} for n in sizes
    }
    common = sorted(set.intersection(*(set(m) for m in by_minute.values())))
    counts = {n: [len(by_minute[n][m].statements) for m in common] for n in sizes}
    http = {n: [by_minute[n][m].http for m in common] for n in sizes}
    spread = ", ".join(f"{n}: {_range(counts[n])}" for n in sizes)
    http_spread = ", ".join(f"{n}: {_range(http[n])}" for n in sizes)
    lines = []
    for n in sizes[1:]:
        for m in common:
            a, b = by_minute[sizes[0]][m], by_minute[n][m]
            if a.statements != b.statements or a.http != pages(a) or b.http != pages(b):
                extra = [st for st in b.statements if st not in a.statements] or b.statements
                lines.append(
                    f"          {m:%H:%M} UTC: {n} tickers {len(b.statements)} statements, {b.http} HTTP;"
                    f" {sizes[0]} tickers {len(a.statements)}, {a.http}: {extra[:3]}"
                )
                break
    where = f"over the {len(common)} minutes every ticker count ran"
    if not lines:
        paged = " = one per page of 10,000 bars" if any(max(h) > 1 for h in http.values()) else ""
        return f"{stage:<9} CONSTANT: the same statements and requests minute by minute, {where} (round trips {spread}; HTTP {http_spread}{paged})"
    return "\n".join(
        [f"{stage:<9} NOT CONSTANT {where}: round trips {spread}; HTTP {http_spread}", *lines]
    )


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the cores are shared: read the figures with them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tickers",
        default=DEFAULT_TICKERS,
        help=f"ticker counts, comma-separated (default {DEFAULT_TICKERS})",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"timed runs per ticker count (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--mem-runs",
        type=int,
        default=5,
        help="further runs under tracemalloc for the memory column (default 5)",
    )
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.tickers.split(",") if x.strip()]
    if (
        not sizes
        or min(sizes) < 1
        or args.mem_runs < 1
        or (args.runs is not None and args.runs < 1)
    ):
        parser.error("ticker counts, --runs and --mem-runs must be positive")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from ops_pipeline_local.embedded_db import server_or_embedded

    url = server_or_embedded()
    from ops_pipeline.db import connect, parse_database_url

    probe = connect(parse_database_url(url))
    pg_version = probe.run("SHOW server_version")[0][0]
    probe.close()
    import alpaca as _alpaca_pkg
    import pg8000

    print("ops-pipeline minute stages: cost per run against the ticker count")
    print(
        "data: real 1-minute bars of 2019-02-12, AAPL AMZN MSFT SPY TSLA (Alpha Vantage export kept in"
        " github.com/masonblier/eqker, ISC);"
    )
    print(
        "      N tickers = the 5 real series, then clones under synthetic names (TAAAA, TAAAB, ...)"
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()},"
        f" PostgreSQL {pg_version} at {parse_database_url(url).describe().rsplit('/', 1)[0]}, pg8000 {pg8000.__version__},"
        f" alpaca-py {_alpaca_pkg.__version__}; {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print(
        f"method: warm-up ingests+computes the first {WARMUP_MINUTES} minutes (09:30-10:29 New York), VACUUM ANALYZE;"
        " each run = one new minute from 10:31"
    )
    print(
        "        wall time over the timed runs; 'peak MiB' = tracemalloc peak above the stage's start, on"
        f" {args.mem_runs} further runs"
    )
    print(
        "        'DB round trips' = conn.run calls; 'wire waits' = socket flushes (pg8000 waits 3x per"
        " parameterised statement); ranges are min-max over runs"
    )
    print(
        "        rows/run: ingest bars stored, compute features written, signals recs created, dispatch recs considered"
    )
    print(f"        {EARLIER_WHEN}; goal: the whole minute")
    print(f"load average at the start: {_load()}", flush=True)

    results: dict[int, dict[str, Series]] = {}
    started = time.perf_counter()
    for n in sizes:
        runs = args.runs or DEFAULT_RUNS
        t0 = time.perf_counter()
        series, minutes, info = bench_universe(n, runs, args.mem_runs, url)
        results[n] = series
        print(
            f"  [{n} tickers: warm-up stored {info['warmup']['bars']} bars, {info['warmup']['features']} features;"
            f" {runs}+{args.mem_runs} runs; {time.perf_counter() - t0:.1f} s]",
            flush=True,
        )

    for stage in STAGES:
        print(f"\n{stage}: ops_pipeline.{STAGE_FUNCTIONS[stage]}")
        print(HEADER)
        for n in sizes:
            print(_row(stage, n, results[n][stage].runs, results[n][stage].traced))
    print(
        "\nwhole minute: ingest + compute + signals + dispatch (peak MiB = the largest stage peak)"
    )
    print(HEADER)
    for n in sizes:
        print(_row(WHOLE, n, *_whole_minute(results[n])))
    if len(sizes) > 1:
        print(
            "\nround trips and HTTP requests against the ticker count (same minutes, statement by statement):"
        )
        for stage in STAGES:
            print(verdict(stage, results))
    print(f"\ntotal {time.perf_counter() - started:.1f} s; load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
