"""`ops-pipeline`: the same state machines and handlers as in AWS, on one machine."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ONE_MINUTE = timedelta(minutes=1)
BUNDLED_BARS = Path(__file__).parent / "data" / "bars"
BUNDLED_FEEDS = Path(__file__).parent / "data" / "feeds"


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return args.database_url
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from ops_pipeline_local.embedded_db import embedded_database_url

    print("starting the embedded PostgreSQL (no DATABASE_URL given) ...", file=sys.stderr)
    return embedded_database_url()


def _connect(args: argparse.Namespace) -> Any:
    from ops_pipeline.db import connect, parse_database_url

    return connect(parse_database_url(_database_url(args)))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _print_summary(result: Any, stream: Any = None) -> None:
    """The replay's summary as a rich table (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    table = Table(title="Replay summary", show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "window", f"{result.first_minute:%Y-%m-%d %H:%M} to {result.last_minute:%Y-%m-%d %H:%M} UTC"
    )
    for machine, tally in result.executions.items():
        table.add_row(machine, ", ".join(f"{k.lower()} {v}" for k, v in sorted(tally.items())))
    table.add_row("bars", str(s["bars"]))
    f = s["features"]
    table.add_row(
        "features", f"{f['total']} ({f['with_ratio']} with a volume ratio, {f['surges']} surges)"
    )
    bands = s["recommendations_by_band"] or {"none": 0}
    table.add_row(
        "recommendations by multiplier band", "\n".join(f"{b}: {n}" for b, n in bands.items())
    )
    moved = str(s["recommendations_moved_by_news"])
    if example := s.get("example_moved_by_news"):
        moved += (
            f"\ne.g. {example['ticker']} {example['action']} at {example['ts']:%H:%M} UTC:"
            f" {example['reason']}"
        )
    table.add_row("moved by news", moved)
    table.add_row("news", f"{s['news']['ingested']} ingested, {s['news']['classified']} classified")
    executions = s["executions"] or {"none": 0}
    table.add_row("executions", "\n".join(f"{k}: {n}" for k, n in executions.items()))
    pnl = s["simulated_pnl"]

    def book(positions: dict[str, Any]) -> str:
        return ", ".join(f"{t} {q:,.0f}" for t, q in sorted(positions.items())) or "none"

    table.add_row(
        "simulated P&L",
        f"{pnl['realized_and_unrealized']} USD (open positions: {book(pnl['open_positions'])})",
    )
    if pnl.get("opening_positions"):
        table.add_row(
            "  from the opening book",
            f"{book(pnl['opening_positions'])}, worth {pnl['opening_value']} USD at the start",
        )
    if pnl.get("commissions"):
        table.add_row("  commissions", f"{pnl['commissions']} USD (in the P&L)")
    for failure in result.failures[:5]:
        table.add_row("FAILED", f"{failure.name}: {failure.error}: {(failure.cause or '')[:300]}")
    stream = stream or sys.stdout
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:  # a file or a pipe: a fixed width, long reasons wrap in their cell
        console = Console(file=stream, highlight=False, width=120)
    console.print()
    console.print(table, markup=False)


def _replay(args: argparse.Namespace, bars_path: Path, feeds: Path | None) -> int:
    from ops_pipeline_local.bars import read_bars
    from ops_pipeline_local.replay import Progress, default_step, replay, replay_minutes

    bars = read_bars(bars_path)
    if not bars:
        print(f"no valid bars in {bars_path}", file=sys.stderr)
        return 2
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    if tickers:
        bars = [b for b in bars if b.symbol in tickers]
        if not bars:
            print(f"no bars for {', '.join(tickers)} in {bars_path}", file=sys.stderr)
            return 2
    faults = None
    if args.faults:
        from ops_pipeline_local.faults import FaultPlan

        try:
            faults = FaultPlan.parse(args.faults, seed=args.seed)
        except ValueError as exc:
            print(f"--faults: {exc}", file=sys.stderr)
            return 2
    database_url = _database_url(args)
    progress = Progress(len(replay_minutes(bars)))
    print(
        f"replaying {len(bars)} bars of {', '.join(sorted({b.symbol for b in bars}))}"
        f" through the minute state machine" + (" and the 5-minute one" if feeds else ""),
        file=sys.stderr,
    )
    try:
        result = replay(
            bars,
            database_url=database_url,
            tickers=tickers,
            feeds_dir=feeds,
            progress=progress.update,
            log_level=args.log_level.upper(),
            mode=args.mode,
            faults=faults,
            step=args.step or default_step(args.mode),
            parameters=_cost_parameters(args),
        )
    finally:
        progress.close()
    args.resolved_database_url = database_url
    if faults is not None:
        injected = ", ".join(f"{k} {v}" for k, v in sorted(result.faults_injected.items()))
        print(f"faults ({faults}): {injected or 'none'} injected", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {"executions": result.executions, **result.summary}, default=_json_default, indent=2
            )
        )
    else:
        _print_summary(result)
    return 0 if not result.failures else 1


