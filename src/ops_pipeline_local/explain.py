"""`ops-pipeline explain TICKER --at TIME`: why a bar's signal fired or did not, and what came of it.

Everything is read back from the database as the pipeline stored it: the bar, its features, the
signal engine's evaluation (`signal_evaluations`: one per ticker and bar, fired or not), the
headlines it saw, the recommendation, and the dispatcher's execution with each risk gate's verdict
(`gate_verdicts`, where the database has that column).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ops_pipeline.db import Connection, query
from ops_pipeline.event_time import iso_minute
from ops_pipeline.market import NEW_YORK
from ops_pipeline.signals import SPEC_VOLUME_RULE, SignalInput, blocked_cross, volume_band
from ops_pipeline.sweep import Setting

BAR = "SELECT open, high, low, close, volume FROM lane_telemetry WHERE ticker = :t AND ts = :ts"
FEATURES = """
SELECT close, sma20, sma50, volume_current, volume_avg_20, volume_ratio, volume_surge,
       bars_in_window
FROM lane_features WHERE ticker = :t AND ts = :ts
"""
EVALUATION = "SELECT * FROM signal_evaluations WHERE ticker = :t AND ts = :ts"
HEADLINES = """
SELECT r.id, r.title, r.feed_name, r.published_at, r.fetched_at, c.label, c.polarity
FROM inbound_events_raw r
JOIN inbound_events_classified c ON c.event_id = r.id
WHERE r.id = ANY(CAST(:ids AS bigint[]))
ORDER BY abs(c.polarity) DESC, r.id
"""
RECOMMENDATION = "SELECT * FROM dispatch_recommendations WHERE ticker = :t AND ts = :ts"
# to_jsonb: every column the execution has, `gate_verdicts` included once its migration is in.
EXECUTION = "SELECT to_jsonb(e) AS row FROM dispatch_executions e WHERE recommendation_id = :r"


@dataclass
class Explanation:
    ticker: str
    ts: datetime
    bar: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    headlines: list[dict[str, Any]] = field(default_factory=list)
    recommendation: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None

    @property
    def found(self) -> bool:
        return self.bar is not None or self.features is not None


def _one(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return rows[0] if rows else None


def gather(conn: Connection, ticker: str, ts: datetime) -> Explanation:
    """Read everything stored about `ticker`'s bar that started at `ts`."""
    ticker = ticker.upper()
    found = Explanation(ticker, ts)
    found.bar = _one(query(conn, BAR, t=ticker, ts=ts))
    found.features = _one(query(conn, FEATURES, t=ticker, ts=ts))
    found.evaluation = _one(query(conn, EVALUATION, t=ticker, ts=ts))
    found.recommendation = _one(query(conn, RECOMMENDATION, t=ticker, ts=ts))
    ids = set(found.evaluation["news_event_ids"] if found.evaluation else [])
    ids |= set(found.recommendation["news_event_ids"] if found.recommendation else [])
    if ids:
        found.headlines = query(conn, HEADLINES, ids=sorted(ids))
    if found.recommendation:
        row = _one(query(conn, EXECUTION, r=found.recommendation["id"]))
        if row:
            value = row["row"]
            found.execution = json.loads(value) if isinstance(value, str) else value
    return found


def _num(value: Any, places: int) -> str:
    return "-" if value is None else f"{Decimal(str(value)):.{places}f}"


def _when(value: Any) -> str:
    if value is None:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return f"{iso_minute(moment)} ({moment.astimezone(NEW_YORK):%H:%M} New York)"


def _verdicts(verdicts: Any) -> list[str]:
    """Each gate's verdict, whatever shape the dispatcher stores: a list of objects or a mapping."""
    if isinstance(verdicts, str):
        verdicts = json.loads(verdicts)
    lines = []
    if isinstance(verdicts, dict):
        verdicts = [
            {"gate": k, **(v if isinstance(v, dict) else {"verdict": v})}
            for k, v in verdicts.items()
        ]
    for item in verdicts or []:
        if not isinstance(item, dict):
            lines.append(f"    {item}")
            continue
        name = item.get("gate") or item.get("name") or "?"
        rest = ", ".join(f"{k} {v}" for k, v in item.items() if k not in ("gate", "name"))
        lines.append(f"    {name}: {rest}")
    return lines


def _blocked_cross(ticker: str, v: dict[str, Any]) -> str | None:
    """The signal engine's own words when the sma20/sma50 filter blocked a real cross."""

    def dec(name: str) -> Decimal | None:
        return None if v.get(name) is None else Decimal(str(v[name]))

    close = dec("close")
    if close is None:
        return None
    return blocked_cross(
        SignalInput(
            ticker,
            v["ts"],
            close,
            dec("sma20"),
            dec("sma50"),
            dec("prev_close"),
            dec("prev_sma20"),
            dec("volume_ratio"),
        )
    )


