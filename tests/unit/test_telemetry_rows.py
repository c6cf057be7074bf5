"""The ingest's quick reading of bars of plain JSON numbers (`telemetry.closed_rows`) takes exactly
the bars `telemetry.parse_bar` takes, with the same values, and leaves every other bar to it."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ops_pipeline import telemetry

MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
T = "2019-02-12T14:30:00Z"


def raw(**fields: Any) -> dict[str, Any]:
    bar = {"t": T, "o": 170.5, "h": 171.25, "l": 169.0, "c": 170.75, "v": 1000, "n": None}
    return {**bar, "vw": None, **fields}


CASES = [
    {},
    {"o": 170, "h": 172, "l": 169, "c": 171},
    {"vw": 170.125, "n": 12},
    {"o": 171.25, "c": 169.0},  # open at the high, close at the low
    {"o": 0.0001, "h": 0.0002, "l": 0.0001, "c": 0.0002},
    {"o": 1e-07, "h": 1e-07, "l": 1e-07, "c": 1e-07},
    {"o": 1e16, "h": 1e16, "l": 1e16, "c": 1e16},
    {"o": True},
    {"v": True},
    {"v": 1000.0},
    {"v": 1000.5},
    {"v": -1},
    {"v": "1000"},
    {"o": "170.5"},
    {"o": Decimal("170.5")},
    {"o": float("nan")},
    {"h": float("inf")},
    {"o": 0},
    {"l": -1.0},
    {"h": 168.0},
    {"l": 171.0},
    {"n": 3.0},
    {"vw": float("nan")},
    {"vw": "170.1"},
]


def reference(case: dict[str, Any]) -> telemetry.Bar | None:
    try:
        return telemetry.parse_bar("BBB", case)
    except telemetry.MalformedBar:
        return None


def quick(case: dict[str, Any]) -> telemetry.Bar | None:
    # AAA's good bar parses the minute first: BBB's bar at the same minute takes the quick path
    bars = telemetry.closed_bars({"AAA": [raw()], "BBB": [case]}, ["AAA", "BBB"], MINUTE)
    return next((b for b in bars if b.ticker == "BBB"), None)


@pytest.mark.parametrize("fields", CASES, ids=[repr(c) for c in CASES])
def test_a_bar_is_taken_or_refused_as_parse_bar_decides(fields: dict[str, Any]) -> None:
    case = raw(**fields)
    assert repr(quick(case)) == repr(reference(case))  # repr: a NaN vwap equals itself


def test_random_prices_read_as_parse_bar_reads_them() -> None:
    rng = random.Random(18)
    for _ in range(2_000):
        places = rng.randint(0, 6)
        prices = [round(rng.uniform(0.5, 2_000), places) for _ in range(4)]
        if rng.random() < 0.2:
            prices[rng.randrange(4)] = prices[rng.randrange(4)]  # ties at the high or the low
        o, h, low, c = (rng.choice(prices) for _ in range(4))
        case = raw(o=o, h=h, l=low, c=c, vw=rng.choice([None, prices[0]]))
        assert repr(quick(case)) == repr(reference(case)), case


def test_rows_carry_the_text_parse_bar_reads() -> None:
    (row,) = telemetry.closed_rows({"AAA": [raw(vw=170.125)]}, ["AAA"], MINUTE)
    bar = telemetry.parse_bar("AAA", raw(vw=170.125))
    assert [Decimal(str(v)) for v in row[2:6] + (row[8],)] == [
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.vwap,
    ]


def test_the_state_read_names_the_primary_as_migration_011s_partial_index_does() -> None:
    # READ_STATE skips the primary's window check for tickers without another provider's bar,
    # through an index whose predicate names the primary literally
    migration = (
        Path(telemetry.__file__).parent / "migrations" / "011_telemetry_window_index.sql"
    ).read_text()
    literal = f"source <> '{telemetry.PRIMARY_SOURCE}'"
    assert literal in migration and literal in telemetry.READ_STATE
