"""`ops-pipeline report`: what a run or replay did, as one HTML page with PNG charts beside it.

Reads the database only (bars, features, recommendations, simulated fills) and writes
`DIR/index.html`, `DIR/equity.png` and one `DIR/<TICKER>.png` per ticker.

The statistics, and how they are computed:

- capital: `--capital`, by default the most the risk limits let the strategy hold,
  `max_position_notional` (25,000 USD, RiskLimits' default) per ticker. Equity = capital + P&L.
- equity curve: at every minute with a bar, the positions held (those opening the window plus the
  window's fills up to that minute, by the minute each was decided) marked at that minute's close,
  plus the cash of the fills and their commissions. Positions held when the window opens are
  marked at the last close before it, as the replay summary does.
- returns: minute returns of that equity curve; total return, maximum drawdown and the Sharpe
  ratio (risk-free rate 0, annualised with 252 x 390 regular-session minutes a year) come from
  empyrical-reloaded (`cum_returns_final`, `max_drawdown`, `sharpe_ratio`).
- trades: the fills. A round trip is a SELL that closes a position; its profit is the sell's
  proceeds less the average cost of the shares it closes (commissions included). Win rate is
  the share of round trips with a profit above 0.
- exposure: the share of minutes with any position held, and the average gross position value
  over the capital.
- costs: commissions recorded on the fills (0 where the database has no commission column).
- buy-and-hold: the capital split equally across the same tickers at the first bar's open,
  marked at every close.
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

MINUTES_PER_YEAR = 252 * 390

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
) -> ReportData:
    """The window's rows: by default every stored bar's minute and every ticker with bars."""
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
    opening, fills = window_fills(conn, first, end, tickers)
    limits = RiskLimits()
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
    )


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


def round_trips(fills: Sequence[dict[str, Any]], opening: dict[str, Decimal]) -> list[float]:
    """Profit of every SELL: proceeds less the average cost of the shares it closes.

    Shares held when the window opens carry no cost here; a sell of those is left out.
    """
    held: dict[str, float] = {}
    cost: dict[str, float] = {}
    unknown: dict[str, float] = {t: float(q) for t, q in opening.items()}
    profits = []
    for fill in fills:
        t, qty, price = fill["ticker"], float(fill["qty"]), float(fill["price"])
        fee = float(fill.get("commission") or 0)
        if fill["side"] == "buy":
            held[t] = held.get(t, 0.0) + qty
            cost[t] = cost.get(t, 0.0) + qty * price + fee
            continue
        from_unknown = min(unknown.get(t, 0.0), qty)
        unknown[t] = unknown.get(t, 0.0) - from_unknown
        closing = min(qty - from_unknown, held.get(t, 0.0))
        if closing <= 0:
            continue
        average = cost[t] / held[t]
        profits.append(closing * (price - average) - fee * closing / qty)
        held[t] -= closing
        cost[t] -= closing * average
    return profits


def statistics(data: ReportData, curve: Any, benchmark: Any, pnl: dict[str, Any]) -> dict[str, Any]:
    import empyrical

    returns = curve["equity"].pct_change().fillna(0.0)
    bench_returns = benchmark.pct_change().fillna(0.0)
    trips = round_trips(data.fills, data.opening)
    wins = sum(1 for p in trips if p > 0)
    sharpe = float(empyrical.sharpe_ratio(returns, annualization=MINUTES_PER_YEAR))
    capital = float(data.capital)
    return {
        "window": f"{data.first.astimezone(NEW_YORK):%Y-%m-%d %H:%M} to"
        f" {data.end.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York",
        "tickers": ", ".join(data.tickers),
        "capital": capital,
        "fills": len(data.fills),
        "buys": sum(1 for f in data.fills if f["side"] == "buy"),
        "sells": sum(1 for f in data.fills if f["side"] == "sell"),
        "round_trips": len(trips),
        "win_rate": wins / len(trips) if trips else None,
        "pnl": float(pnl["realized_and_unrealized"]),
        "total_return": float(empyrical.cum_returns_final(returns)),
        "max_drawdown": float(empyrical.max_drawdown(returns)),
        "sharpe": sharpe if sharpe == sharpe else None,  # NaN when the curve never moves
        "exposure_time": float(curve["held"].mean()) if len(curve) else 0.0,
        "exposure_average": float(curve["gross"].mean() / capital) if len(curve) else 0.0,
        "commissions": float(pnl["commissions"]),
        "opening_positions": {t: float(q) for t, q in data.opening.items()},
        "open_positions": {t: float(q) for t, q in pnl["open_positions"].items()},
        "buy_and_hold_return": float(empyrical.cum_returns_final(bench_returns)),
        "buy_and_hold_max_drawdown": float(empyrical.max_drawdown(bench_returns)),
        "recommendations": len(data.recommendations),
    }


def _safe_name(ticker: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", ticker) or "ticker"


def plot_equity(curve: Any, benchmark: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    local = curve.index.tz_convert(NEW_YORK)
    x = range(len(curve))  # one step per minute with a bar: nights and weekends take no room
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(x, curve["equity"].to_numpy(), label="strategy", color="tab:blue")
    top.plot(x, benchmark.to_numpy(), label="buy and hold", color="tab:gray", alpha=0.8)
    top.set_ylabel("equity (USD)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    peak = curve["equity"].cummax()
    drawdown = (curve["equity"] / peak - 1.0).to_numpy() * 100
    bottom.fill_between(x, drawdown, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    ticks = list(range(0, len(curve), max(len(curve) // 8, 1)))
    bottom.set_xticks(ticks)
    bottom.set_xticklabels([f"{local[i]:%m-%d %H:%M}" for i in ticks], rotation=30, ha="right")
    top.set_title("Equity and drawdown (New York time)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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
    if surges.notna().any():
        adds.append(
            mpf.make_addplot(
                surges, panel=1, type="scatter", marker="*", markersize=60, color="red"
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
                    markersize=70,
                    color=color,
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
                    markersize=40,
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
        title=f"{ticker}: candles, SMA20/SMA50, volume with its 20-bar average and surges (*)",
        figsize=(12, 7),
        warn_too_much_data=len(frame) + 1,
        returnfig=True,
    )
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, loc="upper left", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def render_html(
    summary: dict[str, Any], images: list[tuple[str, str]], fills: list[dict[str, Any]]
) -> str:
    e = html.escape
    rows = [
        ("window", summary["window"]),
        ("tickers", summary["tickers"]),
        ("capital (USD)", f"{summary['capital']:,.2f}"),
        (
            "trades (fills)",
            f"{summary['fills']} ({summary['buys']} buys, {summary['sells']} sells)",
        ),
        ("round trips", str(summary["round_trips"])),
        ("win rate", _percent(summary["win_rate"])),
        ("P&L (USD)", f"{summary['pnl']:,.2f}"),
        ("total return", _percent(summary["total_return"])),
        ("maximum drawdown", _percent(summary["max_drawdown"])),
        (
            "Sharpe ratio (annualised)",
            "n/a" if summary["sharpe"] is None else f"{summary['sharpe']:.2f}",
        ),
        ("exposure: time in the market", _percent(summary["exposure_time"])),
        ("exposure: average gross / capital", _percent(summary["exposure_average"])),
        ("costs: commissions (USD)", f"{summary['commissions']:,.2f}"),
        ("buy and hold: total return", _percent(summary["buy_and_hold_return"])),
        ("buy and hold: maximum drawdown", _percent(summary["buy_and_hold_max_drawdown"])),
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
    figures = "\n".join(
        f'<figure><a href="{e(src)}"><img src="{e(src)}" alt="{e(alt)}"></a>'
        f"<figcaption>{e(alt)}</figcaption></figure>"
        for src, alt in images
    )
    trades = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(v))}</td>"
            for v in (
                f"{f['decided_at'].astimezone(NEW_YORK):%Y-%m-%d %H:%M}",
                f["ticker"],
                f["side"],
                f"{float(f['qty']):g}",
                f"{float(f['price']):.4f}",
                f"{float(f.get('commission') or 0):.2f}",
            )
        )
        + "</tr>"
        for f in fills
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ops-pipeline report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1250px; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
img {{ max-width: 100%; }}
figure {{ margin: 1em 0; }}
</style></head><body>
<h1>ops-pipeline report</h1>
<h2>Summary</h2>
<table>
{table}
</table>
<p>How each figure is computed: see the docstring of <code>ops_pipeline_local/report.py</code>
(minute returns of the equity curve, Sharpe annualised over 252 &times; 390 minutes, risk-free 0).</p>
<h2>Charts</h2>
{figures}
<h2>Fills</h2>
<table><tr><th>decided (New York)</th><th>ticker</th><th>side</th><th>qty</th><th>price</th><th>commission</th></tr>
{trades}
</table>
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
) -> Report:
    """Write `out/index.html`, `out/equity.png` and `out/<TICKER>.png`; return what was written."""
    from ops_pipeline_local.replay import simulated_pnl

    data = load(conn, first=first, to=to, tickers=tickers, capital=capital)
    marks = _opening_marks(conn, data)
    curve = equity_curve(data, marks)
    benchmark = buy_and_hold(data).reindex(curve.index).ffill()
    last = data.bars.sort_values("ts").groupby("ticker")["close"].last()
    pnl = simulated_pnl(
        data.fills,
        {t: Decimal(str(c)) for t, c in last.items()},
        data.opening,
        {t: Decimal(str(c)) for t, c in marks.items()},
    )
    summary = statistics(data, curve, benchmark, pnl)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, str]] = [("equity.png", "Equity curve and drawdown, with buy and hold")]
    plot_equity(curve, benchmark, out / "equity.png")
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
