-- The feature computer reads, per pending ticker, the 49 regular bars of one source before its
-- first pending bar: with close and volume in the index that is an index-only scan backward over
-- one or two leaf pages, where the heap holds those 49 bars in 49 pages (a minute's bars of every
-- ticker are stored together). The ingestor's and the computer's other reads use the same columns.
-- The index is rebuilt in the migration's transaction: on a large lane_telemetry the ingest's
-- writes wait for the build: deploy this one outside market hours.
DROP INDEX lane_telemetry_source_regular;
CREATE INDEX lane_telemetry_source_regular ON lane_telemetry (ticker, source, ts)
    INCLUDE (close, volume)
    WHERE session = 'regular';
