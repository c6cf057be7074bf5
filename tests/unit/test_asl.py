"""The ASL files, checked where cfn-lint and `sam validate` do not look (DefinitionUri files)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = sorted((ROOT / "statemachines").glob("*.asl.json"))
BACKTEST = ROOT / "statemachines" / "backtest.asl.json"
PIPELINES = [p for p in DEFINITIONS if p != BACKTEST]  # the scheduled ones
TRANSIENT = "TransientError"


def scopes(definition: dict) -> Iterator[tuple[str, dict]]:
    """The top-level state set and every Parallel branch / Map iterator: each is a set of states
    that transitions stay inside (names, though, are one namespace: see duplicate_state_names)."""
    yield "top", definition
    for name, state in definition["States"].items():
        for i, branch in enumerate(state.get("Branches", [])):
            for label, inner in scopes(branch):
                yield f"{name}[{i}].{label}", inner
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from scopes(processor)


def duplicate_state_names(definition: dict) -> list[str]:
    """Names used by more than one state anywhere in the definition, branches included.

    Step Functions requires state names to be unique across the whole definition (Parallel
    branches and Map processors included); CreateStateMachine refuses a duplicate.
    """
    names = [name for _, scope in scopes(definition) for name in scope["States"]]
    return sorted({name for name in names if names.count(name) > 1})


def targets(state: dict) -> list[str]:
    out = [state[k] for k in ("Next", "Default") if k in state]
    out += [choice["Next"] for choice in state.get("Choices", [])]
    out += [catch["Next"] for catch in state.get("Catch", [])]
    return out


@pytest.fixture(params=DEFINITIONS, ids=lambda p: p.name)
def definition(request) -> dict:
    return json.loads(request.param.read_text())


@pytest.fixture(params=PIPELINES, ids=lambda p: p.name)
def pipeline(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_are_two_pipelines_and_the_backtest():
    assert [p.name for p in DEFINITIONS] == [
        "backtest.asl.json",
        "five_minute_pipeline.asl.json",
        "minute_pipeline.asl.json",
    ]


def _lambda_task(state: dict) -> bool:
    """A Task that invokes one of the stack's functions (`${<Function>Arn}`), not an SDK call."""
    return state["Type"] == "Task" and state["Resource"].startswith("${")


def test_state_names_are_unique_across_the_whole_definition(definition):
    assert duplicate_state_names(definition) == []


def test_a_name_reused_inside_a_parallel_branch_is_a_duplicate():
    """The shape that could not be deployed: a branch's failure state named like the top one."""
    fail = {"Type": "Fail", "Error": "Failed"}
    branch = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Pass", "Next": "Pipeline failed"},
            "Pipeline failed": fail,
        },
    }
    nested = {
        "StartAt": "Inner",
        "States": {"Inner": {"Type": "Parallel", "Branches": [branch], "End": True}},
    }
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {"Type": "Parallel", "Branches": [branch, nested], "Next": "Pipeline failed"},
            "Pipeline failed": fail,
        },
    }
    assert duplicate_state_names(definition) == ["Pipeline failed", "Work"]


def test_every_transition_resolves_and_every_state_is_reachable(definition):
    for label, scope in scopes(definition):
        states = scope["States"]
        assert scope["StartAt"] in states, label
        reached, todo = set(), [scope["StartAt"]]
        while todo:
            name = todo.pop()
            if name in reached:
                continue
            reached.add(name)
            for target in targets(states[name]):
                assert target in states, f"{label}: {name} -> {target} does not exist"
                todo.append(target)
            terminal = states[name]["Type"] in ("Succeed", "Fail", "Choice") or states[name].get(
                "End"
            )
            assert terminal or "Next" in states[name], f"{label}: {name} neither ends nor goes on"
        assert reached == set(states), f"{label}: unreachable {set(states) - reached}"


def test_every_task_retries_transient_errors_and_catches_everything(definition):
    for label, scope in scopes(definition):
        for name, state in scope["States"].items():
            if state["Type"] != "Task":
                continue
            retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            if _lambda_task(state):
                assert TRANSIENT in retried and "Lambda.ServiceException" in retried, (
                    f"{label}: {name}"
                )
            else:  # an SDK call retries the service's own transient errors
                assert retried, f"{label}: {name} has no retry"
            assert all(r.get("IntervalSeconds", 1) >= 1 for r in state["Retry"])
            caught = {e for c in state.get("Catch", []) for e in c["ErrorEquals"]}
            assert "States.ALL" in caught, f"{label}: {name} has no catch-all"
            assert state.get("TimeoutSeconds"), f"{label}: {name} has no timeout"


