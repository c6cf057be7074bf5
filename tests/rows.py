"""The rows a run of the pipeline leaves, read in one order: what the identity tests compare
between two runs (replay at different steps, replay against the distributed backtest)."""

from __future__ import annotations

from ops_pipeline.db import connect, parse_database_url

# Each table's columns that a run decides (not its surrogate ids or wall-clock stamps).
PIPELINE_TABLES = {
    "lane_telemetry": "ticker, ts, open, high, low, close, volume, trade_count, vwap, source",
    "lane_features": "ticker, ts, close, sma20, sma50, volume_current, volume_avg_20,"
    " volume_ratio, volume_surge, bars_in_window",
    "signal_evaluations": "ticker, ts, decided_at, close, sma20, sma50, prev_close, prev_sma20,"
    " volume_ratio, trend, news_net, news_event_ids, band, volume_multiplier, action, rule,"
    " confidence, reason",
    "dispatch_recommendations": "ticker, ts, decided_at, action, rule, price, base_confidence,"
    " volume_ratio, volume_multiplier, confidence, news_event_ids, reason",
    "dispatch_executions e JOIN dispatch_recommendations r ON r.id = e.recommendation_id": (
        # client_order_id less its deployment prefix, which hashes each database's own salt
        "r.ticker, r.ts, e.side, e.qty, e.requested_qty, e.price, e.mode,"
        " regexp_replace(e.client_order_id, '^ops[0-9a-f]+-', ''), e.status,"
        " e.reject_reason, e.broker_order_id, e.decided_at, e.commission, e.filled_at,"
        " e.gate_verdicts::text"
    ),
}


def pipeline_rows(url: str, schema: str | None = None) -> dict[str, list]:
    """Every table of PIPELINE_TABLES in the database at `url`, its rows sorted. `schema`: a
    sweep setting's (`sweep_<name>`, a name the test chose), read first, then `public` (the
    shared bars and features)."""
    conn = connect(parse_database_url(url))
    try:
        if schema is not None:  # a missing schema would be skipped: public's rows read instead
            assert conn.run("SELECT count(*) FROM pg_namespace WHERE nspname = :s", s=schema) == [
                [1]
            ]
            conn.run(f"SET search_path = {schema}, public")
        return {
            table: conn.run(f"SELECT {columns} FROM {table} ORDER BY {columns}")
            for table, columns in PIPELINE_TABLES.items()
        }
    finally:
        conn.close()
