"""Issue 7, promise 1: faults change nothing. A real session (2019-02-12, Alpha Vantage via
masonblier/eqker, ISC) replayed in paper mode with `--faults data=0.1,orders=0.1` decides exactly
what the clean paper replay decides, and leaves no decision `pending`.

80 minutes of three tickers keep it short; the risk gates' minimum confidence is lowered so that
the window places orders (buys and sells) for the faults to hit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.faults import FaultPlan
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

TICKERS = ("AAPL", "MSFT", "SPY")
MINUTES = 80
RISK = {
    "RiskLimits": json.dumps(
        {
            "min_confidence": 0.1,
            "max_notional_per_order": 10000,
            "max_position_notional": 25000,
            "recommendation_ttl_minutes": 5,
        }
    )
}
DECISIONS = {
    "bars": "SELECT ticker, ts, open, high, low, close, volume FROM lane_telemetry ORDER BY 1, 2",
    "features": "SELECT ticker, ts, close, sma20, sma50, volume_current, volume_avg_20,"
    " volume_ratio, volume_surge, bars_in_window FROM lane_features ORDER BY 1, 2",
    "recommendations": "SELECT ticker, ts, decided_at, action, rule, price, confidence, reason"
    " FROM dispatch_recommendations ORDER BY 1, 2",
    "executions": "SELECT r.ticker, r.ts, e.side, e.qty, e.price, e.status"
    " FROM dispatch_executions e JOIN dispatch_recommendations r ON r.id = e.recommendation_id"
    " ORDER BY 1, 2",
}


def _lossy_seed() -> int:
    """A seed whose plan loses the reply to one of the first two orders (found with the plan)."""
    for seed in range(1000):
        injector = FaultPlan(data=0.1, orders=0.1, seed=seed).injector()
        if any(injector.for_order("/v2/orders") for _ in range(2)):
            return seed
    raise AssertionError("no seed loses an early reply")


@pytest.fixture(scope="module")
def window(bundled_bars: list) -> list:
    first = min(b.ts for b in bundled_bars)
    return [
        b for b in bundled_bars if b.symbol in TICKERS and b.ts < first + timedelta(minutes=MINUTES)
    ]


def _replay(server: str, bars: list, faults: FaultPlan | None) -> tuple[Any, dict[str, list]]:
    with throwaway_database(server) as url:
        result = replay(bars, database_url=url, mode="paper", faults=faults, parameters=RISK)
        conn = connect(parse_database_url(url))
        try:
            rows = {name: conn.run(sql) for name, sql in DECISIONS.items()}  # fixed queries
        finally:
            conn.close()
    return result, rows


@pytest.fixture(scope="module")
def clean(database_server: str, window: list) -> Iterator[tuple[Any, dict[str, list]]]:
    yield _replay(database_server, window, None)


def test_a_clean_paper_replay_places_orders(clean: tuple[Any, dict[str, list]]) -> None:
    result, rows = clean
    assert result.failures == []
    statuses = {status for *_, status in rows["executions"]}
    assert "filled" in statuses, rows["executions"]
    assert {side for _, _, side, *_ in rows["executions"]} >= {"buy"}


def test_faults_change_nothing(
    database_server: str, window: list, clean: tuple[Any, dict[str, list]]
) -> None:
    plan = FaultPlan(data=0.1, orders=0.1, seed=_lossy_seed())
    result, rows = _replay(database_server, window, plan)

    assert result.failures == []  # what makes `ops-pipeline replay` exit 0
    assert result.faults_injected.get("reply_lost", 0) >= 1
    assert sum(result.faults_injected.values()) >= 5
    _, expected = clean
    for name in DECISIONS:
        assert rows[name] == expected[name], name
    assert not [e for e in rows["executions"] if e[-1] == "pending"]


class ConnectionKiller:
    """Terminates every other connection to the replay's database, every `every` seconds, from
    its own connection: an RDS Proxy idle timeout or a failover, where the real world does it.
    With `in_window`, only a connection inside a simulated dispatcher window (the transaction
    that holds the deployment's advisory lock), at most `max_kills` of them. Bounded: at most
    `limit` rounds, and it stops with the replay."""

    # The dispatcher's window is the only transaction that takes an advisory lock.
    IN_WINDOW = " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"

    def __init__(
        self,
        url: str,
        every: float = 1.5,
        limit: int = 400,
        *,
        in_window: bool = False,
        max_kills: int | None = None,
    ) -> None:
        self.url, self.every, self.limit = url, every, limit
        self.where = self.IN_WINDOW if in_window else ""
        self.max_kills = max_kills
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = connect(parse_database_url(self.url))
        try:
            for _ in range(self.limit):
                if self._stop.wait(self.every):
                    return
                rows = conn.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()" + self.where
                )
                self.killed += sum(1 for (done,) in rows if done)
                if self.max_kills is not None and self.killed >= self.max_kills:
                    return
        finally:
            conn.close()

    def __enter__(self) -> ConnectionKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_database_connections_killed_mid_stage_change_nothing(
    database_server: str, window: list, clean: tuple[Any, dict[str, list]]
) -> None:
    with throwaway_database(database_server) as url:
        with ConnectionKiller(url) as killer:
            result = replay(window, database_url=url, mode="paper", parameters=RISK)
        conn = connect(parse_database_url(url))
        try:
            rows = {name: conn.run(sql) for name, sql in DECISIONS.items()}  # fixed queries
        finally:
            conn.close()
    assert killer.killed >= 3, "the killer must have hit live connections"
    assert result.failures == []
    _, expected = clean
    for name in DECISIONS:
        assert rows[name] == expected[name], name
    assert not [e for e in rows["executions"] if e[-1] == "pending"]


def test_connections_killed_mid_simulated_window_change_nothing(
    database_server: str, window: list
) -> None:
    """The simulated dispatcher's window (all 80 minutes of the replay, at the default step) is
    one transaction: its connection killed inside it, twice, rolls it back whole, and the state
    machine's retry decides it again, the same way."""

    def simulate(killer: dict[str, Any] | None) -> tuple[Any, dict[str, list], int]:
        with throwaway_database(database_server) as url:
            if killer is None:
                result, killed = replay(window, database_url=url, parameters=RISK), 0
            else:
                with ConnectionKiller(url, **killer) as k:
                    result = replay(window, database_url=url, parameters=RISK)
                killed = k.killed
            conn = connect(parse_database_url(url))
            try:
                rows = {name: conn.run(sql) for name, sql in DECISIONS.items()}  # fixed queries
            finally:
                conn.close()
        return result, rows, killed

    clean_result, expected, _ = simulate(None)
    assert clean_result.failures == [] and expected["executions"], "the window trades"
    result, rows, killed = simulate(dict(every=0.002, limit=20000, in_window=True, max_kills=2))
    assert killed == 2, "the killer must have hit the window's transaction twice"
    assert result.failures == []
    for name in DECISIONS:
        assert rows[name] == expected[name], name


def test_a_paper_replay_s_summary_counts_its_own_fills(clean: tuple[Any, dict[str, list]]) -> None:
    """The summary's P&L is the paper fills' (not the simulation's, which a paper run has none
    of): its open positions are what the filled executions leave."""
    from decimal import Decimal

    result, rows = clean
    held: dict[str, Decimal] = {}
    for ticker, _, side, qty, _, status in rows["executions"]:
        if status == "filled":
            held[ticker] = held.get(ticker, Decimal(0)) + (qty if side == "buy" else -qty)
    pnl = result.summary["simulated_pnl"]
    assert pnl["open_positions"] == {t: q for t, q in held.items() if q}
    assert held and pnl["closing_value"] != 0
