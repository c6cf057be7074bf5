"""Catch-up windows: the event's `since`..`time`, the replay's tiling, the dispatcher's minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops_pipeline.errors import InvalidEventError
from ops_pipeline.event_time import event_window, window_minutes
from ops_pipeline_local.replay import default_step, replay_windows

T = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_a_scheduled_run_s_window_is_its_own_minute():
    assert event_window({"time": "2019-02-12T15:00:42Z"}) == (T, T)
    assert event_window({"time": "2019-02-12T15:00:00Z", "since": None}) == (T, T)


def test_a_catch_up_window_runs_from_since_to_time_inclusive():
    since, minute = event_window({"time": "2019-02-12T15:00:00Z", "since": "2019-02-12T14:31:00Z"})
    assert (since, minute) == (T - 29 * MIN, T)
    assert window_minutes(since, minute) == [T - i * MIN for i in range(29, -1, -1)]


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2019-02-12T15:01:00Z", "after time"),
        ("2019-02-07T14:59:00Z", "longer than 5 days"),
        ("yesterday", "not ISO-8601"),
        ("2019-02-12T14:00:00", "no UTC offset"),
    ],
)
def test_a_bad_window_is_refused_with_a_clear_error(since, message):
    with pytest.raises(InvalidEventError, match=message):
        event_window({"time": "2019-02-12T15:00:00Z", "since": since})


def test_a_five_day_window_is_the_longest_accepted():
    since = T - timedelta(days=5)
    assert event_window({"time": "2019-02-12T15:00:00Z", "since": since.isoformat()})[0] == since


def _day(start: datetime, count: int) -> list[datetime]:
    return [start + i * MIN for i in range(count)]


def test_replay_windows_tile_the_minutes_and_end_at_the_last():
    minutes = _day(T, 100)
    for step in (1, 7, 30, 100, 390):
        windows = replay_windows(minutes, step)
        covered = [m for since, until in windows for m in window_minutes(since, until)]
        assert covered == minutes
        assert windows[-1][1] == minutes[-1]
        assert all(len(window_minutes(s, u)) <= step for s, u in windows)
    assert len(replay_windows(minutes, 30)) == 4


def test_replay_windows_end_at_every_cut_and_may_span_a_night():
    day1, day2 = _day(T, 10), _day(T + timedelta(days=1), 10)
    cuts = {T + 4 * MIN}
    windows = replay_windows(day1 + day2, 390, cuts=cuts)
    assert windows == [(T, T + 4 * MIN), (T + 5 * MIN, day2[-1])]


def test_replay_windows_never_exceed_the_longest_window_a_run_accepts():
    days = [_day(T + timedelta(days=d), 3) for d in range(8)]
    windows = replay_windows([m for day in days for m in day], 10_000)
    assert all(until - since <= timedelta(days=5) for since, until in windows)
    assert windows[-1][1] == days[-1][-1]


def test_simulation_steps_as_long_a_window_as_a_run_may_have_and_paper_one_minute():
    assert default_step() == default_step("simulation") == 5 * 24 * 60  # MAX_WINDOW
    assert default_step("paper") == 1


def _dispatcher():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "functions" / "dispatcher" / "app.py"
    spec = importlib.util.spec_from_file_location("dispatcher_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session(day: str) -> dict:
    return {"session_open": f"{day}T09:30:00-05:00", "session_close": f"{day}T16:00:00-05:00"}


def test_the_dispatcher_walks_a_window_over_a_night_minute_by_minute():
    """From 15:58 New York to 09:32 the next day: the session minutes of both days, in order, and
    the closing run's minute (16:00) dispatches with the market no longer taking orders."""
    event = {
        "since": "2019-02-12T20:58:00Z",
        "time": "2019-02-13T14:32:00Z",
        "market": {"is_open": True, "sessions": [_session("2019-02-12"), _session("2019-02-13")]},
    }
    minutes = [(d.minute, d.market_open) for d in _dispatcher()._dispatch_minutes(event)]
    at = datetime(2019, 2, 12, 20, 58, tzinfo=UTC)
    next_open = datetime(2019, 2, 13, 14, 30, tzinfo=UTC)
    assert minutes == [
        (at, True),
        (at + MIN, True),
        (at + 2 * MIN, False),  # 16:00: the day's last bar is in, orders would wait for the open
        (next_open + MIN, True),  # 09:30 itself is pre-market's run: no dispatch
        (next_open + 2 * MIN, True),
    ]


def test_a_scheduled_dispatch_is_its_own_minute():
    event = {"time": "2019-02-12T15:00:00Z", "market": {"is_open": True, **_session("2019-02-12")}}
    (at,) = _dispatcher()._dispatch_minutes(event)
    assert (at.minute, at.market_open) == (T, True)
    assert at.session_close == datetime.fromisoformat(_session("2019-02-12")["session_close"])


def test_the_cli_takes_a_step_of_at_least_one_minute(capsys):
    from ops_pipeline_local.cli import build_parser

    assert build_parser().parse_args(["replay", "--bars", "b.csv", "--step", "30"]).step == 30
    assert build_parser().parse_args(["run"]).step is None  # default_step() then
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "--bars", "b.csv", "--step", "0"])
    assert "at least 1 minute" in capsys.readouterr().err


def test_a_window_as_long_as_a_run_may_have_fetches_the_bar_that_closes_at_its_start():
    """A catch-up run over the longest window (five days) after a gap: the bar that started a
    minute before the window, closing at its first minute, is still inside the ingest's reach."""
    from ops_pipeline import telemetry
    from ops_pipeline.event_time import MAX_WINDOW

    since = datetime(2019, 2, 13, 14, 30, tzinfo=UTC)
    minute = since + MAX_WINDOW
    last = {"AAPL": since - 2 * MIN}  # the previous run stored up to the bar before
    (group,) = telemetry.fetch_plan(last, ["AAPL"], minute)
    assert group.start <= since - MIN
