-- One evaluation of the signal rules per ticker and bar, whether a recommendation came of it or not:
-- what `ops-pipeline explain` reads for a signal that did not fire.

CREATE TABLE signal_evaluations (
    ticker            text           NOT NULL,
    ts                timestamptz    NOT NULL,   -- the bar evaluated (its start)
    decided_at        timestamptz    NOT NULL,   -- the decision minute: the bar's close, or a late bar's run minute
    close             numeric(18, 6) NOT NULL,
    sma20             numeric(18, 6),
    sma50             numeric(18, 6),
    prev_close        numeric(18, 6),
    prev_sma20        numeric(18, 6),
    volume_ratio      numeric(10, 4),
    trend             text           CHECK (trend IN ('BUY', 'SELL')),   -- the cross rule's outcome
    news_net          numeric(8, 4)  NOT NULL DEFAULT 0,
    news_event_ids    bigint[]       NOT NULL DEFAULT '{}',              -- the headlines visible then
    band              text           NOT NULL,
    volume_multiplier numeric(4, 2)  NOT NULL,
    action            text           CHECK (action IN ('BUY', 'SELL')),  -- the recommendation, if any
    rule              text,
    confidence        numeric(6, 4),
    reason            text           NOT NULL,
    evaluated_at      timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker, ts)
);

CREATE INDEX signal_evaluations_decided_at ON signal_evaluations (decided_at);
