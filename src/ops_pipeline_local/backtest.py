"""A backtest on the backtest state machine: a Distributed Map over shards, as in AWS.

`statemachines/backtest.asl.json` runs a replay in three sharded phases and one ordered one:

1. bars: the telemetry ingestor per shard (a ticker group x a date range), from Alpaca's bars;
2. features: the feature computer per date range, once every bar is stored (a window reaches
   back 49 regular bars, across ranges);
3. signals: the signal engine per shard, every bar decided at its close;
4. the portfolio: the market check and the dispatcher (risk gates, simulated fills, day book)
   over the replay's windows, one after the other, in event order.

The shards and the ranges are JSON lists in the stack's backtest bucket, read by the
Distributed Maps' S3 `ItemReader`; the windows are in the execution's input. Locally the bucket
is moto's and the bars are the local Alpaca server's, as in `replay`: the rows are `replay`'s
(simulation mode, no feeds), which a test checks.

Why date ranges split only where the bars pause for a day (`LATE_LOOKBACK`): the signal engine
looks a day before its window for bars never evaluated (a late run's) and decides them at its own
minute. A range whose day before holds no bar cannot find another range's bar there, whichever
shard runs first; ranges that start on the morning after a trading day could. So a range is a
run of consecutive trading days (a week, cut by holidays), at most `MAX_WINDOW` long.

A parameter sweep (`settings`: a list of `ops_pipeline.sweep` settings, such as volume multipliers
or risk limits) is the same machine with one more dimension: bars and features are shared, the
signals and the portfolio run once per setting, each setting's rows in its schema `sweep_<name>`;
`BacktestResult.sweep` holds each setting's summary (trades, P&L) for comparing them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from ops_pipeline.event_time import MAX_WINDOW, iso_minute, window_minutes
from ops_pipeline.market import NEW_YORK
from ops_pipeline.migrate import migrate
from ops_pipeline.signals import LATE_LOOKBACK
from ops_pipeline.sweep import Setting, parse_settings
from ops_pipeline_local.bars import Bar
from ops_pipeline_local.replay import (
    SIMULATION_STEP,
    ReplayResult,
    in_setting,
    local_stack,
    on_fresh_connection,
    replay_minutes,
    replay_windows,
    summarize,
)
from ops_pipeline_local.runtime import LocalRuntime

BACKTEST_MACHINE = "BacktestStateMachine"
BACKTEST_BUCKET = "BacktestBucket"
SHARDS_KEY = "backtests/{name}/shards.json"
RANGES_KEY = "backtests/{name}/ranges.json"
# Shards of a sharded phase run at once: in AWS, bounded by Alpaca's 200 data requests a minute
# (free plan) and the database's connections; locally, moto runs them as threads of one process.
DEFAULT_CONCURRENCY = 10
LOCAL_CONCURRENCY = 4
EXTENDED_DAY = (time(4, 0), time(20, 0))  # New York: IEX minute bars, pre-market to after-hours


@dataclass(frozen=True)
class Shard:
    """One item of the bars and signals phases: a ticker group over a date range."""

    tickers: tuple[str, ...]
    since: datetime
    time: datetime

    def as_item(self) -> dict[str, Any]:
        return {
            "tickers": list(self.tickers),
            "since": iso_minute(self.since),
            "time": iso_minute(self.time),
        }


@dataclass(frozen=True)
class BacktestPlan:
    ranges: list[tuple[datetime, datetime]]  # (since, time): each range's first and last minute
    shards: list[Shard]
    windows: list[tuple[datetime, datetime]]  # the replay's windows, in event order

    def shard_items(self) -> list[dict[str, Any]]:
        """`shards.json`: the items of the bars and signals phases."""
        return [s.as_item() for s in self.shards]

    def range_items(self) -> list[dict[str, str]]:
        """`ranges.json`: the items of the features phase."""
        return [{"since": iso_minute(s), "time": iso_minute(t)} for s, t in self.ranges]

    def execution_input(
        self,
        shards_key: str,
        ranges_key: str,
        concurrency: int,
        settings: Sequence[Setting] = (),
    ) -> dict[str, Any]:
        """The backtest machine's input: the lists' keys in the bucket, the portfolio's windows,
        how many shards (of each sharded phase) run at once, and a sweep's settings (none: the
        stack's own, in the public tables)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        event: dict[str, Any] = {
            "shards": shards_key,
            "ranges": ranges_key,
            "windows": [{"since": iso_minute(s), "time": iso_minute(t)} for s, t in self.windows],
            "concurrency": concurrency,
        }
        if settings:
            event["settings"] = [
                s.as_item() for s in parse_settings([s.as_item() for s in settings])
            ]
        return event


