-- Telemetry failover: a second market-data provider, switched to and back automatically.
--
-- `lane_telemetry.source` (since 001) names the provider each stored bar came from: 'alpaca-iex'
-- (the primary) or 'massive' (the backup). A minute is stored once, from the provider in use when
-- it was ingested, and keeps that source.
--
-- Volumes differ between feeds (IEX carries a few percent of the consolidated volume), so a
-- feature is computed over bars of its bar's source only. The bars of the other provider that a
-- window needs, for minutes stored from another provider, are kept beside the stored ones:

CREATE TABLE lane_telemetry_history (
    ticker       text           NOT NULL,
    ts           timestamptz    NOT NULL,
    source       text           NOT NULL,
    open         numeric(18, 6) NOT NULL,
    high         numeric(18, 6) NOT NULL,
    low          numeric(18, 6) NOT NULL,
    close        numeric(18, 6) NOT NULL,
    volume       bigint         NOT NULL CHECK (volume >= 0),
    trade_count  integer,
    vwap         numeric(18, 6),
    session      text           NOT NULL CHECK (session IN ('pre', 'regular', 'post')),
    ingested_at  timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker, source, ts),
    CHECK (high >= low)
);

COMMENT ON TABLE lane_telemetry_history IS
    'bars of a provider for minutes stored (in lane_telemetry) from another: feature windows only';

-- The feature computer and the ingestor read a ticker's regular bars of one source in time order.
CREATE INDEX lane_telemetry_source_regular ON lane_telemetry (ticker, source, ts)
    WHERE session = 'regular';

-- The provider in use, persisted between runs (one row): since which event minute and why, and,
-- while on the backup, since when the primary has answered healthily (the failback's hysteresis).
CREATE TABLE market_data_source (
    singleton             boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    source                text        NOT NULL,
    since                 timestamptz NOT NULL,
    reason                text        NOT NULL,
    backup_configured     boolean     NOT NULL,
    primary_healthy_since timestamptz,
    checked_at            timestamptz NOT NULL   -- the event minute of the run that wrote it
);

-- Every switch, for the on-call engineer and the tests: at which event minute, from what to what, why.
CREATE TABLE market_data_switches (
    minute      timestamptz NOT NULL,
    from_source text        NOT NULL,
    to_source   text        NOT NULL,
    reason      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (minute, to_source)
);
