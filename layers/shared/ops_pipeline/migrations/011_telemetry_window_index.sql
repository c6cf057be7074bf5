-- The ingestor reads each ticker's last WINDOW_BARS (50) regular bars and their source, newest
-- first, to find the minutes a provider is missing in a feature window. The (ticker, source, ts)
-- index gives them in source order: every regular bar of the five-day lookback was read and
-- sorted per ticker (about 1,950 a ticker after five sessions, 5,000 tickers a minute). With
-- `source` in the (ticker, ts) index that is an index-only scan backward over the 50 bars.
-- The index keeps its name and key (the feature computer's time-ordered reads use it as before).
-- It is rebuilt in the migration's transaction: on a large lane_telemetry the ingest's writes
-- wait for the build: deploy this one outside market hours.
DROP INDEX lane_telemetry_regular;
CREATE INDEX lane_telemetry_regular ON lane_telemetry (ticker, ts)
    INCLUDE (source)
    WHERE session = 'regular';
