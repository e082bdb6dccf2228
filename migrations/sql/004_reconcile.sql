-- Reconciliation: durable run state and the indexes that choose what to
-- check without scanning the ledger.

-- A run is keyed by its trigger ("nightly <tick>" or "manual <minute>"), so
-- a periodic job inserted twice (deploy, leader change) or retried after its
-- River row was cleaned up never runs the same night twice. The run job
-- works in slices that fit River's JobTimeout and keeps where it is here
-- (phase and cursor) in the same transaction as each slice's progress.
ALTER TABLE reconcile_runs
    ADD COLUMN run_key        text,
    -- Apple's clock at the start (expiresDate and notification dates
    -- compare with it); started_at is the database clock, which
    -- last_checked_at compares with. They differ only under a simulator.
    ADD COLUMN as_of          timestamptz,
    ADD COLUMN phase          text NOT NULL DEFAULT 'sweep'
        CHECK (phase IN ('sweep', 'targeted', 'rolling', 'done')),
    ADD COLUMN cursor         jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN sweep_since    timestamptz,
    ADD COLUMN sweep_until    timestamptz,
    ADD COLUMN sweep_new      bigint NOT NULL DEFAULT 0,
    -- The backfill jobs the sweep enqueued for its window (one per
    -- environment and day); the run waits for them before it goes on.
    ADD COLUMN sweep_jobs     bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN rolling_quota  bigint NOT NULL DEFAULT 0,
    ADD COLUMN total_subscriptions bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed         bigint NOT NULL DEFAULT 0,
    ADD COLUMN stopped_reason text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX reconcile_runs_run_key ON reconcile_runs (run_key);
-- The previous run (the sweep starts at its start) and the latest for status.
CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at DESC);

-- "Recent refunds" are chosen by revocation date; few rows are revoked, so a
-- partial index stays small.
CREATE INDEX subscriptions_revoked ON subscriptions (revocation_date, original_transaction_id)
    WHERE revocation_date IS NOT NULL;
-- "Subscriptions with conflicts" are those whose conflict was found lately.
CREATE INDEX conflicts_found_at ON conflicts (found_at);
