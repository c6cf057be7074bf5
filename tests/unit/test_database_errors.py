"""A lost database is a named transient error that every Task state retries (issue 7, promise 5)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ops_pipeline.db import ConnectionCache, DatabaseTarget
from ops_pipeline.errors import DatabaseUnavailable, TransientError, is_connection_lost
from ops_pipeline.observability import stage_handler
from ops_pipeline_local.runtime import LocalContext

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = LocalContext("TestFunction", "arn:aws:lambda:us-east-1:0:function:TestFunction")


def task_states(states: dict):
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from task_states(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from task_states(processor["States"])


@pytest.mark.parametrize("path", sorted((ROOT / "statemachines").glob("*.asl.json")), ids=str)
def test_every_task_state_retries_a_lost_database(path):
    definition = json.loads(path.read_text())
    tasks = list(task_states(definition["States"]))
    assert tasks
    for name, state in tasks:
        if not state["Resource"].startswith("${"):
            continue  # an SDK call (the backtest's ssm:getParameter) never reaches the database
        retried = {e for rule in state.get("Retry", []) for e in rule["ErrorEquals"]}
        assert {"TransientError", "DatabaseUnavailable"} <= retried, name


def test_database_unavailable_is_transient_by_name_and_by_class():
    assert issubclass(DatabaseUnavailable, TransientError)
    assert DatabaseUnavailable.__name__ == "DatabaseUnavailable"  # what ErrorEquals matches


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_becomes_database_unavailable_in_any_stage():
    cache = ConnectionCache(DatabaseTarget(user="postgres", database="x", port=_closed_port()))

    @stage_handler
    def handler(event, context):
        cache.get().run("SELECT 1")
        return {}

    with pytest.raises(DatabaseUnavailable, match="database connection lost") as raised:
        handler({"time": "2019-02-12T15:30:00Z"}, CONTEXT)
    assert is_connection_lost(raised.value)


def test_other_failures_keep_their_own_name():
    @stage_handler
    def handler(event, context):
        raise ValueError("not a database problem")

    with pytest.raises(ValueError):
        handler({"time": "2019-02-12T15:30:00Z"}, CONTEXT)
    import pg8000.exceptions

    assert not is_connection_lost(pg8000.exceptions.InterfaceError("identifier must be a str"))
    assert is_connection_lost(pg8000.exceptions.InterfaceError("network error"))
    assert is_connection_lost(
        pg8000.exceptions.DatabaseError({"C": "57P01", "M": "terminating connection"})
    )
