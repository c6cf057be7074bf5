"""The backtest state machine (Distributed Maps over shards read from moto's S3, then the
portfolio in event order) leaves the rows `replay` leaves, on the same input, in simulation.

The input: real bars of four tickers from three sessions (the afternoon of 2019-02-12, the first
90 minutes of 2019-02-13 and of 2019-02-15; Alpha Vantage via masonblier/eqker, ISC): two date
ranges (the 12th and 13th are consecutive sessions, one range; the 14th is left out, so the 15th
starts another), two ticker groups, four shards. The 15th's features reach back into the 13th's
bars, another range's; positions carry over the nights.
"""

from __future__ import annotations

import json
from datetime import UTC, date, time

import pytest
from paths import bundled_day
from rows import PIPELINE_TABLES, pipeline_rows

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.market import NEW_YORK
from ops_pipeline_local.backtest import BACKTEST_MACHINE, BacktestPlan, backtest
from ops_pipeline_local.bars import read_bars
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine

TICKERS = ("AAPL", "AMZN", "MSFT", "TSLA")
SESSIONS = {  # New York day: the bars (by their start, New York time) backtested of it
    date(2019, 2, 12): (time(13, 30), time(16, 0)),
    date(2019, 2, 13): (time(9, 30), time(11, 0)),
    date(2019, 2, 15): (time(9, 30), time(11, 0)),
}
DAYS = tuple(SESSIONS)
# Each table's rows, minus surrogate ids and wall-clock stamps (as tests/statemachine/
# test_replay_identity.py compares them).


@pytest.fixture(scope="module")
def bars():
    return [
        bar
        for day in sorted(SESSIONS)
        for bar in read_bars(bundled_day(day))
        if bar.symbol in TICKERS
        and (local := bar.ts.astimezone(NEW_YORK)).date() in SESSIONS
        and SESSIONS[local.date()][0] <= local.time() < SESSIONS[local.date()][1]
    ]


def test_the_backtest_leaves_the_rows_replay_leaves(bars, database_server):
    with throwaway_database(database_server) as url:
        replayed = replay(bars, database_url=url)
        assert not replayed.failures, replayed.failures[0]
        expected = pipeline_rows(url)
    with throwaway_database(database_server) as url:
        result = backtest(bars, database_url=url, shards=2)
        assert not result.failures, (result.error, result.cause)
        got = pipeline_rows(url)

    assert result.executions == {BACKTEST_MACHINE: {"SUCCEEDED": 1}}
    plan = result.plan
    assert [(s.date(), t.date()) for s, t in plan.ranges] == [
        (date(2019, 2, 12), date(2019, 2, 13)),
        (date(2019, 2, 15), date(2019, 2, 15)),
    ]
    assert len(plan.shards) == 4 and {s.tickers for s in plan.shards} == {
        ("AAPL", "AMZN"),
        ("MSFT", "TSLA"),
    }
    # Each shard's stages ran as their own invocations (children of the Distributed Maps).
    assert result.invocations["TelemetryIngestorFunction"] == 4
    assert result.invocations["FeatureComputerFunction"] == 2
    assert result.invocations["SignalEngineFunction"] == 4
    assert result.invocations["DispatcherFunction"] >= 1

    # Not empty: every session's bars, the 15th's features warm from the 13th, some orders.
    assert len(expected["lane_telemetry"]) == len(bars)
    assert expected["dispatch_recommendations"], "the input makes no recommendation"
    assert any(row[8] == "filled" for row in expected[next(reversed(PIPELINE_TABLES))])
    for table in PIPELINE_TABLES:
        assert got[table] == expected[table], table

    # The shards in any order: the later range's, one at a time, before the earlier's.
    backwards = BacktestPlan(plan.ranges[::-1], plan.shards[::-1], plan.windows)
    with throwaway_database(database_server) as url:
        result = backtest(bars, database_url=url, shards=2, plan=backwards, concurrency=1)
        assert not result.failures, (result.error, result.cause)
        assert pipeline_rows(url) == expected


# A sweep of two settings that trade differently: WEAK signals strong enough to pass the risk
# gates' min_confidence (0.6 x 0.9 = 0.54), and a narrower NORMAL band with a larger SURGE.
SETTINGS = [
    {"name": "weak_trades", "weak_from": "0.3", "weak_multiplier": "0.9"},
    {"name": "surge15", "weak_from": 0.6, "surge_above": 2.0, "surge_multiplier": 1.5},
]
SETTING_TABLES = ("signal_evaluations", "dispatch_recommendations", "dispatch_executions")


def _count(url: str, sql: str) -> int:
    conn = connect(parse_database_url(url))
    try:
        ((n,),) = conn.run(sql)
        return int(n)
    finally:
        conn.close()


