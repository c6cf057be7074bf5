"""Signal engine: features and classified news become BUY/SELL recommendations.

The rules, in the order they apply (README, "Signal rules", says the same in prose):

1. Trend cross. The close crosses above its 20-bar average while the 20-bar average is at or above
   the 50-bar one: BUY, base confidence 0.60. The close crosses below while the 20-bar average is
   at or below the 50-bar one: SELL, 0.60. No cross, or no 50-bar average yet: no trend signal.
2. News. Classified headlines about the ticker that were fetched before the decision minute (a
   live run sees a headline only once the RSS ingest has fetched it; one fetched at minute M counts
   from M+1, since the two pipelines both run at M and which finishes first is a race) and
   published (else fetched) within the 60 minutes before it add up to a net sentiment (the sum of each headline's
   polarity, p(positive) - p(negative)). With |net| >= 0.5 the news
   has a direction:
   - it agrees with the trend signal: base + 0.15;
   - it contradicts it: base - 0.20;
   - there is no trend signal and the headlines no recommendation has acted on yet add up to
     |net| >= 0.8: the news alone makes one, base 0.55, unless the 20-bar average is on the other
     side of the 50-bar one (news against the trend is ignored). A headline makes at most one
     recommendation this way.
3. Volume, last: the base confidence is multiplied by the SPEC's volume multiplier. A multiplier
   of 0 (ratio below 0.5, or no ratio yet) kills the signal: no recommendation is written.

Each recommendation's `reason` says which rule fired, the news that counted, the volume ratio and
the multiplier applied.

Every bar with features is evaluated exactly once, fired or not, into `signal_evaluations`. A run's
window `since`..`minute` decides each bar at its close (`ts + 1 minute`), in time order, with the
news and earlier recommendations of that minute: the same rows as one run per minute. A bar that
closed before the window (late, or its run was lost) is decided at the run's own minute, where the
dispatcher's expiry gate refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from ops_pipeline.db import Connection, json_records, text_array
from ops_pipeline.event_time import ONE_MINUTE

TREND_BASE = Decimal("0.60")
NEWS_ONLY_BASE = Decimal("0.55")
NEWS_AGREES = Decimal("0.15")
NEWS_CONTRADICTS = Decimal("-0.20")
NEWS_DIRECTION = Decimal("0.5")
NEWS_ALONE = Decimal("0.8")
NEWS_WINDOW = timedelta(minutes=60)
MAX_BASE = Decimal("0.95")
# How far before its window a run looks for bars never evaluated (late bars, skipped runs): as far
# as the feature computer looks for bars without features.
LATE_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class VolumeBand:
    multiplier: Decimal
    name: str


KILL = VolumeBand(Decimal("0.0"), "KILL")
WEAK = VolumeBand(Decimal("0.3"), "WEAK")
NORMAL = VolumeBand(Decimal("1.0"), "NORMAL")
SURGE = VolumeBand(Decimal("1.3"), "SURGE")


@dataclass(frozen=True)
class VolumeRule:
    """The volume rule's thresholds and multipliers: the SPEC's by default; a backtest sweep's
    setting (`ops_pipeline.sweep`) may move them. A ratio below `weak_from` is KILL, below
    `normal_from` WEAK, up to and including `surge_above` NORMAL, above it SURGE."""

    weak_from: Decimal = Decimal("0.5")
    normal_from: Decimal = Decimal("1.2")
    surge_above: Decimal = Decimal("3.0")
    weak: VolumeBand = WEAK
    surge: VolumeBand = SURGE


SPEC_VOLUME_RULE = VolumeRule()


def volume_band(ratio: Decimal | None, rule: VolumeRule = SPEC_VOLUME_RULE) -> VolumeBand:
    """The SPEC's volume rule: <0.5 KILL, <1.2 WEAK, <=3.0 NORMAL, >3.0 SURGE; no ratio is KILL
    (`rule` moves the thresholds and the WEAK and SURGE multipliers)."""
    if ratio is None or ratio < rule.weak_from:
        return KILL
    if ratio < rule.normal_from:
        return rule.weak
    if ratio <= rule.surge_above:
        return NORMAL
    return rule.surge


def volume_multiplier(ratio: Decimal | None, rule: VolumeRule = SPEC_VOLUME_RULE) -> Decimal:
    return volume_band(ratio, rule).multiplier


@dataclass(frozen=True)
class SignalInput:
    """One bar's features, with the bar before it for crosses."""

    ticker: str
    ts: datetime
    close: Decimal
    sma20: Decimal | None
    sma50: Decimal | None
    prev_close: Decimal | None
    prev_sma20: Decimal | None
    volume_ratio: Decimal | None


