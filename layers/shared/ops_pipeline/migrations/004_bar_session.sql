-- Which part of the trading day a bar belongs to. IEX minute bars cover 04:00-20:00 New York:
-- 'pre' before the regular open, 'regular' from the open to the close, 'post' after the close.
-- The ingestor fills it from the day's session (Alpaca's calendar, early closes included); only
-- regular bars get features, and the SMA and volume windows contain only regular bars.

ALTER TABLE lane_telemetry
    ADD COLUMN session text NOT NULL DEFAULT 'regular'
    CHECK (session IN ('pre', 'regular', 'post'));

-- Bars stored before this migration: outside 09:30-16:00 New York is extended hours (this does
-- not know early closes; the ingestor does from now on).
UPDATE lane_telemetry
SET session = CASE
    WHEN (ts AT TIME ZONE 'America/New_York')::time < time '09:30' THEN 'pre'
    WHEN (ts AT TIME ZONE 'America/New_York')::time >= time '16:00' THEN 'post'
    ELSE 'regular'
END
WHERE (ts AT TIME ZONE 'America/New_York')::time NOT BETWEEN time '09:30' AND time '15:59';

DELETE FROM lane_features f
USING lane_telemetry t
WHERE t.ticker = f.ticker AND t.ts = f.ts AND t.session <> 'regular';

-- The feature computer reads a ticker's regular bars in time order.
CREATE INDEX lane_telemetry_regular ON lane_telemetry (ticker, ts) WHERE session = 'regular';