def test_a_sweep_leaves_each_setting_the_rows_replay_leaves_with_it(bars, database_server):
    """Two settings in one backtest (and a third that moves nothing): bars and features once,
    signals and portfolio per setting, each setting's rows (schema sweep_<name>) those of a
    replay with that setting (the third's those of a replay without one), nothing in the public
    per-setting tables."""
    expected = {}
    for setting in SETTINGS:
        with throwaway_database(database_server) as url:
            replayed = replay(bars, database_url=url, setting=setting)
            assert not replayed.failures, replayed.failures[0]
            expected[setting["name"]] = pipeline_rows(url, f"sweep_{setting['name']}")
            for table in SETTING_TABLES:  # a replay of one setting leaves public's alone too
                assert _count(url, f"SELECT count(*) FROM public.{table}") == 0, table
    with throwaway_database(database_server) as url:  # no setting: the SPEC's, the stack's
        replayed = replay(bars, database_url=url)
        assert not replayed.failures, replayed.failures[0]
        expected["spec"] = pipeline_rows(url)
    swept = [*SETTINGS, {"name": "spec"}]  # a setting that moves nothing
    with throwaway_database(database_server) as url:
        result = backtest(bars, database_url=url, shards=2, settings=swept)
        assert not result.failures, (result.error, result.cause)
        got = {s["name"]: pipeline_rows(url, f"sweep_{s['name']}") for s in swept}
        for table in SETTING_TABLES:
            assert _count(url, f"SELECT count(*) FROM public.{table}") == 0, table
        assert _count(url, "SELECT count(*) FROM public.lane_features") == len(bars)

    assert result.executions == {BACKTEST_MACHINE: {"SUCCEEDED": 1}}
    # Bars and features once; signals per shard and setting; a portfolio per setting.
    assert result.invocations["TelemetryIngestorFunction"] == 4
    assert result.invocations["FeatureComputerFunction"] == 2
    assert result.invocations["SignalEngineFunction"] == 4 * len(swept)
    assert result.invocations["DispatcherFunction"] >= len(swept)
    for name, rows in expected.items():
        assert rows["dispatch_recommendations"], f"{name} makes no recommendation"
        assert any(row[8] == "filled" for row in rows[next(reversed(PIPELINE_TABLES))]), name
        for table in PIPELINE_TABLES:
            assert got[name][table] == rows[table], (name, table)
    # The settings decide differently, and each setting's summary says how it traded.
    first, second = (expected[s["name"]] for s in SETTINGS)
    assert first["dispatch_recommendations"] != second["dispatch_recommendations"]
    assert set(result.sweep) == {s["name"] for s in swept}
    for name, summary in result.sweep.items():
        assert summary["executions"].get("simulation filled"), name
        assert "realized_and_unrealized" in summary["simulated_pnl"], name


def test_a_malformed_setting_fails_its_child_under_a_named_error(bars, database_server):
    """A setting the local command would refuse, handed to the machine as an input from
    elsewhere would be: the signal engine raises InvalidSetting, which the child's Catch routes
    to its Fail state; the backtest fails and the public tables hold no signal."""
    from ops_pipeline_local.backtest import plan_backtest, upload_plan
    from ops_pipeline_local.replay import local_stack

    day = [b for b in bars if b.ts.astimezone(NEW_YORK).date() == DAYS[-1] and b.symbol == "AAPL"]
    plan = plan_backtest(day[:30], ["AAPL"], 1)
    with throwaway_database(database_server) as url:
        from ops_pipeline.migrate import migrate

        conn = connect(parse_database_url(url))
        try:
            migrate(conn)
        finally:
            conn.close()
        parameters = {"Tickers": "AAPL", "Feeds": "[]", "TradingMode": "simulation"}
        with local_stack(day[:30], database_url=url, parameters=parameters) as (runtime, _):
            event = upload_plan(runtime, plan, "bad-setting", 1)
            event["settings"] = [{"name": "Surge 1.5; DROP TABLE lane_telemetry"}]
            outcome = runtime.execute(BACKTEST_MACHINE, event, name="bad-setting")
            children = [
                e.get("setting") for f, e in runtime.invocations if f == "SignalEngineFunction"
            ]
        assert outcome.status == "FAILED", (outcome.error, outcome.cause)
        assert "InvalidSetting" in f"{outcome.error} {outcome.cause}"
        assert children == [{"name": "Surge 1.5; DROP TABLE lane_telemetry"}]
        assert _count(url, "SELECT count(*) FROM lane_telemetry") == 30
        assert _count(url, "SELECT count(*) FROM signal_evaluations") == 0