@dataclass(frozen=True)
class Headline:
    event_id: int
    title: str
    polarity: Decimal
    acted_on: bool = False  # an earlier recommendation for this ticker already counted it


@dataclass(frozen=True)
class NewsSummary:
    headlines: tuple[Headline, ...] = ()

    @cached_property
    def net(self) -> Decimal:  # asked several times per bar, thousands of bars a minute
        return sum((h.polarity for h in self.headlines), Decimal(0))

    @property
    def direction(self) -> str | None:
        if self.net >= NEWS_DIRECTION:
            return "BUY"
        if self.net <= -NEWS_DIRECTION:
            return "SELL"
        return None

    def not_acted_on(self) -> NewsSummary:
        if not any(h.acted_on for h in self.headlines):
            return self
        return NewsSummary(tuple(h for h in self.headlines if not h.acted_on))

    def describe(self) -> str:
        shown = "; ".join(f'"{h.title[:80]}" ({h.polarity:+.2f})' for h in self.headlines[:3])
        more = f" and {len(self.headlines) - 3} more" if len(self.headlines) > 3 else ""
        return f"news net {self.net:+.2f} from {len(self.headlines)} headline(s): {shown}{more}"


@dataclass(frozen=True)
class Recommendation:
    ticker: str
    ts: datetime
    action: str
    rule: str
    price: Decimal
    base_confidence: Decimal
    volume_ratio: Decimal | None
    volume_multiplier: Decimal
    confidence: Decimal
    reason: str
    news_event_ids: tuple[int, ...] = field(default=())
    decided_at: datetime | None = None  # the decision minute, once the engine has placed it


def trend_signal(f: SignalInput) -> str | None:
    """BUY or SELL on a cross of the close over its 20-bar average, in the 50-bar trend's direction."""
    sma20, sma50, prev_close, prev_sma20 = f.sma20, f.sma50, f.prev_close, f.prev_sma20
    if sma20 is None or sma50 is None or prev_close is None or prev_sma20 is None:
        return None
    if prev_close <= prev_sma20 and f.close > sma20 and sma20 >= sma50:
        return "BUY"
    if prev_close >= prev_sma20 and f.close < sma20 and sma20 <= sma50:
        return "SELL"
    return None


def blocked_cross(f: SignalInput) -> str | None:
    """The close crossed its 20-bar average but the sma20/sma50 trend filter blocked the signal:
    said in words (None when there was no cross, or it fired)."""
    sma20, sma50, prev_close, prev_sma20 = f.sma20, f.sma50, f.prev_close, f.prev_sma20
    if sma20 is None or sma50 is None or prev_close is None or prev_sma20 is None:
        return None
    if prev_close <= prev_sma20 and f.close > sma20 and sma20 < sma50:
        side, action, needs = "above", "BUY", f"sma20 {sma20:.2f} < sma50 {sma50:.2f}"
    elif prev_close >= prev_sma20 and f.close < sma20 and sma20 > sma50:
        side, action, needs = "below", "SELL", f"sma20 {sma20:.2f} > sma50 {sma50:.2f}"
    else:
        return None
    return (
        f"close {f.close:.2f} crossed {side} sma20 {sma20:.2f} (previous bar {prev_close:.2f} vs"
        f" {prev_sma20:.2f}), but the trend filter blocked a {action}: {needs}"
    )


def _trend_against(f: SignalInput, action: str) -> bool:
    if f.sma20 is None or f.sma50 is None:
        return False
    return f.sma20 < f.sma50 if action == "BUY" else f.sma20 > f.sma50


@dataclass(frozen=True)
class Evaluation:
    """What the rules made of one bar at its decision minute, fired or not."""

    input: SignalInput
    decided_at: datetime
    trend: str | None
    news: NewsSummary
    band: VolumeBand
    recommendation: Recommendation | None
    reason: str


