"""`replay --json` prints exactly one JSON document on stdout, the handlers' logs (here at INFO,
under a fault plan that makes them warn) on stderr; its summary keeps the state machines' tally
beside the executions. Run as a user runs it: a process of its own. Real bars of 2019-02-12
(the bundled Alpha Vantage bars, masonblier/eqker, ISC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from paths import ROOT

from ops_pipeline_local.bars import write_bars
from ops_pipeline_local.embedded_db import throwaway_database

pytestmark = pytest.mark.statemachine


def test_replay_json_is_one_document_and_logs_go_to_stderr(database_server, bundled_bars, tmp_path):
    first = min(b.ts for b in bundled_bars)
    path = tmp_path / "bars.csv"
    write_bars(
        [b for b in bundled_bars if b.symbol == "AAPL" and b.ts < first + timedelta(minutes=20)],
        path,
    )
    with throwaway_database(database_server) as url:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ops_pipeline_local.cli",
                "--log-level",
                "INFO",
                "replay",
                "--bars",
                str(path),
                "--database-url",
                url,
                "--json",
                "--mode",
                "paper",
                "--faults",
                "data=0.3,orders=0.3,seed=2",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            # as from a shell: without the Powertools settings in-process tests leave behind
            env={k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")},
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # one document: nothing before or after it
    assert summary["state_machines"]["MinutePipelineStateMachine"] == {"SUCCEEDED": 21}
    assert "executions" in summary and summary["mode"] == "paper"
    assert '"level":"INFO"' in done.stderr.replace(" ", "")