def cmd_run(args: argparse.Namespace) -> int:
    """The bundled trading day, with the bundled feeds, on the embedded database; then the report."""
    code = _replay(args, BUNDLED_BARS, BUNDLED_FEEDS)
    if code == 2 or args.no_report:
        return code
    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline_local.report import write_report

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    conn = connect(parse_database_url(args.resolved_database_url))
    try:
        report = write_report(conn, Path(args.out), tickers=tickers)
    finally:
        conn.close()
    # After a JSON summary, stdout stays one JSON document.
    print(f"report: {report.index.resolve()}", file=sys.stderr if args.json else sys.stdout)
    return code


def _minute_arg(text: str) -> datetime:
    """A bar's start for --from/--to: ISO-8601 with an offset, floored to the minute, in UTC."""
    from ops_pipeline.errors import InvalidEventError
    from ops_pipeline.event_time import parse_minute

    try:
        return parse_minute(text)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from ops_pipeline.migrate import migrate
    from ops_pipeline_local.report import write_report

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    conn = _connect(args)
    try:
        migrate(conn)
        report = write_report(
            conn,
            Path(args.out),
            first=getattr(args, "from"),
            to=args.to,
            tickers=tickers,
            capital=Decimal(args.capital) if args.capital else None,
        )
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(f"report: {report.index.resolve()}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    return _replay(args, Path(args.bars), Path(args.feeds) if args.feeds else None)


def cmd_backtest(args: argparse.Namespace) -> int:
    """The backtest state machine (Distributed Map over shards) over bars, in simulation."""
    from ops_pipeline_local.backtest import BACKTEST_MACHINE, backtest
    from ops_pipeline_local.bars import read_bars

    bars = read_bars(Path(args.bars))
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    bars = [b for b in bars if not tickers or b.symbol in tickers]
    if not bars:
        print(f"no valid bars in {args.bars}", file=sys.stderr)
        return 2
    try:
        result = backtest(
            bars,
            database_url=_database_url(args),
            shards=args.shards,
            tickers=tickers,
            log_level=args.log_level.upper(),
            concurrency=args.concurrency,
        )
    except ValueError as exc:  # bars no date range can hold, a shard count below 1
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    plan = result.plan
    (status,) = result.executions[BACKTEST_MACHINE]
    print(
        f"backtest {status.lower()}: {len(plan.shards)} shards ({args.shards} ticker groups x"
        f" {len(plan.ranges)} date ranges), {len(plan.windows)} portfolio windows",
        file=sys.stderr,
    )
    if result.failures:
        print(f"backtest failed: {result.error}: {result.cause}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {"executions": result.executions, **result.summary}, default=_json_default, indent=2
            )
        )
    else:
        _print_summary(result)
    return 0 if not result.failures else 1


def cmd_backtest_plan(args: argparse.Namespace) -> int:
    """Shards over the NYSE sessions between two dates, as files for a backtest in AWS."""
    from datetime import date

    from ops_pipeline_local.backtest import plan_minutes, session_minutes, write_plan

    try:
        first, last = date.fromisoformat(args.first), date.fromisoformat(args.last)
        tickers = [t.strip().upper() for t in args.tickers.split(",") if t.strip()]
        plan = plan_minutes(session_minutes(first, last), tickers, args.shards)
        written = write_plan(plan, Path(args.out), args.prefix, args.concurrency)
    except ValueError as exc:
        print(f"backtest-plan: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(plan.shards)} shards ({len(plan.shards) // len(plan.ranges)} ticker groups x"
        f" {len(plan.ranges)} date ranges), {len(plan.windows)} portfolio windows: "
        + ", ".join(str(p) for p in written.values())
    )
    return 0


