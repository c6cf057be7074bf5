"""The `ops-pipeline` command, end to end on real bars (2019-02-12, Alpha Vantage via
masonblier/eqker, ISC) and the bundled sample feeds."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pandas as pd
import pytest

from ops_pipeline_local.bars import write_bars
from ops_pipeline_local.cli import BUNDLED_FEEDS, STATUS_TABLES, main
from ops_pipeline_local.replay import replay

pytestmark = pytest.mark.statemachine


@pytest.fixture
def bars_csv(tmp_path, bundled_bars):
    first = min(b.ts for b in bundled_bars)
    chosen = [
        b
        for b in bundled_bars
        if b.symbol in ("AAPL", "TSLA") and b.ts < first + timedelta(minutes=75)
    ]
    path = tmp_path / "bars.csv"
    write_bars(chosen, path)
    return path, chosen


@pytest.fixture
def replay_args(bars_csv, database_url):
    path, _ = bars_csv
    return [
        "replay",
        "--bars",
        str(path),
        "--feeds",
        str(BUNDLED_FEEDS),
        "--database-url",
        database_url,
    ]


def test_replay_fills_features_that_match_an_independent_rolling_computation(
    conn, bars_csv, replay_args, capsys
):
    _, bars = bars_csv
    code = main(replay_args)
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "Replay summary" in out.out and "simulated P&L" in out.out
    # 76 minutes (the bars' and the one after) at the default step of 390: with feeds, a window
    # ends at every fifth minute, where the 5-minute machine runs after it (16 times)
    assert re.search(r"MinutePipelineStateMachine\s+succeeded 16\s*$", out.out, re.M)
    assert re.search(r"FiveMinutePipelineStateMachine\s+succeeded 16\s*$", out.out, re.M)

    frame = pd.DataFrame(
        [(b.symbol, b.ts, float(b.close), b.volume) for b in bars], columns=["t", "ts", "c", "v"]
    )
    frame = frame.sort_values(["t", "ts"])
    g = frame.groupby("t")
    frame["sma20"] = g["c"].transform(lambda s: s.rolling(20).mean())
    frame["sma50"] = g["c"].transform(lambda s: s.rolling(50).mean())
    frame["ratio"] = frame["v"] / g["v"].transform(lambda s: s.rolling(20).mean())
    expected = frame.set_index(["t", "ts"])
    rows = conn.run("SELECT ticker, ts, sma20, sma50, volume_ratio FROM lane_features")
    assert len(rows) == len(bars)
    for ticker, ts, sma20, sma50, ratio in rows:
        want = expected.loc[(ticker, pd.Timestamp(ts))]
        for got, exp in ((sma20, want.sma20), (sma50, want.sma50), (ratio, want.ratio)):
            assert (got is None) == pd.isna(exp)
            if got is not None:
                assert float(got) == pytest.approx(exp, abs=1.01e-4)
    news = conn.run("SELECT count(*) FROM inbound_events_classified")[0][0]
    assert news > 0


def test_status_json_is_one_object_with_every_table(conn, database_url, capsys):
    saturday = "2026-11-28T15:00:00Z"  # no session: an empty database is not stale
    assert main(["status", "--json", "--at", saturday, "--database-url", database_url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        set(report["tables"])
        == set(STATUS_TABLES)
        == {
            "lane_telemetry",
            "lane_features",
            "dispatch_recommendations",
            "dispatch_executions",
            "inbound_events_raw",
            "inbound_events_classified",
            "lane_watchlist_state",
            "signal_evaluations",
        }
    )
    assert report["last_execution"] is None and report["data_age_seconds"] is None


def test_classify_reads_lines_and_writes_json_lines(monkeypatch, capsys):
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO("Apple shares surge after record iPhone sales\n\n$TSLA falls after recall\n"),
    )
    assert main(["classify"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) == {"label", "score", "tickers"}
    assert lines[0]["tickers"] == ["AAPL"] and lines[1]["tickers"] == ["TSLA"]
    assert lines[0]["label"] == "positive" and 0 <= lines[0]["score"] <= 1


def test_migrate_is_idempotent(database_url, capsys):
    assert main(["db", "migrate", "--database-url", database_url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_replaying_the_same_bars_and_feeds_again_changes_no_row(
    conn, bars_csv, replay_args, capsys
):
    def snapshot():
        # created_at/updated_at/fetched_at-style columns are part of the rows: they must not move either
        return {t: conn.run(f"SELECT * FROM {t} ORDER BY 1, 2") for t in STATUS_TABLES}

    assert main(replay_args) == 0
    first = snapshot()
    # A new run (new ports for the local Alpaca and feed servers) over the same minutes: the CLI
    # refuses to mix runs without --continue or --fresh, so through the replay itself.
    path, bars = bars_csv
    result = replay(bars, database_url=replay_args[-1], feeds_dir=BUNDLED_FEEDS)
    assert not result.failures
    capsys.readouterr()
    assert snapshot() == first