def render(e: Explanation, setting: Setting | None = None) -> str:
    """The explanation as text, one topic per block; with a sweep's `setting`, its rows (read
    with `sweep.read_setting`) under its volume rule."""
    out = [f"{e.ticker} bar {_when(e.ts)}"]
    if setting is not None:
        out.append(f"  sweep setting {setting.describe()}")
    if not e.found:
        out.append("  no bar and no features stored for this ticker and minute")
        return "\n".join(out) + "\n"
    if e.bar:
        b = e.bar
        out.append(
            f"  bar       open {_num(b['open'], 2)}  high {_num(b['high'], 2)}"
            f"  low {_num(b['low'], 2)}  close {_num(b['close'], 4)}  volume {b['volume']}"
        )
    f = e.features
    if f is None:
        out.append("features: none computed (extended hours, or the feature computer has not run)")
    else:
        out.append("features")
        out.append(
            f"  close {_num(f['close'], 4)}  sma20 {_num(f['sma20'], 4)}  sma50 {_num(f['sma50'], 4)}"
            f"  ({f['bars_in_window']} bars in the 50-bar window)"
        )
        band = volume_band(f["volume_ratio"], setting.volume if setting else SPEC_VOLUME_RULE)
        out.append(
            f"  volume {f['volume_current']}, 20-bar average {_num(f['volume_avg_20'], 2)},"
            f" volume ratio {_num(f['volume_ratio'], 4)}: {band.name} x{band.multiplier}"
            + (" (surge)" if f["volume_surge"] else "")
        )
    v = e.evaluation
    if v is None:
        out.append("signal: not evaluated (no evaluation stored for this bar)")
    else:
        out.append(f"signal evaluated at {_when(v['decided_at'])}")
        if v["trend"]:
            out.append(
                f"  trend rule: FIRED {v['trend']}: close {_num(v['close'], 4)} crossed"
                f" {'above' if v['trend'] == 'BUY' else 'below'} sma20 {_num(v['sma20'], 4)}"
                f" (previous bar {_num(v['prev_close'], 4)} vs {_num(v['prev_sma20'], 4)}),"
                f" sma50 {_num(v['sma50'], 4)}"
            )
        elif blocked := _blocked_cross(e.ticker, v):
            out.append(f"  trend rule: did not fire: {blocked}")
        else:
            out.append(
                f"  trend rule: did not fire: no cross: close {_num(v['close'], 4)} vs sma20"
                f" {_num(v['sma20'], 4)}, previous bar {_num(v['prev_close'], 4)} vs"
                f" {_num(v['prev_sma20'], 4)}, sma50 {_num(v['sma50'], 4)}"
            )
        seen = set(v["news_event_ids"])
        out.append(f"  news: net {Decimal(str(v['news_net'])):+.4f} from {len(seen)} headline(s)")
        for h in e.headlines:
            if h["id"] in seen:
                out.append(
                    f"    #{h['id']} {Decimal(str(h['polarity'])):+.4f} {h['label']}"
                    f' "{h["title"][:100]}" ({h["feed_name"]}, published'
                    f" {_when(h['published_at'])}, fetched {_when(h['fetched_at'])})"
                )
        out.append(
            f"  volume ratio {_num(v['volume_ratio'], 4)} is {v['band']}:"
            f" x{_num(v['volume_multiplier'], 1)}"
        )
        if v["action"]:
            out.append(
                f"  outcome: {v['action']} by rule {v['rule']},"
                f" confidence {_num(v['confidence'], 4)}"
            )
        else:
            out.append("  outcome: no recommendation")
        out.append(f"  reason: {v['reason']}")
    r = e.recommendation
    if r is None:
        out.append("recommendation: none")
    else:
        out.append(
            f"recommendation #{r['id']}: {r['action']} at {_num(r['price'], 4)},"
            f" confidence {_num(r['confidence'], 4)}, decided {_when(r['decided_at'])}"
        )
        if v is None:
            out.append(f"  reason: {r['reason']}")
        x = e.execution
        if x is None:
            out.append("execution: none yet (the dispatcher has not decided it)")
        else:
            verdicts = x.get("gate_verdicts")
            out.append("risk gates")
            if verdicts is None:
                out.append("    verdicts not recorded in this database; see status below")
            else:
                out.extend(_verdicts(verdicts))
            out.append(
                f"execution: {x['status']} {x['side']} {_num(x['qty'], 0)} {e.ticker}"
                f" at {_num(x['price'], 4)} ({x['mode']}), decided {_when(x['decided_at'])}"
            )
            out.append(f"  status {x['status']}, reject_reason {x.get('reject_reason') or '-'}")
            if x.get("broker_order_id"):
                out.append(
                    f"  broker order {x['broker_order_id']}, client order {x['client_order_id']}"
                )
    return "\n".join(out) + "\n"
