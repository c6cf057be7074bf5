"""`ops-pipeline`: the same state machines and handlers as in AWS, on one machine."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    from ops_pipeline_local.replay import Progress, replay, replay_minutes

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
        )
    finally:
        progress.close()
    args.resolved_database_url = database_url
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
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, as 2019-02-11T14:30:00Z: {text!r}")
    return value.astimezone(UTC)


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


STATUS_TABLES = {
    "lane_telemetry": "ts",
    "lane_features": "ts",
    "dispatch_recommendations": "ts",
    "dispatch_executions": "updated_at",
    "inbound_events_raw": "fetched_at",
    "inbound_events_classified": "event_time",
    "lane_watchlist_state": "ts",
}


def status_report(conn: Any, now: datetime) -> dict[str, Any]:
    """Per table: rows and newest timestamp; the last execution and its outcome; data age."""
    from ops_pipeline.db import query

    parts = [
        f"SELECT '{table}' AS name, count(*) AS rows, max({column}) AS newest FROM {table}"
        for table, column in STATUS_TABLES.items()  # fixed names from this module, not input
    ]
    tables = {row["name"]: row for row in query(conn, " UNION ALL ".join(parts))}
    last = query(
        conn,
        "SELECT e.ticker, e.side, e.qty, e.price, e.mode, e.status, e.reject_reason, e.updated_at,"
        " r.reason FROM dispatch_executions e JOIN dispatch_recommendations r ON r.id = e.recommendation_id"
        " ORDER BY e.updated_at DESC, e.id DESC LIMIT 1",
    )
    newest_bar = tables["lane_telemetry"]["newest"]
    return {
        "tables": {
            name: {"rows": row["rows"], "newest": row["newest"]} for name, row in tables.items()
        },
        "last_execution": last[0] if last else None,
        "data_age_seconds": int((now - newest_bar).total_seconds()) if newest_bar else None,
    }


def cmd_status(args: argparse.Namespace) -> int:
    conn = _connect(args)
    from ops_pipeline.migrate import migrate

    migrate(conn)
    report = status_report(conn, datetime.now(UTC))
    if args.json:
        print(json.dumps(report, default=_json_default))
        return 0
    print(f"{'table':<28} {'rows':>8}  newest")
    for name, row in report["tables"].items():
        print(f"{name:<28} {row['rows']:>8}  {row['newest'] or '-'}")
    last = report["last_execution"]
    if last:
        print(
            f"last execution: {last['mode']} {last['side']} {last['qty']} {last['ticker']}"
            f" -> {last['status']}{' (' + last['reject_reason'] + ')' if last['reject_reason'] else ''}"
            f" at {last['updated_at']}"
        )
    else:
        print("last execution: none")
    age = report["data_age_seconds"]
    print(f"data age: {'no bars yet' if age is None else f'{age} s since the newest bar started'}")
    return 0


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
    st = command("status", cmd_status, "row counts, newest timestamps, last execution, data age")
    st.add_argument("--json", action="store_true", help="print one JSON object")
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


if __name__ == "__main__":
    sys.exit(main())
