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
    market_open,
    nyse_holidays,
    regular_session,
    summarise_executions,
)

MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 New York
MIN = timedelta(minutes=1)


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


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2019, ["01-01", "01-21", "02-18", "04-19", "05-27", "07-04", "09-02", "11-28", "12-25"]),
        (2021, ["01-01", "01-18", "02-15", "04-02", "05-31", "07-05", "09-06", "11-25", "12-24"]),
        # New Year's Day 2022 was a Saturday: not observed; Juneteenth from 2022, on a Sunday.
        (2022, ["01-17", "02-21", "04-15", "05-30", "06-20", "07-04", "09-05", "11-24", "12-26"]),
        (
            2024,
            [
                "01-01",
                "01-15",
                "02-19",
                "03-29",
                "05-27",
                "06-19",
                "07-04",
                "09-02",
                "11-28",
                "12-25",
            ],
        ),
        (
            2026,
            [
                "01-01",
                "01-19",
                "02-16",
                "04-03",
                "05-25",
                "06-19",
                "07-03",
                "09-07",
                "11-26",
                "12-25",
            ],
        ),
    ],
)
def test_nyse_holidays(year: int, expected: list[str]) -> None:
    assert sorted(f"{d:%m-%d}" for d in nyse_holidays(year)) == expected


@pytest.mark.parametrize(
    ("day", "closes"),
    [
        (date(2019, 7, 3), "13:00"),
        (date(2019, 11, 29), "13:00"),
        (date(2024, 12, 24), "13:00"),
        (date(2023, 7, 3), "13:00"),  # a Monday before a Tuesday July 4
        (
            date(2020, 7, 2),
            "16:00",
        ),  # July 4 2020 a Saturday: the 3rd is the holiday, no early close
        (date(2019, 2, 12), "16:00"),
    ],
)
def test_sessions_and_early_closes(day: date, closes: str) -> None:
    session = regular_session(day)
    assert session is not None
    assert f"{session.opens:%H:%M}" == "09:30" and f"{session.closes:%H:%M}" == closes


def test_no_session_on_weekends_and_holidays() -> None:
    assert regular_session(date(2019, 2, 16)) is None  # Saturday
    assert regular_session(date(2019, 12, 25)) is None
    assert regular_session(date(2020, 7, 3)) is None  # observed Independence Day


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
def test_market_open(utc: str, is_open: bool) -> None:
    assert market_open(datetime.fromisoformat(utc).replace(tzinfo=UTC)) is is_open


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
    report = health_report(snapshot, MINUTE, executions)
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
    report = health_report(DataSnapshot(), MINUTE.replace(hour=23))
    names = {m.name for m in report.metrics()}
    assert "MinuteExecutionsLastHour" not in names and "LastMinuteExecutionFailed" not in names
    assert report.as_dict()["minute_executions"] is None
    assert report.as_dict()["market_open"] is False