STATUS_TABLES = {
    "lane_telemetry": "ts",
    "lane_features": "ts",
    "dispatch_recommendations": "ts",
    "dispatch_executions": "decided_at",
    "inbound_events_raw": "fetched_at",
    "inbound_events_classified": "event_time",
    "lane_watchlist_state": "ts",
    "signal_evaluations": "ts",
}
# Data older than this (from the newest bar's close) while the market is open is stale.
STALE_AFTER_SECONDS = 300

# What `status` reads, in one statement. "The last minute run failed" is judged from what the
# stages leave behind, since a local run keeps no Step Functions history: the newest minute's run
# ingests bars, computes features for the regular ones, writes recommendations and records an
# execution for each. So, within the day before the newest bar: a regular bar without features
# (the run stopped after the ingest), a recommendation without an execution (it stopped before the
# dispatch finished), or a `failed` execution at the newest decided minute. A run that failed
# before storing anything shows as stale data instead.
STATUS_CHECKS = """
WITH newest AS (SELECT max(ts) AS bar FROM lane_telemetry),
since AS (SELECT bar - interval '1 day' AS ts FROM newest)
SELECT
    (SELECT count(*) FROM lane_telemetry t
     WHERE t.session = 'regular' AND t.ts >= (SELECT ts FROM since)
       AND NOT EXISTS (SELECT 1 FROM lane_features f WHERE f.ticker = t.ticker AND f.ts = t.ts))
        AS bars_without_features,
    (SELECT count(*) FROM dispatch_recommendations r
     WHERE r.decided_at >= (SELECT ts FROM since)
       AND NOT EXISTS (SELECT 1 FROM dispatch_executions e WHERE e.recommendation_id = r.id))
        AS recommendations_without_execution,
    (SELECT count(*) FROM dispatch_executions
     WHERE status = 'failed'
       AND decided_at = (SELECT max(decided_at) FROM dispatch_executions))
        AS failed_executions_last_minute
"""


class NotMigrated(RuntimeError):
    """The database has no schema yet, or misses migrations: `status` never migrates."""


def _check_schema(conn: Any) -> None:
    from ops_pipeline.migrate import available_migrations

    (exists,) = conn.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0]
    done = (
        {row[0] for row in conn.run("SELECT version FROM schema_migrations")} if exists else set()
    )
    missing = [f"{m.version:03d}_{m.name}" for m in available_migrations() if m.version not in done]
    if missing:
        raise NotMigrated(
            f"the database misses migrations {', '.join(missing)}: run `ops-pipeline db migrate`"
        )


def _session_calendar() -> Any:
    """The market session function, answered locally from exchange_calendars (XNYS)."""
    from ops_pipeline.market import MarketCalendar
    from ops_pipeline_local.calendar import nyse_calendar

    return MarketCalendar(
        lambda first, last: [s.calendar_entry() for s in nyse_calendar().between(first, last)]
    )


@functools.cache
def _local_setting(name: str) -> str:
    """A stack parameter as a local run uses it (the template's default)."""
    from ops_pipeline_local.runtime import project_root
    from ops_pipeline_local.template import Stack

    return str(Stack.load(project_root()).resolver.parameter(name))