def test_a_backtest_refuses_a_stack_that_does_not_simulate(bars, database_server):
    """The backtest dispatches through the stack's dispatcher: not in a paper (or live) stack."""
    day = [b for b in bars if b.ts.astimezone(NEW_YORK).date() == DAYS[-1] and b.symbol == "AAPL"]
    with throwaway_database(database_server) as url:
        result = backtest(day[:30], database_url=url, shards=1, parameters={"TradingMode": "paper"})
        assert result.executions == {BACKTEST_MACHINE: {"FAILED": 1}}
        assert result.error == "BacktestNeedsSimulation"
        assert result.invocations == {}
        conn = connect(parse_database_url(url))
        try:
            assert conn.run("SELECT count(*) FROM lane_telemetry") == [[0]]
        finally:
            conn.close()


def test_the_command_runs_a_backtest_and_prints_its_summary(conn, database_url, tmp_path, capsys):
    from ops_pipeline_local.bars import read_bars, write_bars
    from ops_pipeline_local.cli import BUNDLED_BARS, main

    first = min(b.ts for b in read_bars(BUNDLED_BARS))
    chosen = [
        b
        for b in read_bars(BUNDLED_BARS)
        if b.symbol in ("AAPL", "MSFT", "TSLA") and (b.ts - first).total_seconds() < 60 * 60
    ]
    path = tmp_path / "bars.csv"
    write_bars(chosen, path)
    args = ["backtest", "--bars", str(path), "--database-url", database_url]

    code = main([*args, "--shards", "2", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)  # one document: the handlers' logs went to stderr
    assert set(summary["state_machines"][BACKTEST_MACHINE]) == {"SUCCEEDED"}
    assert all(isinstance(n, int) for n in summary["executions"].values())  # the dispatcher's
    assert summary["bars"] == len(chosen) and summary["features"]["total"] == len(chosen)
    assert (
        "backtest succeeded: 2 shards (2 ticker groups x 1 date ranges), 1 portfolio windows"
        in out.err
    )

    assert main([*args, "--shards", "0"]) == 2
    assert "shards must be at least 1" in capsys.readouterr().err

    # A sweep: each setting's summary in one document, under its name.
    sweep = ["--sweep", "cli_weak:weak_from=0.3,weak_multiplier=0.9", "--sweep", "cli_spec"]
    code = main([*args, "--shards", "2", *sweep, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert set(summary["sweep"]) == {"cli_weak", "cli_spec"}
    for name, setting in summary["sweep"].items():
        assert "realized_and_unrealized" in setting["simulated_pnl"], name
    assert (
        summary["sweep"]["cli_weak"]["recommendations_by_band"]
        != (summary["sweep"]["cli_spec"]["recommendations_by_band"])
    )
    code = main([*args, "--shards", "2", *sweep])  # the table: a row per setting
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Sweep: one row per setting" in out.out and "cli_weak" in out.out

    # Why a setting's signal fired: explain and report read that setting's rows, under its rule.
    ((ticker, ts),) = conn.run(
        "SELECT ticker, ts FROM sweep_cli_weak.signal_evaluations w"
        " JOIN sweep_cli_spec.signal_evaluations s USING (ticker, ts)"
        " WHERE w.band = 'WEAK' AND s.band = 'KILL' ORDER BY 2, 1 LIMIT 1"
    )
    at = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")
    explain = ["explain", ticker, "--at", at, "--database-url", database_url]
    assert main([*explain, "--setting", "cli_weak"]) == 0
    weak = capsys.readouterr().out
    assert "sweep setting cli_weak (weak_from 0.3," in weak
    assert ": WEAK x0.9" in weak and " is WEAK: x0.9" in weak  # its rule, and its evaluation
    assert main([*explain, "--setting", "cli_spec"]) == 0
    spec = capsys.readouterr().out
    assert "sweep setting cli_spec (weak_from 0.5," in spec
    assert ": KILL x0" in spec and " is KILL: x0" in spec  # the SPEC's rule kills that ratio
    assert main([*explain, "--setting", "cli_none"]) == 2
    assert "no setting 'cli_none' has run in this database; settings: cli_spec, cli_weak" in (
        capsys.readouterr().err
    )
    report = ["report", "--out", str(tmp_path / "weak"), "--database-url", database_url]
    assert main([*report, "--setting", "cli_weak"]) == 0, capsys.readouterr().err
    page = (tmp_path / "weak" / "index.html").read_text(encoding="utf-8")
    assert "cli_weak (weak_from 0.3, " in page

    assert main([*args, "--sweep", "Bad Name"]) == 2
    assert "a setting's name must match" in capsys.readouterr().err
    assert main([*args, "--sweep", "ok:surge_multiplier"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
