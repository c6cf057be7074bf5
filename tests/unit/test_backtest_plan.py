"""How a backtest is cut into shards: date ranges split only where the bars pause for a day,
ticker groups of near-equal size, and a shard's tickers read from the stage's event."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ops_pipeline.errors import InvalidEventError
from ops_pipeline.event_time import ONE_MINUTE, window_minutes
from ops_pipeline.shards import event_tickers
from ops_pipeline_local.backtest import (
    date_ranges,
    plan_backtest,
    plan_minutes,
    session_minutes,
    ticker_groups,
    write_plan,
)
from ops_pipeline_local.bars import Bar


def _session(day: int) -> list[datetime]:
    """The minutes a replay walks for a regular session of February 2019 (14:30-21:00 UTC)."""
    opens = datetime(2019, 2, day, 14, 30, tzinfo=UTC)
    return window_minutes(opens, opens + timedelta(minutes=390))


def test_consecutive_sessions_are_one_range_and_a_day_without_bars_starts_another():
    # Mon 11 .. Wed 13, then Fri 15 (no bars on Thursday), then Tue 19 (Monday 18 a holiday)
    minutes = [m for day in (11, 12, 13, 15, 19) for m in _session(day)]
    ranges = date_ranges(minutes)
    assert [(a.day, b.day) for a, b in ranges] == [(11, 13), (15, 15), (19, 19)]
    assert ranges[0] == (minutes[0], _session(13)[-1])


def test_a_range_never_holds_bars_from_the_day_before_its_first_minute():
    """The signal engine looks a day back for bars never evaluated: no other range may be there."""
    minutes = [m for day in (11, 12, 13, 15, 19) for m in _session(day)]
    ranges = date_ranges(minutes)
    for (_, last), (first, _) in zip(ranges, ranges[1:]):
        assert first - last > timedelta(days=1)


def test_bars_on_more_days_than_a_stage_run_spans_are_refused():
    # seven consecutive days with bars (a weekend traded): no day-long pause within five days
    minutes = [m for day in range(11, 18) for m in _session(day)]
    with pytest.raises(ValueError, match="pause nowhere for a day"):
        date_ranges(minutes)


def test_ticker_groups_are_contiguous_and_near_equal():
    assert ticker_groups(["TSLA", "AAPL", "MSFT", "AMZN", "SPY"], 2) == [
        ("AAPL", "AMZN", "MSFT"),
        ("SPY", "TSLA"),
    ]
    assert ticker_groups(["AAPL", "MSFT"], 5) == [("AAPL",), ("MSFT",)]
    with pytest.raises(ValueError):
        ticker_groups(["AAPL"], 0)


def test_the_plan_crosses_groups_with_ranges_and_keeps_replay_s_windows():
    price = Decimal("10")
    bars = [
        Bar(symbol, m, price, price, price, price, 100)
        for symbol in ("AAPL", "MSFT", "TSLA")
        for day in (12, 15)
        for m in _session(day)[:-1]
    ]
    plan = plan_backtest(bars, ["AAPL", "MSFT", "TSLA"], 2)
    assert len(plan.ranges) == 2 and len(plan.shards) == 4
    assert [(s.tickers, s.since.day) for s in plan.shards] == [
        (("AAPL", "MSFT"), 12),
        (("TSLA",), 12),
        (("AAPL", "MSFT"), 15),
        (("TSLA",), 15),
    ]
    # a shard's window runs from its range's first bar to the minute after its last bar
    assert plan.shards[0].time == _session(12)[-2] + ONE_MINUTE
    assert plan.windows == [(plan.ranges[0][0], plan.ranges[1][1])]  # one five-day window
    event = plan.execution_input("s.json", "r.json", 3)
    assert event == {
        "shards": "s.json",
        "ranges": "r.json",
        "windows": [{"since": "2019-02-12T14:30:00Z", "time": "2019-02-15T21:00:00Z"}],
        "concurrency": 3,
    }
    with pytest.raises(ValueError, match="concurrency"):
        plan.execution_input("s.json", "r.json", 0)


def test_a_shard_names_its_tickers_in_the_stage_s_event():
    assert event_tickers({"time": "2019-02-12T15:00:00Z"}) is None
    assert event_tickers({"tickers": ["aapl", " MSFT", "AAPL"]}) == ("AAPL", "MSFT")
    # a malformed symbol is skipped (and logged); none valid, or not a list, is refused
    assert event_tickers({"tickers": ["AAPL", "not a ticker!"]}) == ("AAPL",)
    for bad in ("AAPL,MSFT", [1, 2], [], ["???"]):
        with pytest.raises(InvalidEventError):
            event_tickers({"tickers": bad})


def test_a_plan_for_aws_walks_each_session_s_extended_day_and_names_its_files(tmp_path):
    # Friday 2019-02-15, then Tuesday the 19th: Monday the 18th was Presidents' Day
    minutes = session_minutes(date(2019, 2, 15), date(2019, 2, 19))
    assert len(minutes) == 2 * (16 * 60 + 1)
    assert minutes[0] == datetime(2019, 2, 15, 9, 0, tzinfo=UTC)  # 04:00 New York
    assert minutes[-1] == datetime(2019, 2, 20, 1, 0, tzinfo=UTC)  # 20:00 New York
    plan = plan_minutes(minutes, ["AAPL", "MSFT"], 2)
    assert len(plan.ranges) == 2 and len(plan.shards) == 4
    files = write_plan(plan, tmp_path, "/backtests/feb/")
    event = json.loads(files["input.json"].read_text())
    assert event["shards"] == "backtests/feb/shards.json"
    assert event["ranges"] == "backtests/feb/ranges.json"
    assert event["concurrency"] == 10
    shards = json.loads(files["shards.json"].read_text())
    assert shards[0] == {
        "tickers": ["AAPL"],
        "since": "2019-02-15T09:00:00Z",
        "time": "2019-02-16T01:00:00Z",
    }
    assert len(json.loads(files["ranges.json"].read_text())) == 2


def test_a_sweep_s_plan_lists_its_settings_in_the_input(tmp_path, capsys):
    from ops_pipeline_local.cli import main

    out = tmp_path / "plan"
    args = ["backtest-plan", "--from", "2019-02-15", "--to", "2019-02-15", "--tickers", "AAPL"]
    sweep = ["--sweep", "vol15:surge_multiplier=1.5", "--sweep", "spec", "--out", str(out)]
    assert main([*args, *sweep]) == 0
    event = json.loads((out / "input.json").read_text())
    assert event["settings"] == [{"name": "vol15", "surge_multiplier": "1.5"}, {"name": "spec"}]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0  # no sweep: no settings key
    assert "settings" not in json.loads((tmp_path / "plain" / "input.json").read_text())
    capsys.readouterr()
    assert main([*args, "--sweep", "vol15:surge_multiplier=0", "--out", str(out)]) == 2
    assert "surge_multiplier must be above 0" in capsys.readouterr().err
