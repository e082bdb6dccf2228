-- The ledger: Apple's truth about each subscription, with the signed JWS kept
-- beside every decoded row for audit and replay.

CREATE TABLE customers (
    customer_id       text PRIMARY KEY,
    app_account_token uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_app_account_token ON customers (app_account_token);

-- One row per subscription (originalTransactionId). Every column below the
-- identity is a projection recomputed from transactions, renewal_infos and
-- the status observation, so the same facts in any order give the same row.
CREATE TABLE subscriptions (
    original_transaction_id       text PRIMARY KEY,
    environment                   text NOT NULL DEFAULT '',
    app_account_token             uuid,
    customer_id                   text,
    product_id                    text NOT NULL DEFAULT '',
    subscription_group_identifier text NOT NULL DEFAULT '',
    status                        smallint NOT NULL DEFAULT 0,
    status_signed_date            bigint NOT NULL DEFAULT 0,
    observed_status               smallint NOT NULL DEFAULT 0,
    expires_date                  timestamptz,
    purchase_date                 timestamptz,
    revocation_date               timestamptz,
    auto_renew_status             boolean,
    auto_renew_product_id         text NOT NULL DEFAULT '',
    is_in_billing_retry           boolean NOT NULL DEFAULT false,
    grace_period_expires_date     timestamptz,
    latest_transaction_id         text NOT NULL DEFAULT '',
    transaction_count             integer NOT NULL DEFAULT 0,
    last_signed_date              bigint NOT NULL DEFAULT 0,
    history_revision              text NOT NULL DEFAULT '',
    history_synced_at             timestamptz,
    last_checked_at               timestamptz,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_app_account_token ON subscriptions (app_account_token);
CREATE INDEX subscriptions_customer_id ON subscriptions (customer_id);
-- Reconciliation picks due and least-recently-checked subscriptions by index.
CREATE INDEX subscriptions_status_expires ON subscriptions (status, expires_date);
CREATE INDEX subscriptions_last_checked ON subscriptions (last_checked_at NULLS FIRST, original_transaction_id);

CREATE TABLE transactions (
    transaction_id                text PRIMARY KEY,
    original_transaction_id       text NOT NULL,
    environment                   text NOT NULL DEFAULT '',
    product_id                    text NOT NULL DEFAULT '',
    subscription_group_identifier text NOT NULL DEFAULT '',
    type                          text NOT NULL DEFAULT '',
    purchase_date                 timestamptz,
    original_purchase_date        timestamptz,
    expires_date                  timestamptz,
    app_account_token             uuid,
    in_app_ownership_type         text NOT NULL DEFAULT '',
    revocation_date               timestamptz,
    revocation_reason             smallint,
    revocation_type               text NOT NULL DEFAULT '',
    is_upgraded                   boolean NOT NULL DEFAULT false,
    offer_type                    smallint NOT NULL DEFAULT 0,
    offer_identifier              text NOT NULL DEFAULT '',
    transaction_reason            text NOT NULL DEFAULT '',
    web_order_line_item_id        text NOT NULL DEFAULT '',
    price                         bigint NOT NULL DEFAULT 0,
    currency                      text NOT NULL DEFAULT '',
    storefront                    text NOT NULL DEFAULT '',
    signed_date                   bigint NOT NULL DEFAULT 0,
    jws                           text NOT NULL,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_original ON transactions (original_transaction_id, purchase_date DESC);

CREATE TABLE renewal_infos (
    original_transaction_id     text PRIMARY KEY,
    environment                 text NOT NULL DEFAULT '',
    auto_renew_status           boolean NOT NULL,
    auto_renew_product_id       text NOT NULL DEFAULT '',
    product_id                  text NOT NULL DEFAULT '',
    expiration_intent           smallint NOT NULL DEFAULT 0,
    is_in_billing_retry_period  boolean NOT NULL DEFAULT false,
    grace_period_expires_date   timestamptz,
    renewal_date                timestamptz,
    app_account_token           uuid,
    signed_date                 bigint NOT NULL DEFAULT 0,
    jws                         text NOT NULL,
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    notification_uuid       uuid PRIMARY KEY,
    notification_type       text NOT NULL,
    subtype                 text NOT NULL DEFAULT '',
    environment             text NOT NULL DEFAULT '',
    signed_date             bigint NOT NULL DEFAULT 0,
    original_transaction_id text,
    transaction_id          text,
    signed_payload          text NOT NULL,
    source                  text NOT NULL CHECK (source IN ('webhook', 'backfill', 'resync', 'reconcile')),
    send_attempts           jsonb,
    received_at             timestamptz NOT NULL DEFAULT now(),
    processed_at            timestamptz,
    process_error           text
);
CREATE INDEX notifications_original ON notifications (original_transaction_id, signed_date);
CREATE INDEX notifications_unprocessed ON notifications (received_at) WHERE processed_at IS NULL;

-- Disagreements between what we were told (an import row) and Apple.
CREATE TABLE conflicts (
    id                      bigserial PRIMARY KEY,
    original_transaction_id text NOT NULL,
    field                   text NOT NULL,
    our_value               text NOT NULL,
    apple_value             text NOT NULL,
    source                  text NOT NULL,
    found_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (original_transaction_id, field, our_value, apple_value)
);

CREATE TABLE import_runs (
    id            bigserial PRIMARY KEY,
    source        text NOT NULL,
    total_rows    bigint NOT NULL DEFAULT 0,
    rejected_rows bigint NOT NULL DEFAULT 0,
    duplicate_rows bigint NOT NULL DEFAULT 0,
    enqueued      bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- One row per originalTransactionId ever imported: re-importing a file
-- enqueues nothing new, and progress is counted here, not from River.
CREATE TABLE import_rows (
    original_transaction_id text PRIMARY KEY,
    run_id                  bigint NOT NULL REFERENCES import_runs (id),
    app_account_token       uuid,
    customer_id             text,
    state                   text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    error                   text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX import_rows_run_state ON import_rows (run_id, state);

CREATE TABLE backfill_windows (
    id               bigserial PRIMARY KEY,
    environment      text NOT NULL,
    start_date       timestamptz NOT NULL,
    end_date         timestamptz NOT NULL,
    only_failures    boolean NOT NULL DEFAULT false,
    pagination_token text NOT NULL DEFAULT '',
    pages            integer NOT NULL DEFAULT 0,
    seen             integer NOT NULL DEFAULT 0,
    new              integer NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (environment, start_date, end_date, only_failures)
);

CREATE TABLE reconcile_runs (
    id              bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    call_cap        bigint NOT NULL DEFAULT 0,
    calls_used      bigint NOT NULL DEFAULT 0,
    checked         jsonb NOT NULL DEFAULT '{}',
    drifted         jsonb NOT NULL DEFAULT '{}',
    repaired        bigint NOT NULL DEFAULT 0,
    error           text
);

CREATE TABLE drift (
    id                      bigserial PRIMARY KEY,
    run_id                  bigint REFERENCES reconcile_runs (id),
    original_transaction_id text NOT NULL,
    class                   text NOT NULL,
    field                   text NOT NULL,
    ledger_value            text NOT NULL,
    apple_value             text NOT NULL,
    found_at                timestamptz NOT NULL DEFAULT now(),
    repaired_at             timestamptz
);
CREATE INDEX drift_run ON drift (run_id, class);
CREATE INDEX drift_subscription ON drift (original_transaction_id, found_at);
