"""A backtest sweep's setting: the volume rule's bands and risk limits one run of a parameter sweep
uses, and the PostgreSQL schema that holds that run's rows.

The backtest state machine hands each setting to the signal engine and the dispatcher in their
event (`"setting": {"name": "vol15", "surge_multiplier": 1.5, ...}`); a scheduled run passes none
(or `null`) and the stages use the SPEC's rule and the stack's limits, in the public tables.

A setting's rows must not meet another setting's, nor the live pipeline's: each setting writes
into a schema of its own, `sweep_<name>`, that holds its own copies of the tables the signal engine
and the dispatcher write and read back (`SETTING_TABLES`), made like the public ones (`LIKE ...
INCLUDING ALL`). The stage's connection puts that schema first on its `search_path`, so the same
SQL reads the shared bars, features and news from `public` and writes the setting's own rows. The
schema's name is built here from a validated name only (`NAME`), never from anything else.

`SET search_path` is a session setting: through RDS Proxy it pins the connection to its
client for the invocation (acceptable for a backtest; a scheduled run never sets it, and the
handlers keep a sweep's connection apart from the live one: `db.ConnectionCache` per use).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from ops_pipeline.config import RiskLimits
from ops_pipeline.db import Connection, ConnectionCache
from ops_pipeline.errors import ConfigError, InvalidEventError
from ops_pipeline.signals import SPEC_VOLUME_RULE, SURGE, WEAK, VolumeBand, VolumeRule

NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
SCHEMA_PREFIX = "sweep_"
# The volume rule's keys a setting may move (`signals.VolumeRule`), with the SPEC's values.
VOLUME_KEYS = {
    "weak_from": SPEC_VOLUME_RULE.weak_from,
    "normal_from": SPEC_VOLUME_RULE.normal_from,
    "surge_above": SPEC_VOLUME_RULE.surge_above,
    "weak_multiplier": WEAK.multiplier,
    "surge_multiplier": SURGE.multiplier,
}
RISK_KEYS = tuple(f.name for f in fields(RiskLimits))
# What the signal engine and the dispatcher write, and read back, per setting; parents first.
# Bars, features and news stay shared in `public`.
SETTING_TABLES = (
    "dispatch_deployment",
    "signal_evaluations",
    "dispatch_recommendations",
    "dispatch_executions",
)
# Two stages of one setting that start at once (shards of the signals phase) create its schema
# once: under this transaction-level advisory lock.
SCHEMA_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"ops-pipeline sweep schemas").digest()[:8], "big", signed=True
)


class InvalidSetting(InvalidEventError, ValueError):
    """A sweep's setting in a stage's event is malformed (its name, an unknown key, a value out of
    range): the state machine fails that child under this name, without a retry."""


class SettingChanged(InvalidSetting):
    """A setting's schema holds rows of a setting with the same name and other values."""


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: its name (the schema's), its volume rule, its risk-limit overrides."""

    name: str
    volume: VolumeRule = SPEC_VOLUME_RULE
    risk: Mapping[str, Any] = field(default_factory=dict)  # RiskLimits keys the setting moves
    raw: Mapping[str, Any] = field(default_factory=dict)  # the setting as given (normalised)

    @property
    def schema(self) -> str:
        """`sweep_<name>`: built from the validated name only."""
        return SCHEMA_PREFIX + self.name

    def risk_limits(self, stack: RiskLimits) -> RiskLimits:
        """The stack's limits with this setting's overrides (validated as the parameter is)."""
        if not self.risk:
            return stack
        merged = {key: getattr(stack, key) for key in RISK_KEYS} | dict(self.risk)
        try:
            return RiskLimits.from_mapping(merged)
        except ConfigError as exc:
            raise InvalidSetting(f"setting {self.name!r}: {exc}") from None

    def as_item(self) -> dict[str, Any]:
        """The setting as the state machine's input lists it."""
        return dict(self.raw)

    def describe(self) -> str:
        """`name (key value, ...)`: what a page or an explanation says the setting is."""
        return f"{self.name} ({', '.join(f'{k} {v}' for k, v in self.values().items())})"

    def values(self) -> dict[str, str]:
        """What the setting decides, every value as exact text: the volume rule in full and the
        risk overrides (`"1.5"` and `1.50` are one setting)."""
        rule = self.volume
        volume = {
            "weak_from": rule.weak_from,
            "normal_from": rule.normal_from,
            "surge_above": rule.surge_above,
            "weak_multiplier": rule.weak.multiplier,
            "surge_multiplier": rule.surge.multiplier,
        }
        limits = self.risk_limits(RiskLimits())
        risk = {key: getattr(limits, key) for key in self.risk}
        return {
            key: format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
            for key, value in {**volume, **risk}.items()
        }


def _decimal(name: str, key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidSetting(f"setting {name!r}: {key} must be a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidSetting(f"setting {name!r}: {key} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise InvalidSetting(f"setting {name!r}: {key} must be finite, got {value!r}")
    return number


def parse_setting(raw: Any) -> Setting:
    """A setting from its JSON object: `name` (lower-case letters, digits and `_`, at most 31,
    starting with a letter), any of `VOLUME_KEYS` and of the risk limits' keys. Everything else,
    and a rule whose thresholds are out of order or whose multipliers are not positive, is an
    `InvalidSetting`."""
    if not isinstance(raw, Mapping):
        raise InvalidSetting(f"a setting must be an object with a name, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidSetting(
            f"a setting's name must match {NAME.pattern} (it names the schema {SCHEMA_PREFIX}"
            f"<name>), got {name!r}"
        )
    unknown = sorted(set(raw) - {"name", *VOLUME_KEYS, *RISK_KEYS})
    if unknown:
        raise InvalidSetting(
            f"setting {name!r}: unknown keys {unknown} (known: {sorted(VOLUME_KEYS)} and the risk"
            f" limits {sorted(RISK_KEYS)})"
        )
    volume = {
        key: _decimal(name, key, raw[key]) if key in raw else default
        for key, default in VOLUME_KEYS.items()
    }
    if not Decimal(0) <= volume["weak_from"] <= volume["normal_from"] <= volume["surge_above"]:
        raise InvalidSetting(
            f"setting {name!r}: the bands need 0 <= weak_from <= normal_from <= surge_above, got"
            f" {volume['weak_from']}, {volume['normal_from']}, {volume['surge_above']}"
        )
    for key in ("weak_multiplier", "surge_multiplier"):
        if not Decimal(0) < volume[key] <= Decimal(10):
            raise InvalidSetting(f"setting {name!r}: {key} must be above 0 and at most 10")
    rule = VolumeRule(
        weak_from=volume["weak_from"],
        normal_from=volume["normal_from"],
        surge_above=volume["surge_above"],
        weak=VolumeBand(volume["weak_multiplier"], WEAK.name),
        surge=VolumeBand(volume["surge_multiplier"], SURGE.name),
    )
    risk = {key: raw[key] for key in RISK_KEYS if key in raw}
    setting = Setting(
        name, rule, risk, {"name": name, **{k: raw[k] for k in sorted(raw) if k != "name"}}
    )
    setting.risk_limits(RiskLimits())  # the overrides are checked now, not at the first dispatch
    return setting


def event_setting(event: Mapping[str, Any]) -> Setting | None:
    """The event's `setting` (a sweep's), validated; None when the event has none (or `null`)."""
    raw = event.get("setting")
    return None if raw is None else parse_setting(raw)


def parse_settings(raw: Any) -> list[Setting]:
    """A sweep's list of settings, each valid, their names distinct."""
    if not isinstance(raw, list) or not raw:
        raise InvalidSetting(f"settings must be a non-empty list of objects, got {raw!r}")
    settings = [parse_setting(item) for item in raw]
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise InvalidSetting(f"two settings share a name: {names}")
    return settings


def _schema_sql(schema: str) -> str:
    """Open a transaction that holds `SCHEMA_LOCK_KEY`, create the setting's schema and tables if
    missing, and put the schema first on the session's search_path (kept after COMMIT): one
    simple-protocol round trip. `schema` is `Setting.schema`, built from a validated name; the
    tables are ours."""
    tables = "\n".join(
        f"CREATE TABLE IF NOT EXISTS {schema}.{table} (LIKE public.{table} INCLUDING ALL"
        + (
            f", FOREIGN KEY (recommendation_id) REFERENCES {schema}.dispatch_recommendations (id)"
            if table == "dispatch_executions"
            else ""
        )
        + ");"
        for table in SETTING_TABLES
    )
    return (
        "BEGIN;\n"
        f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY});\n"
        f"CREATE SCHEMA IF NOT EXISTS {schema};\n"
        f"{tables}\n"
        f"CREATE TABLE IF NOT EXISTS {schema}.sweep_setting (\n"
        "    one boolean PRIMARY KEY DEFAULT true CHECK (one), setting jsonb NOT NULL);\n"
        f"SET search_path = {schema}, public;"
    )


# The features the setting has not evaluated (migration 010), in the setting's schema (first on the
# search_path once `_schema_sql` has run): all of them when the schema is new; from then on the
# features' trigger fills it, as it fills the public one.
SETTING_DUE_QUEUE = """
DO $$
BEGIN
    IF to_regclass(format('%I.signal_evaluations_due', current_schema())) IS NULL THEN
        EXECUTE format('CREATE TABLE %I.signal_evaluations_due'
                       ' (LIKE public.signal_evaluations_due INCLUDING ALL)', current_schema());
        EXECUTE format('INSERT INTO %I.signal_evaluations_due (ticker, ts)'
                       ' SELECT ticker, ts FROM public.lane_features', current_schema());
    END IF;
END
$$
"""

RECORD_SETTING = """
WITH stored AS (
    INSERT INTO sweep_setting (setting) VALUES (CAST(:setting AS jsonb))
    ON CONFLICT DO NOTHING RETURNING setting
)
SELECT setting::text FROM stored UNION ALL SELECT setting::text FROM sweep_setting
"""


def enter_setting(conn: Connection, setting: Setting) -> None:
    """Make `conn` read and write `setting`'s rows: its schema (created on first use) first on
    the search_path, `public` after it. The schema records the values it was made for; the same
    name with other values is a `SettingChanged` (drop the schema, or name the setting anew).
    Four round trips, in one transaction under the lock: the first run of a setting creates
    and records it, the others (shards starting at once) find it."""
    if not NAME.match(setting.name):  # never reached with a parsed setting; the SQL needs it
        raise InvalidSetting(f"setting name {setting.name!r} does not match {NAME.pattern}")
    wanted = setting.values()
    try:
        conn.run(_schema_sql(setting.schema))
        conn.run(SETTING_DUE_QUEUE)
        stored = [
            json.loads(text) for (text,) in conn.run(RECORD_SETTING, setting=json.dumps(wanted))
        ]
        if stored != [wanted]:
            raise SettingChanged(
                f"schema {setting.schema} holds the rows of setting {stored[:1]}, not {wanted}:"
                f" drop it (DROP SCHEMA {setting.schema} CASCADE) or name this setting anew"
            )
        conn.run("COMMIT")
    except BaseException:
        with suppress(Exception):  # a lost connection has rolled back already
            conn.run("ROLLBACK")
        raise


class SettingNotFound(InvalidSetting):
    """No setting of that name has run in this database (it has no schema `sweep_<name>`)."""


# The settings that have run here: the schemas `enter_setting` made (with their record).
STORED_SETTINGS = """
SELECT substr(nspname, 7) FROM pg_namespace
WHERE starts_with(nspname, 'sweep_')
  AND to_regclass(format('%I.sweep_setting', nspname)) IS NOT NULL
ORDER BY 1
"""


def read_setting(conn: Connection, name: str) -> Setting:
    """Make `conn` read the rows of the sweep's setting `name` as its stages wrote them (its
    schema first on the search_path, `public` after it), creating nothing; return the setting as
    it ran (the values its schema recorded). A name that has not run here is a `SettingNotFound`
    that names the settings that have."""
    if not NAME.match(name):
        raise InvalidSetting(f"a setting's name must match {NAME.pattern}, got {name!r}")
    names = [n for (n,) in conn.run(STORED_SETTINGS)]
    if name not in names:
        held = ", ".join(names) or "none (a backtest with --sweep makes them)"
        raise SettingNotFound(f"no setting {name!r} has run in this database; settings: {held}")
    conn.run(
        "SELECT set_config('search_path', :path, false)", path=f"{SCHEMA_PREFIX}{name}, public"
    )
    ((recorded,),) = conn.run("SELECT setting::text FROM sweep_setting")
    return parse_setting({"name": name, **json.loads(recorded)})


def setting_connection(cache: ConnectionCache, setting: Setting) -> Connection:
    """The cache's connection, in `setting`'s schema. A handler keeps this cache apart from the
    one a scheduled run uses, whose connection never has its search_path set."""
    conn = cache.get()
    enter_setting(conn, setting)
    return conn