def status_report(conn: Any, now: datetime) -> dict[str, Any]:
    """Tables, trading mode and state, positions, open orders, today's refusals, and health.

    `healthy` is False when the data is stale while the market is open (the session from the
    market calendar) or when the last minute run failed (see STATUS_CHECKS).
    """
    from ops_pipeline.db import query
    from ops_pipeline.market import market_status, trading_day

    _check_schema(conn)
    parts = [
        f"SELECT '{table}' AS name, count(*) AS rows, max({column}) AS newest FROM {table}"
        for table, column in STATUS_TABLES.items()  # fixed names from this module, not input
    ]
    tables = {row["name"]: row for row in query(conn, " UNION ALL ".join(parts))}
    last = query(
        conn,
        "SELECT e.ticker, e.side, e.qty, e.price, e.mode, e.status, e.reject_reason, e.decided_at,"
        " r.reason FROM dispatch_executions e JOIN dispatch_recommendations r ON r.id = e.recommendation_id"
        " ORDER BY e.decided_at DESC, e.id DESC LIMIT 1",
    )
    positions = query(
        conn,
        "SELECT mode, ticker, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) AS qty"
        " FROM dispatch_executions WHERE status = 'filled'"
        " GROUP BY mode, ticker HAVING sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) <> 0"
        " ORDER BY mode, ticker",
    )
    open_orders = query(
        conn,
        "SELECT ticker, side, qty, mode, status, client_order_id, decided_at FROM dispatch_executions"
        " WHERE status IN ('submitted', 'pending') ORDER BY decided_at, id",
    )
    newest_decision = tables["dispatch_executions"]["newest"]
    refusals: list[dict[str, Any]] = []
    if newest_decision is not None:
        day = trading_day(newest_decision)
        refusals = [
            r
            for r in query(
                conn,
                "SELECT ticker, side, qty, mode, reject_reason, decided_at FROM dispatch_executions"
                " WHERE status = 'rejected' AND decided_at > :since ORDER BY decided_at, id",
                since=newest_decision - timedelta(days=1),
            )
            if trading_day(r["decided_at"]) == day
        ]
    (checks,) = query(conn, STATUS_CHECKS)
    newest_bar = tables["lane_telemetry"]["newest"]
    age = int((now - (newest_bar + ONE_MINUTE)).total_seconds()) if newest_bar else None
    market = market_status(now, _session_calendar().session(trading_day(now)))
    stale = market.is_open and (age is None or age > STALE_AFTER_SECONDS)
    run_failed = any(checks.values())
    return {
        "trading_mode": last[0]["mode"] if last else _local_setting("TradingMode"),
        "trading_state": _local_setting("TradingState"),
        "tables": {
            name: {"rows": row["rows"], "newest": row["newest"]} for name, row in tables.items()
        },
        "open_positions": positions,
        "open_orders": open_orders,
        "refusals_today": refusals,
        "last_execution": last[0] if last else None,
        "data_age_seconds": age,
        "market": market.as_event(),
        "stale": stale,
        "last_run": {"failed": run_failed, **checks},
        "healthy": not stale and not run_failed,
    }


