-- A `pending` row's lease names the run that holds it (`leased_by`: the Step Functions execution,
-- the same across the state machine's retries of a stage and a redrive; NULL for a run without
-- one). A run takes a leased row back at once when the lease is its own: an attempt whose
-- connection was lost between sending an order and recording it could not hand its lease back,
-- and its retry then looks the order up at once instead of after orders.LEASE (a dispatcher runs
-- one invocation at a time, so an attempt before the retry has ended). Only a `pending` row has
-- one: a lease ends with the status.
ALTER TABLE dispatch_executions ADD COLUMN IF NOT EXISTS leased_by text;

-- The backtest sweep's settings hold their own copy of the table (sweep.SETTING_TABLES, made
-- LIKE public's when the setting's schema was made): a schema made before this migration gets
-- the column too.
DO $$
DECLARE
    owner name;
BEGIN
    FOR owner IN
        SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = 'dispatch_executions' AND c.relkind = 'r'
          AND starts_with(n.nspname, 'sweep_')
    LOOP
        EXECUTE format('ALTER TABLE %I.dispatch_executions ADD COLUMN IF NOT EXISTS leased_by text',
                       owner);
    END LOOP;
END
$$;
