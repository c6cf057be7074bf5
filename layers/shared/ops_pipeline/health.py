"""Healthcheck: data freshness, last-hour counts and the minute pipeline's executions, as metrics.

Everything is measured against the EVENT minute, never the wall clock, so a replay reads the same
as the live run did:

- ages in seconds: newest bar and newest feature, from the bar's close (`ts + 1 min`; the bar that
  closed at the minute has age 0); newest raw event by `fetched_at` (the minute the RSS ingest
  last stored a new item: `NewsAgeSeconds`); newest classified event by `event_time`; newest
  recommendation by `decided_at`. Rows after the minute are ignored.
- An empty table (nothing at or before the minute) has age `MISSING_AGE_SECONDS` (1e9 s, about
  32 years), so an alarm on "age > threshold while the market is open" fires on missing data too;
  the returned dict also lists it under `missing`.
- counts over the hour `(minute - 1 h, minute]`: bars, features, recommendations, executions by
  status; and the classifier backlog (raw events of the last 2 days without a classification).
- market open: from the day's session as `ops_pipeline.market.MarketCalendar` gives it (Alpaca's
  calendar: holidays, early closes and unscheduled closures), the same answer the market check
  uses. As there, the minute is "open" when a bar of the session closed at it:
  `open < minute <= close`. Without a session answer (the calendar could not be read) the
  `MarketOpen` metric is not emitted.
- the market-data provider in use (the ingestor's `market_data_source`: Alpaca, or the backup
  while Alpaca fails or is stale), since when, and whether failover is configured at all.
- minute-pipeline executions (Step Functions `ListExecutions`, one page of up to 100, newest
  first): how many started in `[minute - 1 h, minute + 1 min)` (the wall-clock start dates Step
  Functions records, so a replay of past minutes reads 0), and the outcome of the newest one
  that has finished (a RUNNING one is skipped): FAILED, TIMED_OUT or ABORTED count as failed.
  Without a state machine ARN these are not measured and not emitted.

All data numbers come from ONE query; `freshness` and `health_report` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ops_pipeline.db import Connection, query
from ops_pipeline.errors import ConfigError, TransientError
from ops_pipeline.event_time import ONE_MINUTE
from ops_pipeline.market import TradingSession, market_status

MISSING_AGE_SECONDS = 1_000_000_000.0
HOUR = timedelta(hours=1)
BACKLOG_LOOKBACK = timedelta(days=2)
EXECUTIONS_PAGE = 100
FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
FINISHED_STATUSES = FAILED_STATUSES | {"SUCCEEDED"}
_NOT_RETRYABLE = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "InvalidArn",
        "StateMachineDoesNotExist",
        "ValidationException",
    }
)


# --- the pure core -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSnapshot:
    """What the one query returns: newest timestamps (None when none) and last-hour counts."""

    newest_bar: datetime | None = None
    newest_feature: datetime | None = None
    newest_raw_event: datetime | None = None
    newest_classified_event: datetime | None = None
    newest_recommendation: datetime | None = None
    bars_last_hour: int = 0
    features_last_hour: int = 0
    recommendations_last_hour: int = 0
    executions_last_hour: Mapping[str, int] = field(default_factory=dict)
    unclassified_events: int = 0
    # The market-data provider the ingestor uses (None: it has never written its state, i.e. it
    # has only had Alpaca), since when, and whether a backup was configured at its last run.
    data_source: str | None = None
    data_source_since: datetime | None = None
    failover_enabled: bool = False


@dataclass(frozen=True)
class ExecutionSummary:
    """The minute pipeline's executions as Step Functions lists them."""

    started_last_hour: int
    newest_status: str | None = None
    newest_started: datetime | None = None
    last_finished_status: str | None = None
    last_finished_started: datetime | None = None

    @property
    def last_failed(self) -> bool:
        return self.last_finished_status in FAILED_STATUSES


@dataclass(frozen=True)
class Freshness:
    """Age in seconds at the event minute; `MISSING_AGE_SECONDS` for an empty table."""

    bar_age: float
    feature_age: float
    raw_event_age: float
    classified_event_age: float
    recommendation_age: float
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: float


