"""`ops-pipeline`: the same state machines and handlers as in AWS, on one machine."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ONE_MINUTE = timedelta(minutes=1)
BUNDLED_BARS = Path(__file__).parent / "data" / "bars"
BUNDLED_FEEDS = Path(__file__).parent / "data" / "feeds"


class CommandError(Exception):
    """What the user can fix, said in one line on stderr: bad input (exit 2, as argparse's usage
    errors) or a database that does not answer (exit 1). Never a traceback."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


URL_FORM = "postgresql://user[:password]@host[:port]/dbname"


def _database_url_arg(text: str) -> str:
    """--database-url: checked before any work starts."""
    from ops_pipeline.db import DatabaseConfigError, parse_database_url

    try:
        parse_database_url(text)
    except DatabaseConfigError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a PostgreSQL URL: write {URL_FORM}"
        ) from None
    return text


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        try:
            _database_url_arg(url)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"DATABASE_URL: {exc}") from None
        return url
    from ops_pipeline_local.embedded_db import embedded_database_url

    print("starting the embedded PostgreSQL (no DATABASE_URL given) ...", file=sys.stderr)
    return embedded_database_url()


def _unreachable(where: str, exc: BaseException) -> CommandError:
    """A refused, unknown or silent database, or one that turns us away, as one line."""
    import socket

    import pg8000.exceptions

    detail = exc.args[0] if exc.args else None
    if isinstance(exc, pg8000.exceptions.DatabaseError) and isinstance(detail, dict):
        code, message = str(detail.get("C", "")), str(detail.get("M", exc))
        if code == "3D000":
            return CommandError(f"{message} at {where}: create it (createdb) or name another", 1)
        if code.startswith("28"):
            return CommandError(f"the database at {where} refused us: {message}", 1)
        return CommandError(f"the database at {where} failed: {message}", 1)
    if isinstance(exc, socket.gaierror):
        reason = "unknown host"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        reason = "no answer"
    else:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CommandError(
        f"cannot reach the database at {where} ({reason}): start PostgreSQL there, or name another"
        " with --database-url or DATABASE_URL (without either, the embedded one is used)",
        1,
    )


def _open(url: str) -> Any:
    """A connection to `url`, or a CommandError that says why there is none."""
    import pg8000.exceptions

    from ops_pipeline.db import connect, parse_database_url

    target = parse_database_url(url)
    try:
        return connect(target)
    except (OSError, pg8000.exceptions.InterfaceError, pg8000.exceptions.DatabaseError) as exc:
        raise _unreachable(target.describe(), exc) from None


def _connect(args: argparse.Namespace) -> Any:
    return _open(_database_url(args))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _print_summary(result: Any, stream: Any = None, title: str = "Replay summary") -> None:
    """A replay's (or backtest's) summary as a rich table (plain text when stdout is not a
    terminal)."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    table = Table(title=title, show_header=False, title_justify="left", box=None)
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
            f"\ne.g. {example['ticker']} {example['action']} at {example['ts']:%Y-%m-%d %H:%M} UTC:"
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
        "simulated P&L" if s.get("mode", "simulation") == "simulation" else f"{s['mode']} P&L",
        f"{pnl['realized_and_unrealized']} USD (open positions: {book(pnl['open_positions'])})",
    )
    if s.get("continued"):
        table.add_row("continued", "from the book already in the database (--continue)")
    if pnl.get("opening_positions"):
        table.add_row(
            "  from the opening book",
            f"{book(pnl['opening_positions'])}, worth {pnl['opening_value']} USD at the start;"
            f" its move {pnl['carried_move']} USD",
        )
        table.add_row("  this replay's own trading", f"{pnl['own_trading']} USD")
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


def _load_bars(path: Path) -> list[Any]:
    """--bars: a canonical CSV file or a folder of them, checked before any work starts."""
    import csv

    from ops_pipeline_local.bars import CANONICAL_HEADER, read_bars

    columns = ",".join(CANONICAL_HEADER)
    if not path.exists():
        raise CommandError(f"--bars {path}: no such file or folder")
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise CommandError(f"--bars {path}: the folder holds no .csv file ({columns})")
    for file in files:
        try:
            with file.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CommandError(f"--bars {file}: cannot read it as UTF-8 CSV ({exc})") from None
        missing = [c for c in CANONICAL_HEADER if c not in header]
        if missing:
            raise CommandError(
                f"--bars {file}: the header lacks {', '.join(missing)}: a bars file's columns"
                f" are {columns}"
            )
    bars = read_bars(path)
    if not bars:
        raise CommandError(f"--bars {path}: no valid bar in it (each skipped row is logged)")
    return bars


def _costs(args: argparse.Namespace) -> dict[str, Any]:
    """The SimulationCosts this replay runs with: the flags, else the template's defaults."""
    from ops_pipeline.config import SimulationCosts

    raw = json.loads(
        _cost_parameters(args).get("SimulationCosts") or _local_setting("SimulationCosts")
    )
    costs = SimulationCosts.from_mapping(raw)
    return {
        "slippage_bps": f"{costs.slippage_bps.normalize():f}",
        "commission_per_share": f"{costs.commission_per_share.normalize():f}",
    }


