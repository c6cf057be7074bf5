"""`ops-pipeline report`: what a run or replay did, as one HTML page with PNG charts beside it.

Reads the database only (bars, features, recommendations, fills and refusals, simulated or paper)
and writes `DIR/index.html`, `DIR/equity.png` and one `DIR/<TICKER>.png` per ticker.

The statistics, and how they are computed:

- capital: `--capital`, by default the most the risk limits let the strategy hold,
  `max_position_notional` (25,000 USD, RiskLimits' default) per ticker. Equity = capital + P&L.
- equity curve: at every minute with a bar, the positions held (those opening the window plus the
  window's fills up to that minute, by the minute each was decided) marked at that minute's close,
  plus the cash of the fills and their commissions. Positions held when the window opens are
  marked at the last close before it, as the replay summary does.
- returns: minute returns of that equity curve. Total return, maximum drawdown, and the Sharpe,
  Sortino and Calmar ratios (risk-free rate 0, annualised with 252 x 390 regular-session minutes
  a year) come from empyrical-reloaded (`cum_returns_final`, `max_drawdown`, `sharpe_ratio`,
  `sortino_ratio`, `calmar_ratio`). Under 20 sessions the page warns that an annualised ratio
  of so short a sample says little. The drawdown's dates: its peak, its trough, and the first
  minute the equity is back at the peak (or "not recovered").
- trades: a round trip opens when a ticker's position leaves 0 and closes when it is back at 0
  (entry: the first fill, exit: the last; duration between their decisions). Its P&L is its
  sells' proceeds less its buys' cost and commissions; a position held when the window opens
  enters at the last close before it. Win rate is the share of closed round trips with a profit;
  profit factor is their gross profit over their gross loss.
- per ticker: fills, round trips, realised P&L (closed round trips) and the P&L including what is
  still held, marked at the last close.
- exposure: the share of minutes with any position held, and the average gross position value
  over the capital.
- costs: commissions recorded on the fills, and slippage: for each fill, the distance between its
  price and the open of the first bar that starts at or after its decision (the price an order
  sent then could get), against the order, times its quantity.
- fill times: minutes from the decision to the recorded fill (`filled_at`).
- refusals: the executions refused, by the first risk gate that failed (or the broker's refusal).
- benchmarks: buy-and-hold of the traded basket (the capital split equally across the tickers at
  their first open in the window) and of SPY (all the capital), marked at every close, same minutes.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ops_pipeline.config import RiskLimits
from ops_pipeline.db import query
from ops_pipeline.market import NEW_YORK
from ops_pipeline.sweep import Setting

MINUTES_PER_YEAR = 252 * 390
# Fewer sessions than this: the page warns that an annualised ratio says little.
SHORT_SAMPLE_SESSIONS = 20

# mplfinance's styles ask for a "semibold" DejaVu Sans, which matplotlib lacks and says so.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


class NoBars(ValueError):
    """The window (or the database) holds no bar of these tickers: nothing to report."""


@dataclass
class ReportData:
    first: datetime
    end: datetime  # exclusive
    tickers: list[str]
    capital: Decimal
    bars: Any  # pandas DataFrame: ticker, ts, open, high, low, close, volume
    features: Any  # ticker, ts, sma20, sma50, volume_avg_20, volume_ratio, volume_surge
    recommendations: Any  # ticker, ts, decided_at, action, price, confidence, reason
    fills: list[dict[str, Any]] = field(default_factory=list)
    opening: dict[str, Decimal] = field(default_factory=dict)
    refusals: list[dict[str, Any]] = field(default_factory=list)  # reject_reason, gate_verdicts
    spy: Any = None  # SPY's closes in the window (a Series by ts), the benchmark; None without


@dataclass
class Report:
    out: Path
    index: Path
    images: list[Path]
    summary: dict[str, Any]


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(columns))
    for column in frame.columns:
        if column in ("ts", "decided_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        elif frame[column].map(lambda v: isinstance(v, Decimal)).any():
            frame[column] = frame[column].astype(float)
    return frame


def load(
    conn: Any,
    *,
    first: datetime | None = None,
    to: datetime | None = None,
    tickers: Sequence[str] | None = None,
    capital: Decimal | None = None,
    limits: RiskLimits | None = None,
) -> ReportData:
    """The window's rows: by default every stored bar's minute and every ticker with bars; the
    capital by default `limits.max_position_notional` per ticker (RiskLimits' defaults)."""
    from ops_pipeline.event_time import ONE_MINUTE
    from ops_pipeline_local.replay import window_fills

    bounds = conn.run(
        "SELECT min(ts), max(ts) FROM lane_telemetry"
        " WHERE (CAST(:tickers AS text[]) IS NULL OR ticker = ANY(CAST(:tickers AS text[])))",
        tickers=list(tickers) if tickers else None,
    )[0]
    which = ", ".join(tickers) if tickers else "any ticker"
    if bounds[0] is None:
        raise NoBars(f"no bars of {which} in the database: run or replay first")
    first = first or bounds[0]
    end = to + ONE_MINUTE if to else bounds[1] + ONE_MINUTE
    if end <= first:
        raise NoBars(
            f"no bars of {which} from {first:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; the"
            f" database's run from {bounds[0]:%Y-%m-%d %H:%M} to {bounds[1]:%Y-%m-%d %H:%M} UTC"
        )
    if not tickers:
        tickers = [
            t
            for (t,) in conn.run(
                "SELECT DISTINCT ticker FROM lane_telemetry WHERE ts >= :first AND ts < :end"
                " ORDER BY 1",
                first=first,
                end=end,
            )
        ]
    tickers = list(tickers)
    window = {"first": first, "end": end, "tickers": tickers}
    where = "ticker = ANY(CAST(:tickers AS text[])) AND ts >= :first AND ts < :end"
    bars = query(
        conn,
        f"SELECT ticker, ts, open, high, low, close, volume FROM lane_telemetry WHERE {where}"
        " ORDER BY ticker, ts",
        **window,
    )
    if not bars:
        raise NoBars(
            f"no bars of {which} from {first:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; the"
            f" database's run from {bounds[0]:%Y-%m-%d %H:%M} to {bounds[1]:%Y-%m-%d %H:%M} UTC"
        )
    features = query(
        conn,
        "SELECT ticker, ts, sma20, sma50, volume_avg_20, volume_ratio, volume_surge"
        f" FROM lane_features WHERE {where} ORDER BY ticker, ts",
        **window,
    )
    recommendations = query(
        conn,
        "SELECT id, ticker, ts, decided_at, action, price, confidence, volume_multiplier, reason"
        f" FROM dispatch_recommendations WHERE {where} ORDER BY ts, ticker",
        **window,
    )
    refusals = query(
        conn,
        "SELECT ticker, reject_reason, gate_verdicts FROM dispatch_executions"
        " WHERE status = 'rejected' AND ticker = ANY(CAST(:tickers AS text[]))"
        " AND decided_at >= :first AND decided_at < :end",
        **window,
    )
    spy = conn.run(
        "SELECT ts, close FROM lane_telemetry WHERE ticker = 'SPY' AND ts >= :first AND ts < :end"
        " ORDER BY ts",
        first=first,
        end=end,
    )
    opening, fills = window_fills(conn, first, end, tickers)
    limits = limits or RiskLimits()
    return ReportData(
        first=first,
        end=end,
        tickers=tickers,
        capital=capital or limits.max_position_notional * max(len(tickers), 1),
        bars=_frame(bars, ["ticker", "ts", "open", "high", "low", "close", "volume"]),
        features=_frame(
            features,
            ["ticker", "ts", "sma20", "sma50", "volume_avg_20", "volume_ratio", "volume_surge"],
        ),
        recommendations=_frame(
            recommendations,
            [
                "id",
                "ticker",
                "ts",
                "decided_at",
                "action",
                "price",
                "confidence",
                "volume_multiplier",
                "reason",
            ],
        ),
        fills=fills,
        opening=opening,
        refusals=refusals,
        spy=_series(spy) if spy else None,
    )


def _series(rows: list[list[Any]]) -> Any:
    import pandas as pd

    index = pd.to_datetime([r[0] for r in rows], utc=True)
    return pd.Series([float(r[1]) for r in rows], index=index)


def _opening_marks(conn: Any, data: ReportData) -> dict[str, float]:
    rows = conn.run(
        "SELECT DISTINCT ON (ticker) ticker, close FROM lane_telemetry"
        " WHERE ticker = ANY(CAST(:tickers AS text[])) AND ts < :first ORDER BY ticker, ts DESC",
        tickers=data.tickers,
        first=data.first,
    )
    return {t: float(c) for t, c in rows}


def equity_curve(data: ReportData, opening_marks: dict[str, float]) -> Any:
    """Per minute: the P&L so far, the value of the positions held, and the gross exposure."""
    import pandas as pd

    closes = data.bars.pivot(index="ts", columns="ticker", values="close").sort_index().ffill()
    for ticker in data.tickers:
        if ticker not in closes:
            closes[ticker] = float("nan")
    closes = closes[data.tickers]
    for ticker, mark in opening_marks.items():
        if ticker in closes:
            closes[ticker] = closes[ticker].fillna(mark)
    closes = closes.fillna(0.0)
    qty = pd.DataFrame(0.0, index=closes.index, columns=data.tickers)
    cash = pd.Series(0.0, index=closes.index)
    for ticker, held in data.opening.items():
        if ticker in qty:
            qty[ticker] += float(held)
    opening_value = sum(float(q) * opening_marks.get(t, 0.0) for t, q in data.opening.items())
    for fill in data.fills:
        at = pd.Timestamp(fill["decided_at"])
        signed = float(fill["qty"]) * (1 if fill["side"] == "buy" else -1)
        cost = signed * float(fill["price"]) + float(fill.get("commission") or 0)
        qty.loc[qty.index >= at, fill["ticker"]] += signed
        cash[cash.index >= at] -= cost
    value = (qty * closes).sum(axis=1)
    pnl = value + cash - opening_value
    return pd.DataFrame(
        {
            "pnl": pnl,
            "equity": float(data.capital) + pnl,
            "gross": (qty.abs() * closes).sum(axis=1),
            "held": (qty != 0).any(axis=1),
        }
    )


def buy_and_hold(data: ReportData) -> Any:
    """Equity of the capital split equally across the tickers at their first open in the window."""
    closes = data.bars.pivot(index="ts", columns="ticker", values="close").sort_index().ffill()
    opens = data.bars.sort_values("ts").groupby("ticker")["open"].first()
    share = float(data.capital) / max(len(opens), 1)
    value = sum((closes[t].fillna(opens[t]) / opens[t] * share for t in opens.index), 0.0)
    return value


def spy_buy_and_hold(data: ReportData, index: Any) -> Any:
    """Equity of all the capital in SPY at its first close in the window; None without SPY."""
    if data.spy is None or data.spy.empty:
        return None
    spy = data.spy.reindex(index.union(data.spy.index)).ffill().bfill().reindex(index)
    return spy / float(data.spy.iloc[0]) * float(data.capital)


def round_trips(
    fills: Sequence[dict[str, Any]],
    opening: dict[str, Decimal],
    opening_marks: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Every round trip of the window, closed (position back at 0) or still open at its end.

    A position held when the window opens enters at its opening mark (the last close before).
    """
    marks = opening_marks or {}
    open_trips: dict[str, dict[str, Any]] = {}
    trips: list[dict[str, Any]] = []
    for ticker, held in opening.items():
        if held:
            q = float(held)
            open_trips[ticker] = {
                "ticker": ticker,
                "entry": None,
                "exit": None,
                "qty": q,
                "held": q,
                "bought": q * marks.get(ticker, 0.0),
                "sold": 0.0,
                "fees": 0.0,
                "sold_qty": 0.0,
                "fills": 0,
                "carried": True,
            }
    for fill in fills:
        t, qty, price = fill["ticker"], float(fill["qty"]), float(fill["price"])
        signed = qty if fill["side"] == "buy" else -qty
        trip = open_trips.get(t)
        if trip is None:
            if signed < 0:
                continue  # a sell with nothing held: the simulation never makes one
            trip = open_trips[t] = {
                "ticker": t,
                "entry": fill["decided_at"],
                "exit": None,
                "qty": 0.0,
                "held": 0.0,
                "bought": 0.0,
                "sold": 0.0,
                "fees": 0.0,
                "sold_qty": 0.0,
                "fills": 0,
                "carried": False,
            }
        trip["fills"] += 1
        trip["fees"] += float(fill.get("commission") or 0)
        if signed > 0:
            trip["bought"] += qty * price
            trip["qty"] += qty
        else:
            trip["sold"] += qty * price
            trip["sold_qty"] += qty
        trip["held"] += signed
        if abs(trip["held"]) < 1e-9:
            trip["exit"] = fill["decided_at"]
            trips.append(_closed(open_trips.pop(t)))
    trips += [_closed(trip, still_open=True) for trip in open_trips.values()]
    return trips


def _closed(trip: dict[str, Any], still_open: bool = False) -> dict[str, Any]:
    qty = trip["qty"] or 1.0
    entry_price = trip["bought"] / qty
    exit_price = trip["sold"] / trip["sold_qty"] if trip["sold_qty"] else None
    pnl = trip["sold"] - trip["bought"] - trip["fees"] if not still_open else None
    duration = (
        (trip["exit"] - trip["entry"]).total_seconds() / 60
        if trip["entry"] is not None and trip["exit"] is not None
        else None
    )
    return {
        "ticker": trip["ticker"],
        "entry": trip["entry"],
        "exit": trip["exit"],
        "minutes": duration,
        "qty": trip["qty"],
        "entry_price": entry_price,
        "exit_price": exit_price,
        "pnl": pnl,
        "return": pnl / trip["bought"] if pnl is not None and trip["bought"] else None,
        "fills": trip["fills"],
        "carried": trip["carried"],
        "open": still_open,
    }


def refusal_reason(refusal: dict[str, Any]) -> str:
    """The first risk gate that failed, else the broker's refusal, else the reason's words."""
    verdicts = refusal.get("gate_verdicts")
    if isinstance(verdicts, str):
        import json

        verdicts = json.loads(verdicts)
    if isinstance(verdicts, list):
        for verdict in verdicts:
            if isinstance(verdict, dict) and not verdict.get("passed", True):
                return f"gate {verdict.get('gate')}"
    reason = refusal.get("reject_reason") or "no reason recorded"
    if reason.startswith("broker"):
        return reason.split(":")[0]
    return re.sub(r"[-+]?\d[\d.,:]*", "N", reason)[:80]


def _slippage(data: ReportData) -> float:
    """USD lost to slippage: each fill against the open of the first bar at or after its
    decision, times its quantity (a fill without such a bar in the window is left out)."""
    import pandas as pd

    total = 0.0
    opens = {t: g.set_index("ts")["open"].sort_index() for t, g in data.bars.groupby("ticker")}
    for fill in data.fills:
        series = opens.get(fill["ticker"])
        if series is None:
            continue
        after = series[series.index >= pd.Timestamp(fill["decided_at"])]
        if after.empty:
            continue
        reference = float(after.iloc[0])
        move = float(fill["price"]) - reference
        total += (move if fill["side"] == "buy" else -move) * float(fill["qty"])
    return total


def drawdown_dates(curve: Any) -> dict[str, Any]:
    """The deepest drawdown's peak, trough and recovery (None: not recovered by the end)."""
    equity = curve["equity"]
    if equity.empty:
        return {"peak": None, "trough": None, "recovery": None}
    drawdown = equity / equity.cummax() - 1.0
    trough = drawdown.idxmin()
    peak = equity[:trough].idxmax()
    later = equity[trough:]
    recovered = later[later >= equity[peak]]
    return {
        "peak": peak,
        "trough": trough,
        "recovery": recovered.index[0] if drawdown[trough] < 0 and len(recovered) else None,
    }


def _ratio(value: Any) -> float | None:
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def statistics(
    data: ReportData,
    curve: Any,
    benchmark: Any,
    pnl: dict[str, Any],
    spy: Any = None,
    opening_marks: dict[str, float] | None = None,
) -> dict[str, Any]:
    import empyrical

    returns = curve["equity"].pct_change().fillna(0.0)
    bench_returns = benchmark.pct_change().fillna(0.0)
    trips = round_trips(data.fills, data.opening, opening_marks)
    closed = [t for t in trips if not t["open"]]
    wins = [t["pnl"] for t in closed if t["pnl"] > 0]
    losses = [t["pnl"] for t in closed if t["pnl"] <= 0]
    capital = float(data.capital)
    sessions = len({ts.astimezone(NEW_YORK).date() for ts in curve.index})
    per_year = {"annualization": MINUTES_PER_YEAR}
    delays = [
        (f["filled_at"] - f["decided_at"]).total_seconds() / 60
        for f in data.fills
        if f.get("filled_at") is not None
    ]
    last = data.bars.sort_values("ts").groupby("ticker")["close"].last()
    marks = opening_marks or {}
    per_ticker = {}
    for ticker in data.tickers:
        own = [f for f in data.fills if f["ticker"] == ticker]
        held = float(data.opening.get(ticker, 0))
        cash = -held * marks.get(ticker, 0.0)
        for f in own:
            signed = float(f["qty"]) * (1 if f["side"] == "buy" else -1)
            held += signed
            cash -= signed * float(f["price"]) + float(f.get("commission") or 0)
        ticker_trips = [t for t in closed if t["ticker"] == ticker]
        per_ticker[ticker] = {
            "fills": len(own),
            "round_trips": len(ticker_trips),
            "wins": sum(1 for t in ticker_trips if t["pnl"] > 0),
            "realised": sum(t["pnl"] for t in ticker_trips),
            "pnl": cash + held * float(last.get(ticker, 0.0)),
            "held": held,
        }
    refusals: dict[str, int] = {}
    for refusal in data.refusals:
        key = refusal_reason(refusal)
        refusals[key] = refusals.get(key, 0) + 1
    dates = drawdown_dates(curve)
    spy_returns = spy.pct_change().fillna(0.0) if spy is not None else None
    return {
        "window": f"{data.first.astimezone(NEW_YORK):%Y-%m-%d %H:%M} to"
        f" {data.end.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York",
        "sessions": sessions,
        "tickers": ", ".join(data.tickers),
        "capital": capital,
        "fills": len(data.fills),
        "buys": sum(1 for f in data.fills if f["side"] == "buy"),
        "sells": sum(1 for f in data.fills if f["side"] == "sell"),
        "modes": sorted({str(f.get("mode") or "simulation") for f in data.fills}),
        "round_trips": len(closed),
        "open_trips": len(trips) - len(closed),
        "win_rate": len(wins) / len(closed) if closed else None,
        "profit_factor": (sum(wins) / -sum(losses)) if losses and sum(losses) < 0 else None,
        "average_trade": sum(t["pnl"] for t in closed) / len(closed) if closed else None,
        "pnl": float(pnl["realized_and_unrealized"]),
        "total_return": float(empyrical.cum_returns_final(returns)),
        "max_drawdown": float(empyrical.max_drawdown(returns)),
        "drawdown_dates": dates,
        "sharpe": _ratio(empyrical.sharpe_ratio(returns, **per_year)),
        "sortino": _ratio(empyrical.sortino_ratio(returns, **per_year)),
        "calmar": _ratio(empyrical.calmar_ratio(returns, **per_year)),
        "short_sample": sessions < SHORT_SAMPLE_SESSIONS,
        "exposure_time": float(curve["held"].mean()) if len(curve) else 0.0,
        "exposure_average": float(curve["gross"].mean() / capital) if len(curve) else 0.0,
        "commissions": float(pnl["commissions"]),
        "slippage": _slippage(data),
        "fill_minutes_median": sorted(delays)[len(delays) // 2] if delays else None,
        "fill_minutes_max": max(delays) if delays else None,
        "refusals": dict(sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0]))),
        "opening_positions": {t: float(q) for t, q in data.opening.items()},
        "open_positions": {t: float(q) for t, q in pnl["open_positions"].items()},
        "buy_and_hold_return": float(empyrical.cum_returns_final(bench_returns)),
        "buy_and_hold_max_drawdown": float(empyrical.max_drawdown(bench_returns)),
        "spy_return": (
            float(empyrical.cum_returns_final(spy_returns)) if spy_returns is not None else None
        ),
        "spy_max_drawdown": (
            float(empyrical.max_drawdown(spy_returns)) if spy_returns is not None else None
        ),
        "recommendations": len(data.recommendations),
        "per_ticker": per_ticker,
        "trades": trips,
    }


