"""Signal engine: features and classified news become BUY/SELL recommendations.

The rules, in the order they apply (README, "Signal rules", says the same in prose):

1. Trend cross. The close crosses above its 20-bar average while the 20-bar average is at or above
   the 50-bar one: BUY, base confidence 0.60. The close crosses below while the 20-bar average is
   at or below the 50-bar one: SELL, 0.60. No cross, or no 50-bar average yet: no trend signal.
2. News. Classified headlines about the ticker from the last 60 minutes add up to a net sentiment
   (the sum of each headline's polarity, p(positive) - p(negative)). With |net| >= 0.5 the news
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ops_pipeline import features
from ops_pipeline.db import Connection

TREND_BASE = Decimal("0.60")
NEWS_ONLY_BASE = Decimal("0.55")
NEWS_AGREES = Decimal("0.15")
NEWS_CONTRADICTS = Decimal("-0.20")
NEWS_DIRECTION = Decimal("0.5")
NEWS_ALONE = Decimal("0.8")
NEWS_WINDOW = timedelta(minutes=60)
MAX_BASE = Decimal("0.95")
# A bar may reach us a minute late (IEX bars can arrive ~30 s after the close).
FRESH_BARS = timedelta(minutes=2)


@dataclass(frozen=True)
class VolumeBand:
    multiplier: Decimal
    name: str


KILL = VolumeBand(Decimal("0.0"), "KILL")
WEAK = VolumeBand(Decimal("0.3"), "WEAK")
NORMAL = VolumeBand(Decimal("1.0"), "NORMAL")
SURGE = VolumeBand(Decimal("1.3"), "SURGE")


def volume_band(ratio: Decimal | None) -> VolumeBand:
    """The SPEC's volume rule: <0.5 KILL, <1.2 WEAK, <=3.0 NORMAL, >3.0 SURGE; no ratio is KILL."""
    if ratio is None or ratio < Decimal("0.5"):
        return KILL
    if ratio < Decimal("1.2"):
        return WEAK
    if ratio <= Decimal("3.0"):
        return NORMAL
    return SURGE


def volume_multiplier(ratio: Decimal | None) -> Decimal:
    return volume_band(ratio).multiplier


@dataclass(frozen=True)
class SignalInput:
    """One ticker's newest features, with the bar before for crosses."""

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

    @property
    def net(self) -> Decimal:
        return sum((h.polarity for h in self.headlines), Decimal(0))

    @property
    def direction(self) -> str | None:
        if self.net >= NEWS_DIRECTION:
            return "BUY"
        if self.net <= -NEWS_DIRECTION:
            return "SELL"
        return None

    def not_acted_on(self) -> NewsSummary:
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


def _trend_against(f: SignalInput, action: str) -> bool:
    if f.sma20 is None or f.sma50 is None:
        return False
    return f.sma20 < f.sma50 if action == "BUY" else f.sma20 > f.sma50


def evaluate(f: SignalInput, news: NewsSummary | None = None) -> Recommendation | None:
    """Apply the rules to one ticker's features and news; None when nothing fires or volume kills it."""
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
        return None
    band = volume_band(f.volume_ratio)
    if band is KILL:
        return None
    ratio_text = f"{f.volume_ratio:.4f}"
    parts.append(f"volume ratio {ratio_text} is {band.name}: x{band.multiplier}")
    confidence = (base * band.multiplier).quantize(Decimal("0.0001"))
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
        reason="; ".join(parts) + f" = confidence {confidence:.4f}",
        news_event_ids=tuple(h.event_id for h in news.headlines) if used_news else (),
    )


def kill_reason(f: SignalInput, news: NewsSummary | None = None) -> str | None:
    """Why a signal that fired was dropped by the volume rule (for logs), or None."""
    if (trend_signal(f) or (news and news.direction)) and volume_band(f.volume_ratio) is KILL:
        ratio = "none yet" if f.volume_ratio is None else f"{f.volume_ratio:.4f}"
        return f"{f.ticker} {f.ts:%H:%M}: volume ratio {ratio} is KILL: x0.0"
    return None


