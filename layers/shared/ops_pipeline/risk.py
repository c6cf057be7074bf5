"""Risk gates: which recommendations become orders, and how large.

Pure: recommendations, positions and limits in, one decision per recommendation out. The gates,
in order (the first that fails names the rejection):

1. kill switch: `halted` sends nothing; `reducing` lets only sells through;
2. the market is open at the event minute;
3. the recommendation is fresh: decided at most `recommendation_ttl_minutes` before the minute;
4. its adjusted confidence is at least `min_confidence`;
5. no other order for the ticker is open (or approved earlier in this run);
6. size: a BUY spends at most `max_notional_per_order`, and the position stays within
   `max_position_notional`, in whole shares; a SELL closes the position; no position, no sell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from ops_pipeline.config import RiskLimits, TradingState


@dataclass(frozen=True)
class PendingRecommendation:
    id: int
    ticker: str
    ts: datetime
    decided_at: datetime
    action: str
    price: Decimal
    confidence: Decimal


@dataclass(frozen=True)
class Decision:
    recommendation: PendingRecommendation
    qty: Decimal
    rejected: str | None = None

    @property
    def approved(self) -> bool:
        return self.rejected is None

    @property
    def side(self) -> str:
        return "buy" if self.recommendation.action == "BUY" else "sell"


def _whole_shares(notional: Decimal, price: Decimal) -> Decimal:
    if notional <= 0 or price <= 0:
        return Decimal(0)
    return (notional / price).to_integral_value(rounding=ROUND_FLOOR)


def _first_failed_gate(
    rec: PendingRecommendation,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    busy: set[str],
) -> str | None:
    if state is TradingState.HALTED:
        return "trading is halted (kill switch)"
    if state is TradingState.REDUCING and rec.action == "BUY":
        return "trading is reducing: only sells go through"
    if not market_open:
        return "market is closed"
    age = int((minute - rec.decided_at).total_seconds() // 60)
    if age > limits.recommendation_ttl_minutes:
        return f"expired: decided {age} min ago, limit {limits.recommendation_ttl_minutes} min"
    if rec.confidence < limits.min_confidence:
        return f"confidence {rec.confidence:.4f} is below the minimum {limits.min_confidence:.4f}"
    if rec.ticker in busy:
        return f"an order for {rec.ticker} is already open"
    return None


def _size(
    rec: PendingRecommendation, held: Decimal, limits: RiskLimits
) -> tuple[Decimal, str | None]:
    if rec.action == "SELL":
        return (held, None) if held > 0 else (Decimal(0), f"no {rec.ticker} position to sell")
    room = limits.max_position_notional - held * rec.price
    qty = _whole_shares(min(limits.max_notional_per_order, room), rec.price)
    if qty < 1:
        return Decimal(0), (
            f"position limit reached: holding {held} {rec.ticker} "
            f"(max notional {limits.max_position_notional}) at {rec.price:.2f}"
        )
    return qty, None


def risk_gates(
    recs: Sequence[PendingRecommendation],
    *,
    minute: datetime,
    market_open: bool,
    state: TradingState,
    limits: RiskLimits,
    positions: Mapping[str, Decimal],
    open_orders: Iterable[str] = (),
) -> list[Decision]:
    """Decide every recommendation, oldest first; approved ones count against the later ones."""
    held = dict(positions)
    busy = set(open_orders)
    decisions = []
    for rec in sorted(recs, key=lambda r: (r.decided_at, r.ts, r.ticker)):
        rejected = _first_failed_gate(rec, minute, market_open, state, limits, busy)
        qty = Decimal(0)
        if rejected is None:
            qty, rejected = _size(rec, held.get(rec.ticker, Decimal(0)), limits)
        if rejected is None:
            busy.add(rec.ticker)
            change = qty if rec.action == "BUY" else -qty
            held[rec.ticker] = held.get(rec.ticker, Decimal(0)) + change
        decisions.append(Decision(rec, qty, rejected))
    return decisions
