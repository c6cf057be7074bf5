"""Event time: every stage acts on the minute in its input, never on the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ops_pipeline.errors import InvalidEventError

ONE_MINUTE = timedelta(minutes=1)


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


def iso_minute(moment: datetime) -> str:
    """The form every stage passes on: `2019-02-12T14:31:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