RECENT_NEWS = """
SELECT t.ticker, c.event_id, r.title, c.polarity,
       EXISTS (SELECT 1 FROM dispatch_recommendations d
               WHERE d.ticker = t.ticker AND d.decided_at < :minute
                 AND c.event_id = ANY(d.news_event_ids)) AS acted_on
FROM inbound_events_classified c
JOIN inbound_events_raw r ON r.id = c.event_id
CROSS JOIN LATERAL unnest(c.tickers) AS t(ticker)
WHERE t.ticker = ANY(CAST(:tickers AS text[]))
  AND c.event_time > :since AND c.event_time <= :minute
ORDER BY t.ticker, abs(c.polarity) DESC, c.event_id
"""

INSERT_RECOMMENDATIONS = """
INSERT INTO dispatch_recommendations
    (ticker, ts, decided_at, action, rule, price, base_confidence, volume_ratio, volume_multiplier,
     confidence, reason, news_event_ids)
SELECT r.ticker, r.ts, :minute, r.action, r.rule, r.price, r.base_confidence, r.volume_ratio,
       r.volume_multiplier, r.confidence, r.reason,
       CAST(CASE WHEN r.news_ids = '' THEN '{}' ELSE '{' || r.news_ids || '}' END AS bigint[])
FROM unnest(
    CAST(:ticker AS text[]), CAST(:ts AS timestamptz[]), CAST(:action AS text[]),
    CAST(:rule AS text[]), CAST(:price AS numeric[]), CAST(:base_confidence AS numeric[]),
    CAST(:volume_ratio AS numeric[]), CAST(:volume_multiplier AS numeric[]),
    CAST(:confidence AS numeric[]), CAST(:reason AS text[]), CAST(:news_ids AS text[]))
    AS r(ticker, ts, action, rule, price, base_confidence, volume_ratio, volume_multiplier,
         confidence, reason, news_ids)
ON CONFLICT (ticker, ts) DO NOTHING
RETURNING id
"""


def load_inputs(conn: Connection, tickers: Sequence[str], minute: datetime) -> list[SignalInput]:
    fields = SignalInput.__dataclass_fields__
    return [
        SignalInput(**{k: v for k, v in row.items() if k in fields})
        for row in features.latest_features(conn, tickers, minute)
        if row["ts"] >= minute - FRESH_BARS
    ]


def load_news(conn: Connection, tickers: Sequence[str], minute: datetime) -> dict[str, NewsSummary]:
    rows = conn.run(RECENT_NEWS, tickers=list(tickers), since=minute - NEWS_WINDOW, minute=minute)
    grouped: dict[str, list[Headline]] = {}
    for ticker, event_id, title, polarity, acted_on in rows:
        grouped.setdefault(ticker, []).append(
            Headline(event_id, title, Decimal(polarity), acted_on)
        )
    return {ticker: NewsSummary(tuple(items)) for ticker, items in grouped.items()}


def store(conn: Connection, recs: Sequence[Recommendation], minute: datetime) -> int:
    if not recs:
        return 0
    rows = conn.run(
        INSERT_RECOMMENDATIONS,
        minute=minute,
        ticker=[r.ticker for r in recs],
        ts=[r.ts for r in recs],
        action=[r.action for r in recs],
        rule=[r.rule for r in recs],
        price=[r.price for r in recs],
        base_confidence=[r.base_confidence for r in recs],
        volume_ratio=[r.volume_ratio for r in recs],
        volume_multiplier=[r.volume_multiplier for r in recs],
        confidence=[r.confidence for r in recs],
        reason=[r.reason for r in recs],
        news_ids=[",".join(str(i) for i in r.news_event_ids) for r in recs],
    )
    return len(rows)


def run(conn: Connection, tickers: Sequence[str], minute: datetime) -> dict[str, Any]:
    """Evaluate every ticker's newest bar at `minute`, in three round trips whatever the ticker count."""
    inputs = load_inputs(conn, tickers, minute)
    news = load_news(conn, tickers, minute)
    recs, killed = [], []
    for f in inputs:
        rec = evaluate(f, news.get(f.ticker))
        if rec:
            recs.append(rec)
        elif reason := kill_reason(f, news.get(f.ticker)):
            killed.append(reason)
    created = store(conn, recs, minute)
    bands: dict[str, int] = {}
    for rec in recs:
        name = volume_band(rec.volume_ratio).name
        bands[name] = bands.get(name, 0) + 1
    return {"evaluated": len(inputs), "created": created, "by_band": bands, "killed": killed}