def _prepare_database(args: argparse.Namespace, url: str, bars: list[Any]) -> bool:
    """Before any work: the database answers and is migrated, and what it holds is continued
    from (`--continue`), emptied (`--fresh`) or absent; the run is recorded. True when continued."""
    from ops_pipeline.migrate import migrate
    from ops_pipeline_local.replay import replay_minutes
    from ops_pipeline_local.runs import holdings, record, start_clean

    minutes = replay_minutes(bars)
    costs = _costs(args)
    conn = _open(url)
    try:
        migrate(conn)
        held = holdings(conn)
        continued = bool(args.continue_run) and not held.empty
        if not held.empty and not (args.continue_run or args.fresh):
            raise CommandError(
                f"the database already holds a run ({held.describe()}): pass --continue to"
                " carry on from its book, or --fresh to start clean (empties it)"
            )
        if continued:
            stored = held.costs or json.loads(_local_setting("SimulationCosts"))
            stored = {k: f"{Decimal(str(v)).normalize():f}" for k, v in stored.items()}
            if stored != costs:
                raise CommandError(
                    f"--continue: the stored run's costs are {_describe_costs(stored)}, this"
                    f" replay's {_describe_costs(costs)}: give the same --slippage-bps and"
                    " --commission-per-share, or --fresh"
                )
            if held.mode and held.mode != args.mode:
                raise CommandError(
                    f"--continue: the stored run is in {held.mode} mode, this replay in"
                    f" {args.mode}: give --mode {held.mode}, or --fresh"
                )
            if held.last_bar is not None and minutes[0] <= held.last_bar:
                raise CommandError(
                    f"--continue: the stored run reaches {held.last_bar:%Y-%m-%d %H:%M} UTC and"
                    f" these bars start at {minutes[0]:%Y-%m-%d %H:%M} UTC: continue with later"
                    " bars, or --fresh"
                )
        if args.fresh and not held.empty:
            start_clean(conn)
        record(conn, minutes[0], minutes[-1], args.mode, costs)
    finally:
        conn.close()
    return continued


def _describe_costs(costs: dict[str, Any]) -> str:
    return f"{costs['slippage_bps']} bps and {costs['commission_per_share']} USD a share"