def date_ranges(minutes: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """The replay's minutes (sorted) cut where they pause for more than `LATE_LOOKBACK`: each range
    `(first minute, last minute)`. A range longer than `MAX_WINDOW` (bars on more consecutive days
    than a week holds) cannot be one stage run and is refused."""
    ranges: list[tuple[datetime, datetime]] = []
    for minute in minutes:
        if ranges and minute - ranges[-1][1] <= LATE_LOOKBACK:
            ranges[-1] = (ranges[-1][0], minute)
        else:
            ranges.append((minute, minute))
    for first, last in ranges:
        if last - first > MAX_WINDOW:
            raise ValueError(
                f"bars from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC pause nowhere for"
                f" a day: a date range is at most {MAX_WINDOW} long"
            )
    return ranges


def ticker_groups(tickers: Sequence[str], groups: int) -> list[tuple[str, ...]]:
    """`tickers` (sorted) cut into at most `groups` contiguous groups of near-equal size."""
    if groups < 1:
        raise ValueError(f"shards must be at least 1, got {groups}")
    names = sorted(dict.fromkeys(tickers))
    count = min(groups, len(names))
    size, extra = divmod(len(names), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(tuple(names[start:end]))
        start = end
    return out


def plan_backtest(bars: Sequence[Bar], tickers: Sequence[str], groups: int) -> BacktestPlan:
    """Shards (ticker groups x date ranges) and windows for these bars, as `replay` would walk
    them: the same minutes, the same windows."""
    return plan_minutes(
        replay_minutes([b for b in bars if b.symbol in tickers] or bars), tickers, groups
    )


def session_minutes(first: date, last: date) -> list[datetime]:
    """The minutes a backtest in AWS walks from `first` to `last` (New York dates): each NYSE
    session's extended day, 04:00 to 20:00 New York (the span of Alpaca's IEX minute bars), from
    the XNYS calendar (holidays and early closes as Alpaca's calendar has them)."""
    from ops_pipeline_local.calendar import nyse_calendar

    minutes: list[datetime] = []
    for session in nyse_calendar().between(first, last):
        opens = datetime.combine(session.day, EXTENDED_DAY[0], NEW_YORK).astimezone(UTC)
        closes = datetime.combine(session.day, EXTENDED_DAY[1], NEW_YORK).astimezone(UTC)
        minutes += window_minutes(opens, closes)
    return minutes


def plan_minutes(minutes: Sequence[datetime], tickers: Sequence[str], groups: int) -> BacktestPlan:
    """Shards (ticker groups x date ranges) over these minutes (sorted), and the windows of at
    most five days a replay in simulation would run over them."""
    if not minutes:
        raise ValueError("no trading minute to backtest")
    ranges = date_ranges(minutes)
    shards = [
        Shard(group, since, time)
        for since, time in ranges
        for group in ticker_groups(tickers, groups)
    ]
    return BacktestPlan(ranges, shards, replay_windows(minutes, SIMULATION_STEP))


@dataclass
class BacktestResult(ReplayResult):
    plan: BacktestPlan = field(default_factory=lambda: BacktestPlan([], [], []))
    error: str | None = None
    cause: str | None = None
    invocations: dict[str, int] = field(default_factory=dict)
    sweep: dict[str, dict[str, Any]] = field(default_factory=dict)  # each setting's summary


def write_plan(
    plan: BacktestPlan,
    out: Path,
    prefix: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    settings: Sequence[Setting] = (),
) -> dict[str, Path]:
    """The plan as files for a backtest in AWS: `shards.json` and `ranges.json` to copy to the
    stack's backtest bucket under `prefix`, and `input.json`, the execution's input naming them
    (with a sweep's `settings`, if any)."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = prefix.strip("/")
    files = {
        "shards.json": plan.shard_items(),
        "ranges.json": plan.range_items(),
        "input.json": plan.execution_input(
            f"{prefix}/shards.json", f"{prefix}/ranges.json", concurrency, settings
        ),
    }
    written = {}
    for name, body in files.items():
        (out / name).write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        written[name] = out / name
    return written


def upload_plan(
    runtime: LocalRuntime,
    plan: BacktestPlan,
    name: str,
    concurrency: int,
    settings: Sequence[Setting] = (),
) -> dict[str, Any]:
    """The plan's shard and range lists into the stack's backtest bucket (moto's S3); the
    execution's input naming them."""
    import boto3

    bucket = runtime.stack.resolver.ref(BACKTEST_BUCKET)
    s3 = boto3.client("s3", region_name=runtime.stack.resolver.pseudo("AWS::Region"))
    s3.create_bucket(Bucket=bucket)
    shards_key, ranges_key = SHARDS_KEY.format(name=name), RANGES_KEY.format(name=name)
    items = {
        shards_key: plan.shard_items(),
        ranges_key: plan.range_items(),
    }
    for key, body in items.items():
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())
    return plan.execution_input(shards_key, ranges_key, concurrency, settings)


def backtest(
    bars: Sequence[Bar],
    *,
    database_url: str,
    shards: int,
    tickers: Sequence[str] | None = None,
    log_level: str = "WARNING",
    parameters: dict[str, str] | None = None,
    concurrency: int = LOCAL_CONCURRENCY,
    plan: BacktestPlan | None = None,
    settings: Sequence[dict[str, Any]] | None = None,
) -> BacktestResult:
    """Run the backtest state machine over the bars, in `shards` ticker groups per date range,
    in simulation (no feeds); its rows land in the tables `replay` writes. `plan` replaces the
    shards, ranges and windows `plan_backtest` would make (its lists in any order).

    `settings`: a parameter sweep (`ops_pipeline.sweep`, validated first: an `InvalidSetting` is
    a ValueError): each setting's rows in its schema `sweep_<name>`, its summary in
    `BacktestResult.sweep`; the public tables then hold the shared bars and features only."""
    if not bars:
        raise ValueError("no bars to backtest")
    swept = parse_settings(list(settings)) if settings is not None else []
    tickers = list(tickers or sorted({b.symbol for b in bars}))
    plan = plan or plan_backtest(bars, tickers, shards)
    on_fresh_connection(database_url, migrate)
    first, last = min(s for s, _ in plan.ranges), max(t for _, t in plan.ranges)
    result = BacktestResult(first, last, plan=plan)
    stack_parameters = {
        "Tickers": ",".join(tickers),
        "Feeds": "[]",
        "TradingMode": "simulation",
        "LogLevel": log_level,
        **(parameters or {}),
    }
    with local_stack(bars, database_url=database_url, parameters=stack_parameters, now=last) as (
        runtime,
        _alpaca,
    ):
        name = f"backtest-{first:%Y%m%dT%H%M}-{last:%Y%m%dT%H%M}"
        event = upload_plan(runtime, plan, name, concurrency, swept)
        # A shard is a few seconds here; the wait grows with the plan rather than capping it.
        outcome = runtime.execute(
            BACKTEST_MACHINE, event, name=name, timeout=600 + 60 * len(plan.shards)
        )
        result.executions[BACKTEST_MACHINE] = {outcome.status: 1}
        if outcome.status != "SUCCEEDED":
            result.failures.append(outcome)
            result.error, result.cause = outcome.error, outcome.cause
        for logical_id, _event in runtime.invocations:
            result.invocations[logical_id] = result.invocations.get(logical_id, 0) + 1
    result.summary = on_fresh_connection(
        database_url, lambda conn: summarize(conn, first, last, tickers)
    )
    for setting in swept:
        result.sweep[setting.name] = on_fresh_connection(
            database_url, in_setting(setting, lambda conn: summarize(conn, first, last, tickers))
        )
    return result