def _no_signal_reason(f: SignalInput, news: NewsSummary) -> str:
    if f.sma20 is None or f.sma50 is None or f.prev_close is None or f.prev_sma20 is None:
        missing = [
            name
            for name, value in (
                ("sma20", f.sma20),
                ("sma50", f.sma50),
                ("previous close", f.prev_close),
                ("previous sma20", f.prev_sma20),
            )
            if value is None
        ]
        trend = f"no trend rule yet ({', '.join(missing)} missing)"
    elif blocked := blocked_cross(f):
        trend = blocked
    else:
        trend = (
            f"no trend cross: close {f.close:.2f} vs sma20 {f.sma20:.2f}"
            f" (previous bar {f.prev_close:.2f} vs {f.prev_sma20:.2f}), sma50 {f.sma50:.2f}"
        )
    fresh = news.not_acted_on()
    if not news.headlines:
        said = "no news"
    elif fresh.direction and abs(fresh.net) >= NEWS_ALONE and _trend_against(f, fresh.direction):
        said = f"{fresh.describe()}: against the sma20/sma50 trend, ignored"
    elif not fresh.headlines:
        said = f"{news.describe()}: already acted on by an earlier recommendation"
    else:
        said = (
            f"{news.describe()}: {fresh.net:+.2f} from headlines not acted on yet,"
            f" short of +/-{NEWS_ALONE} to act alone"
        )
    return f"{trend}; {said}: no signal"


def assess(
    f: SignalInput, news: NewsSummary | None = None, volume: VolumeRule = SPEC_VOLUME_RULE
) -> tuple[Recommendation | None, str]:
    """Apply the rules to one bar's features and news: the recommendation, if any, and why
    (`volume`: the volume rule's thresholds, the SPEC's unless a sweep's setting moves them)."""
    news = news or NewsSummary()
    action, parts = trend_signal(f), []
    rule, base, used_news = "", Decimal(0), False
    if action:
        rule, base = "trend_cross", TREND_BASE
        side = "above" if action == "BUY" else "below"
        parts.append(
            f"close {f.close:.2f} crossed {side} sma20 {f.sma20:.2f} with sma20 "
            f"{'>=' if action == 'BUY' else '<='} sma50 {f.sma50:.2f}: {action} base {base:.2f}"
        )
        if news.direction == action:
            base, used_news = min(MAX_BASE, base + NEWS_AGREES), True
            parts.append(f"{news.describe()} agrees: +{NEWS_AGREES:.2f}")
        elif news.direction is not None:
            base, used_news = base + NEWS_CONTRADICTS, True
            parts.append(f"{news.describe()} contradicts: {NEWS_CONTRADICTS:.2f}")
    elif (
        (fresh := news.not_acted_on()).direction
        and abs(fresh.net) >= NEWS_ALONE
        and not _trend_against(f, fresh.direction)
    ):
        news, action, rule, base, used_news = fresh, fresh.direction, "news", NEWS_ONLY_BASE, True
        parts.append(f"{news.describe()}: {action} base {base:.2f}")
    if not action:
        return None, _no_signal_reason(f, news)
    band = volume_band(f.volume_ratio, volume)
    ratio_text = "none yet" if f.volume_ratio is None else f"{f.volume_ratio:.4f}"
    parts.append(f"volume ratio {ratio_text} is {band.name}: x{band.multiplier}")
    if band is KILL:
        return None, "; ".join(parts) + ": killed"
    confidence = (base * band.multiplier).quantize(Decimal("0.0001"))
    reason = "; ".join(parts) + f" = confidence {confidence:.4f}"
    return Recommendation(
        ticker=f.ticker,
        ts=f.ts,
        action=action,
        rule=rule,
        price=f.close,
        base_confidence=base,
        volume_ratio=f.volume_ratio,
        volume_multiplier=band.multiplier,
        confidence=confidence,
        reason=reason,
        news_event_ids=tuple(h.event_id for h in news.headlines) if used_news else (),
    ), reason


def evaluate(f: SignalInput, news: NewsSummary | None = None) -> Recommendation | None:
    """Apply the rules to one ticker's features and news; None when nothing fires or volume kills it."""
    return assess(f, news)[0]


def kill_reason(
    f: SignalInput, news: NewsSummary | None = None, volume: VolumeRule = SPEC_VOLUME_RULE
) -> str | None:
    """Why a signal that fired was dropped by the volume rule (for logs), or None."""
    if (trend_signal(f) or (news and news.direction)) and volume_band(
        f.volume_ratio, volume
    ) is KILL:
        ratio = "none yet" if f.volume_ratio is None else f"{f.volume_ratio:.4f}"
        return f"{f.ticker} {f.ts:%H:%M}: volume ratio {ratio} is KILL: x0.0"
    return None