@dataclass(frozen=True)
class HealthReport:
    minute: datetime
    market_open: bool | None  # None: the session could not be read
    freshness: Freshness
    snapshot: DataSnapshot
    executions: ExecutionSummary | None

    def metrics(self) -> list[Metric]:
        """The CloudWatch metrics the template's alarms read (names are part of the contract)."""
        out = [
            Metric("BarAgeSeconds", "Seconds", self.freshness.bar_age),
            Metric("FeatureAgeSeconds", "Seconds", self.freshness.feature_age),
            Metric("NewsAgeSeconds", "Seconds", self.freshness.raw_event_age),
            Metric("BarsLastHour", "Count", float(self.snapshot.bars_last_hour)),
            Metric(
                "RecommendationsLastHour", "Count", float(self.snapshot.recommendations_last_hour)
            ),
        ]
        if self.market_open is not None:
            out.append(Metric("MarketOpen", "Count", 1.0 if self.market_open else 0.0))
        if self.executions is not None:
            out.append(
                Metric(
                    "MinuteExecutionsLastHour", "Count", float(self.executions.started_last_hour)
                )
            )
            out.append(
                Metric(
                    "LastMinuteExecutionFailed",
                    "Count",
                    1.0 if self.executions.last_failed else 0.0,
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        f, s, e = self.freshness, self.snapshot, self.executions
        summary: dict[str, Any] = {
            "minute": self.minute.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "market_open": self.market_open,
            "bar_age_seconds": f.bar_age,
            "feature_age_seconds": f.feature_age,
            "news_age_seconds": f.raw_event_age,
            "classified_event_age_seconds": f.classified_event_age,
            "recommendation_age_seconds": f.recommendation_age,
            "missing": list(f.missing),
            "bars_last_hour": s.bars_last_hour,
            "features_last_hour": s.features_last_hour,
            "recommendations_last_hour": s.recommendations_last_hour,
            "executions_last_hour": dict(s.executions_last_hour),
            "unclassified_events": s.unclassified_events,
            "market_data": {
                "source": s.data_source or "alpaca-iex",
                "since": s.data_source_since.isoformat() if s.data_source_since else None,
                "failover": "on" if s.failover_enabled else "off",
            },
            "minute_executions": None,
        }
        if e is not None:
            summary["minute_executions"] = {
                "started_last_hour": e.started_last_hour,
                "newest_status": e.newest_status,
                "newest_started": e.newest_started.isoformat() if e.newest_started else None,
                "last_finished_status": e.last_finished_status,
                "last_failed": e.last_failed,
            }
        return summary


def _age(newest: datetime | None, minute: datetime) -> float:
    if newest is None:
        return MISSING_AGE_SECONDS
    return max(0.0, (minute - newest).total_seconds())


def freshness(snapshot: DataSnapshot, minute: datetime) -> Freshness:
    """Ages at `minute`: bars and features from their close (ts + 1 min), the rest from their time."""
    stamps = {
        "bars": snapshot.newest_bar + ONE_MINUTE if snapshot.newest_bar else None,
        "features": snapshot.newest_feature + ONE_MINUTE if snapshot.newest_feature else None,
        "raw_events": snapshot.newest_raw_event,
        "classified_events": snapshot.newest_classified_event,
        "recommendations": snapshot.newest_recommendation,
    }
    return Freshness(
        bar_age=_age(stamps["bars"], minute),
        feature_age=_age(stamps["features"], minute),
        raw_event_age=_age(stamps["raw_events"], minute),
        classified_event_age=_age(stamps["classified_events"], minute),
        recommendation_age=_age(stamps["recommendations"], minute),
        missing=tuple(name for name, stamp in stamps.items() if stamp is None),
    )


def summarise_executions(
    executions: Iterable[Mapping[str, Any]], minute: datetime
) -> ExecutionSummary:
    """Read `ListExecutions` items (`status`, `startDate`) into counts and the last outcome."""
    items = sorted(executions, key=lambda x: x["startDate"], reverse=True)
    since, until = minute - HOUR, minute + ONE_MINUTE
    started = sum(1 for x in items if since <= x["startDate"] < until)
    newest = items[0] if items else None
    finished = next((x for x in items if x["status"] in FINISHED_STATUSES), None)
    return ExecutionSummary(
        started_last_hour=started,
        newest_status=newest["status"] if newest else None,
        newest_started=newest["startDate"] if newest else None,
        last_finished_status=finished["status"] if finished else None,
        last_finished_started=finished["startDate"] if finished else None,
    )


def health_report(
    snapshot: DataSnapshot,
    minute: datetime,
    executions: ExecutionSummary | None = None,
    *,
    session: TradingSession | None,
    session_known: bool = True,
) -> HealthReport:
    """Freshness, market hours and executions at `minute`, ready to emit.

    `session` is the day's session from the market calendar (None: no trading that day);
    `session_known=False` when the calendar could not be read (market open is then unknown).
    """
    is_open = market_status(minute, session).is_open if session_known else None
    return HealthReport(minute, is_open, freshness(snapshot, minute), snapshot, executions)


# --- I/O ---------------------------------------------------------------------------------------

SNAPSHOT = """
WITH universe AS (SELECT unnest(CAST(:tickers AS text[])) AS ticker)
SELECT
    (SELECT max(b.ts) FROM universe u CROSS JOIN LATERAL (
        SELECT t.ts FROM lane_telemetry t WHERE t.ticker = u.ticker AND t.ts < :minute
        ORDER BY t.ts DESC LIMIT 1) b) AS newest_bar,
    (SELECT max(b.ts) FROM universe u CROSS JOIN LATERAL (
        SELECT f.ts FROM lane_features f WHERE f.ticker = u.ticker AND f.ts < :minute
        ORDER BY f.ts DESC LIMIT 1) b) AS newest_feature,
    (SELECT max(fetched_at) FROM inbound_events_raw WHERE fetched_at <= :minute) AS newest_raw_event,
    (SELECT max(event_time) FROM inbound_events_classified WHERE event_time <= :minute)
        AS newest_classified_event,
    (SELECT max(decided_at) FROM dispatch_recommendations WHERE decided_at <= :minute)
        AS newest_recommendation,
    (SELECT count(*) FROM lane_telemetry
     WHERE ticker IN (SELECT ticker FROM universe) AND ts >= :hour_ago AND ts < :minute)
        AS bars_last_hour,
    (SELECT count(*) FROM lane_features
     WHERE ticker IN (SELECT ticker FROM universe) AND ts >= :hour_ago AND ts < :minute)
        AS features_last_hour,
    (SELECT count(*) FROM dispatch_recommendations WHERE decided_at > :hour_ago AND decided_at <= :minute)
        AS recommendations_last_hour,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb) FROM (
        SELECT status, count(*) AS n FROM dispatch_executions
        WHERE decided_at > :hour_ago AND decided_at <= :minute GROUP BY status) s)
        AS executions_last_hour,
    (SELECT count(*) FROM inbound_events_raw r
     WHERE r.fetched_at > :backlog_since AND r.fetched_at <= :minute
       AND NOT EXISTS (SELECT 1 FROM inbound_events_classified c WHERE c.event_id = r.id))
        AS unclassified_events,
    (SELECT source FROM market_data_source) AS data_source,
    (SELECT since FROM market_data_source) AS data_source_since,
    coalesce((SELECT backup_configured FROM market_data_source), false) AS failover_enabled
"""


def read_snapshot(conn: Connection, tickers: Sequence[str], minute: datetime) -> DataSnapshot:
    """Every data number of the healthcheck, in one query."""
    (row,) = query(
        conn,
        SNAPSHOT,
        tickers=list(tickers),
        minute=minute,
        hour_ago=minute - HOUR,
        backlog_since=minute - BACKLOG_LOOKBACK,
    )
    executions = row.pop("executions_last_hour")
    return DataSnapshot(
        **row, executions_last_hour={str(k): int(v) for k, v in (executions or {}).items()}
    )


def read_executions(
    stepfunctions: Any, state_machine_arn: str, minute: datetime
) -> ExecutionSummary:
    """One `ListExecutions` page (newest first, up to 100: more than an hour of minute runs)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        page = stepfunctions.list_executions(
            stateMachineArn=state_machine_arn, maxResults=EXECUTIONS_PAGE
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _NOT_RETRYABLE:
            raise ConfigError(
                f"cannot list the minute pipeline's executions ({code}): {exc}"
            ) from exc
        raise TransientError(f"could not list the minute pipeline's executions: {exc}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"could not list the minute pipeline's executions: {exc}") from exc
    return summarise_executions(page.get("executions", []), minute)
