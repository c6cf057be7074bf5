"""Event time: every stage acts on the minute in its input, never on the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ops_pipeline.errors import InvalidEventError

ONE_MINUTE = timedelta(minutes=1)
# The longest catch-up window a run may carry: a long weekend's outage, not a backfill of months.
MAX_WINDOW = timedelta(days=5)


def parse_minute(value: Any) -> datetime:
    """Parse an ISO-8601 time (`...Z`, `+00:00`, or a space for the `T`) and floor it to the minute."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEventError(f"time {value!r} is not ISO-8601") from exc
    else:
        raise InvalidEventError(f"time must be an ISO-8601 string, got {value!r}")
    if moment.tzinfo is None:
        raise InvalidEventError(f"time {value!r} has no UTC offset")
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def event_minute(event: dict[str, Any]) -> datetime:
    """The minute a stage acts on: `event["time"]`, as the state machine hands it down."""
    if "time" not in event:
        raise InvalidEventError("the event has no 'time'; start executions with the scheduled time")
    return parse_minute(event["time"])


def event_window(event: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's window `(since, time)`, both minutes, inclusive: `event["since"]` to `event["time"]`.

    Without `since` (or with a null one) the window is the run's own minute, as for a scheduled run.
    """
    minute = event_minute(event)
    if event.get("since") is None:
        return minute, minute
    since = parse_minute(event["since"])
    if since > minute:
        raise InvalidEventError(f"since {event['since']!r} is after time {event['time']!r}")
    if minute - since > MAX_WINDOW:
        raise InvalidEventError(
            f"the window {iso_minute(since)} .. {iso_minute(minute)} is longer than"
            f" {MAX_WINDOW.days} days"
        )
    return since, minute


def window_minutes(since: datetime, minute: datetime) -> list[datetime]:
    """Every minute of the window, oldest first."""
    return [since + i * ONE_MINUTE for i in range(int((minute - since) / ONE_MINUTE) + 1)]


def iso_minute(moment: datetime) -> str:
    """The form every stage passes on: `2019-02-12T14:31:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