def test_every_task_receives_the_event_minute(definition):
    for label, scope in scopes(definition):
        for name, state in scope["States"].items():
            if _lambda_task(state):
                assert state["Parameters"]["time.$"] == "$.time", f"{label}: {name}"


def test_a_console_execution_with_empty_input_uses_its_start_time(pipeline):
    definition = pipeline
    first = definition["States"][definition["StartAt"]]
    assert first["Type"] == "Choice"
    assert first["Choices"][0] == {
        "Variable": "$.time",
        "IsPresent": True,
        "Next": first["Choices"][0]["Next"],
    }
    fallback = definition["States"][first["Default"]]
    assert fallback["Parameters"] == {"time.$": "$$.Execution.StartTime"}


def test_moto_s_interpreter_parses_the_definition(definition):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = re.sub(
        r"\$\{(\w+)\}", r"arn:aws:lambda:us-east-1:123456789012:function:\1", json.dumps(definition)
    )
    program, _ = AmazonStateLanguageParser.parse(text)
    assert program is not None


def test_the_minute_pipeline_hands_its_window_to_the_stages_that_walk_it():
    minute = json.loads((ROOT / "statemachines" / "minute_pipeline.asl.json").read_text())
    states = minute["States"]
    # Every path from the start reaches the market check with both $.time and $.since set.
    first = states[minute["StartAt"]]
    assert states[first["Default"]]["Next"] in {
        name for name, s in states.items() if s.get("Parameters", {}).get("since.$") == "$.time"
    }
    windowed = [
        name
        for name, s in states.items()
        if s["Type"] == "Task" and s["Parameters"].get("since.$") == "$.since"
    ]
    resources = {states[name]["Resource"] for name in windowed}
    assert resources == {
        "${MarketCheckFunctionArn}",
        "${SignalEngineFunctionArn}",
        "${DispatcherFunctionArn}",
    }


def test_the_backtest_runs_only_in_a_simulation_stack():
    backtest = json.loads(BACKTEST.read_text())
    states = backtest["States"]
    check = states[backtest["StartAt"]]  # the input names its lists, windows and concurrency
    assert check["Type"] == "Choice" and states[check["Default"]]["Type"] == "Fail"
    assert {c["Variable"] for c in check["Choices"][0]["And"]} == {
        "$.shards",
        "$.ranges",
        "$.windows",
        "$.concurrency",
    }
    first = states[check["Choices"][0]["Next"]]
    assert first["Resource"] == "arn:aws:states:::aws-sdk:ssm:getParameter"
    assert first["Parameters"] == {"Name": "${TradingModeParameterName}"}
    (choice,) = [s for s in states.values() if s["Type"] == "Choice" and s is states[first["Next"]]]
    assert choice["Choices"] == [
        {
            "Variable": "$.stack.mode",
            "StringEquals": "simulation",
            "Next": choice["Choices"][0]["Next"],
        }
    ]
    assert states[choice["Default"]]["Type"] == "Fail"


def _phases(definition: dict) -> list[tuple[str, dict]]:
    """The top-level Map states in the order the execution enters them."""
    states, name, out = definition["States"], definition["StartAt"], []
    while name:
        state = states[name]
        if state["Type"] == "Map":
            out.append((name, state))
        name = state.get("Next") or (
            state["Choices"][0]["Next"] if state["Type"] == "Choice" else None
        )
    return out


def _tasks(processor: dict) -> list[dict]:
    """The Task states of a Map's processor, those of Maps nested in it included."""
    out = []
    for state in processor["States"].values():
        if state["Type"] == "Task":
            out.append(state)
        elif state["Type"] == "Map":
            out += _tasks(state["ItemProcessor"])
    return out


def _resources(processor: dict) -> set[str]:
    return {s["Resource"] for s in _tasks(processor)}