def decision_minute(bar_ts: datetime, since: datetime, minute: datetime) -> datetime:
    """When a bar is decided: at its close when that falls in the run's window, else (a late bar)
    at the run's own minute, where the dispatcher's expiry gate refuses it."""
    close = bar_ts + ONE_MINUTE
    return close if since <= close <= minute else minute


PENDING_BARS = """
SELECT CAST(coalesce(json_agg(json_build_array(
           f.ticker, f.ts, f.close, f.sma20, f.sma50, f.volume_ratio, p.close, p.sma20)),
       '[]') AS text)
FROM signal_evaluations_due d
JOIN lane_features f ON f.ticker = d.ticker AND f.ts = d.ts
LEFT JOIN LATERAL (
    SELECT g.close, g.sma20 FROM lane_features g
    WHERE g.ticker = f.ticker AND g.ts < f.ts
    ORDER BY g.ts DESC LIMIT 1
) p ON true
WHERE d.ticker = ANY(CAST(:tickers AS text[])) AND d.ts >= :since AND d.ts < :minute
  AND NOT EXISTS (SELECT 1 FROM signal_evaluations e WHERE e.ticker = d.ticker AND e.ts = d.ts)
"""
# The features not evaluated yet are listed in signal_evaluations_due (migration 010: new feature
# rows, and those whose evaluation was deleted), so this reads the due bars, not a day of features
# against their evaluations. Each with the bar before it (close, sma20). They come back as one
# JSON document (numbers as PostgreSQL prints them, read back as exact Decimals): one row to decode
# instead of thousands of eight-column rows, which cost pg8000 more than the statement at
# thousands of tickers. No ORDER BY: `evaluate_window` puts the bars in decision order.

VISIBLE_NEWS = """
SELECT t.ticker, c.event_id, r.title, c.polarity, c.event_time, r.fetched_at,
       (SELECT min(d.decided_at) FROM dispatch_recommendations d
        WHERE d.ticker = t.ticker AND c.event_id = ANY(d.news_event_ids)) AS first_acted
FROM inbound_events_classified c
JOIN inbound_events_raw r ON r.id = c.event_id
CROSS JOIN LATERAL unnest(c.tickers) AS t(ticker)
WHERE t.ticker = ANY(CAST(:tickers AS text[]))
  AND r.fetched_at < :minute AND c.event_time > :since
ORDER BY t.ticker, abs(c.polarity) DESC, c.event_id
"""

INSERT_RECOMMENDATIONS = """
INSERT INTO dispatch_recommendations
    (ticker, ts, decided_at, action, rule, price, base_confidence, volume_ratio, volume_multiplier,
     confidence, reason, news_event_ids)
SELECT r.ticker, r.ts, r.decided_at, r.action, r.rule, r.price, r.base_confidence, r.volume_ratio,
       r.volume_multiplier, r.confidence, r.reason, r.news_event_ids
FROM json_to_recordset(CAST(:rows AS json))
    AS r(ticker text, ts timestamptz, decided_at timestamptz, action text, rule text,
         price numeric, base_confidence numeric, volume_ratio numeric, volume_multiplier numeric,
         confidence numeric, reason text, news_event_ids bigint[])
ON CONFLICT (ticker, ts) DO NOTHING
RETURNING id
"""

INSERT_EVALUATIONS = """
WITH e AS MATERIALIZED (
    SELECT * FROM json_to_recordset(CAST(:rows AS json))
        AS e(ticker text, ts timestamptz, decided_at timestamptz, close numeric, sma20 numeric,
             sma50 numeric, prev_close numeric, prev_sma20 numeric, volume_ratio numeric,
             trend text, news_net numeric, news_event_ids bigint[], band text,
             volume_multiplier numeric, action text, rule text, confidence numeric, reason text)
),
stored AS (
    INSERT INTO signal_evaluations
        (ticker, ts, decided_at, close, sma20, sma50, prev_close, prev_sma20, volume_ratio, trend,
         news_net, news_event_ids, band, volume_multiplier, action, rule, confidence, reason)
    SELECT e.ticker, e.ts, e.decided_at, e.close, e.sma20, e.sma50, e.prev_close, e.prev_sma20,
           e.volume_ratio, e.trend, e.news_net, e.news_event_ids, e.band, e.volume_multiplier,
           e.action, e.rule, e.confidence, e.reason
    FROM e
    ON CONFLICT (ticker, ts) DO NOTHING
    RETURNING 1
),
cleared AS (
    -- These bars are evaluated now (or were already): no longer due.
    DELETE FROM signal_evaluations_due d USING e WHERE d.ticker = e.ticker AND d.ts = e.ts
)
SELECT count(*) FROM stored
"""


