"""A backtest sweep's setting: validated before it names a schema or moves a rule."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ops_pipeline.config import RiskLimits
from ops_pipeline.signals import SPEC_VOLUME_RULE, SignalInput, assess, volume_band
from ops_pipeline.sweep import (
    InvalidSetting,
    event_setting,
    parse_setting,
    parse_settings,
)

D = Decimal


def test_a_setting_moves_the_volume_bands_and_the_multipliers():
    setting = parse_setting(
        {"name": "vol15", "weak_from": 0.4, "surge_above": "2.5", "surge_multiplier": 1.5}
    )
    assert setting.schema == "sweep_vol15"
    rule = setting.volume
    assert volume_band(D("0.45"), rule).name == "WEAK"  # the SPEC's rule kills it
    assert volume_band(D("0.45")).name == "KILL"
    assert volume_band(D("2.6"), rule).multiplier == D("1.5")
    assert volume_band(D("2.6")).multiplier == D("1.0")
    # the SPEC's own values, untouched
    assert parse_setting({"name": "spec"}).volume == SPEC_VOLUME_RULE


def test_the_recommendation_says_the_setting_s_multiplier():
    bar = SignalInput(
        "AAPL",
        ts=datetime(2019, 2, 12, 15, 0, tzinfo=UTC),
        close=D("101"),
        sma20=D("100.5"),
        sma50=D("100"),
        prev_close=D("100"),
        prev_sma20=D("100.4"),
        volume_ratio=D("3.5"),
    )
    rec, reason = assess(bar, volume=parse_setting({"name": "s", "surge_multiplier": 1.5}).volume)
    assert rec is not None and rec.confidence == D("0.9000") and rec.volume_multiplier == D("1.5")
    assert "is SURGE: x1.5" in reason
    assert assess(bar)[0].confidence == D("0.7800")  # the SPEC's 1.3


def test_risk_limit_overrides_apply_over_the_stack_s():
    setting = parse_setting({"name": "picky", "min_confidence": "0.7", "max_open_positions": 3})
    stack = RiskLimits(max_daily_loss=D("500"))
    limits = setting.risk_limits(stack)
    assert limits.min_confidence == D("0.7") and limits.max_open_positions == 3
    assert limits.max_daily_loss == D("500")  # the stack's, not the default
    assert parse_setting({"name": "plain"}).risk_limits(stack) is stack


def test_the_same_setting_written_two_ways_has_the_same_values():
    one = parse_setting({"name": "a", "surge_multiplier": "1.50", "min_confidence": 0.6})
    other = parse_setting({"name": "a", "surge_multiplier": 1.5, "min_confidence": "0.60"})
    assert one.values() == other.values()
    assert one.values()["surge_multiplier"] == "1.5"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("vol13", "must be an object"),
        ({}, "name must match"),
        ({"name": "Vol13"}, "name must match"),
        ({"name": "sweep-1"}, "name must match"),
        ({"name": "a; DROP TABLE x"}, "name must match"),
        ({"name": "a" * 32}, "name must match"),
        ({"name": "v", "surge_mult": 1.5}, "unknown keys ['surge_mult']"),
        ({"name": "v", "surge_multiplier": "lots"}, "must be a number"),
        ({"name": "v", "surge_multiplier": True}, "must be a number"),
        ({"name": "v", "surge_multiplier": "NaN"}, "must be finite"),
        ({"name": "v", "surge_multiplier": 0}, "above 0"),
        ({"name": "v", "weak_from": 1.5}, "weak_from <= normal_from <= surge_above"),
        ({"name": "v", "normal_from": 4}, "weak_from <= normal_from <= surge_above"),
        ({"name": "v", "min_confidence": 2}, "min_confidence must be between"),
        ({"name": "v", "max_open_positions": 1.5}, "whole number"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(raw, says):
    with pytest.raises(InvalidSetting) as refused:
        parse_setting(raw)
    assert says in str(refused.value)
    assert isinstance(refused.value, ValueError)  # the CLI reports it as bad input


def test_an_event_without_a_setting_is_the_stack_s_own():
    assert event_setting({"time": "2019-02-12T15:00:00Z"}) is None
    assert event_setting({"setting": None}) is None
    assert event_setting({"setting": {"name": "a"}}).name == "a"


def test_a_sweep_s_names_are_distinct():
    with pytest.raises(InvalidSetting, match="share a name"):
        parse_settings([{"name": "a"}, {"name": "a", "weak_from": 0.4}])
    with pytest.raises(InvalidSetting, match="non-empty list"):
        parse_settings([])
