"""A backtest shard's tickers: the backtest state machine hands each shard's ticker group to the
stages in their event (`"tickers": [...]`); a scheduled run passes none and the stage uses the
stack's universe (the Tickers parameter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ops_pipeline.config import parse_tickers
from ops_pipeline.errors import ConfigError, InvalidEventError


def event_tickers(event: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The event's `tickers` (a shard's group), normalised as the Tickers parameter is; None
    when the event names none. Malformed symbols are logged and skipped; no valid one, or
    something other than a list of strings, is an InvalidEventError."""
    raw = event.get("tickers")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise InvalidEventError(f"tickers must be a list of symbols, got {raw!r}")
    try:
        return parse_tickers(",".join(raw))
    except ConfigError as exc:
        raise InvalidEventError(f"no valid ticker in the event's tickers {raw!r}") from exc
