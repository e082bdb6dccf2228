-- The change feed: a transactional outbox. Every change to a subscription's
-- state the backend cares about writes one row here in the same database
-- transaction as the change, so there is no change without an event and no
-- event without a change.
CREATE TABLE subscription_events (
    -- Insertion order. Not the public cursor: ids are drawn before commit,
    -- so a reader could see id 8 committed before id 7 and skip 7.
    id                      bigserial PRIMARY KEY,
    -- The public, stable cursor: assigned in id order (by one sequencer at
    -- a time, see ledger.SequenceEvents) only to rows whose transaction has
    -- ended, so positions become visible strictly in order.
    position                bigint UNIQUE,
    xid                     xid8 NOT NULL DEFAULT pg_current_xact_id(),
    original_transaction_id text NOT NULL,
    customer_id             text,
    type                    text NOT NULL,
    entitlement             text NOT NULL DEFAULT '',
    before                  jsonb,
    after                   jsonb NOT NULL,
    cause_job               text NOT NULL DEFAULT '',
    cause_notification_uuid uuid,
    cause_import_run        bigint,
    signed_date             bigint NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_events_unsequenced ON subscription_events (id) WHERE position IS NULL;
CREATE INDEX subscription_events_subscription ON subscription_events (original_transaction_id, id);

-- Delivery of the feed to the backend's HTTPS endpoints (Standard Webhooks).
CREATE TABLE event_endpoints (
    id         bigserial PRIMARY KEY,
    url        text NOT NULL UNIQUE,
    secret     text NOT NULL, -- whsec_…, printed once by `endpoints add`
    -- Every event up to this feed position has a delivery row for this
    -- endpoint; a new endpoint starts at the head (no replay of history).
    fanned_out bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event_deliveries (
    endpoint_id             bigint NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    position                bigint NOT NULL,
    original_transaction_id text NOT NULL,
    state                   text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'held', 'delivered', 'dead')),
    attempts                integer NOT NULL DEFAULT 0,
    last_error              text NOT NULL DEFAULT '',
    -- When the dead-letter clock started: the fan-out, or a redelivery.
    since                   timestamptz NOT NULL DEFAULT now(),
    delivered_at            timestamptz,
    PRIMARY KEY (endpoint_id, position)
);
-- A subscription's next delivery, by the delivery worker.
CREATE INDEX event_deliveries_pending ON event_deliveries (endpoint_id, original_transaction_id, position)
    WHERE state IN ('pending', 'held');
CREATE INDEX event_deliveries_dead ON event_deliveries (endpoint_id, position) WHERE state = 'dead';

-- Imports run with --events=hold: their events are delivered only once
-- `storesync events release RUN` sets released_at (the feed has them at once).
CREATE TABLE event_holds (
    run_id      bigint PRIMARY KEY REFERENCES import_runs (id),
    held_at     timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