def _safe_name(ticker: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", ticker) or "ticker"


def _day_starts(index: Any) -> list[tuple[int, str]]:
    """(position, label) of each New York day's first minute in a minute index."""
    local = index.tz_convert(NEW_YORK) if index.tz is not None else index
    starts = []
    previous = None
    for i, ts in enumerate(local):
        if ts.date() != previous:
            starts.append((i, f"{ts:%a %m-%d}"))
            previous = ts.date()
    return starts


def _mark_days(axes: Sequence[Any], starts: list[tuple[int, str]], length: int) -> None:
    """A separator before every day but the first, and each day's name under its middle."""
    for ax in axes:
        for position, _ in starts[1:]:
            ax.axvline(position - 0.5, color="0.35", linewidth=0.8, linestyle="--", zorder=0)
    bounds = [p for p, _ in starts] + [length]
    middles = [(bounds[i] + bounds[i + 1]) / 2 for i in range(len(starts))]
    axes[-1].set_xticks(middles)
    axes[-1].set_xticklabels([label for _, label in starts])


def plot_equity(curve: Any, benchmark: Any, path: Path, spy: Any = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(curve))  # one step per minute with a bar: nights and weekends take no room
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(x, curve["equity"].to_numpy(), label="strategy", color="tab:blue", linewidth=1.2)
    top.plot(x, benchmark.to_numpy(), label="buy and hold, the basket", color="tab:gray", alpha=0.8)
    if spy is not None:
        top.plot(x, spy.to_numpy(), label="buy and hold, SPY", color="tab:green", alpha=0.7)
    top.set_ylabel("equity (USD)")
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False, fontsize=9)
    top.grid(alpha=0.3)
    peak = curve["equity"].cummax()
    drawdown = (curve["equity"] / peak - 1.0).to_numpy() * 100
    bottom.fill_between(x, drawdown, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    starts = _day_starts(curve.index)
    if len(starts) > 1:
        _mark_days([top, bottom], starts, len(curve))
    else:
        local = curve.index.tz_convert(NEW_YORK)
        ticks = list(range(0, len(curve), max(len(curve) // 8, 1)))
        bottom.set_xticks(ticks)
        bottom.set_xticklabels([f"{local[i]:%H:%M}" for i in ticks])
    first = curve.index[0].tz_convert(NEW_YORK) if len(curve) else None
    bottom.set_xlabel(
        "New York time, regular sessions only (nights and weekends take no room)"
        + (f"; {first:%Y-%m-%d}" if first is not None and len(starts) <= 1 else "")
    )
    top.set_title("Equity and drawdown", loc="left", pad=24, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_ticker(data: ReportData, ticker: str, path: Path) -> None:
    """Candles, SMA20/SMA50, volume with its 20-bar average and surges, recommendations, fills."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplfinance as mpf
    import numpy as np
    import pandas as pd

    bars = data.bars[data.bars["ticker"] == ticker].set_index("ts").sort_index()
    frame = pd.DataFrame(
        {
            "Open": bars["open"],
            "High": bars["high"],
            "Low": bars["low"],
            "Close": bars["close"],
            "Volume": bars["volume"].astype(float),
        }
    )
    feats = data.features[data.features["ticker"] == ticker].set_index("ts").reindex(frame.index)
    starts = _day_starts(frame.index)
    frame.index = frame.index.tz_convert(NEW_YORK).tz_localize(None)
    feats.index = frame.index

    def column(values: Any) -> Any:
        return pd.Series(values, index=frame.index, dtype=float)

    def markers(times: Any, prices: Any) -> Any:
        series = column(np.nan)
        for at, price in zip(times, prices, strict=True):
            local = pd.Timestamp(at).tz_convert(NEW_YORK).tz_localize(None)
            if local in series.index:
                series[local] = price
        return series

    recs = data.recommendations[data.recommendations["ticker"] == ticker]
    fills = [f for f in data.fills if f["ticker"] == ticker]
    adds = []
    for name, color in (("sma20", "tab:orange"), ("sma50", "tab:purple")):
        values = column(feats[name])
        if values.notna().any():
            adds.append(mpf.make_addplot(values, color=color, width=1.0, label=name.upper()))
    avg = column(feats["volume_avg_20"])
    if avg.notna().any():
        adds.append(mpf.make_addplot(avg, panel=1, color="tab:orange", width=1.0))
    surges = column(
        np.where(feats["volume_surge"].fillna(False).astype(bool), frame["Volume"], np.nan)
    )
    # The opening minutes trade many times a normal minute: the volume axis ends at the 99th
    # percentile (what lies above is cut, and said so), so that the rest stays readable.
    ceiling = float(frame["Volume"].quantile(0.99)) * 1.15 or 1.0
    if surges.notna().any():
        adds.append(
            mpf.make_addplot(
                surges.clip(upper=ceiling * 0.97),
                panel=1,
                type="scatter",
                marker="*",
                markersize=60,
                color="red",
            )
        )
    low, high = frame["Low"].min(), frame["High"].max()
    pad = (high - low) * 0.03 or 0.01
    for action, marker, color, offset in (("BUY", "^", "green", -pad), ("SELL", "v", "red", pad)):
        picked = recs[recs["action"] == action]
        series = markers(picked["ts"], picked["price"] + offset)
        if series.notna().any():
            adds.append(
                mpf.make_addplot(
                    series,
                    type="scatter",
                    marker=marker,
                    markersize=50,
                    color=color,
                    alpha=0.6,
                    label=f"{action} recommendation",
                )
            )
    for side, color in (("buy", "darkgreen"), ("sell", "darkred")):
        picked = [f for f in fills if f["side"] == side]
        series = markers([f["decided_at"] for f in picked], [float(f["price"]) for f in picked])
        if series.notna().any():
            adds.append(
                mpf.make_addplot(
                    series,
                    type="scatter",
                    marker="o",
                    markersize=45,
                    color=color,
                    label=f"{side} fill",
                )
            )
    fig, axes = mpf.plot(
        frame,
        type="candle",
        volume=True,
        addplot=adds,
        style="yahoo",
        figsize=(14, 7.5),
        warn_too_much_data=len(frame) + 1,
        returnfig=True,
        ylabel="price (USD)",
        ylabel_lower="volume",
        xrotation=0,
        tight_layout=True,
    )
    from matplotlib.ticker import FuncFormatter

    main_ax, volume_ax = axes[0], axes[2]
    volume_ax.set_ylim(0, ceiling)
    volume_ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k")
    )
    clipped = int((frame["Volume"] > ceiling).sum())
    if len(starts) > 1:
        _mark_days([main_ax, volume_ax], starts, len(frame))
    volume_ax.set_xlabel(
        "New York time"
        + (f", {frame.index[0]:%Y-%m-%d}" if len(starts) <= 1 else "")
        + (f"; volume axis cut at {ceiling:,.0f}: {clipped} bars above it" if clipped else "")
    )
    handles, labels = main_ax.get_legend_handles_labels()
    if handles:
        main_ax.legend(
            handles,
            labels,
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncol=len(handles),
            frameon=False,
            fontsize=8,
        )
    main_ax.set_title(
        f"{ticker}: candles, SMA20/SMA50, volume with its 20-bar average and surges (*)",
        loc="left",
        pad=24,
        fontsize=12,
    )
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _new_york(value: Any) -> str:
    return "-" if value is None else f"{value.astimezone(NEW_YORK):%a %m-%d %H:%M}"


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    hours, rest = divmod(int(round(minutes)), 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + (f"{hours}h " if hours or days else "") + f"{rest}m"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: int = 1) -> str:
    """An HTML table; columns from `numeric` on are right-aligned figures."""
    e = html.escape
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="n">{e(str(v))}</td>' if i >= numeric else f"<td>{e(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{cells}</tr>\n{body}\n</table>"


def render_html(
    summary: dict[str, Any], images: list[tuple[str, str]], fills: list[dict[str, Any]]
) -> str:
    e = html.escape
    dates = summary["drawdown_dates"]
    ratio = "n/a (the curve never moves)"
    annualised = [
        ("Sharpe ratio (annualised)", summary["sharpe"]),
        ("Sortino ratio (annualised)", summary["sortino"]),
        ("Calmar ratio (annualised)", summary["calmar"]),
    ]
    rows = [
        *([("sweep setting", summary["setting"])] if summary.get("setting") else []),
        ("window", summary["window"]),
        ("sessions", str(summary["sessions"])),
        ("tickers", summary["tickers"]),
        ("capital (USD)", f"{summary['capital']:,.2f}"),
        (
            "trades (fills)",
            f"{summary['fills']} ({summary['buys']} buys, {summary['sells']} sells;"
            f" {', '.join(summary['modes']) or 'none'})",
        ),
        (
            "round trips",
            f"{summary['round_trips']} closed, {summary['open_trips']} still open at the end",
        ),
        ("win rate", _percent(summary["win_rate"])),
        ("profit factor", _number(summary["profit_factor"])),
        ("average closed trade (USD)", _number(summary["average_trade"])),
        ("P&L (USD)", f"{summary['pnl']:,.2f}"),
        ("total return", _percent(summary["total_return"])),
        ("maximum drawdown", _percent(summary["max_drawdown"])),
        (
            "maximum drawdown: peak, trough, recovery (New York)",
            f"{_new_york(dates['peak'])}, {_new_york(dates['trough'])},"
            f" {_new_york(dates['recovery']) if dates['recovery'] is not None else 'not recovered'}",
        ),
        *((label, ratio if v is None else f"{v:.2f}") for label, v in annualised),
        ("exposure: time in the market", _percent(summary["exposure_time"])),
        ("exposure: average gross / capital", _percent(summary["exposure_average"])),
        ("costs: commissions (USD)", f"{summary['commissions']:,.2f}"),
        ("costs: slippage against the bar's open (USD)", f"{summary['slippage']:,.2f}"),
        (
            "fill time after the decision (minutes)",
            f"median {_number(summary['fill_minutes_median'], 0)},"
            f" at most {_number(summary['fill_minutes_max'], 0)}",
        ),
        ("buy and hold, the basket: total return", _percent(summary["buy_and_hold_return"])),
        (
            "buy and hold, the basket: maximum drawdown",
            _percent(summary["buy_and_hold_max_drawdown"]),
        ),
        ("buy and hold, SPY: total return", _percent(summary["spy_return"])),
        ("buy and hold, SPY: maximum drawdown", _percent(summary["spy_max_drawdown"])),
        ("recommendations", str(summary["recommendations"])),
        (
            "positions at the start",
            ", ".join(f"{t} {q:g}" for t, q in sorted(summary["opening_positions"].items()))
            or "none",
        ),
        (
            "positions at the end",
            ", ".join(f"{t} {q:g}" for t, q in sorted(summary["open_positions"].items())) or "none",
        ),
    ]
    table = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    warning = (
        f'<p class="warn">Only {summary["sessions"]} session(s): an annualised ratio (Sharpe,'
        f" Sortino, Calmar) of so short a sample says little; read the P&amp;L, the drawdown and"
        f" the trades instead (at least {SHORT_SAMPLE_SESSIONS} sessions before trusting one).</p>"
        if summary["short_sample"]
        else ""
    )
    per_ticker = _table(
        [
            "ticker",
            "fills",
            "round trips",
            "wins",
            "realised P&L (USD)",
            "P&L with what is held (USD)",
            "held at the end",
        ],
        [
            (
                t,
                v["fills"],
                v["round_trips"],
                v["wins"],
                f"{v['realised']:,.2f}",
                f"{v['pnl']:,.2f}",
                f"{v['held']:g}",
            )
            for t, v in summary["per_ticker"].items()
        ],
    )
    trades = _table(
        [
            "ticker",
            "entry (New York)",
            "exit (New York)",
            "duration",
            "qty",
            "entry price",
            "exit price",
            "P&L (USD)",
            "return",
            "fills",
        ],
        [
            (
                t["ticker"],
                ("carried in" if t["carried"] else _new_york(t["entry"])),
                ("still open" if t["open"] else _new_york(t["exit"])),
                _duration(t["minutes"]),
                f"{t['qty']:g}",
                f"{t['entry_price']:.4f}",
                "-" if t["exit_price"] is None else f"{t['exit_price']:.4f}",
                _number(t["pnl"]),
                _percent(t["return"]),
                t["fills"],
            )
            for t in summary["trades"]
        ],
        numeric=3,
    )
    refusals = _table(
        ["reason (the first gate that failed)", "refusals"],
        list(summary["refusals"].items()) or [("none", 0)],
    )
    figures = "\n".join(
        f'<figure><a href="{e(src)}"><img src="{e(src)}" alt="{e(alt)}"></a>'
        f"<figcaption>{e(alt)}</figcaption></figure>"
        for src, alt in images
    )
    fill_rows = _table(
        ["decided (New York)", "filled (New York)", "ticker", "side", "qty", "price", "commission"],
        [
            (
                _new_york(f["decided_at"]),
                _new_york(f.get("filled_at")),
                f["ticker"],
                f["side"],
                f"{float(f['qty']):g}",
                f"{float(f['price']):.4f}",
                f"{float(f.get('commission') or 0):.2f}",
            )
            for f in fills
        ],
        numeric=4,
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ops-pipeline report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
figure {{ margin: 1em 0; }}
.warn {{ background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; }}
</style></head><body>
<h1>ops-pipeline report</h1>
<h2>Summary</h2>
{warning}
<table>
{table}
</table>
<p>How each figure is computed: see the docstring of <code>ops_pipeline_local/report.py</code>
(minute returns of the equity curve, ratios from empyrical-reloaded annualised over
252 &times; 390 minutes, risk-free 0). Times are New York's.</p>
<h2>Per ticker</h2>
{per_ticker}
<h2>Trades (round trips)</h2>
{trades}
<h2>Refusals by reason</h2>
{refusals}
<h2>Charts</h2>
{figures}
<h2>Fills</h2>
{fill_rows}
</body></html>
"""


def write_report(
    conn: Any,
    out: Path,
    *,
    first: datetime | None = None,
    to: datetime | None = None,
    tickers: Sequence[str] | None = None,
    capital: Decimal | None = None,
    setting: Setting | None = None,
) -> Report:
    """Write `out/index.html`, `out/equity.png` and `out/<TICKER>.png`; return what was written.
    With a sweep's `setting`, `conn` reads its rows (`sweep.read_setting`): its risk limits size
    the default capital, and the page names it with its values."""
    from ops_pipeline_local.replay import simulated_pnl

    limits = setting.risk_limits(RiskLimits()) if setting else None
    data = load(conn, first=first, to=to, tickers=tickers, capital=capital, limits=limits)
    marks = _opening_marks(conn, data)
    curve = equity_curve(data, marks)
    benchmark = buy_and_hold(data).reindex(curve.index).ffill()
    spy = spy_buy_and_hold(data, curve.index)
    last = data.bars.sort_values("ts").groupby("ticker")["close"].last()
    pnl = simulated_pnl(
        data.fills,
        {t: Decimal(str(c)) for t, c in last.items()},
        data.opening,
        {t: Decimal(str(c)) for t, c in marks.items()},
    )
    summary = statistics(data, curve, benchmark, pnl, spy, marks)
    if setting is not None:
        summary["setting"] = setting.describe()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, str]] = [
        ("equity.png", "Equity curve and drawdown, with buy and hold of the basket and of SPY")
    ]
    plot_equity(curve, benchmark, out / "equity.png", spy)
    for ticker in data.tickers:
        if not (data.bars["ticker"] == ticker).any():
            continue
        name = f"{_safe_name(ticker)}.png"
        plot_ticker(data, ticker, out / name)
        images.append(
            (name, f"{ticker}: candles, SMA20/SMA50, volume, surges, recommendations and fills")
        )
    index = out / "index.html"
    index.write_text(render_html(summary, images, data.fills), encoding="utf-8")
    return Report(out, index, [out / src for src, _ in images], summary)
