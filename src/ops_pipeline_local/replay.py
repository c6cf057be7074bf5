"""Replay recorded bars minute by minute through the real state machines.

The local Alpaca server's clock is set to each minute, the minute state machine is executed with
that minute as its scheduled time, and every fifth minute the 5-minute state machine too. The
code that runs is the code that is deployed; only the clock and the endpoints are local.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from ops_pipeline.db import connect, parse_database_url, query
from ops_pipeline.event_time import ONE_MINUTE, iso_minute
from ops_pipeline.market import NEW_YORK
from ops_pipeline.migrate import migrate
from ops_pipeline_local.alpaca_server import LocalAlpaca
from ops_pipeline_local.bars import Bar
from ops_pipeline_local.faults import FaultPlan
from ops_pipeline_local.runtime import ExecutionResult, LocalRuntime

MINUTE_MACHINE = "MinutePipelineStateMachine"
FIVE_MINUTE_MACHINE = "FiveMinutePipelineStateMachine"
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


@contextmanager
def local_stack(
    bars: Sequence[Bar],
    *,
    database_url: str,
    parameters: dict[str, str] | None = None,
    now: datetime | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[tuple[LocalRuntime, LocalAlpaca]]:
    """The stack in moto, with its Alpaca endpoints on a local server of these bars (orders fill
    as at Alpaca: at the next bar's open), failing as `faults` plans."""
    runtime = LocalRuntime(database_url=database_url, parameters=parameters)
    with LocalAlpaca(
        bars,
        runtime.alpaca_key_id,
        runtime.alpaca_secret_key,
        now=now,
        fill_market_orders="next_open",
        faults=faults,
    ) as alpaca:
        runtime.extra_env = {
            "ALPACA_DATA_URL": alpaca.base_url,
            "ALPACA_TRADING_URL": alpaca.base_url,
        }
        if faults is not None and faults.active:
            runtime.extra_env["ALPACA_HTTP_TIMEOUT"] = str(FAULT_HTTP_TIMEOUT_SECONDS)
        with runtime:
            yield runtime, alpaca


def replay_minutes(bars: Sequence[Bar]) -> list[datetime]:
    """Every minute from the first bar's start to the minute after the last bar's start."""
    first = min(b.ts for b in bars)
    last = max(b.ts for b in bars) + ONE_MINUTE
    count = int((last - first) / ONE_MINUTE) + 1
    return [first + i * ONE_MINUTE for i in range(count)]


class Progress:
    """One line that updates in place on a terminal, and a line every 30 minutes elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()

    def update(self, done: int, minute: datetime, counts: dict[str, Any]) -> None:
        local = minute.astimezone(NEW_YORK)
        text = (
            f"[{done:>4}/{self.total}] {local:%Y-%m-%d %H:%M} New York"
            f"  new: bars {counts['bars']:>5}  recs {counts['recommendations']:>3}"
            f"  fills {counts['fills']:>3}  news {counts['news']:>3}  failed runs {counts['failed']}"
        )
        if self.tty:
            self.stream.write("\r" + text)
            if done == self.total:
                self.stream.write("\n")
        elif done == self.total or local.minute % 30 == 0:
            self.stream.write(text + "\n")
        self.stream.flush()


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
) -> ReplayResult:
    """Run the minute (and 5-minute) state machines over every minute the bars cover.

    `mode` `paper` sends orders through alpaca-py's TradingClient to the local server; `faults`
    makes that server fail as the plan says; `parameters` override the stack's (e.g. RiskLimits)."""
    from ops_pipeline_local.feed_server import FeedServer

    if not bars:
        raise ValueError("no bars to replay")
    if mode not in TRADING_MODES:
        raise ValueError(f"mode must be one of {TRADING_MODES}, got {mode!r}")
    symbols = sorted({b.symbol for b in bars})
    tickers = list(tickers or symbols)
    conn = connect(parse_database_url(database_url))
    migrate(conn)
    minutes = replay_minutes([b for b in bars if b.symbol in tickers] or bars)
    result = ReplayResult(minutes[0], minutes[-1])
    counts = {"bars": 0, "recommendations": 0, "fills": 0, "news": 0, "failed": 0}
    with ExitStack() as stack:
        feeds: list[dict[str, str]] = []
        if feeds_dir is not None:
            server = stack.enter_context(FeedServer(feeds_dir))
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
            )
        )
        for done, minute in enumerate(minutes, start=1):
            alpaca.set_time(minute)
            runs = [(MINUTE_MACHINE, "minute")]
            if five_minute and feeds_dir is not None and minute.minute % 5 == 0:
                runs.append((FIVE_MINUTE_MACHINE, "five"))
            for machine, label in runs:
                outcome = runtime.execute(
                    machine,
                    {"time": iso_minute(minute)},
                    name=f"{label}-{minute:%Y%m%dT%H%M}-{done}",
                )
                tally = result.executions.setdefault(machine, {})
                tally[outcome.status] = tally.get(outcome.status, 0) + 1
                if outcome.status != "SUCCEEDED":
                    result.failures.append(outcome)
                    counts["failed"] += 1
                else:
                    _count(counts, outcome.output or {})
            if progress:
                progress(done, minute, counts)
        result.faults_injected = alpaca.faults.counts() if alpaca.faults else {}
    result.summary = summarize(conn, result.first_minute, result.last_minute, tickers)
    conn.close()
    return result


