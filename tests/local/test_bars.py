import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from paths import BUNDLED_BARS_DIR, TEST_DATA

from ops_pipeline_local.bars import NEW_YORK, Bar, convert_alpha_vantage, read_bars, write_bars

SOURCE = TEST_DATA / "alpha_vantage"  # one day (2019-02-12) of the Alpha Vantage export
BUNDLED = BUNDLED_BARS_DIR / "2019-02-12.csv"
HEADER = "symbol,timestamp,open,high,low,close,volume\n"


def _bar(symbol: str, minute: int, close: str = "10") -> Bar:
    ts = datetime(2019, 2, 12, 14, 30 + minute, tzinfo=UTC)
    price = Decimal(close)
    return Bar(symbol, ts, price, price, price, price, 100)


def test_convert_alpha_vantage_gives_utc_start_times_ascending() -> None:
    bars = convert_alpha_vantage(SOURCE / "AAPL_1min.csv", "AAPL")
    day = [b for b in bars if b.ts.date() == datetime(2019, 2, 12).date()]
    assert day[0].ts == datetime(2019, 2, 12, 14, 30, tzinfo=UTC)  # 09:31 ET end label
    assert day[-1].ts == datetime(2019, 2, 12, 20, 59, tzinfo=UTC)  # 16:00 ET end label
    assert len(day) == 390
    assert all(a.ts < b.ts for a, b in zip(bars, bars[1:], strict=False))
    assert all(b.ts.tzinfo is UTC and b.symbol == "AAPL" for b in bars)
    first = day[0]  # source row: 2019-02-12 09:31:00,170.1,170.17,169.85,170.08,660613
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("170.1"),
        Decimal("170.17"),
        Decimal("169.85"),
        Decimal("170.08"),
        660613,
    )


def test_the_bundled_export_converts_to_the_bundled_day() -> None:
    """`scripts/bundle_bars.py` made the bundled files with this converter."""
    converted = convert_alpha_vantage(SOURCE / "AAPL_1min.csv", "AAPL")
    assert converted == [b for b in read_bars(BUNDLED) if b.symbol == "AAPL"]


def test_five_sessions_are_bundled_each_whole() -> None:
    files = sorted(BUNDLED_BARS_DIR.glob("*.csv"))
    assert [f.stem for f in files] == [f"2019-02-{d}" for d in range(11, 16)]
    for file in files:
        bars = read_bars(file)
        assert {b.symbol for b in bars} == {"AAPL", "AMZN", "MSFT", "TSLA", "SPY"}
        times = sorted({b.ts.astimezone(NEW_YORK).strftime("%H:%M") for b in bars})
        assert (times[0], times[-1]) == ("09:30", "15:59"), file
        assert {b.ts.astimezone(NEW_YORK).date().isoformat() for b in bars} == {file.stem}
    assert (BUNDLED_BARS_DIR / "ATTRIBUTION.md").is_file()


def test_bundled_day_is_canonical_and_complete() -> None:
    bars = read_bars(BUNDLED)
    assert {b.symbol for b in bars} == {"AAPL", "AMZN", "MSFT", "TSLA", "SPY"}
    assert min(b.ts for b in bars) == datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
    assert max(b.ts for b in bars) == datetime(2019, 2, 12, 20, 59, tzinfo=UTC)
    assert bars == sorted(bars, key=lambda b: (b.symbol, b.ts))
    assert BUNDLED.read_text().startswith(HEADER + "AAPL,2019-02-12T14:30:00+00:00,")


def test_malformed_rows_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        HEADER
        + "AAPL,2019-02-12T14:31:00+00:00,1,2,1,1.5,10\n"  # line 2: ok
        + "AAPL,2019-02-12T14:32:00+00:00,1,x,1,1.5,10\n"  # 3: bad number
        + "AAPL,2019-02-12T14:33:00+00:00,1,2,1,,10\n"  # 4: missing close
        + "AAPL,2019-02-12T14:34:00,1,2,1,1.5,10\n"  # 5: naive timestamp
        + "AAPL,2019-02-12T14:35:00+00:00,1,1,2,1.5,10\n"  # 6: high < low
        + "AAPL,2019-02-12T14:36:00+00:00,1,2,1,1.5,-1\n"  # 7: negative volume
        + "AAPL,2019-02-12T14:37:00+00:00,1,2,1,1.5\n"  # 8: missing volume
        + "AAPL,2019-02-12T09:30:00-05:00,1,2,1,1.5,10\n"  # 9: ok, offset -> UTC
        + "AAPL,2019-02-12T14:31:00+00:00,1,2,1,1.5,10\n"  # 10: exact duplicate of line 2
    )
    with caplog.at_level(logging.WARNING, logger="ops_pipeline_local.bars"):
        bars = read_bars(path)
    assert [b.ts for b in bars] == [
        datetime(2019, 2, 12, 14, 30, tzinfo=UTC),
        datetime(2019, 2, 12, 14, 31, tzinfo=UTC),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 6
    for line, reason in [
        (3, "bad number"),
        (4, "missing"),
        (5, "naive"),
        (6, "high"),
        (7, "negative volume"),
        (8, "missing"),
    ]:
        assert any(f"{path}:{line}:" in m and reason in m for m in messages), (line, messages)


def test_write_then_read_round_trips_and_folder_reading(tmp_path: Path) -> None:
    bars = [_bar("MSFT", 1, "105.125"), _bar("AAPL", 0, "170.2461"), _bar("AAPL", 1)]
    write_bars(bars[:2], tmp_path / "a.csv")
    write_bars(bars[1:], tmp_path / "b.csv")  # AAPL minute 0 appears in both files
    (tmp_path / "notes.txt").write_text("ignored")
    assert read_bars(tmp_path) == sorted(bars, key=lambda b: (b.symbol, b.ts))
    assert read_bars(tmp_path / "a.csv") == [bars[1], bars[0]]
