-- What the dispatcher learns about an order beyond its status: each risk gate's verdict, the
-- broker's refusal code, the quantity asked for against the quantity filled, when and at what
-- cost it filled; and a random salt that makes this database's client_order_ids its own.

ALTER TABLE dispatch_executions
    -- ordered list of {"gate": name, "passed": bool, "detail": text}, every gate evaluated
    ADD COLUMN gate_verdicts   jsonb          NOT NULL DEFAULT '[]',
    ADD COLUMN broker_code     integer,                   -- the broker's error code on a refusal
    ADD COLUMN requested_qty   numeric(18, 6),            -- qty sent; qty is what filled
    ADD COLUMN commission      numeric(18, 6) NOT NULL DEFAULT 0,
    ADD COLUMN filled_at       timestamptz;               -- event time of the fill

CREATE INDEX dispatch_executions_status ON dispatch_executions (status, mode, decided_at);

-- One row: part of every client_order_id prefix, so a rebuilt database never reads back an
-- order a previous database placed on the same account.
CREATE TABLE dispatch_deployment (
    salt text NOT NULL DEFAULT substr(md5(random()::text || clock_timestamp()::text), 1, 6),
    one  boolean PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO dispatch_deployment DEFAULT VALUES;