def _count(counts: dict[str, Any], output: dict[str, Any]) -> None:
    counts["bars"] += output.get("telemetry", {}).get("inserted", 0)
    counts["recommendations"] += output.get("signals", {}).get("created", 0)
    counts["fills"] += output.get("dispatch", {}).get("outcomes", {}).get("filled", 0)
    news = output.get("results", {}).get("news", {})
    counts["news"] += news.get("rss", {}).get("inserted", 0)


def simulated_pnl(
    fills: Sequence[dict[str, Any]], last_close: dict[str, Decimal]
) -> dict[str, Any]:
    """Cash from simulated fills plus open positions marked at the last close."""
    cash = Decimal(0)
    held: dict[str, Decimal] = {}
    for fill in fills:
        signed = fill["qty"] if fill["side"] == "buy" else -fill["qty"]
        held[fill["ticker"]] = held.get(fill["ticker"], Decimal(0)) + signed
        cash -= signed * fill["price"]
    marked = sum((qty * last_close.get(t, Decimal(0)) for t, qty in held.items()), Decimal(0))
    return {
        "realized_and_unrealized": (cash + marked).quantize(Decimal("0.01")),
        "open_positions": {t: q for t, q in held.items() if q},
    }


def summarize(conn: Any, first: datetime, last: datetime, tickers: Sequence[str]) -> dict[str, Any]:
    """What the replay window holds: bars, features, recommendations by band, executions, P&L."""
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
    fills = query(
        conn,
        "SELECT e.ticker, e.side, e.qty, e.price FROM dispatch_executions e"
        " JOIN dispatch_recommendations r ON r.id = e.recommendation_id"
        f" WHERE {rec_where} AND e.status = 'filled' AND e.mode = 'simulation'"
        " ORDER BY e.id",
        **window,
    )
    closes = conn.run(
        f"SELECT DISTINCT ON (ticker) ticker, close FROM lane_telemetry WHERE {where} ORDER BY ticker, ts DESC",
        **window,
    )
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
            f"{names.get(f'{m:.2f}', m)} {action}": n for m, action, n in bands
        },
        "recommendations_moved_by_news": len(news_moved),
        "example_moved_by_news": news_moved[0] if news_moved else None,
        "executions": {f"{mode} {status}": n for mode, status, n in executions},
        "news": {"ingested": news[0], "classified": news[1]},
        "simulated_pnl": simulated_pnl(fills, {t: Decimal(c) for t, c in closes}),
    }
