-- The bars whose features are due: a regular bar stored or changed, or whose features were
-- deleted. The feature computer reads this small table instead of comparing days of bars with
-- their features each minute (an anti-join that grows with the day and the ticker count: at
-- 5,000 tickers and 960 bars a ticker a day, six days are 29 million rows), and clears what it
-- read in the same statement.
--
-- Filled by triggers, so every writer of lane_telemetry (the ingestor, its failover, a backtest)
-- marks its bars without knowing: one set-based insert per statement (transition tables).
-- `mark` tells two markings of one bar apart: the computer clears only the marking it read, so a
-- bar corrected while its features were being computed stays due.
CREATE SEQUENCE lane_features_due_mark;

CREATE TABLE lane_features_due (
    ticker text        NOT NULL,
    ts     timestamptz NOT NULL,
    source text        NOT NULL,  -- the bar's (its feature windows hold bars of its source only)
    mark   bigint      NOT NULL DEFAULT nextval('lane_features_due_mark'),
    PRIMARY KEY (ticker, ts)
);
ALTER SEQUENCE lane_features_due_mark OWNED BY lane_features_due.mark;

CREATE FUNCTION mark_changed_bars_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lane_features_due (ticker, ts, source)
    SELECT ticker, ts, source FROM changed_bars WHERE session = 'regular'
    ON CONFLICT (ticker, ts) DO UPDATE SET source = excluded.source, mark = excluded.mark;
    RETURN NULL;
END
$$;

CREATE FUNCTION mark_deleted_features_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A bar deleted with its features (ON DELETE CASCADE) has nothing left to compute.
    INSERT INTO lane_features_due (ticker, ts, source)
    SELECT t.ticker, t.ts, t.source
    FROM deleted_features f
    JOIN lane_telemetry t ON t.ticker = f.ticker AND t.ts = f.ts AND t.session = 'regular'
    ON CONFLICT (ticker, ts) DO UPDATE SET source = excluded.source, mark = excluded.mark;
    RETURN NULL;
END
$$;

CREATE TRIGGER lane_telemetry_inserted_due AFTER INSERT ON lane_telemetry
    REFERENCING NEW TABLE AS changed_bars
    FOR EACH STATEMENT EXECUTE FUNCTION mark_changed_bars_due();
CREATE TRIGGER lane_telemetry_updated_due AFTER UPDATE ON lane_telemetry
    REFERENCING NEW TABLE AS changed_bars
    FOR EACH STATEMENT EXECUTE FUNCTION mark_changed_bars_due();
CREATE TRIGGER lane_features_deleted_due AFTER DELETE ON lane_features
    REFERENCING OLD TABLE AS deleted_features
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_features_due();

-- Bars stored before this migration whose features are missing or stale, as the computer found
-- them until now.
INSERT INTO lane_features_due (ticker, ts, source)
SELECT t.ticker, t.ts, t.source
FROM lane_telemetry t
LEFT JOIN lane_features f ON f.ticker = t.ticker AND f.ts = t.ts
WHERE t.session = 'regular'
  AND (f.ticker IS NULL OR f.close <> t.close OR f.volume_current <> t.volume);

-- A features' TRUNCATE (a local replay's fresh start empties every table at once) leaves every
-- stored regular bar due, as the computer would have found them.
CREATE FUNCTION mark_all_bars_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lane_features_due (ticker, ts, source)
    SELECT ticker, ts, source FROM lane_telemetry WHERE session = 'regular'
    ON CONFLICT (ticker, ts) DO UPDATE SET source = excluded.source, mark = excluded.mark;
    RETURN NULL;
END
$$;
CREATE TRIGGER lane_features_truncated_due AFTER TRUNCATE ON lane_features
    FOR EACH STATEMENT EXECUTE FUNCTION mark_all_bars_due();

-- The same for the signal engine: the features not evaluated yet. A new feature row is due; an
-- evaluation deleted (or truncated) makes its features due again. The engine clears a bar when it
-- stores its evaluation, in the same statement. Recomputed features are not evaluated again (the
-- evaluation records what was decided at the time).
CREATE TABLE signal_evaluations_due (
    ticker text        NOT NULL,
    ts     timestamptz NOT NULL,
    PRIMARY KEY (ticker, ts)
);

-- Every evaluator's queue: the public one, and each backtest sweep setting's (a schema of its own,
-- `ops_pipeline.sweep`, holding its own evaluations and its own copy of this table).
CREATE FUNCTION mark_new_features_due() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    evaluator text;
BEGIN
    FOR evaluator IN
        SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = 'signal_evaluations_due' AND c.relkind = 'r'
    LOOP
        EXECUTE format(
            'INSERT INTO %I.signal_evaluations_due (ticker, ts) SELECT ticker, ts FROM new_features'
            ' ON CONFLICT (ticker, ts) DO NOTHING', evaluator);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION mark_deleted_evaluations_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO signal_evaluations_due (ticker, ts)
    SELECT f.ticker, f.ts
    FROM deleted_evaluations e
    JOIN lane_features f ON f.ticker = e.ticker AND f.ts = e.ts
    ON CONFLICT (ticker, ts) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION mark_all_features_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO signal_evaluations_due (ticker, ts)
    SELECT ticker, ts FROM lane_features
    ON CONFLICT (ticker, ts) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER lane_features_inserted_due AFTER INSERT ON lane_features
    REFERENCING NEW TABLE AS new_features
    FOR EACH STATEMENT EXECUTE FUNCTION mark_new_features_due();
CREATE TRIGGER signal_evaluations_deleted_due AFTER DELETE ON signal_evaluations
    REFERENCING OLD TABLE AS deleted_evaluations
    FOR EACH STATEMENT EXECUTE FUNCTION mark_deleted_evaluations_due();
CREATE TRIGGER signal_evaluations_truncated_due AFTER TRUNCATE ON signal_evaluations
    FOR EACH STATEMENT EXECUTE FUNCTION mark_all_features_due();

INSERT INTO signal_evaluations_due (ticker, ts)
SELECT f.ticker, f.ts
FROM lane_features f
LEFT JOIN signal_evaluations e ON e.ticker = f.ticker AND e.ts = f.ts
WHERE e.ticker IS NULL;
