-- Recommendations and what became of them.

CREATE TABLE dispatch_recommendations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker            text          NOT NULL,
    ts                timestamptz   NOT NULL,   -- the bar the signal is about
    decided_at        timestamptz   NOT NULL,   -- the pipeline minute that made it
    action            text          NOT NULL CHECK (action IN ('BUY', 'SELL')),
    rule              text          NOT NULL,
    price             numeric(18, 6) NOT NULL,  -- close of the bar
    base_confidence   numeric(6, 4) NOT NULL,
    volume_ratio      numeric(10, 4),
    volume_multiplier numeric(4, 2) NOT NULL,
    confidence        numeric(6, 4) NOT NULL,
    news_event_ids    bigint[]      NOT NULL DEFAULT '{}',
    reason            text          NOT NULL,
    created_at        timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (ticker, ts)
);

CREATE INDEX dispatch_recommendations_decided_at ON dispatch_recommendations (decided_at);

CREATE TABLE dispatch_executions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recommendation_id bigint         NOT NULL UNIQUE REFERENCES dispatch_recommendations (id),
    ticker            text           NOT NULL,
    side              text           NOT NULL CHECK (side IN ('buy', 'sell')),
    qty               numeric(18, 6) NOT NULL CHECK (qty >= 0),
    price             numeric(18, 6),
    mode              text           NOT NULL CHECK (mode IN ('simulation', 'paper', 'live')),
    client_order_id   text           NOT NULL UNIQUE,
    status            text           NOT NULL
                      CHECK (status IN ('pending', 'filled', 'submitted', 'rejected', 'failed')),
    reject_reason     text,
    broker_order_id   text,
    decided_at        timestamptz    NOT NULL,
    created_at        timestamptz    NOT NULL DEFAULT now(),
    updated_at        timestamptz    NOT NULL DEFAULT now()
);

CREATE INDEX dispatch_executions_ticker ON dispatch_executions (ticker, status);
