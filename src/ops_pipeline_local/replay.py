"""Replay recorded bars through the real state machines.

The replay's minutes are each trading day's span of bars, from its first bar's start to the minute
after its last bar. They are cut into windows of `step` minutes that tile them; each window is one
execution of the minute state machine, `{"time": T, "since": S}` (a one-minute window passes only
`{"time": T}`, as the scheduler does), with the local Alpaca's clock at T. Before it, the 5-minute
state machine runs at every fifth minute of the window with the clocks (Alpaca's, the feed
server's) at that minute, so that news is fetched at the same minutes whatever the step. Every
stage processes each minute of its window as a run of its own would have, so `--step 1` and
`--step 390` leave the same rows; only the number of executions differs. The code that runs is
the code that is deployed; only the clock and the endpoints are local.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from ops_pipeline.db import connect, parse_database_url, query
from ops_pipeline.errors import is_connection_lost
from ops_pipeline.event_time import MAX_WINDOW, ONE_MINUTE, iso_minute, window_minutes
from ops_pipeline.market import NEW_YORK
from ops_pipeline.migrate import migrate
from ops_pipeline.sweep import Setting, enter_setting, parse_setting
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import Bar
from ops_pipeline_local.faults import FaultPlan
from ops_pipeline_local.runtime import ExecutionResult, LocalRuntime

MINUTE_MACHINE = "MinutePipelineStateMachine"
# A replay's own reads and migration are retried on a lost connection as often as a Task state.
CONNECTION_ATTEMPTS = 5
# In simulation the fastest step: windows as long as a run's window may be (`MAX_WINDOW`, five
# days, nights included), which leave the same rows as a run per minute; in paper mode the
# broker's clock is the run's, so a replay steps one minute.
SIMULATION_STEP = MAX_WINDOW // ONE_MINUTE
PAPER_STEP = 1


def default_step(mode: str = "simulation") -> int:
    return SIMULATION_STEP if mode == "simulation" else PAPER_STEP


FIVE_MINUTE_MACHINE = "FiveMinutePipelineStateMachine"
# The stages a sweep's setting changes (`ops_pipeline.sweep`): they read it from their event.
SETTING_STAGES = ("SignalEngineFunction", "DispatcherFunction")
TRADING_MODES = ("simulation", "paper")
# Under a fault plan the handlers give up on a stalled reply after this many seconds (the plan
# stalls longer), so a stall costs a second, not the default eight.
FAULT_HTTP_TIMEOUT_SECONDS = 1.0


@dataclass
class ReplayResult:
    first_minute: datetime
    last_minute: datetime
    executions: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[ExecutionResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    broker_orders: list[dict[str, Any]] = field(default_factory=list)  # paper: the local Alpaca's


@contextmanager
def local_stack(
    bars: Sequence[Bar],
    *,
    database_url: str,
    parameters: dict[str, str] | None = None,
    now: datetime | None = None,
    faults: FaultPlan | None = None,
    backup_bars: Sequence[Bar] | None = None,
    holdings: dict[str, Decimal] | None = None,
) -> Iterator[tuple[LocalRuntime, LocalAlpaca]]:
    """The stack in moto, with its Alpaca endpoints on a local server of these bars (orders fill
    as at Alpaca: at the next bar's open), failing as `faults` plans. With `backup_bars`, a local
    Massive serves them as the backup market data (`runtime.backup_market_data`), its key in the
    stack's secret."""
    runtime = LocalRuntime(database_url=database_url, parameters=parameters)
    with (
        ExitStack() as backup,
        LocalAlpaca(
            bars,
            runtime.alpaca_key_id,
            runtime.alpaca_secret_key,
            now=now,
            fill_market_orders="next_open",
            faults=faults,
            holdings=holdings,
            no_shorting=True,
        ) as alpaca,
    ):
        runtime.extra_env = {
            "ALPACA_DATA_URL": alpaca.base_url,
            "ALPACA_TRADING_URL": alpaca.base_url,
        }
        if faults is not None and faults.active:
            runtime.extra_env["ALPACA_HTTP_TIMEOUT"] = str(FAULT_HTTP_TIMEOUT_SECONDS)
        if backup_bars:
            from ops_pipeline_local.massive_server import LocalMassive

            runtime.massive_api_key = secrets.token_urlsafe(16)
            runtime.backup_market_data = backup.enter_context(
                LocalMassive(backup_bars, runtime.massive_api_key, now=now)
            )
            runtime.extra_env["MASSIVE_DATA_URL"] = runtime.backup_market_data.base_url
        with runtime:
            yield runtime, alpaca


def replay_minutes(bars: Sequence[Bar]) -> list[datetime]:
    """Per New York day with bars, every minute from its first bar's start to the minute after its
    last bar's start (nights and weekends, where every run would find the market closed, are left
    out)."""
    spans: dict[date, tuple[datetime, datetime]] = {}
    for b in bars:
        day = b.ts.astimezone(NEW_YORK).date()
        first, last = spans.get(day, (b.ts, b.ts))
        spans[day] = (min(first, b.ts), max(last, b.ts))
    minutes: list[datetime] = []
    for day in sorted(spans):
        first, last = spans[day]
        minutes += window_minutes(first, last + ONE_MINUTE)
    return minutes


def replay_windows(
    minutes: Sequence[datetime], step: int, cuts: Collection[datetime] = ()
) -> list[tuple[datetime, datetime]]:
    """`(since, time)` windows of at most `step` replay minutes that tile `minutes`, each ending at
    any minute of `cuts` it reaches (the 5-minute runs'); the last ends at the last minute."""
    if step < 1:
        raise ValueError(f"step must be at least 1 minute, got {step}")
    windows: list[tuple[datetime, datetime]] = []
    start = 0
    for i, minute in enumerate(minutes):
        last = i + 1 == len(minutes)
        if (
            last
            or minute in cuts
            or i + 1 - start >= step
            or minutes[i + 1] - minutes[start] > MAX_WINDOW
        ):
            windows.append((minutes[start], minute))
            start = i + 1
    return windows


class Progress:
    """rich's progress bar on a terminal, within 80 columns, its spinner and clock moving while a
    long window runs; elsewhere (a log, CI) a plain line at least 30 replay minutes after the
    last one, and at the end. Times are New York's, and say so.

    Call it as `progress(done, minute, counts)` (that is `update`); `close()` ends the bar (it
    also ends by itself when `done` reaches `total`).
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        self.total = total
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.bar: Bar | None = None
        self.printed: int | None = None
        if self.console.is_terminal:
            self.bar = Bar(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=12),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[counts]}"),
                console=self.console,
            )
            self.task = self.bar.add_task("replay", total=total, counts="")
            self.bar.start()

    @staticmethod
    def short(counts: dict[str, Any]) -> str:
        return f"bars {counts['bars']} recs {counts['recommendations']} fills {counts['fills']}" + (
            f" failed {counts['failed']}" if counts["failed"] else ""
        )

    @staticmethod
    def describe(counts: dict[str, Any]) -> str:
        return (
            f"new: bars {counts['bars']:>5}  recs {counts['recommendations']:>3}"
            f"  fills {counts['fills']:>3}  news {counts['news']:>3}  failed runs {counts['failed']}"
        )

    def update(self, done: int, minute: datetime, counts: dict[str, Any]) -> None:
        local = minute.astimezone(NEW_YORK)
        if self.bar is not None:
            self.bar.update(
                self.task,
                completed=done,
                description=f"{local:%m-%d %H:%M} New York",
                counts=self.short(counts),
            )
            if done >= self.total:
                self.close()
        elif done >= self.total or self.printed is None or done - self.printed >= 30:
            self.printed = done
            self.console.print(
                f"[{done:>4}/{self.total}] {local:%Y-%m-%d %H:%M} New York  {self.describe(counts)}",
                markup=False,
                soft_wrap=True,
            )

    __call__ = update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def replay(
    bars: Sequence[Bar],
    *,
    database_url: str,
    tickers: Sequence[str] | None = None,
    feeds_dir: Path | None = None,
    progress: Callable[[int, datetime, dict[str, Any]], None] | None = None,
    five_minute: bool = True,
    log_level: str = "WARNING",
    mode: str = "simulation",
    faults: FaultPlan | None = None,
    parameters: dict[str, str] | None = None,
    step: int | None = None,
    backup_bars: Sequence[Bar] | None = None,
    holdings: dict[str, Decimal] | None = None,
    setting: dict[str, Any] | None = None,
) -> ReplayResult:
    """Run the minute (and 5-minute) state machines over every minute the bars cover, in windows
    of `step` minutes (default: `default_step(mode)`).

    `setting`: one setting of a backtest sweep (`ops_pipeline.sweep`), handed to the signal
    engine and the dispatcher in their events as the backtest machine hands it: its volume rule
    and risk limits, its rows (and the summary's) in its schema `sweep_<name>`. Simulation only.

    `mode` `paper` sends orders through alpaca-py's TradingClient to the local server; `faults`
    makes that server fail as the plan says; `parameters` override the stack's (e.g. RiskLimits);
    `backup_bars` are served by a local Massive as the backup market data (failover on).

    `holdings`: shares the paper account holds from the start that the deployment did not buy.
    The summary also says what the money path left: `pending` (our orders not in a final state),
    `broker_positions` (paper: the account's) and `own_positions` (the deployment's own fills)."""
    from ops_pipeline_local.feed_server import FeedServer

    if not bars:
        raise ValueError("no bars to replay")
    if mode not in TRADING_MODES:
        raise ValueError(f"mode must be one of {TRADING_MODES}, got {mode!r}")
    swept = parse_setting(setting) if setting is not None else None
    if swept is not None and mode != "simulation":
        raise ValueError("a sweep's setting is replayed in simulation only")
    symbols = sorted({b.symbol for b in bars})
    tickers = list(tickers or symbols)
    # Each use opens its own connection: one held idle through the replay could be dropped
    # under it (an RDS Proxy idle timeout, a failover), as the stages' are.
    on_fresh_connection(database_url, migrate)
    minutes = replay_minutes([b for b in bars if b.symbol in tickers] or bars)
    five_minutes = {m for m in minutes if m.minute % 5 == 0} if feeds_dir and five_minute else set()
    windows = replay_windows(minutes, step or default_step(mode), cuts=five_minutes)
    position = {m: i for i, m in enumerate(minutes, start=1)}
    result = ReplayResult(minutes[0], minutes[-1])
    counts = {"bars": 0, "recommendations": 0, "fills": 0, "news": 0, "failed": 0}
    with ExitStack() as stack:
        feeds: list[dict[str, str]] = []
        server = None
        if feeds_dir is not None:
            server = stack.enter_context(FeedServer(feeds_dir, now=minutes[0]))
            feeds = [{"name": f.name, "url": f.url} for f in server.feeds()]
        stack_parameters = {
            "Tickers": ",".join(tickers),
            "Feeds": json.dumps(feeds),
            "TradingMode": mode,
            "LogLevel": log_level,
            **(parameters or {}),
        }
        runtime, alpaca = stack.enter_context(
            local_stack(
                bars,
                database_url=database_url,
                parameters=stack_parameters,
                now=minutes[0],
                faults=faults,
                backup_bars=backup_bars,
                holdings=holdings,
            )
        )
        if swept is not None:
            for stage in SETTING_STAGES:
                runtime.event_defaults[stage] = {"setting": swept.as_item()}

        def run(machine: str, event: dict[str, Any], name: str) -> None:
            outcome = runtime.execute(machine, event, name=name)
            tally = result.executions.setdefault(machine, {})
            tally[outcome.status] = tally.get(outcome.status, 0) + 1
            if outcome.status != "SUCCEEDED":
                result.failures.append(outcome)
                counts["failed"] += 1
            else:
                _count(counts, outcome.output or {})

        for since, minute in windows:
            alpaca.set_time(minute)
            if runtime.backup_market_data is not None:
                runtime.backup_market_data.set_time(minute)
            event = {"time": iso_minute(minute)}
            if since != minute:
                event["since"] = iso_minute(since)
            run(MINUTE_MACHINE, event, f"minute-{since:%Y%m%dT%H%M}-{minute:%Y%m%dT%H%M}")
            if server is not None and minute in five_minutes:
                server.set_time(minute)
                run(FIVE_MINUTE_MACHINE, {"time": iso_minute(minute)}, f"five-{minute:%Y%m%dT%H%M}")
            if progress:
                progress(position[minute], minute, counts)
        result.faults_injected = alpaca.faults.counts() if alpaca.faults else {}
        broker_positions = alpaca.positions if mode == "paper" else {}
        result.broker_orders = alpaca.orders if mode == "paper" else []
    result.summary = on_fresh_connection(
        database_url,
        in_setting(swept, lambda c: summarize(c, result.first_minute, result.last_minute, tickers)),
    )
    result.summary.update(
        on_fresh_connection(database_url, in_setting(swept, lambda c: money_path(c, mode))),
        broker_positions=broker_positions,
    )
    return result


def in_setting[T](setting: Setting | None, work: Callable[[Any], T]) -> Callable[[Any], T]:
    """`work` on a connection that reads `setting`'s rows (its schema first on the search_path),
    or the public tables' without one."""
    if setting is None:
        return work

    def run(conn: Any) -> T:
        enter_setting(conn, setting)
        return work(conn)

    return run


def money_path(conn: Any, mode: str) -> dict[str, Any]:
    """Our orders not in a final state (`submitted` or `pending`), and the deployment's net
    position from its own fills (with what an open order has filled so far), by symbol (in the
    replay's trading mode)."""
    ((pending,),) = conn.run(
        "SELECT count(*) FROM dispatch_executions"
        " WHERE mode = :mode AND status IN ('submitted', 'pending')",
        mode=mode,
    )
    own = conn.run(
        "SELECT ticker, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) FROM dispatch_executions"
        " WHERE mode = :mode AND status IN ('filled', 'submitted') GROUP BY ticker HAVING"
        " sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) <> 0 ORDER BY ticker",
        mode=mode,
    )
    return {"pending": pending, "own_positions": {t: Decimal(q) for t, q in own}}


def on_fresh_connection[T](
    database_url: str, work: Callable[[Any], T], attempts: int = CONNECTION_ATTEMPTS
) -> T:
    """Run `work` on a new connection; if the connection is lost under it, run it again on
    another. Only for work that can run twice (a migration, reads), as a stage's retry is."""
    for attempt in range(1, attempts + 1):
        conn = None
        try:
            conn = connect(parse_database_url(database_url))
            return work(conn)
        except Exception as exc:
            if attempt == attempts or not is_connection_lost(exc):
                raise
        finally:
            if conn is not None:
                with suppress(Exception):  # closing a connection that is already lost
                    conn.close()
    raise AssertionError("unreachable")


def _count(counts: dict[str, Any], output: dict[str, Any]) -> None:
    counts["bars"] += output.get("telemetry", {}).get("inserted", 0)
    counts["recommendations"] += output.get("signals", {}).get("created", 0)
    dispatched = output.get("dispatch", {})
    # A simulated order fills on a later run, at the next bar's open: reconciled, like paper's.
    counts["fills"] += dispatched.get("outcomes", {}).get("filled", 0)
    counts["fills"] += dispatched.get("reconciled_outcomes", {}).get("filled", 0)
    news = output.get("results", {}).get("news", {})
    counts["news"] += news.get("rss", {}).get("inserted", 0)


def simulated_pnl(
    fills: Sequence[dict[str, Any]],
    last_close: dict[str, Decimal],
    opening: dict[str, Decimal] | None = None,
    opening_close: dict[str, Decimal] | None = None,
) -> dict[str, Any]:
    """P&L of a window: what the book was worth when it opened, its fills, what it is worth now.

    `opening` holds the positions held when the window opens, marked at `opening_close` (each
    ticker's last close before the window); `fills` are the window's fills in order (`ticker`,
    `side`, `qty`, `price`, and `commission` where recorded), and everything held at the end is
    marked at `last_close` (the last close in the window, else the last one before it):

        P&L = closing positions x last close - opening positions x opening close
              - sum(signed qty x price) - commissions

    A ticker without a close to mark it at is marked at 0 and listed in `unmarked`.
    """
    opening = {t: q for t, q in (opening or {}).items() if q}
    opening_close = opening_close or {}
    held = dict(opening)
    cash = Decimal(0)
    commissions = Decimal(0)
    for fill in fills:
        signed = fill["qty"] if fill["side"] == "buy" else -fill["qty"]
        held[fill["ticker"]] = held.get(fill["ticker"], Decimal(0)) + signed
        cash -= signed * fill["price"]
        commissions += fill.get("commission") or Decimal(0)
    marks = {**opening_close, **last_close}
    opening_value = sum(
        (q * opening_close.get(t, marks.get(t, Decimal(0))) for t, q in opening.items()),
        Decimal(0),
    )
    closing_value = sum((q * marks.get(t, Decimal(0)) for t, q in held.items()), Decimal(0))
    # The carried positions' move: the opening book held from its marks to the last closes;
    # the rest of the P&L is this window's own trading.
    carried = sum(
        (
            q * (marks.get(t, Decimal(0)) - opening_close.get(t, marks.get(t, Decimal(0))))
            for t, q in opening.items()
        ),
        Decimal(0),
    )
    total = closing_value - opening_value + cash - commissions
    cent = Decimal("0.01")
    return {
        "realized_and_unrealized": total.quantize(cent),
        "carried_move": carried.quantize(cent),
        "own_trading": total.quantize(cent) - carried.quantize(cent),
        "opening_positions": opening,
        "opening_value": opening_value.quantize(cent),
        "cash_flow": (cash - commissions).quantize(cent),
        "commissions": commissions.quantize(cent),
        "closing_value": closing_value.quantize(cent),
        "open_positions": {t: q for t, q in held.items() if q},
        "unmarked": sorted(t for t, q in held.items() if q and t not in marks),
    }


def execution_columns(conn: Any) -> set[str]:
    """The columns `dispatch_executions` has in this database (commission came with a migration)."""
    rows = conn.run(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'dispatch_executions'"
    )
    return {name for (name,) in rows}


def window_fills(
    conn: Any, first: datetime, end: datetime, tickers: Sequence[str]
) -> tuple[dict[str, Decimal], list[dict[str, Any]]]:
    """Positions held before `first`, and the fills decided in [first, end): simulated or paper
    (a database holds one run's, whose mode `--continue` keeps).

    Both by the minute each execution was decided (event time), across every earlier replay in
    this database: a replay of Tuesday after one of Monday starts from Monday's book.
    """
    migrated = "commission" in execution_columns(conn)  # both came with migration 005
    commission = "e.commission" if migrated else "CAST(0 AS numeric)"  # fixed, never input
    filled_at = "e.filled_at" if migrated else "CAST(NULL AS timestamptz)"
    held = conn.run(
        "SELECT ticker, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) FROM dispatch_executions"
        " WHERE status = 'filled' AND decided_at < :first"
        " AND ticker = ANY(CAST(:tickers AS text[])) GROUP BY ticker",
        first=first,
        tickers=list(tickers),
    )
    fills = query(
        conn,
        f"SELECT e.id, e.ticker, e.side, e.qty, e.price, {commission} AS commission, e.decided_at,"
        f" e.recommendation_id, {filled_at} AS filled_at, e.mode FROM dispatch_executions e"
        " WHERE e.status = 'filled' AND e.decided_at >= :first"
        " AND e.decided_at < :end AND e.ticker = ANY(CAST(:tickers AS text[]))"
        " ORDER BY e.decided_at, e.id",
        first=first,
        end=end,
        tickers=list(tickers),
    )
    return {t: Decimal(q) for t, q in held if q}, fills


def _closes(conn: Any, tickers: Sequence[str], before: datetime) -> dict[str, Decimal]:
    """Each ticker's last close of a bar that started before `before`."""
    rows = conn.run(
        "SELECT DISTINCT ON (ticker) ticker, close FROM lane_telemetry"
        " WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts < :before ORDER BY ticker, ts DESC",
        tickers=list(tickers),
        before=before,
    )
    return {t: Decimal(c) for t, c in rows}


def summarize(conn: Any, first: datetime, last: datetime, tickers: Sequence[str]) -> dict[str, Any]:
    """What the replay window holds: bars, features, recommendations by band, executions, P&L.

    The P&L starts from the simulated positions held when the window opens (see `simulated_pnl`).
    """
    window = {"first": first, "last": last + ONE_MINUTE, "tickers": list(tickers)}
    where = "ticker = ANY(CAST(:tickers AS text[])) AND ts >= :first AND ts < :last"
    rec_where = "r.ticker = ANY(CAST(:tickers AS text[])) AND r.ts >= :first AND r.ts < :last"
    bars = conn.run(f"SELECT count(*) FROM lane_telemetry WHERE {where}", **window)[0][0]
    features = query(
        conn,
        f"SELECT count(*) AS total, count(volume_ratio) AS with_ratio, count(*) FILTER (WHERE volume_surge) AS surges"
        f" FROM lane_features WHERE {where}",
        **window,
    )[0]
    bands = conn.run(
        f"SELECT volume_multiplier, action, count(*) FROM dispatch_recommendations WHERE {where}"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        **window,
    )
    news_moved = query(
        conn,
        f"SELECT ticker, ts, action, confidence, reason FROM dispatch_recommendations"
        f" WHERE {where} AND cardinality(news_event_ids) > 0 ORDER BY ts, ticker",
        **window,
    )
    executions = conn.run(
        "SELECT e.mode, e.status, count(*) FROM dispatch_executions e"
        " JOIN dispatch_recommendations r ON r.id = e.recommendation_id"
        f" WHERE {rec_where} GROUP BY 1, 2 ORDER BY 1, 2",
        **window,
    )
    start, end = first, last + ONE_MINUTE
    opening, fills = window_fills(conn, start, end, tickers)
    news = conn.run(
        "SELECT count(*), count(c.event_id) FROM inbound_events_raw r"
        " LEFT JOIN inbound_events_classified c ON c.event_id = r.id"
        " WHERE r.fetched_at >= :first AND r.fetched_at < :last",
        first=window["first"],
        last=window["last"],
    )[0]
    names = {"0.30": "WEAK x0.3", "1.00": "NORMAL x1.0", "1.30": "SURGE x1.3"}
    return {
        "bars": bars,
        "features": features,
        "recommendations_by_band": {
            f"{names.get(f'{m:.2f}', f'x{m:.2f}')} {action}": n for m, action, n in bands
        },
        "recommendations_moved_by_news": len(news_moved),
        "example_moved_by_news": news_moved[0] if news_moved else None,
        "executions": {f"{mode} {status}": n for mode, status, n in executions},
        "news": {"ingested": news[0], "classified": news[1]},
        "simulated_pnl": simulated_pnl(
            fills,
            _closes(conn, tickers, end),
            opening,
            _closes(conn, tickers, start),
        ),
    }
