-- The ingestor's read of the stored state (telemetry.READ_STATE), at thousands of tickers.
--
-- It finds, per provider, the minutes of each ticker's last WINDOW_BARS (50) regular bars that
-- have no bar of that provider. The (ticker, source, ts) index gives those bars in source order:
-- every regular bar of the five-day lookback was read and sorted per ticker (about 1,950 a
-- ticker after five sessions, 5,000 tickers a minute). With `source` in the (ticker, ts) index
-- that is an index-only scan backward over the 50 bars. The index keeps its name and key (the
-- feature computer's time-ordered reads use it as before).
DROP INDEX lane_telemetry_regular;
CREATE INDEX lane_telemetry_regular ON lane_telemetry (ticker, ts)
    INCLUDE (source)
    WHERE session = 'regular';

-- A window of bars all from the primary ('alpaca-iex') misses none of the primary's minutes:
-- only tickers with a regular bar of another provider in the lookback need the 50 bars read for
-- the primary. Those bars are few (a failover's minutes), and so is this index.
CREATE INDEX lane_telemetry_backup_regular ON lane_telemetry (ticker, ts)
    WHERE session = 'regular' AND source <> 'alpaca-iex';

-- Both are built in the migration's transaction: on a large lane_telemetry the ingest's writes
-- wait for the build: deploy this one outside market hours.
