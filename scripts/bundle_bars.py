"""Build the bundled trading days src/ops_pipeline_local/data/bars/<day>.csv.

Converts Alpha Vantage 1-minute exports (`<SYMBOL>_1min.csv`: naive US/Eastern bar-END labels,
newest first; the copies kept in github.com/masonblier/eqker, `data/`) to canonical CSV (UTC
bar-START labels) and writes one file per New York trading day found in them: the five sessions
of 2019-02-11 to 2019-02-15.

Usage: python scripts/bundle_bars.py --source DIR [--day 2019-02-12 ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ops_pipeline_local.bars import NEW_YORK, Bar, convert_alpha_vantage, write_bars  # noqa: E402

SYMBOLS = ("AAPL", "AMZN", "MSFT", "TSLA", "SPY")
BUNDLED = REPO / "src" / "ops_pipeline_local" / "data" / "bars"


def bars_by_day(source: Path, symbols: tuple[str, ...] = SYMBOLS) -> dict[date, list[Bar]]:
    """Every converted bar of `source`, by its New York day, sorted by symbol then time."""
    days: dict[date, list[Bar]] = {}
    for symbol in symbols:
        for bar in convert_alpha_vantage(source / f"{symbol}_1min.csv", symbol):
            days.setdefault(bar.ts.astimezone(NEW_YORK).date(), []).append(bar)
    return {day: sorted(bars, key=lambda b: (b.symbol, b.ts)) for day, bars in sorted(days.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        required=True,
        help="folder of the Alpha Vantage exports (AAPL_1min.csv, ...)",
    )
    parser.add_argument(
        "--day", type=date.fromisoformat, action="append", help="only this day (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=BUNDLED, help="folder to write")
    args = parser.parse_args(argv)
    days = bars_by_day(args.source)
    for day in args.day or days:
        bars = days.get(day, [])
        if not bars:
            print(f"no bars for {day} in {args.source}", file=sys.stderr)
            return 2
        out = args.out / f"{day.isoformat()}.csv"
        write_bars(bars, out)
        counts = {s: sum(1 for b in bars if b.symbol == s) for s in SYMBOLS}
        print(f"wrote {len(bars)} bars to {out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