def test_the_backtest_shards_bars_features_and_signals_then_dispatches_in_event_order():
    phases = _phases(json.loads(BACKTEST.read_text()))
    assert [_resources(m["ItemProcessor"]) for _, m in phases] == [
        {"${TelemetryIngestorFunctionArn}"},
        {"${FeatureComputerFunctionArn}"},
        {"${SignalEngineFunctionArn}"},
        {"${MarketCheckFunctionArn}", "${DispatcherFunctionArn}"},
    ]
    *sharded, (_, settings) = phases
    # the portfolio once per setting, one setting after the other (the dispatcher's reserved
    # concurrency is 1), each setting's windows in event order
    assert settings["ItemsPath"] == "$.settings" and settings["MaxConcurrency"] == 1
    assert settings["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"
    portfolio = settings["ItemProcessor"]["States"][settings["ItemProcessor"]["StartAt"]]
    keys = []
    for name, state in sharded:
        config = state["ItemProcessor"]["ProcessorConfig"]
        assert config["Mode"] == "DISTRIBUTED", name
        assert config["ExecutionType"] in ("STANDARD", "EXPRESS"), name
        reader = state["ItemReader"]
        assert reader["Resource"] == "arn:aws:states:::s3:getObject", name
        assert reader["ReaderConfig"] == {"InputType": "JSON"}, name
        assert reader["Parameters"]["Bucket"] == "${BacktestBucketName}", name
        keys.append(reader["Parameters"]["Key.$"])
        assert state["MaxConcurrencyPath"] == "$.concurrency", name  # the input sets it
        assert state["ResultPath"] is None, f"{name}: a Map's results would pass 256 KB"
        assert {c["Next"] for c in state["Catch"]} == {"Backtest failed"}
        # children may upsert the same rows at once: a deadlock's victim is retried
        (child,) = _tasks(state["ItemProcessor"])
        assert "DatabaseError" in {e for r in child["Retry"] for e in r["ErrorEquals"]}, name
    # bars and signals per shard (ticker group x date range), features per date range
    assert keys == ["$.shards", "$.ranges", "$.shards"]
    # the portfolio: one window after the other, in the order the input lists them
    assert portfolio["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"
    assert portfolio["ItemsPath"] == "$.windows"
    assert portfolio["MaxConcurrency"] == 1
    shards = [_tasks(state["ItemProcessor"])[0]["Parameters"] for _, state in sharded]
    assert [sorted(p) for p in shards] == [
        ["execution.$", "tickers.$", "time.$"],
        ["execution.$", "time.$"],
        ["execution.$", "setting.$", "since.$", "tickers.$", "time.$"],
    ]
    # the dispatcher gets the window's setting (null: the stack's own)
    dispatch = [t for t in _tasks(portfolio["ItemProcessor"]) if "Dispatcher" in t["Resource"]]
    assert dispatch[0]["Parameters"]["setting.$"] == "$.setting"


def test_a_sweep_shares_bars_and_features_and_runs_signals_and_portfolio_per_setting():
    backtest = json.loads(BACKTEST.read_text())
    states = backtest["States"]
    # without settings in the input, one setting of null: the stack's own, as before sweeps
    (sweep,) = [s for s in states.values() if s["Type"] == "Choice" and "$.settings" in str(s)]
    assert sweep["Choices"][0]["Variable"] == "$.settings"
    default = states[sweep["Default"]]
    assert default["Type"] == "Pass" and default["Result"] == [None]
    assert default["ResultPath"] == "$.settings"
    assert default["Next"] == sweep["Choices"][0]["Next"] == "Ingest the shards' bars"
    # each signals child walks the settings one after the other
    signals = states["Evaluate the shards' signals"]
    assert signals["ItemSelector"]["settings.$"] == "$.settings"
    (per_setting,) = signals["ItemProcessor"]["States"].values()
    assert per_setting["Type"] == "Map" and per_setting["ItemsPath"] == "$.settings"
    assert per_setting["MaxConcurrency"] == 1
    assert per_setting["ItemSelector"]["setting.$"] == "$$.Map.Item.Value"
    # a malformed setting fails the child under its own name, never retried
    (task,) = _tasks(signals["ItemProcessor"])
    named = task["Catch"][0]
    assert named["ErrorEquals"] == ["InvalidSetting", "SettingChanged"]
    refused = per_setting["ItemProcessor"]["States"][named["Next"]]
    assert refused["Type"] == "Fail" and refused["ErrorPath"] == "$.error.Error"
    retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
    assert not retried & {"InvalidSetting", "SettingChanged", "States.ALL"}
