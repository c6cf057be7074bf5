"""The local runtime's shortcuts around moto's interpreter keep it executing the real ASL.

moto parses a definition once per definition (not per execution), Lambda tasks share one client,
and `execute` waits on the execution's thread and describes it once, instead of polling.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ops_pipeline.event_time import iso_minute
from ops_pipeline_local.replay import local_stack

pytestmark = pytest.mark.statemachine

OPEN = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
MACHINE = "MinutePipelineStateMachine"


@pytest.fixture
def stack(conn, database_url, bundled_bars):
    with local_stack(
        bundled_bars, database_url=database_url, parameters={"Tickers": "AAPL,TSLA"}, now=OPEN
    ) as s:
        yield s


def test_executions_parse_once_share_a_client_and_describe_once(stack, monkeypatch):
    runtime, market = stack
    shortcuts = runtime._shortcuts
    parses = []
    original = shortcuts._parse  # moto's AmazonStateLanguageParser.parse, under the cache
    monkeypatch.setattr(
        shortcuts, "_parse", lambda definition: parses.append(definition) or original(definition)
    )
    calls: list[str] = []
    runtime.sfn.meta.events.register(
        "before-call.stepfunctions.*", lambda model, **_: calls.append(model.name)
    )
    results = []
    for m in range(55, 61):
        minute = OPEN + timedelta(minutes=m)
        market.set_time(minute)
        results.append(runtime.execute(MACHINE, {"time": iso_minute(minute)}))
    assert {r.status for r in results} == {"SUCCEEDED"}
    assert sum(r.output["telemetry"]["inserted"] for r in results) > 0
    # each definition was parsed once, when moto validated it at creation; no execution parses
    assert parses == [] and len(shortcuts._programs) == len(runtime.machine_arns)
    assert calls.count("StartExecution") == 6 and calls.count("DescribeExecution") == 6
    lambda_clients = {id(c) for c in runtime._shortcuts._clients.values()}
    assert len(lambda_clients) == 1


def test_each_execution_still_enters_the_real_definitions_states(stack):
    runtime, market = stack
    definition = json.loads(
        (runtime.root / "statemachines" / "minute_pipeline.asl.json").read_text()
    )
    tasks = {name for name, state in definition["States"].items() if state["Type"] == "Task"}
    for m in (58, 59):
        minute = OPEN + timedelta(minutes=m)
        market.set_time(minute)
        result = runtime.execute(MACHINE, {"time": iso_minute(minute)}, name=f"states-{m}")
        assert result.status == "SUCCEEDED"
        arn = runtime.machine_arns[MACHINE].replace(":stateMachine:", ":execution:")
        events = runtime.sfn.get_execution_history(executionArn=f"{arn}:states-{m}")["events"]
        entered = {
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        }
        assert tasks <= entered, tasks - entered
