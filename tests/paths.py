"""Where the tests' data lives: only in this checkout. The bundled bars that `make run` replays
(`src/ops_pipeline_local/data/bars/`, five sessions, 2019-02-11 to 2019-02-15) and the tests' own
data (`tests/data/`: an Alpha Vantage export of one day, feedparser's test corpus), each with its
source and licence beside it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_BARS_DIR = ROOT / "src" / "ops_pipeline_local" / "data" / "bars"
BUNDLED_BARS = BUNDLED_BARS_DIR / "2019-02-12.csv"
TEST_DATA = ROOT / "tests" / "data"


def bundled_day(day: date) -> Path:
    """The bundled bars of one New York trading day (2019-02-11 to 2019-02-15)."""
    return BUNDLED_BARS_DIR / f"{day.isoformat()}.csv"
