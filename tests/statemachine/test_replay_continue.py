"""A replay never mixes runs: into a database that holds one, `replay` refuses unless told to
`--continue` from its book (same costs and mode, later bars) or to start `--fresh`. Real bars of
2019-02-12 (the bundled Alpha Vantage bars, masonblier/eqker, ISC), AAPL and TSLA."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.bars import write_bars
from ops_pipeline_local.cli import main
from ops_pipeline_local.embedded_db import throwaway_database

pytestmark = pytest.mark.statemachine


@pytest.fixture
def sessions(database_server, bundled_bars, tmp_path):
    """Two CSV files: the first 120 minutes (TSLA is bought at 11:21 New York and still held at
    their end) and the 40 after them; and a database of the test's own."""
    first = min(b.ts for b in bundled_bars)
    split = first + timedelta(minutes=120)
    chosen = [
        b
        for b in bundled_bars
        if b.symbol in ("AAPL", "TSLA") and b.ts < first + timedelta(minutes=160)
    ]
    morning, later = tmp_path / "morning.csv", tmp_path / "later.csv"
    write_bars([b for b in chosen if b.ts < split], morning)
    write_bars([b for b in chosen if b.ts >= split], later)
    with throwaway_database(database_server) as url:
        yield url, morning, later


def _replay(capsys, url, bars, *flags):
    code = main(["replay", "--bars", str(bars), "--database-url", url, "--json", *flags])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


def _rows(url):
    conn = connect(parse_database_url(url))
    try:
        return conn.run(
            "SELECT (SELECT count(*) FROM lane_telemetry), (SELECT count(*) FROM lane_features),"
            " (SELECT count(*) FROM dispatch_recommendations),"
            " (SELECT count(*) FROM dispatch_executions),"
            " (SELECT count(*) FROM local_replay_runs)"
        )[0]
    finally:
        conn.close()


def test_a_second_replay_without_a_choice_refuses_in_one_line_naming_both(sessions, capsys):
    url, morning, _ = sessions
    code, first, _ = _replay(capsys, url, morning)
    assert code == 0 and first["continued"] is False
    before = _rows(url)
    code, _, err = _replay(capsys, url, morning)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--continue" in lines[0] and "--fresh" in lines[0], err
    assert "already holds a run" in lines[0]
    assert _rows(url) == before


def test_fresh_starts_clean_and_gives_the_first_runs_figures(sessions, capsys):
    url, morning, later = sessions
    code, first, _ = _replay(capsys, url, morning)
    assert code == 0
    rows = _rows(url)
    code, _, _ = _replay(capsys, url, later, "--continue")
    assert code == 0
    code, again, _ = _replay(capsys, url, morning, "--fresh")
    assert code == 0 and again["continued"] is False
    assert _rows(url) == rows
    assert again["simulated_pnl"] == first["simulated_pnl"]
    assert again["executions"] == first["executions"]


def test_continue_starts_from_the_book_and_reports_its_own_trading_apart(sessions, capsys):
    url, morning, later = sessions
    code, first, _ = _replay(capsys, url, morning)
    assert code == 0
    assert first["simulated_pnl"]["open_positions"], "the morning ends holding a position"
    code, second, _ = _replay(capsys, url, later, "--continue")
    assert code == 0 and second["continued"] is True
    pnl = second["simulated_pnl"]
    assert pnl["opening_positions"] == first["simulated_pnl"]["open_positions"]
    total = Decimal(str(pnl["realized_and_unrealized"]))
    parts = Decimal(str(pnl["carried_move"])) + Decimal(str(pnl["own_trading"]))
    assert total == parts
    # Its own executions only: the morning's are not counted again.
    executions = sum(second["executions"].values())
    assert 0 < executions < sum(first["executions"].values()) + executions
    assert sum(second["state_machines"]["MinutePipelineStateMachine"].values()) >= 1

    code = main(["replay", "--bars", str(later), "--database-url", url, "--continue"])
    out = capsys.readouterr()
    assert code == 2 and "--continue: the stored run reaches" in out.err


def test_continue_refuses_other_costs_than_the_stored_runs(sessions, capsys):
    url, morning, later = sessions
    assert _replay(capsys, url, morning, "--slippage-bps", "10")[0] == 0
    code, _, err = _replay(capsys, url, later, "--continue")
    assert code == 2
    assert "the stored run's costs are 10 bps" in err and "--slippage-bps" in err
    code, second, _ = _replay(capsys, url, later, "--continue", "--slippage-bps", "10")
    assert code == 0 and second["continued"] is True


def test_the_summary_text_says_it_continued(sessions, capsys):
    url, morning, later = sessions
    assert main(["replay", "--bars", str(morning), "--database-url", url]) == 0
    capsys.readouterr()
    assert main(["replay", "--bars", str(later), "--database-url", url, "--continue"]) == 0
    out = capsys.readouterr().out
    assert "continued" in out and "this replay's own trading" in out
