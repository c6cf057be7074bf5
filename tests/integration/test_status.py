"""`ops-pipeline status`: what it shows, when it exits non-zero, and that it never migrates."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.cli import main

MIN = timedelta(minutes=1)
# Tuesday 2019-02-12, 10:00 New York: the market is open.
MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)


def _status(
    database_url: str, at: datetime, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict]:
    code = main(["status", "--json", "--at", at.isoformat(), "--database-url", database_url])
    return code, json.loads(capsys.readouterr().out)


def _bar(conn, ticker: str, ts: datetime, *, features: bool = True, session: str = "regular"):
    conn.run(
        "INSERT INTO lane_telemetry (ticker, ts, open, high, low, close, volume, session)"
        " VALUES (:t, :ts, 100, 100, 100, 100, 1000, :s)",
        t=ticker,
        ts=ts,
        s=session,
    )
    if features:
        conn.run(
            "INSERT INTO lane_features (ticker, ts, close, volume_current, bars_in_window)"
            " VALUES (:t, :ts, 100, 1000, 1)",
            t=ticker,
            ts=ts,
        )


def _execution(conn, ticker, side, qty, status, decided_at, reason=None, mode="simulation"):
    (rec_id,) = conn.run(
        "INSERT INTO dispatch_recommendations (ticker, ts, decided_at, action, rule, price,"
        " base_confidence, volume_multiplier, confidence, reason)"
        " VALUES (:t, :ts, :d, :a, 'trend_cross', 100, 0.6, 1.0, 0.6, 'test') RETURNING id",
        t=ticker,
        ts=decided_at - MIN,
        d=decided_at,
        a=side.upper(),
    )[0]
    conn.run(
        "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, price, mode,"
        " client_order_id, status, reject_reason, decided_at)"
        " VALUES (:r, :t, :s, :q, 100, :m, :c, :st, :why, :d)",
        r=rec_id,
        t=ticker,
        s=side,
        q=qty,
        m=mode,
        c=f"test-{uuid.uuid4().hex}",
        st=status,
        why=reason,
        d=decided_at,
    )


def test_status_shows_mode_state_positions_orders_and_todays_refusals(conn, database_url, capsys):
    _bar(conn, "AAPL", MINUTE - MIN)
    _execution(conn, "AAPL", "buy", 10, "filled", MINUTE - 30 * MIN)
    _execution(conn, "AAPL", "sell", 4, "filled", MINUTE - 20 * MIN)
    _execution(conn, "MSFT", "buy", 5, "filled", MINUTE - 19 * MIN)
    _execution(conn, "MSFT", "sell", 5, "filled", MINUTE - 18 * MIN)  # closed again
    _execution(conn, "TSLA", "buy", 3, "submitted", MINUTE - 2 * MIN, mode="paper")
    _execution(conn, "SPY", "buy", 1, "rejected", MINUTE - 24 * 60 * MIN, "market closed")
    _execution(conn, "AMZN", "buy", 2, "rejected", MINUTE - 3 * MIN, "confidence below 0.5")
    _execution(conn, "AMZN", "buy", 2, "rejected", MINUTE - MIN, "trading state is halted")

    code, report = _status(database_url, MINUTE, capsys)
    assert code == 0 and report["healthy"] is True
    assert report["trading_mode"] == "simulation"  # the last execution's
    assert report["trading_state"] == "active"  # the template's default, as a local run uses it
    positions = {(p["mode"], p["ticker"]): p["qty"] for p in report["open_positions"]}
    assert positions == {("simulation", "AAPL"): 6}
    assert [(o["ticker"], o["status"]) for o in report["open_orders"]] == [("TSLA", "submitted")]
    assert [r["reject_reason"] for r in report["refusals_today"]] == [
        "confidence below 0.5",
        "trading state is halted",
    ]
    # The last execution is the newest by the minute it was decided (event time), and says so.
    assert report["last_execution"]["decided_at"] == (MINUTE - MIN).isoformat()
    assert report["tables"]["dispatch_executions"]["newest"] == (MINUTE - MIN).isoformat()
    assert report["data_age_seconds"] == 0

    assert main(["status", "--at", MINUTE.isoformat(), "--database-url", database_url]) == 0
    text = capsys.readouterr().out
    assert "trading mode: simulation" in text and "AAPL" in text and "refusals today:" in text
    assert "decided at 2019-02-12 14:59:00+00:00" in text


def test_stale_data_during_the_session_exits_non_zero(conn, database_url, capsys):
    _bar(conn, "AAPL", MINUTE - 11 * MIN)
    code, report = _status(database_url, MINUTE, capsys)
    assert (code, report["stale"], report["data_age_seconds"]) == (1, True, 600)
    assert report["market"]["is_open"] is True
    # The same data after the close (16:00 New York, 21:00 UTC) and on a Saturday is not stale.
    assert _status(database_url, MINUTE.replace(hour=21, minute=30), capsys)[0] == 0
    assert _status(database_url, datetime(2019, 2, 16, 15, 0, tzinfo=UTC), capsys)[0] == 0
    # Early close (2019-11-29, 13:00 New York): 14:00 New York is after the session.
    conn.run("DELETE FROM lane_telemetry")
    _bar(conn, "AAPL", datetime(2019, 11, 29, 17, 59, tzinfo=UTC))
    assert _status(database_url, datetime(2019, 11, 29, 19, 0, tzinfo=UTC), capsys)[0] == 0
    assert _status(database_url, datetime(2019, 11, 29, 17, 50, tzinfo=UTC), capsys)[0] == 0
    code, report = _status(database_url, datetime(2019, 11, 29, 18, 0, tzinfo=UTC), capsys)
    assert code == 0 and report["market"]["is_open"] is True  # the closing run: fresh


def test_a_failed_last_minute_run_exits_non_zero(conn, database_url, capsys):
    _bar(conn, "AAPL", MINUTE - 2 * MIN)
    _bar(conn, "AAPL", MINUTE - MIN, features=False)  # ingested, but the run stopped there
    _bar(conn, "AAPL", MINUTE - 3 * MIN, features=False, session="pre")  # never has features
    code, report = _status(database_url, MINUTE, capsys)
    assert code == 1 and report["stale"] is False
    assert report["last_run"] == {
        "failed": True,
        "bars_without_features": 1,
        "recommendations_without_execution": 0,
        "failed_executions_last_minute": 0,
    }
    conn.run(
        "INSERT INTO lane_features (ticker, ts, close, volume_current, bars_in_window)"
        " VALUES ('AAPL', :ts, 100, 1000, 2)",
        ts=MINUTE - MIN,
    )
    assert _status(database_url, MINUTE, capsys)[0] == 0
    _execution(conn, "AAPL", "buy", 1, "failed", MINUTE, "broker: 500")
    code, report = _status(database_url, MINUTE, capsys)
    assert code == 1 and report["last_run"]["failed_executions_last_minute"] == 1


def test_status_never_migrates(database_server, capsys):
    name = f"ops_test_{uuid.uuid4().hex[:10]}"  # a name we made
    admin = connect(parse_database_url(database_server))
    admin.run(f"CREATE DATABASE {name}")
    try:
        url = database_server.rsplit("/", 1)[0] + f"/{name}"
        assert main(["status", "--database-url", url]) == 2
        assert "ops-pipeline db migrate" in capsys.readouterr().err
        empty = connect(parse_database_url(url))
        tables = empty.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0]
        empty.close()
        assert tables == 0
    finally:
        admin.run(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_status_counts_refusals_by_reason_shows_the_last_few_and_plain_quantities(
    conn, database_url, capsys
):
    _bar(conn, "AAPL", MINUTE - MIN)
    _execution(conn, "AAPL", "buy", 6, "filled", MINUTE - 90 * MIN)
    for i in range(40):
        _execution(
            conn, f"T{i}", "buy", 2, "rejected", MINUTE - (60 - i) * MIN, "trading state is halted"
        )
    for i in range(3):
        _execution(
            conn, f"U{i}", "sell", 1, "rejected", MINUTE - (10 - i) * MIN, "no position to sell"
        )
    code, report = _status(database_url, MINUTE, capsys)
    assert report["refusals_today_by_reason"] == {
        "trading state is halted": 40,
        "no position to sell": 3,
    }
    assert main(["status", "--at", MINUTE.isoformat(), "--database-url", database_url]) == 0
    text = capsys.readouterr().out
    assert "refusals today: 43" in text
    assert "     40  trading state is halted" in text
    assert len([line for line in text.splitlines() if line.startswith("    2019-")]) == 5
    assert "simulation AAPL" in " ".join(text.split()) and " 6\n" in text
    assert "0.000000" not in text and "6.000000" not in text


def test_data_age_is_never_negative_when_status_looks_back(conn, database_url, capsys):
    _bar(conn, "AAPL", MINUTE - 10 * MIN)
    _bar(conn, "AAPL", MINUTE + 30 * MIN)  # a bar after the --at minute
    code, report = _status(database_url, MINUTE, capsys)
    assert report["data_age_seconds"] == 540
