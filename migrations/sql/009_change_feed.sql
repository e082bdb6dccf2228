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
