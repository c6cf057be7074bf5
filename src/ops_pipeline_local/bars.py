"""Canonical 1-minute bar CSV I/O and conversion from the Alpha Vantage layout.

Canonical CSV: header ``symbol,timestamp,open,high,low,close,volume``; ``timestamp`` is the
bar's START time, ISO-8601 with a UTC offset (``2019-02-12T14:30:00+00:00``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from ops_pipeline.event_time import ONE_MINUTE

log = logging.getLogger(__name__)

CANONICAL_HEADER = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
ALPHA_VANTAGE_HEADER = ("datetime", "open", "high", "low", "close", "volume")
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Bar:
    """One 1-minute OHLCV bar; ``ts`` is the tz-aware UTC start of the minute."""

    symbol: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


class MalformedRow(ValueError):
    pass


def _field(row: dict[str, str | None], name: str) -> str:
    value = row.get(name)
    if value is None or not value.strip():
        raise MalformedRow(f"missing field {name!r}")
    return value.strip()


def _price(row: dict[str, str | None], name: str) -> Decimal:
    text = _field(row, name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedRow(f"bad number in {name!r}: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise MalformedRow(f"bad price in {name!r}: {text!r}")
    return value


def _volume(row: dict[str, str | None]) -> int:
    text = _field(row, "volume")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedRow(f"bad number in 'volume': {text!r}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise MalformedRow(f"volume is not an integer: {text!r}")
    if value < 0:
        raise MalformedRow(f"negative volume: {text!r}")
    return int(value)


def _make_bar(symbol: str, ts: datetime, row: dict[str, str | None]) -> Bar:
    if not symbol:
        raise MalformedRow("missing field 'symbol'")
    bar = Bar(
        symbol=symbol,
        ts=ts.astimezone(UTC),
        open=_price(row, "open"),
        high=_price(row, "high"),
        low=_price(row, "low"),
        close=_price(row, "close"),
        volume=_volume(row),
    )
    if bar.high < bar.low:
        raise MalformedRow(f"high {bar.high} < low {bar.low}")
    return bar


def _canonical_ts(row: dict[str, str | None]) -> datetime:
    text = _field(row, "timestamp")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRow(f"bad timestamp: {text!r}") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise MalformedRow(f"naive timestamp (no UTC offset): {text!r}")
    return ts


def _alpha_vantage_ts(row: dict[str, str | None]) -> datetime:
    """Naive US/Eastern bar END label -> UTC bar START."""
    text = _field(row, "datetime")
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRow(f"bad datetime: {text!r}") from None
    if end.tzinfo is not None:
        raise MalformedRow(f"expected a naive US/Eastern datetime: {text!r}")
    return end.replace(tzinfo=NEW_YORK).astimezone(UTC) - ONE_MINUTE


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str | None]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [name for name in header if name not in (reader.fieldnames or [])]
        if missing:
            log.warning("%s: header lacks %s; file skipped", path, ", ".join(missing))
            return
        for row in reader:
            if None in row:  # more cells than header columns
                log.warning("%s:%d: skipped: too many fields", path, reader.line_num)
                continue
            yield reader.line_num, row


def _dedupe_sorted(bars: Iterable[Bar]) -> list[Bar]:
    by_key: dict[tuple[str, datetime], Bar] = {}
    for bar in bars:
        key = (bar.symbol, bar.ts)
        kept = by_key.setdefault(key, bar)
        if kept != bar:
            log.warning("conflicting bars for %s at %s; kept the first one read", *key)
    return sorted(by_key.values(), key=lambda b: (b.symbol, b.ts))


def _read_canonical_file(path: Path) -> Iterator[Bar]:
    for line, row in _rows(path, CANONICAL_HEADER):
        try:
            yield _make_bar((row.get("symbol") or "").strip(), _canonical_ts(row), row)
        except MalformedRow as exc:
            log.warning("%s:%d: skipped: %s", path, line, exc)


def read_bars(path: Path) -> list[Bar]:
    """Read canonical bar CSV (one file, or every ``*.csv`` in a folder).

    Malformed rows are logged (file, line, reason) and skipped. The result is sorted by
    (symbol, ts) without duplicates; for two different bars with the same key the first is kept.
    """
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    return _dedupe_sorted(bar for file in files for bar in _read_canonical_file(file))


def convert_alpha_vantage(path: Path, symbol: str) -> list[Bar]:
    """Read an Alpha Vantage intraday CSV (``datetime,open,high,low,close,volume``, newest
    first, naive US/Eastern bar END times) into bars labelled by UTC START time, ascending."""
    path = Path(path)
    bars: list[Bar] = []
    for line, row in _rows(path, ALPHA_VANTAGE_HEADER):
        try:
            bars.append(_make_bar(symbol, _alpha_vantage_ts(row), row))
        except MalformedRow as exc:
            log.warning("%s:%d: skipped: %s", path, line, exc)
    return _dedupe_sorted(bars)


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def write_bars(bars: Iterable[Bar], path: Path) -> None:
    """Write bars as canonical CSV (parents created; rows in the order given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CANONICAL_HEADER)
        for bar in bars:
            writer.writerow(
                [
                    bar.symbol,
                    bar.ts.astimezone(UTC).isoformat(),
                    _decimal_text(bar.open),
                    _decimal_text(bar.high),
                    _decimal_text(bar.low),
                    _decimal_text(bar.close),
                    bar.volume,
                ]
            )
