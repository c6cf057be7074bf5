"""Build the bundled trading day src/ops_pipeline_local/data/bars/2019-02-12.csv.

Converts the Alpha Vantage exports in /work/shared/data/bars_1min_2019-02/ (naive US/Eastern
bar-END labels) to canonical CSV (UTC bar-START labels) and keeps one New York trading day.

Usage: python scripts/bundle_bars.py [--source DIR] [--day 2019-02-12] [--out FILE]
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
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bars_1min_2019-02"
DEFAULT_DAY = date(2019, 2, 12)


def bars_for_day(source: Path, day: date, symbols: tuple[str, ...] = SYMBOLS) -> list[Bar]:
    bars: list[Bar] = []
    for symbol in symbols:
        converted = convert_alpha_vantage(source / f"{symbol}_1min.csv", symbol)
        bars.extend(b for b in converted if b.ts.astimezone(NEW_YORK).date() == day)
    return sorted(bars, key=lambda b: (b.symbol, b.ts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or REPO / "src/ops_pipeline_local/data/bars" / f"{args.day.isoformat()}.csv"
    bars = bars_for_day(args.source, args.day)
    write_bars(bars, out)
    counts = {s: sum(1 for b in bars if b.symbol == s) for s in SYMBOLS}
    print(f"wrote {len(bars)} bars to {out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