def _print_status(report: dict[str, Any]) -> None:
    print(f"trading mode: {report['trading_mode']}   trading state: {report['trading_state']}")
    print(f"{'table':<28} {'rows':>8}  newest")
    for name, row in report["tables"].items():
        print(f"{name:<28} {row['rows']:>8}  {row['newest'] or '-'}")
    print("open positions:" + ("" if report["open_positions"] else " none"))
    for p in report["open_positions"]:
        print(f"  {p['mode']:<10} {p['ticker']:<6} {p['qty']:>12}")
    print("open orders:" + ("" if report["open_orders"] else " none"))
    for o in report["open_orders"]:
        print(
            f"  {o['mode']:<10} {o['side']} {o['qty']} {o['ticker']} {o['status']} (decided {o['decided_at']})"
        )
    print("refusals today:" + ("" if report["refusals_today"] else " none"))
    for r in report["refusals_today"]:
        print(f"  {r['decided_at']} {r['side']} {r['qty']} {r['ticker']}: {r['reject_reason']}")
    last = report["last_execution"]
    if last:
        print(
            f"last execution: {last['mode']} {last['side']} {last['qty']} {last['ticker']}"
            f" -> {last['status']}{' (' + last['reject_reason'] + ')' if last['reject_reason'] else ''}"
            f" decided at {last['decided_at']}"
        )
    else:
        print("last execution: none")
    age = report["data_age_seconds"]
    market = report["market"]
    print(f"data age: {'no bars yet' if age is None else f'{age} s since the newest bar closed'}")
    print(f"market: {'open' if market['is_open'] else 'closed'} ({market['reason']})")
    if report["stale"]:
        print(f"PROBLEM: data is stale while the market is open (> {STALE_AFTER_SECONDS} s)")
    run = report["last_run"]
    if run["failed"]:
        print(
            "PROBLEM: the last minute run failed"
            f" ({run['bars_without_features']} regular bars without features,"
            f" {run['recommendations_without_execution']} recommendations without an execution,"
            f" {run['failed_executions_last_minute']} failed executions at the newest minute)"
        )


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when healthy, 1 when data is stale in the session or the last run failed, 2 when
    the database is not migrated."""
    now = _parse_at(args.at) if args.at else datetime.now(UTC)
    conn = _connect(args)
    try:
        report = status_report(conn, now)
    except NotMigrated as exc:
        print(f"ops-pipeline status: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    if args.json:
        print(json.dumps(report, default=_json_default))
    else:
        _print_status(report)
    return 0 if report["healthy"] else 1


def _parse_at(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise SystemExit(f"--at needs a time zone offset: {text!r}")
    return at.astimezone(UTC)


def cmd_explain(args: argparse.Namespace) -> int:
    from ops_pipeline.errors import InvalidEventError
    from ops_pipeline.event_time import parse_minute
    from ops_pipeline.migrate import migrate
    from ops_pipeline_local.explain import gather, render

    try:
        at = parse_minute(args.at)
    except InvalidEventError as exc:
        print(f"--at: {exc}", file=sys.stderr)
        return 2
    conn = _connect(args)
    migrate(conn)
    explanation = gather(conn, args.ticker, at)
    conn.close()
    sys.stdout.write(render(explanation))
    return 0 if explanation.found else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from ops_pipeline.migrate import migrate

    applied = migrate(_connect(args))
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from ops_pipeline.news.classify import classify

    universe = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        print(json.dumps(classify(text, universe).to_json()), flush=True)
    return 0


def _broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=("simulation", "paper"),
        default="simulation",
        help="simulation fills in the database; paper sends orders to the local Alpaca"
        " through alpaca-py (default simulation)",
    )
    p.add_argument(
        "--faults",
        metavar="SPEC",
        help="make the local Alpaca fail: e.g. data=0.1,orders=0.1[,seed=N] (that fraction of"
        " data requests answered 429, 500 or too late; of orders whose reply is lost)",
    )
    p.add_argument("--seed", type=int, help="the fault plan's seed (default 0, or the spec's)")
    p.add_argument(
        "--slippage-bps",
        type=float,
        metavar="N",
        help="simulated fills: slippage against the order in basis points (default 5)",
    )
    p.add_argument(
        "--commission-per-share",
        type=float,
        metavar="X",
        help="simulated fills: commission in USD per share (default 0: Alpaca charges none)",
    )


def _cost_parameters(args: argparse.Namespace) -> dict[str, str]:
    """--slippage-bps / --commission-per-share as the stack's SimulationCosts parameter (the
    template's defaults for what is not given)."""
    bps, commission = args.slippage_bps, args.commission_per_share
    if bps is None and commission is None:
        return {}
    costs = json.loads(_local_setting("SimulationCosts"))
    if bps is not None:
        costs["slippage_bps"] = bps
    if commission is not None:
        costs["commission_per_share"] = commission
    return {"SimulationCosts": json.dumps(costs)}


STEP_HELP = (
    "run the minute state machine once every N minutes, each run a catch-up window of N minutes"
    " (default in simulation: five days per window, the same rows as --step 1, faster)"
)


