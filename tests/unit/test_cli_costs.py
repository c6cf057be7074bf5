"""`replay --slippage-bps N --commission-per-share X` become the stack's SimulationCosts."""

import json
from decimal import Decimal

import pytest

from ops_pipeline.config import SimulationCosts
from ops_pipeline_local.cli import _cost_parameters, build_parser


def parse(*argv: str):
    return build_parser().parse_args(["replay", "--bars", "bars.csv", *argv])


def test_no_cost_options_keep_the_templates_defaults():
    assert _cost_parameters(parse()) == {}


@pytest.mark.parametrize(
    ("argv", "bps", "commission"),
    [
        (["--slippage-bps", "12.5"], "12.5", "0"),
        (["--commission-per-share", "0.005"], "5", "0.005"),
        (["--slippage-bps", "0", "--commission-per-share", "0.01"], "0", "0.01"),
    ],
)
def test_cost_options_override_what_they_name(argv, bps, commission):
    costs = SimulationCosts.from_mapping(
        json.loads(_cost_parameters(parse(*argv))["SimulationCosts"])
    )
    assert costs.slippage_bps == Decimal(bps)
    assert costs.commission_per_share == Decimal(commission)
