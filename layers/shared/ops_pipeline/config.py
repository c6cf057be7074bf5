"""Run-time settings, read from SSM parameters and Secrets Manager with Powertools Parameters.

Parameter names are never typed here: `template.yaml` declares each parameter once and hands its
name to the functions through an environment variable (the `*_PARAM` names below).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities import parameters

from ops_pipeline.errors import ConfigError
from ops_pipeline.observability import logger

PARAMETER_MAX_AGE_SECONDS = 60
SECRET_MAX_AGE_SECONDS = 300

# Environment variables that carry parameter names (set by template.yaml).
TICKERS_PARAM = "TICKERS_PARAM"
FEEDS_PARAM = "FEEDS_PARAM"
TRADING_MODE_PARAM = "TRADING_MODE_PARAM"
TRADING_STATE_PARAM = "TRADING_STATE_PARAM"
RISK_LIMITS_PARAM = "RISK_LIMITS_PARAM"
ALPACA_SECRET_ARN = "ALPACA_SECRET_ARN"
# The louder setting live money needs, beside trading mode `live`.
LIVE_TRADING_CONFIRMATION = "LIVE_TRADING_CONFIRMATION"
LIVE_TRADING_PHRASE = "I-ACCEPT-REAL-MONEY-RISK"

_TICKER = re.compile(r"^[A-Z]{1,5}(\.[A-Z])?$")


class TradingMode(StrEnum):
    SIMULATION = "simulation"
    PAPER = "paper"
    LIVE = "live"


class TradingState(StrEnum):
    """The kill switch: `active` trades, `reducing` only sells, `halted` sends nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True)
class RiskLimits:
    min_confidence: Decimal = Decimal("0.5")
    max_notional_per_order: Decimal = Decimal("10000")
    max_position_notional: Decimal = Decimal("25000")
    recommendation_ttl_minutes: int = 5

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> RiskLimits:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"risk limits: unknown keys {sorted(unknown)}")
        defaults = cls()

        def decimal(key: str, default: Decimal) -> Decimal:
            return Decimal(str(raw[key])) if key in raw else default

        try:
            limits = cls(
                min_confidence=decimal("min_confidence", defaults.min_confidence),
                max_notional_per_order=decimal(
                    "max_notional_per_order", defaults.max_notional_per_order
                ),
                max_position_notional=decimal(
                    "max_position_notional", defaults.max_position_notional
                ),
                recommendation_ttl_minutes=int(
                    raw.get("recommendation_ttl_minutes", defaults.recommendation_ttl_minutes)
                ),
            )
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise ConfigError(f"risk limits: {exc}") from exc
        if not Decimal(0) <= limits.min_confidence <= Decimal("1.3"):
            raise ConfigError("risk limits: min_confidence must be between 0 and 1.3")
        if limits.max_notional_per_order <= 0 or limits.max_position_notional <= 0:
            raise ConfigError("risk limits: notional limits must be positive")
        if limits.recommendation_ttl_minutes < 1:
            raise ConfigError("risk limits: recommendation_ttl_minutes must be at least 1")
        return limits


@dataclass(frozen=True)
class Feed:
    name: str
    url: str


@dataclass(frozen=True)
class AlpacaCredentials:
    key_id: str
    secret_key: str

    def __repr__(self) -> str:  # never let a secret reach a log line
        return "AlpacaCredentials(key_id=***, secret_key=***)"


def _parameter_name(env_var: str) -> str:
    name = os.environ.get(env_var)
    if not name:
        raise ConfigError(f"environment variable {env_var} (an SSM parameter name) is not set")
    return name


def _parameter(env_var: str) -> str:
    name = _parameter_name(env_var)
    try:
        return parameters.get_parameter(name, max_age=PARAMETER_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigError(f"SSM parameter {name} could not be read: {exc}") from exc


def parse_tickers(raw: str) -> tuple[str, ...]:
    """`AAPL, msft,BRK.B` → ('AAPL', 'MSFT', 'BRK.B'); malformed entries are logged and skipped."""
    tickers: list[str] = []
    for entry in raw.split(","):
        symbol = entry.strip().upper()
        if not symbol:
            continue
        if not _TICKER.match(symbol):
            logger.warning("skipping malformed ticker in parameter", extra={"ticker": entry})
            continue
        if symbol not in tickers:
            tickers.append(symbol)
    if not tickers:
        raise ConfigError(f"no valid ticker in {raw!r}")
    return tuple(tickers)


def parse_feeds(raw: str) -> tuple[Feed, ...]:
    """A JSON list of `{"name": ..., "url": ...}`; malformed entries are logged and skipped."""
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"feed list is not JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise ConfigError("feed list must be a JSON list")
    feeds = []
    for entry in entries:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("url"), str)
            and entry["url"].startswith(("http://", "https://"))
        ):
            feeds.append(Feed(entry["name"], entry["url"]))
        else:
            logger.warning("skipping malformed feed entry", extra={"entry": entry})
    return tuple(feeds)


def tickers() -> tuple[str, ...]:
    return parse_tickers(_parameter(TICKERS_PARAM))


def feeds() -> tuple[Feed, ...]:
    return parse_feeds(_parameter(FEEDS_PARAM))


def trading_mode() -> TradingMode:
    raw = _parameter(TRADING_MODE_PARAM).strip().lower()
    try:
        mode = TradingMode(raw)
    except ValueError as exc:
        raise ConfigError(f"trading mode must be simulation, paper or live, got {raw!r}") from exc
    if (
        mode is TradingMode.LIVE
        and os.environ.get(LIVE_TRADING_CONFIRMATION) != LIVE_TRADING_PHRASE
    ):
        raise ConfigError(
            "trading mode is 'live' but the stack parameter LiveTradingConfirmation is not set: "
            "refusing to trade real money"
        )
    return mode


def trading_state() -> TradingState:
    raw = _parameter(TRADING_STATE_PARAM).strip().lower()
    try:
        return TradingState(raw)
    except ValueError as exc:
        raise ConfigError(f"trading state must be active, reducing or halted, got {raw!r}") from exc


def risk_limits() -> RiskLimits:
    raw = _parameter(RISK_LIMITS_PARAM)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"risk limits are not JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError("risk limits must be a JSON object")
    return RiskLimits.from_mapping(values)


def alpaca_credentials(*, force_fetch: bool = False) -> AlpacaCredentials:
    """The Alpaca keys, from the Secrets Manager secret the template creates (cached for
    `SECRET_MAX_AGE_SECONDS`; `force_fetch` reads it again now, as after a 401)."""
    arn = _parameter_name(ALPACA_SECRET_ARN)
    try:
        secret = parameters.get_secret(
            arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch
        )
    except (
        parameters.exceptions.GetParameterError,
        parameters.exceptions.TransformParameterError,
    ) as exc:
        raise ConfigError(f"Alpaca secret could not be read: {exc}") from exc
    key_id, secret_key = secret.get("key_id"), secret.get("secret_key")
    if not key_id or not secret_key or "REPLACE" in f"{key_id}{secret_key}":
        raise ConfigError(
            "the Alpaca secret has no key yet: put key_id and secret_key into it (see README, Deploy)"
        )
    return AlpacaCredentials(key_id, secret_key)
