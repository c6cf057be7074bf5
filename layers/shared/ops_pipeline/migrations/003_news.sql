-- News: raw feed items, their classification, the feeds' conditional-GET state, and the watchlist.

CREATE TABLE feed_state (
    feed_url        text        PRIMARY KEY,
    feed_name       text        NOT NULL,
    etag            text,
    last_modified   text,
    last_status     integer,
    last_error      text,
    last_fetched_at timestamptz
);

CREATE TABLE inbound_events_raw (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_name    text        NOT NULL,
    feed_url     text        NOT NULL,
    item_key     text        NOT NULL,   -- guid, else link, else a hash of title and time
    source       text,
    title        text        NOT NULL,
    link         text,
    summary      text,
    published_at timestamptz,
    fetched_at   timestamptz NOT NULL,   -- the pipeline minute that fetched it
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (feed_name, item_key)   -- the name: a feed that moves (or a local server on a new port) stays one feed
);

CREATE INDEX inbound_events_raw_published ON inbound_events_raw (published_at);

CREATE TABLE inbound_events_classified (
    event_id      bigint        PRIMARY KEY REFERENCES inbound_events_raw (id) ON DELETE CASCADE,
    label         text          NOT NULL CHECK (label IN ('positive', 'negative', 'neutral')),
    score         numeric(6, 4) NOT NULL,   -- probability of the label
    polarity      numeric(6, 4) NOT NULL,   -- p(positive) - p(negative)
    tickers       text[]        NOT NULL DEFAULT '{}',
    model         text          NOT NULL,
    event_time    timestamptz   NOT NULL,   -- published time, else fetch time
    classified_at timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX inbound_events_classified_tickers ON inbound_events_classified USING gin (tickers);
CREATE INDEX inbound_events_classified_time ON inbound_events_classified (event_time);

CREATE TABLE lane_watchlist_state (
    ticker       text          NOT NULL,
    ts           timestamptz   NOT NULL,   -- the pipeline minute
    score        numeric(8, 4) NOT NULL,
    rank         integer       NOT NULL,
    on_watchlist boolean       NOT NULL,
    reasons      text          NOT NULL,
    volume_ratio numeric(10, 4),
    trend        numeric(10, 6),
    news_count   integer       NOT NULL DEFAULT 0,
    net_sentiment numeric(8, 4) NOT NULL DEFAULT 0,
    PRIMARY KEY (ticker, ts)
);