def _step(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("the step is at least 1 minute")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ops-pipeline", description=__doc__)
    parser.add_argument(
        "--log-level", default="WARNING", help="handlers' log level (default WARNING)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--database-url",
            help="PostgreSQL URL (default: $DATABASE_URL, else the embedded database)",
        )
        p.set_defaults(func=func)
        return p

    run = command("run", cmd_run, "replay the bundled trading day (2019-02-12) in simulation")
    run.add_argument("--tickers", help="only these tickers (comma-separated)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    _broker_options(run)
    run.add_argument("--step", type=_step, help=STEP_HELP)
    run.add_argument("--out", default="report", help="the report's folder (default ./report)")
    run.add_argument("--no-report", action="store_true", help="do not write the report")
    rep = command("replay", cmd_replay, "replay bars from a CSV file or folder minute by minute")
    rep.add_argument(
        "--bars",
        required=True,
        help="CSV file or folder: symbol,timestamp,open,high,low,close,volume",
    )
    rep.add_argument(
        "--feeds", help="a folder of RSS/Atom files, served on loopback to the 5-minute pipeline"
    )
    rep.add_argument("--tickers", help="only these tickers (comma-separated)")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.add_argument("--step", type=_step, help=STEP_HELP)
    bt = command(
        "backtest",
        cmd_backtest,
        "replay bars on the backtest state machine: a Distributed Map over shards (ticker groups"
        " x date ranges), then the portfolio in event order; simulation, the same rows as replay",
    )
    bt.add_argument("--bars", required=True, help="CSV file or folder, as for replay")
    bt.add_argument(
        "--shards", type=int, default=4, help="ticker groups per date range (default 4)"
    )
    bt.add_argument("--tickers", help="only these tickers (comma-separated)")
    bt.add_argument("--concurrency", type=int, default=4, help="shards run at once (default 4)")
    bt.add_argument("--json", action="store_true", help="print the summary as JSON")
    btp = command(
        "backtest-plan",
        cmd_backtest_plan,
        "write the shard lists and the input of a backtest in AWS (docs/deploy.md#backtests)",
    )
    btp.add_argument("--from", dest="first", required=True, help="first New York date, 2024-01-02")
    btp.add_argument("--to", dest="last", required=True, help="last New York date, 2024-12-31")
    btp.add_argument("--tickers", required=True, help="the tickers (comma-separated)")
    btp.add_argument("--shards", type=int, default=4, help="ticker groups per date range")
    btp.add_argument(
        "--out", default="backtest-plan", help="folder to write (default ./backtest-plan)"
    )
    btp.add_argument(
        "--prefix", default="backtests/run", help="the files' key prefix in the backtest bucket"
    )
    btp.add_argument("--concurrency", type=int, default=10, help="shards run at once (default 10)")
    exp = command(
        "explain", cmd_explain, "why a ticker's bar made (or did not make) a signal, and its fate"
    )
    exp.add_argument("ticker", help="the ticker, e.g. AAPL")
    exp.add_argument(
        "--at", required=True, help="the bar's start, ISO-8601, e.g. 2019-02-12T14:31:00Z"
    )
    _broker_options(rep)
    st = command(
        "status",
        cmd_status,
        "trading mode and state, positions, open orders, today's refusals, data age;"
        " exit 1 when data is stale in the session or the last minute run failed",
    )
    rpt = command(
        "report", cmd_report, "write DIR/index.html and PNG charts of a run or replay's results"
    )
    rpt.add_argument("--out", default="report", help="folder to write (default ./report)")
    rpt.add_argument(
        "--from", type=_minute_arg, help="first bar's start, ISO-8601 (default: the first stored)"
    )
    rpt.add_argument(
        "--to", type=_minute_arg, help="last bar's start, ISO-8601 (default: the last stored)"
    )
    rpt.add_argument("--tickers", help="only these tickers (comma-separated; default: all)")
    rpt.add_argument(
        "--capital",
        help="USD the returns are measured on (default: max_position_notional per ticker)",
    )
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.add_argument("--at", help="judge staleness at this time (ISO 8601 with offset; default now)")
    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    mig = db_sub.add_parser("migrate", help="apply pending migrations")
    mig.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else the embedded database)"
    )
    mig.set_defaults(func=cmd_migrate)
    cls = sub.add_parser(
        "classify", help="classify one text per line from stdin, one JSON object per line out"
    )
    cls.add_argument("--tickers", help="limit ticker inference to this universe (comma-separated)")
    cls.add_argument("--database-url", help=argparse.SUPPRESS)
    cls.set_defaults(func=cmd_classify)
    return parser


def _prime_observability(level: str) -> None:
    """Name the service and metrics namespace as the template does, before any handler code loads.

    In AWS each function is its own process and reads these at start; here one process holds them
    all, and Powertools reads them once, at first import.
    """
    from ops_pipeline_local.runtime import project_root
    from ops_pipeline_local.template import Stack

    common = Stack.load(project_root()).global_environment()
    for key in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        if key in common:
            os.environ.setdefault(key, common[key])
    os.environ["POWERTOOLS_LOG_LEVEL"] = level


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _prime_observability(args.log_level.upper())
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


def entry() -> int:
    """The `ops-pipeline` command: `main`, then the process exits without collecting its heap.

    What a command leaves (moto's backends, pandas, botocore's models: millions of objects) is
    freed by the process's exit; a garbage collection of it at interpreter shutdown took a
    second of a five-second replay. Not in `main`, which tests call in-process."""
    try:
        return main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(entry())
