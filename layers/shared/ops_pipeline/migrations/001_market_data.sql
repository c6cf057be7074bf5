-- Market data: 1-minute bars and the features computed from them.
-- A bar is labelled by its start time (Alpaca's convention), in UTC.

CREATE TABLE lane_telemetry (
    ticker       text           NOT NULL,
    ts           timestamptz    NOT NULL,
    open         numeric(18, 6) NOT NULL,
    high         numeric(18, 6) NOT NULL,
    low          numeric(18, 6) NOT NULL,
    close        numeric(18, 6) NOT NULL,
    volume       bigint         NOT NULL CHECK (volume >= 0),
    trade_count  integer,
    vwap         numeric(18, 6),
    source       text           NOT NULL DEFAULT 'alpaca-iex',
    ingested_at  timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker, ts),
    CHECK (high >= low)
);

CREATE TABLE lane_features (
    ticker         text           NOT NULL,
    ts             timestamptz    NOT NULL,
    close          numeric(18, 6) NOT NULL,
    sma20          numeric(18, 6),
    sma50          numeric(18, 6),
    volume_current bigint         NOT NULL,
    volume_avg_20  numeric(20, 2),
    volume_ratio   numeric(10, 4),
    volume_surge   boolean,
    bars_in_window integer        NOT NULL,
    computed_at    timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker, ts),
    FOREIGN KEY (ticker, ts) REFERENCES lane_telemetry (ticker, ts) ON DELETE CASCADE
);

COMMENT ON COLUMN lane_features.volume_current IS 'current bar volume';
COMMENT ON COLUMN lane_features.volume_avg_20 IS '20-bar average volume';
COMMENT ON COLUMN lane_features.volume_ratio IS 'volume_current / volume_avg_20';
COMMENT ON COLUMN lane_features.volume_surge IS 'volume_ratio > 3.0';
