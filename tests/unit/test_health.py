"""Healthcheck, pure parts: freshness, market hours, executions summary, metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ops_pipeline.health import (
    MISSING_AGE_SECONDS,
    DataSnapshot,
    ExecutionSummary,
    freshness,
    health_report,
    summarise_executions,
)
from ops_pipeline.market import MarketCalendar, TradingSession, trading_day

MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 New York
MIN = timedelta(minutes=1)
SESSION = TradingSession.from_calendar_entry(
    {"date": "2019-02-12", "open": "09:30", "close": "16:00"}
)


def test_ages_are_measured_from_the_event_minute() -> None:
    snapshot = DataSnapshot(
        newest_bar=MINUTE - MIN,  # closed at the minute: age 0
        newest_feature=MINUTE - 3 * MIN,  # closed 2 minutes ago
        newest_raw_event=MINUTE - 5 * MIN,
        newest_classified_event=MINUTE - timedelta(hours=1),
        newest_recommendation=MINUTE - 10 * MIN,
    )
    f = freshness(snapshot, MINUTE)
    assert (f.bar_age, f.feature_age, f.raw_event_age) == (0.0, 120.0, 300.0)
    assert (f.classified_event_age, f.recommendation_age) == (3600.0, 600.0)
    assert f.missing == ()


def test_an_empty_table_reads_as_a_huge_age() -> None:
    f = freshness(DataSnapshot(newest_bar=MINUTE - MIN), MINUTE)
    assert f.bar_age == 0.0
    assert f.feature_age == f.raw_event_age == f.recommendation_age == MISSING_AGE_SECONDS
    assert f.missing == ("features", "raw_events", "classified_events", "recommendations")


# Alpaca's calendar entries for the days these tests use (GET /v2/calendar), as the API gives them.
CALENDAR = [
    {"date": "2019-02-12", "open": "09:30", "close": "16:00"},
    {"date": "2019-07-15", "open": "09:30", "close": "16:00"},
    {"date": "2019-11-29", "open": "09:30", "close": "13:00"},
]


class FakeCalendarSource:
    """Answers like GET /v2/calendar from the entries above, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[date, date]] = []

    def __call__(self, first: date, last: date) -> list[dict[str, str]]:
        self.calls.append((first, last))
        return [e for e in CALENDAR if first <= date.fromisoformat(e["date"]) <= last]


def test_market_calendar_fetches_each_day_once() -> None:
    source = FakeCalendarSource()
    calendar = MarketCalendar(source)
    sessions = calendar.sessions(date(2019, 11, 28), date(2019, 12, 2))
    assert [d for d, s in sessions.items() if s is not None] == [date(2019, 11, 29)]
    assert f"{sessions[date(2019, 11, 29)].closes:%H:%M}" == "13:00"  # type: ignore[union-attr]
    assert calendar.session(date(2019, 11, 30)) is None  # Saturday: known, not asked again
    assert calendar.session(date(2019, 2, 12)) is not None
    assert source.calls == [
        (date(2019, 11, 28), date(2019, 12, 2)),
        (date(2019, 2, 12), date(2019, 2, 12)),
    ]


@pytest.mark.parametrize(
    ("utc", "is_open"),
    [
        ("2019-02-12T14:30:00", False),  # 09:30 New York: no bar of the session has closed yet
        ("2019-02-12T14:31:00", True),
        ("2019-02-12T15:00:00", True),
        ("2019-02-12T21:00:00", True),  # 16:00: the 15:59 bar closed
        ("2019-02-12T21:01:00", False),
        ("2019-02-16T15:00:00", False),  # Saturday
        ("2019-12-25T15:00:00", False),  # Christmas
        ("2019-11-29T18:00:00", True),  # 13:00 on the day after Thanksgiving
        ("2019-11-29T18:05:00", False),
        ("2019-07-15T13:35:00", True),  # summer time: 09:35 EDT
    ],
)
def test_market_open_follows_the_calendars_session(utc: str, is_open: bool) -> None:
    minute = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    session = MarketCalendar(FakeCalendarSource()).session(trading_day(minute))
    report = health_report(DataSnapshot(), minute, session=session)
    assert report.market_open is is_open
    assert {m.name: m.value for m in report.metrics()}["MarketOpen"] == float(is_open)


def test_without_the_calendar_market_open_is_not_emitted() -> None:
    report = health_report(DataSnapshot(), MINUTE, session=None, session_known=False)
    assert report.as_dict()["market_open"] is None
    assert "MarketOpen" not in {m.name for m in report.metrics()}


def _execution(status: str, minutes_ago: float) -> dict[str, object]:
    return {"status": status, "startDate": MINUTE - timedelta(minutes=minutes_ago)}


def test_executions_summary_skips_running_for_the_outcome() -> None:
    items = [_execution("SUCCEEDED", m) for m in range(2, 70)]
    items += [
        _execution("FAILED", 1),
        _execution("RUNNING", -0.001),
    ]  # started just after the minute
    summary = summarise_executions(items, MINUTE)
    assert summary.newest_status == "RUNNING"
    assert summary.last_finished_status == "FAILED"
    assert summary.last_failed
    # 1..60 minutes ago, and the one started within the event minute
    assert summary.started_last_hour == 61


def test_executions_summary_when_there_are_none() -> None:
    summary = summarise_executions([], MINUTE)
    assert summary == ExecutionSummary(started_last_hour=0)
    assert not summary.last_failed


def test_metrics_and_dict_carry_the_same_numbers() -> None:
    snapshot = DataSnapshot(
        newest_bar=MINUTE - 6 * MIN,
        newest_feature=MINUTE - 6 * MIN,
        newest_raw_event=None,
        bars_last_hour=420,
        features_last_hour=415,
        recommendations_last_hour=3,
        executions_last_hour={"filled": 2, "rejected": 1},
    )
    executions = ExecutionSummary(
        started_last_hour=60, newest_status="SUCCEEDED", last_finished_status="TIMED_OUT"
    )
    report = health_report(snapshot, MINUTE, executions, session=SESSION)
    metrics = {m.name: (m.unit, m.value) for m in report.metrics()}
    assert metrics == {
        "BarAgeSeconds": ("Seconds", 300.0),
        "FeatureAgeSeconds": ("Seconds", 300.0),
        "NewsAgeSeconds": ("Seconds", MISSING_AGE_SECONDS),
        "MarketOpen": ("Count", 1.0),
        "BarsLastHour": ("Count", 420.0),
        "RecommendationsLastHour": ("Count", 3.0),
        "MinuteExecutionsLastHour": ("Count", 60.0),
        "LastMinuteExecutionFailed": ("Count", 1.0),
    }
    summary = report.as_dict()
    assert summary["bar_age_seconds"] == 300.0
    assert summary["news_age_seconds"] == MISSING_AGE_SECONDS
    assert summary["market_open"] is True
    assert summary["executions_last_hour"] == {"filled": 2, "rejected": 1}
    assert summary["minute_executions"]["last_failed"] is True


def test_without_a_state_machine_no_execution_metrics() -> None:
    report = health_report(DataSnapshot(), MINUTE.replace(hour=23), session=SESSION)
    names = {m.name for m in report.metrics()}
    assert "MinuteExecutionsLastHour" not in names and "LastMinuteExecutionFailed" not in names
    assert report.as_dict()["minute_executions"] is None
    assert report.as_dict()["market_open"] is False
