-- Receipt imports (issue 15): a receipt row is resolved to its subscription
-- at job time; a job first asks whether an earlier row of the same customer
-- (or appAccountToken) is already imported, so several receipts of one
-- customer cost Apple one call. These indexes make that question cheap.
CREATE INDEX IF NOT EXISTS import_rows_customer_id ON import_rows (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS import_rows_app_account_token ON import_rows (app_account_token) WHERE app_account_token IS NOT NULL;

-- Every appAccountToken storesync sets at Apple (import --set-app-account-token):
-- who asked, when, the token Apple had and the new one. The row is written
-- before the call (requested_at) and completed after it (applied_at, or
-- error), so a crash between the two still leaves the intent on record.
CREATE TABLE IF NOT EXISTS app_account_token_changes (
    id                      bigserial PRIMARY KEY,
    job_id                  bigint NOT NULL UNIQUE,
    original_transaction_id text NOT NULL,
    old_token               uuid,
    new_token               uuid NOT NULL,
    actor                   text NOT NULL,
    requested_at            timestamptz NOT NULL DEFAULT now(),
    applied_at              timestamptz,
    error                   text
);
CREATE INDEX IF NOT EXISTS app_account_token_changes_otid ON app_account_token_changes (original_transaction_id, id);