def _replay(args: argparse.Namespace, bars_path: Path, feeds: Path | None) -> int:

    from ops_pipeline_local.replay import Progress, default_step, replay, replay_minutes

    bars = _load_bars(bars_path)
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    if tickers:
        bars = [b for b in bars if b.symbol in tickers]
        if not bars:
            raise CommandError(f"--tickers: no bars for {', '.join(tickers)} in {bars_path}")
    backup_bars = None
    if getattr(args, "backup_bars", None):
        backup_bars = [
            b for b in _load_bars(Path(args.backup_bars)) if not tickers or b.symbol in tickers
        ]
        if not backup_bars:
            raise CommandError(f"--backup-bars: no valid bars in {args.backup_bars}")
    faults = None
    if args.faults:
        from ops_pipeline_local.faults import FaultPlan

        try:
            faults = FaultPlan.parse(args.faults, seed=args.seed)
        except ValueError as exc:
            raise CommandError(f"--faults: {exc}") from None
    try:
        holdings = _holdings(getattr(args, "account_holdings", None), args.mode)
    except ValueError as exc:
        raise CommandError(f"--account-holdings: {exc}") from None
    database_url = _database_url(args)
    continued = _prepare_database(args, database_url, bars)
    progress = Progress(len(replay_minutes(bars)))
    print(
        f"replaying {len(bars)} bars of {', '.join(sorted({b.symbol for b in bars}))}"
        f" through the minute state machine"
        + (" and the 5-minute one" if feeds else "")
        + (" from the book already in the database" if continued else ""),
        file=sys.stderr,
    )
    try:
        with handler_logs_to_stderr():
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
                backup_bars=backup_bars,
                holdings=holdings,
            )
    finally:
        progress.close()
    result.summary["continued"] = continued
    result.summary["mode"] = args.mode
    args.resolved_database_url = database_url
    if faults is not None:
        injected = ", ".join(f"{k} {v}" for k, v in sorted(result.faults_injected.items()))
        print(f"faults ({faults}): {injected or 'none'} injected", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {**result.summary, "state_machines": result.executions},
                default=_json_default,
                indent=2,
            )
        )
    else:
        _print_summary(result)
    return 0 if not result.failures else 1


def cmd_run(args: argparse.Namespace) -> int:
    """The bundled trading days, with the bundled feeds, in simulation; then the report.

    On the embedded database (no --database-url, no DATABASE_URL) every run starts clean."""
    if not (args.database_url or os.environ.get("DATABASE_URL") or args.continue_run):
        args.fresh = True
    out = _report_folder(args.out) if not args.no_report else None
    code = _replay(args, BUNDLED_BARS, BUNDLED_FEEDS)
    if code == 2 or args.no_report:
        return code
    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline_local.report import write_report

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    conn = connect(parse_database_url(args.resolved_database_url))
    try:
        report = write_report(conn, out or Path(args.out), tickers=tickers)
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


