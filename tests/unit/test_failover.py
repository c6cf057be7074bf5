"""The failover's decision (pure): when the ingestor switches to the backup and back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ops_pipeline.market import MarketCalendar
from ops_pipeline.telemetry import (
    FAILBACK_AFTER,
    PRIMARY_SOURCE,
    SourceState,
    choose_source,
    primary_problem,
)

T0 = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)  # 10:00 New York
MINUTE = timedelta(minutes=1)
ON_PRIMARY = SourceState(PRIMARY_SOURCE, T0 - timedelta(hours=1), "primary")


def _calendar() -> MarketCalendar:
    def fetch(first: date, last: date) -> list[dict[str, str]]:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        return [{"date": d.isoformat(), "open": "09:30", "close": "16:00"} for d in days]

    return MarketCalendar(fetch)


def test_errors_switch_to_the_backup_at_once_and_without_a_backup_nothing_switches():
    state, switch = choose_source(ON_PRIMARY, T0, "errors: 500", "massive")
    assert (state.source, state.since) == ("massive", T0)
    assert switch is not None and switch.reason == "primary errors: 500"
    assert choose_source(ON_PRIMARY, T0, "errors: 500", None) == (ON_PRIMARY, None)
    assert choose_source(ON_PRIMARY, T0, None, "massive") == (ON_PRIMARY, None)


def test_the_primary_must_stay_healthy_for_the_hysteresis_before_the_switch_back():
    state, _ = choose_source(ON_PRIMARY, T0, "errors", "massive")
    minute, switched_at = T0, None
    # healthy, unhealthy (the streak restarts), then healthy for good
    for healthy in [True, False] + [True] * 10:
        minute += MINUTE
        state, switch = choose_source(state, minute, None if healthy else "stale", "massive")
        if switch is not None:
            switched_at = switch.minute
            break
    first_healthy_for_good = T0 + 3 * MINUTE
    assert switched_at == first_healthy_for_good + FAILBACK_AFTER
    assert state == SourceState(PRIMARY_SOURCE, switched_at, state.reason)


def test_a_backup_no_longer_configured_hands_back_to_the_primary():
    on_backup = SourceState("massive", T0, "primary errors")
    state, switch = choose_source(on_backup, T0 + MINUTE, "errors", None)
    assert state.source == PRIMARY_SOURCE and switch is not None


def test_stale_is_judged_in_the_session_only_and_after_two_missing_bars():
    calendar = _calendar()
    newest = T0 - MINUTE  # the bar that closed at T0
    assert primary_problem(newest, T0 + MINUTE, calendar) is None  # one bar missing: a gap
    assert primary_problem(newest, T0 + 2 * MINUTE, calendar).startswith("stale")
    assert primary_problem(None, T0, calendar).startswith("stale")
    before_open = datetime(2019, 2, 12, 14, 31, tzinfo=UTC)  # 09:31: the first bars of the day
    assert primary_problem(None, before_open, calendar) is None
    evening = datetime(2019, 2, 12, 22, 0, tzinfo=UTC)
    assert primary_problem(None, evening, calendar) is None
