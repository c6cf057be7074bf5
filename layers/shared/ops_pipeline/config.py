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
SIMULATION_COSTS_PARAM = "SIMULATION_COSTS_PARAM"
# The stack's name: hashed into every client_order_id prefix (two stacks on one account).
DEPLOYMENT_ID = "DEPLOYMENT_ID"
ALPACA_SECRET_ARN = "ALPACA_SECRET_ARN"
# The louder setting live money needs, beside trading mode `live`.
LIVE_TRADING_CONFIRMATION = "LIVE_TRADING_CONFIRMATION"
LIVE_TRADING_PHRASE = "I-ACCEPT-REAL-MONEY-RISK"
# What template.yaml puts in the Alpaca secret until the operator stores the real keys.
ALPACA_PLACEHOLDER = "REPLACE_ME"

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
    """The dispatcher's limits (the JSON of the `risk_limits` SSM parameter; every key optional).

    `max_daily_loss`: once the day's result (the day's recorded fills, net of commission, marked at
    the last close, plus the move of the positions carried overnight since the previous regular
    close: `risk.day_result`) is at or below minus this amount, only position-reducing orders go
    through.
    `max_open_positions`: a BUY may not open a position in a new ticker beyond this many.
    `max_trades_per_ticker_per_day`: orders (sent or filled) per ticker per New York day.
    `cooldown_minutes_after_fill`: no BUY for a ticker within this many minutes of its last fill.
    `max_decision_age_seconds`: paper and live: an order goes out only while the broker's clock
    is at most this many seconds past the minute it was decided for (a late run is refused as
    stale).
    """

    min_confidence: Decimal = Decimal("0.5")
    max_notional_per_order: Decimal = Decimal("10000")
    max_position_notional: Decimal = Decimal("25000")
    recommendation_ttl_minutes: int = 5
    max_daily_loss: Decimal = Decimal("2500")
    max_open_positions: int = 10
    max_trades_per_ticker_per_day: int = 20
    cooldown_minutes_after_fill: int = 2
    max_decision_age_seconds: int = 60

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> RiskLimits:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"risk limits: unknown keys {sorted(unknown)}")
        defaults = cls()
        values: dict[str, Any] = {}
        try:
            for key in cls.__dataclass_fields__:
                default = getattr(defaults, key)
                if key not in raw:
                    values[key] = default
                elif isinstance(default, Decimal):
                    values[key] = Decimal(str(raw[key]))
                else:
                    value = raw[key]
                    if isinstance(value, bool) or (
                        isinstance(value, float) and not value.is_integer()
                    ):
                        raise ValueError(f"{key} must be a whole number, got {value!r}")
                    values[key] = int(value)
            limits = cls(**values)
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise ConfigError(f"risk limits: {exc}") from exc
        if not Decimal(0) <= limits.min_confidence <= Decimal("1.3"):
            raise ConfigError("risk limits: min_confidence must be between 0 and 1.3")
        if min(limits.max_notional_per_order, limits.max_position_notional) <= 0:
            raise ConfigError("risk limits: notional limits must be positive")
        if limits.recommendation_ttl_minutes < 1:
            raise ConfigError("risk limits: recommendation_ttl_minutes must be at least 1")
        if limits.max_daily_loss <= 0:
            raise ConfigError("risk limits: max_daily_loss must be positive")
        if min(limits.max_open_positions, limits.max_trades_per_ticker_per_day) < 1:
            raise ConfigError(
                "risk limits: max_open_positions and max_trades_per_ticker_per_day must be >= 1"
            )
        if limits.cooldown_minutes_after_fill < 0:
            raise ConfigError("risk limits: cooldown_minutes_after_fill must be >= 0")
        if limits.max_decision_age_seconds < 1:
            raise ConfigError("risk limits: max_decision_age_seconds must be at least 1")
        return limits


@dataclass(frozen=True)
class SimulationCosts:
    """What a simulated fill costs: slippage against the order, and commission per share.

    Defaults: 5 bps of slippage (half a typical large-cap spread plus impact for small orders)
    and no commission (Alpaca charges none on US stocks).
    """

    slippage_bps: Decimal = Decimal("5")
    commission_per_share: Decimal = Decimal("0")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> SimulationCosts:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"simulation costs: unknown keys {sorted(unknown)}")
        try:
            costs = cls(
                slippage_bps=Decimal(str(raw.get("slippage_bps", cls.slippage_bps))),
                commission_per_share=Decimal(
                    str(raw.get("commission_per_share", cls.commission_per_share))
                ),
            )
        except InvalidOperation as exc:
            raise ConfigError(f"simulation costs: {exc}") from exc
        if not costs.slippage_bps.is_finite() or not Decimal(0) <= costs.slippage_bps <= 1000:
            raise ConfigError("simulation costs: slippage_bps must be between 0 and 1000")
        if not costs.commission_per_share.is_finite() or costs.commission_per_share < 0:
            raise ConfigError("simulation costs: commission_per_share must be >= 0")
        return costs


@dataclass(frozen=True)
class Feed:
    name: str
    url: str


class CredentialsMissingError(ConfigError):
    """The Alpaca secret exists but holds no keys yet (the stack's placeholder, or empty fields):
    an operator must put them in; until then nothing that needs Alpaca can run."""


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


def _json_object(env_var: str, what: str) -> dict[str, Any]:
    raw = _parameter(env_var)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} are not JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{what} must be a JSON object")
    return values


def risk_limits() -> RiskLimits:
    return RiskLimits.from_mapping(_json_object(RISK_LIMITS_PARAM, "risk limits"))


def simulation_costs() -> SimulationCosts:
    return SimulationCosts.from_mapping(_json_object(SIMULATION_COSTS_PARAM, "simulation costs"))


def deployment_id() -> str:
    """The stack's name (set by template.yaml; the local runtime sets its own stack's)."""
    value = os.environ.get(DEPLOYMENT_ID, "").strip()
    if not value:
        raise ConfigError(f"environment variable {DEPLOYMENT_ID} (the stack name) is not set")
    return value


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
    if not isinstance(secret, dict):
        raise ConfigError("the Alpaca secret must be a JSON object with key_id and secret_key")
    key_id, secret_key = secret.get("key_id"), secret.get("secret_key")
    if is_placeholder(key_id) or is_placeholder(secret_key):
        raise CredentialsMissingError(
            "the Alpaca secret still holds its placeholder: put key_id and secret_key into it"
            " (docs/deploy.md#credentials-missing)"
        )
    return AlpacaCredentials(str(key_id), str(secret_key))


def is_placeholder(value: object) -> bool:
    """Is this field of the Alpaca secret still unset (empty, or the stack's placeholder)?"""
    return not isinstance(value, str) or not value.strip() or ALPACA_PLACEHOLDER in value
