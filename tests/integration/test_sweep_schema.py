"""A sweep setting's schema: made like the public tables on first use, its rows apart from
public's and from every other setting's, and refused to a setting of the same name that differs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ops_pipeline import signals
from ops_pipeline.db import connect, parse_database_url
from ops_pipeline.sweep import SETTING_TABLES, SettingChanged, enter_setting, parse_setting

TS = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)


@pytest.fixture
def fresh(conn):
    for name in ("sweep_one", "sweep_two"):
        conn.run(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    conn.run("RESET search_path")
    return conn


def _recommend(conn) -> None:
    rec = signals.Recommendation(
        "AAPL", TS, "BUY", "trend_cross", 100, 0.6, 1, 1, 0.6, "test", (), TS
    )
    assert signals.store(conn, [rec], TS) == 1


def test_each_setting_writes_its_own_copy_of_the_tables(fresh, database_url):
    one = parse_setting({"name": "one", "surge_multiplier": 1.5})
    enter_setting(fresh, one)
    ((path,),) = fresh.run("SHOW search_path")
    assert path == "sweep_one, public"
    tables = fresh.run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sweep_one'"
        " ORDER BY 1"
    )
    assert [t for (t,) in tables] == sorted(
        [*SETTING_TABLES, "signal_evaluations_due", "sweep_setting"]
    )
    _recommend(fresh)  # the same SQL the signal engine runs
    # another connection, another setting: the same bar, a row of its own, ids of its own
    other = connect(parse_database_url(database_url))
    try:
        enter_setting(other, parse_setting({"name": "two"}))
        _recommend(other)
        assert other.run("SELECT id FROM dispatch_recommendations") == [[1]]
        # the foreign key is the setting's own: an execution of a recommendation it lacks fails
        with pytest.raises(Exception, match="foreign key"):
            other.run(
                "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, mode,"
                " client_order_id, status, decided_at) VALUES (99, 'AAPL', 'buy', 1,"
                " 'simulation', 'x', 'filled', now())"
            )
    finally:
        other.close()
    assert fresh.run("SELECT count(*) FROM public.dispatch_recommendations") == [[0]]
    assert fresh.run("SELECT count(*) FROM sweep_one.dispatch_recommendations") == [[1]]
    assert fresh.run("SELECT count(*) FROM sweep_two.dispatch_recommendations") == [[1]]
    # bars and features are read from public through the search_path
    assert fresh.run("SELECT count(*) FROM lane_features") == [[0]]


def test_a_setting_of_the_same_name_with_other_values_is_refused(fresh):
    enter_setting(fresh, parse_setting({"name": "one", "surge_multiplier": "1.50"}))
    enter_setting(fresh, parse_setting({"name": "one", "surge_multiplier": 1.5}))  # the same
    fresh.run("RESET search_path")
    with pytest.raises(SettingChanged, match="DROP SCHEMA sweep_one CASCADE"):
        enter_setting(fresh, parse_setting({"name": "one", "surge_multiplier": 1.4}))
    # rolled back: the connection works, and its search_path is not the refused setting's
    assert fresh.run("SHOW search_path") != [["sweep_one, public"]]


def test_each_setting_finds_the_features_it_has_not_evaluated(fresh, database_url):
    """A setting's schema starts with every stored feature due, and features computed after it
    exists are due for it as for the live pipeline (migration 010's trigger fills every queue)."""
    from datetime import timedelta
    from decimal import Decimal

    from ops_pipeline import features, telemetry

    bars = [
        telemetry.Bar("AAPL", TS + timedelta(minutes=i), *(Decimal(170),) * 4, 1000)
        for i in range(3)
    ]
    telemetry.upsert_bars(fresh, bars[:2])
    features.compute(fresh, TS + timedelta(minutes=2))
    setting = connect(parse_database_url(database_url))
    try:
        enter_setting(setting, parse_setting({"name": "one"}))
        due = "SELECT ts FROM signal_evaluations_due ORDER BY ts"
        assert [ts for (ts,) in setting.run(due)] == [b.ts for b in bars[:2]]
        assert len(signals.load_pending(setting, ["AAPL"], TS, TS + timedelta(minutes=3))) == 2
        telemetry.upsert_bars(fresh, bars[2:])
        features.compute(fresh, TS + timedelta(minutes=3))  # the live computer, in public
        assert [ts for (ts,) in setting.run(due)] == [b.ts for b in bars]
        assert fresh.run("SELECT count(*) FROM public.signal_evaluations_due") == [[3]]
    finally:
        setting.close()


def test_a_fresh_start_drops_the_settings_schemas(fresh):
    """`replay --fresh` empties the database: a setting's rows must not outlive the bars they
    were decided on (their evaluations would keep the new bars from being evaluated again)."""
    from ops_pipeline_local.runs import start_clean

    enter_setting(fresh, parse_setting({"name": "one"}))
    fresh.run("RESET search_path")
    start_clean(fresh)
    assert fresh.run("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sweep%'") == [[0]]
    assert fresh.run("SELECT count(*) FROM lane_telemetry") == [[0]]


def test_a_settings_schema_made_before_the_pending_lease_named_its_run_gets_the_column(fresh):
    """Migration 012 adds `leased_by` to public's table and to every setting's copy of it (a
    copy made LIKE public's before the migration lacks it; the dispatcher's SQL names it)."""
    from ops_pipeline.migrate import available_migrations

    enter_setting(fresh, parse_setting({"name": "one"}))
    fresh.run("ALTER TABLE sweep_one.dispatch_executions DROP COLUMN leased_by")  # as made before
    fresh.run("RESET search_path")
    (lease,) = [m for m in available_migrations() if m.name == "pending_lease_run"]
    fresh.run(lease.sql)
    fresh.run(lease.sql)  # and applying it again changes nothing
    columns = fresh.run(
        "SELECT table_schema FROM information_schema.columns"
        " WHERE table_name = 'dispatch_executions' AND column_name = 'leased_by' ORDER BY 1"
    )
    assert [s for (s,) in columns] == ["public", "sweep_one"]
