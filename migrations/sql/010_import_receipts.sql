-- Receipt imports (issue 15): a receipt row is resolved to its subscription
-- at job time; a job first asks whether an earlier row of the same customer
-- (or appAccountToken) is already imported, so several receipts of one
-- customer cost Apple one call. These indexes make that question cheap.
CREATE INDEX IF NOT EXISTS import_rows_customer_id ON import_rows (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS import_rows_app_account_token ON import_rows (app_account_token) WHERE app_account_token IS NOT NULL;