@dataclass(frozen=True)
class VisibleHeadline:
    ticker: str
    event_id: int
    title: str
    polarity: Decimal
    event_time: datetime  # published, else fetched
    fetched_at: datetime  # the RSS ingest's minute: nothing sees the headline before it
    first_acted: datetime | None  # the earliest recommendation that counted it, if any


def load_pending(
    conn: Connection, tickers: Sequence[str], since: datetime, minute: datetime
) -> list[SignalInput]:
    """Every bar closed by `minute` (within a day before the window) that has features and no
    evaluation yet, with the bar before it for crosses, in no order (`evaluate_window` orders)."""
    ((document,),) = conn.run(
        PENDING_BARS,
        tickers=text_array(tickers),
        since=since - LATE_LOOKBACK,
        minute=minute,
    )
    minutes: dict[str, datetime] = {}  # a minute's bars share their timestamp: parsed once
    inputs = []
    for ticker, ts, close, sma20, sma50, volume_ratio, prev_close, prev_sma20 in json.loads(
        document, parse_float=Decimal, parse_int=Decimal
    ):
        at = minutes.get(ts)
        if at is None:
            at = minutes[ts] = datetime.fromisoformat(ts).astimezone(UTC)
        inputs.append(
            SignalInput(ticker, at, close, sma20, sma50, prev_close, prev_sma20, volume_ratio)
        )
    return inputs


def load_news(
    conn: Connection, tickers: Sequence[str], since: datetime, minute: datetime
) -> list[VisibleHeadline]:
    """The classified headlines any decision minute of the window can see, strongest first."""
    rows = conn.run(
        VISIBLE_NEWS, tickers=text_array(tickers), since=since - NEWS_WINDOW, minute=minute
    )
    return [
        VisibleHeadline(t, event_id, title, Decimal(polarity), event_time, fetched, acted)
        for t, event_id, title, polarity, event_time, fetched, acted in rows
    ]


def news_at(
    headlines: Sequence[VisibleHeadline],
    decided_at: datetime,
    acted: dict[int, datetime],
) -> NewsSummary:
    """One ticker's news as a run at `decided_at` would have seen it: fetched before, published
    (else fetched) within the last 60 minutes; `acted` holds when a recommendation first used each."""
    return NewsSummary(
        tuple(
            Headline(
                h.event_id,
                h.title,
                h.polarity,
                acted_on=h.event_id in acted and acted[h.event_id] < decided_at,
            )
            for h in headlines
            if h.fetched_at < decided_at and h.event_time > decided_at - NEWS_WINDOW
        )
    )


def evaluate_window(
    inputs: Sequence[SignalInput],
    headlines: Sequence[VisibleHeadline],
    since: datetime,
    minute: datetime,
    volume: VolumeRule = SPEC_VOLUME_RULE,
) -> list[Evaluation]:
    """Evaluate the bars in decision order, each with the news and the earlier recommendations of
    its decision minute, as runs of their own would have."""
    by_ticker: dict[str, list[VisibleHeadline]] = {}
    acted: dict[str, dict[int, datetime]] = {}
    for h in headlines:
        by_ticker.setdefault(h.ticker, []).append(h)
        if h.first_acted is not None:
            acted.setdefault(h.ticker, {})[h.event_id] = h.first_acted
    timed = sorted(
        ((decision_minute(f.ts, since, minute), f) for f in inputs),
        key=lambda pair: (pair[0], pair[1].ts, pair[1].ticker),
    )
    out = []
    for decided_at, f in timed:
        used = acted.setdefault(f.ticker, {})
        news = news_at(by_ticker.get(f.ticker, ()), decided_at, used)
        rec, reason = assess(f, news, volume)
        if rec is not None:
            rec = replace(rec, decided_at=decided_at)
            for event_id in rec.news_event_ids:
                used.setdefault(event_id, decided_at)
        band = volume_band(f.volume_ratio, volume)
        out.append(Evaluation(f, decided_at, trend_signal(f), news, band, rec, reason))
    return out