def _report_folder(text: str) -> Path:
    """--out: a folder that is, or can be, created and written, checked before any work."""
    import tempfile

    out = Path(text)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: a file is in the way: name a folder (it is created)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CommandError(
            f"--out {out}: cannot write there ({reason}): name another folder"
        ) from None
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from ops_pipeline.migrate import migrate
    from ops_pipeline_local.report import NoBars, write_report

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    first, to = getattr(args, "from"), args.to
    if first and to and to < first:
        raise CommandError(f"--to {to:%Y-%m-%d %H:%M} is before --from {first:%Y-%m-%d %H:%M}")
    out = _report_folder(args.out)
    conn = _connect(args)
    try:
        migrate(conn)
        setting = _read_setting(conn, args.setting)
        report = write_report(
            conn, out, first=first, to=to, tickers=tickers, capital=args.capital, setting=setting
        )
    except NoBars as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(f"report: {report.index.resolve()}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    return _replay(args, Path(args.bars), Path(args.feeds) if args.feeds else None)


@contextlib.contextmanager
def handler_logs_to_stderr() -> Iterator[None]:
    """The handlers' logs, and anything else printed, go to stderr while the state machines run:
    stdout carries the summary alone (one JSON document with --json). In AWS their stdout is
    CloudWatch's; here Powertools' handler, made at its first import, is pointed at stderr."""
    from ops_pipeline.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        handler = logging.StreamHandler()  # a stand-in, never attached
    previous = handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if previous is not None:
            handler.setStream(previous)


def cmd_backtest(args: argparse.Namespace) -> int:
    """The backtest state machine (Distributed Map over shards) over bars, in simulation."""
    from ops_pipeline_local.backtest import BACKTEST_MACHINE, backtest

    bars = _load_bars(Path(args.bars))
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    bars = [b for b in bars if not tickers or b.symbol in tickers]
    if not bars:
        raise CommandError(f"--tickers: no bars for {', '.join(tickers or [])} in {args.bars}")
    try:
        settings = _sweep_settings(args)
        with handler_logs_to_stderr():
            result = backtest(
                bars,
                database_url=_database_url(args),
                shards=args.shards,
                tickers=tickers,
                log_level=args.log_level.upper(),
                concurrency=args.concurrency,
                settings=settings,
            )
    except ValueError as exc:  # bars no date range can hold, a shard count below 1, a bad setting
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
        # The state machines' outcomes apart from the summary's `executions` (the dispatcher's).
        document = {**result.summary, "state_machines": result.executions}
        if settings is not None:
            document["sweep"] = result.sweep
        print(json.dumps(document, default=_json_default, indent=2))
    else:
        _print_summary(result, title="Backtest summary")
        if settings is not None:
            _print_sweep(result.sweep)
    return 0 if not result.failures else 1


def _sweep_setting(spec: str) -> dict[str, Any]:
    """`--sweep NAME[:KEY=VALUE,...]` as a setting's object (validated by the backtest)."""
    name, _, rest = spec.partition(":")
    setting: dict[str, Any] = {"name": name.strip()}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--sweep {spec!r}: expected KEY=VALUE, got {pair!r}")
        setting[key.strip()] = value.strip()
    return setting


def _sweep_settings(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The sweep's settings from `--settings FILE` (a JSON list) and each `--sweep`; None when
    neither is given (the stack's own setting, in the public tables)."""
    settings: list[dict[str, Any]] = []
    if args.settings:
        try:
            loaded = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--settings {args.settings}: {exc}") from None
        if not isinstance(loaded, list):
            raise ValueError(f"--settings {args.settings}: a JSON list of settings, please")
        settings += loaded
    settings += [_sweep_setting(spec) for spec in args.sweep or ()]
    return settings or None


def _print_sweep(sweep: dict[str, dict[str, Any]]) -> None:
    """Each setting's trades and P&L, one row a setting, for comparing them."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Sweep: one row per setting", title_justify="left")
    for column in (
        "setting",
        "recommendations",
        "filled",
        "rejected",
        "simulated P&L (USD)",
        "open",
    ):
        table.add_column(column)
    for name, s in sweep.items():
        executions = s["executions"]
        pnl = s["simulated_pnl"]
        table.add_row(
            name,
            str(sum(s["recommendations_by_band"].values())),
            str(sum(n for k, n in executions.items() if k.endswith(" filled"))),
            str(sum(n for k, n in executions.items() if k.endswith(" rejected"))),
            str(pnl["realized_and_unrealized"]),
            ", ".join(f"{t} {q:,.0f}" for t, q in sorted(pnl["open_positions"].items())) or "none",
        )
    Console(highlight=False).print(table)


def cmd_backtest_plan(args: argparse.Namespace) -> int:
    """Shards over the NYSE sessions between two dates, as files for a backtest in AWS."""
    from datetime import date

    from ops_pipeline.sweep import parse_settings
    from ops_pipeline_local.backtest import plan_minutes, session_minutes, write_plan

    try:
        first, last = date.fromisoformat(args.first), date.fromisoformat(args.last)
        tickers = [t.strip().upper() for t in args.tickers.split(",") if t.strip()]
        plan = plan_minutes(session_minutes(first, last), tickers, args.shards)
        settings = parse_settings(_sweep_settings(args)) if args.sweep or args.settings else []
        written = write_plan(plan, Path(args.out), args.prefix, args.concurrency, settings)
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
    from ops_pipeline_local.report import refusal_reason

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
                "SELECT ticker, side, qty, mode, reject_reason, gate_verdicts, decided_at"
                " FROM dispatch_executions"
                " WHERE status = 'rejected' AND decided_at > :since ORDER BY decided_at, id",
                since=newest_decision - timedelta(days=1),
            )
            if trading_day(r["decided_at"]) == day
        ]
    (checks,) = query(conn, STATUS_CHECKS)
    source = query(
        conn,
        "SELECT source, since, reason, backup_configured, checked_at FROM market_data_source",
    )
    # The data's age as of `now`: from the newest bar that had closed by then. When `--at` looks
    # back to before every stored bar closed, the data reaches past it: age 0, never negative.
    ((closed_bar,),) = conn.run(
        "SELECT max(ts) FROM lane_telemetry WHERE ts + interval '1 minute' <= :now", now=now
    )
    newest_bar = tables["lane_telemetry"]["newest"]
    if closed_bar is not None:
        age: int | None = int((now - (closed_bar + ONE_MINUTE)).total_seconds())
    else:
        age = 0 if newest_bar is not None else None
    by_reason: dict[str, int] = {}
    for refusal in refusals:
        key = refusal_reason(refusal)
        by_reason[key] = by_reason.get(key, 0) + 1
        refusal.pop("gate_verdicts", None)
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
        "refusals_today_by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        "last_execution": last[0] if last else None,
        "data_age_seconds": age,
        "market": market.as_event(),
        "stale": stale,
        "last_run": {"failed": run_failed, **checks},
        "market_data": _market_data_source(source[0] if source else None),
        "healthy": not stale and not run_failed,
    }


def _market_data_source(row: dict[str, Any] | None) -> dict[str, Any]:
    """The provider the ingestor uses, since when and why, and whether failover is on (a backup
    key was configured at its last run); without a row the ingestor has only ever had Alpaca."""
    from ops_pipeline.telemetry import PRIMARY_SOURCE

    if row is None:
        return {"source": PRIMARY_SOURCE, "since": None, "reason": None, "failover": "off"}
    return {
        "source": row["source"],
        "since": row["since"],
        "reason": row["reason"],
        "failover": "on" if row["backup_configured"] else "off",
        "checked_at": row["checked_at"],
    }


# `status` prints this many of the day's refusals, the latest; the rest are counted by reason.
LAST_REFUSALS = 5


def _qty(value: Any) -> str:
    """A quantity as a person writes it: 6, 0.5 (not 6.000000)."""
    return f"{Decimal(str(value)).normalize():f}" if value is not None else "-"


def _print_status(report: dict[str, Any]) -> None:
    print(f"trading mode: {report['trading_mode']}   trading state: {report['trading_state']}")
    print(f"{'table':<28} {'rows':>8}  newest")
    for name, row in report["tables"].items():
        print(f"{name:<28} {row['rows']:>8}  {row['newest'] or '-'}")
    print("open positions:" + ("" if report["open_positions"] else " none"))
    for p in report["open_positions"]:
        print(f"  {p['mode']:<10} {p['ticker']:<6} {_qty(p['qty']):>12}")
    print("open orders:" + ("" if report["open_orders"] else " none"))
    for o in report["open_orders"]:
        print(
            f"  {o['mode']:<10} {o['side']} {_qty(o['qty'])} {o['ticker']} {o['status']}"
            f" (decided {o['decided_at']})"
        )
    refusals = report["refusals_today"]
    print(f"refusals today: {len(refusals)}" if refusals else "refusals today: none")
    for reason, count in report["refusals_today_by_reason"].items():
        print(f"  {count:>5}  {reason}")
    if refusals:
        print(f"  the last {min(len(refusals), LAST_REFUSALS)}:")
    for r in refusals[-LAST_REFUSALS:]:
        print(
            f"    {r['decided_at']} {r['side']} {_qty(r['qty'])} {r['ticker']}: {r['reject_reason']}"
        )
    last = report["last_execution"]
    if last:
        print(
            f"last execution: {last['mode']} {last['side']} {_qty(last['qty'])} {last['ticker']}"
            f" -> {last['status']}{' (' + last['reject_reason'] + ')' if last['reject_reason'] else ''}"
            f" decided at {last['decided_at']}"
        )
    else:
        print("last execution: none")
    age = report["data_age_seconds"]
    market = report["market"]
    print(f"data age: {'no bars yet' if age is None else f'{age} s since the newest bar closed'}")
    print(f"market: {'open' if market['is_open'] else 'closed'} ({market['reason']})")
    data = report["market_data"]
    print(
        f"market data: {data['source']}"
        + (f" since {data['since']} ({data['reason']})" if data["since"] else "")
        + f"; failover {data['failover']}"
        + ("" if data["failover"] == "on" else " (no backup key configured)")
    )
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
    now = args.at or datetime.now(UTC)
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
    """--at of `status`: a time, ISO-8601 with an offset."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write ISO-8601 with an offset, e.g. 2019-02-12T15:36:00Z"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone: add an offset, e.g. {text}Z or {text}-05:00"
        )
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
    try:
        migrate(conn)
        setting = _read_setting(conn, args.setting)
        explanation = gather(conn, args.ticker, at)
    finally:
        conn.close()
    sys.stdout.write(render(explanation, setting))
    return 0 if explanation.found else 1


def _read_setting(conn: Any, name: str | None) -> Any:
    """`--setting NAME`: `conn` reads that sweep setting's rows from here on; None without it."""
    from ops_pipeline.sweep import InvalidSetting, read_setting

    if name is None:
        return None
    try:
        return read_setting(conn, name)
    except InvalidSetting as exc:
        raise CommandError(f"--setting: {exc}") from None


SETTING_HELP = (
    "a backtest sweep's setting: read its rows (schema sweep_NAME) instead of the stack's own"
)


def cmd_migrate(args: argparse.Namespace) -> int:
    from ops_pipeline.db import wait_for_statements
    from ops_pipeline.migrate import migrate

    conn = _connect(args)
    try:
        wait_for_statements(conn, None)  # an index on a large table takes what it takes
        applied = migrate(conn)
    finally:
        conn.close()
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from ops_pipeline.news.classify import classify, explain

    universe = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    written = 0
    try:
        for line in sys.stdin:
            text = line.rstrip("\n")
            if not text.strip():
                continue
            out = classify(text, universe).to_json()
            if args.explain:
                out["explain"] = [{"feature": d.feature, "weight": d.weight} for d in explain(text)]
            print(json.dumps(out), flush=True)
            written += 1
    except BrokenPipeError:
        # The reader left (`| head -1`): Python's advice, stdout to devnull so that the exit's
        # flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise CommandError(f"the output was closed after {written} lines: stopped", 1) from None
    return 0


def _holdings(spec: str | None, mode: str) -> dict[str, Decimal] | None:
    """``AAPL=100,MSFT=20``: shares the paper account holds that the deployment did not buy."""
    if not spec:
        return None
    if mode != "paper":
        raise ValueError("the account's holdings need --mode paper")
    holdings: dict[str, Decimal] = {}
    for part in spec.split(","):
        symbol, sep, qty = part.partition("=")
        try:
            holdings[symbol.strip().upper()] = Decimal(qty.strip())
        except ArithmeticError:
            raise ValueError(f"{part.strip()!r}: expected SYMBOL=QTY") from None
        if not sep or not symbol.strip() or holdings[symbol.strip().upper()] <= 0:
            raise ValueError(f"{part.strip()!r}: expected SYMBOL=QTY, QTY positive")
    return holdings


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
        " data requests answered 429, 500 or too late; of orders whose reply is lost);"
        " data-outage=HH:MM-HH:MM / data-stale=HH:MM-HH:MM (New York time, repeatable): market"
        " data answers errors / no new bars in that window;"
        " late=SECONDS runs the broker's clock that far behind each minute, unfilled=RATE"
        " leaves that fraction of orders open until they expire",
    )
    p.add_argument("--seed", type=int, help="the fault plan's seed (default 0, or the spec's)")
    book = p.add_mutually_exclusive_group()
    book.add_argument(
        "--continue",
        dest="continue_run",
        action="store_true",
        help="the database holds an earlier run: start from its book (its costs, later bars)",
    )
    book.add_argument(
        "--fresh",
        action="store_true",
        help="the database holds an earlier run: empty it first (the schema stays)",
    )
    p.add_argument(
        "--account-holdings",
        metavar="SYM=QTY,...",
        help="paper: the account starts holding these shares, not bought by the pipeline"
        " (a manual position, another stack's), e.g. AAPL=100,MSFT=20",
    )
    p.add_argument(
        "--slippage-bps",
        type=_slippage_bps,
        metavar="N",
        help="simulated fills: slippage against the order in basis points (default 5)",
    )
    p.add_argument(
        "--commission-per-share",
        type=_commission,
        metavar="X",
        help="simulated fills: commission in USD per share (default 0: Alpaca charges none)",
    )


def _number(text: str) -> Decimal:
    from decimal import InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _slippage_bps(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: slippage is 0 to 1000 basis points")
    return float(value)


def _commission(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: a commission is 0 or more USD a share")
    return float(value)


def _capital(text: str) -> Decimal:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: the capital is more than 0 USD")
    return value


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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the step is at least 1 minute")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line (then exit 2)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ops-pipeline", description=__doc__)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="handlers' log level (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--database-url",
            type=_database_url_arg,
            help="PostgreSQL URL (default: $DATABASE_URL, else the embedded database)",
        )
        p.set_defaults(func=func)
        return p

    run = command(
        "run", cmd_run, "replay the five bundled sessions (2019-02-11 to 2019-02-15) in simulation"
    )
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
    rep.add_argument(
        "--backup-bars",
        metavar="DIR",
        help="bars of a second feed (CSV file or folder), served by a local Massive as the backup"
        " market data: the ingestor fails over to it when Alpaca fails or goes stale",
    )
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
    bt.add_argument(
        "--sweep",
        action="append",
        metavar="NAME[:KEY=VALUE,...]",
        help="a parameter sweep's setting (repeat it): its volume rule (weak_from, normal_from,"
        " surge_above, weak_multiplier, surge_multiplier) and risk limits (min_confidence, ...);"
        " each setting's rows in schema sweep_NAME (docs/deploy.md#backtests)",
    )
    bt.add_argument("--settings", metavar="FILE", help="a sweep's settings as a JSON list")
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
    btp.add_argument(
        "--sweep", action="append", metavar="NAME[:KEY=VALUE,...]", help="a sweep's setting"
    )
    btp.add_argument("--settings", metavar="FILE", help="a sweep's settings as a JSON list")
    exp = command(
        "explain", cmd_explain, "why a ticker's bar made (or did not make) a signal, and its fate"
    )
    exp.add_argument("ticker", help="the ticker, e.g. AAPL")
    exp.add_argument(
        "--at", required=True, help="the bar's start, ISO-8601, e.g. 2019-02-12T14:31:00Z"
    )
    exp.add_argument("--setting", metavar="NAME", help=SETTING_HELP)
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
    rpt.add_argument("--setting", metavar="NAME", help=SETTING_HELP)
    rpt.add_argument(
        "--capital",
        type=_capital,
        help="USD the returns are measured on (default: max_position_notional per ticker)",
    )
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.add_argument(
        "--at",
        type=_parse_at,
        help="judge staleness at this time (ISO 8601 with offset; default now)",
    )
    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    mig = db_sub.add_parser("migrate", help="apply pending migrations")
    mig.add_argument(
        "--database-url",
        type=_database_url_arg,
        help="PostgreSQL URL (default: $DATABASE_URL, else the embedded database)",
    )
    mig.set_defaults(func=cmd_migrate)
    cls = sub.add_parser(
        "classify", help="classify one text per line from stdin, one JSON object per line out"
    )
    cls.add_argument("--tickers", help="limit ticker inference to this universe (comma-separated)")
    cls.add_argument(
        "--explain",
        action="store_true",
        help="add the features that drove each label (word:..., cue:...) and their weights",
    )
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
    name = " ".join(filter(None, ("ops-pipeline", args.command, getattr(args, "db_command", None))))
    try:
        return int(args.func(args))
    except CommandError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        from ops_pipeline.errors import is_connection_lost

        if not is_connection_lost(exc):
            raise
        print(f"{name}: lost the database connection ({exc}): run it again", file=sys.stderr)
        return 1


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