def store(conn: Connection, recs: Sequence[Recommendation], minute: datetime) -> int:
    """Write recommendations (each at its own decision minute, else `minute`), once per bar."""
    if not recs:
        return 0
    rows = [
        {
            "ticker": r.ticker,
            "ts": r.ts,
            "decided_at": r.decided_at or minute,
            "action": r.action,
            "rule": r.rule,
            "price": r.price,
            "base_confidence": r.base_confidence,
            "volume_ratio": r.volume_ratio,
            "volume_multiplier": r.volume_multiplier,
            "confidence": r.confidence,
            "reason": r.reason,
            "news_event_ids": list(r.news_event_ids),
        }
        for r in recs
    ]
    return len(conn.run(INSERT_RECOMMENDATIONS, rows=json_records(rows)))


def store_evaluations(conn: Connection, evaluations: Sequence[Evaluation]) -> int:
    """Every evaluation in one statement, its rows sent as one JSON document (thousands of rows
    in a catch-up window: encoding them as 18 typed arrays cost more than the insert).

    Values go as the text PostgreSQL reads back exactly; a minute's evaluations share their bar
    and decision minutes, so each distinct timestamp is written once."""
    if not evaluations:
        return 0
    minutes: dict[datetime, str] = {}

    def minute_text(value: datetime) -> str:
        text = minutes.get(value)
        if text is None:
            text = minutes[value] = value.isoformat()
        return text

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    rows = []
    for e in evaluations:
        f, rec = e.input, e.recommendation
        rows.append(
            {
                "ticker": f.ticker,
                "ts": minute_text(f.ts),
                "decided_at": minute_text(e.decided_at),
                "close": str(f.close),
                "sma20": text(f.sma20),
                "sma50": text(f.sma50),
                "prev_close": text(f.prev_close),
                "prev_sma20": text(f.prev_sma20),
                "volume_ratio": text(f.volume_ratio),
                "trend": e.trend,
                "news_net": str(e.news.net),
                "news_event_ids": [h.event_id for h in e.news.headlines],
                "band": e.band.name,
                "volume_multiplier": str(e.band.multiplier),
                "action": rec.action if rec else None,
                "rule": rec.rule if rec else None,
                "confidence": str(rec.confidence) if rec else None,
                "reason": e.reason,
            }
        )
    ((stored,),) = conn.run(INSERT_EVALUATIONS, rows=json_records(rows))
    return int(stored)


def run(
    conn: Connection,
    tickers: Sequence[str],
    minute: datetime,
    since: datetime | None = None,
    sell_only: Collection[str] = (),
    volume: VolumeRule = SPEC_VOLUME_RULE,
) -> dict[str, Any]:
    """Evaluate every bar not evaluated yet, each at its decision minute in the window
    `since`..`minute` (default: the run's own minute), in four round trips whatever the ticker
    count or the window's length. `sell_only`: tickers held but no longer listed, whose BUY
    signals are not recommended; `volume`: the volume rule (a sweep's setting's, else the SPEC's)."""
    since = minute if since is None else since
    inputs = load_pending(conn, tickers, since, minute)
    headlines = load_news(conn, tickers, since, minute) if inputs else []
    evaluations = evaluate_window(inputs, headlines, since, minute, volume)
    recs = [
        e.recommendation
        for e in evaluations
        if e.recommendation is not None
        and not (e.recommendation.action == "BUY" and e.recommendation.ticker in sell_only)
    ]
    killed = [
        reason
        for e in evaluations
        if e.recommendation is None and (reason := kill_reason(e.input, e.news, volume))
    ]
    created = store(conn, recs, minute)
    store_evaluations(conn, evaluations)
    bands: dict[str, int] = {}
    for rec in recs:
        name = volume_band(rec.volume_ratio, volume).name
        bands[name] = bands.get(name, 0) + 1
    late = sum(1 for e in evaluations if e.decided_at != e.input.ts + ONE_MINUTE)
    return {
        "evaluated": len(evaluations),
        "late": late,
        "created": created,
        "by_band": bands,
        "killed": killed,
    }
